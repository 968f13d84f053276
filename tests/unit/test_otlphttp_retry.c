/*
 * test_otlphttp_retry.c — when the otlphttp exporter sends again: the backoff schedule
 * (growth, cap, jitter bounds, max_elapsed_time), Retry-After in both forms and
 * malformed, the meaning of each HTTP status, and the circuit breaker's states.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../src/exporters/otlphttp/retry.h"

#define S DBI_NSEC_PER_SEC

static void test_backoff_schedule(void **state)
{
	(void)state;
	struct dbi_retry_cfg c = {5 * S, 60 * S, 300 * S, 0.5, 1.5};
	struct dbi_retry_backoff b;
	uint64_t now = 1000 * S;
	dbi_retry_backoff_start(&b, &c, now);
	/* r = 0.5 is the midpoint: no jitter */
	uint64_t want[] = {5 * S,          7500000000ULL,  11250000000ULL, 16875000000ULL, 25312500000ULL,
	                   37968750000ULL, 56953125000ULL, 60 * S,         60 * S};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(dbi_retry_backoff_next(&b, &c, now, 0.5), want[i]);

	/* jitter stays within [1-f, 1+f] of the interval */
	dbi_retry_backoff_start(&b, &c, now);
	assert_int_equal(dbi_retry_backoff_next(&b, &c, now, 0.0), 2500000000ULL);
	assert_int_equal(dbi_retry_backoff_next(&b, &c, now, 0.999999999), 11249999992ULL);
	for (int i = 0; i < 1000; i++) {
		struct dbi_retry_backoff b2;
		dbi_retry_backoff_start(&b2, &c, now);
		uint64_t w = dbi_retry_backoff_next(&b2, &c, now, (double)i / 1000.0);
		assert_true(w >= 2500000000ULL && w < 7500000000ULL);
	}

	/* max_elapsed_time: the next wait may not end past start + 300 s */
	dbi_retry_backoff_start(&b, &c, now);
	assert_true(dbi_retry_backoff_next(&b, &c, now + 200 * S, 0.5) > 0);
	assert_int_equal(dbi_retry_backoff_next(&b, &c, now + 295 * S, 0.5), 0);
	/* 0 = forever */
	c.max_elapsed_ns = 0;
	dbi_retry_backoff_start(&b, &c, now);
	assert_true(dbi_retry_backoff_next(&b, &c, now + 100000 * S, 0.5) > 0);
	/* no randomization: exact */
	c.randomization = 0;
	dbi_retry_backoff_start(&b, &c, now);
	assert_int_equal(dbi_retry_backoff_next(&b, &c, now, 0.9), 5 * S);
}

static void test_retry_after(void **state)
{
	(void)state;
	uint64_t w = 0;
	time_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
	assert_int_equal(dbi_retry_after_parse("120", now, &w), DBI_OK);
	assert_int_equal(w, 120 * S);
	assert_int_equal(dbi_retry_after_parse("  7 \r\n", now, &w), DBI_OK);
	assert_int_equal(w, 7 * S);
	assert_int_equal(dbi_retry_after_parse("0", now, &w), DBI_OK);
	assert_int_equal(w, 0);
	assert_int_equal(dbi_retry_after_parse("99999999999999999999999", now, &w), DBI_OK);
	assert_int_equal(w, (uint64_t)DBI_RETRY_AFTER_MAX_S * S);
	/* the three HTTP date formats, 60 s after now */
	assert_int_equal(dbi_retry_after_parse("Sun, 06 Nov 1994 08:50:37 GMT", now, &w), DBI_OK);
	assert_int_equal(w, 60 * S);
	assert_int_equal(dbi_retry_after_parse("Sunday, 06-Nov-94 08:50:37 GMT", now, &w), DBI_OK);
	assert_int_equal(w, 60 * S);
	assert_int_equal(dbi_retry_after_parse("Sun Nov  6 08:50:37 1994", now, &w), DBI_OK);
	assert_int_equal(w, 60 * S);
	/* a date in the past: go now */
	assert_int_equal(dbi_retry_after_parse("Sun, 06 Nov 1994 08:00:00 GMT", now, &w), DBI_OK);
	assert_int_equal(w, 0);
	/* far future: capped */
	assert_int_equal(dbi_retry_after_parse("Fri, 01 Jan 2100 00:00:00 GMT", now, &w), DBI_OK);
	assert_int_equal(w, (uint64_t)DBI_RETRY_AFTER_MAX_S * S);
	const char *bad[] = {"", "   ", "-5", "1.5", "5s", "soon", "Sun, 99 Foo 1994 25:61:61 GMT", "+3", NULL};
	for (int i = 0; bad[i]; i++)
		assert_int_equal(dbi_retry_after_parse(bad[i], now, &w), DBI_ERR);
	assert_int_equal(dbi_retry_after_parse(NULL, now, &w), DBI_ERR);
}

