/*
 * test_circuit.c — circuit breakers with an injected clock: every transition rule
 * (failure count, error ratio with a minimum of calls, refused and timeouts at once, slow
 * calls, the probe schedule 60 s → ×2 → 5 min cap, the half-open ramp PROBE → ALLOW,
 * failures in half-open), overrides and resets, settings (config map embedding, changes
 * at run time, disabling), the state file (round trip, stale entries, corrupt, truncated,
 * foreign and future files), the log lines, the metrics, and a reader, an admin and a
 * saver racing the owner (run it under ThreadSanitizer too: build-tsan).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbi/circuit.h"
#include "dbi/component.h"
#include "dbi/log.h"
#include "dbi/record.h"
#include "dbi/registry.h"
#include "dbi/statedir.h"

#define S (1000000000ULL)
#define T0 (1800000000ULL * S) /* an arbitrary wall-clock instant */

#ifdef DBI_TSAN
#define RACE_ROUNDS 20000
#else
#define RACE_ROUNDS 1000000
#endif

static char g_dir[64];
static FILE *g_log;

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/dbi-test-circuit-XXXXXX");
	if (!mkdtemp(g_dir))
		return -1;
	g_log = tmpfile();
	dbi_log_set_stream(g_log);
	dbi_log_set_rate(0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	dbi_log_set_stream(NULL);
	fclose(g_log);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Everything logged since the last call. */
static char *log_text(void)
{
	static char buf[1 << 16];
	fflush(g_log);
	rewind(g_log);
	size_t n = fread(buf, 1, sizeof(buf) - 1, g_log);
	buf[n] = '\0';
	rewind(g_log);
	if (ftruncate(fileno(g_log), 0) != 0)
		fail_msg("cannot truncate the log");
	return buf;
}

static struct dbi_circuit_conf defaults(void)
{
	struct dbi_circuit_conf c;
	dbi_circuit_conf_defaults(&c);
	return c;
}

static struct dbi_circuit_table *table(const struct dbi_circuit_conf *conf, const char *path)
{
	struct dbi_circuit_table *t = NULL;
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	assert_int_equal(dbi_circuit_table_create(&t, NULL, "pgtest", 16, conf, path, &err), DBI_OK);
	assert_non_null(t);
	return t;
}

static struct dbi_circuit_view view(const struct dbi_circuit *c)
{
	struct dbi_circuit_view v;
	assert_int_equal(dbi_circuit_snapshot(c, &v), DBI_OK);
	return v;
}

static enum dbi_circuit_state state_of(const struct dbi_circuit *c)
{
	return view(c).state;
}

/* One scrape: ask, and if allowed record r. Returns the decision. */
static enum dbi_circuit_decision scrape(struct dbi_circuit *c, uint64_t now, enum dbi_circuit_result r)
{
	enum dbi_circuit_decision d = dbi_circuit_allow(c, now);
	if (d != DBI_CIRCUIT_DENY)
		dbi_circuit_record(c, r, 10 * DBI_NSEC_PER_MSEC, now, r == DBI_CIRCUIT_OK ? NULL : "boom");
	return d;
}

/* ---- settings ---- */

struct wrapped {
	int64_t other;
	struct dbi_circuit_conf cb;
};

static const struct dbi_conf_key wrapped_keys[] = {
        {.name = "other", .type = DBI_CT_INT, .offset = offsetof(struct wrapped, other), .def = "7"},
        DBI_CIRCUIT_CONF_KEYS("circuit_breaker.", offsetof(struct wrapped, cb)),
        DBI_CONF_END,
};

static const struct dbi_component wrapped_rcv = {
        .type = "cbtest",
        .kind = DBI_RECEIVER,
        .signals = DBI_SIG_METRICS,
        .doc = "receiver embedding the circuit breaker keys",
        .keys = wrapped_keys,
        .conf_size = sizeof(struct wrapped),
};

static const struct dbi_component sink_exp = {
        .type = "sink",
        .kind = DBI_EXPORTER,
        .signals = DBI_SIG_METRICS,
        .doc = "exporter without settings",
};

static const struct dbi_component *const registry[] = {&wrapped_rcv, &sink_exp, NULL};

static void test_conf(void **state)
{
	(void)state;
	struct dbi_circuit_conf c = defaults();
	assert_true(c.enabled);
	assert_int_equal(c.failure_threshold, 5);
	assert_int_equal(c.failure_window_ns, 30 * S);
	assert_true(c.error_ratio == 0.5);
	assert_int_equal(c.min_requests, 10);
	assert_int_equal(c.open_initial_ns, 60 * S);
	assert_int_equal(c.open_max_ns, 300 * S);
	assert_true(c.backoff_multiplier == 2.0);
	assert_int_equal(c.half_open_successes, 3);
	assert_int_equal(c.slow_call_ns, 5 * S);
	assert_true(c.open_on_timeout);

	struct dbi_errbuf err;
	dbi_err_clear(&err);
	assert_int_equal(dbi_circuit_conf_check(&c, "x", &err), DBI_OK);
	c.open_initial_ns = 10 * 60 * S;
	assert_int_equal(dbi_circuit_conf_check(&c, "receivers.pg", &err), DBI_ERR);
	assert_non_null(strstr(err.msg, "receivers.pg: open_duration (10m"));
	c = defaults();
	c.backoff_multiplier = 0.5;
	assert_int_equal(dbi_circuit_conf_check(&c, "x", &err), DBI_ERR);

	/* the same keys under a prefix, at an offset, through the real loader */
	struct dbi_config *cfg = NULL;
	dbi_err_clear(&err);
	static const char yaml[] = "receivers:\n"
	                           "  cbtest:\n"
	                           "    circuit_breaker: {failure_threshold: 7, open_duration: 2m, error_ratio: 0.25,\n"
	                           "                      slow_call: 0s, open_on_timeout: false}\n"
	                           "exporters:\n  sink:\n"
	                           "service:\n  pipelines:\n    metrics: {receivers: [cbtest], exporters: [sink]}\n";
	assert_int_equal(dbi_config_load_string(yaml, "t.yaml", registry, &cfg, &err), DBI_OK);
	const struct wrapped *w = dbi_config_find(cfg, "cbtest")->cfg;
	assert_int_equal(w->other, 7);
	assert_int_equal(w->cb.failure_threshold, 7);
	assert_int_equal(w->cb.open_initial_ns, 120 * S);
	assert_true(w->cb.error_ratio == 0.25);
	assert_int_equal(w->cb.slow_call_ns, 0);
	assert_false(w->cb.open_on_timeout);
	assert_int_equal(w->cb.open_max_ns, 300 * S); /* defaults for the rest */
	assert_int_equal(w->cb.half_open_successes, 3);
	dbi_config_free(cfg);

	/* unknown keys and ranges are reported where they are */
	dbi_err_clear(&err);
	static const char bad[] = "receivers:\n"
	                          "  cbtest:\n"
	                          "    circuit_breaker: {failure_treshold: 7, error_ratio: 2}\n"
	                          "exporters:\n  sink:\n"
	                          "service:\n  pipelines:\n    metrics: {receivers: [cbtest], exporters: [sink]}\n";
	assert_int_equal(dbi_config_load_string(bad, "t.yaml", registry, &cfg, &err), DBI_ERR);
	assert_non_null(strstr(err.msg, "unknown key 'failure_treshold'"));
	assert_non_null(strstr(err.msg, "error_ratio: 2 is out of range"));
}

/* ---- rules ---- */

static void test_count_rule(void **state)
{
	(void)state;
	struct dbi_circuit_conf conf = defaults();
	struct dbi_circuit_table *t = table(&conf, NULL);
	struct dbi_circuit *c = dbi_circuit_get(t, "db1:5432");
	assert_non_null(c);
	assert_int_equal(state_of(c), DBI_CIRCUIT_CLOSED);

	/* 4 failures in 30 s (with successes between, so the ratio rule stays out of it) */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(scrape(c, T0 + (uint64_t)i * 5 * S, DBI_CIRCUIT_FAIL), DBI_CIRCUIT_ALLOW);
		assert_int_equal(scrape(c, T0 + (uint64_t)i * 5 * S + S, DBI_CIRCUIT_OK), DBI_CIRCUIT_ALLOW);
	}
	assert_int_equal(state_of(c), DBI_CIRCUIT_CLOSED);
	assert_int_equal(view(c).window_failures, 4);
	/* the 5th at 29 s: the first was at 0 s, still inside the window */
	scrape(c, T0 + 29 * S, DBI_CIRCUIT_FAIL);
	struct dbi_circuit_view v = view(c);
	assert_int_equal(v.state, DBI_CIRCUIT_OPEN);
	assert_int_equal(v.transitions, 1);
	assert_int_equal(v.failures, 5);
	assert_int_equal(v.successes, 4);
	assert_non_null(strstr(v.last_reason, "5 failures within 30s"));
	assert_string_equal(v.last_error, "fail: boom");
	assert_int_equal(v.open_until_wall_ns, T0 + 29 * S + 60 * S);
	assert_int_equal(dbi_circuit_allow(c, T0 + 30 * S), DBI_CIRCUIT_DENY);
	assert_int_equal(view(c).denied, 1);
	dbi_circuit_table_destroy(t);

	/* the same five failures spread over more than 30 s do not open it */
	t = table(&conf, NULL);
	c = dbi_circuit_get(t, "db1:5432");
	for (int i = 0; i < 5; i++)
		scrape(c, T0 + (uint64_t)i * 8 * S, DBI_CIRCUIT_FAIL); /* 0, 8, 16, 24, 32 s */
	v = view(c);
	assert_int_equal(v.state, DBI_CIRCUIT_CLOSED);
	assert_int_equal(v.window_failures, 4); /* the one at 0 s fell out */
	scrape(c, T0 + 33 * S, DBI_CIRCUIT_FAIL);
	assert_int_equal(state_of(c), DBI_CIRCUIT_OPEN);
	dbi_circuit_table_destroy(t);
}

