/*
 * test_prometheus_kinds.c — every kind of family the `prometheus` exporter writes, read
 * back by a real Prometheus server through both of its parsers. Two exporter instances
 * share one registry and the same data: "om" answers OpenMetrics (what Prometheus asks
 * for), "txt" has enable_open_metrics: false and answers text 0.0.4. The data covers a
 * gauge with a unit, a non-monotonic sum, a delta counter, a histogram, a summary,
 * target_info, and a label value and a description full of characters that need
 * escaping (quote, backslash, newline, UTF-8). Prometheus scrapes both every second;
 * PromQL and the metadata API must give back the values, the label value byte for byte,
 * the HELP text, and histogram_quantile over our buckets. promtool checks the text page.
 * The Prometheus process is killed at exit, also when an assertion fails.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "opentelemetry/proto/metrics/v1/metrics.pb-c.h"

#include "../../src/exporters/prometheus/prom_int.h"
#include "dbi/clock.h"

#define WEIRD "a\"b\\c\nd \xc3\xa9 \xe2\x9c\x93"
#define HELP "Gauge with \"quotes\", a \\ backslash\nand a second line."

static pid_t g_prom = -1;
static char g_dir[PATH_MAX];

static void cleanup(void)
{
	if (g_prom > 0) {
		kill(-g_prom, SIGTERM);
		for (int i = 0; i < 100 && waitpid(g_prom, NULL, WNOHANG) == 0; i++)
			dbi_sleep_ns(100 * DBI_NSEC_PER_MSEC);
		if (waitpid(g_prom, NULL, WNOHANG) == 0) {
			kill(-g_prom, SIGKILL);
			waitpid(g_prom, NULL, 0);
		}
		g_prom = -1;
	}
	if (g_dir[0]) {
		char cmd[PATH_MAX + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", g_dir);
		g_dir[0] = '\0';
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

struct exp {
	struct prom_cfg cfg;
	struct dbi_stats_block blk;
	struct dbi_stats st;
	struct dbi_inst inst;
	struct prom *p;
};

static void exp_init(struct exp *e, struct dbi_registry *reg, const char *ns, bool om)
{
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	assert_int_equal(dbi_conf_defaults(dbi_exporter_prometheus.keys, &e->cfg, &err), DBI_OK);
	free(e->cfg.namespace_);
	e->cfg.namespace_ = strdup(ns);
	e->cfg.enable_open_metrics = om;
	e->cfg.endpoint.port = 0;
	assert_int_equal(
	        dbi_stats_init(&e->st, &e->blk, DBI_SK_EXPORTER, ns, "prometheus", dbi_exporter_prometheus.stats),
	        DBI_OK);
	e->inst = (struct dbi_inst){
	        .id = ns, .desc = &dbi_exporter_prometheus, .cfg = &e->cfg, .reg = reg, .stats = &e->st};
	void *state = NULL;
	assert_int_equal(dbi_exporter_prometheus.create(&e->inst, &state, &err), DBI_OK);
	e->p = state;
	assert_int_equal(dbi_exporter_prometheus.start(e->p, &err), DBI_OK);
}

static void exp_done(struct exp *e)
{
	dbi_exporter_prometheus.stop(e->p);
	dbi_exporter_prometheus.destroy(e->p);
	dbi_conf_release(dbi_exporter_prometheus.keys, &e->cfg);
}

static uint32_t metric(struct dbi_registry *reg, const char *name, const char *unit, const char *desc, int kind,
                       int mono, int temp)
{
	struct dbi_metric_def d = {.name = name,
	                           .unit = unit,
	                           .description = desc,
	                           .kind = (uint8_t)kind,
	                           .monotonic = (uint8_t)mono,
	                           .temporality = (uint8_t)temp};
	return dbi_metric_intern(reg, &d);
}

/* The same data into both exporters. */
static void feed(struct exp *e, int n, struct dbi_point *pts, uint32_t npts, const struct dbi_rec_hdr **recs,
                 uint32_t nrecs)
{
	for (int i = 0; i < n; i++) {
		struct dbi_batch b = {
		        .signal = DBI_SIG_METRICS, .pts = pts, .npts = npts, .recs = recs, .nrecs = nrecs};
		assert_int_equal(dbi_exporter_prometheus.consume(e[i].p, &b, NULL), DBI_OK);
	}
}