static void test_classify(void **state)
{
	(void)state;
	long ok[] = {200, 202, 204};
	long retry[] = {0, 408, 429, 500, 502, 503, 504, 599};
	long perm[] = {400, 401, 403, 404, 405, 415, 501, 505, 301, 100};
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(dbi_retry_classify(ok[i]), DBI_RETRY_OK);
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(dbi_retry_classify(retry[i]), DBI_RETRY_RETRY);
	for (size_t i = 0; i < 10; i++)
		assert_int_equal(dbi_retry_classify(perm[i]), DBI_RETRY_PERMANENT);
	assert_int_equal(dbi_retry_classify(413), DBI_RETRY_TOO_LARGE);
	assert_true(dbi_retry_endpoint_failed(0));
	assert_true(dbi_retry_endpoint_failed(503));
	assert_true(dbi_retry_endpoint_failed(408));
	assert_false(dbi_retry_endpoint_failed(429));
	assert_false(dbi_retry_endpoint_failed(401));
	assert_false(dbi_retry_endpoint_failed(200));
}

static void test_circuit(void **state)
{
	(void)state;
	struct dbi_breaker_cfg cfg = {1, 3, 5 * S, 20 * S};
	struct dbi_breaker c;
	uint64_t t = 100 * S;
	dbi_breaker_init(&c, &cfg);
	assert_true(dbi_breaker_allow(&c, &cfg, t));
	dbi_breaker_result(&c, &cfg, t, 1);
	dbi_breaker_result(&c, &cfg, t, 1);
	assert_int_equal(c.state, DBI_BREAKER_CLOSED);
	/* a success in between resets the count */
	dbi_breaker_result(&c, &cfg, t, 0);
	dbi_breaker_result(&c, &cfg, t, 1);
	dbi_breaker_result(&c, &cfg, t, 1);
	assert_int_equal(c.state, DBI_BREAKER_CLOSED);
	dbi_breaker_result(&c, &cfg, t, 1);
	assert_int_equal(c.state, DBI_BREAKER_OPEN);
	assert_int_equal(c.opened, 1);
	assert_false(dbi_breaker_allow(&c, &cfg, t + 4 * S));
	/* cool-down over: exactly one probe */
	assert_true(dbi_breaker_allow(&c, &cfg, t + 5 * S));
	assert_int_equal(c.state, DBI_BREAKER_HALF_OPEN);
	assert_false(dbi_breaker_allow(&c, &cfg, t + 5 * S));
	/* the probe fails: open again, twice as long */
	dbi_breaker_result(&c, &cfg, t + 6 * S, 1);
	assert_int_equal(c.state, DBI_BREAKER_OPEN);
	assert_false(dbi_breaker_allow(&c, &cfg, t + 15 * S));
	assert_true(dbi_breaker_allow(&c, &cfg, t + 16 * S));
	dbi_breaker_result(&c, &cfg, t + 16 * S, 1); /* 20 s */
	assert_true(dbi_breaker_allow(&c, &cfg, t + 36 * S));
	dbi_breaker_result(&c, &cfg, t + 36 * S, 1); /* capped at 20 s */
	assert_false(dbi_breaker_allow(&c, &cfg, t + 55 * S));
	assert_true(dbi_breaker_allow(&c, &cfg, t + 56 * S));
	/* the probe succeeds: closed, cool-down back to the start */
	dbi_breaker_result(&c, &cfg, t + 57 * S, 0);
	assert_int_equal(c.state, DBI_BREAKER_CLOSED);
	assert_int_equal(c.cooldown_ns, 5 * S);
	assert_true(dbi_breaker_allow(&c, &cfg, t + 57 * S));
	assert_true(dbi_breaker_allow(&c, &cfg, t + 57 * S));
	/* disabled: never opens */
	cfg.enabled = 0;
	dbi_breaker_init(&c, &cfg);
	for (int i = 0; i < 100; i++)
		dbi_breaker_result(&c, &cfg, t, 1);
	assert_true(dbi_breaker_allow(&c, &cfg, t));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_backoff_schedule),
	        cmocka_unit_test(test_retry_after),
	        cmocka_unit_test(test_classify),
	        cmocka_unit_test(test_circuit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
