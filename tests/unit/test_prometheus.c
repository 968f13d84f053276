/*
 * test_prometheus.c — the `prometheus` exporter without the runtime: OTel → Prometheus
 * naming (unit and type suffixes, sanitising, label merging and shadowing), escaping
 * and number rendering, whole pages in both formats (counters, gauges, histograms,
 * summaries, target_info, const labels), delta → cumulative accumulation, expiry and
 * staleness, drop counting, page buffers held by scrapes, and the HTTP endpoint (content
 * negotiation, gzip, on-demand render while another thread plays the exporter thread).
 * Whether real Prometheus tools accept the pages is tests/integration/test_prometheus_interop.py.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "opentelemetry/proto/metrics/v1/metrics.pb-c.h"

#include "../../src/exporters/prometheus/prom_int.h"
#include "dbi/clock.h"
#include "dbi/promtext.h"
#include "dbi/runtime.h"
#include "dbi/shm.h"

/* ---- fixture ---- */

struct fx {
	struct dbi_registry *reg;
	struct prom_cfg cfg;
	struct dbi_stats_block *blk;
	struct dbi_stats st;
	struct dbi_inst inst;
	struct prom *p;
	uint32_t scope;
	char *const_k[2], *const_v[2];
};

static void fx_cfg(struct fx *f)
{
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	memset(f, 0, sizeof(*f));
	f->reg = dbi_registry_create(100000);
	assert_non_null(f->reg);
	assert_int_equal(dbi_conf_defaults(dbi_exporter_prometheus.keys, &f->cfg, &err), DBI_OK);
	f->cfg.endpoint.port = 0; /* any free port */
}

static void fx_start(struct fx *f)
{
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	f->blk = calloc(1, sizeof(*f->blk));
	assert_non_null(f->blk);
	assert_int_equal(dbi_stats_init(&f->st, f->blk, DBI_SK_EXPORTER, "prometheus", "prometheus",
	                                dbi_exporter_prometheus.stats),
	                 DBI_OK);
	f->inst = (struct dbi_inst){
	        .id = "prometheus", .desc = &dbi_exporter_prometheus, .cfg = &f->cfg, .reg = f->reg, .stats = &f->st};
	void *state = NULL;
	assert_int_equal(dbi_exporter_prometheus.create(&f->inst, &state, &err), DBI_OK);
	f->p = state;
	f->scope = dbi_scope_intern(f->reg, "dbi/test", "1.2");
}

static void fx_init(struct fx *f)
{
	fx_cfg(f);
	fx_start(f);
}

static void fx_done(struct fx *f)
{
	dbi_exporter_prometheus.destroy(f->p);
	f->cfg.const_labels = (struct dbi_strmap){0};
	dbi_conf_release(dbi_exporter_prometheus.keys, &f->cfg);
	dbi_registry_destroy(f->reg);
	free(f->blk);
}

static uint64_t stat(struct fx *f, const char *name)
{
	int i = dbi_stats_index(&f->st, name);
	assert_true(i >= 0);
	return dbi_stats_get(&f->st, (unsigned)i);
}

static uint32_t metric(struct fx *f, const char *name, const char *unit, const char *desc, int kind, int mono, int temp)
{
	struct dbi_metric_def d = {.name = name,
	                           .unit = unit,
	                           .description = desc,
	                           .kind = (uint8_t)kind,
	                           .monotonic = (uint8_t)mono,
	                           .temporality = (uint8_t)temp};
	uint32_t m = dbi_metric_intern(f->reg, &d);
	assert_true(m > 0);
	return m;
}

static uint32_t resource(struct fx *f, const char *service, const char *instance)
{
	struct dbi_attr a[] = {
	        {.key = "service.name", .type = DBI_AT_STR, .v.s = service},
	        {.key = "service.instance.id", .type = DBI_AT_STR, .v.s = instance},
	        {.key = "host.name", .type = DBI_AT_STR, .v.s = "db-1"},
	        {.key = "server.port", .type = DBI_AT_INT, .v.i = 5432},
	};
	return dbi_attrs_intern(f->reg, a, DBI_ARRAY_LEN(a));
}

static uint32_t series(struct fx *f, uint32_t m, uint32_t res, const struct dbi_attr *a, size_t n)
{
	uint32_t s = dbi_series_intern(f->reg, m, res, f->scope, dbi_attrs_intern(f->reg, a, n));
	assert_true(s > 0);
	return s;
}

static void feed(struct fx *f, struct dbi_point *pts, uint32_t n, const struct dbi_rec_hdr **recs, uint32_t nrecs)
{
	struct dbi_batch b = {.signal = DBI_SIG_METRICS, .pts = pts, .npts = n, .recs = recs, .nrecs = nrecs};
	assert_int_equal(dbi_exporter_prometheus.consume(f->p, &b, NULL), DBI_OK);
}

static void feed_point(struct fx *f, uint32_t s, uint64_t start, uint64_t t, int64_t v)
{
	struct dbi_point pt = {.series = s, .start_ns = start, .time_ns = t, .v.i = v, .kind = DBI_PK_SUM};
	feed(f, &pt, 1, NULL, 0);
}

static const char *page(struct fx *f, int fmt)
{
	size_t len;
	assert_int_equal(
	        prom_render_publish(f->p, PROM_FMT_BIT(PROM_FMT_TEXT) | PROM_FMT_BIT(PROM_FMT_OM), dbi_mono_ns()),
	        DBI_OK);
	const char *t = prom_page_text(f->p, fmt, &len);
	assert_non_null(t);
	assert_int_equal(strlen(t) >= len ? 0 : 1, 0);
	return t;
}

/* The page contains this exact line. */
static void has_line(const char *page, const char *line)
{
	size_t n = strlen(line);
	for (const char *s = page; (s = strstr(s, line)) != NULL; s++)
		if ((s == page || s[-1] == '\n') && s[n] == '\n')
			return;
	fprintf(stderr, "--- page ---\n%s--- end ---\n", page); /* cmocka truncates long messages */
	fail_msg("line not on page: %s", line);
}

static void no_text(const char *page, const char *text)
{
	if (strstr(page, text)) {
		fprintf(stderr, "--- page ---\n%s--- end ---\n", page);
		fail_msg("unexpected on page: %s", text);
	}
}

/* ---- naming ---- */

static void name_is(const char *ns, const char *name, const char *unit, int type, bool suffixes, const char *text,
                    const char *om, const char *om_unit)
{
	char t[PROM_NAME_MAX], o[PROM_NAME_MAX], u[160];
	assert_int_equal(prom_family_names(ns, name, unit, type, suffixes, t, o, u), DBI_OK);
	assert_string_equal(t, text);
	assert_string_equal(o, om);
	assert_string_equal(u, om_unit);
}