static void load(struct dbi_registry *reg, struct exp *e, int n)
{
	struct dbi_attr ra[] = {
	        {.key = "service.name", .type = DBI_AT_STR, .v.s = "svc"},
	        {.key = "service.instance.id", .type = DBI_AT_STR, .v.s = "i1"},
	        {.key = "host.name", .type = DBI_AT_STR, .v.s = "h"},
	};
	uint32_t res = dbi_attrs_intern(reg, ra, 3), scope = dbi_scope_intern(reg, "dbi/test", "1.2");
	struct dbi_attr wa = {.key = "weird", .type = DBI_AT_STR, .v.s = WEIRD};
	uint32_t weird = dbi_attrs_intern(reg, &wa, 1), none = dbi_attrs_intern(reg, NULL, 0);
	uint32_t g = dbi_series_intern(reg, metric(reg, "kinds.g", "By", HELP, DBI_MK_GAUGE, 0, 0), res, scope, weird);
	uint32_t c = dbi_series_intern(
	        reg,
	        metric(reg, "kinds.conns", "{connection}", "Open connections.", DBI_MK_SUM, 0, DBI_TEMP_CUMULATIVE),
	        res, scope, none);
	uint32_t tx = dbi_series_intern(
	        reg, metric(reg, "kinds.tx", "{tx}", "Transactions.", DBI_MK_SUM, 1, DBI_TEMP_DELTA), res, scope, none);
	uint32_t lat = dbi_series_intern(
	        reg, metric(reg, "kinds.lat", "s", "Latency.", DBI_MK_HISTOGRAM, 0, DBI_TEMP_CUMULATIVE), res, scope,
	        none);
	uint32_t rpc = dbi_series_intern(reg, metric(reg, "kinds.rpc", "s", "RPC time.", DBI_MK_SUMMARY, 0, 0), res,
	                                 scope, none);
	assert_true(g && c && tx && lat && rpc);

	uint64_t t = dbi_wall_ns();
	struct dbi_point pts[] = {
	        {.series = g, .time_ns = t, .v.d = 2.5, .flags = DBI_PF_DOUBLE, .kind = DBI_PK_GAUGE},
	        {.series = c, .start_ns = t - 60 * DBI_NSEC_PER_SEC, .time_ns = t, .v.i = 17, .kind = DBI_PK_SUM},
	        {.series = tx,
	         .start_ns = t - 20 * DBI_NSEC_PER_SEC,
	         .time_ns = t - 10 * DBI_NSEC_PER_SEC,
	         .v.i = 5,
	         .kind = DBI_PK_SUM},
	        {.series = tx, .start_ns = t - 10 * DBI_NSEC_PER_SEC, .time_ns = t, .v.i = 3, .kind = DBI_PK_SUM},
	};
	_Alignas(8) uint8_t hbuf[256], sbuf[512];
	struct dbi_hist_rec *h = (struct dbi_hist_rec *)(void *)hbuf;
	memset(h, 0, sizeof(*h));
	const double bounds[] = {0.1, 0.5, 1};
	const uint64_t counts[] = {1, 2, 3, 4};
	h->h.type = DBI_REC_HIST;
	h->h.len = (uint32_t)dbi_hist_rec_size(3);
	h->series = lat;
	h->start_ns = t - 60 * DBI_NSEC_PER_SEC;
	h->time_ns = t;
	h->count = 10;
	h->sum = 7.5;
	h->flags = DBI_HF_HAS_SUM;
	h->nbounds = 3;
	memcpy(dbi_hist_bounds(h), bounds, sizeof(bounds));
	memcpy(dbi_hist_counts(h), counts, sizeof(counts));

	Opentelemetry__Proto__Metrics__V1__SummaryDataPoint dp =
	        OPENTELEMETRY__PROTO__METRICS__V1__SUMMARY_DATA_POINT__INIT;
	Opentelemetry__Proto__Metrics__V1__SummaryDataPoint__ValueAtQuantile q[2], *qp[2] = {&q[0], &q[1]};
	for (int i = 0; i < 2; i++)
		opentelemetry__proto__metrics__v1__summary_data_point__value_at_quantile__init(&q[i]);
	q[0].quantile = 0.5;
	q[0].value = 1.5;
	q[1].quantile = 0.99;
	q[1].value = 12.25;
	dp.start_time_unix_nano = t - 60 * DBI_NSEC_PER_SEC;
	dp.time_unix_nano = t;
	dp.count = 40;
	dp.sum = 99.5;
	dp.n_quantile_values = 2;
	dp.quantile_values = qp;
	struct dbi_otlp_point_rec *sr = (struct dbi_otlp_point_rec *)(void *)sbuf;
	memset(sr, 0, sizeof(*sr));
	size_t pl = opentelemetry__proto__metrics__v1__summary_data_point__get_packed_size(&dp);
	assert_true(sizeof(*sr) + pl <= sizeof(sbuf));
	opentelemetry__proto__metrics__v1__summary_data_point__pack(&dp, (uint8_t *)(sr + 1));
	sr->h.type = DBI_REC_SUMMARY;
	sr->h.len = (uint32_t)(sizeof(*sr) + pl);
	sr->series = rpc;
	sr->pb_len = (uint32_t)pl;
	const struct dbi_rec_hdr *recs[] = {&h->h, &sr->h};
	feed(e, n, pts, 3, recs, 2);
	feed(e, n, pts + 3, 1, NULL, 0);
}

