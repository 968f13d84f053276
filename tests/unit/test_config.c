/*
 * test_config.c — unit tests of the config loader (src/core/config*.c): a full valid
 * config through every key type, every error with its exact file:line:col, env
 * expansion, the duration/size/endpoint parsers, reload hashes and --help output.
 *
 * Uses its own component registry (tests/support/dbi_test_components.h) so the tests
 * do not move when real components change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/record.h"
#include "dbi_test_components.h"

/* The smallest valid config; 7 lines, so text appended to it starts at line 8. */
#define MIN_CFG                                                                                                        \
	"receivers:\n"                                                                                                 \
	"  loadgen:\n"                                                                                                 \
	"exporters:\n"                                                                                                 \
	"  debug:\n"                                                                                                   \
	"service:\n"                                                                                                   \
	"  pipelines:\n"                                                                                               \
	"    metrics: {receivers: [loadgen], exporters: [debug]}\n"

/* A pgtest receiver (3 lines) wired to debug: keys appended to PG_HEAD start at line 4. */
#define PG_HEAD "receivers:\n  pgtest:\n    username: u\n"
#define PG_TAIL "exporters:\n  debug:\nservice:\n  pipelines:\n    metrics: {receivers: [pgtest], exporters: [debug]}\n"

static struct dbi_errbuf g_err;

#define SENTINEL ((struct dbi_config *)(uintptr_t)0x5e5e)

static int load(const char *yaml, struct dbi_config **cfg)
{
	*cfg = SENTINEL;
	return dbi_config_load_string(yaml, "t.yaml", dbi_test_registry, cfg, &g_err);
}

static struct dbi_config *must_load(const char *yaml)
{
	struct dbi_config *cfg;
	int rc = load(yaml, &cfg);
	if (rc != DBI_OK)
		print_message("unexpected errors:\n%s\n", g_err.msg);
	assert_int_equal(rc, DBI_OK);
	assert_int_equal(g_err.count, 0);
	assert_non_null(cfg);
	assert_ptr_not_equal(cfg, SENTINEL);
	return cfg;
}

static bool has_line(const char *msg, const char *want)
{
	size_t n = strlen(want);
	for (const char *p = msg; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len == n && memcmp(p, want, n) == 0)
			return true;
		p = nl ? nl + 1 : NULL;
	}
	return false;
}

#define assert_has_line(want)                                                                                          \
	do {                                                                                                           \
		if (!has_line(g_err.msg, (want))) {                                                                    \
			print_message("missing line:\n  %s\ngot:\n%s\n", (want), g_err.msg);                           \
			fail();                                                                                        \
		}                                                                                                      \
	} while (0)

/* Loading fails, *out is untouched, and the message contains exactly this line. */
static void expect_error_at(const char *yaml, const char *want, const char *file, int line)
{
	struct dbi_config *cfg;
	int rc = load(yaml, &cfg);
	if (rc != DBI_ERR || !has_line(g_err.msg, want)) {
		print_message("%s:%d: expected line:\n  %s\ngot (rc %d):\n%s\n", file, line, want, rc, g_err.msg);
		if (rc == DBI_OK && cfg != SENTINEL)
			dbi_config_free(cfg);
		fail();
	}
	assert_ptr_equal(cfg, SENTINEL);
}
#define expect_error(yaml, want) expect_error_at((yaml), (want), __FILE__, __LINE__)

/* Only this one error. */
#define expect_only_error(yaml, want)                                                                                  \
	do {                                                                                                           \
		expect_error((yaml), (want));                                                                          \
		if (g_err.count != 1)                                                                                  \
			print_message("extra errors:\n%s\n", g_err.msg);                                               \
		assert_int_equal(g_err.count, 1);                                                                      \
	} while (0)

static const char *comp_id(const struct dbi_config *cfg, int idx)
{
	return cfg->components[idx].id;
}

/* ---- a full valid config ---- */

static const char full_cfg[] =
        "receivers:\n"
        "  pgtest:\n"
        "    endpoint: db1.example.com:6432\n"
        "    username: ${env:DBI_T_USER}\n"
        "    password: s3cret\n"
        "    databases: [app, \"billing\"]\n"
        "    collection_interval: 1m30s\n"
        "    tls:\n"
        "      enabled: yes\n"
        "      ca_file: /etc/ssl/ca.pem\n"
        "    targets:\n"
        "      - endpoint: \"[::1]:5433\"\n"
        "        name: local6\n"
        "        labels: {env: prod, team: db}\n"
        "      - endpoint: :5434\n"
        "    mode: fast\n"
        "    sample_percent: 12.5%\n"
        "    max_conns: 16\n"
        "  pgtest/replica:\n"
        "    username: replica_user\n"
        "    tls.enabled: on\n"
        "  otlp:\n"
        "    protocols:\n"
        "      grpc: {endpoint: 0.0.0.0:14317}\n"
        "  loadgen:\n"
        "processors:\n"
        "  batch:\n"
        "    send_batch_size: 1024\n"
        "    send_batch_max_size: 2048\n"
        "    timeout: 1.5s\n"
        "  memory_limiter: {check_interval: 250ms, limit_percentage: 75, limit: 2GiB}\n"
        "  attributes/scrub:\n"
        "    actions:\n"
        "      - {key: db.statement, action: delete}\n"
        "      - key: env\n"
        "        value: prod\n"
        "exporters:\n"
        "  debug: {verbosity: detailed, ratio: 0.25}\n"
        "  otlphttp/newrelic:\n"
        "    endpoint: https://otlp.nr-data.net\n"
        "    headers: {api-key: \"${env:DBI_T_KEY:-none}\"}\n"
        "    compression: zstd\n"
        "    retry_on_failure:\n"
        "      initial_interval: 2s\n"
        "      max_elapsed_time: 10m\n"
        "    sending_queue: {queue_size: 5000}\n"
        "    max_body: 8MB\n"
        "  otlp:\n"
        "  logsink:\n"
        "extensions:\n"
        "  health_check: {endpoint: \":13134\"}\n"
        "  pprof:\n"
        "service:\n"
        "  extensions: [health_check, pprof]\n"
        "  shutdown_timeout: 30s\n"
        "  telemetry:\n"
        "    logs: {level: debug}\n"
        "    metrics: {address: \"[::]:9888\", level: none}\n"
        "  pipelines:\n"
        "    metrics:\n"
        "      receivers: [pgtest, otlp, loadgen]\n"
        "      processors: [memory_limiter, attributes/scrub, batch]\n"
        "      exporters: [debug, otlphttp/newrelic, otlp]\n"
        "    logs/pg:\n"
        "      receivers: [pgtest/replica]\n"
        "      processors: [batch]\n"
        "      exporters: [logsink]\n"
        "runtime:\n"
        "  shm: {name: dbi.test, hugepages: off, size: 64MiB, dir: /dev/shm}\n"
        "  threads: {scrapers: 4, processors: 2, pin: none, cpus: [\"0-3\", \"6\", \"8-9,12\"]}\n"
        "  rings: {points: 131072, bytes: 8MiB}\n"
        "  max_series: 500000\n"
        "  state_dir: /var/lib/dbi-test\n";

