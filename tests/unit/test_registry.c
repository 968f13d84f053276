/*
 * test_registry.c — interning: same content gives the same id, attribute order does not
 * matter, different kinds/units make different metrics, the series limit refuses new
 * series, ids map back to objects, and concurrent interning from several threads agrees.
 * Series live inline in chunks of 4096: tests cross chunk boundaries, check that ids stay
 * dense and pointers stable, and read series by id while other threads intern them.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbi/registry.h"

static void test_attrs(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(0);
	struct dbi_attr a[] = {
	        {.key = "b", .type = DBI_AT_STR, .v.s = "x"},
	        {.key = "a", .type = DBI_AT_INT, .v.i = 3},
	        {.key = "c", .type = DBI_AT_DOUBLE, .v.d = 1.5},
	};
	struct dbi_attr b[] = {a[2], a[0], a[1]};
	uint32_t ia = dbi_attrs_intern(reg, a, 3), ib = dbi_attrs_intern(reg, b, 3);
	assert_true(ia > 0);
	assert_int_equal(ia, ib);
	uint32_t empty = dbi_attrs_intern(reg, NULL, 0);
	assert_true(empty > 0 && empty != ia);
	const struct dbi_attrset *s = dbi_attrs_get(reg, ia);
	assert_int_equal(s->n, 3);
	struct dbi_attr out;
	assert_true(dbi_attrs_find(s->enc, s->len, "b", &out));
	assert_int_equal(out.type, DBI_AT_STR);
	assert_memory_equal(out.v.s, "x", 1);
	assert_true(dbi_attrs_find(s->enc, s->len, "a", &out));
	assert_int_equal(out.v.i, 3);
	char buf[128];
	assert_string_equal(dbi_attrs_format(s->enc, s->len, buf, sizeof(buf)), "a=3, b=\"x\", c=1.5");
	/* duplicates: last wins */
	struct dbi_attr d[] = {{.key = "k", .type = DBI_AT_STR, .v.s = "1"},
	                       {.key = "k", .type = DBI_AT_STR, .v.s = "2"}};
	uint32_t id = dbi_attrs_intern(reg, d, 2);
	s = dbi_attrs_get(reg, id);
	assert_int_equal(s->n, 1);
	assert_true(dbi_attrs_find(s->enc, s->len, "k", &out));
	assert_memory_equal(out.v.s, "2", 1);
	/* invalid: empty key */
	struct dbi_attr bad = {.key = "", .type = DBI_AT_STR, .v.s = "v"};
	assert_int_equal(dbi_attrs_intern(reg, &bad, 1), 0);
	dbi_registry_destroy(reg);
}

static void test_metrics_and_series(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(3);
	struct dbi_metric_def g = {.name = "postgresql.backends", .unit = "1", .kind = DBI_MK_SUM};
	struct dbi_metric_def g2 = g;
	g2.unit = "{connections}";
	uint32_t m1 = dbi_metric_intern(reg, &g), m1b = dbi_metric_intern(reg, &g), m2 = dbi_metric_intern(reg, &g2);
	assert_true(m1 > 0);
	assert_int_equal(m1, m1b);
	assert_int_not_equal(m1, m2);
	assert_string_equal(dbi_metric_get(reg, m1)->name, "postgresql.backends");
	struct dbi_metric_def bad = {.name = "", .kind = DBI_MK_GAUGE};
	assert_int_equal(dbi_metric_intern(reg, &bad), 0);

	uint32_t sc = dbi_scope_intern(reg, "dbi/postgresql", "1.0");
	assert_int_equal(sc, dbi_scope_intern(reg, "dbi/postgresql", "1.0"));
	uint32_t res = dbi_attrs_intern(reg, NULL, 0);
	uint32_t ids[4];
	for (int i = 0; i < 4; i++) {
		struct dbi_attr a = {.key = "i", .type = DBI_AT_INT, .v.i = i};
		ids[i] = dbi_series_intern(reg, m1, res, sc, dbi_attrs_intern(reg, &a, 1));
	}
	assert_true(ids[0] && ids[1] && ids[2]);
	assert_int_equal(ids[3], 0); /* limit of 3 series */
	struct dbi_registry_stats st;
	dbi_registry_get_stats(reg, &st);
	assert_int_equal(st.series, 3);
	assert_int_equal(st.series_limit_hits, 1);
	/* existing series are still found at the limit */
	struct dbi_attr a0 = {.key = "i", .type = DBI_AT_INT, .v.i = 0};
	assert_int_equal(dbi_series_intern(reg, m1, res, sc, dbi_attrs_intern(reg, &a0, 1)), ids[0]);
	const struct dbi_series *s = dbi_series_get(reg, ids[1]);
	assert_int_equal(s->metric, m1);
	assert_null(dbi_series_get(reg, 999));
	dbi_registry_destroy(reg);
}

