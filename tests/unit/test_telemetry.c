/*
 * test_telemetry.c — the self-telemetry page from a real segment: component, thread and
 * runtime stats blocks (labels parsed from block ids, dropped.* as a reason label, _ns
 * as seconds, HELP from the component's declaration), point and byte rings, thread
 * records, process facts; each family written once, its samples together. That real
 * Prometheus tools accept the page is checked by test_prometheus_interop.py.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/record.h"
#include "dbi/ring.h"
#include "dbi/shm.h"
#include "dbi/stats.h"
#include "dbi/telemetry.h"

static char g_dir[PATH_MAX];

static int group_setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/dev/shm/dbi-test-tel.XXXXXX");
	return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[PATH_MAX + 16];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void has_line(const char *page, const char *line)
{
	size_t n = strlen(line);
	for (const char *s = page; (s = strstr(s, line)) != NULL; s++)
		if ((s == page || s[-1] == '\n') && s[n] == '\n')
			return;
	fprintf(stderr, "--- page ---\n%s--- end ---\n", page); /* cmocka truncates long messages */
	fail_msg("line not on page: %s", line);
}

static struct dbi_stats *block(struct dbi_shm *shm, int kind, const char *id, const char *type,
                               const struct dbi_stat_def *defs)
{
	static struct dbi_stats st[8];
	static int n;
	char region[DBI_SHM_REGION_NAME];
	snprintf(region, sizeof(region), "stats:%s", id);
	struct dbi_stats_block *b = dbi_shm_alloc(shm, DBI_REGION_STATS, region, sizeof(*b), id, "");
	assert_non_null(b);
	assert_true(n < 8);
	struct dbi_stats *s = &st[n++];
	assert_int_equal(dbi_stats_init(s, b, (enum dbi_stats_kind)kind, id, type, defs), DBI_OK);
	return s;
}

