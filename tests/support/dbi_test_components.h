/*
 * dbi_test_components.h — a registry of made-up components for the config loader's
 * unit test and fuzz target.
 *
 * The real registry grows as components land; these exercise every key type, nested
 * and list keys, secrets, required keys, ranges, signal sets and a validate callback,
 * and do not change when a real component does. Header-only (static) so the fuzz
 * build, which has no test support library, can use it too.
 */
#ifndef DBI_TEST_COMPONENTS_H
#define DBI_TEST_COMPONENTS_H

#include <stddef.h>
#include <stdio.h>

#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/record.h"

#define DBI_TEST_ALL_SIGNALS (DBI_SIG_METRICS | DBI_SIG_LOGS | DBI_SIG_TRACES)

struct dbi_test_target {
	struct dbi_endpoint endpoint;
	char *name;
	uint64_t interval;
	struct dbi_strmap labels;
};

static const struct dbi_conf_key dbi_test_target_keys[] = {
        {.name = "endpoint",
         .type = DBI_CT_ENDPOINT,
         .offset = offsetof(struct dbi_test_target, endpoint),
         .flags = DBI_CK_REQUIRED,
         .doc = "target server"},
        {.name = "name", .type = DBI_CT_STRING, .offset = offsetof(struct dbi_test_target, name), .doc = "label"},
        {.name = "interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct dbi_test_target, interval),
         .def = "30s",
         .doc = "scrape interval"},
        {.name = "labels",
         .type = DBI_CT_STRMAP,
         .offset = offsetof(struct dbi_test_target, labels),
         .doc = "extra resource attributes"},
        DBI_CONF_END,
};

struct dbi_test_pg {
	struct dbi_endpoint endpoint;
	char *username;
	char *password;
	struct dbi_strlist databases;
	uint64_t collection_interval;
	bool tls_enabled;
	char *tls_ca_file;
	struct dbi_list targets;
	int mode;
	double sample_percent;
	int64_t max_conns;
};

static const struct dbi_conf_key dbi_test_pg_keys[] = {
        {.name = "endpoint",
         .type = DBI_CT_ENDPOINT,
         .offset = offsetof(struct dbi_test_pg, endpoint),
         .def = "localhost:5432",
         .doc = "server to connect to"},
        {.name = "username",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct dbi_test_pg, username),
         .flags = DBI_CK_REQUIRED,
         .doc = "login role"},
        {.name = "password",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct dbi_test_pg, password),
         .def = "hunter2",
         .flags = DBI_CK_SECRET,
         .doc = "login password"},
        {.name = "databases",
         .type = DBI_CT_STRLIST,
         .offset = offsetof(struct dbi_test_pg, databases),
         .def = "[\"*\"]",
         .doc = "databases to scrape"},
        {.name = "collection_interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct dbi_test_pg, collection_interval),
         .def = "10s",
         .min = 1,
         .max = 3600,
         .doc = "how often to scrape"},
        {.name = "tls.enabled",
         .type = DBI_CT_BOOL,
         .offset = offsetof(struct dbi_test_pg, tls_enabled),
         .def = "false",
         .doc = "use TLS"},
        {.name = "tls.ca_file",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct dbi_test_pg, tls_ca_file),
         .doc = "CA bundle"},
        {.name = "targets",
         .type = DBI_CT_LIST,
         .offset = offsetof(struct dbi_test_pg, targets),
         .sub = dbi_test_target_keys,
         .elem_size = sizeof(struct dbi_test_target),
         .doc = "more servers"},
        {.name = "mode",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct dbi_test_pg, mode),
         .def = "auto",
         .choices = "fast|slow|auto",
         .doc = "scrape mode"},
        {.name = "sample_percent",
         .type = DBI_CT_PERCENT,
         .offset = offsetof(struct dbi_test_pg, sample_percent),
         .def = "10",
         .doc = "share of queries sampled"},
        {.name = "max_conns",
         .type = DBI_CT_INT,
         .offset = offsetof(struct dbi_test_pg, max_conns),
         .def = "4",
         .min = 1,
         .max = 100,
         .doc = "connections per target"},
        DBI_CONF_END,
};