static void test_full_config(void **state)
{
	struct dbi_config *cfg;
	const struct dbi_conf_component *c;
	const struct dbi_test_pg *pg;
	const struct dbi_test_target *t;

	(void)state;
	setenv("DBI_T_USER", "monitor", 1);
	unsetenv("DBI_T_KEY");
	cfg = must_load(full_cfg);
	assert_string_equal(cfg->path, "t.yaml");
	assert_int_equal(cfg->ncomponents, 13);

	c = dbi_config_find_kind(cfg, DBI_RECEIVER, "pgtest");
	assert_non_null(c);
	assert_int_equal(c->line, 2);
	assert_int_equal(c->col, 3);
	assert_int_equal(c->used, 1);
	assert_string_equal(c->type, "pgtest");
	assert_string_equal(c->name, "");
	assert_ptr_equal(c->desc, &dbi_test_pg);
	pg = c->cfg;
	assert_string_equal(pg->endpoint.host, "db1.example.com");
	assert_int_equal(pg->endpoint.port, 6432);
	assert_string_equal(pg->username, "monitor");
	assert_string_equal(pg->password, "s3cret");
	assert_int_equal(pg->databases.n, 2);
	assert_string_equal(pg->databases.v[0], "app");
	assert_string_equal(pg->databases.v[1], "billing");
	assert_true(pg->collection_interval == 90 * DBI_NSEC_PER_SEC);
	assert_true(pg->tls_enabled);
	assert_string_equal(pg->tls_ca_file, "/etc/ssl/ca.pem");
	assert_int_equal(pg->targets.n, 2);
	t = pg->targets.items;
	assert_string_equal(t[0].endpoint.host, "::1");
	assert_int_equal(t[0].endpoint.port, 5433);
	assert_string_equal(t[0].name, "local6");
	assert_true(t[0].interval == 30 * DBI_NSEC_PER_SEC);
	assert_int_equal(t[0].labels.n, 2);
	assert_string_equal(t[0].labels.k[0], "env");
	assert_string_equal(t[0].labels.v[0], "prod");
	assert_string_equal(t[0].labels.k[1], "team");
	assert_string_equal(t[0].labels.v[1], "db");
	assert_string_equal(t[1].endpoint.host, "");
	assert_int_equal(t[1].endpoint.port, 5434);
	assert_null(t[1].name);
	assert_int_equal(t[1].labels.n, 0);
	assert_int_equal(pg->mode, 0);
	assert_true(pg->sample_percent == 12.5);
	assert_int_equal(pg->max_conns, 16);

	c = dbi_config_find(cfg, "pgtest/replica");
	assert_non_null(c);
	assert_string_equal(c->type, "pgtest");
	assert_string_equal(c->name, "replica");
	pg = c->cfg;
	assert_string_equal(pg->username, "replica_user");
	assert_true(pg->tls_enabled);
	assert_string_equal(pg->password, "hunter2");
	assert_int_equal(pg->databases.n, 1);
	assert_string_equal(pg->databases.v[0], "*");
	assert_true(pg->collection_interval == 10 * DBI_NSEC_PER_SEC);
	assert_string_equal(pg->endpoint.host, "localhost");
	assert_int_equal(pg->mode, 2);
	assert_int_equal(pg->max_conns, 4);

	{
		const struct dbi_conf_component *r = dbi_config_find_kind(cfg, DBI_RECEIVER, "otlp");
		const struct dbi_conf_component *e = dbi_config_find_kind(cfg, DBI_EXPORTER, "otlp");
		const struct dbi_test_otlp *o;
		assert_non_null(r);
		assert_non_null(e);
		assert_ptr_not_equal(r, e);
		assert_int_equal(r->kind, DBI_RECEIVER);
		assert_int_equal(e->kind, DBI_EXPORTER);
		assert_ptr_equal(dbi_config_find(cfg, "otlp"), r);
		o = r->cfg;
		assert_string_equal(o->grpc.host, "0.0.0.0");
		assert_int_equal(o->grpc.port, 14317);
		assert_string_equal(o->http.host, "127.0.0.1");
		assert_int_equal(o->http.port, 4318);
		o = e->cfg;
		assert_int_equal(o->grpc.port, 4317);
	}
	{
		const struct dbi_test_batch *b = dbi_config_find(cfg, "batch")->cfg;
		const struct dbi_test_memlim *m = dbi_config_find(cfg, "memory_limiter")->cfg;
		const struct dbi_test_attrs *a = dbi_config_find(cfg, "attributes/scrub")->cfg;
		const struct dbi_test_action *act = a->actions.items;
		assert_int_equal(b->send_batch_size, 1024);
		assert_int_equal(b->send_batch_max_size, 2048);
		assert_true(b->timeout == 1500 * DBI_NSEC_PER_MSEC);
		assert_true(m->check_interval == 250 * DBI_NSEC_PER_MSEC);
		assert_true(m->limit_percentage == 75);
		assert_true(m->spike_limit_percentage == 20);
		assert_true(m->limit == 2ULL << 30);
		assert_int_equal(a->actions.n, 2);
		assert_string_equal(act[0].key, "db.statement");
		assert_null(act[0].value);
		assert_int_equal(act[0].action, 3);
		assert_string_equal(act[1].key, "env");
		assert_string_equal(act[1].value, "prod");
		assert_int_equal(act[1].action, 2);
	}
	{
		const struct dbi_test_debug *d = dbi_config_find(cfg, "debug")->cfg;
		const struct dbi_test_otlphttp *h = dbi_config_find(cfg, "otlphttp/newrelic")->cfg;
		const struct dbi_test_health *hc = dbi_config_find(cfg, "health_check")->cfg;
		assert_int_equal(d->verbosity, 2);
		assert_true(d->ratio == 0.25);
		assert_string_equal(h->endpoint, "https://otlp.nr-data.net");
		assert_int_equal(h->headers.n, 1);
		assert_string_equal(h->headers.k[0], "api-key");
		assert_string_equal(h->headers.v[0], "none");
		assert_int_equal(h->compression, 2);
		assert_true(h->timeout == 30 * DBI_NSEC_PER_SEC);
		assert_true(h->retry_enabled);
		assert_true(h->retry_initial == 2 * DBI_NSEC_PER_SEC);
		assert_true(h->retry_max_elapsed == 600 * DBI_NSEC_PER_SEC);
		assert_int_equal(h->queue_size, 5000);
		assert_true(h->max_body == 8000000);
		assert_string_equal(hc->endpoint.host, "");
		assert_int_equal(hc->endpoint.port, 13134);
		assert_string_equal(hc->path, "/");
		assert_non_null(dbi_config_find_kind(cfg, DBI_EXTENSION, "pprof"));
		assert_int_equal(dbi_config_find(cfg, "pprof")->used, 1);
	}

	assert_int_equal(cfg->service.extensions.n, 2);
	assert_string_equal(cfg->service.extensions.v[1], "pprof");
	assert_true(cfg->service.shutdown_timeout == 30 * DBI_NSEC_PER_SEC);
	assert_string_equal(cfg->service.log_level, "debug");
	assert_string_equal(cfg->service.metrics_address.host, "::");
	assert_int_equal(cfg->service.metrics_address.port, 9888);
	assert_int_equal(cfg->service.metrics_enabled, 0);

	assert_int_equal(cfg->npipelines, 2);
	assert_string_equal(cfg->pipelines[0].id, "metrics");
	assert_int_equal(cfg->pipelines[0].signal, DBI_SIG_METRICS);
	assert_int_equal(cfg->pipelines[0].line, 60);
	assert_int_equal(cfg->pipelines[0].col, 5);
	assert_int_equal(cfg->pipelines[0].nreceivers, 3);
	assert_string_equal(comp_id(cfg, cfg->pipelines[0].receivers[2]), "loadgen");
	assert_int_equal(cfg->pipelines[0].nprocessors, 3);
	assert_string_equal(comp_id(cfg, cfg->pipelines[0].processors[0]), "memory_limiter");
	assert_string_equal(comp_id(cfg, cfg->pipelines[0].processors[1]), "attributes/scrub");
	assert_string_equal(comp_id(cfg, cfg->pipelines[0].processors[2]), "batch");
	assert_int_equal(cfg->pipelines[0].nexporters, 3);
	assert_int_equal(cfg->components[cfg->pipelines[0].exporters[2]].kind, DBI_EXPORTER);
	assert_string_equal(cfg->pipelines[1].id, "logs/pg");
	assert_int_equal(cfg->pipelines[1].signal, DBI_SIG_LOGS);
	assert_string_equal(comp_id(cfg, cfg->pipelines[1].receivers[0]), "pgtest/replica");
	assert_string_equal(comp_id(cfg, cfg->pipelines[1].exporters[0]), "logsink");

	assert_string_equal(cfg->runtime.shm_name, "dbi.test");
	assert_int_equal(cfg->runtime.hugepages, DBI_HP_OFF);
	assert_true(cfg->runtime.shm_size == 64ULL << 20);
	assert_string_equal(cfg->runtime.shm_dir, "/dev/shm");
	assert_int_equal(cfg->runtime.scrapers, 4);
	assert_int_equal(cfg->runtime.processors, 2);
	assert_int_equal(cfg->runtime.pin, DBI_PIN_NONE);
	assert_int_equal(cfg->runtime.cpus.n, 3);
	assert_string_equal(cfg->runtime.cpus.v[2], "8-9,12");
	assert_int_equal(cfg->runtime.ring_points, 131072);
	assert_true(cfg->runtime.ring_bytes == 8ULL << 20);
	assert_int_equal(cfg->runtime.max_series, 500000);
	assert_string_equal(cfg->runtime.state_dir, "/var/lib/dbi-test");

	for (size_t i = 0; i < cfg->ncomponents; i++) {
		assert_int_equal(cfg->components[i].used, 1);
		assert_true(cfg->components[i].hash != 0);
	}
	assert_null(dbi_config_find(cfg, "nope"));
	assert_null(dbi_config_find_kind(cfg, DBI_PROCESSOR, "otlp"));
	dbi_config_free(cfg);
	unsetenv("DBI_T_USER");
}