static void test_metric_names(void **state)
{
	(void)state;
	name_is("db_intelligence", "postgresql.db_size", "By", PT_GAUGE, true,
	        "db_intelligence_postgresql_db_size_bytes", "db_intelligence_postgresql_db_size_bytes", "bytes");
	name_is("", "postgresql.commits", "1", PT_COUNTER, true, "postgresql_commits_total", "postgresql_commits", "");
	name_is("", "system.memory.utilization", "1", PT_GAUGE, true, "system_memory_utilization_ratio",
	        "system_memory_utilization_ratio", "ratio");
	name_is("", "http.server.duration", "ms", PT_HISTOGRAM, true, "http_server_duration_milliseconds",
	        "http_server_duration_milliseconds", "milliseconds");
	name_is("", "postgresql.blocks_read", "{block}", PT_COUNTER, true, "postgresql_blocks_read_total",
	        "postgresql_blocks_read", "");
	name_is("", "system.network.dropped", "packets", PT_COUNTER, true, "system_network_dropped_packets_total",
	        "system_network_dropped_packets", "packets");
	name_is("", "net.io.rate", "By/s", PT_GAUGE, true, "net_io_rate_bytes_per_second",
	        "net_io_rate_bytes_per_second", "bytes_per_second");
	name_is("", "queries.rate", "{query}/s", PT_GAUGE, true, "queries_rate_per_second", "queries_rate_per_second",
	        "per_second");
	name_is("", "process.cpu.seconds", "s", PT_COUNTER, true, "process_cpu_seconds_total", "process_cpu_seconds",
	        "seconds");
	name_is("", "requests.total", "", PT_COUNTER, true, "requests_total", "requests", "");
	name_is("", "(lambda).function.executions(#)", "", PT_GAUGE, true, "lambda_function_executions",
	        "lambda_function_executions", "");
	name_is("", "a..b__c-d", "", PT_GAUGE, true, "a_b_c_d", "a_b_c_d", "");
	name_is("", "1st.metric", "", PT_GAUGE, true, "_1st_metric", "_1st_metric", "");
	name_is("ns", "1st.metric", "", PT_GAUGE, true, "ns_1st_metric", "ns_1st_metric", "");
	name_is("", "temp", "Cel", PT_GAUGE, true, "temp_celsius", "temp_celsius", "celsius");
	/* "ratio" already in the name: not added again, and no UNIT since the name does not end with it */
	name_is("", "ratio.already", "1", PT_GAUGE, true, "ratio_already", "ratio_already", "");
	name_is("", "cache.hit.ratio", "1", PT_GAUGE, true, "cache_hit_ratio", "cache_hit_ratio", "ratio");
	/* suffixes off: no unit, no _total; OpenMetrics still adds _total to samples itself */
	name_is("", "postgresql.db_size", "By", PT_GAUGE, false, "postgresql_db_size", "postgresql_db_size", "");
	name_is("", "postgresql.commits", "1", PT_COUNTER, false, "postgresql_commits", "postgresql_commits", "");
	name_is("", "x_seconds", "s", PT_GAUGE, false, "x_seconds", "x_seconds", "seconds");

	char t[PROM_NAME_MAX], o[PROM_NAME_MAX], u[160];
	assert_int_equal(prom_family_names("", "...", "", PT_GAUGE, true, t, o, u), DBI_ERR);
	assert_int_equal(prom_family_names("", "", "", PT_GAUGE, true, t, o, u), DBI_ERR);

	prom_unit_words("MiBy", u, sizeof(u));
	assert_string_equal(u, "mebibytes");
	prom_unit_words("{rows}", u, sizeof(u));
	assert_string_equal(u, "");
	prom_unit_words("m/h", u, sizeof(u));
	assert_string_equal(u, "meters_per_hour");
}

static void test_sanitize_escape(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(dbi_prom_sanitize("1a.b-c", 6, out, sizeof(out), false), 7);
	assert_string_equal(out, "_1a_b_c");
	dbi_prom_sanitize("__reserved", 10, out, sizeof(out), false);
	assert_string_equal(out, "_reserved");
	dbi_prom_sanitize("a:b", 3, out, sizeof(out), false);
	assert_string_equal(out, "a_b");
	dbi_prom_sanitize("a:b", 3, out, sizeof(out), true);
	assert_string_equal(out, "a:b");
	dbi_prom_sanitize("aaaaaaaaaa", 10, out, 4, false);
	assert_string_equal(out, "aaa");

	struct dbi_tbuf b = {0};
	const char v[] = "a\\b\"c\nd";
	dbi_tbuf_label_value(&b, v, sizeof(v) - 1);
	dbi_tbuf_putc(&b, '\0');
	assert_string_equal(b.p, "a\\\\b\\\"c\\nd");
	b.len = 0;
	const char bad[] = "x\xff\xc3\xa9\xe2\x82y\xed\xa0\x80z";
	dbi_tbuf_label_value(&b, bad, sizeof(bad) - 1);
	dbi_tbuf_putc(&b, '\0');
	/* 0xff, the truncated E2 82 and the surrogate ED A0 80 become U+FFFD; é stays */
	assert_string_equal(b.p, "x\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz");
	b.len = 0;
	dbi_tbuf_help(&b, v, sizeof(v) - 1, false);
	dbi_tbuf_putc(&b, '\0');
	assert_string_equal(b.p, "a\\\\b\"c\\nd");
	b.len = 0;
	dbi_tbuf_help(&b, v, sizeof(v) - 1, true);
	dbi_tbuf_putc(&b, '\0');
	assert_string_equal(b.p, "a\\\\b\\\"c\\nd");
	dbi_tbuf_free(&b);
}

static void canonical(double v, const char *text, const char *om)
{
	char out[DBI_PROM_NUM_MAX];
	dbi_prom_fmt_canonical(v, false, out);
	assert_string_equal(out, text);
	dbi_prom_fmt_canonical(v, true, out);
	assert_string_equal(out, om);
}

static void test_numbers(void **state)
{
	(void)state;
	char out[DBI_PROM_NUM_MAX];
	canonical(0.001, "0.001", "0.001");
	canonical(1, "1", "1.0");
	canonical(10, "10", "10.0");
	canonical(0.95, "0.95", "0.95");
	canonical(100000, "100000", "100000.0");
	canonical(1e6, "1e+06", "1e+06");
	canonical(1e-5, "1e-05", "1e-05");
	canonical(0.0001, "0.0001", "0.0001");
	canonical(2.5e10, "2.5e+10", "2.5e+10");
	canonical(1.0 / 0.0, "+Inf", "+Inf");
	canonical(-1.0 / 0.0, "-Inf", "-Inf");
	canonical(0.1 + 0.2, "0.30000000000000004", "0.30000000000000004");

	dbi_prom_fmt_double(3.0, out);
	assert_string_equal(out, "3");
	dbi_prom_fmt_double(-0.5, out);
	assert_string_equal(out, "-0.5");
	dbi_prom_fmt_double(0.1, out);
	assert_string_equal(out, "0.1");
	dbi_prom_fmt_double(1.0 / 3.0, out);
	assert_true(strtod(out, NULL) == 1.0 / 3.0);
	dbi_prom_fmt_double(1e300, out);
	assert_string_equal(out, "1e+300");
	dbi_prom_fmt_double(0.0 / 0.0, out);
	assert_string_equal(out, "NaN");
	size_t n = dbi_prom_fmt_int(INT64_MIN, out);
	out[n] = '\0';
	assert_string_equal(out, "-9223372036854775808");
	n = dbi_prom_fmt_uint(UINT64_MAX, out);
	out[n] = '\0';
	assert_string_equal(out, "18446744073709551615");
}

/* ---- pages ---- */

