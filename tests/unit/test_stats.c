/*
 * test_stats.c — stats blocks: init limits, index lookup, publish/snapshot, and a
 * two-thread torture test of the seqlock: the writer keeps every counter equal, so a
 * reader that ever sees two different values has seen a torn snapshot. Run it under
 * ThreadSanitizer too (build-tsan): the scheme must have no data race.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbi/stats.h"

#ifdef DBI_TSAN
#define TORTURE_ROUNDS 20000
#else
#define TORTURE_ROUNDS 400000
#endif

static const struct dbi_stat_def defs[] = {
        {"received", DBI_STAT_COUNTER, "points received"},
        {"dropped.ring_full", DBI_STAT_COUNTER, "points dropped: ring full"},
        {"queue_depth", DBI_STAT_GAUGE, "points waiting"},
        {NULL, 0, NULL},
};

static struct dbi_stats_block *new_block(void)
{
	struct dbi_stats_block *b = aligned_alloc(64, DBI_ALIGN_UP(sizeof(*b), 64));
	assert_non_null(b);
	memset(b, 0, sizeof(*b));
	return b;
}

static void test_init_and_index(void **state)
{
	struct dbi_stats st;
	struct dbi_stats_block *b = new_block();
	(void)state;
	assert_int_equal(dbi_stats_init(&st, b, DBI_SK_EXPORTER, "otlphttp/newrelic", "otlphttp", defs), DBI_OK);
	assert_int_equal(st.n, 3);
	assert_int_equal(b->n, 3);
	assert_int_equal(b->kind, DBI_SK_EXPORTER);
	assert_string_equal(b->id, "otlphttp/newrelic");
	assert_string_equal(b->type, "otlphttp");
	assert_string_equal(b->names[1], "dropped.ring_full");
	assert_int_equal(b->types[2], DBI_STAT_GAUGE);
	assert_int_equal(atomic_load(&b->seq) & 1, 0);
	assert_int_equal(dbi_stats_index(&st, "received"), 0);
	assert_int_equal(dbi_stats_index(&st, "queue_depth"), 2);
	assert_int_equal(dbi_stats_index(&st, "nope"), -1);
	assert_string_equal(dbi_stats_kind_name(DBI_SK_EXPORTER), "exporters");
	assert_string_equal(dbi_stats_kind_name(DBI_SK_RUNTIME), "runtime");

	/* no counters at all is fine (the runtime gives some components none) */
	static const struct dbi_stat_def none[] = {{NULL, 0, NULL}};
	assert_int_equal(dbi_stats_init(&st, b, DBI_SK_EXTENSION, "health_check", "health_check", none), DBI_OK);
	assert_int_equal(b->n, 0);
	free(b);
}

static void test_init_limits(void **state)
{
	struct dbi_stats st;
	struct dbi_stats_block *b = new_block();
	struct dbi_stat_def many[DBI_STATS_MAX + 2];
	char names[DBI_STATS_MAX + 1][16];
	(void)state;
	for (int i = 0; i <= DBI_STATS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "c%d", i);
		many[i] = (struct dbi_stat_def){names[i], DBI_STAT_COUNTER, ""};
	}
	many[DBI_STATS_MAX + 1] = (struct dbi_stat_def){NULL, 0, NULL};
	assert_int_equal(dbi_stats_init(&st, b, DBI_SK_RUNTIME, "x", "x", many), DBI_ERR);
	many[DBI_STATS_MAX] = (struct dbi_stat_def){NULL, 0, NULL};
	assert_int_equal(dbi_stats_init(&st, b, DBI_SK_RUNTIME, "x", "x", many), DBI_OK);
	assert_int_equal(st.n, DBI_STATS_MAX);

	static const struct dbi_stat_def longname[] = {
	        {"a.counter.name.that.is.far.too.long.to.fit", DBI_STAT_COUNTER, ""}, {NULL, 0, NULL}};
	assert_int_equal(dbi_stats_init(&st, b, DBI_SK_RUNTIME, "x", "x", longname), DBI_ERR);
	free(b);
}

