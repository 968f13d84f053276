/*
 * test_log.c — the collector's own log: one logfmt line per event (multi-line fields
 * flattened), levels, per-call-site rate limiting with a "suppressed" count, and secret
 * scrubbing (DSN passwords, URL credentials, api keys, bearer tokens).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbi/common.h"
#include "dbi/log.h"

static const char *scrub(const char *in)
{
	static char buf[1024];
	return dbi_log_scrub(in, buf, sizeof(buf));
}

static void test_scrub(void **state)
{
	(void)state;
	assert_string_equal(scrub("host=db1 port=5432 password=s3cret user=dbi"),
	                    "host=db1 port=5432 password=*** user=dbi");
	assert_string_equal(scrub("password='with space' dbname=x"), "password=*** dbname=x");
	assert_string_equal(scrub("postgresql://dbi:s3cret@db1:5432/postgres"),
	                    "postgresql://dbi:***@db1:5432/postgres");
	assert_string_equal(scrub("headers api-key=abcd1234 next"), "headers api-key=*** next");
	assert_string_equal(scrub("Authorization: Bearer tok.en-xyz rest"), "Authorization: Bearer *** rest");
	assert_string_equal(scrub("license_key=\"k\" ok=1"), "license_key=*** ok=1");
	/* words merely containing a key name are left alone */
	assert_string_equal(scrub("passwordless=true tokens=3"), "passwordless=true tokens=3");
	/* nothing secret: unchanged */
	assert_string_equal(scrub("target=127.0.0.1:5432 state=open"), "target=127.0.0.1:5432 state=open");
}

static char *capture(void (*fn)(void))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	dbi_log_set_stream(tmp);
	fn();
	fflush(tmp);
	rewind(tmp);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), tmp)) > 0)
		fwrite(chunk, 1, n, f);
	fclose(tmp);
	fclose(f);
	dbi_log_set_stream(NULL);
	return buf;
}

static void emit_lines(void)
{
	DBI_LOGI("test", "hello \"world\"", "target=%s password=%s", "db1:5432", "hunter2");
	DBI_LOGE("test", "multi", "errors=\"%s\"", "a.yaml:1:2: bad\na.yaml:3:4: worse");
	DBI_LOGD("test", "not shown at info", "");
}

static void test_format_and_levels(void **state)
{
	(void)state;
	dbi_log_set_level(DBI_LOG_INFO);
	char *out = capture(emit_lines);
	/* exactly two lines, each a complete logfmt event */
	int lines = 0;
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 2);
	assert_non_null(strstr(out, "level=info comp=test msg=\"hello \\\"world\\\"\" target=db1:5432 password=***"));
	assert_null(strstr(out, "hunter2"));
	assert_non_null(strstr(out, "errors=\"a.yaml:1:2: bad\\na.yaml:3:4: worse\""));
	assert_null(strstr(out, "not shown"));
	free(out);
	enum dbi_log_level l;
	assert_int_equal(dbi_log_parse_level("warning", &l), DBI_OK);
	assert_int_equal(l, DBI_LOG_WARN);
	assert_int_equal(dbi_log_parse_level("loud", &l), DBI_ERR);
}

static void flood(void)
{
	for (int i = 0; i < 100; i++)
		DBI_LOGW("test", "flapping target", "i=%d", i);
}

static void test_rate_limit(void **state)
{
	(void)state;
	dbi_log_set_rate(5);
	char *out = capture(flood);
	int lines = 0;
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 5); /* the rest of this 10 s window is suppressed */
	free(out);
	dbi_log_set_rate(10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_scrub),
	        cmocka_unit_test(test_format_and_levels),
	        cmocka_unit_test(test_rate_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