struct ticker {
	struct exp *e;
	int n;
	_Atomic int stop;
};

static void *tick_loop(void *arg)
{
	struct ticker *t = arg;
	while (!atomic_load(&t->stop)) {
		for (int i = 0; i < t->n; i++)
			dbi_exporter_prometheus.tick(t->e[i].p, dbi_mono_ns(), NULL);
		dbi_sleep_ns(5 * DBI_NSEC_PER_MSEC);
	}
	return NULL;
}

/* GET http://127.0.0.1:port/path; returns the body (malloc'd) and the status. */
static char *http_get(unsigned port, const char *path, const char *headers, int *status, size_t *blen)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*status = 0;
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char req[8192];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s\r\n", path,
	                 headers ? headers : "");
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	if (buf && write(fd, req, (size_t)n) == n) {
		for (;;) {
			if (len + 1 >= cap) {
				char *nb = realloc(buf, cap *= 2);
				if (!nb)
					break;
				buf = nb;
			}
			ssize_t k = read(fd, buf + len, cap - len - 1);
			if (k <= 0)
				break;
			len += (size_t)k;
		}
	}
	close(fd);
	if (!buf)
		return NULL;
	buf[len] = '\0';
	char *body = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.", 7) == 0)
		*status = atoi(buf + 9);
	if (!body) {
		free(buf);
		return NULL;
	}
	body += 4;
	*blen = len - (size_t)(body - buf);
	memmove(buf, body, *blen + 1);
	return buf;
}

static unsigned g_prom_port;

/* PromQL instant query: the result array (owned by *doc, which the caller puts). */
static struct json_object *query(const char *promql, struct json_object **doc)
{
	char path[4096] = "/api/v1/query?query=";
	size_t o = strlen(path);
	for (const unsigned char *s = (const unsigned char *)promql; *s && o + 4 < sizeof(path); s++) {
		if (isalnum(*s) || strchr("-_.~", *s))
			path[o++] = (char)*s;
		else
			o += (size_t)snprintf(path + o, sizeof(path) - o, "%%%02X", *s);
	}
	path[o] = '\0';
	int status;
	size_t len;
	char *body = http_get(g_prom_port, path, NULL, &status, &len);
	*doc = body ? json_tokener_parse(body) : NULL;
	free(body);
	struct json_object *data, *result;
	if (status != 200 || !*doc || !json_object_object_get_ex(*doc, "data", &data) ||
	    !json_object_object_get_ex(data, "result", &result))
		return NULL;
	return result;
}

/* Wait until promql returns n series; returns the value of the first and copies its labels. */
static double query_value(const char *promql, size_t n, const char *label, char *out, size_t outlen)
{
	uint64_t end = dbi_mono_ns() + 60 * DBI_NSEC_PER_SEC;
	for (;;) {
		struct json_object *doc = NULL, *res = query(promql, &doc);
		if (res && json_object_array_length(res) == n && n > 0) {
			struct json_object *s = json_object_array_get_idx(res, 0), *m, *v, *l;
			double val = 0;
			if (json_object_object_get_ex(s, "value", &v))
				val = strtod(json_object_get_string(json_object_array_get_idx(v, 1)), NULL);
			if (label && json_object_object_get_ex(s, "metric", &m) &&
			    json_object_object_get_ex(m, label, &l))
				dbi_strlcpy(out, json_object_get_string(l), outlen);
			json_object_put(doc);
			return val;
		}
		json_object_put(doc);
		if (dbi_mono_ns() > end)
			fail_msg("%s: never got %zu series", promql, n);
		dbi_sleep_ns(500 * DBI_NSEC_PER_MSEC);
	}
}