static void test_hash_is_content_based(void **state)
{
	(void)state;
	/* two registries interning in different orders agree on series hashes */
	struct dbi_registry *r1 = dbi_registry_create(0), *r2 = dbi_registry_create(0);
	struct dbi_metric_def a = {.name = "a", .kind = DBI_MK_GAUGE}, b = {.name = "b", .kind = DBI_MK_GAUGE};
	uint32_t a1 = dbi_metric_intern(r1, &a), b1 = dbi_metric_intern(r1, &b);
	uint32_t b2 = dbi_metric_intern(r2, &b), a2 = dbi_metric_intern(r2, &a);
	uint32_t e1 = dbi_attrs_intern(r1, NULL, 0), e2 = dbi_attrs_intern(r2, NULL, 0);
	uint32_t s1 = dbi_scope_intern(r1, "x", ""), s2 = dbi_scope_intern(r2, "x", "");
	uint32_t sa1 = dbi_series_intern(r1, a1, e1, s1, e1), sa2 = dbi_series_intern(r2, a2, e2, s2, e2);
	assert_int_equal(dbi_series_get(r1, sa1)->hash, dbi_series_get(r2, sa2)->hash);
	(void)b1;
	(void)b2;
	dbi_registry_destroy(r1);
	dbi_registry_destroy(r2);
}

struct race {
	struct dbi_registry *reg;
	uint32_t ids[2000];
};