static void test_counter_gauge_page(void **state)
{
	(void)state;
	struct fx f;
	fx_cfg(&f);
	char *ck[] = {"region"}, *cv[] = {"eu \"west\""};
	f.cfg.const_labels = (struct dbi_strmap){.k = ck, .v = cv, .n = 1};
	fx_start(&f);
	uint32_t res = resource(&f, "postgres", "db-1:5432");
	uint32_t mc = metric(&f, "postgresql.commits", "1", "Commits.\nPer database \\ total.", DBI_MK_SUM, 1,
	                     DBI_TEMP_CUMULATIVE);
	uint32_t mg = metric(&f, "postgresql.db_size", "By", "Size \"on disk\".", DBI_MK_SUM, 0, DBI_TEMP_CUMULATIVE);
	struct dbi_attr a[] = {
	        {.key = "postgresql.database.name", .type = DBI_AT_STR, .v.s = "app\n\"x\""},
	        {.key = "a.b", .type = DBI_AT_STR, .v.s = "first"},
	        {.key = "a_b", .type = DBI_AT_STR, .v.s = "second"},
	        {.key = "job", .type = DBI_AT_STR, .v.s = "shadow"},
	        {.key = "flag", .type = DBI_AT_BOOL, .v.b = 1},
	        {.key = "ratio", .type = DBI_AT_DOUBLE, .v.d = 0.25},
	};
	uint32_t s1 = series(&f, mc, res, a, DBI_ARRAY_LEN(a));
	uint32_t s2 = series(&f, mg, res, a, 1);
	uint64_t t0 = 1700000000000000000ULL;
	struct dbi_point pts[] = {
	        {.series = s1, .start_ns = t0, .time_ns = t0 + 5000000000ULL, .v.i = 42, .kind = DBI_PK_SUM},
	        {.series = s2, .time_ns = t0 + 5000000000ULL, .v.d = 1.5e9, .flags = DBI_PF_DOUBLE, .kind = DBI_PK_SUM},
	};
	feed(&f, pts, 2, NULL, 0);

	const char *t = page(&f, PROM_FMT_TEXT);
	has_line(t, "# HELP db_intelligence_postgresql_commits_total Commits.\\nPer database \\\\ total.");
	has_line(t, "# TYPE db_intelligence_postgresql_commits_total counter");
	has_line(t, "db_intelligence_postgresql_commits_total{job=\"postgres\",instance=\"db-1:5432\","
	            "otel_scope_name=\"dbi/test\",otel_scope_version=\"1.2\",region=\"eu \\\"west\\\"\","
	            "a_b=\"first;second\",exported_job=\"shadow\",flag=\"true\","
	            "postgresql_database_name=\"app\\n\\\"x\\\"\",ratio=\"0.25\"} 42");
	has_line(t, "# HELP db_intelligence_postgresql_db_size_bytes Size \"on disk\".");
	has_line(t, "# TYPE db_intelligence_postgresql_db_size_bytes gauge");
	has_line(t, "db_intelligence_postgresql_db_size_bytes{job=\"postgres\",instance=\"db-1:5432\","
	            "otel_scope_name=\"dbi/test\",otel_scope_version=\"1.2\",region=\"eu \\\"west\\\"\","
	            "postgresql_database_name=\"app\\n\\\"x\\\"\"} 1500000000");
	has_line(t, "# TYPE target_info gauge");
	has_line(t, "target_info{job=\"postgres\",instance=\"db-1:5432\",host_name=\"db-1\",server_port=\"5432\"} 1");
	no_text(t, "# EOF");
	no_text(t, "_created");

	const char *om = page(&f, PROM_FMT_OM);
	has_line(om, "# TYPE db_intelligence_postgresql_commits counter");
	has_line(om, "# HELP db_intelligence_postgresql_commits Commits.\\nPer database \\\\ total.");
	has_line(om, "# TYPE db_intelligence_postgresql_db_size_bytes gauge");
	has_line(om, "# UNIT db_intelligence_postgresql_db_size_bytes bytes");
	has_line(om, "# HELP db_intelligence_postgresql_db_size_bytes Size \\\"on disk\\\".");
	has_line(om, "# TYPE target info");
	has_line(om, "db_intelligence_postgresql_commits_created{job=\"postgres\",instance=\"db-1:5432\","
	             "otel_scope_name=\"dbi/test\",otel_scope_version=\"1.2\",region=\"eu \\\"west\\\"\","
	             "a_b=\"first;second\",exported_job=\"shadow\",flag=\"true\","
	             "postgresql_database_name=\"app\\n\\\"x\\\"\",ratio=\"0.25\"} 1700000000.000000000");
	assert_true(strlen(om) > 6 && strcmp(om + strlen(om) - 6, "# EOF\n") == 0);

	/* a later point replaces a cumulative value */
	pts[0].v.i = 50;
	pts[0].time_ns += 1000;
	feed(&f, pts, 1, NULL, 0);
	t = page(&f, PROM_FMT_TEXT);
	no_text(t, "} 42\n");
	assert_int_equal(stat(&f, "series"), 2);
	assert_int_equal(stat(&f, "points"), 3);
	fx_done(&f);
}

static void test_resource_labels_and_timestamps(void **state)
{
	(void)state;
	struct fx f;
	fx_cfg(&f);
	f.cfg.resource_to_telemetry = true;
	f.cfg.send_timestamps = true;
	free(f.cfg.namespace_);
	f.cfg.namespace_ = strdup("");
	fx_start(&f);
	struct dbi_attr ra[] = {
	        {.key = "service.name", .type = DBI_AT_STR, .v.s = "pg"},
	        {.key = "service.namespace", .type = DBI_AT_STR, .v.s = "prod"},
	        {.key = "host.name", .type = DBI_AT_STR, .v.s = "h"},
	};
	uint32_t res = dbi_attrs_intern(f.reg, ra, 3);
	uint32_t m = metric(&f, "g", "", "", DBI_MK_GAUGE, 0, 0);
	struct dbi_attr pa = {.key = "host.name", .type = DBI_AT_STR, .v.s = "point-wins"};
	uint32_t s = series(&f, m, res, &pa, 1);
	struct dbi_point pt = {.series = s, .time_ns = 1700000000123456789ULL, .v.i = -7, .kind = DBI_PK_GAUGE};
	feed(&f, &pt, 1, NULL, 0);
	const char *t = page(&f, PROM_FMT_TEXT);
	/* no description: no HELP; job = namespace/name; no instance; point attribute beats resource attribute */
	no_text(t, "# HELP g ");
	has_line(t, "# TYPE g gauge");
	has_line(t,
	         "g{job=\"prod/pg\",otel_scope_name=\"dbi/test\",otel_scope_version=\"1.2\",host_name=\"point-wins\","
	         "service_name=\"pg\",service_namespace=\"prod\"} -7 1700000000123");
	has_line(t, "target_info{job=\"prod/pg\",host_name=\"h\"} 1");
	const char *om = page(&f, PROM_FMT_OM);
	has_line(om,
	         "g{job=\"prod/pg\",otel_scope_name=\"dbi/test\",otel_scope_version=\"1.2\",host_name=\"point-wins\","
	         "service_name=\"pg\",service_namespace=\"prod\"} -7 1700000000.123");
	fx_done(&f);
}

static const struct dbi_rec_hdr *hist_rec(uint8_t *buf, uint32_t s, uint64_t start, uint64_t t, const double *b,
                                          const uint64_t *c, unsigned nb, double sum, uint16_t flags)
{
	struct dbi_hist_rec *r = (struct dbi_hist_rec *)(void *)buf;
	memset(r, 0, sizeof(*r));
	r->h.type = DBI_REC_HIST;
	r->h.len = (uint32_t)dbi_hist_rec_size(nb);
	r->series = s;
	r->start_ns = start;
	r->time_ns = t;
	r->sum = sum;
	r->flags = flags;
	r->nbounds = (uint16_t)nb;
	uint64_t total = 0;
	for (unsigned i = 0; i <= nb; i++)
		total += c[i];
	r->count = total;
	memcpy(dbi_hist_bounds(r), b, nb * sizeof(double));
	memcpy(dbi_hist_counts(r), c, (nb + 1) * sizeof(uint64_t));
	return &r->h;
}