/* HELP text of a family from the metadata API. */
static void metadata_help(const char *family, char *out, size_t outlen, char *type, size_t tlen)
{
	char path[512];
	snprintf(path, sizeof(path), "/api/v1/metadata?metric=%s", family);
	uint64_t end = dbi_mono_ns() + 60 * DBI_NSEC_PER_SEC;
	for (;;) {
		int status;
		size_t len;
		char *body = http_get(g_prom_port, path, NULL, &status, &len);
		struct json_object *doc = body ? json_tokener_parse(body) : NULL, *data, *list, *h, *t;
		free(body);
		if (doc && json_object_object_get_ex(doc, "data", &data) &&
		    json_object_object_get_ex(data, family, &list) && json_object_array_length(list) > 0 &&
		    json_object_object_get_ex(json_object_array_get_idx(list, 0), "help", &h) &&
		    json_object_object_get_ex(json_object_array_get_idx(list, 0), "type", &t)) {
			dbi_strlcpy(out, json_object_get_string(h), outlen);
			dbi_strlcpy(type, json_object_get_string(t), tlen);
			json_object_put(doc);
			return;
		}
		json_object_put(doc);
		if (dbi_mono_ns() > end)
			fail_msg("no metadata for %s", family);
		dbi_sleep_ns(500 * DBI_NSEC_PER_MSEC);
	}
}

static unsigned free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void start_prometheus(unsigned om_port, unsigned txt_port)
{
	char cfg[PATH_MAX + 32], data[PATH_MAX + 32], listen[64], cfgarg[PATH_MAX + 64], dataarg[PATH_MAX + 64];
	snprintf(cfg, sizeof(cfg), "%s/prometheus.yml", g_dir);
	snprintf(data, sizeof(data), "%s/tsdb", g_dir);
	FILE *f = fopen(cfg, "w");
	assert_non_null(f);
	fprintf(f,
	        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
	        "scrape_configs:\n"
	        "  - job_name: om\n    honor_labels: true\n    static_configs: [{targets: ['127.0.0.1:%u']}]\n"
	        "  - job_name: txt\n    static_configs: [{targets: ['127.0.0.1:%u']}]\n",
	        om_port, txt_port);
	fclose(f);
	g_prom_port = free_port();
	snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%u", g_prom_port);
	snprintf(cfgarg, sizeof(cfgarg), "--config.file=%s", cfg);
	snprintf(dataarg, sizeof(dataarg), "--storage.tsdb.path=%s", data);
	g_prom = fork();
	assert_true(g_prom >= 0);
	if (g_prom == 0) {
		setpgid(0, 0);
		char logp[PATH_MAX + 32];
		snprintf(logp, sizeof(logp), "%s/prometheus.log", g_dir);
		if (!freopen(logp, "w", stdout) || !freopen(logp, "a", stderr) || chdir(g_dir) != 0)
			_exit(126);
		execlp("prometheus", "prometheus", cfgarg, dataarg, listen, "--log.level=warn", (char *)NULL);
		_exit(127);
	}
	setpgid(g_prom, g_prom);
	uint64_t end = dbi_mono_ns() + 60 * DBI_NSEC_PER_SEC;
	for (;;) {
		int status = 0;
		size_t len;
		free(http_get(g_prom_port, "/-/ready", NULL, &status, &len));
		if (status == 200)
			break;
		if (dbi_mono_ns() > end || waitpid(g_prom, NULL, WNOHANG) != 0)
			fail_msg("prometheus did not start (see %s/prometheus.log)", g_dir);
		dbi_sleep_ns(200 * DBI_NSEC_PER_MSEC);
	}
}

static void promtool_check(const char *page, size_t len)
{
	char path[PATH_MAX + 32], cmd[PATH_MAX * 2 + 64], out[4096] = "";
	snprintf(path, sizeof(path), "%s/page.txt", g_dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(page, 1, len, f), len);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	int rc = pclose(p);
	if (rc != 0 || n != 0)
		fail_msg("promtool check metrics (rc %d):\n%s\n--- page ---\n%.*s", rc, out, (int)len, page);
}