static const struct dbi_component dbi_test_pg = {
        .type = "pgtest",
        .kind = DBI_RECEIVER,
        .signals = DBI_SIG_METRICS | DBI_SIG_LOGS,
        .doc = "test receiver with every key type",
        .keys = dbi_test_pg_keys,
        .conf_size = sizeof(struct dbi_test_pg),
};

struct dbi_test_loadgen {
	int64_t rate;
};

static const struct dbi_conf_key dbi_test_loadgen_keys[] = {
        {.name = "rate",
         .type = DBI_CT_INT,
         .offset = offsetof(struct dbi_test_loadgen, rate),
         .def = "1000",
         .doc = "points per second"},
        DBI_CONF_END,
};

static const struct dbi_component dbi_test_loadgen = {
        .type = "loadgen",
        .kind = DBI_RECEIVER,
        .signals = DBI_SIG_METRICS,
        .doc = "metrics-only test receiver",
        .keys = dbi_test_loadgen_keys,
        .conf_size = sizeof(struct dbi_test_loadgen),
};

struct dbi_test_otlp {
	struct dbi_endpoint grpc;
	struct dbi_endpoint http;
};

static const struct dbi_conf_key dbi_test_otlp_keys[] = {
        {.name = "protocols.grpc.endpoint",
         .type = DBI_CT_ENDPOINT,
         .offset = offsetof(struct dbi_test_otlp, grpc),
         .def = "127.0.0.1:4317",
         .doc = "gRPC listen address"},
        {.name = "protocols.http.endpoint",
         .type = DBI_CT_ENDPOINT,
         .offset = offsetof(struct dbi_test_otlp, http),
         .def = "127.0.0.1:4318",
         .doc = "HTTP listen address"},
        DBI_CONF_END,
};

static const struct dbi_component dbi_test_otlp_rcv = {
        .type = "otlp",
        .kind = DBI_RECEIVER,
        .signals = DBI_TEST_ALL_SIGNALS,
        .doc = "OTLP receiver",
        .keys = dbi_test_otlp_keys,
        .conf_size = sizeof(struct dbi_test_otlp),
};

struct dbi_test_batch {
	int64_t send_batch_size;
	int64_t send_batch_max_size;
	uint64_t timeout;
};

static const struct dbi_conf_key dbi_test_batch_keys[] = {
        {.name = "send_batch_size",
         .type = DBI_CT_INT,
         .offset = offsetof(struct dbi_test_batch, send_batch_size),
         .def = "8192",
         .min = 1,
         .max = 1000000,
         .doc = "points per batch"},
        {.name = "send_batch_max_size",
         .type = DBI_CT_INT,
         .offset = offsetof(struct dbi_test_batch, send_batch_max_size),
         .def = "0",
         .doc = "upper bound; 0 = none"},
        {.name = "timeout",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct dbi_test_batch, timeout),
         .def = "200ms",
         .doc = "send a partial batch after this long"},
        DBI_CONF_END,
};

static int dbi_test_batch_validate(const void *cfg, const char *id, struct dbi_errbuf *err)
{
	const struct dbi_test_batch *b = cfg;

	if (b->send_batch_max_size && b->send_batch_max_size < b->send_batch_size) {
		dbi_err_add(err, "send_batch_max_size (%lld) must be >= send_batch_size (%lld) in %s",
		            (long long)b->send_batch_max_size, (long long)b->send_batch_size, id);
		return DBI_ERR;
	}
	return DBI_OK;
}

static const struct dbi_component dbi_test_batch = {
        .type = "batch",
        .kind = DBI_PROCESSOR,
        .signals = DBI_TEST_ALL_SIGNALS,
        .doc = "batches points",
        .keys = dbi_test_batch_keys,
        .conf_size = sizeof(struct dbi_test_batch),
        .validate = dbi_test_batch_validate,
};

struct dbi_test_memlim {
	uint64_t check_interval;
	double limit_percentage;
	double spike_limit_percentage;
	uint64_t limit;
};