static void test_ratio_rule(void **state)
{
	(void)state;
	struct dbi_circuit_conf conf = defaults();
	conf.failure_threshold = DBI_CIRCUIT_WINDOW; /* only the ratio rule */
	struct dbi_circuit_table *t = table(&conf, NULL);
	struct dbi_circuit *c = dbi_circuit_get(t, "db1:5432");

	/* 5 of 9 calls failed (55 %): not enough calls yet */
	uint64_t now = T0;
	for (int i = 0; i < 9; i++, now += S)
		scrape(c, now, i % 2 == 0 ? DBI_CIRCUIT_FAIL : DBI_CIRCUIT_OK);
	struct dbi_circuit_view v = view(c);
	assert_int_equal(v.state, DBI_CIRCUIT_CLOSED);
	assert_int_equal(v.window_calls, 9);
	assert_int_equal(v.window_failures, 5);
	/* the 10th call succeeds: 5 of 10 is exactly 50 %, but rules are checked on failures */
	scrape(c, now, DBI_CIRCUIT_OK);
	now += S;
	assert_int_equal(state_of(c), DBI_CIRCUIT_CLOSED);
	/* 11th fails: 6 of 11 >= 50 % */
	scrape(c, now, DBI_CIRCUIT_FAIL);
	v = view(c);
	assert_int_equal(v.state, DBI_CIRCUIT_OPEN);
	assert_non_null(strstr(v.last_reason, "6 of 11 calls failed"));
	dbi_circuit_table_destroy(t);

	/* below the ratio: 4 failures in 12 calls never opens */
	t = table(&conf, NULL);
	c = dbi_circuit_get(t, "db1:5432");
	now = T0;
	for (int i = 0; i < 12; i++, now += S)
		scrape(c, now, i % 3 == 0 ? DBI_CIRCUIT_FAIL : DBI_CIRCUIT_OK);
	assert_int_equal(state_of(c), DBI_CIRCUIT_CLOSED);
	/* exactly 50 % on a failure: 10 calls, 5 failed, the last one failing */
	dbi_circuit_table_destroy(t);
	t = table(&conf, NULL);
	c = dbi_circuit_get(t, "db1:5432");
	now = T0;
	for (int i = 0; i < 10; i++, now += S)
		scrape(c, now, i % 2 == 1 ? DBI_CIRCUIT_FAIL : DBI_CIRCUIT_OK);
	v = view(c);
	assert_int_equal(v.window_calls, 10);
	assert_int_equal(v.state, DBI_CIRCUIT_OPEN);
	dbi_circuit_table_destroy(t);

	/* calls older than the window do not count towards min_requests */
	t = table(&conf, NULL);
	c = dbi_circuit_get(t, "db1:5432");
	for (int i = 0; i < 8; i++)
		scrape(c, T0 + (uint64_t)i * S, DBI_CIRCUIT_FAIL);
	scrape(c, T0 + 100 * S, DBI_CIRCUIT_FAIL);
	scrape(c, T0 + 101 * S, DBI_CIRCUIT_FAIL);
	v = view(c);
	assert_int_equal(v.window_calls, 2);
	assert_int_equal(v.state, DBI_CIRCUIT_CLOSED);
	dbi_circuit_table_destroy(t);
}