static void test_kinds(void **state)
{
	(void)state;
	if (system("command -v prometheus >/dev/null && command -v promtool >/dev/null") != 0) {
		fprintf(stderr, "prometheus/promtool not installed (Debian package prometheus)\n");
		skip();
	}
	snprintf(g_dir, sizeof(g_dir), "/tmp/dbi-prom-kinds.XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	struct dbi_registry *reg = dbi_registry_create(1000);
	struct exp e[2];
	memset(e, 0, sizeof(e));
	exp_init(&e[0], reg, "om", true);
	exp_init(&e[1], reg, "txt", false);
	load(reg, e, 2);
	struct ticker tk = {.e = e, .n = 2};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, tick_loop, &tk), 0);

	int status;
	size_t len;
	char *page = http_get(prom_port(e[1].p), "/metrics", NULL, &status, &len);
	assert_int_equal(status, 200);
	promtool_check(page, len);
	free(page);

	start_prometheus(prom_port(e[0].p), prom_port(e[1].p));
	char s[256], help[256], type[32];
	assert_true(query_value("up{job=\"om\"}", 1, NULL, NULL, 0) == 1);
	assert_true(query_value("up{job=\"txt\"}", 1, NULL, NULL, 0) == 1);
	for (int i = 0; i < 2; i++) {
		const char *ns = i ? "txt" : "om";
		char q[256];
		/* every value and the awkward label value, byte for byte, through either parser */
		snprintf(q, sizeof(q), "%s_kinds_g_bytes", ns);
		assert_true(query_value(q, 1, "weird", s, sizeof(s)) == 2.5);
		assert_string_equal(s, WEIRD);
		snprintf(q, sizeof(q), "%s_kinds_conns", ns);
		assert_true(query_value(q, 1, NULL, NULL, 0) == 17);
		snprintf(q, sizeof(q), "%s_kinds_tx_total", ns);
		assert_true(query_value(q, 1, NULL, NULL, 0) == 8); /* two deltas, 5 + 3 */
		snprintf(q, sizeof(q), "count(%s_kinds_lat_seconds_bucket)", ns);
		assert_true(query_value(q, 1, NULL, NULL, 0) == 4);
		snprintf(q, sizeof(q), "%s_kinds_lat_seconds_bucket{le=\"+Inf\"}", ns);
		assert_true(query_value(q, 1, NULL, NULL, 0) == 10);
		snprintf(q, sizeof(q), "%s_kinds_lat_seconds_sum", ns);
		assert_true(query_value(q, 1, NULL, NULL, 0) == 7.5);
		/* cumulative 1, 3, 6, 10: the median falls in (0.5, 1] at 2/3 of the way */
		snprintf(q, sizeof(q), "histogram_quantile(0.5, %s_kinds_lat_seconds_bucket)", ns);
		double med = query_value(q, 1, NULL, NULL, 0);
		assert_true(med > 0.8333 && med < 0.8334);
		snprintf(q, sizeof(q), "%s_kinds_rpc_seconds{quantile=\"0.99\"}", ns);
		assert_true(query_value(q, 1, NULL, NULL, 0) == 12.25);
		snprintf(q, sizeof(q), "%s_kinds_rpc_seconds_count", ns);
		assert_true(query_value(q, 1, NULL, NULL, 0) == 40);
		/* the HELP text comes back unescaped, in both formats' escaping */
		snprintf(q, sizeof(q), "%s_kinds_g_bytes", ns);
		metadata_help(q, help, sizeof(help), type, sizeof(type));
		assert_string_equal(help, HELP);
		assert_string_equal(type, "gauge");
	}
	/* text le values are "1", OpenMetrics ones "1.0" (canonical numbers) */
	assert_true(query_value("om_kinds_lat_seconds_bucket{le=\"1.0\"}", 1, NULL, NULL, 0) == 6);
	assert_true(query_value("txt_kinds_lat_seconds_bucket{le=\"1\"}", 1, NULL, NULL, 0) == 6);
	/* honor_labels keeps our job/instance on "om"; on "txt" Prometheus renames them */
	assert_true(query_value("target_info{job=\"svc\",instance=\"i1\"}", 1, "host_name", s, sizeof(s)) == 1);
	assert_string_equal(s, "h");
	assert_true(query_value("target_info{job=\"txt\",exported_job=\"svc\"}", 1, NULL, NULL, 0) == 1);
	metadata_help("om_kinds_lat_seconds", help, sizeof(help), type, sizeof(type));
	assert_string_equal(type, "histogram");
	metadata_help("om_kinds_tx", help, sizeof(help), type, sizeof(type));
	assert_string_equal(type, "counter");

	atomic_store(&tk.stop, 1);
	pthread_join(th, NULL);
	cleanup();
	exp_done(&e[0]);
	exp_done(&e[1]);
	dbi_registry_destroy(reg);
}

int main(void)
{
	atexit(cleanup);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_kinds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
