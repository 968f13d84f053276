/*
 * test_ring.c — slot ring and byte ring: single-thread semantics (full, empty, wrap,
 * batch, zero-copy peek), and two-thread stress tests that push 10^7 records through
 * and check each arrives exactly once and in order (run under TSan in CI's sanitizer
 * builds as well).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbi/record.h"
#include "dbi/ring.h"

static void *aligned(size_t n)
{
	void *p = NULL;
	assert_int_equal(posix_memalign(&p, 64, n), 0);
	memset(p, 0xab, n);
	return p;
}

static void test_ring_basic(void **state)
{
	(void)state;
	struct dbi_ring *r = aligned(dbi_ring_memsize(8, sizeof(uint64_t)));
	assert_int_equal(dbi_ring_init(r, "t", 8, sizeof(uint64_t)), DBI_OK);
	assert_int_equal(dbi_ring_init(r, "t", 6, sizeof(uint64_t)), DBI_ERR); /* not a power of two */
	assert_int_equal(dbi_ring_init(r, "t", 8, sizeof(uint64_t)), DBI_OK);
	uint64_t v, out[16];
	assert_int_equal(dbi_ring_dequeue(r, &v, sizeof(v)), DBI_AGAIN);
	for (uint64_t i = 0; i < 8; i++)
		assert_int_equal(dbi_ring_enqueue(r, &i, sizeof(i)), DBI_OK);
	v = 99;
	assert_int_equal(dbi_ring_enqueue(r, &v, sizeof(v)), DBI_AGAIN);
	assert_true(r->full_events >= 1);
	assert_int_equal(dbi_ring_depth(r), 8);
	for (uint64_t i = 0; i < 5; i++) {
		assert_int_equal(dbi_ring_dequeue(r, &v, sizeof(v)), DBI_OK);
		assert_int_equal(v, i);
	}
	/* wrap: 3 left + 5 new */
	uint64_t in[5] = {8, 9, 10, 11, 12};
	assert_int_equal(dbi_ring_enqueue_burst(r, in, 5, sizeof(uint64_t)), 5);
	assert_int_equal(dbi_ring_enqueue_burst(r, in, 5, sizeof(uint64_t)), 0);
	assert_int_equal(dbi_ring_dequeue_burst(r, out, 16, sizeof(uint64_t)), 8);
	for (uint64_t i = 0; i < 8; i++)
		assert_int_equal(out[i], i + 5);
	/* partial burst when only some fit */
	uint64_t many[12];
	for (int i = 0; i < 12; i++)
		many[i] = 100 + (uint64_t)i;
	assert_int_equal(dbi_ring_enqueue_burst(r, many, 12, sizeof(uint64_t)), 8);
	/* peek gives contiguous spans */
	void *first;
	unsigned n = dbi_ring_peek(r, &first, 16, sizeof(uint64_t));
	assert_true(n >= 1 && n <= 8);
	assert_int_equal(((uint64_t *)first)[0], 100);
	dbi_ring_consume(r, n);
	assert_int_equal(dbi_ring_depth(r), 8 - n);
	free(r);
}

static void test_ring_stage_publish(void **state)
{
	(void)state;
	struct dbi_ring *r = aligned(dbi_ring_memsize(16, sizeof(uint64_t)));
	dbi_ring_init(r, "t", 16, sizeof(uint64_t));
	uint64_t v = 7, out;
	assert_int_equal(dbi_ring_stage(r, &v, 1, sizeof(v)), 1);
	/* staged but not published: invisible */
	assert_int_equal(dbi_ring_dequeue(r, &out, sizeof(out)), DBI_AGAIN);
	uint64_t *slot = dbi_ring_reserve(r, sizeof(uint64_t));
	assert_non_null(slot);
	*slot = 8;
	dbi_ring_publish(r);
	assert_int_equal(dbi_ring_dequeue(r, &out, sizeof(out)), DBI_OK);
	assert_int_equal(out, 7);
	assert_int_equal(dbi_ring_dequeue(r, &out, sizeof(out)), DBI_OK);
	assert_int_equal(out, 8);
	free(r);
}