static void test_defaults(void **state)
{
	struct dbi_config *cfg;
	const struct dbi_test_loadgen *lg;
	const struct dbi_test_debug *d;

	(void)state;
	cfg = must_load(MIN_CFG);
	lg = dbi_config_find(cfg, "loadgen")->cfg;
	d = dbi_config_find(cfg, "debug")->cfg;
	assert_int_equal(lg->rate, 1000);
	assert_int_equal(d->verbosity, 0);
	assert_true(d->ratio == 1.5);
	assert_int_equal(cfg->service.extensions.n, 0);
	assert_true(cfg->service.shutdown_timeout == 10 * DBI_NSEC_PER_SEC);
	assert_string_equal(cfg->service.log_level, "info");
	assert_string_equal(cfg->service.metrics_address.host, "127.0.0.1");
	assert_int_equal(cfg->service.metrics_address.port, 8888);
	assert_int_equal(cfg->service.metrics_enabled, 2);
	assert_string_equal(cfg->runtime.shm_name, "dbi.main");
	assert_int_equal(cfg->runtime.hugepages, DBI_HP_AUTO);
	assert_true(cfg->runtime.shm_size == 0);
	assert_string_equal(cfg->runtime.shm_dir, "");
	assert_int_equal(cfg->runtime.scrapers, 1);
	assert_int_equal(cfg->runtime.processors, 1);
	assert_int_equal(cfg->runtime.pin, DBI_PIN_AUTO);
	assert_int_equal(cfg->runtime.cpus.n, 0);
	assert_int_equal(cfg->runtime.ring_points, 65536);
	assert_true(cfg->runtime.ring_bytes == 4ULL << 20);
	assert_int_equal(cfg->runtime.max_series, 2000000);
	assert_string_equal(cfg->runtime.state_dir, "");
	dbi_config_free(cfg);

	/* The same through the public map API. */
	{
		struct dbi_conf_runtime rt;
		struct dbi_test_pg pg;
		struct dbi_errbuf err;
		dbi_err_clear(&err);
		assert_int_equal(dbi_conf_defaults(dbi_runtime_keys, &rt, &err), DBI_OK);
		assert_string_equal(rt.shm_name, "dbi.main");
		assert_true(rt.ring_bytes == 4ULL << 20);
		dbi_conf_release(dbi_runtime_keys, &rt);
		assert_null(rt.shm_name);
		assert_int_equal(dbi_conf_defaults(dbi_test_pg_keys, &pg, &err), DBI_OK);
		assert_int_equal(pg.databases.n, 1);
		assert_string_equal(pg.databases.v[0], "*");
		assert_null(pg.username);
		assert_int_equal(pg.targets.n, 0);
		dbi_conf_release(dbi_test_pg_keys, &pg);
		assert_int_equal(pg.databases.n, 0);
	}
}

static void test_bad_default(void **state)
{
	static const struct dbi_conf_key keys[] = {
	        {.name = "a", .type = DBI_CT_STRING, .offset = 0, .def = "x"},
	        {.name = "t", .type = DBI_CT_DURATION, .offset = sizeof(char *), .def = "ten"},
	        DBI_CONF_END,
	};
	struct {
		char *a;
		uint64_t t;
	} dst;
	struct dbi_errbuf err;

	(void)state;
	dbi_err_clear(&err);
	assert_int_equal(dbi_conf_defaults(keys, &dst, &err), DBI_ERR);
	assert_string_equal(err.msg,
	                    "config map: built-in default: t: invalid duration 'ten' (e.g. 10s, 500ms, 1m30s)");
	assert_null(dst.a); /* released on failure */
}

/* ---- environment ---- */

static void test_env_expansion(void **state)
{
	struct dbi_config *cfg;
	const struct dbi_test_pg *pg;
	const char *yaml = "receivers:\n"
	                   "  pgtest:\n"
	                   "    endpoint: ${env:DBI_T_HOST}:${env:DBI_T_PORT:-5432}\n"
	                   "    username: u$$er-${env:DBI_T_UNSET:-}-${env:DBI_T_EMPTY:-dflt}\n"
	                   "    password: \"$5 and $$ and ${env:DBI_T_HOST}\"\n"
	                   "    databases: [\"${env:DBI_T_HOST}\", x$$y]\n"
	                   "    collection_interval: ${env:DBI_T_UNSET:-}\n"
	                   "    max_conns: ${env:DBI_T_N:-7}\n"
	                   "    tls.ca_file: ${env:DBI_T_EMPTY}\n"
	                   "exporters:\n"
	                   "  debug:\n"
	                   "service:\n"
	                   "  pipelines:\n"
	                   "    metrics: {receivers: [pgtest], exporters: [debug]}\n";

	(void)state;
	setenv("DBI_T_HOST", "db9", 1);
	setenv("DBI_T_EMPTY", "", 1);
	unsetenv("DBI_T_UNSET");
	unsetenv("DBI_T_PORT");
	unsetenv("DBI_T_N");
	cfg = must_load(yaml);
	pg = dbi_config_find(cfg, "pgtest")->cfg;
	assert_string_equal(pg->endpoint.host, "db9");
	assert_int_equal(pg->endpoint.port, 5432);
	assert_string_equal(pg->username, "u$er--dflt");
	assert_string_equal(pg->password, "$5 and $ and db9");
	assert_string_equal(pg->databases.v[0], "db9");
	assert_string_equal(pg->databases.v[1], "x$y");
	/* empty after expansion: a non-string key keeps its default */
	assert_true(pg->collection_interval == 10 * DBI_NSEC_PER_SEC);
	assert_int_equal(pg->max_conns, 7);
	assert_string_equal(pg->tls_ca_file, "");
	dbi_config_free(cfg);

	/* expansion happens before type conversion */
	setenv("DBI_T_PORT", "abc", 1);
	expect_only_error(yaml,
	                  "t.yaml:3:15: receivers.pgtest.endpoint: invalid port in endpoint 'db9:abc' (1 to 65535)");
	unsetenv("DBI_T_PORT");

	/* unset without a default */
	expect_error(MIN_CFG "processors:\n  batch:\n    timeout: ${env:DBI_T_UNSET}\n",
	             "t.yaml:10:14: environment variable DBI_T_UNSET is not set (write ${env:DBI_T_UNSET:-default} "
	             "for a default)");
	/* keys are not expanded */
	expect_error(MIN_CFG "processors:\n  batch:\n    ${env:DBI_T_HOST}: 1\n",
	             "t.yaml:10:5: unknown key '${env:DBI_T_HOST}' in processors.batch (known keys: send_batch_size, "
	             "send_batch_max_size, timeout)");
	expect_error(MIN_CFG "runtime:\n  state_dir: ${HOME}\n",
	             "t.yaml:9:14: unsupported substitution '${HOME}' (only ${env:NAME} and ${env:NAME:-default}; $$ "
	             "is a literal $)");
	expect_error(MIN_CFG "runtime:\n  state_dir: a${env:X\n", "t.yaml:9:14: unterminated '${' in value (write $$ "
	                                                          "for a literal $)");
	expect_error(MIN_CFG "runtime:\n  state_dir: ${env:1X}\n",
	             "t.yaml:9:14: invalid environment variable name '1X' in '${env:1X}'");
	unsetenv("DBI_T_HOST");
	unsetenv("DBI_T_EMPTY");
}

/* ---- parsers ---- */

static void test_duration_table(void **state)
{
	static const struct {
		const char *s;
		uint64_t ns;
	} good[] = {
	        {"0", 0},
	        {"10s", 10 * DBI_NSEC_PER_SEC},
	        {"250ms", 250 * DBI_NSEC_PER_MSEC},
	        {"1m30s", 90 * DBI_NSEC_PER_SEC},
	        {"1h", 3600 * DBI_NSEC_PER_SEC},
	        {"1.5s", 1500 * DBI_NSEC_PER_MSEC},
	        {".5s", 500 * DBI_NSEC_PER_MSEC},
	        {"1.s", DBI_NSEC_PER_SEC},
	        {"100ns", 100},
	        {"7us", 7000},
	        {"7\xc2\xb5s", 7000},
	        {"7\xce\xbcs", 7000},
	        {"2h45m10.5s", (2 * 3600 + 45 * 60 + 10) * DBI_NSEC_PER_SEC + 500 * DBI_NSEC_PER_MSEC},
	        {"0s", 0},
	        {"+5m", 300 * DBI_NSEC_PER_SEC},
	        {"0.000000001s", 1},
	        {"1.0000000000000000000009s", DBI_NSEC_PER_SEC},
	        {"2562047h", 2562047ULL * 3600 * DBI_NSEC_PER_SEC},
	};
	static const char *const bad[] = {
	        "",
	        "ten",
	        "10",
	        "1.5",
	        "s",
	        "10 s",
	        "10S",
	        "1m30",
	        "-5s",
	        "-0",
	        "1d",
	        ".s",
	        "5.5.5s",
	        "1ms2",
	        "10sec",
	        "2562048h",
	        "99999999999999999999s",
	        "1e3s",
	        " 1s",
	        "1s ",
	};
	uint64_t ns;

	(void)state;
	for (size_t i = 0; i < DBI_ARRAY_LEN(good); i++) {
		ns = 12345;
		if (dbi_parse_duration(good[i].s, &ns) != DBI_OK || ns != good[i].ns) {
			print_message("duration '%s': got %llu\n", good[i].s, (unsigned long long)ns);
			fail();
		}
	}
	for (size_t i = 0; i < DBI_ARRAY_LEN(bad); i++) {
		if (dbi_parse_duration(bad[i], &ns) != DBI_ERR) {
			print_message("duration '%s' was accepted\n", bad[i]);
			fail();
		}
	}
}