static void test_publish_snapshot(void **state)
{
	struct dbi_stats st;
	struct dbi_stats_block *b = new_block(), snap;
	(void)state;
	assert_int_equal(dbi_stats_init(&st, b, DBI_SK_PROCESSOR, "batch@metrics#0", "batch", defs), DBI_OK);
	dbi_stats_add(&st, 0, 10);
	dbi_stats_add(&st, 1, 2);
	dbi_stats_set(&st, 2, 99);
	/* nothing is visible before publish: the hot path only touches local memory */
	assert_int_equal(dbi_stats_snapshot(b, &snap), DBI_OK);
	assert_int_equal(snap.v[0], 0);
	dbi_stats_publish(&st);
	assert_int_equal(dbi_stats_snapshot(b, &snap), DBI_OK);
	assert_int_equal(snap.n, 3);
	assert_int_equal(snap.v[0], 10);
	assert_int_equal(snap.v[1], 2);
	assert_int_equal(snap.v[2], 99);
	assert_string_equal(snap.id, "batch@metrics#0");
	assert_string_equal(snap.names[2], "queue_depth");
	assert_true(snap.updated_ns > 0);
	assert_int_equal(dbi_stats_get(&st, 0), 10);

	/* a writer stuck mid-update: the reader gives up rather than returning torn data */
	uint64_t q = atomic_load(&b->seq);
	atomic_store(&b->seq, q + 1);
	assert_int_equal(dbi_stats_snapshot(b, &snap), DBI_AGAIN);
	atomic_store(&b->seq, q + 2);
	assert_int_equal(dbi_stats_snapshot(b, &snap), DBI_OK);

	/* shared (multi-writer) counters bypass the seqlock */
	dbi_stats_add_shared(&st, 1, 5);
	assert_int_equal(dbi_stats_snapshot(b, &snap), DBI_OK);
	assert_int_equal(snap.v[1], 7);
	free(b);
}

struct torture {
	struct dbi_stats st;
	struct dbi_stats_block *blk;
	_Atomic int done;
};

static void *torture_writer(void *arg)
{
	struct torture *t = arg;
	for (uint64_t round = 1; round <= TORTURE_ROUNDS; round++) {
		for (unsigned i = 0; i < t->st.n; i++)
			dbi_stats_set(&t->st, i, round);
		dbi_stats_publish(&t->st);
	}
	atomic_store(&t->done, 1);
	return NULL;
}

static void test_torture_two_threads(void **state)
{
	static struct dbi_stat_def all[DBI_STATS_MAX + 1];
	static char names[DBI_STATS_MAX][16];
	struct torture t = {0};
	struct dbi_stats_block snap;
	pthread_t th;
	uint64_t ok = 0, again = 0, torn = 0, backwards = 0, last = 0;
	(void)state;
	/* every slot in use: the widest window for a torn read */
	for (int i = 0; i < DBI_STATS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "c%d", i);
		all[i] = (struct dbi_stat_def){names[i], DBI_STAT_COUNTER, ""};
	}
	t.blk = new_block();
	assert_int_equal(dbi_stats_init(&t.st, t.blk, DBI_SK_THREAD, "thread:proc#0", "thread", all), DBI_OK);
	assert_int_equal(pthread_create(&th, NULL, torture_writer, &t), 0);
	while (!atomic_load(&t.done)) {
		if (dbi_stats_snapshot(t.blk, &snap) != DBI_OK) {
			again++;
			continue;
		}
		ok++;
		for (unsigned i = 1; i < snap.n; i++)
			torn += snap.v[i] != snap.v[0];
		backwards += snap.v[0] < last;
		last = snap.v[0];
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(dbi_stats_snapshot(t.blk, &snap), DBI_OK);
	print_message("torture: %llu consistent snapshots, %llu gave up, last round %llu\n", (unsigned long long)ok,
	              (unsigned long long)again, (unsigned long long)snap.v[0]);
	assert_int_equal(torn, 0);
	assert_int_equal(backwards, 0);
	assert_true(ok > 0);
	assert_int_equal(snap.v[0], TORTURE_ROUNDS);
	assert_int_equal(snap.v[DBI_STATS_MAX - 1], TORTURE_ROUNDS);
	free(t.blk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_init_and_index),
	        cmocka_unit_test(test_init_limits),
	        cmocka_unit_test(test_publish_snapshot),
	        cmocka_unit_test(test_torture_two_threads),
	};
	return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