static void test_refused_and_timeouts(void **state)
{
	(void)state;
	struct dbi_circuit_conf conf = defaults();
	struct dbi_circuit_table *t = table(&conf, NULL);
	struct dbi_circuit *a = dbi_circuit_get(t, "refused:5432");
	struct dbi_circuit *b = dbi_circuit_get(t, "timeout:5432");
	struct dbi_circuit *s = dbi_circuit_get(t, "slow:5432");
	struct dbi_circuit *f = dbi_circuit_get(t, "fast:5432");

	scrape(a, T0, DBI_CIRCUIT_REFUSED);
	assert_int_equal(state_of(a), DBI_CIRCUIT_OPEN);
	assert_string_equal(view(a).last_reason, "connection refused");
	scrape(b, T0, DBI_CIRCUIT_TIMEOUT);
	assert_int_equal(state_of(b), DBI_CIRCUIT_OPEN);
	assert_string_equal(view(b).last_reason, "timeout");

	/* an OK call slower than slow_call (5 s) is a timeout */
	assert_int_equal(dbi_circuit_allow(s, T0), DBI_CIRCUIT_ALLOW);
	dbi_circuit_record(s, DBI_CIRCUIT_OK, 5 * S + 1, T0, NULL);
	struct dbi_circuit_view v = view(s);
	assert_int_equal(v.state, DBI_CIRCUIT_OPEN);
	assert_int_equal(v.failures, 1);
	assert_int_equal(v.successes, 0);
	assert_non_null(strstr(v.last_error, "timeout: call took 5.000s"));
	assert_non_null(strstr(v.last_error, "(slow_call 5s)"));
	/* exactly 5 s is not slower than 5 s */
	dbi_circuit_record(f, DBI_CIRCUIT_OK, 5 * S, T0, NULL);
	assert_int_equal(view(f).successes, 1);
	assert_int_equal(state_of(f), DBI_CIRCUIT_CLOSED);
	dbi_circuit_table_destroy(t);

	/* open_on_timeout: false — a timeout is one failure for the window rules */
	conf.open_on_timeout = false;
	t = table(&conf, NULL);
	s = dbi_circuit_get(t, "slow:5432");
	for (int i = 0; i < 4; i++)
		dbi_circuit_record(s, DBI_CIRCUIT_OK, 6 * S, T0 + (uint64_t)i * S, NULL);
	v = view(s);
	assert_int_equal(v.state, DBI_CIRCUIT_CLOSED);
	assert_int_equal(v.failures, 4);
	dbi_circuit_record(s, DBI_CIRCUIT_TIMEOUT, S, T0 + 4 * S, "canceling statement due to statement timeout");
	v = view(s);
	assert_int_equal(v.state, DBI_CIRCUIT_OPEN);
	assert_non_null(strstr(v.last_reason, "5 failures"));
	assert_string_equal(v.last_error, "timeout: canceling statement due to statement timeout");
	dbi_circuit_table_destroy(t);

	/* slow_call 0: no limit */
	conf = defaults();
	conf.slow_call_ns = 0;
	t = table(&conf, NULL);
	s = dbi_circuit_get(t, "slow:5432");
	dbi_circuit_record(s, DBI_CIRCUIT_OK, 3600 * S, T0, NULL);
	assert_int_equal(state_of(s), DBI_CIRCUIT_CLOSED);
	dbi_circuit_table_destroy(t);
}

static void test_probe_schedule(void **state)
{
	(void)state;
	struct dbi_circuit_conf conf = defaults();
	struct dbi_circuit_table *t = table(&conf, NULL);
	struct dbi_circuit *c = dbi_circuit_get(t, "db1:5432");
	/* expected wait before each probe: 60 s, then ×2 up to the 5 min cap */
	static const uint64_t waits[] = {60, 120, 240, 300, 300};
	uint64_t now = T0;

	scrape(c, now, DBI_CIRCUIT_REFUSED);
	for (size_t i = 0; i < DBI_ARRAY_LEN(waits); i++) {
		struct dbi_circuit_view v = view(c);
		assert_int_equal(v.state, DBI_CIRCUIT_OPEN);
		assert_int_equal(v.backoff_ns, waits[i] * S);
		assert_int_equal(v.open_until_wall_ns, now + waits[i] * S);
		assert_int_equal(dbi_circuit_allow(c, now + waits[i] * S - 1), DBI_CIRCUIT_DENY);
		now += waits[i] * S;
		assert_int_equal(dbi_circuit_allow(c, now), DBI_CIRCUIT_PROBE);
		assert_int_equal(state_of(c), DBI_CIRCUIT_HALF_OPEN);
		assert_non_null(strstr(view(c).last_reason, "probe time reached"));
		dbi_circuit_record(c, DBI_CIRCUIT_FAIL, S, now, "still down");
	}
	/* closing resets the backoff: the next opening waits 60 s again */
	now += 300 * S;
	for (int i = 0; i < 3; i++)
		assert_int_not_equal(scrape(c, now + (uint64_t)i, DBI_CIRCUIT_OK), DBI_CIRCUIT_DENY);
	assert_int_equal(state_of(c), DBI_CIRCUIT_CLOSED);
	assert_int_equal(view(c).backoff_ns, 60 * S);
	scrape(c, now + 10 * S, DBI_CIRCUIT_REFUSED);
	assert_int_equal(view(c).open_until_wall_ns, now + 70 * S);
	/* closed → open, then 5 × (open → half-open → open), then half-open → closed → open */
	assert_int_equal(view(c).transitions, 1 + 2 * 5 + 2 + 1);
	dbi_circuit_table_destroy(t);
}

static void test_half_open_ramp(void **state)
{
	(void)state;
	struct {
		int64_t successes;
		const char *decisions; /* p = PROBE, a = ALLOW */
	} cases[] = {{3, "ppa"}, {1, "p"}, {2, "pa"}, {4, "ppaa"}, {5, "pppaa"}};
	for (size_t k = 0; k < DBI_ARRAY_LEN(cases); k++) {
		struct dbi_circuit_conf conf = defaults();
		conf.half_open_successes = cases[k].successes;
		struct dbi_circuit_table *t = table(&conf, NULL);
		struct dbi_circuit *c = dbi_circuit_get(t, "db1:5432");
		scrape(c, T0, DBI_CIRCUIT_REFUSED);
		uint64_t now = T0 + 60 * S;
		for (const char *d = cases[k].decisions; *d; d++, now += S) {
			assert_int_equal(state_of(c),
			                 d == cases[k].decisions ? DBI_CIRCUIT_OPEN : DBI_CIRCUIT_HALF_OPEN);
			enum dbi_circuit_decision got = dbi_circuit_allow(c, now);
			assert_int_equal(got, *d == 'p' ? DBI_CIRCUIT_PROBE : DBI_CIRCUIT_ALLOW);
			dbi_circuit_record(c, DBI_CIRCUIT_OK, S, now, NULL);
		}
		struct dbi_circuit_view v = view(c);
		assert_int_equal(v.state, DBI_CIRCUIT_CLOSED);
		assert_int_equal(v.transitions, 3);
		assert_int_equal(v.probes, (uint64_t)(cases[k].successes + 1) / 2);
		assert_int_equal(dbi_circuit_allow(c, now), DBI_CIRCUIT_ALLOW);
		dbi_circuit_table_destroy(t);
	}

	/* a failure in half-open, even after successes, reopens with a longer wait */
	struct dbi_circuit_conf conf = defaults();
	struct dbi_circuit_table *t = table(&conf, NULL);
	struct dbi_circuit *c = dbi_circuit_get(t, "db1:5432");
	scrape(c, T0, DBI_CIRCUIT_REFUSED);
	assert_int_equal(scrape(c, T0 + 60 * S, DBI_CIRCUIT_OK), DBI_CIRCUIT_PROBE);
	assert_int_equal(scrape(c, T0 + 61 * S, DBI_CIRCUIT_OK), DBI_CIRCUIT_PROBE);
	assert_int_equal(view(c).half_open_ok, 2);
	assert_int_equal(scrape(c, T0 + 62 * S, DBI_CIRCUIT_TIMEOUT), DBI_CIRCUIT_ALLOW);
	struct dbi_circuit_view v = view(c);
	assert_int_equal(v.state, DBI_CIRCUIT_OPEN);
	assert_int_equal(v.half_open_ok, 0);
	assert_int_equal(v.backoff_ns, 120 * S);
	assert_int_equal(v.open_until_wall_ns, T0 + 182 * S);
	assert_string_equal(v.last_reason, "half-open call failed (timeout)");
	/* the ramp starts over */
	assert_int_equal(scrape(c, T0 + 182 * S, DBI_CIRCUIT_OK), DBI_CIRCUIT_PROBE);
	dbi_circuit_table_destroy(t);
}