static void test_size_table(void **state)
{
	static const struct {
		const char *s;
		uint64_t b;
	} good[] = {
	        {"0", 0},
	        {"1048576", 1048576},
	        {"512KiB", 512 << 10},
	        {"4MiB", 4 << 20},
	        {"1GiB", 1ULL << 30},
	        {"1MB", 1000000},
	        {"1KB", 1000},
	        {"2GB", 2000000000},
	        {"10B", 10},
	        {"4mib", 4 << 20},
	        {"4 MiB", 4 << 20},
	        {"1.5KiB", 1536},
	        {"2TiB", 2ULL << 40},
	        {"18446744073709551615", UINT64_MAX},
	};
	static const char *const bad[] = {
	        "", "abc", "4M", "4 M", "-1", "1.5", "4MiBs", "KiB", "1e6", "18446744073709551616", "20000000TiB", " 4",
	};
	uint64_t b;

	(void)state;
	for (size_t i = 0; i < DBI_ARRAY_LEN(good); i++) {
		b = 12345;
		if (dbi_parse_size(good[i].s, &b) != DBI_OK || b != good[i].b) {
			print_message("size '%s': got %llu\n", good[i].s, (unsigned long long)b);
			fail();
		}
	}
	for (size_t i = 0; i < DBI_ARRAY_LEN(bad); i++) {
		if (dbi_parse_size(bad[i], &b) != DBI_ERR) {
			print_message("size '%s' was accepted\n", bad[i]);
			fail();
		}
	}
}

static void test_endpoint_table(void **state)
{
	static const struct {
		const char *s, *host;
		int port;
	} good[] = {
	        {"localhost:5432", "localhost", 5432},
	        {"[::1]:4317", "::1", 4317},
	        {":8080", "", 8080},
	        {"10.0.0.1:1", "10.0.0.1", 1},
	        {"h:65535", "h", 65535},
	        {"[fe80::1%eth0]:9", "fe80::1%eth0", 9},
	        {"[::]:9888", "::", 9888},
	};
	static const char *const bad[] = {
	        "localhost", "h:0",   "h:65536", "h:",     ":", "::1:80",   "[::1]",  "[]:80",
	        "[::1]80",   "h:80x", "h:-1",    "a b:80", "",  "h:123456", "h/x:80", "h: 80",
	};
	struct dbi_endpoint ep;

	(void)state;
	for (size_t i = 0; i < DBI_ARRAY_LEN(good); i++) {
		memset(&ep, 0x55, sizeof(ep));
		assert_int_equal(dbi_parse_endpoint(good[i].s, &ep), DBI_OK);
		assert_string_equal(ep.host, good[i].host);
		assert_int_equal(ep.port, good[i].port);
	}
	for (size_t i = 0; i < DBI_ARRAY_LEN(bad); i++) {
		if (dbi_parse_endpoint(bad[i], &ep) != DBI_ERR) {
			print_message("endpoint '%s' was accepted\n", bad[i]);
			fail();
		}
	}
}

static void test_scalar_types(void **state)
{
	struct dbi_config *cfg;
	const struct dbi_test_pg *pg;

	(void)state;
	/* bool spellings */
	static const char *const yes[] = {"true", "yes", "on", "True", "YES"};
	static const char *const no[] = {"false", "no", "off", "FALSE"};
	char yaml[1024];
	for (size_t i = 0; i < DBI_ARRAY_LEN(yes) + DBI_ARRAY_LEN(no); i++) {
		bool want = i < DBI_ARRAY_LEN(yes);
		snprintf(yaml, sizeof(yaml),
		         "receivers:\n  pgtest: {username: u, tls: {enabled: %s}}\nexporters:\n  debug:\n"
		         "service:\n  pipelines:\n    metrics: {receivers: [pgtest], exporters: [debug]}\n",
		         want ? yes[i] : no[i - DBI_ARRAY_LEN(yes)]);
		cfg = must_load(yaml);
		pg = dbi_config_find(cfg, "pgtest")->cfg;
		assert_int_equal(pg->tls_enabled, want);
		dbi_config_free(cfg);
	}

	expect_only_error(PG_HEAD "    tls.enabled: maybe\n" PG_TAIL,
	                  "t.yaml:4:18: receivers.pgtest.tls.enabled: invalid boolean 'maybe' (true/false, yes/no or "
	                  "on/off)");
	expect_only_error(PG_HEAD "    max_conns: 12abc\n" PG_TAIL,
	                  "t.yaml:4:16: receivers.pgtest.max_conns: invalid integer '12abc'");
	expect_only_error(PG_HEAD "    max_conns: 99999999999999999999\n" PG_TAIL,
	                  "t.yaml:4:16: receivers.pgtest.max_conns: integer '99999999999999999999' does not fit in 64 "
	                  "bits");
	expect_only_error(PG_HEAD "    max_conns: 1.5\n" PG_TAIL,
	                  "t.yaml:4:16: receivers.pgtest.max_conns: invalid integer '1.5'");
	expect_only_error(PG_HEAD "    max_conns: 0\n" PG_TAIL,
	                  "t.yaml:4:16: receivers.pgtest.max_conns: 0 is out of range [1, 100]");
	expect_only_error(PG_HEAD "    max_conns: 101\n" PG_TAIL,
	                  "t.yaml:4:16: receivers.pgtest.max_conns: 101 is out of range [1, 100]");
	expect_only_error(PG_HEAD "    collection_interval: ten\n" PG_TAIL,
	                  "t.yaml:4:26: receivers.pgtest.collection_interval: invalid duration 'ten' (e.g. 10s, 500ms, "
	                  "1m30s)");
	expect_only_error(PG_HEAD "    collection_interval: 10\n" PG_TAIL,
	                  "t.yaml:4:26: receivers.pgtest.collection_interval: duration needs a unit, e.g. 10s");
	expect_only_error(PG_HEAD "    collection_interval: -10s\n" PG_TAIL,
	                  "t.yaml:4:26: receivers.pgtest.collection_interval: negative duration '-10s' is not allowed");
	expect_only_error(PG_HEAD "    collection_interval: 500ms\n" PG_TAIL,
	                  "t.yaml:4:26: receivers.pgtest.collection_interval: 500ms is out of range [1s, 1h]");
	expect_only_error(PG_HEAD "    collection_interval: 2h\n" PG_TAIL,
	                  "t.yaml:4:26: receivers.pgtest.collection_interval: 2h is out of range [1s, 1h]");
	expect_only_error(PG_HEAD "    mode: quick\n" PG_TAIL,
	                  "t.yaml:4:11: receivers.pgtest.mode: invalid value 'quick' (one of: fast, slow, auto)");
	expect_only_error(PG_HEAD "    sample_percent: 101\n" PG_TAIL,
	                  "t.yaml:4:21: receivers.pgtest.sample_percent: invalid percentage '101' (a number from 0 to "
	                  "100)");
	expect_only_error(PG_HEAD "    sample_percent: -1%\n" PG_TAIL,
	                  "t.yaml:4:21: receivers.pgtest.sample_percent: invalid percentage '-1%' (a number from 0 to "
	                  "100)");
	expect_only_error(PG_HEAD "    endpoint: localhost\n" PG_TAIL,
	                  "t.yaml:4:15: receivers.pgtest.endpoint: invalid endpoint 'localhost' (host:port, "
	                  "[ipv6]:port or :port)");
	expect_only_error(PG_HEAD "    endpoint: ::1:5432\n" PG_TAIL,
	                  "t.yaml:4:15: receivers.pgtest.endpoint: IPv6 address in endpoint '::1:5432' needs brackets, "
	                  "e.g. [::1]:4317");
	expect_only_error(PG_HEAD "    endpoint: h:0\n" PG_TAIL,
	                  "t.yaml:4:15: receivers.pgtest.endpoint: invalid port in endpoint 'h:0' (1 to 65535)");
	expect_only_error(PG_HEAD "    databases: app\n" PG_TAIL,
	                  "t.yaml:4:16: receivers.pgtest.databases: expected a list, e.g. [a, b], not a single value");
	expect_only_error(PG_HEAD "    databases: [a, [b]]\n" PG_TAIL,
	                  "t.yaml:4:20: receivers.pgtest.databases[1]: expected a single value, not a list");
	expect_only_error(PG_HEAD "    tls.ca_file: [a]\n" PG_TAIL,
	                  "t.yaml:4:18: receivers.pgtest.tls.ca_file: expected a string, not a list");
	expect_only_error(PG_HEAD "    tls: yes\n" PG_TAIL,
	                  "t.yaml:4:10: receivers.pgtest.tls: expected a mapping with keys enabled, ca_file, not a "
	                  "single value");
	expect_only_error(
	        PG_HEAD "    targets:\n      - {endpoint: a:1, labels: [a]}\n" PG_TAIL,
	        "t.yaml:5:33: receivers.pgtest.targets[0].labels: expected a mapping, e.g. {name: value}, not "
	        "a list");
	expect_only_error(PG_HEAD "    targets: {endpoint: a:1}\n" PG_TAIL,
	                  "t.yaml:4:14: receivers.pgtest.targets: expected a list of mappings (- key: value), not a "
	                  "mapping");
	/* the secret is not echoed */
	expect_only_error(PG_HEAD "    password: [x]\n" PG_TAIL,
	                  "t.yaml:4:15: receivers.pgtest.password: expected a string, not a list");
	expect_only_error("exporters:\n  otlphttp:\n    endpoint: e\n    max_body: 1GiB\n"
	                  "receivers:\n  loadgen:\nservice:\n  pipelines:\n    metrics: {receivers: [loadgen], "
	                  "exporters: [otlphttp]}\n",
	                  "t.yaml:4:15: exporters.otlphttp.max_body: 1GiB is out of range [1KiB, 64MiB]");
	expect_only_error("exporters:\n  otlphttp:\n    endpoint: e\n    max_body: 12 parsecs\n"
	                  "receivers:\n  loadgen:\nservice:\n  pipelines:\n    metrics: {receivers: [loadgen], "
	                  "exporters: [otlphttp]}\n",
	                  "t.yaml:4:15: exporters.otlphttp.max_body: invalid size '12 parsecs' (e.g. 1048576, 512KiB, "
	                  "4MiB, 1GB)");
	expect_only_error(MIN_CFG "  telemetry: {logs: {level: loud}}\n",
	                  "t.yaml:8:29: service.telemetry.logs.level: invalid value 'loud' (one of: debug, info, warn, "
	                  "error)");
	expect_only_error("receivers:\n  loadgen:\nexporters:\n  debug: {ratio: x1}\nservice:\n  pipelines:\n    "
	                  "metrics: {receivers: [loadgen], exporters: [debug]}\n",
	                  "t.yaml:4:18: exporters.debug.ratio: invalid number 'x1'");
	expect_only_error("receivers:\n  loadgen:\nexporters:\n  debug: {ratio: 11}\nservice:\n  pipelines:\n    "
	                  "metrics: {receivers: [loadgen], exporters: [debug]}\n",
	                  "t.yaml:4:18: exporters.debug.ratio: 11 is out of range [0, 10]");
}