static void test_page(void **state)
{
	(void)state;
	struct dbi_errbuf err;
	struct dbi_shm *shm = NULL;
	char name[64];
	snprintf(name, sizeof(name), "t%d.tel", (int)getpid());
	struct dbi_shm_opts o = {
	        .name = name, .dir = g_dir, .hugepages = DBI_HP_OFF, .size = 8ULL << 20, .version = "9.9 test"};
	dbi_err_clear(&err);
	assert_int_equal(dbi_shm_create(&shm, &o, &err), DBI_OK);

	const struct dbi_component *lg = dbi_component_find("loadgen", DBI_RECEIVER);
	const struct dbi_component *batch = dbi_component_find("batch", DBI_PROCESSOR);
	assert_non_null(lg);
	assert_non_null(batch);
	struct dbi_stats *rs = block(shm, DBI_SK_RECEIVER, "receiver:loadgen/x#1", "loadgen", lg->stats);
	dbi_stats_set(rs, (unsigned)dbi_stats_index(rs, "emitted"), 5);
	dbi_stats_set(rs, (unsigned)dbi_stats_index(rs, "dropped.ring_full"), 2);
	dbi_stats_publish(rs);
	struct dbi_stats *ps = block(shm, DBI_SK_PROCESSOR, "processor:batch@metrics#0", "batch", batch->stats);
	dbi_stats_publish(ps);
	static const struct dbi_stat_def tdefs[] = {{"work_ns", DBI_STAT_COUNTER, "x"},
	                                            {"dropped.too_large", DBI_STAT_COUNTER, "y"},
	                                            {"queue", DBI_STAT_GAUGE, "z"},
	                                            {NULL, 0, NULL}};
	struct dbi_stats *ts = block(shm, DBI_SK_THREAD, "thread:proc#0", "thread", tdefs);
	dbi_stats_set(ts, 0, 1500000000);
	dbi_stats_set(ts, 1, 3);
	dbi_stats_set(ts, 2, 17);
	dbi_stats_publish(ts);
	static const struct dbi_stat_def rdefs[] = {{"uptime_seconds", DBI_STAT_GAUGE, "u"}, {NULL, 0, NULL}};
	struct dbi_stats *us = block(shm, DBI_SK_RUNTIME, "runtime", "runtime", rdefs);
	dbi_stats_set(us, 0, 42);
	dbi_stats_publish(us);

	struct dbi_ring *ring = dbi_shm_alloc(shm, DBI_REGION_RING, "ring:rcv:a#0>proc#0",
	                                      dbi_ring_memsize(64, sizeof(struct dbi_point)), "rcv:a#0", "proc#0");
	assert_non_null(ring);
	assert_int_equal(dbi_ring_init(ring, "a>b", 64, sizeof(struct dbi_point)), DBI_OK);
	struct dbi_point pts[3] = {0};
	assert_int_equal(dbi_ring_enqueue_burst(ring, pts, 3, sizeof(struct dbi_point)), 3);
	assert_int_equal(dbi_ring_dequeue_burst(ring, pts, 1, sizeof(struct dbi_point)), 1);
	struct dbi_bring *br = dbi_shm_alloc(shm, DBI_REGION_BRING, "bring:rcv:a#0>proc#0", dbi_bring_memsize(4096),
	                                     "rcv:a#0", "proc#0");
	assert_non_null(br);
	assert_int_equal(dbi_bring_init(br, "a>b", 4096), DBI_OK);
	assert_non_null(dbi_bring_reserve(br, 64));
	dbi_bring_publish(br);
	struct dbi_shm_thread *th =
	        dbi_shm_alloc(shm, DBI_REGION_THREAD, "thread:proc#0", sizeof(struct dbi_shm_thread), "proc#0", "");
	assert_non_null(th);
	dbi_strlcpy(th->name, "proc#0", sizeof(th->name));
	th->role = DBI_PROCESSOR;
	atomic_store(&th->cpu_ns, 2500000000ULL);
	atomic_store(&th->busy_ns, 500000000ULL);
	atomic_store(&th->allocated_bytes, 4096);

	char *page;
	size_t len;
	assert_int_equal(dbi_telemetry_render(shm, &page, &len), DBI_OK);
	assert_int_equal(strlen(page), len);
	has_line(page, "# HELP dbi_component_emitted_total points emitted into the pipeline");
	has_line(page, "# TYPE dbi_component_emitted_total counter");
	has_line(page, "dbi_component_emitted_total{component=\"loadgen/x\",kind=\"receiver\",type=\"loadgen\","
	               "thread=\"rcv:loadgen/x#1\"} 5");
	has_line(page, "dbi_component_dropped_total{component=\"loadgen/x\",kind=\"receiver\",type=\"loadgen\","
	               "thread=\"rcv:loadgen/x#1\",reason=\"ring_full\"} 2");
	has_line(page, "dbi_component_points_total{component=\"batch\",kind=\"processor\",type=\"batch\","
	               "pipeline=\"metrics\",thread=\"proc#0\"} 0");
	has_line(page, "dbi_thread_work_seconds_total{thread=\"proc#0\"} 1.5");
	has_line(page, "dbi_thread_dropped_total{thread=\"proc#0\",reason=\"too_large\"} 3");
	has_line(page, "# TYPE dbi_thread_queue gauge");
	has_line(page, "dbi_thread_queue{thread=\"proc#0\"} 17");
	has_line(page, "dbi_runtime_uptime_seconds 42");
	has_line(page, "dbi_ring_capacity{ring=\"rcv:a#0>proc#0\",producer=\"rcv:a#0\",consumer=\"proc#0\"} 64");
	has_line(page, "dbi_ring_depth{ring=\"rcv:a#0>proc#0\",producer=\"rcv:a#0\",consumer=\"proc#0\"} 2");
	has_line(page, "dbi_ring_enqueued_total{ring=\"rcv:a#0>proc#0\",producer=\"rcv:a#0\",consumer=\"proc#0\"} 3");
	has_line(page, "dbi_ring_dequeued_total{ring=\"rcv:a#0>proc#0\",producer=\"rcv:a#0\",consumer=\"proc#0\"} 1");
	has_line(page,
	         "dbi_byte_ring_enqueued_total{ring=\"rcv:a#0>proc#0\",producer=\"rcv:a#0\",consumer=\"proc#0\"} 1");
	/* 64 bytes of record plus the byte ring's own 8-byte length word */
	has_line(page, "dbi_byte_ring_used_bytes{ring=\"rcv:a#0>proc#0\",producer=\"rcv:a#0\",consumer=\"proc#0\"} 72");
	has_line(page, "dbi_thread_cpu_seconds_total{thread=\"proc#0\",kind=\"processor\"} 2.5");
	has_line(page, "dbi_thread_busy_seconds_total{thread=\"proc#0\",kind=\"processor\"} 0.5");
	has_line(page, "dbi_thread_allocated_bytes_total{thread=\"proc#0\",kind=\"processor\"} 4096");
	has_line(page, "dbi_build_info{version=\"9.9 test\"} 1");
	assert_non_null(strstr(page, "\ndbi_process_resident_memory_bytes "));
	assert_non_null(strstr(page, "\ndbi_process_cpu_seconds_total "));
	/* no heartbeat yet: no age */
	assert_null(strstr(page, "dbi_thread_heartbeat_age_seconds"));

	/* every family once, with all of its samples right after its TYPE line */
	for (const char *t = page; (t = strstr(t, "# TYPE ")) != NULL; t++) {
		char fam[128], again[160];
		assert_int_equal(sscanf(t + 7, "%127s", fam), 1);
		snprintf(again, sizeof(again), "# TYPE %s ", fam);
		assert_null(strstr(t + 1, again));
		const char *next = strstr(t + 1, "# HELP ");
		for (const char *s = next; s && (s = strstr(s, "\n")) != NULL; s++) {
			size_t fl = strlen(fam);
			if (strncmp(s + 1, fam, fl) == 0 && (s[1 + fl] == '{' || s[1 + fl] == ' '))
				fail_msg("samples of %s are not together", fam);
		}
	}
	free(page);

	/* after a reset the page has only process facts */
	dbi_shm_reset(shm);
	assert_int_equal(dbi_telemetry_render(shm, &page, &len), DBI_OK);
	assert_null(strstr(page, "dbi_component_"));
	assert_non_null(strstr(page, "dbi_process_uptime_seconds"));
	free(page);
	dbi_shm_destroy(shm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_page),
	};
	return cmocka_run_group_tests_name("telemetry", tests, group_setup, group_teardown);
}