static void test_clock_jumps_back(void **state)
{
	(void)state;
	struct dbi_circuit_conf conf = defaults();
	struct dbi_circuit_table *t = table(&conf, NULL);
	struct dbi_circuit *c = dbi_circuit_get(t, "db1:5432");
	scrape(c, T0, DBI_CIRCUIT_REFUSED);
	uint64_t back = T0 - 3600 * S;
	assert_int_equal(dbi_circuit_allow(c, back), DBI_CIRCUIT_DENY);
	assert_int_equal(view(c).open_until_wall_ns, back + 60 * S);
	assert_int_equal(dbi_circuit_allow(c, back + 60 * S), DBI_CIRCUIT_PROBE);
	dbi_circuit_table_destroy(t);
}

/* ---- overrides, reset, settings changes ---- */

static void test_overrides(void **state)
{
	(void)state;
	struct dbi_circuit_conf conf = defaults();
	struct dbi_circuit_table *t = table(&conf, NULL);
	struct dbi_circuit *c = dbi_circuit_get(t, "db1:5432");
	log_text();

	/* requested: visible at once as pending; applied by the owner's next allow */
	dbi_circuit_override(c, DBI_CIRCUIT_FORCE_OPEN);
	struct dbi_circuit_view v = view(c);
	assert_int_equal(v.override, DBI_CIRCUIT_FORCE_OPEN);
	assert_int_equal(v.override_active, DBI_CIRCUIT_NO_OVERRIDE);
	assert_int_equal(v.state, DBI_CIRCUIT_CLOSED);
	assert_int_equal(dbi_circuit_view_effective(&v), DBI_CIRCUIT_OPEN);
	assert_int_equal(dbi_circuit_allow(c, T0), DBI_CIRCUIT_DENY);
	v = view(c);
	assert_int_equal(v.override_active, DBI_CIRCUIT_FORCE_OPEN);
	assert_int_equal(v.state, DBI_CIRCUIT_OPEN);
	assert_string_equal(v.last_reason, "forced open by admin");
	const char *log = log_text();
	assert_non_null(strstr(log, "target=db1:5432 from=closed to=open reason=\"forced open by admin\""));
	assert_non_null(strstr(log, "next_probe_in=never(forced)"));
	assert_non_null(strstr(log, "override=force_open"));
	/* forced open never probes */
	assert_int_equal(dbi_circuit_allow(c, T0 + 86400 * S), DBI_CIRCUIT_DENY);
	/* cleared: the normal schedule resumes; the probe time is long past */
	dbi_circuit_override(c, DBI_CIRCUIT_NO_OVERRIDE);
	assert_int_equal(dbi_circuit_allow(c, T0 + 86400 * S), DBI_CIRCUIT_PROBE);
	assert_int_equal(state_of(c), DBI_CIRCUIT_HALF_OPEN);

	/* forced closed: failures are counted and change nothing */
	dbi_circuit_override(c, DBI_CIRCUIT_FORCE_CLOSED);
	uint64_t now = T0 + 90000 * S;
	for (int i = 0; i < 20; i++)
		assert_int_equal(scrape(c, now + (uint64_t)i, DBI_CIRCUIT_REFUSED), DBI_CIRCUIT_ALLOW);
	v = view(c);
	assert_int_equal(v.state, DBI_CIRCUIT_CLOSED);
	assert_string_equal(v.last_reason, "forced closed by admin");
	assert_int_equal(v.failures, 20);
	/* back to automatic: the next refusal opens it */
	dbi_circuit_override(c, DBI_CIRCUIT_NO_OVERRIDE);
	assert_int_equal(scrape(c, now + 30, DBI_CIRCUIT_REFUSED), DBI_CIRCUIT_ALLOW);
	assert_int_equal(state_of(c), DBI_CIRCUIT_OPEN);
	/* out-of-range requests are ignored */
	dbi_circuit_override(c, (enum dbi_circuit_override)7);
	assert_int_equal(view(c).override, DBI_CIRCUIT_NO_OVERRIDE);
	dbi_circuit_table_destroy(t);
}

static void test_reset(void **state)
{
	(void)state;
	struct dbi_circuit_conf conf = defaults();
	struct dbi_circuit_table *t = table(&conf, NULL);
	struct dbi_circuit *c = dbi_circuit_get(t, "db1:5432");
	scrape(c, T0, DBI_CIRCUIT_REFUSED);
	scrape(c, T0 + 60 * S, DBI_CIRCUIT_FAIL); /* half-open fails: backoff 120 s */
	assert_int_equal(view(c).backoff_ns, 120 * S);
	dbi_circuit_override(c, DBI_CIRCUIT_FORCE_OPEN);
	assert_int_equal(dbi_circuit_allow(c, T0 + 61 * S), DBI_CIRCUIT_DENY);

	dbi_circuit_reset(c);
	struct dbi_circuit_view v = view(c);
	assert_true(v.reset_pending);
	assert_int_equal(v.override, DBI_CIRCUIT_NO_OVERRIDE);
	assert_int_equal(dbi_circuit_view_effective(&v), DBI_CIRCUIT_CLOSED);
	assert_int_equal(dbi_circuit_allow(c, T0 + 62 * S), DBI_CIRCUIT_ALLOW);
	v = view(c);
	assert_false(v.reset_pending);
	assert_int_equal(v.state, DBI_CIRCUIT_CLOSED);
	assert_int_equal(v.override_active, DBI_CIRCUIT_NO_OVERRIDE);
	assert_int_equal(v.backoff_ns, 60 * S);
	assert_int_equal(v.window_calls, 0);
	assert_string_equal(v.last_reason, "reset by admin");
	/* the window starts empty: 4 failures do not open it, the 5th does, for 60 s */
	for (int i = 0; i < 4; i++)
		scrape(c, T0 + 63 * S + (uint64_t)i, DBI_CIRCUIT_FAIL);
	assert_int_equal(state_of(c), DBI_CIRCUIT_CLOSED);
	scrape(c, T0 + 64 * S, DBI_CIRCUIT_FAIL);
	assert_int_equal(view(c).open_until_wall_ns, T0 + 124 * S);

	/* an override asked for after a reset (before the owner ran) survives it */
	dbi_circuit_reset(c);
	dbi_circuit_override(c, DBI_CIRCUIT_FORCE_OPEN);
	assert_int_equal(dbi_circuit_allow(c, T0 + 65 * S), DBI_CIRCUIT_DENY);
	v = view(c);
	assert_int_equal(v.override_active, DBI_CIRCUIT_FORCE_OPEN);
	assert_int_equal(v.state, DBI_CIRCUIT_OPEN);
	dbi_circuit_table_destroy(t);
}