/* ---- structure errors ---- */

static void test_required(void **state)
{
	(void)state;
	expect_only_error("receivers:\n  pgtest:\n    max_conns: 2\n" PG_TAIL,
	                  "t.yaml:2:3: missing required key 'username' in receivers.pgtest");
	/* batch: style (null) gets defaults only, so required keys are missing */
	expect_only_error("receivers:\n  pgtest:\n" PG_TAIL,
	                  "t.yaml:2:3: missing required key 'username' in receivers.pgtest");
	expect_only_error("receivers:\n  pgtest:\n    username: \"\"\n" PG_TAIL,
	                  "t.yaml:3:15: receivers.pgtest.username is required and must not be empty");
	setenv("DBI_T_EMPTY", "", 1);
	expect_only_error("receivers:\n  pgtest:\n    username: ${env:DBI_T_EMPTY}\n" PG_TAIL,
	                  "t.yaml:3:15: receivers.pgtest.username is required and must not be empty");
	unsetenv("DBI_T_EMPTY");
	expect_only_error(PG_HEAD "    targets:\n      - name: a\n      - endpoint: h:1\n" PG_TAIL,
	                  "t.yaml:5:9: missing required key 'endpoint' in receivers.pgtest.targets[0]");
	expect_only_error(PG_HEAD "    targets:\n      - endpoint: h:1\n      - endpoint: h:1x\n" PG_TAIL,
	                  "t.yaml:6:19: receivers.pgtest.targets[1].endpoint: invalid port in endpoint 'h:1x' (1 to "
	                  "65535)");
	expect_only_error(PG_HEAD
	                  "    targets:\n      - endpoint: h:1\n      - bogus: 1\n        endpoint: h:2\n" PG_TAIL,
	                  "t.yaml:6:9: unknown key 'bogus' in receivers.pgtest.targets[1] (known keys: endpoint, name, "
	                  "interval, labels)");
	expect_only_error(PG_HEAD "    targets: [h:1]\n" PG_TAIL,
	                  "t.yaml:4:15: receivers.pgtest.targets[0]: expected a mapping (key: value), not a single "
	                  "value");
}

static void test_unknown_keys(void **state)
{
	(void)state;
	expect_only_error(MIN_CFG "receiver:\n  x:\n",
	                  "t.yaml:8:1: unknown top-level key 'receiver' (known: receivers, processors, exporters, "
	                  "extensions, service, runtime)");
	expect_error(MIN_CFG "processors:\n  batch:\n    foo: 1\n",
	             "t.yaml:10:5: unknown key 'foo' in processors.batch (known keys: send_batch_size, "
	             "send_batch_max_size, timeout)");
	expect_only_error("receivers:\n  loadgen:\nexporters:\n  otlphttp:\n    endpoint: e\n    retry_on_failure:\n"
	                  "      initial: 1s\nservice:\n  pipelines:\n    metrics: {receivers: [loadgen], exporters: "
	                  "[otlphttp]}\n",
	                  "t.yaml:7:7: unknown key 'initial' in exporters.otlphttp.retry_on_failure (known keys: "
	                  "enabled, initial_interval, max_elapsed_time)");
	expect_only_error("receivers:\n  loadgen:\nexporters:\n  otlphttp:\n    endpoint: e\n    retry_on_failure:\n"
	                  "      initial_interval: 1s\n      foo: {bar: 1}\nservice:\n  pipelines:\n    metrics: "
	                  "{receivers: [loadgen], exporters: [otlphttp]}\n",
	                  "t.yaml:8:7: unknown key 'foo' in exporters.otlphttp.retry_on_failure (known keys: enabled, "
	                  "initial_interval, max_elapsed_time)");
	expect_only_error("receivers:\n  loadgen: {rate: 1, tls: {enabled: true}}\nexporters:\n  debug:\nservice:\n  "
	                  "pipelines:\n    metrics: {receivers: [loadgen], exporters: [debug]}\n",
	                  "t.yaml:2:22: unknown key 'tls' in receivers.loadgen (known keys: rate)");
	expect_only_error("receivers:\n  otlp:\nexporters:\n  logsink: {x: 1}\nservice:\n  pipelines:\n"
	                  "    logs: {receivers: [otlp], exporters: [logsink]}\n",
	                  "t.yaml:4:13: unknown key 'x' in exporters.logsink (it has no settings)");
	expect_only_error(MIN_CFG "  bogus: 1\n",
	                  "t.yaml:8:3: unknown key 'bogus' in service (known keys: extensions, shutdown_timeout, "
	                  "telemetry, pipelines)");
	expect_only_error(
	        MIN_CFG "  telemetry: {metrics: {adress: x}}\n",
	        "t.yaml:8:25: unknown key 'adress' in service.telemetry.metrics (known keys: address, level)");
	expect_only_error(
	        MIN_CFG "runtime:\n  threads: {scrapers: 2, pinning: auto}\n",
	        "t.yaml:9:26: unknown key 'pinning' in runtime.threads (known keys: scrapers, processors, pin, "
	        "cpus)");
	expect_only_error(MIN_CFG "runtime:\n  shm: 5\n",
	                  "t.yaml:9:8: runtime.shm: expected a mapping with keys name, hugepages, size, dir, not a "
	                  "single value");
	expect_only_error(MIN_CFG "runtime: [1]\n", "t.yaml:8:10: runtime: expected a mapping, not a list");
	expect_only_error(MIN_CFG "processors: 3\n", "t.yaml:8:13: processors: expected a mapping, not a single value");
	expect_only_error("receivers:\n  pgtest: [u]\n" PG_TAIL,
	                  "t.yaml:2:11: receivers.pgtest: expected a mapping (key: value), not a list");
	expect_only_error("receivers:\n  loadgen: 5\nexporters:\n  debug:\nservice:\n  pipelines:\n    metrics: "
	                  "{receivers: [loadgen], exporters: [debug]}\n",
	                  "t.yaml:2:12: receivers.loadgen: expected a mapping (key: value), not a single value");
}