static void test_bring_basic(void **state)
{
	(void)state;
	uint64_t size = 4096;
	struct dbi_bring *r = aligned(dbi_bring_memsize(size));
	assert_int_equal(dbi_bring_init(r, "b", size), DBI_OK);
	uint32_t len;
	assert_null(dbi_bring_peek(r, &len));
	assert_null(dbi_bring_reserve(r, 2000)); /* over the max record size (size/4) */
	/* fill with 100-byte records until full */
	int n = 0;
	char *p;
	while ((p = dbi_bring_reserve(r, 100)) != NULL) {
		memset(p, n & 0xff, 100);
		n++;
	}
	assert_true(n >= 30);
	dbi_bring_publish(r);
	for (int i = 0; i < n; i++) {
		const char *q = dbi_bring_peek(r, &len);
		assert_non_null(q);
		assert_int_equal(len, 100);
		assert_int_equal((unsigned char)q[0], (unsigned)(i & 0xff));
		assert_int_equal((unsigned char)q[99], (unsigned)(i & 0xff));
	}
	assert_null(dbi_bring_peek(r, &len));
	dbi_bring_release(r);
	assert_int_equal(dbi_bring_used(r), 0);
	/* wrapping: records never straddle the end */
	for (int round = 0; round < 200; round++) {
		uint32_t l = 50 + (uint32_t)(round * 37) % 900;
		p = dbi_bring_reserve(r, l);
		assert_non_null(p);
		memset(p, round & 0xff, l);
		dbi_bring_publish(r);
		const char *q = dbi_bring_peek(r, &len);
		assert_non_null(q);
		assert_int_equal(len, l);
		assert_int_equal((unsigned char)q[l - 1], (unsigned)(round & 0xff));
		assert_true((const uint8_t *)q + l <= r->data + size);
		dbi_bring_release(r);
	}
	free(r);
}

#define STRESS_N 10000000ULL

struct stress {
	struct dbi_ring *r;
	struct dbi_bring *b;
	uint64_t bad;
};

static void *producer(void *arg)
{
	struct stress *s = arg;
	struct dbi_point batch[32];
	uint64_t next = 1;
	memset(batch, 0, sizeof(batch));
	while (next <= STRESS_N) {
		unsigned n = 0;
		while (n < 32 && next + n <= STRESS_N) {
			batch[n].seq = next + n;
			batch[n].v.i = (int64_t)((next + n) * 3);
			n++;
		}
		unsigned done = 0;
		while (done < n)
			done += dbi_ring_enqueue_burst(s->r, batch + done, n - done, sizeof(struct dbi_point));
		next += n;
	}
	return NULL;
}

static void test_ring_stress_two_threads(void **state)
{
	(void)state;
	struct stress s = {0};
	s.r = aligned(dbi_ring_memsize(4096, sizeof(struct dbi_point)));
	dbi_ring_init(s.r, "stress", 4096, sizeof(struct dbi_point));
	pthread_t t;
	pthread_create(&t, NULL, producer, &s);
	uint64_t expect = 1;
	struct dbi_point out[64];
	while (expect <= STRESS_N) {
		unsigned n = dbi_ring_dequeue_burst(s.r, out, 64, sizeof(struct dbi_point));
		for (unsigned i = 0; i < n; i++) {
			if (out[i].seq != expect || out[i].v.i != (int64_t)(expect * 3))
				s.bad++;
			expect++;
		}
	}
	pthread_join(t, NULL);
	assert_int_equal(s.bad, 0);
	assert_int_equal(dbi_ring_depth(s.r), 0);
	free(s.r);
}

static void *bproducer(void *arg)
{
	struct stress *s = arg;
	for (uint64_t i = 1; i <= STRESS_N / 10; i++) {
		uint32_t len = 8 + (uint32_t)(i % 61) * 8;
		uint64_t *p;
		while ((p = dbi_bring_reserve(s->b, len)) == NULL)
			dbi_bring_publish(s->b);
		for (uint32_t k = 0; k < len / 8; k++)
			p[k] = i;
		if (i % 16 == 0)
			dbi_bring_publish(s->b);
	}
	dbi_bring_publish(s->b);
	return NULL;
}

static void test_bring_stress_two_threads(void **state)
{
	(void)state;
	struct stress s = {0};
	s.b = aligned(dbi_bring_memsize(1 << 16));
	dbi_bring_init(s.b, "bstress", 1 << 16);
	pthread_t t;
	pthread_create(&t, NULL, bproducer, &s);
	uint64_t expect = 1;
	while (expect <= STRESS_N / 10) {
		uint32_t len;
		const uint64_t *p = dbi_bring_peek(s.b, &len);
		if (!p) {
			dbi_bring_release(s.b);
			continue;
		}
		if (len != 8 + (uint32_t)(expect % 61) * 8 || p[0] != expect || p[len / 8 - 1] != expect)
			s.bad++;
		expect++;
		if (expect % 8 == 0)
			dbi_bring_release(s.b);
	}
	dbi_bring_release(s.b);
	pthread_join(t, NULL);
	assert_int_equal(s.bad, 0);
	free(s.b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ring_basic),
	        cmocka_unit_test(test_ring_stage_publish),
	        cmocka_unit_test(test_bring_basic),
	        cmocka_unit_test(test_ring_stress_two_threads),
	        cmocka_unit_test(test_bring_stress_two_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