static void test_set_conf_and_disable(void **state)
{
	(void)state;
	struct dbi_circuit_conf conf = defaults();
	struct dbi_circuit_table *t = table(&conf, NULL);
	struct dbi_circuit *c = dbi_circuit_get(t, "db1:5432");
	scrape(c, T0, DBI_CIRCUIT_REFUSED);
	for (int i = 0; i < 3; i++) /* backoff 120, 240, 300 */
		scrape(c, view(c).open_until_wall_ns, DBI_CIRCUIT_FAIL);
	assert_int_equal(view(c).backoff_ns, 300 * S);

	/* a smaller cap applies to the backoff in progress */
	conf.open_max_ns = 100 * S;
	dbi_circuit_table_set_conf(t, &conf);
	uint64_t now = view(c).last_change_wall_ns;
	assert_int_equal(dbi_circuit_allow(c, now + S), DBI_CIRCUIT_DENY);
	assert_int_equal(view(c).backoff_ns, 100 * S);

	/* disabled: an open circuit closes, and nothing opens it */
	conf.enabled = false;
	dbi_circuit_table_set_conf(t, &conf);
	assert_int_equal(dbi_circuit_allow(c, now + 2 * S), DBI_CIRCUIT_ALLOW);
	struct dbi_circuit_view v = view(c);
	assert_int_equal(v.state, DBI_CIRCUIT_CLOSED);
	assert_string_equal(v.last_reason, "circuit breaker disabled");
	for (int i = 0; i < 10; i++)
		assert_int_equal(scrape(c, now + 3 * S + (uint64_t)i, DBI_CIRCUIT_REFUSED), DBI_CIRCUIT_ALLOW);
	assert_int_equal(state_of(c), DBI_CIRCUIT_CLOSED);
	assert_int_equal(view(c).failures, 4 + 10);
	dbi_circuit_table_destroy(t);
}

struct walk {
	char seen[8][80];
	int n;
};

static int visit(void *arg, struct dbi_circuit_table *tab, struct dbi_circuit *c)
{
	struct walk *w = arg;
	if (strncmp(dbi_circuit_table_owner(tab), "pg/", 3) != 0)
		return 0; /* a table an earlier failed test left behind */
	if (w->n < 8)
		snprintf(w->seen[w->n], sizeof(w->seen[0]), "%s %s", dbi_circuit_table_owner(tab), c->target);
	w->n++;
	return 0;
}

static void test_table(void **state)
{
	(void)state;
	struct dbi_circuit_table *t = NULL, *u = NULL;
	struct dbi_errbuf err;
	char long_target[200];
	dbi_err_clear(&err);
	assert_int_equal(dbi_circuit_table_create(&t, NULL, "pg/a", 2, NULL, NULL, &err), DBI_OK);
	assert_int_equal(dbi_circuit_table_create(&u, NULL, "", 2, NULL, NULL, &err), DBI_ERR);
	assert_int_equal(dbi_circuit_table_create(&u, NULL, "pg/b", 0, NULL, NULL, &err), DBI_ERR);
	struct dbi_circuit_conf bad = defaults();
	bad.half_open_successes = 0;
	assert_int_equal(dbi_circuit_table_create(&u, NULL, "pg/b", 2, &bad, NULL, &err), DBI_ERR);
	assert_int_equal(dbi_circuit_table_create(&u, NULL, "pg/b", 2, NULL, NULL, &err), DBI_OK);

	struct dbi_circuit *a = dbi_circuit_get(t, "a:1");
	assert_non_null(a);
	assert_ptr_equal(dbi_circuit_get(t, "a:1"), a);
	assert_ptr_equal(dbi_circuit_find(t, "a:1"), a);
	assert_null(dbi_circuit_find(t, "b:1"));
	assert_non_null(dbi_circuit_get(t, "b:1"));
	assert_null(dbi_circuit_get(t, "c:1")); /* full */
	assert_non_null(strstr(log_text(), "circuit table full"));
	assert_null(dbi_circuit_get(t, ""));
	memset(long_target, 'x', sizeof(long_target) - 1);
	long_target[sizeof(long_target) - 1] = '\0';
	assert_null(dbi_circuit_get(t, long_target));
	assert_int_equal(dbi_circuit_table_count(t), 2);
	assert_ptr_equal(dbi_circuit_at(t, 0), a);
	assert_null(dbi_circuit_at(t, 2));
	assert_string_equal(dbi_circuit_table_owner(t), "pg/a");
	assert_non_null(dbi_circuit_get(u, "a:1"));

	/* the shm layout, as dbi-stat checks it */
	const void *region = (const char *)a - offsetof(struct dbi_circuit_region, c);
	assert_int_equal(dbi_circuit_region_count(region, dbi_circuit_table_shm_bytes(2)), 2);
	assert_ptr_equal(dbi_circuit_region_at(region, 1), dbi_circuit_at(t, 1));
	assert_int_equal(dbi_circuit_region_count(region, dbi_circuit_table_shm_bytes(1)), -1); /* too small */
	static uint8_t zeros[4096] __attribute__((aligned(64)));
	assert_int_equal(dbi_circuit_region_count(zeros, sizeof(zeros)), -1);

	/* the registry sees both tables, in creation order */
	struct walk w = {.n = 0};
	assert_int_equal(dbi_circuit_foreach(visit, &w), 0);
	assert_int_equal(w.n, 3);
	assert_string_equal(w.seen[0], "pg/a a:1");
	assert_string_equal(w.seen[1], "pg/a b:1");
	assert_string_equal(w.seen[2], "pg/b a:1");
	dbi_circuit_table_destroy(t);
	w.n = 0;
	assert_int_equal(dbi_circuit_foreach(visit, &w), 0);
	assert_int_equal(w.n, 1);
	dbi_circuit_table_destroy(u);
}

static void test_log_lines(void **state)
{
	(void)state;
	struct dbi_circuit_conf conf = defaults();
	struct dbi_circuit_table *t = table(&conf, NULL);
	struct dbi_circuit *c = dbi_circuit_get(t, "db1:5432");
	log_text();
	scrape(c, T0, DBI_CIRCUIT_REFUSED);
	const char *l = log_text();
	assert_non_null(strstr(l, "level=warn"));
	assert_non_null(strstr(l, "msg=\"circuit opened\" receiver=pgtest target=db1:5432 from=closed to=open "
	                          "reason=\"connection refused\" next_probe_in=1m"));
	assert_null(strchr(strchr(l, '\n') + 1, '\n')); /* one line */
	scrape(c, T0 + 60 * S, DBI_CIRCUIT_OK);
	l = log_text();
	assert_non_null(strstr(l, "from=open to=half_open reason=\"probe time reached after 1m open\""));
	/* the rate limit is per circuit: a mass outage still logs every target's transition */
	dbi_log_set_rate(2);
	struct dbi_circuit *many[8];
	for (int i = 0; i < 8; i++) {
		char name[32];
		snprintf(name, sizeof(name), "mass%d:5432", i);
		many[i] = dbi_circuit_get(t, name);
	}
	log_text();
	for (int i = 0; i < 8; i++)
		scrape(many[i], T0, DBI_CIRCUIT_REFUSED);
	l = log_text();
	for (int i = 0; i < 8; i++) {
		char want[64];
		snprintf(want, sizeof(want), "target=mass%d:5432 from=closed to=open", i);
		if (!strstr(l, want))
			fail_msg("no line for %s in:\n%s", want, l);
	}
	dbi_log_set_rate(0);
	/* secrets in error messages never reach the circuit */
	dbi_circuit_record(c, DBI_CIRCUIT_FAIL, S, T0 + 61 * S, "connect failed: host=x password=hunter2");
	assert_null(strstr(view(c).last_error, "hunter2"));
	dbi_circuit_table_destroy(t);
}