static void test_components(void **state)
{
	(void)state;
	expect_only_error(MIN_CFG "processors:\n  batchx:\n",
	                  "t.yaml:9:3: unknown processor type 'batchx' (known processor types: batch, memory_limiter, "
	                  "attributes)");
	expect_only_error(MIN_CFG "processors:\n  batch/:\n",
	                  "t.yaml:9:3: invalid processor id 'batch/': the name after '/' is empty");
	expect_only_error(MIN_CFG "processors:\n  batch/a b:\n",
	                  "t.yaml:9:3: invalid processor id 'batch/a b': names after '/' may only use letters, digits, "
	                  "'_', '.' and '-'");
	expect_only_error(MIN_CFG "processors:\n  /x:\n",
	                  "t.yaml:9:3: invalid processor id '/x': the type before '/' is empty");
	expect_only_error(MIN_CFG "processors:\n  batch/a/b:\n",
	                  "t.yaml:9:3: invalid processor id 'batch/a/b': names after '/' may only use letters, digits, "
	                  "'_', '.' and '-'");
	{
		struct dbi_config *cfg = SENTINEL;
		static const struct dbi_component *const empty[] = {NULL};
		assert_int_equal(dbi_config_load_string(MIN_CFG, "t.yaml", empty, &cfg, &g_err), DBI_ERR);
		assert_ptr_equal(cfg, SENTINEL);
		assert_has_line("t.yaml:2:3: unknown receiver type 'loadgen' (no receiver types are built in)");
		assert_has_line("t.yaml:4:3: unknown exporter type 'debug' (no exporter types are built in)");
		/* the unknown ones are still "declared": no echoes from the pipeline */
		assert_int_equal(g_err.count, 2);
	}
	/* validate callback: its message gets the declaration's position */
	expect_only_error("receivers:\n  loadgen:\nprocessors:\n  batch/big:\n    send_batch_size: 100\n"
	                  "    send_batch_max_size: 10\nexporters:\n  debug:\nservice:\n  pipelines:\n    metrics: "
	                  "{receivers: [loadgen], processors: [batch/big], exporters: [debug]}\n",
	                  "t.yaml:4:3: processors.batch/big: send_batch_max_size (10) must be >= send_batch_size (100) "
	                  "in batch/big");
	/* a validate callback does not run on a struct with errors */
	expect_only_error("receivers:\n  loadgen:\nprocessors:\n  batch:\n    send_batch_size: x\n"
	                  "    send_batch_max_size: 10\nexporters:\n  debug:\nservice:\n  pipelines:\n    metrics: "
	                  "{receivers: [loadgen], processors: [batch], exporters: [debug]}\n",
	                  "t.yaml:5:22: processors.batch.send_batch_size: invalid integer 'x'");
}

static void test_yaml_errors(void **state)
{
	(void)state;
	expect_error(MIN_CFG "processors:\n  batch:\n    timeout: 1s\n    timeout: 2s\n",
	             "t.yaml:11:5: duplicate key 'timeout' (first defined at line 10, column 5)");
	expect_error(MIN_CFG "receivers:\n  otlp:\n",
	             "t.yaml:8:1: duplicate key 'receivers' (first defined at line 1, column 1)");
	expect_error(MIN_CFG "processors:\n  batch: {timeout: 1s, timeout: 1s}\n",
	             "t.yaml:9:24: duplicate key 'timeout' (first defined at line 9, column 11)");
	expect_error(MIN_CFG "processors:\n  batch:\n    <<: {timeout: 1s}\n",
	             "t.yaml:10:5: merge keys (<<) are not supported; write the keys out (anchors and aliases do "
	             "work)");
	expect_only_error(MIN_CFG "runtime:\n  ? [a]\n  : 1\n",
	                  "t.yaml:9:5: mapping keys must be plain values, not lists or mappings");
	expect_only_error("receivers:\n  loadgen:\n    rate: [1\n",
	                  "t.yaml:4:1: YAML syntax error: did not find expected ',' or ']' while parsing a flow "
	                  "sequence (line 3, column 11)");
	expect_only_error("receivers:\n  loadgen:\n   rate: 1\n  bad\n",
	                  "t.yaml:5:1: YAML syntax error: could not find expected ':' while scanning a simple key "
	                  "(line 4, column 3)");
	expect_only_error(MIN_CFG "---\nruntime:\n", "t.yaml:8:1: only one YAML document is allowed in a config file");
	expect_only_error("- a\n- b\n",
	                  "t.yaml:1:1: the top level must be a mapping of sections (receivers, processors, exporters, "
	                  "extensions, service, runtime)");
	expect_only_error(MIN_CFG "runtime: {state_dir: *nope}\n",
	                  "t.yaml:8:22: alias '*nope' refers to no anchor '&nope' before it");
	expect_only_error("",
	                  "t.yaml:1:1: no pipelines configured: service.pipelines needs at least one, e.g. metrics: "
	                  "{receivers: [...], exporters: [...]}");
	expect_only_error("# nothing\n", "t.yaml:1:1: no pipelines configured: service.pipelines needs at least one, "
	                                 "e.g. metrics: {receivers: [...], exporters: [...]}");
	expect_error(MIN_CFG "processors:\n  batch:\n    timeout: 1s\n    send_batch_size: 1\n    timeout: 2s\n"
	                     "    timeout: 3s\n",
	             "t.yaml:12:5: duplicate key 'timeout' (first defined at line 10, column 5)");
	assert_has_line("t.yaml:13:5: duplicate key 'timeout' (first defined at line 10, column 5)");
	/* bytes that are not UTF-8 get a position too */
	expect_only_error("receivers:\n  a: \"x\xffy\"\n",
	                  "t.yaml:2:8: invalid input (byte 18): invalid leading UTF-8 octet");
	/* a scalar with a NUL via escape */
	expect_only_error(MIN_CFG "runtime: {state_dir: \"a\\0b\"}\n", "t.yaml:8:22: value contains a NUL character");
	{
		/* deep nesting is refused, not recursed into */
		char deep[400];
		size_t o = (size_t)snprintf(deep, sizeof(deep), "runtime: ");
		for (int i = 0; i < 100; i++)
			deep[o++] = '[';
		deep[o] = '\0';
		expect_only_error(deep, "t.yaml:1:73: nesting deeper than 64 levels");
	}
}