static void *interner(void *arg)
{
	struct race *r = arg;
	struct dbi_metric_def d = {.name = "m", .kind = DBI_MK_GAUGE};
	uint32_t m = dbi_metric_intern(r->reg, &d);
	uint32_t sc = dbi_scope_intern(r->reg, "s", "");
	uint32_t res = dbi_attrs_intern(r->reg, NULL, 0);
	for (int i = 0; i < 2000; i++) {
		struct dbi_attr a = {.key = "i", .type = DBI_AT_INT, .v.i = i};
		r->ids[i] = dbi_series_intern(r->reg, m, res, sc, dbi_attrs_intern(r->reg, &a, 1));
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(0);
	static struct race r[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		r[i].reg = reg;
		pthread_create(&t[i], NULL, interner, &r[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 1; i < 4; i++)
		assert_memory_equal(r[0].ids, r[i].ids, sizeof(r[0].ids));
	assert_int_equal(dbi_series_max_id(reg), 2000);
	dbi_registry_destroy(reg);
}

/* Prerequisites of the series tests: one metric, resource and scope; attribute sets i=0..n-1. */
struct fixture {
	struct dbi_registry *reg;
	uint32_t metric, res, scope;
	uint32_t *attrs;
};

static void fixture_init(struct fixture *f, uint32_t max_series, uint32_t n)
{
	struct dbi_metric_def d = {.name = "postgresql.blocks_read", .unit = "1", .kind = DBI_MK_SUM};
	f->reg = dbi_registry_create(max_series);
	assert_non_null(f->reg);
	f->metric = dbi_metric_intern(f->reg, &d);
	f->res = dbi_attrs_intern(f->reg, NULL, 0);
	f->scope = dbi_scope_intern(f->reg, "dbi/test", "1");
	f->attrs = calloc(n, sizeof(*f->attrs));
	assert_non_null(f->attrs);
	for (uint32_t i = 0; i < n; i++) {
		struct dbi_attr a = {.key = "i", .type = DBI_AT_INT, .v.i = i};
		f->attrs[i] = dbi_attrs_intern(f->reg, &a, 1);
		assert_true(f->attrs[i] > 0);
	}
}

static void fixture_fini(struct fixture *f)
{
	dbi_registry_destroy(f->reg);
	free(f->attrs);
}

/* Series by id: 4 chunks' worth minus one, so three chunk boundaries are crossed. */
#define NCHUNKED (4 * 4096 - 1)

static void test_series_across_chunks(void **state)
{
	(void)state;
	struct fixture f;
	struct dbi_registry_stats st0, st1, st2;
	static const struct dbi_series *ptr[NCHUNKED + 1];
	fixture_init(&f, 0, NCHUNKED);
	dbi_registry_get_stats(f.reg, &st0);
	assert_int_equal(st0.series, 0);
	for (uint32_t i = 0; i < NCHUNKED; i++) {
		uint32_t id = dbi_series_intern(f.reg, f.metric, f.res, f.scope, f.attrs[i]);
		assert_int_equal(id, i + 1); /* dense, in interning order */
		ptr[id] = dbi_series_get(f.reg, id);
		assert_non_null(ptr[id]);
		assert_int_equal(dbi_series_max_id(f.reg), id);
	}
	assert_null(dbi_series_get(f.reg, 0));
	assert_null(dbi_series_get(f.reg, NCHUNKED + 1));
	dbi_registry_get_stats(f.reg, &st1);
	assert_int_equal(st1.series, NCHUNKED);
	/*
	 * the memory goal: 24 bytes per series in the chunks, plus the index (4 bytes a slot,
	 * 35 - 70 % full), counted per chunk and per mapping
	 */
	uint64_t grew = st1.bytes - st0.bytes;
	printf("registry: %d series hold %llu bytes, %.2f per series\n", NCHUNKED, (unsigned long long)grew,
	       (double)grew / NCHUNKED);
	assert_true(grew >= (uint64_t)NCHUNKED * sizeof(struct dbi_series));
	assert_true(grew <= (uint64_t)NCHUNKED * 36);
	for (uint32_t id = 1; id <= NCHUNKED; id++) {
		const struct dbi_series *s = dbi_series_get(f.reg, id);
		assert_ptr_equal(s, ptr[id]); /* stable: chunks never move */
		assert_int_equal(s->metric, f.metric);
		assert_int_equal(s->resource, f.res);
		assert_int_equal(s->scope, f.scope);
		assert_int_equal(s->attrs, f.attrs[id - 1]);
		/* interning again finds the same series, and allocates nothing */
		assert_int_equal(dbi_series_intern(f.reg, f.metric, f.res, f.scope, f.attrs[id - 1]), id);
	}
	/* same content, same routing hash, in another registry */
	struct fixture g;
	fixture_init(&g, 0, 3);
	uint32_t other = dbi_series_intern(g.reg, g.metric, g.res, g.scope, g.attrs[2]);
	assert_int_equal(dbi_series_get(g.reg, other)->hash, dbi_series_get(f.reg, 3)->hash);
	assert_int_not_equal(dbi_series_get(f.reg, 2)->hash, dbi_series_get(f.reg, 3)->hash);
	fixture_fini(&g);
	dbi_registry_get_stats(f.reg, &st2);
	assert_int_equal(st2.series, NCHUNKED);
	assert_int_equal(st2.bytes, st1.bytes);
	fixture_fini(&f);
}

/*
 * Writers intern overlapping sets at the same time (value v by every writer but the one
 * with w == v % NWRITERS), while readers walk all ids handed out so far with
 * dbi_series_get and check each series against its content. Readers cannot use cmocka's
 * asserts off the main thread: they count errors.
 */
#define NWRITERS 4
#define NREADERS 2
#define NRACE (3 * 4096 + 7)

struct race2 {
	struct fixture *f;
	int w;
	uint32_t ids[NRACE];
};

static atomic_int race2_stop, race2_errors;
static atomic_uint race2_reads;

static void *race2_writer(void *arg)
{
	struct race2 *r = arg;
	const struct fixture *f = r->f;
	for (uint32_t v = 0; v < NRACE; v++)
		if (v % NWRITERS != (uint32_t)r->w)
			r->ids[v] = dbi_series_intern(f->reg, f->metric, f->res, f->scope, f->attrs[v]);
	return NULL;
}

static void *race2_reader(void *arg)
{
	const struct fixture *f = arg;
	int last = 0;
	while (!last) {
		last = atomic_load(&race2_stop); /* one whole pass after the writers are done */
		uint32_t max = dbi_series_max_id(f->reg);
		for (uint32_t id = 1; id <= max; id++) {
			const struct dbi_series *s = dbi_series_get(f->reg, id);
			if (!s || s->metric != f->metric || s->resource != f->res || s->scope != f->scope ||
			    !dbi_attrs_get(f->reg, s->attrs)) {
				atomic_fetch_add(&race2_errors, 1);
				continue;
			}
			/* found by id, so found by content: the same id, never a new series */
			if (id % 7 == 0 && dbi_series_intern(f->reg, s->metric, s->resource, s->scope, s->attrs) != id)
				atomic_fetch_add(&race2_errors, 1);
			atomic_fetch_add_explicit(&race2_reads, 1, memory_order_relaxed);
		}
	}
	return NULL;
}

static void test_concurrent_overlapping(void **state)
{
	(void)state;
	static struct fixture f;
	static struct race2 r[NWRITERS];
	static uint32_t seen[NRACE + 1];
	pthread_t wt[NWRITERS], rt[NREADERS];
	fixture_init(&f, 0, NRACE);
	atomic_store(&race2_stop, 0);
	atomic_store(&race2_errors, 0);
	atomic_store(&race2_reads, 0);
	for (int i = 0; i < NREADERS; i++)
		assert_int_equal(pthread_create(&rt[i], NULL, race2_reader, &f), 0);
	for (int w = 0; w < NWRITERS; w++) {
		r[w].f = &f;
		r[w].w = w;
		assert_int_equal(pthread_create(&wt[w], NULL, race2_writer, &r[w]), 0);
	}
	for (int w = 0; w < NWRITERS; w++)
		pthread_join(wt[w], NULL);
	atomic_store(&race2_stop, 1);
	for (int i = 0; i < NREADERS; i++)
		pthread_join(rt[i], NULL);
	assert_int_equal(atomic_load(&race2_errors), 0);
	assert_true(atomic_load(&race2_reads) >= (unsigned)NREADERS * NRACE);
	assert_int_equal(dbi_series_max_id(f.reg), NRACE);
	memset(seen, 0, sizeof(seen));
	for (uint32_t v = 0; v < NRACE; v++) {
		uint32_t id = 0;
		for (int w = 0; w < NWRITERS; w++) {
			if (v % NWRITERS == (uint32_t)w) {
				assert_int_equal(r[w].ids[v], 0);
				continue;
			}
			if (!id)
				id = r[w].ids[v];
			assert_int_equal(r[w].ids[v], id); /* equal content, one id */
		}
		assert_in_range(id, 1, NRACE);
		assert_int_equal(seen[id]++, 0); /* distinct content, distinct ids: dense 1..NRACE */
		const struct dbi_series *s = dbi_series_get(f.reg, id);
		assert_int_equal(s->attrs, f.attrs[v]);
	}
	fixture_fini(&f);
}

/* The series limit holds exactly when writers race for the last slots. */
#define NLIMIT 1000

struct race3 {
	struct fixture *f;
	int w;
	uint32_t ids[2 * NLIMIT], refused;
};

static void *race3_writer(void *arg)
{
	struct race3 *r = arg;
	const struct fixture *f = r->f;
	for (uint32_t i = 0; i < 2 * NLIMIT; i++) {
		uint32_t v = r->w & 1 ? 2 * NLIMIT - 1 - i : i;
		r->ids[v] = dbi_series_intern(f->reg, f->metric, f->res, f->scope, f->attrs[v]);
		r->refused += !r->ids[v];
	}
	return NULL;
}

static void test_concurrent_limit(void **state)
{
	(void)state;
	static struct fixture f;
	static struct race3 r[NWRITERS];
	pthread_t t[NWRITERS];
	uint64_t refused = 0;
	fixture_init(&f, NLIMIT, 2 * NLIMIT);
	for (int w = 0; w < NWRITERS; w++) {
		r[w].f = &f;
		r[w].w = w;
		assert_int_equal(pthread_create(&t[w], NULL, race3_writer, &r[w]), 0);
	}
	for (int w = 0; w < NWRITERS; w++) {
		pthread_join(t[w], NULL);
		refused += r[w].refused;
	}
	struct dbi_registry_stats st;
	dbi_registry_get_stats(f.reg, &st);
	assert_int_equal(st.series, NLIMIT);
	assert_int_equal(dbi_series_max_id(f.reg), NLIMIT);
	assert_int_equal(st.series_limit_hits, refused);
	assert_true(dbi_registry_series_full(f.reg));
	for (uint32_t v = 0; v < 2 * NLIMIT; v++)
		for (int w = 0; w < NWRITERS; w++) {
			uint32_t id = r[w].ids[v];
			if (id) {
				assert_in_range(id, 1, NLIMIT);
				assert_int_equal(dbi_series_get(f.reg, id)->attrs, f.attrs[v]);
			}
		}
	fixture_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_attrs),
	        cmocka_unit_test(test_metrics_and_series),
	        cmocka_unit_test(test_hash_is_content_based),
	        cmocka_unit_test(test_concurrent),
	        cmocka_unit_test(test_series_across_chunks),
	        cmocka_unit_test(test_concurrent_overlapping),
	        cmocka_unit_test(test_concurrent_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