static void test_metrics(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(1000);
	struct dbi_attr ra = {.key = "service.instance.id", .type = DBI_AT_STR, .v.s = "db1:5432"};
	uint32_t res = dbi_attrs_intern(reg, &ra, 1);
	uint32_t scope = dbi_scope_intern(reg, "dbi/postgresql", "1");
	struct dbi_circuit_series s;
	assert_int_equal(dbi_circuit_series_intern(reg, res, scope, "db1:5432", &s), DBI_OK);
	static const char *const names[] = {"dbi.circuit.state", "dbi.circuit.transitions", "dbi.circuit.failures"};
	for (int i = 0; i < 3; i++) {
		const struct dbi_series *se = dbi_series_get(reg, s.series[i]);
		assert_int_equal(se->resource, res);
		assert_int_equal(s.route[i], se->hash);
		const struct dbi_metric *m = dbi_metric_get(reg, se->metric);
		assert_string_equal(m->name, names[i]);
		assert_int_equal(m->kind, i == 0 ? DBI_MK_GAUGE : DBI_MK_SUM);
		struct dbi_attr a;
		const struct dbi_attrset *as = dbi_attrs_get(reg, se->attrs);
		assert_int_equal(dbi_attrs_find(as->enc, as->len, "target", &a), 1);
		assert_memory_equal(a.v.s, "db1:5432", 8);
	}

	struct dbi_circuit_table *t = table(NULL, NULL);
	struct dbi_circuit *c = dbi_circuit_get(t, "db1:5432");
	struct dbi_point p[3];
	scrape(c, T0, DBI_CIRCUIT_REFUSED);
	assert_int_equal(dbi_circuit_points(c, &s, T0 + S, p), 3);
	assert_int_equal(p[0].kind, DBI_PK_GAUGE);
	assert_int_equal(p[0].v.i, 1);
	assert_int_equal(p[1].kind, DBI_PK_SUM);
	assert_int_equal(p[1].v.i, 1);
	assert_int_equal(p[2].v.i, 1);
	assert_int_equal(p[0].time_ns, T0 + S);
	assert_int_equal(p[0].start_ns, 0);
	assert_true(p[1].start_ns > 0 && p[1].start_ns == p[2].start_ns);
	assert_int_equal(p[2].series, s.series[2]);
	scrape(c, T0 + 60 * S, DBI_CIRCUIT_OK);
	dbi_circuit_points(c, &s, T0 + 61 * S, p);
	assert_int_equal(p[0].v.i, 2);
	assert_int_equal(p[1].v.i, 2);
	dbi_circuit_table_destroy(t);
	dbi_registry_destroy(reg);
}

/* ---- state file ---- */

static void path_in_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", g_dir, name);
}

static char *slurp(const char *path, size_t *len)
{
	char *data = NULL;
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	assert_int_equal(dbi_state_read(path, 1 << 20, &data, len, &err), DBI_OK);
	return data;
}