static const struct dbi_conf_key dbi_test_memlim_keys[] = {
        {.name = "check_interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct dbi_test_memlim, check_interval),
         .def = "1s",
         .doc = "how often to check"},
        {.name = "limit_percentage",
         .type = DBI_CT_PERCENT,
         .offset = offsetof(struct dbi_test_memlim, limit_percentage),
         .def = "80",
         .doc = "hard limit"},
        {.name = "spike_limit_percentage",
         .type = DBI_CT_PERCENT,
         .offset = offsetof(struct dbi_test_memlim, spike_limit_percentage),
         .def = "20",
         .doc = "soft limit distance"},
        {.name = "limit",
         .type = DBI_CT_SIZE,
         .offset = offsetof(struct dbi_test_memlim, limit),
         .def = "0",
         .min = 0,
         .max = 68719476736.0,
         .doc = "absolute limit"},
        DBI_CONF_END,
};

static const struct dbi_component dbi_test_memlim = {
        .type = "memory_limiter",
        .kind = DBI_PROCESSOR,
        .signals = DBI_TEST_ALL_SIGNALS,
        .doc = "refuses data under memory pressure",
        .keys = dbi_test_memlim_keys,
        .conf_size = sizeof(struct dbi_test_memlim),
};

struct dbi_test_action {
	char *key;
	char *value;
	int action;
};

static const struct dbi_conf_key dbi_test_action_keys[] = {
        {.name = "key",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct dbi_test_action, key),
         .flags = DBI_CK_REQUIRED,
         .doc = "attribute"},
        {.name = "value", .type = DBI_CT_STRING, .offset = offsetof(struct dbi_test_action, value), .doc = "value"},
        {.name = "action",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct dbi_test_action, action),
         .def = "upsert",
         .choices = "insert|update|upsert|delete",
         .doc = "what to do"},
        DBI_CONF_END,
};

struct dbi_test_attrs {
	struct dbi_list actions;
};

static const struct dbi_conf_key dbi_test_attrs_keys[] = {
        {.name = "actions",
         .type = DBI_CT_LIST,
         .offset = offsetof(struct dbi_test_attrs, actions),
         .sub = dbi_test_action_keys,
         .elem_size = sizeof(struct dbi_test_action),
         .doc = "attribute edits, in order"},
        DBI_CONF_END,
};

static const struct dbi_component dbi_test_attrs = {
        .type = "attributes",
        .kind = DBI_PROCESSOR,
        .signals = DBI_TEST_ALL_SIGNALS,
        .doc = "edits attributes",
        .keys = dbi_test_attrs_keys,
        .conf_size = sizeof(struct dbi_test_attrs),
};

struct dbi_test_debug {
	int verbosity;
	double ratio;
};

static const struct dbi_conf_key dbi_test_debug_keys[] = {
        {.name = "verbosity",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct dbi_test_debug, verbosity),
         .def = "basic",
         .choices = "basic|normal|detailed",
         .doc = "how much to print"},
        {.name = "ratio",
         .type = DBI_CT_DOUBLE,
         .offset = offsetof(struct dbi_test_debug, ratio),
         .def = "1.5",
         .min = 0,
         .max = 10,
         .doc = "a number"},
        DBI_CONF_END,
};

static const struct dbi_component dbi_test_debug = {
        .type = "debug",
        .kind = DBI_EXPORTER,
        .signals = DBI_TEST_ALL_SIGNALS,
        .doc = "prints what it gets",
        .keys = dbi_test_debug_keys,
        .conf_size = sizeof(struct dbi_test_debug),
};

struct dbi_test_otlphttp {
	char *endpoint;
	struct dbi_strmap headers;
	int compression;
	uint64_t timeout;
	bool retry_enabled;
	uint64_t retry_initial;
	uint64_t retry_max_elapsed;
	int64_t queue_size;
	uint64_t max_body;
};