static void test_histogram(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	uint32_t res = resource(&f, "svc", "i1");
	uint32_t m = metric(&f, "query.duration", "ms", "Query time.", DBI_MK_HISTOGRAM, 0, DBI_TEMP_CUMULATIVE);
	struct dbi_attr a = {.key = "le", .type = DBI_AT_STR, .v.s = "mine"};
	uint32_t s = series(&f, m, res, &a, 1);
	_Alignas(8) uint8_t buf[512];
	const double bounds[] = {0.5, 1, 1e6};
	const uint64_t counts[] = {1, 2, 3, 4};
	const struct dbi_rec_hdr *rec =
	        hist_rec(buf, s, 1000000000, 2000000000, bounds, counts, 3, 123.5, DBI_HF_HAS_SUM);
	feed(&f, NULL, 0, &rec, 1);
	const char *t = page(&f, PROM_FMT_TEXT);
	const char *L = "job=\"svc\",instance=\"i1\",otel_scope_name=\"dbi/test\",otel_scope_version=\"1.2\","
	                "exported_le=\"mine\"";
	char line[512];
	has_line(t, "# TYPE db_intelligence_query_duration_milliseconds histogram");
	snprintf(line, sizeof(line), "db_intelligence_query_duration_milliseconds_bucket{%s,le=\"0.5\"} 1", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_query_duration_milliseconds_bucket{%s,le=\"1\"} 3", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_query_duration_milliseconds_bucket{%s,le=\"1e+06\"} 6", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_query_duration_milliseconds_bucket{%s,le=\"+Inf\"} 10", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_query_duration_milliseconds_sum{%s} 123.5", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_query_duration_milliseconds_count{%s} 10", L);
	has_line(t, line);
	const char *om = page(&f, PROM_FMT_OM);
	has_line(om, "# UNIT db_intelligence_query_duration_milliseconds milliseconds");
	snprintf(line, sizeof(line), "db_intelligence_query_duration_milliseconds_bucket{%s,le=\"1.0\"} 3", L);
	has_line(om, line);
	snprintf(line, sizeof(line), "db_intelligence_query_duration_milliseconds_created{%s} 1.000000000", L);
	has_line(om, line);

	/* no sum, or a negative minimum: no _sum line */
	const double b2[] = {0};
	const uint64_t c2[] = {2, 3};
	rec = hist_rec(buf, s, 1000000000, 3000000000, b2, c2, 1, -4, DBI_HF_HAS_SUM | DBI_HF_HAS_MINMAX);
	((struct dbi_hist_rec *)(void *)buf)->min = -3;
	feed(&f, NULL, 0, &rec, 1);
	t = page(&f, PROM_FMT_TEXT);
	no_text(t, "_sum{");
	snprintf(line, sizeof(line), "db_intelligence_query_duration_milliseconds_bucket{%s,le=\"0\"} 2", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_query_duration_milliseconds_count{%s} 5", L);
	has_line(t, line);

	/* malformed: bounds not increasing, or length short of the arrays */
	const double bad[] = {2, 1};
	rec = hist_rec(buf, s, 0, 4000000000, bad, counts, 2, 0, 0);
	feed(&f, NULL, 0, &rec, 1);
	assert_int_equal(stat(&f, "dropped.bad_record"), 1);
	rec = hist_rec(buf, s, 0, 4000000000, bounds, counts, 3, 0, 0);
	((struct dbi_hist_rec *)(void *)buf)->h.len = sizeof(struct dbi_hist_rec) + 8;
	feed(&f, NULL, 0, &rec, 1);
	assert_int_equal(stat(&f, "dropped.bad_record"), 2);
	/* a gauge point for a histogram metric */
	feed_point(&f, s, 0, 5000000000, 1);
	assert_int_equal(stat(&f, "dropped.kind_mismatch"), 1);
	fx_done(&f);
}

static const struct dbi_rec_hdr *summary_rec(uint8_t *buf, size_t cap, uint32_t s, uint32_t flags)
{
	Opentelemetry__Proto__Metrics__V1__SummaryDataPoint dp =
	        OPENTELEMETRY__PROTO__METRICS__V1__SUMMARY_DATA_POINT__INIT;
	Opentelemetry__Proto__Metrics__V1__SummaryDataPoint__ValueAtQuantile q[3], *qp[3];
	const double qs[] = {0.5, 0.9, 0.99}, vs[] = {1.5, 7, 12.25};
	for (int i = 0; i < 3; i++) {
		opentelemetry__proto__metrics__v1__summary_data_point__value_at_quantile__init(&q[i]);
		q[i].quantile = qs[i];
		q[i].value = vs[i];
		qp[i] = &q[i];
	}
	dp.start_time_unix_nano = 2000000000;
	dp.time_unix_nano = 3000000000;
	dp.count = 40;
	dp.sum = 99.5;
	dp.n_quantile_values = 3;
	dp.quantile_values = qp;
	dp.flags = flags;
	struct dbi_otlp_point_rec *r = (struct dbi_otlp_point_rec *)(void *)buf;
	memset(r, 0, sizeof(*r));
	size_t n = opentelemetry__proto__metrics__v1__summary_data_point__get_packed_size(&dp);
	assert_true(sizeof(*r) + n <= cap);
	opentelemetry__proto__metrics__v1__summary_data_point__pack(&dp, (uint8_t *)(r + 1));
	r->h.type = DBI_REC_SUMMARY;
	r->h.len = (uint32_t)(sizeof(*r) + n);
	r->series = s;
	r->pb_len = (uint32_t)n;
	return &r->h;
}

static void test_summary(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	uint32_t res = resource(&f, "svc", "i1");
	uint32_t m = metric(&f, "rpc.latency", "s", "Latency.", DBI_MK_SUMMARY, 0, 0);
	uint32_t s = series(&f, m, res, NULL, 0);
	_Alignas(8) uint8_t buf[1024];
	const struct dbi_rec_hdr *rec = summary_rec(buf, sizeof(buf), s, 0);
	feed(&f, NULL, 0, &rec, 1);
	const char *t = page(&f, PROM_FMT_TEXT);
	const char *L = "job=\"svc\",instance=\"i1\",otel_scope_name=\"dbi/test\",otel_scope_version=\"1.2\"";
	char line[512];
	has_line(t, "# TYPE db_intelligence_rpc_latency_seconds summary");
	snprintf(line, sizeof(line), "db_intelligence_rpc_latency_seconds{%s,quantile=\"0.5\"} 1.5", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_rpc_latency_seconds{%s,quantile=\"0.99\"} 12.25", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_rpc_latency_seconds_sum{%s} 99.5", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_rpc_latency_seconds_count{%s} 40", L);
	has_line(t, line);
	const char *om = page(&f, PROM_FMT_OM);
	snprintf(line, sizeof(line), "db_intelligence_rpc_latency_seconds_created{%s} 2.000000000", L);
	has_line(om, line);

	/* garbage bytes are counted, not trusted */
	struct dbi_otlp_point_rec *r = (struct dbi_otlp_point_rec *)(void *)buf;
	memset(r + 1, 0xff, 16);
	r->pb_len = 16;
	r->h.len = sizeof(*r) + 16;
	feed(&f, NULL, 0, &rec, 1);
	assert_int_equal(stat(&f, "dropped.bad_record"), 1);
	r->pb_len = 4096; /* longer than the record */
	feed(&f, NULL, 0, &rec, 1);
	assert_int_equal(stat(&f, "dropped.bad_record"), 2);
	/* no recorded value: the series leaves the page */
	rec = summary_rec(buf, sizeof(buf), s, 1);
	feed(&f, NULL, 0, &rec, 1);
	t = page(&f, PROM_FMT_TEXT);
	no_text(t, "rpc_latency");
	no_text(t, "target_info");
	assert_int_equal(stat(&f, "stale"), 1);
	assert_int_equal(stat(&f, "series"), 0);
	fx_done(&f);
}

static void test_delta_accumulation(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	uint32_t res = resource(&f, "svc", "i1");
	uint32_t md = metric(&f, "tx", "", "", DBI_MK_SUM, 1, DBI_TEMP_DELTA);
	uint32_t mn = metric(&f, "updown", "", "", DBI_MK_SUM, 0, DBI_TEMP_DELTA);
	uint32_t s = series(&f, md, res, NULL, 0);
	uint32_t sn = series(&f, mn, res, NULL, 0);
	const uint64_t T = 1000000000;
	feed_point(&f, s, 1 * T, 2 * T, 5);
	feed_point(&f, s, 2 * T, 3 * T, 3);
	feed_point(&f, s, 0, 4 * T, 2); /* no start time: continues */
	const char *t = page(&f, PROM_FMT_TEXT);
	has_line(t, "db_intelligence_tx_total{job=\"svc\",instance=\"i1\",otel_scope_name=\"dbi/test\","
	            "otel_scope_version=\"1.2\"} 10");
	const char *om = page(&f, PROM_FMT_OM);
	has_line(om, "db_intelligence_tx_created{job=\"svc\",instance=\"i1\",otel_scope_name=\"dbi/test\","
	             "otel_scope_version=\"1.2\"} 1.000000000");
	/* older than what was accumulated: dropped */
	feed_point(&f, s, 3 * T, 4 * T, 100);
	assert_int_equal(stat(&f, "dropped.out_of_order"), 1);
	/* a gap (start after the last end): the cumulative series restarts from this delta */
	feed_point(&f, s, 6 * T, 7 * T, 4);
	t = page(&f, PROM_FMT_TEXT);
	has_line(t, "db_intelligence_tx_total{job=\"svc\",instance=\"i1\",otel_scope_name=\"dbi/test\","
	            "otel_scope_version=\"1.2\"} 4");
	om = page(&f, PROM_FMT_OM);
	has_line(om, "db_intelligence_tx_created{job=\"svc\",instance=\"i1\",otel_scope_name=\"dbi/test\","
	             "otel_scope_version=\"1.2\"} 6.000000000");
	/* double deltas turn the sum into a double */
	struct dbi_point pt = {.series = s, .start_ns = 7 * T, .time_ns = 8 * T, .v.d = 0.5, .flags = DBI_PF_DOUBLE};
	feed(&f, &pt, 1, NULL, 0);
	t = page(&f, PROM_FMT_TEXT);
	has_line(t, "db_intelligence_tx_total{job=\"svc\",instance=\"i1\",otel_scope_name=\"dbi/test\","
	            "otel_scope_version=\"1.2\"} 4.5");
	/* delta non-monotonic sums are dropped (spec) */
	feed_point(&f, sn, 1 * T, 2 * T, 1);
	feed_point(&f, sn, 2 * T, 3 * T, 1);
	assert_int_equal(stat(&f, "dropped.delta_non_monotonic"), 2);
	no_text(page(&f, PROM_FMT_TEXT), "updown");

	/* delta histograms: bucket counts add up while the bounds stay the same */
	uint32_t mh = metric(&f, "lat", "s", "", DBI_MK_HISTOGRAM, 0, DBI_TEMP_DELTA);
	uint32_t sh = series(&f, mh, res, NULL, 0);
	_Alignas(8) uint8_t buf[512];
	const double b[] = {1, 2};
	const uint64_t c1[] = {1, 0, 1}, c2[] = {0, 2, 0};
	const struct dbi_rec_hdr *rec = hist_rec(buf, sh, 1 * T, 2 * T, b, c1, 2, 3.5, DBI_HF_HAS_SUM);
	feed(&f, NULL, 0, &rec, 1);
	rec = hist_rec(buf, sh, 2 * T, 3 * T, b, c2, 2, 3, DBI_HF_HAS_SUM);
	feed(&f, NULL, 0, &rec, 1);
	t = page(&f, PROM_FMT_TEXT);
	const char *L = "job=\"svc\",instance=\"i1\",otel_scope_name=\"dbi/test\",otel_scope_version=\"1.2\"";
	char line[512];
	snprintf(line, sizeof(line), "db_intelligence_lat_seconds_bucket{%s,le=\"1\"} 1", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_lat_seconds_bucket{%s,le=\"2\"} 3", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_lat_seconds_bucket{%s,le=\"+Inf\"} 4", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_lat_seconds_sum{%s} 6.5", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_lat_seconds_count{%s} 4", L);
	has_line(t, line);
	/* new bounds: start over */
	const double b3[] = {5};
	const uint64_t c3[] = {7, 1};
	rec = hist_rec(buf, sh, 3 * T, 4 * T, b3, c3, 1, 9, DBI_HF_HAS_SUM);
	feed(&f, NULL, 0, &rec, 1);
	t = page(&f, PROM_FMT_TEXT);
	snprintf(line, sizeof(line), "db_intelligence_lat_seconds_bucket{%s,le=\"5\"} 7", L);
	has_line(t, line);
	snprintf(line, sizeof(line), "db_intelligence_lat_seconds_count{%s} 8", L);
	has_line(t, line);
	no_text(t, "le=\"2\"");
	fx_done(&f);
}

static void test_expiration(void **state)
{
	(void)state;
	struct fx f;
	fx_cfg(&f);
	f.cfg.metric_expiration = 60 * DBI_NSEC_PER_SEC;
	fx_start(&f);
	uint32_t m = metric(&f, "g", "", "", DBI_MK_GAUGE, 0, 0);
	uint32_t r1 = resource(&f, "a", "1"), r2 = resource(&f, "b", "2");
	uint32_t s1 = series(&f, m, r1, NULL, 0), s2 = series(&f, m, r2, NULL, 0);
	feed_point(&f, s1, 0, 1, 1);
	feed_point(&f, s2, 0, 1, 2);
	uint64_t now = dbi_mono_ns();
	dbi_exporter_prometheus.tick(f.p, now, NULL);
	assert_int_equal(stat(&f, "series"), 2);
	assert_int_equal(stat(&f, "expired"), 0);
	/* at a time 61 s on, both are past 60 s without an update: the sweep removes both */
	uint64_t later = dbi_mono_ns() + 61 * DBI_NSEC_PER_SEC;
	dbi_exporter_prometheus.tick(f.p, later, NULL);
	assert_int_equal(stat(&f, "expired"), 2);
	assert_int_equal(stat(&f, "series"), 0);
	const char *t = page(&f, PROM_FMT_TEXT);
	no_text(t, "db_intelligence_g");
	no_text(t, "target_info");
	/* a series that comes back is resolved again */
	feed_point(&f, s1, 0, 3, 4);
	feed_point(&f, s2, 0, 4, 5);
	has_line(page(&f, PROM_FMT_TEXT), "db_intelligence_g{job=\"a\",instance=\"1\",otel_scope_name=\"dbi/test\","
	                                  "otel_scope_version=\"1.2\"} 4");
	/* only the quiet one goes: s1 last heard of 2 minutes ago (white box: its slot's time) */
	f.p->series[s1].seen -= 120 * DBI_NSEC_PER_SEC;
	assert_int_equal(prom_sweep(f.p, dbi_mono_ns()), 1);
	assert_int_equal(stat(&f, "series"), 1);
	assert_int_equal(stat(&f, "expired"), 3);
	t = page(&f, PROM_FMT_TEXT);
	no_text(t, "instance=\"1\"");
	has_line(t, "db_intelligence_g{job=\"b\",instance=\"2\",otel_scope_name=\"dbi/test\","
	            "otel_scope_version=\"1.2\"} 5");
	/* metric_expiration 0: never */
	f.cfg.metric_expiration = 0;
	assert_int_equal(prom_sweep(f.p, dbi_mono_ns() + 1000 * DBI_NSEC_PER_SEC), 0);
	fx_done(&f);
}

static void test_conflicts_duplicates(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	uint32_t res = resource(&f, "svc", "i1");
	/* gauge "x.y" and counter "x_y" share the OpenMetrics family name x_y */
	uint32_t mg = metric(&f, "x.y", "", "", DBI_MK_GAUGE, 0, 0);
	uint32_t mc = metric(&f, "x_y", "", "", DBI_MK_SUM, 1, DBI_TEMP_CUMULATIVE);
	uint32_t sg = series(&f, mg, res, NULL, 0), sc = series(&f, mc, res, NULL, 0);
	feed_point(&f, sg, 0, 1, 1);
	feed_point(&f, sc, 0, 1, 1);
	feed_point(&f, sc, 0, 2, 2);
	assert_int_equal(stat(&f, "dropped.type_conflict"), 2);
	/* two resources that differ only in attributes that are not labels: same series */
	struct dbi_attr ra[] = {{.key = "service.name", .type = DBI_AT_STR, .v.s = "svc"},
	                        {.key = "host.name", .type = DBI_AT_STR, .v.s = "a"}};
	uint32_t r1 = dbi_attrs_intern(f.reg, ra, 2);
	ra[1].v.s = "b";
	uint32_t r2 = dbi_attrs_intern(f.reg, ra, 2);
	uint32_t m = metric(&f, "d", "", "", DBI_MK_GAUGE, 0, 0);
	uint32_t s1 = series(&f, m, r1, NULL, 0), s2 = series(&f, m, r2, NULL, 0);
	feed_point(&f, s1, 0, 1, 1);
	feed_point(&f, s2, 0, 1, 2);
	assert_int_equal(stat(&f, "dropped.duplicate_series"), 1);
	const char *t = page(&f, PROM_FMT_TEXT);
	has_line(t, "db_intelligence_d{job=\"svc\",otel_scope_name=\"dbi/test\",otel_scope_version=\"1.2\"} 1");
	/* one target_info per job/instance */
	has_line(t, "target_info{job=\"svc\",host_name=\"a\"} 1");
	no_text(t, "host_name=\"b\"");
	/* exponential histograms and unknown series */
	_Alignas(8) uint8_t buf[64] = {0};
	struct dbi_otlp_point_rec *er = (struct dbi_otlp_point_rec *)(void *)buf;
	er->h.type = DBI_REC_EXPHIST;
	er->h.len = sizeof(*er);
	const struct dbi_rec_hdr *rec = &er->h;
	feed(&f, NULL, 0, &rec, 1);
	assert_int_equal(stat(&f, "dropped.exponential_histogram"), 1);
	feed_point(&f, 99999, 0, 1, 1);
	feed_point(&f, 4000000000u, 0, 1, 1); /* never sizes the store by a bogus id */
	feed_point(&f, 0, 0, 1, 1);
	assert_int_equal(stat(&f, "dropped.unknown_series"), 3);
	/* an OTel metric named like the exporter's own target_info family */
	free(f.cfg.namespace_);
	f.cfg.namespace_ = NULL;
	fx_done(&f);

	fx_cfg(&f);
	free(f.cfg.namespace_);
	f.cfg.namespace_ = strdup("");
	fx_start(&f);
	res = resource(&f, "svc", "i1");
	uint32_t mt = metric(&f, "target.info", "", "", DBI_MK_GAUGE, 0, 0);
	feed_point(&f, series(&f, mt, res, NULL, 0), 0, 1, 1);
	assert_int_equal(stat(&f, "dropped.type_conflict"), 1);
	fx_done(&f);
}

static void test_const_label_validation(void **state)
{
	(void)state;
	struct prom_cfg cfg = {0};
	struct dbi_errbuf err;
	char *k[] = {"ok_name", "bad-name", "__x", "job"}, *v[] = {"1", "2", "3", "4"};
	cfg.const_labels = (struct dbi_strmap){.k = k, .v = v, .n = 4};
	dbi_err_clear(&err);
	assert_int_equal(dbi_exporter_prometheus.validate(&cfg, "prometheus", &err), DBI_ERR);
	assert_int_equal(err.count, 3);
	assert_non_null(strstr(err.msg, "bad-name"));
	assert_non_null(strstr(err.msg, "__x"));
	assert_non_null(strstr(err.msg, "\"job\" is set by the exporter"));
	cfg.const_labels.n = 1;
	dbi_err_clear(&err);
	assert_int_equal(dbi_exporter_prometheus.validate(&cfg, "prometheus", &err), DBI_OK);
}

/* A scrape holding a page keeps it intact while renders go on; with every buffer held, renders skip. */
static void test_pages_held_by_scrapes(void **state)
{
	(void)state;
	struct fx f;
	fx_init(&f);
	uint32_t m = metric(&f, "g", "", "", DBI_MK_GAUGE, 0, 0);
	uint32_t s = series(&f, m, resource(&f, "a", "1"), NULL, 0);
	feed_point(&f, s, 0, 1, 111);
	const char *first = page(&f, PROM_FMT_TEXT);
	char *copy = strdup(first);
	struct prom_page *held = atomic_load(&f.p->cur);
	atomic_fetch_add(&held->refs, 1);
	for (int i = 0; i < 20; i++) {
		feed_point(&f, s, 0, 2 + (uint64_t)i, 200 + i);
		page(&f, PROM_FMT_TEXT);
	}
	assert_string_equal(held->body[PROM_FMT_TEXT].p ? copy : "", copy);
	assert_memory_equal(held->body[PROM_FMT_TEXT].p, copy, strlen(copy));
	has_line(page(&f, PROM_FMT_TEXT), "db_intelligence_g{job=\"a\",instance=\"1\",otel_scope_name=\"dbi/test\","
	                                  "otel_scope_version=\"1.2\"} 219");
	assert_true(f.p->npool <= 3);
	/* hold every buffer: the next render cannot take one */
	struct prom_page *cur = atomic_load(&f.p->cur);
	for (unsigned i = 0; i < f.p->npool; i++)
		if (f.p->pool[i] != held)
			atomic_fetch_add(&f.p->pool[i]->refs, 1);
	while (f.p->npool < PROM_PAGES) {
		assert_int_equal(prom_render_publish(f.p, PROM_FMT_BIT(PROM_FMT_TEXT), dbi_mono_ns()), DBI_OK);
		atomic_fetch_add(&atomic_load(&f.p->cur)->refs, 1);
	}
	assert_int_equal(prom_render_publish(f.p, PROM_FMT_BIT(PROM_FMT_TEXT), dbi_mono_ns()), DBI_AGAIN);
	assert_int_equal(stat(&f, "render_skipped"), 1);
	for (unsigned i = 0; i < f.p->npool; i++)
		atomic_fetch_sub(&f.p->pool[i]->refs, 1);
	assert_int_equal(prom_render_publish(f.p, PROM_FMT_BIT(PROM_FMT_TEXT), dbi_mono_ns()), DBI_OK);
	(void)cur;
	free(copy);
	fx_done(&f);
}

/* ---- HTTP ---- */

struct reply {
	int status;
	char headers[2048];
	char *body;
	size_t len;
};

static void http_get(unsigned port, const char *path, const char *method, const char *extra, struct reply *r)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	char req[1024];
	int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s\r\n", method,
	                 path, extra ? extra : "");
	assert_int_equal(write(fd, req, (size_t)n), n);
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	for (;;) {
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		ssize_t k = read(fd, buf + len, cap - len);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	close(fd);
	buf = realloc(buf, len + 1);
	buf[len] = '\0';
	char *end = strstr(buf, "\r\n\r\n");
	assert_non_null(end);
	*end = '\0';
	r->status = atoi(buf + 9);
	dbi_strlcpy(r->headers, buf, sizeof(r->headers));
	r->len = len - (size_t)(end + 4 - buf);
	r->body = malloc(r->len + 1);
	memcpy(r->body, end + 4, r->len);
	r->body[r->len] = '\0';
	free(buf);
}

static char *gunzip(const char *in, size_t len, size_t *out_len)
{
	size_t cap = 1 << 20;
	char *out = malloc(cap);
	z_stream z;
	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap - 1;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	*out_len = z.total_out;
	out[*out_len] = '\0';
	inflateEnd(&z);
	return out;
}

struct ticker {
	struct prom *p;
	_Atomic int stop;
};

/* Plays the exporter thread: ticks until told to stop. */
static void *tick_loop(void *arg)
{
	struct ticker *t = arg;
	while (!atomic_load(&t->stop)) {
		dbi_exporter_prometheus.tick(t->p, dbi_mono_ns(), NULL);
		dbi_sleep_ns(2 * DBI_NSEC_PER_MSEC);
	}
	return NULL;
}

static void test_http(void **state)
{
	(void)state;
	struct fx f;
	struct dbi_errbuf err;
	fx_init(&f);
	dbi_err_clear(&err);
	uint32_t m = metric(&f, "c", "", "A counter.", DBI_MK_SUM, 1, DBI_TEMP_CUMULATIVE);
	uint32_t s = series(&f, m, resource(&f, "svc", "i1"), NULL, 0);
	feed_point(&f, s, 5, 10, 7);
	assert_int_equal(dbi_exporter_prometheus.start(f.p, &err), DBI_OK);
	unsigned port = prom_port(f.p);
	assert_true(port > 0);
	struct ticker tk = {.p = f.p};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, tick_loop, &tk), 0);

	/* first scrape: no page yet, it asks for a render and gets a fresh page */
	struct reply r;
	http_get(port, "/metrics", "GET", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.headers, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
	has_line(r.body, "db_intelligence_c_total{job=\"svc\",instance=\"i1\",otel_scope_name=\"dbi/test\","
	                 "otel_scope_version=\"1.2\"} 7");
	free(r.body);

	/* OpenMetrics by preference (Prometheus' own Accept header), gzipped */
	http_get(port, "/metrics", "GET",
	         "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
	         "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\nAccept-Encoding: gzip\r\n",
	         &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.headers, "Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8"));
	assert_non_null(strstr(r.headers, "Content-Encoding: gzip"));
	size_t plain_len;
	char *plain = gunzip(r.body, r.len, &plain_len);
	has_line(plain, "# TYPE db_intelligence_c counter");
	has_line(plain, "# EOF");
	free(plain);
	free(r.body);

	/* text preferred; gzip refused with q=0 */
	http_get(port, "/metrics", "GET",
	         "Accept: application/openmetrics-text;q=0.2, text/plain;q=0.9\r\nAccept-Encoding: gzip;q=0, br\r\n",
	         &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.headers, "text/plain; version=0.0.4"));
	assert_null(strstr(r.headers, "Content-Encoding"));
	free(r.body);

	/* an update (fed while the ticker is paused: both are exporter-thread work), then the
	 * next scrapes show it once render_interval has passed (1 s) */
	atomic_store(&tk.stop, 1);
	pthread_join(th, NULL);
	feed_point(&f, s, 5, 20, 8);
	atomic_store(&tk.stop, 0);
	assert_int_equal(pthread_create(&th, NULL, tick_loop, &tk), 0);
	uint64_t deadline = dbi_mono_ns() + 5 * DBI_NSEC_PER_SEC;
	bool seen = false;
	while (!seen && dbi_mono_ns() < deadline) {
		http_get(port, "/metrics", "GET", NULL, &r);
		seen = strstr(r.body, "} 8\n") != NULL;
		free(r.body);
		if (!seen)
			dbi_sleep_ns(50 * DBI_NSEC_PER_MSEC);
	}
	assert_true(seen);

	http_get(port, "/other", "GET", NULL, &r);
	assert_int_equal(r.status, 404);
	free(r.body);
	http_get(port, "/metrics", "POST", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(r.headers, "Allow: GET, HEAD"));
	free(r.body);
	http_get(port, "/metrics", "HEAD", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	free(r.body);

	atomic_store(&tk.stop, 1);
	pthread_join(th, NULL);
	dbi_exporter_prometheus.tick(f.p, dbi_mono_ns(), NULL);
	assert_true(stat(&f, "scrapes") >= 5);
	assert_int_equal(stat(&f, "scrapes_gzip"), 1);
	assert_int_equal(stat(&f, "scrapes_openmetrics"), 1);
	assert_true(stat(&f, "scrape_waits") >= 1);
	dbi_exporter_prometheus.stop(f.p);
	fx_done(&f);
}

/* enable_open_metrics: false answers text even to a scraper that prefers OpenMetrics */
static void test_http_text_only(void **state)
{
	(void)state;
	struct fx f;
	struct dbi_errbuf err;
	fx_cfg(&f);
	f.cfg.enable_open_metrics = false;
	fx_start(&f);
	dbi_err_clear(&err);
	uint32_t m = metric(&f, "g", "", "", DBI_MK_GAUGE, 0, 0);
	feed_point(&f, series(&f, m, resource(&f, "svc", "i1"), NULL, 0), 0, 10, 3);
	assert_int_equal(dbi_exporter_prometheus.start(f.p, &err), DBI_OK);
	struct ticker tk = {.p = f.p};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, tick_loop, &tk), 0);
	struct reply r;
	http_get(prom_port(f.p), "/metrics", "GET", "Accept: application/openmetrics-text;version=1.0.0\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.headers, "Content-Type: text/plain; version=0.0.4"));
	assert_null(strstr(r.body, "# EOF"));
	free(r.body);
	atomic_store(&tk.stop, 1);
	pthread_join(th, NULL);
	dbi_exporter_prometheus.stop(f.p);
	fx_done(&f);
}

static struct dbi_runtime *g_rt;
static struct dbi_config *g_rt_cfg;

#ifdef DBI_HAVE_JEMALLOC
static struct scraper *g_scraper;
static pthread_t g_scraper_th;

struct scraper {
	unsigned port;
	_Atomic int stop, slow;
	_Atomic uint64_t done;
};

/* Scrapes text, OpenMetrics and gzip in turn; while slow is set it holds each response a while. */
static void *scrape_loop(void *arg)
{
	struct scraper *sc = arg;
	static const char *const hdr[] = {
	        "Accept-Encoding: gzip\r\n",
	        "Accept: application/openmetrics-text;version=1.0.0\r\nAccept-Encoding: gzip\r\n", "",
	        "Accept: application/openmetrics-text;version=1.0.0\r\n"};
	char buf[65536];
	for (unsigned i = 0; !atomic_load(&sc->stop); i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sc->port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			char req[256];
			int n = snprintf(req, sizeof(req),
			                 "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n", hdr[i % 4]);
			if (write(fd, req, (size_t)n) == n) {
				if (atomic_load(&sc->slow))
					dbi_sleep_ns(60 * DBI_NSEC_PER_MSEC); /* the page stays referenced meanwhile */
				while (read(fd, buf, sizeof(buf)) > 0)
					;
			}
			atomic_fetch_add(&sc->done, 1);
		}
		if (fd >= 0)
			close(fd);
		dbi_sleep_ns(5 * DBI_NSEC_PER_MSEC);
	}
	return NULL;
}

static uint64_t counter_of(struct dbi_shm *shm, const char *id, const char *name)
{
	uint32_t n;
	const struct dbi_shm_region *r = dbi_shm_regions(shm, &n);
	for (uint32_t i = 0; i < n; i++) {
		if (r[i].kind != DBI_REGION_STATS)
			continue;
		const struct dbi_stats_block *b = dbi_shm_region_ptr(shm, &r[i]);
		if (strcmp(b->id, id) != 0)
			continue;
		for (uint32_t k = 0; k < b->n; k++)
			if (strcmp(b->names[k], name) == 0)
				return __atomic_load_n(&b->v[k], __ATOMIC_ACQUIRE);
	}
	return 0;
}

static uint64_t exporter_allocated(struct dbi_shm *shm)
{
	uint32_t n;
	const struct dbi_shm_region *r = dbi_shm_regions(shm, &n);
	for (uint32_t i = 0; i < n; i++) {
		if (r[i].kind != DBI_REGION_THREAD)
			continue;
		const struct dbi_shm_thread *t = dbi_shm_region_ptr(shm, &r[i]);
		if (strcmp(t->name, "exp:prometheus") == 0)
			return atomic_load(&t->allocated_bytes);
	}
	fail_msg("no exp:prometheus thread");
	return 0;
}
#endif

/*
 * The exporter thread allocates nothing in the steady state: points applied, pages
 * rendered in both formats and gzipped, expiry sweeps, while a client scrapes all the
 * time. Warm-up: every series seen (values past 100, so their width is stable below
 * 1000) and three page buffers in use (one held by a slow scrape, one published, one
 * rendered into).
 */
static void test_exporter_thread_allocates_nothing(void **state)
{
	(void)state;
#ifndef DBI_HAVE_JEMALLOC
	skip();
#else
	char yaml[1024];
	int port = 0;
	{
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t sl = sizeof(sa);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
		port = ntohs(sa.sin_port);
		close(fd);
	}
	snprintf(yaml, sizeof(yaml),
	         "receivers: {loadgen: {targets: 10, series_per_target: 100, rate: 100000}}\n"
	         "exporters: {prometheus: {endpoint: \"127.0.0.1:%d\", render_interval: 10ms, metric_expiration: 1m}}\n"
	         "service: {telemetry: {metrics: {level: none}},\n"
	         "          pipelines: {metrics: {receivers: [loadgen], exporters: [prometheus]}}}\n"
	         "runtime: {shm: {name: dbi.test.promalloc.%d}, rings: {points: 16384, bytes: 1MiB}}\n",
	         port, (int)getpid());
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	assert_int_equal(dbi_config_load_string(yaml, "<test>", dbi_components, &g_rt_cfg, &err), DBI_OK);
	assert_int_equal(dbi_runtime_create(&g_rt, g_rt_cfg, NULL, &err), DBI_OK);
	assert_int_equal(dbi_runtime_start(g_rt, &err), DBI_OK);
	struct dbi_shm *shm = dbi_runtime_shm(g_rt);
	static struct scraper sc;
	sc = (struct scraper){.port = (unsigned)port, .slow = 1};
	g_scraper = &sc;
	assert_int_equal(pthread_create(&g_scraper_th, NULL, scrape_loop, &sc), 0);

	uint64_t t0 = dbi_mono_ns();
	while (counter_of(shm, "exporter:prometheus", "points") < 1000 * 110 &&
	       dbi_mono_ns() - t0 < 30 * DBI_NSEC_PER_SEC)
		dbi_sleep_ns(10 * DBI_NSEC_PER_MSEC);
	dbi_sleep_ns(300 * DBI_NSEC_PER_MSEC);
	atomic_store(&sc.slow, 0);
	dbi_sleep_ns(100 * DBI_NSEC_PER_MSEC);

	uint64_t a = exporter_allocated(shm), r0 = counter_of(shm, "exporter:prometheus", "renders");
	uint64_t p0 = counter_of(shm, "exporter:prometheus", "points"), s0 = atomic_load(&sc.done);
	dbi_sleep_ns(1500 * DBI_NSEC_PER_MSEC);
	uint64_t b = exporter_allocated(shm), r1 = counter_of(shm, "exporter:prometheus", "renders");
	uint64_t p1 = counter_of(shm, "exporter:prometheus", "points"), s1 = atomic_load(&sc.done);
	printf("# %llu points, %llu renders, %llu scrapes; exporter thread allocated %llu -> %llu bytes\n",
	       (unsigned long long)(p1 - p0), (unsigned long long)(r1 - r0), (unsigned long long)(s1 - s0),
	       (unsigned long long)a, (unsigned long long)b);
	assert_true(p1 - p0 > 10000);
	assert_true(r1 - r0 > 10);
	assert_true(s1 - s0 > 10);
	assert_true(a > 0);
	assert_int_equal(a, b);
	assert_int_equal(dbi_runtime_stop(g_rt, 5 * DBI_NSEC_PER_SEC), DBI_OK);
#endif
}

/* Also after a failed assertion: no scraper thread, runtime or shm file left behind. */
static int runtime_teardown(void **state)
{
	(void)state;
#ifdef DBI_HAVE_JEMALLOC
	if (g_scraper) {
		atomic_store(&g_scraper->stop, 1);
		pthread_join(g_scraper_th, NULL);
		g_scraper = NULL;
	}
#endif
	dbi_runtime_destroy(g_rt);
	g_rt = NULL;
	dbi_config_free(g_rt_cfg);
	g_rt_cfg = NULL;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_metric_names),
	        cmocka_unit_test(test_sanitize_escape),
	        cmocka_unit_test(test_numbers),
	        cmocka_unit_test(test_counter_gauge_page),
	        cmocka_unit_test(test_resource_labels_and_timestamps),
	        cmocka_unit_test(test_histogram),
	        cmocka_unit_test(test_summary),
	        cmocka_unit_test(test_delta_accumulation),
	        cmocka_unit_test(test_expiration),
	        cmocka_unit_test(test_conflicts_duplicates),
	        cmocka_unit_test(test_const_label_validation),
	        cmocka_unit_test(test_pages_held_by_scrapes),
	        cmocka_unit_test(test_http),
	        cmocka_unit_test(test_http_text_only),
	        cmocka_unit_test_teardown(test_exporter_thread_allocates_nothing, runtime_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