/* Plain writes: the rejection tests write hundreds of files, without fsync. */
static void spit(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Four circuits in four states, saved at T0 + 5 s. */
static void write_state(const char *path)
{
	struct dbi_circuit_table *t = table(NULL, path);
	struct dbi_circuit *open = dbi_circuit_get(t, "open:5432");
	struct dbi_circuit *closed = dbi_circuit_get(t, "closed 1:5432"); /* a space: encoded */
	struct dbi_circuit *forced = dbi_circuit_get(t, "forced:5432");
	struct dbi_circuit *gone = dbi_circuit_get(t, "gone:5432");
	scrape(open, T0, DBI_CIRCUIT_REFUSED);
	scrape(open, T0 + 60 * S, DBI_CIRCUIT_FAIL); /* reopened at T0+60 s for 120 s */
	scrape(closed, T0, DBI_CIRCUIT_OK);
	dbi_circuit_override(forced, DBI_CIRCUIT_FORCE_OPEN);
	dbi_circuit_allow(forced, T0);
	scrape(gone, T0, DBI_CIRCUIT_REFUSED);
	assert_int_equal(dbi_circuit_table_sync(t, T0 + 61 * S), DBI_OK);
	assert_int_equal(dbi_circuit_table_sync(t, T0 + 62 * S), DBI_OK); /* nothing new: no write */
	dbi_circuit_table_destroy(t);
}

static void test_state_roundtrip(void **state)
{
	(void)state;
	char path[128], tmp[140];
	struct stat st;
	path_in_dir(path, sizeof(path), "rt.circuits");
	write_state(path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_not_equal(stat(tmp, &st), 0);

	/* restart: "gone" is no longer configured; "late" is added after the load */
	struct dbi_circuit_table *t = table(NULL, path);
	struct dbi_circuit *open = dbi_circuit_get(t, "open:5432");
	struct dbi_circuit *closed = dbi_circuit_get(t, "closed 1:5432");
	log_text();
	assert_int_equal(dbi_circuit_table_load(t, T0 + 100 * S), DBI_OK);
	assert_non_null(
	        strstr(log_text(), "msg=\"circuit state restored\" receiver=pgtest target=open:5432 state=open"));
	struct dbi_circuit *forced = dbi_circuit_get(t, "forced:5432");

	struct dbi_circuit_view v = view(open);
	assert_int_equal(v.state, DBI_CIRCUIT_OPEN);
	assert_int_equal(v.open_until_wall_ns, T0 + 180 * S);
	assert_int_equal(v.backoff_ns, 120 * S);
	assert_string_equal(v.last_error, "fail: boom");
	assert_string_equal(v.last_reason, "half-open call failed (fail)");
	assert_int_equal(v.transitions, 0); /* counters are per process run */
	/* an open circuit stays open until its saved probe time */
	assert_int_equal(dbi_circuit_allow(open, T0 + 179 * S), DBI_CIRCUIT_DENY);
	assert_int_equal(dbi_circuit_allow(open, T0 + 180 * S), DBI_CIRCUIT_PROBE);
	assert_int_equal(state_of(closed), DBI_CIRCUIT_CLOSED);
	v = view(forced);
	assert_int_equal(v.state, DBI_CIRCUIT_OPEN);
	assert_int_equal(v.override, DBI_CIRCUIT_FORCE_OPEN);
	assert_int_equal(v.override_active, DBI_CIRCUIT_FORCE_OPEN);
	assert_int_equal(dbi_circuit_allow(forced, T0 + 86400 * S), DBI_CIRCUIT_DENY);

	/* the next save drops the stale entry */
	assert_int_equal(dbi_circuit_table_save(t, T0 + 200 * S), DBI_OK);
	size_t len;
	char *data = slurp(path, &len);
	assert_null(strstr(data, "gone:5432"));
	assert_non_null(strstr(data, "c closed%201:5432 closed none"));
	assert_non_null(strstr(data, "c forced:5432 open force_open"));
	assert_non_null(strstr(data, "\nend 3 "));
	free(data);
	dbi_circuit_table_destroy(t);

	/* a probe time far away (saved under a larger max_open_duration) is bounded on load */
	struct dbi_circuit_conf big = defaults();
	big.open_initial_ns = 3600 * S;
	big.open_max_ns = 7200 * S;
	t = table(&big, path);
	scrape(dbi_circuit_get(t, "far:5432"), T0, DBI_CIRCUIT_REFUSED);
	assert_int_equal(dbi_circuit_table_save(t, T0), DBI_OK);
	dbi_circuit_table_destroy(t);
	t = table(NULL, path);
	struct dbi_circuit *far = dbi_circuit_get(t, "far:5432");
	assert_int_equal(dbi_circuit_table_load(t, T0 + S), DBI_OK);
	v = view(far);
	assert_int_equal(v.backoff_ns, 300 * S);
	assert_int_equal(v.open_until_wall_ns, T0 + S + 300 * S);
	dbi_circuit_table_destroy(t);

	/* no file yet: fine, and no state path: nothing to do */
	path_in_dir(path, sizeof(path), "absent.circuits");
	t = table(NULL, path);
	assert_int_equal(dbi_circuit_table_load(t, T0), DBI_OK);
	dbi_circuit_table_destroy(t);
	t = table(NULL, NULL);
	assert_int_equal(dbi_circuit_table_load(t, T0), DBI_OK);
	assert_int_equal(dbi_circuit_table_save(t, T0), DBI_OK);
	dbi_circuit_table_destroy(t);
}

/* Load path into a fresh table: DBI_ERR expected, a warning naming why, circuits fresh. */
static void expect_rejected(const char *path, const char *why)
{
	struct dbi_circuit_table *t = table(NULL, path);
	struct dbi_circuit *c = dbi_circuit_get(t, "open:5432");
	log_text();
	assert_int_equal(dbi_circuit_table_load(t, T0 + 100 * S), DBI_ERR);
	const char *l = log_text();
	if (!strstr(l, "ignoring circuit state file") || (why && !strstr(l, why)))
		fail_msg("expected a warning with '%s', got: %s", why ? why : "", l);
	assert_int_equal(state_of(c), DBI_CIRCUIT_CLOSED);
	assert_int_equal(dbi_circuit_allow(c, T0 + 100 * S), DBI_CIRCUIT_ALLOW);
	dbi_circuit_table_destroy(t);
}

static void test_state_rejected(void **state)
{
	(void)state;
	char path[128], bad[128];
	size_t len;
	path_in_dir(path, sizeof(path), "good.circuits");
	path_in_dir(bad, sizeof(bad), "bad.circuits");
	write_state(path);
	char *good = slurp(path, &len);

	spit(bad, "hello world\n", 12);
	expect_rejected(bad, "not a dbi circuit state file");
	spit(bad, "", 0);
	expect_rejected(bad, "not a dbi circuit state file");
	/* one changed byte in an entry */
	char *copy = malloc(len + 1);
	memcpy(copy, good, len + 1);
	char *p = strstr(copy, "open:5432 open");
	assert_non_null(p);
	p[10] = 'c'; /* "open" -> "cpen": the checksum notices before the parser would */
	spit(bad, copy, len);
	expect_rejected(bad, "checksum mismatch");
	/* cut short */
	spit(bad, good, len / 2);
	expect_rejected(bad, "truncated");
	spit(bad, good, len - 1);
	expect_rejected(bad, "truncated");
	/* a newer format */
	memcpy(copy, good, len + 1);
	copy[13] = '9';
	spit(bad, copy, len);
	expect_rejected(bad, NULL);
	/* another receiver's file */
	struct dbi_circuit_table *other = NULL;
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	assert_int_equal(dbi_circuit_table_create(&other, NULL, "postgresql/other", 4, NULL, bad, &err), DBI_OK);
	dbi_circuit_get(other, "open:5432");
	assert_int_equal(dbi_circuit_table_save(other, T0), DBI_OK);
	dbi_circuit_table_destroy(other);
	expect_rejected(bad, "it belongs to receiver 'postgresql/other', not 'pgtest'");
	/* NUL bytes */
	memcpy(copy, good, len + 1);
	copy[20] = '\0';
	spit(bad, copy, len);
	expect_rejected(bad, "NUL");
	/* not a regular file */
	path_in_dir(bad, sizeof(bad), "dir.circuits");
	assert_int_equal(mkdir(bad, 0700), 0);
	expect_rejected(bad, "not a regular file");

	/* every single-byte change and every truncation is rejected, never crashes */
	path_in_dir(bad, sizeof(bad), "fuzz.circuits");
	dbi_log_set_level(DBI_LOG_ERROR);
	for (size_t i = 0; i < len; i++) {
		struct dbi_circuit_table *t = table(NULL, bad);
		memcpy(copy, good, len + 1);
		copy[i] ^= (char)(1 + i % 0x7e);
		spit(bad, copy, len);
		if (dbi_circuit_table_load(t, T0) != DBI_ERR)
			fail_msg("a change at byte %zu was accepted", i);
		spit(bad, good, i);
		if (dbi_circuit_table_load(t, T0) != DBI_ERR)
			fail_msg("a file cut at %zu bytes was accepted", i);
		dbi_circuit_table_destroy(t);
	}
	dbi_log_set_level(DBI_LOG_INFO);
	/* and the original still loads */
	spit(bad, good, len);
	struct dbi_circuit_table *t = table(NULL, bad);
	assert_int_equal(dbi_circuit_table_load(t, T0 + 100 * S), DBI_OK);
	assert_int_equal(state_of(dbi_circuit_get(t, "open:5432")), DBI_CIRCUIT_OPEN);
	dbi_circuit_table_destroy(t);
	free(copy);
	free(good);
}

static void test_state_dir(void **state)
{
	(void)state;
	char want[128], got[256], file[300];
	struct stat st;
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	snprintf(want, sizeof(want), "%s/a/b/state", g_dir);
	assert_int_equal(dbi_state_dir(want, got, sizeof(got), &err), DBI_OK);
	assert_string_equal(got, want);
	assert_int_equal(stat(want, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(dbi_state_dir("relative/dir", got, sizeof(got), &err), DBI_ERR);
	assert_non_null(strstr(err.msg, "must be an absolute path"));
	snprintf(file, sizeof(file), "%s/plain", g_dir);
	assert_int_equal(dbi_state_write(file, "x", 1, &err), DBI_OK);
	dbi_err_clear(&err);
	assert_int_equal(dbi_state_dir(file, got, sizeof(got), &err), DBI_ERR);

	char *data;
	size_t len;
	snprintf(file, sizeof(file), "%s/missing", want);
	assert_int_equal(dbi_state_read(file, 100, &data, &len, &err), DBI_DONE);
	snprintf(file, sizeof(file), "%s/f", want);
	assert_int_equal(dbi_state_write(file, "one", 3, &err), DBI_OK);
	assert_int_equal(dbi_state_write(file, "two!", 4, &err), DBI_OK); /* replaced whole */
	assert_int_equal(dbi_state_read(file, 100, &data, &len, &err), DBI_OK);
	assert_int_equal(len, 4);
	assert_string_equal(data, "two!");
	free(data);
	dbi_err_clear(&err);
	assert_int_equal(dbi_state_read(file, 3, &data, &len, &err), DBI_ERR);
	assert_non_null(strstr(err.msg, "too large"));
}

/* ---- racing threads ---- */

struct race {
	struct dbi_circuit_table *t;
	struct dbi_circuit *c;
	_Atomic int done;
	_Atomic int round;
	uint64_t checks, torn;
	char why[200];
};

/* The owner: drives the circuit through every state with its own clock. */
static void *owner_main(void *arg)
{
	struct race *r = arg;
	uint64_t now = T0;
	for (int i = 0; i < RACE_ROUNDS; i++) {
		atomic_store_explicit(&r->round, i, memory_order_relaxed);
		now += S;
		enum dbi_circuit_decision d = dbi_circuit_allow(r->c, now);
		if (d == DBI_CIRCUIT_DENY) {
			/* jump to the probe time now and then, so it cycles quickly */
			struct dbi_circuit_view v = view(r->c);
			if (v.open_until_wall_ns > now && i % 3 == 0)
				now = v.open_until_wall_ns - S;
			continue;
		}
		enum dbi_circuit_result res = (i % 7 == 0)   ? DBI_CIRCUIT_REFUSED
		                              : (i % 5 == 0) ? DBI_CIRCUIT_FAIL
		                                             : DBI_CIRCUIT_OK;
		dbi_circuit_record(r->c, res, S, now, res == DBI_CIRCUIT_OK ? NULL : "x");
		if (i % 20000 == 0)
			dbi_circuit_table_sync(r->t, now);
	}
	atomic_store(&r->done, 1);
	return NULL;
}

/* Admin: an override or a reset every 500 rounds of the owner. */
static void *admin_main(void *arg)
{
	struct race *r = arg;
	for (unsigned i = 0; !atomic_load(&r->done); i++) {
		int from = atomic_load_explicit(&r->round, memory_order_relaxed);
		while (!atomic_load(&r->done) && atomic_load_explicit(&r->round, memory_order_relaxed) - from < 500)
			sched_yield();
		switch (i % 4) {
		case 0:
			dbi_circuit_override(r->c, DBI_CIRCUIT_FORCE_OPEN);
			break;
		case 1:
			dbi_circuit_override(r->c, DBI_CIRCUIT_NO_OVERRIDE);
			break;
		case 2:
			dbi_circuit_override(r->c, DBI_CIRCUIT_FORCE_CLOSED);
			break;
		default:
			dbi_circuit_reset(r->c);
			break;
		}
	}
	return NULL;
}

static int race_visit(void *arg, struct dbi_circuit_table *t, struct dbi_circuit *c)
{
	(void)t;
	struct dbi_circuit_view v;
	*(int *)arg += dbi_circuit_snapshot(c, &v) == DBI_OK;
	return 0;
}

/*
 * A reader: every snapshot must satisfy what the owner always writes together:
 * open ⇒ open_until = last_change + backoff; closed ⇒ open_until = 0, backoff = 60 s;
 * totals never go down. A torn read breaks one of them.
 */
static void *reader_main(void *arg)
{
	struct race *r = arg;
	uint64_t last_total = 0, last_transitions = 0;
	while (!atomic_load(&r->done)) {
		struct dbi_circuit_view v;
		if (dbi_circuit_snapshot(r->c, &v) != DBI_OK)
			continue;
		r->checks++;
		uint64_t total = v.failures + v.successes;
		int ok = total >= last_total && v.transitions >= last_transitions;
		if (v.state == DBI_CIRCUIT_OPEN)
			ok = ok && v.open_until_wall_ns == v.last_change_wall_ns + v.backoff_ns;
		if (v.state == DBI_CIRCUIT_CLOSED)
			ok = ok && v.open_until_wall_ns == 0 && v.backoff_ns == 60 * S;
		if (!ok && !r->torn++)
			snprintf(r->why, sizeof(r->why), "state %d until %llu change %llu backoff %llu", v.state,
			         (unsigned long long)v.open_until_wall_ns, (unsigned long long)v.last_change_wall_ns,
			         (unsigned long long)v.backoff_ns);
		last_total = total;
		last_transitions = v.transitions;
		if (r->checks % 4096 == 0) {
			int n = 0;
			dbi_circuit_foreach(race_visit, &n);
			dbi_circuit_table_save(r->t, T0);
		}
	}
	return NULL;
}

static void test_race(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof(path), "race.circuits");
	struct race r = {0};
	r.t = table(NULL, path);
	r.c = dbi_circuit_get(r.t, "db1:5432");
	dbi_log_set_level(DBI_LOG_OFF);
	pthread_t own, adm, rd;
	assert_int_equal(pthread_create(&rd, NULL, reader_main, &r), 0);
	assert_int_equal(pthread_create(&adm, NULL, admin_main, &r), 0);
	assert_int_equal(pthread_create(&own, NULL, owner_main, &r), 0);
	assert_int_equal(pthread_join(own, NULL), 0);
	assert_int_equal(pthread_join(adm, NULL), 0);
	assert_int_equal(pthread_join(rd, NULL), 0);
	dbi_log_set_level(DBI_LOG_INFO);
	if (r.torn)
		fail_msg("%llu of %llu snapshots inconsistent, first: %s", (unsigned long long)r.torn,
		         (unsigned long long)r.checks, r.why);
	struct dbi_circuit_view v = view(r.c);
	if (v.transitions < RACE_ROUNDS / 100)
		fail_msg("only %llu transitions", (unsigned long long)v.transitions);
	assert_true(r.checks > 0);
	/* the file the racing saves left behind is whole */
	struct dbi_circuit_table *t = table(NULL, path);
	assert_int_equal(dbi_circuit_table_load(t, T0), DBI_OK);
	dbi_circuit_table_destroy(t);
	dbi_circuit_table_destroy(r.t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_conf),
	        cmocka_unit_test(test_count_rule),
	        cmocka_unit_test(test_ratio_rule),
	        cmocka_unit_test(test_refused_and_timeouts),
	        cmocka_unit_test(test_probe_schedule),
	        cmocka_unit_test(test_half_open_ramp),
	        cmocka_unit_test(test_clock_jumps_back),
	        cmocka_unit_test(test_overrides),
	        cmocka_unit_test(test_reset),
	        cmocka_unit_test(test_set_conf_and_disable),
	        cmocka_unit_test(test_table),
	        cmocka_unit_test(test_log_lines),
	        cmocka_unit_test(test_metrics),
	        cmocka_unit_test(test_state_roundtrip),
	        cmocka_unit_test(test_state_rejected),
	        cmocka_unit_test(test_state_dir),
	        cmocka_unit_test(test_race),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