static const struct dbi_conf_key dbi_test_otlphttp_keys[] = {
        {.name = "endpoint",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct dbi_test_otlphttp, endpoint),
         .flags = DBI_CK_REQUIRED,
         .doc = "base URL"},
        {.name = "headers",
         .type = DBI_CT_STRMAP,
         .offset = offsetof(struct dbi_test_otlphttp, headers),
         .flags = DBI_CK_SECRET,
         .doc = "extra HTTP headers"},
        {.name = "compression",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct dbi_test_otlphttp, compression),
         .def = "gzip",
         .choices = "none|gzip|zstd",
         .doc = "body compression"},
        {.name = "timeout",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct dbi_test_otlphttp, timeout),
         .def = "30s",
         .doc = "request timeout"},
        {.name = "retry_on_failure.enabled",
         .type = DBI_CT_BOOL,
         .offset = offsetof(struct dbi_test_otlphttp, retry_enabled),
         .def = "true",
         .doc = "retry"},
        {.name = "retry_on_failure.initial_interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct dbi_test_otlphttp, retry_initial),
         .def = "5s",
         .doc = "first backoff"},
        {.name = "retry_on_failure.max_elapsed_time",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct dbi_test_otlphttp, retry_max_elapsed),
         .def = "300s",
         .doc = "give up after"},
        {.name = "sending_queue.queue_size",
         .type = DBI_CT_INT,
         .offset = offsetof(struct dbi_test_otlphttp, queue_size),
         .def = "1000",
         .doc = "batches queued"},
        {.name = "max_body",
         .type = DBI_CT_SIZE,
         .offset = offsetof(struct dbi_test_otlphttp, max_body),
         .def = "4MiB",
         .min = 1024,
         .max = 67108864,
         .doc = "largest request body"},
        DBI_CONF_END,
};

static const struct dbi_component dbi_test_otlphttp = {
        .type = "otlphttp",
        .kind = DBI_EXPORTER,
        .signals = DBI_TEST_ALL_SIGNALS,
        .doc = "OTLP/HTTP exporter",
        .keys = dbi_test_otlphttp_keys,
        .conf_size = sizeof(struct dbi_test_otlphttp),
};

static const struct dbi_component dbi_test_otlp_exp = {
        .type = "otlp",
        .kind = DBI_EXPORTER,
        .signals = DBI_TEST_ALL_SIGNALS,
        .doc = "OTLP/gRPC exporter",
        .keys = dbi_test_otlp_keys,
        .conf_size = sizeof(struct dbi_test_otlp),
};

static const struct dbi_component dbi_test_logsink = {
        .type = "logsink",
        .kind = DBI_EXPORTER,
        .signals = DBI_SIG_LOGS,
        .doc = "logs-only exporter without settings",
};

struct dbi_test_health {
	struct dbi_endpoint endpoint;
	char *path;
};

static const struct dbi_conf_key dbi_test_health_keys[] = {
        {.name = "endpoint",
         .type = DBI_CT_ENDPOINT,
         .offset = offsetof(struct dbi_test_health, endpoint),
         .def = "127.0.0.1:13133",
         .doc = "listen address"},
        {.name = "path",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct dbi_test_health, path),
         .def = "/",
         .doc = "URL path"},
        DBI_CONF_END,
};

static const struct dbi_component dbi_test_health = {
        .type = "health_check",
        .kind = DBI_EXTENSION,
        .doc = "answers liveness probes",
        .keys = dbi_test_health_keys,
        .conf_size = sizeof(struct dbi_test_health),
};

static const struct dbi_component dbi_test_pprof = {
        .type = "pprof",
        .kind = DBI_EXTENSION,
        .doc = "extension without settings",
};

static const struct dbi_component *const dbi_test_registry[] = {
        &dbi_test_pg,
        &dbi_test_loadgen,
        &dbi_test_otlp_rcv,
        &dbi_test_batch,
        &dbi_test_memlim,
        &dbi_test_attrs,
        &dbi_test_debug,
        &dbi_test_otlphttp,
        &dbi_test_otlp_exp,
        &dbi_test_logsink,
        &dbi_test_health,
        &dbi_test_pprof,
        NULL,
};

#endif
