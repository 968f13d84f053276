/*
 * test_zero_alloc.c — the hot path allocates nothing in steady state. A real pipeline
 * (loadgen receiver → batch → nop exporter, all runtime threads) runs flat out; after a
 * warm-up, each pipeline thread's cumulative allocated bytes (jemalloc's per-thread
 * `thread.allocated`, which the runtime publishes in the thread's shm region) must not
 * move while many more batches pass. Needs jemalloc: skipped in sanitizer builds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/runtime.h"
#include "dbi/shm.h"
#include "dbi/stats.h"

#ifdef DBI_HAVE_JEMALLOC
static const char *threads[] = {"rcv:loadgen#0", "proc#0", "exp:nop"};

static int read_allocated(struct dbi_shm *shm, uint64_t out[3])
{
	uint32_t n;
	const struct dbi_shm_region *r = dbi_shm_regions(shm, &n);
	int found = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (r[i].kind != DBI_REGION_THREAD)
			continue;
		const struct dbi_shm_thread *t = dbi_shm_region_ptr(shm, &r[i]);
		for (int k = 0; k < 3; k++)
			if (strcmp(t->name, threads[k]) == 0) {
				out[k] = atomic_load(&t->allocated_bytes);
				found++;
			}
	}
	return found;
}

static uint64_t batches(struct dbi_shm *shm)
{
	uint32_t n;
	const struct dbi_shm_region *r = dbi_shm_regions(shm, &n);
	for (uint32_t i = 0; i < n; i++) {
		if (r[i].kind != DBI_REGION_STATS)
			continue;
		const struct dbi_stats_block *b = dbi_shm_region_ptr(shm, &r[i]);
		if (strcmp(b->id, "exporter:nop") == 0)
			return __atomic_load_n(&b->v[2], __ATOMIC_ACQUIRE); /* "batches" */
	}
	return 0;
}

#endif

static void test_steady_state_allocates_nothing(void **state)
{
	(void)state;
#ifndef DBI_HAVE_JEMALLOC
	skip();
#else
	char yaml[1024];
	snprintf(yaml, sizeof(yaml),
	         "receivers: {loadgen: {targets: 50, series_per_target: 100, rate: 0}}\n"
	         "processors: {batch: {send_batch_size: 2048, timeout: 50ms}}\n"
	         "exporters: {nop: }\n"
	         "service: {pipelines: {metrics: {receivers: [loadgen], processors: [batch], exporters: [nop]}}}\n"
	         "runtime: {shm: {name: dbi.test.zeroalloc.%d}, rings: {points: 16384, bytes: 1MiB}}\n",
	         (int)getpid());
	struct dbi_errbuf err;
	struct dbi_config *cfg = NULL;
	struct dbi_runtime *rt = NULL;
	dbi_err_clear(&err);
	assert_int_equal(dbi_config_load_string(yaml, "<test>", dbi_components, &cfg, &err), DBI_OK);
	assert_int_equal(dbi_runtime_create(&rt, cfg, NULL, &err), DBI_OK);
	assert_int_equal(dbi_runtime_start(rt, &err), DBI_OK);
	struct dbi_shm *shm = dbi_runtime_shm(rt);

	/* warm up: every series seen, every buffer touched */
	uint64_t t0 = dbi_mono_ns();
	while (batches(shm) < 200 && dbi_mono_ns() - t0 < 20 * DBI_NSEC_PER_SEC)
		dbi_sleep_ns(10 * DBI_NSEC_PER_MSEC);
	dbi_sleep_ns(300 * DBI_NSEC_PER_MSEC);

	uint64_t a[3] = {0}, b[3] = {0};
	assert_int_equal(read_allocated(shm, a), 3);
	uint64_t b0 = batches(shm);
	t0 = dbi_mono_ns();
	while (batches(shm) < b0 + 1000 && dbi_mono_ns() - t0 < 30 * DBI_NSEC_PER_SEC)
		dbi_sleep_ns(10 * DBI_NSEC_PER_MSEC);
	dbi_sleep_ns(100 * DBI_NSEC_PER_MSEC); /* let the threads publish their counters */
	assert_int_equal(read_allocated(shm, b), 3);
	uint64_t passed = batches(shm) - b0;
	printf("# %llu batches (~%llu points) passed; allocated bytes: loadgen %llu→%llu proc %llu→%llu "
	       "exporter %llu→%llu\n",
	       (unsigned long long)passed, (unsigned long long)passed * 2048, (unsigned long long)a[0],
	       (unsigned long long)b[0], (unsigned long long)a[1], (unsigned long long)b[1], (unsigned long long)a[2],
	       (unsigned long long)b[2]);
	assert_true(passed >= 1000);
	/* the counters are live: loadgen's thread allocated its state once, at start */
	assert_true(a[0] > 0);
	for (int k = 0; k < 3; k++)
		assert_int_equal(a[k], b[k]);

	assert_int_equal(dbi_runtime_stop(rt, 5 * DBI_NSEC_PER_SEC), DBI_OK);
	dbi_runtime_destroy(rt);
	dbi_config_free(cfg);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_steady_state_allocates_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