static void test_anchors(void **state)
{
	struct dbi_config *cfg;
	const struct dbi_test_pg *a, *b;
	const char *yaml = "receivers:\n"
	                   "  pgtest/a: &pg\n"
	                   "    username: mon\n"
	                   "    databases: &dbs [x, y]\n"
	                   "  pgtest/b:\n"
	                   "    username: other\n"
	                   "    databases: *dbs\n"
	                   "  pgtest/c: *pg\n"
	                   "exporters:\n"
	                   "  debug:\n"
	                   "service:\n"
	                   "  pipelines:\n"
	                   "    metrics: {receivers: [pgtest/a, pgtest/b, pgtest/c], exporters: [debug]}\n";

	(void)state;
	cfg = must_load(yaml);
	a = dbi_config_find(cfg, "pgtest/c")->cfg;
	b = dbi_config_find(cfg, "pgtest/b")->cfg;
	assert_string_equal(a->username, "mon");
	assert_int_equal(a->databases.n, 2);
	assert_int_equal(b->databases.n, 2);
	assert_string_equal(b->databases.v[1], "y");
	/* identical content: identical hash */
	assert_true(dbi_config_find(cfg, "pgtest/a")->hash == dbi_config_find(cfg, "pgtest/c")->hash);
	dbi_config_free(cfg);

	/* billion laughs: refused under the node budget, not expanded */
	{
		char *y = malloc(8192);
		size_t o = 0;
		o += (size_t)snprintf(y + o, 8192 - o, "runtime:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
		for (int i = 1; i < 9; i++)
			o += (size_t)snprintf(
			        y + o, 8192 - o,
			        "  a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i,
			        i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
		assert_int_equal(load(y, &cfg), DBI_ERR);
		assert_non_null(
		        strstr(g_err.msg, "document too large (more than 200000 nodes after expanding aliases)"));
		free(y);
	}
}

/* Many keys in one mapping: duplicate detection must not be quadratic. */
static void test_big_mapping(void **state)
{
	enum { N = 50000 };
	size_t cap = (size_t)N * 32 + 1024, o = 0;
	char *y = malloc(cap);
	struct dbi_config *cfg;
	const struct dbi_test_otlphttp *h;

	(void)state;
	o += (size_t)snprintf(y + o, cap - o,
	                      "receivers:\n  loadgen:\nexporters:\n  otlphttp:\n    endpoint: e\n"
	                      "    headers:\n");
	for (int pass = 0; pass < 2; pass++) {
		/* the second pass repeats key h7 (line 14) near the end, at line 49997 */
		o = (size_t)snprintf(y, cap,
		                     "receivers:\n  loadgen:\nexporters:\n  otlphttp:\n    endpoint: e\n"
		                     "    headers:\n");
		for (int i = 0; i < N; i++)
			o += (size_t)snprintf(y + o, cap - o, "      h%d: v%d\n", pass && i == N - 10 ? 7 : i, i);
		snprintf(y + o, cap - o,
		         "service:\n  pipelines:\n    metrics: {receivers: [loadgen], exporters: [otlphttp]}\n");
		if (pass == 0) {
			cfg = must_load(y);
			h = dbi_config_find(cfg, "otlphttp")->cfg;
			assert_int_equal(h->headers.n, N);
			assert_string_equal(h->headers.v[N - 1], "v49999");
			dbi_config_free(cfg);
		} else {
			expect_only_error(y, "t.yaml:49997:7: duplicate key 'h7' (first defined at line 14, column 7)");
		}
	}
	free(y);
}

static void test_pipelines(void **state)
{
	(void)state;
#define RX_EX "receivers:\n  loadgen:\n  pgtest: {username: u}\nexporters:\n  debug:\n  logsink:\n"
	/* 6 lines: service starts at 7, pipelines at 8, first pipeline at 9 */
	expect_only_error(RX_EX
	                  "service:\n  pipelines:\n    metrics: {receivers: [loadgen, pgtest], exporters: [debug]}\n"
	                  "    logs: {receivers: [pgtest], exporters: [logsink, otlphttp/x]}\n",
	                  "t.yaml:10:54: exporter 'otlphttp/x' is not declared under exporters:");
	expect_only_error(RX_EX "service:\n  pipelines:\n    metrics: {receivers: [pgtest], exporters: [debug]}\n"
	                        "    logs: {receivers: [loadgen, pgtest], exporters: [logsink]}\n",
	                  "t.yaml:10:24: receiver 'loadgen' does not support logs");
	expect_only_error(RX_EX "service:\n  pipelines:\n    metrics: {receivers: [pgtest, loadgen], exporters: "
	                        "[logsink, debug]}\n",
	                  "t.yaml:9:57: exporter 'logsink' does not support metrics");
	expect_only_error(RX_EX "processors:\n  batch:\nservice:\n  pipelines:\n    metrics: {receivers: [pgtest, "
	                        "loadgen], processors: [batch, batch], exporters: [debug]}\n"
	                        "    logs: {receivers: [pgtest], exporters: [logsink]}\n",
	                  "t.yaml:11:65: processor 'batch' is listed twice in pipeline 'metrics'");
	expect_error(RX_EX "processors:\n  batch:\nservice:\n  pipelines:\n    metrics: {receivers: [pgtest, "
	                   "loadgen], exporters: [debug]}\n    logs: {receivers: [pgtest], exporters: [logsink]}\n",
	             "t.yaml:8:3: processor 'batch' is declared but not used in any pipeline");
	expect_only_error(RX_EX "service:\n  pipelines:\n    metrics: {receivers: [pgtest, loadgen], exporters: "
	                        "[debug]}\n",
	                  "t.yaml:6:3: exporter 'logsink' is declared but not used in any pipeline");
	expect_only_error(MIN_CFG "    metrix: {receivers: [loadgen], exporters: [debug]}\n",
	                  "t.yaml:8:5: unknown pipeline signal 'metrix' in pipeline 'metrix' (metrics, logs or traces, "
	                  "optionally followed by /name)");
	expect_only_error(MIN_CFG "    metrix/a: {receivers: [loadgen], exporters: [debug]}\n",
	                  "t.yaml:8:5: unknown pipeline signal 'metrix' in pipeline 'metrix/a' (metrics, logs or "
	                  "traces, optionally followed by /name)");
	expect_only_error(MIN_CFG "    metrics/: {receivers: [loadgen], exporters: [debug]}\n",
	                  "t.yaml:8:5: invalid pipeline id 'metrics/': the name after '/' is empty");
	expect_only_error(MIN_CFG "    metrics/2: {exporters: [debug]}\n",
	                  "t.yaml:8:5: pipeline 'metrics/2' has no receivers (add receivers: [...])");
	expect_only_error(MIN_CFG "    metrics/2: {receivers: [loadgen], exporters: []}\n",
	                  "t.yaml:8:50: pipeline 'metrics/2' has no exporters (the list is empty)");
	expect_only_error(
	        MIN_CFG "    metrics/2: {receivers: [loadgen], exporters: [debug], extensions: [x]}\n",
	        "t.yaml:8:59: unknown key 'extensions' in service.pipelines.metrics/2 (known keys: receivers, "
	        "processors, exporters)");
	expect_only_error(MIN_CFG "    metrics/2: {receivers: loadgen, exporters: [debug]}\n",
	                  "t.yaml:8:28: service.pipelines.metrics/2.receivers: expected a list of ids, e.g. [otlp]");
	expect_only_error(MIN_CFG "    traces:\n",
	                  "t.yaml:8:12: service.pipelines.traces: expected a mapping with receivers, processors and "
	                  "exporters");
	expect_only_error("receivers:\n  loadgen:\nexporters:\n  debug:\nservice:\n  extensions: []\n",
	                  "t.yaml:5:1: no pipelines configured: service.pipelines needs at least one, e.g. metrics: "
	                  "{receivers: [...], exporters: [...]}");
	expect_only_error("receivers:\n  loadgen:\nexporters:\n  debug:\nservice:\n  pipelines: {}\n",
	                  "t.yaml:6:14: no pipelines configured: service.pipelines needs at least one, e.g. metrics: "
	                  "{receivers: [...], exporters: [...]}");
	expect_only_error("receivers:\n  loadgen:\nexporters:\n  debug:\nservice:\n  pipelines: [metrics]\n",
	                  "t.yaml:6:14: service.pipelines: expected a mapping of pipelines, e.g. metrics: {receivers: "
	                  "[...], exporters: [...]}");
	/* several pipelines of one signal, with names */
	{
		struct dbi_config *cfg = must_load(
		        RX_EX "service:\n  pipelines:\n    metrics/a: {receivers: [loadgen], exporters: [debug]}\n"
		              "    metrics/b: {receivers: [pgtest], exporters: [debug]}\n"
		              "    logs: {receivers: [pgtest], exporters: [logsink]}\n");
		assert_int_equal(cfg->npipelines, 3);
		assert_string_equal(cfg->pipelines[1].id, "metrics/b");
		assert_int_equal(cfg->pipelines[1].signal, DBI_SIG_METRICS);
		dbi_config_free(cfg);
	}
}

static void test_extensions(void **state)
{
	(void)state;
	expect_only_error(MIN_CFG "extensions:\n  health_check:\n",
	                  "t.yaml:9:3: extension 'health_check' is declared but not enabled (add it to "
	                  "service.extensions)");
	expect_only_error(MIN_CFG "  extensions: [health_check]\n",
	                  "t.yaml:8:16: extension 'health_check' is not declared under extensions:");
	expect_only_error(MIN_CFG "  extensions: [pprof, pprof]\nextensions:\n  pprof:\n",
	                  "t.yaml:8:23: extension 'pprof' is listed twice in service.extensions");
	expect_only_error(MIN_CFG "  extensions: [pprof, \"\"]\nextensions:\n  pprof:\n",
	                  "t.yaml:8:23: service.extensions[1]: expected an extension id");
	expect_error(MIN_CFG "  extensions: pprof\nextensions:\n  pprof:\n",
	             "t.yaml:8:15: service.extensions: expected a list, e.g. [a, b], not a single value");
}

static void test_runtime(void **state)
{
	(void)state;
	expect_only_error(MIN_CFG "runtime:\n  rings: {points: 1000}\n",
	                  "t.yaml:9:19: runtime.rings.points: 1000 is out of range [1024, 16777216]");
	expect_only_error(MIN_CFG "runtime:\n  rings: {points: 3072}\n",
	                  "t.yaml:9:19: runtime.rings.points: 3072 is not a power of two (rings index with a mask)");
	expect_only_error(MIN_CFG "runtime:\n  rings: {bytes: 3MiB}\n",
	                  "t.yaml:9:18: runtime.rings.bytes: 3MiB is not a power of two (e.g. 1MiB, 4MiB)");
	expect_only_error(MIN_CFG "runtime:\n  rings: {bytes: 32KiB}\n",
	                  "t.yaml:9:18: runtime.rings.bytes: 32KiB is out of range [64KiB, 1GiB]");
	expect_only_error(MIN_CFG "runtime:\n  threads: {scrapers: 257}\n",
	                  "t.yaml:9:23: runtime.threads.scrapers: 257 is out of range [1, 256]");
	expect_only_error(MIN_CFG "runtime:\n  threads: {processors: 0}\n",
	                  "t.yaml:9:25: runtime.threads.processors: 0 is out of range [1, 64]");
	expect_only_error(MIN_CFG "runtime:\n  threads: {pin: yes}\n",
	                  "t.yaml:9:18: runtime.threads.pin: invalid value 'yes' (one of: auto, none)");
	expect_only_error(
	        MIN_CFG "runtime:\n  threads: {cpus: [\"0-3\", \"3-1\"]}\n",
	        "t.yaml:9:19: runtime.threads.cpus: invalid CPU list '3-1' (e.g. \"0-3\", \"5\" or \"0-3,8\"; "
	        "CPUs 0 to 4095)");
	expect_only_error(
	        MIN_CFG "runtime:\n  threads: {cpus: [\"0-3,\"]}\n",
	        "t.yaml:9:19: runtime.threads.cpus: invalid CPU list '0-3,' (e.g. \"0-3\", \"5\" or \"0-3,8\"; "
	        "CPUs 0 to 4095)");
	expect_only_error(MIN_CFG "runtime:\n  threads: {cpus: [x]}\n",
	                  "t.yaml:9:19: runtime.threads.cpus: invalid CPU list 'x' (e.g. \"0-3\", \"5\" or \"0-3,8\"; "
	                  "CPUs 0 to 4095)");
	expect_only_error(
	        MIN_CFG "runtime:\n  shm: {name: a/b}\n",
	        "t.yaml:9:15: runtime.shm.name: 'a/b': shared memory names may only use letters, digits, '_', "
	        "'.' and '-'");
	expect_only_error(MIN_CFG "runtime:\n  shm: {name: ..}\n",
	                  "t.yaml:9:15: runtime.shm.name: '..' is not a usable shared memory name");
	expect_only_error(MIN_CFG "runtime:\n  shm: {hugepages: maybe}\n",
	                  "t.yaml:9:20: runtime.shm.hugepages: invalid value 'maybe' (one of: auto, on, off)");
	expect_only_error(MIN_CFG "runtime:\n  max_series: 0\n",
	                  "t.yaml:9:15: runtime.max_series: 0 is out of range [1, 1000000000]");
	{
		struct dbi_config *cfg =
		        must_load(MIN_CFG "runtime:\n  threads: {cpus: [\"0\", \"1-2,4,6-7\"]}\n"
		                          "  rings: {points: 1024, bytes: 1GiB}\n  shm: {hugepages: on}\n");
		assert_int_equal(cfg->runtime.hugepages, DBI_HP_ON);
		assert_true(cfg->runtime.ring_bytes == 1ULL << 30);
		dbi_config_free(cfg);
	}
}

static void test_many_errors(void **state)
{
	char *y = malloc(16384);
	size_t o = 0;
	struct dbi_config *cfg;

	(void)state;
	o += (size_t)snprintf(y + o, 16384 - o, MIN_CFG "runtime:\n");
	for (int i = 0; i < 40; i++)
		o += (size_t)snprintf(y + o, 16384 - o, "  bogus_%d: 1\n", i);
	assert_int_equal(load(y, &cfg), DBI_ERR);
	assert_ptr_equal(cfg, SENTINEL);
	assert_int_equal(g_err.count, 26);
	assert_has_line("t.yaml:9:3: unknown key 'bogus_0' in runtime (known keys: shm, threads, rings, max_series, "
	                "state_dir)");
	assert_has_line("t.yaml:33:3: unknown key 'bogus_24' in runtime (known keys: shm, threads, rings, max_series, "
	                "state_dir)");
	assert_has_line("t.yaml: too many errors; 15 more not shown");
	assert_null(strstr(g_err.msg, "bogus_25"));
	free(y);
}

static void test_hash(void **state)
{
	struct dbi_config *a, *b, *c;
	const char *y1 = "receivers:\n  pgtest: {username: u, databases: [a, b], tls: {enabled: true}}\n" PG_TAIL;
	const char *y2 = "receivers:\n  pgtest:\n    tls:\n      enabled: true\n    databases:\n      - a\n      - "
	                 "\"b\"\n    username: 'u'\n" PG_TAIL;
	const char *y3 = "receivers:\n  pgtest: {username: u, databases: [b, a], tls: {enabled: true}}\n" PG_TAIL;

	(void)state;
	a = must_load(y1);
	b = must_load(y2);
	c = must_load(y3);
	/* key order and layout do not matter; list order does */
	assert_true(a->components[0].hash == b->components[0].hash);
	assert_true(a->components[0].hash != c->components[0].hash);
	/* the exporter did not change */
	assert_true(a->components[1].hash == c->components[1].hash);
	dbi_config_free(a);
	dbi_config_free(b);
	dbi_config_free(c);

	/* a changed environment variable is a changed component */
	setenv("DBI_T_USER", "one", 1);
	a = must_load("receivers:\n  pgtest: {username: \"${env:DBI_T_USER}\"}\n" PG_TAIL);
	setenv("DBI_T_USER", "two", 1);
	b = must_load("receivers:\n  pgtest: {username: \"${env:DBI_T_USER}\"}\n" PG_TAIL);
	assert_true(a->components[0].hash != b->components[0].hash);
	dbi_config_free(a);
	dbi_config_free(b);
	unsetenv("DBI_T_USER");
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/dbi_test_config_XXXXXX";
	struct dbi_config *cfg = SENTINEL;
	struct dbi_errbuf err;
	int fd;
	FILE *f;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(MIN_CFG, f);
	fclose(f);
	assert_int_equal(dbi_config_load(path, dbi_test_registry, &cfg, &err), DBI_OK);
	assert_string_equal(cfg->path, path);
	dbi_config_free(cfg);

	f = fopen(path, "w");
	fputs(MIN_CFG "processors:\n  batch: {timeout: ten}\n", f);
	fclose(f);
	cfg = SENTINEL;
	assert_int_equal(dbi_config_load(path, dbi_test_registry, &cfg, &err), DBI_ERR);
	assert_ptr_equal(cfg, SENTINEL);
	{
		char want[256];
		snprintf(want, sizeof(want),
		         "%s:9:20: processors.batch.timeout: invalid duration 'ten' (e.g. 10s, 500ms, 1m30s)", path);
		if (!has_line(err.msg, want)) {
			print_message("got:\n%s\n", err.msg);
			fail();
		}
	}
	unlink(path);

	assert_int_equal(dbi_config_load(path, dbi_test_registry, &cfg, &err), DBI_ERR);
	{
		char want[256];
		snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", path);
		assert_string_equal(err.msg, want);
	}
	assert_int_equal(dbi_config_load("/tmp", dbi_test_registry, &cfg, &err), DBI_ERR);
	assert_string_equal(err.msg, "/tmp: cannot read: Is a directory");
	assert_ptr_equal(cfg, SENTINEL);

	/* a NULL errbuf is allowed */
	assert_int_equal(dbi_config_load_string("x: 1", NULL, dbi_test_registry, &cfg, NULL), DBI_ERR);
	assert_int_equal(dbi_config_load_string("x: 1", NULL, dbi_test_registry, &cfg, &err), DBI_ERR);
	assert_string_equal(err.msg,
	                    "<string>:1:1: unknown top-level key 'x' (known: receivers, processors, exporters, "
	                    "extensions, service, runtime)\n<string>:1:1: no pipelines configured: "
	                    "service.pipelines needs at least one, e.g. metrics: {receivers: [...], exporters: "
	                    "[...]}");
}

static void test_help(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(f);
	dbi_config_print_help(f, dbi_test_registry);
	fclose(f);
	static const char *const want[] = {
	        "RECEIVERS (receivers:)",
	        "  pgtest [metrics, logs]",
	        "      test receiver with every key type",
	        "collection_interval",
	        "tls.enabled",
	        "targets[].endpoint",
	        "targets[].interval",
	        "(secret)",
	        "one of: fast, slow, auto",
	        "range 1s to 1h",
	        "(required)",
	        "  logsink [logs]",
	        "      (no settings)",
	        "EXTENSIONS (extensions:)",
	        "  health_check\n",
	        "SERVICE (service:)",
	        "telemetry.metrics.address",
	        "127.0.0.1:8888",
	        "one of: none, basic, normal, detailed",
	        "RUNTIME (runtime:)",
	        "rings.bytes",
	        "4MiB",
	        "range 64KiB to 1GiB",
	        "threads.scrapers",
	        "dbi.main",
	        "pipelines:",
	        "retry_on_failure.initial_interval",
	};
	for (size_t i = 0; i < DBI_ARRAY_LEN(want); i++) {
		if (!strstr(buf, want[i])) {
			print_message("help lacks '%s':\n%s\n", want[i], buf);
			fail();
		}
	}
	/* the secret default is never printed */
	assert_null(strstr(buf, "hunter2"));
	/* aligned: the KEY header and a row of one table start their columns at the same place */
	{
		const char *hdr = strstr(buf, "      KEY"), *row = strstr(hdr, "\n      endpoint");
		const char *t1 = strstr(hdr, "TYPE"), *t2 = strstr(row, "host:port");
		assert_non_null(row);
		assert_int_equal(t1 - hdr, t2 - (row + 1));
	}
	if (getenv("DBI_TEST_SHOW_HELP"))
		fputs(buf, stdout);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_full_config),    cmocka_unit_test(test_defaults),
	        cmocka_unit_test(test_bad_default),    cmocka_unit_test(test_env_expansion),
	        cmocka_unit_test(test_duration_table), cmocka_unit_test(test_size_table),
	        cmocka_unit_test(test_endpoint_table), cmocka_unit_test(test_scalar_types),
	        cmocka_unit_test(test_required),       cmocka_unit_test(test_unknown_keys),
	        cmocka_unit_test(test_components),     cmocka_unit_test(test_yaml_errors),
	        cmocka_unit_test(test_anchors),        cmocka_unit_test(test_big_mapping),
	        cmocka_unit_test(test_pipelines),      cmocka_unit_test(test_extensions),
	        cmocka_unit_test(test_runtime),        cmocka_unit_test(test_many_errors),
	        cmocka_unit_test(test_hash),           cmocka_unit_test(test_load_file),
	        cmocka_unit_test(test_help),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
