/*
 * otlphttp.c — the `otlphttp` exporter (OTel semantics): OTLP over HTTP/1.1 to
 * `endpoint` + /v1/metrics|logs|traces (or per-signal URLs), protobuf or JSON, gzip /
 * zstd / none, with retry_on_failure, a sending queue (in memory or on disk), 413
 * splitting, max_request_bytes and a circuit breaker. `profile: newrelic` is the New
 * Relic flavour: its attribute limits enforced in the encoder, the resource attributes
 * its entity synthesis wants, and its 1 MB request cap.
 *
 * The runtime's exporter thread runs consume(): encode the batch (otlp_enc.c),
 * compress, cut to max_request_bytes, and queue; it never waits for the network. A
 * thread of our own (sender.c) sends what is queued. This file is the glue: the config
 * map, the stats, create/start/stop, and the request re-encoding helpers both threads
 * use.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbi/clock.h"
#include "dbi/log.h"
#include "dbi/otlp_json.h"
#include "dbi/otlp_pb.h"
#include "dbi/stats.h" /* before runtime.h, which uses struct dbi_stats without declaring it */
#include "dbi/runtime.h"
#include "dbi/statedir.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include "otlphttp_int.h"

#define NR_MAX_REQUEST_BYTES 1000000 /* New Relic: 1 MB = 10^6 bytes of (compressed) payload */
#define MAX_DECOMPRESSED (1ULL << 30)

#define K(field) offsetof(struct otlphttp_cfg, field)

static const struct dbi_conf_key otlphttp_keys[] = {
        {.name = "endpoint",
         .type = DBI_CT_STRING,
         .offset = K(endpoint),
         .doc = "base URL; /v1/metrics, /v1/logs, /v1/traces are appended (New Relic US: https://otlp.nr-data.net)"},
        {.name = "metrics_endpoint",
         .type = DBI_CT_STRING,
         .offset = K(metrics_endpoint),
         .doc = "full URL for metrics (overrides endpoint)"},
        {.name = "logs_endpoint", .type = DBI_CT_STRING, .offset = K(logs_endpoint), .doc = "full URL for logs"},
        {.name = "traces_endpoint", .type = DBI_CT_STRING, .offset = K(traces_endpoint), .doc = "full URL for traces"},
        {.name = "headers",
         .type = DBI_CT_STRMAP,
         .offset = K(headers),
         .flags = DBI_CK_SECRET,
         .doc = "HTTP headers sent with every request, e.g. {api-key: ${env:NEW_RELIC_LICENSE_KEY}}; never logged"},
        {.name = "compression",
         .type = DBI_CT_ENUM,
         .offset = K(compression),
         .def = "gzip",
         .choices = "gzip|zstd|none",
         .doc = "request body compression"},
        {.name = "compression_params.level",
         .type = DBI_CT_INT,
         .offset = K(compression_level),
         .def = "1",
         .min = 0,
         .max = 19,
         .doc = "codec level: gzip 1-9, zstd 1-19; 0 = the codec's default (gzip 6, zstd 3)"},
        {.name = "encoding",
         .type = DBI_CT_ENUM,
         .offset = K(encoding),
         .def = "proto",
         .choices = "proto|json",
         .doc = "OTLP/HTTP body: binary protobuf, or OTLP/JSON (slower)"},
        {.name = "timeout",
         .type = DBI_CT_DURATION,
         .offset = K(timeout),
         .def = "30s",
         .min = 0.001,
         .max = 3600,
         .doc = "whole-request timeout (connect, send, answer)"},
        {.name = "tls.insecure_skip_verify",
         .type = DBI_CT_BOOL,
         .offset = K(tls_insecure),
         .def = "false",
         .doc = "do not verify the server's certificate (tests only)"},
        {.name = "tls.ca_file",
         .type = DBI_CT_STRING,
         .offset = K(tls_ca_file),
         .doc = "CA bundle to verify the server"},
        {.name = "tls.cert_file",
         .type = DBI_CT_STRING,
         .offset = K(tls_cert_file),
         .doc = "client certificate (mTLS)"},
        {.name = "tls.key_file", .type = DBI_CT_STRING, .offset = K(tls_key_file), .doc = "client key (mTLS)"},
        {.name = "max_request_bytes",
         .type = DBI_CT_SIZE,
         .offset = K(max_request_bytes),
         .def = "0",
         .doc = "largest request body sent, after compression; bigger batches are split (0 = no limit; "
                "profile newrelic: 1MB)"},
        {.name = "retry_on_failure.enabled",
         .type = DBI_CT_BOOL,
         .offset = K(retry_enabled),
         .def = "true",
         .doc = "retry connection errors, 408, 429 and 5xx (not 501/505)"},
        {.name = "retry_on_failure.initial_interval",
         .type = DBI_CT_DURATION,
         .offset = K(retry_initial),
         .def = "5s",
         .doc = "first wait before a retry"},
        {.name = "retry_on_failure.max_interval",
         .type = DBI_CT_DURATION,
         .offset = K(retry_max_interval),
         .def = "60s",
         .doc = "longest wait between retries"},
        {.name = "retry_on_failure.max_elapsed_time",
         .type = DBI_CT_DURATION,
         .offset = K(retry_max_elapsed),
         .def = "300s",
         .doc = "give up (and count a drop) this long after the first attempt; 0 = never"},
        {.name = "retry_on_failure.randomization_factor",
         .type = DBI_CT_DOUBLE,
         .offset = K(retry_randomization),
         .def = "0.5",
         .min = 0,
         .max = 1,
         .doc = "jitter: each wait is in [1-f, 1+f] x the interval"},
        {.name = "retry_on_failure.multiplier",
         .type = DBI_CT_DOUBLE,
         .offset = K(retry_multiplier),
         .def = "1.5",
         .min = 1,
         .max = 10,
         .doc = "interval growth per retry"},
        {.name = "sending_queue.enabled",
         .type = DBI_CT_BOOL,
         .offset = K(queue_enabled),
         .def = "true",
         .doc = "queue requests; false: hand each to a consumer directly (waits up to timeout, then drops)"},
        {.name = "sending_queue.num_consumers",
         .type = DBI_CT_INT,
         .offset = K(num_consumers),
         .def = "10",
         .min = 1,
         .max = 64,
         .doc = "requests in flight at once (one curl multi handle, not threads)"},
        {.name = "sending_queue.queue_size",
         .type = DBI_CT_INT,
         .offset = K(queue_size),
         .def = "1000",
         .min = 1,
         .max = 10000000,
         .doc = "requests waiting in memory; when full the newest is dropped (counted)"},
        {.name = "sending_queue.storage",
         .type = DBI_CT_ENUM,
         .offset = K(queue_storage),
         .def = "memory",
         .choices = "memory|file",
         .doc = "file: a persistent queue that survives kill -9 and restarts"},
        {.name = "sending_queue.directory",
         .type = DBI_CT_STRING,
         .offset = K(queue_directory),
         .doc = "persistent queue directory (default: <runtime.state_dir>/<shm name>.queue.<exporter id>, / made _)"},
        {.name = "sending_queue.max_bytes",
         .type = DBI_CT_SIZE,
         .offset = K(queue_max_bytes),
         .def = "1GiB",
         .doc = "persistent queue bound on disk; when full the oldest requests are dropped (counted)"},
        {.name = "sending_queue.fsync_interval",
         .type = DBI_CT_DURATION,
         .offset = K(queue_fsync_interval),
         .def = "1s",
         .doc = "persistent queue: how often written data is fsynced (kill -9 loses nothing either way)"},
        {.name = "circuit_breaker.enabled",
         .type = DBI_CT_BOOL,
         .offset = K(cb_enabled),
         .def = "true",
         .doc = "stop sending to an endpoint that keeps failing; one probe request closes it"},
        {.name = "circuit_breaker.failure_threshold",
         .type = DBI_CT_INT,
         .offset = K(cb_threshold),
         .def = "5",
         .min = 1,
         .max = 1000,
         .doc = "consecutive failures (no answer, 408, 5xx) that open it"},
        {.name = "circuit_breaker.open_duration",
         .type = DBI_CT_DURATION,
         .offset = K(cb_open),
         .def = "5s",
         .doc = "first cool-down; doubles after each failed probe"},
        {.name = "circuit_breaker.max_open_duration",
         .type = DBI_CT_DURATION,
         .offset = K(cb_max_open),
         .def = "5m",
         .doc = "longest cool-down"},
        {.name = "profile",
         .type = DBI_CT_ENUM,
         .offset = K(profile),
         .def = "none",
         .choices = "none|newrelic",
         .doc = "newrelic: attribute limits (255/4095 chars, 64 entries, 100 attributes), "
                "instrumentation.provider and host attributes, 1MB requests"},
        {.name = "host_attributes",
         .type = DBI_CT_ENUM,
         .offset = K(host_attributes),
         .def = "default",
         .choices = "default|auto|always|never",
         .doc = "add this host's host.name/host.id to resources lacking them: auto = only resources that are this "
                "host (no or local server.address); default = auto with profile newrelic, else never"},
        {.name = "usage_log_interval",
         .type = DBI_CT_DURATION,
         .offset = K(usage_log_interval),
         .def = "1h",
         .doc = "log bytes sent and projected GB/month this often (0 = never)"},
        DBI_CONF_END,
};

static const struct dbi_stat_def otlphttp_stats[] = {
        [OX_BATCHES] = {"batches", DBI_STAT_COUNTER, "batches received"},
        [OX_ITEMS] = {"items", DBI_STAT_COUNTER, "data points, log records and spans encoded"},
        [OX_REQUESTS] = {"requests.queued", DBI_STAT_COUNTER, "requests queued for sending"},
        [OX_BYTES_RAW] = {"bytes.encoded", DBI_STAT_COUNTER, "request bytes before compression"},
        [OX_BYTES_COMPRESSED] = {"bytes.compressed", DBI_STAT_COUNTER, "request bytes after compression"},
        [OX_DROP_QUEUE_FULL] = {"dropped.queue_full", DBI_STAT_COUNTER, "items dropped: sending queue full"},
        [OX_DROP_TOO_LARGE] = {"dropped.too_large", DBI_STAT_COUNTER,
                               "items dropped: one item alone over max_request_bytes / queue max_bytes"},
        [OX_DROP_INVALID] = {"dropped.invalid", DBI_STAT_COUNTER,
                             "items dropped: unknown series, kind mismatch, malformed record"},
        [OX_DROP_ENCODE] = {"dropped.encode_error", DBI_STAT_COUNTER, "items dropped: out of memory encoding"},
        [OX_DROP_NO_ENDPOINT] = {"dropped.no_endpoint", DBI_STAT_COUNTER, "items dropped: no URL for the signal"},
        [OX_DROP_QUEUE_IO] = {"dropped.queue_io", DBI_STAT_COUNTER, "items dropped: persistent queue write failed"},
        [OX_DROP_QUEUE_OLDEST] = {"dropped.queue_oldest", DBI_STAT_COUNTER,
                                  "items dropped: persistent queue over max_bytes, oldest first"},
        [OX_QUEUE_CORRUPT] = {"queue.corrupt", DBI_STAT_COUNTER, "corrupt or torn queue records skipped"},
        [OX_QUEUE_REDELIVERED] = {"queue.redelivered", DBI_STAT_COUNTER,
                                  "requests unresolved at the last stop, sent again"},
        [OX_QUEUE_PENDING] = {"queue.pending", DBI_STAT_GAUGE, "requests waiting in the queue"},
        [OX_QUEUE_UNRESOLVED] = {"queue.unresolved", DBI_STAT_GAUGE, "requests taken and not yet resolved"},
        [OX_QUEUE_DISK_BYTES] = {"queue.disk_bytes", DBI_STAT_GAUGE, "persistent queue bytes on disk"},
        [OX_NR_KEYS] = {"limits.keys_truncated", DBI_STAT_COUNTER, "attribute names truncated (per item)"},
        [OX_NR_VALUES] = {"limits.values_truncated", DBI_STAT_COUNTER, "attribute values truncated (per item)"},
        [OX_NR_ARRAYS] = {"limits.arrays_truncated", DBI_STAT_COUNTER, "array/map values cut short (per item)"},
        [OX_NR_ATTRS] = {"limits.attributes_dropped", DBI_STAT_COUNTER, "attributes over the cap (per item)"},
        [OX_NSTATS] = {NULL, 0, NULL},
};

/* ---- validation ---- */

static int url_ok(const char *u)
{
	return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

static int otlphttp_validate(const void *c, const char *id, struct dbi_errbuf *err)
{
	const struct otlphttp_cfg *cfg = c;
	const char *urls[] = {cfg->endpoint, cfg->metrics_endpoint, cfg->logs_endpoint, cfg->traces_endpoint};
	const char *names[] = {"endpoint", "metrics_endpoint", "logs_endpoint", "traces_endpoint"};
	int any = 0, rc = DBI_OK;
	for (int i = 0; i < 4; i++) {
		if (!urls[i] || !*urls[i])
			continue;
		any = 1;
		if (!url_ok(urls[i])) {
			dbi_err_add(err, "%s: %s must start with http:// or https://", id, names[i]);
			rc = DBI_ERR;
		}
	}
	if (!any) {
		dbi_err_add(err, "%s: endpoint (or metrics_endpoint/logs_endpoint/traces_endpoint) is required", id);
		rc = DBI_ERR;
	}
#ifndef DBI_HAVE_ZSTD
	if (cfg->compression == DBI_COMP_ZSTD) {
		dbi_err_add(err, "%s: compression zstd: this build has no zstd (built with -DDBI_ZSTD=OFF)", id);
		rc = DBI_ERR;
	}
#endif
	if (cfg->retry_initial == 0 || cfg->retry_initial > cfg->retry_max_interval) {
		dbi_err_add(err, "%s: retry_on_failure.initial_interval must be > 0 and <= max_interval", id);
		rc = DBI_ERR;
	}
	if (cfg->cb_open == 0 || cfg->cb_open > cfg->cb_max_open) {
		dbi_err_add(err, "%s: circuit_breaker.open_duration must be > 0 and <= max_open_duration", id);
		rc = DBI_ERR;
	}
	if (cfg->compression == DBI_COMP_GZIP && cfg->compression_level > 9) {
		dbi_err_add(err, "%s: compression_params.level: gzip takes 1-9 (0 = default)", id);
		rc = DBI_ERR;
	}
	return rc;
}

/* ---- helpers shared with the sender ---- */

static const ProtobufCMessageDescriptor *req_desc(unsigned signal)
{
	if (signal == DBI_SIG_METRICS)
		return &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor;
	if (signal == DBI_SIG_LOGS)
		return &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor;
	return &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
}

int oh_to_json(unsigned signal, const uint8_t *pb, size_t len, struct dbi_obuf *out)
{
	ProtobufCMessage *m = NULL;
	char *json = NULL;
	size_t jlen = 0;
	int rc = DBI_ERR;
	if (dbi_otlp_pb_unpack(req_desc(signal), pb, len, &m, NULL) != DBI_OK)
		return DBI_ERR;
	if (dbi_otlp_json_encode(m, &json, &jlen) == DBI_OK && dbi_obuf_reserve(out, jlen) == DBI_OK) {
		memcpy(out->data, json, jlen);
		out->len = jlen;
		rc = DBI_OK;
	}
	free(json);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

int oh_body_to_pb(const struct dbi_oq_meta *m, const uint8_t *body, size_t len, struct dbi_obuf *out)
{
	if (dbi_compressor_undo(m->compression, body, len, MAX_DECOMPRESSED, out) != DBI_OK)
		return DBI_ERR;
	if (m->encoding != OH_ENC_JSON)
		return DBI_OK;
	ProtobufCMessage *msg = NULL;
	if (dbi_otlp_json_decode(req_desc(m->signal), (const char *)out->data, out->len, &msg, NULL) != DBI_OK)
		return DBI_ERR;
	size_t n = protobuf_c_message_get_packed_size(msg);
	int rc = dbi_obuf_reserve(out, n);
	if (rc == DBI_OK)
		out->len = protobuf_c_message_pack(msg, out->data);
	protobuf_c_message_free_unpacked(msg, NULL);
	return rc;
}

int oh_encode_part(const struct otlphttp *x, struct dbi_compressor *comp, const struct dbi_oq_meta *m,
                   const uint8_t *raw, size_t raw_len, uint32_t lo, uint32_t hi, struct dbi_obuf *tmp,
                   struct dbi_obuf *out, uint32_t *part_raw_len)
{
	(void)x;
	if (dbi_otlp_extract(m->signal, raw, raw_len, lo, hi, tmp) != DBI_OK || tmp->len == 0)
		return DBI_ERR;
	if (m->encoding == OH_ENC_JSON) {
		struct dbi_obuf js = {0};
		int rc = oh_to_json(m->signal, tmp->data, tmp->len, &js);
		if (rc == DBI_OK)
			rc = dbi_compressor_run(comp, js.data, js.len, out);
		*part_raw_len = (uint32_t)js.len;
		dbi_obuf_free(&js);
		return rc;
	}
	*part_raw_len = (uint32_t)tmp->len;
	return dbi_compressor_run(comp, tmp->data, tmp->len, out);
}

/* ---- consume ---- */

static void push_request(struct otlphttp *x, const struct dbi_oq_meta *m, const struct dbi_obuf *body)
{
	const struct otlphttp_cfg *c = x->cfg;
	if (!c->queue_enabled) {
		/* no backlog: wait (up to timeout) until the sender has taken the previous request */
		uint64_t until = dbi_mono_ns() + c->timeout;
		struct dbi_oq_stats qs;
		for (;;) {
			dbi_oq_get_stats(x->q, &qs);
			if (qs.pending == 0 || dbi_mono_ns() >= until || atomic_load(&x->draining) == 2)
				break;
			dbi_sleep_ns(200 * 1000);
		}
	}
	int rc = dbi_oq_push(x->q, m, body->data, (uint32_t)body->len);
	if (rc == DBI_OK) {
		dbi_stats_add(x->st, OX_REQUESTS, 1);
		dbi_stats_add(x->st, OX_BYTES_RAW, m->raw_len);
		dbi_stats_add(x->st, OX_BYTES_COMPRESSED, body->len);
		oh_sender_wake(x);
	} else if (rc == DBI_AGAIN) {
		dbi_stats_add(x->st, OX_DROP_QUEUE_FULL, m->nitems);
		DBI_LOGW("otlphttp", "sending queue full: newest request dropped", "exporter=%s items=%u", x->id,
		         m->nitems);
	} else {
		int big =
		        x->cfg->queue_storage == OH_STORAGE_FILE && (uint64_t)body->len + 64 > x->cfg->queue_max_bytes;
		dbi_stats_add(x->st, big ? OX_DROP_TOO_LARGE : OX_DROP_QUEUE_IO, m->nitems);
		DBI_LOGE("otlphttp",
		         big ? "request larger than sending_queue.max_bytes; dropped"
		             : "cannot write the persistent queue; request dropped",
		         "exporter=%s items=%u bytes=%zu errno=%d", x->id, m->nitems, body->len, errno);
	}
}

/*
 * Queue items [lo, hi) of the encoded request in x->raw, cut so no body is over
 * max_request_bytes. The whole request is compressed once; only an oversized one is
 * cut, into as many pieces as its size suggests, each cut again if still too big.
 */
static void queue_range(struct otlphttp *x, const struct dbi_oq_meta *whole, uint32_t lo, uint32_t hi)
{
	struct dbi_oq_meta m = *whole;
	int rc;
	if (lo == 0 && hi == whole->nitems) {
		if (whole->encoding == OH_ENC_JSON) {
			rc = oh_to_json(whole->signal, x->raw.data, x->raw.len, &x->part);
			m.raw_len = (uint32_t)x->part.len;
			if (rc == DBI_OK)
				rc = dbi_compressor_run(&x->comp, x->part.data, x->part.len, &x->body);
		} else {
			rc = dbi_compressor_run(&x->comp, x->raw.data, x->raw.len, &x->body);
		}
	} else {
		rc = oh_encode_part(x, &x->comp, whole, x->raw.data, x->raw.len, lo, hi, &x->part, &x->body,
		                    &m.raw_len);
	}
	if (rc != DBI_OK) {
		dbi_stats_add(x->st, OX_DROP_ENCODE, hi - lo);
		DBI_LOGE("otlphttp", "cannot compress/encode a request; dropped", "exporter=%s items=%u", x->id,
		         hi - lo);
		return;
	}
	m.nitems = hi - lo;
	uint64_t max = x->max_request_bytes;
	if (max && x->body.len > max) {
		if (hi - lo == 1) {
			dbi_stats_add(x->st, OX_DROP_TOO_LARGE, 1);
			DBI_LOGE("otlphttp", "a single item is over max_request_bytes; dropped",
			         "exporter=%s bytes=%zu max_request_bytes=%" PRIu64, x->id, x->body.len, max);
			return;
		}
		/* aim at 85% of the cap: pieces compress a little worse than the whole */
		uint64_t k = (x->body.len * 100 + max * 85 - 1) / (max * 85);
		k = DBI_MAX(k, 2);
		k = DBI_MIN(k, hi - lo);
		uint32_t n = hi - lo;
		for (uint64_t i = 0; i < k; i++) {
			uint32_t a = lo + (uint32_t)((uint64_t)n * i / k),
			         b = lo + (uint32_t)((uint64_t)n * (i + 1) / k);
			if (b > a)
				queue_range(x, whole, a, b);
		}
		return;
	}
	push_request(x, &m, &x->body);
}

static void sync_stats(struct otlphttp *x)
{
	const struct dbi_otlp_enc_stats *e = dbi_otlp_enc_stats(x->enc);
	dbi_stats_add(x->st, OX_DROP_INVALID, e->invalid - x->enc_seen.invalid);
	dbi_stats_add(x->st, OX_NR_KEYS, e->keys_truncated - x->enc_seen.keys_truncated);
	dbi_stats_add(x->st, OX_NR_VALUES, e->values_truncated - x->enc_seen.values_truncated);
	dbi_stats_add(x->st, OX_NR_ARRAYS, e->arrays_truncated - x->enc_seen.arrays_truncated);
	dbi_stats_add(x->st, OX_NR_ATTRS, e->attrs_dropped - x->enc_seen.attrs_dropped);
	x->enc_seen = *e;
}

static void queue_gauges(struct otlphttp *x)
{
	struct dbi_oq_stats qs;
	dbi_oq_get_stats(x->q, &qs);
	dbi_stats_set(x->st, OX_QUEUE_PENDING, qs.pending);
	dbi_stats_set(x->st, OX_QUEUE_UNRESOLVED, qs.unresolved);
	dbi_stats_set(x->st, OX_QUEUE_DISK_BYTES, qs.disk_bytes);
	dbi_stats_add(x->st, OX_DROP_QUEUE_OLDEST, qs.dropped_oldest_items - x->q_seen.dropped_oldest_items);
	dbi_stats_add(x->st, OX_QUEUE_CORRUPT, qs.corrupt - x->q_seen.corrupt);
	dbi_stats_add(x->st, OX_QUEUE_REDELIVERED, qs.redelivered - x->q_seen.redelivered);
	x->q_seen = qs;
}

static int otlphttp_consume(void *state, struct dbi_batch *b, struct dbi_next *next)
{
	struct otlphttp *x = state;
	uint32_t n = 0;
	(void)next;
	dbi_stats_add(x->st, OX_BATCHES, 1);
	uint32_t in = b->npts + b->nrecs;
	if (!x->url[oh_sig_index(b->signal)]) {
		dbi_stats_add(x->st, OX_DROP_NO_ENDPOINT, in);
		DBI_LOGE("otlphttp", "no endpoint for this signal; dropped", "exporter=%s signal=%s items=%u", x->id,
		         dbi_signal_name(b->signal), in);
		return DBI_OK;
	}
	if (dbi_otlp_enc_batch(x->enc, b, &x->raw, &n) != DBI_OK) {
		sync_stats(x);
		dbi_stats_add(x->st, OX_DROP_ENCODE, in);
		DBI_LOGE("otlphttp", "out of memory encoding a batch; dropped", "exporter=%s items=%u", x->id, in);
		return DBI_OK;
	}
	sync_stats(x);
	if (n) {
		struct dbi_oq_meta m = {.signal = (uint8_t)b->signal,
		                        .encoding = (uint8_t)x->cfg->encoding,
		                        .compression = (uint8_t)x->cfg->compression,
		                        .nitems = n,
		                        .raw_len = (uint32_t)x->raw.len};
		dbi_stats_add(x->st, OX_ITEMS, n);
		queue_range(x, &m, 0, n);
	}
	uint64_t now = dbi_mono_ns();
	if (now >= x->next_gauges) {
		queue_gauges(x);
		x->next_gauges = now + 250 * DBI_NSEC_PER_MSEC;
	}
	return DBI_OK;
}

static uint64_t otlphttp_tick(void *state, uint64_t now, struct dbi_next *next)
{
	struct otlphttp *x = state;
	(void)next;
	queue_gauges(x);
	dbi_oq_sync(x->q, x->cfg->queue_fsync_interval);
	x->next_gauges = now + 250 * DBI_NSEC_PER_MSEC;
	uint64_t every = DBI_MIN(DBI_NSEC_PER_SEC, DBI_MAX(x->cfg->queue_fsync_interval, 10 * DBI_NSEC_PER_MSEC));
	return now + every;
}

static int otlphttp_flush(void *state, struct dbi_next *next, uint64_t deadline)
{
	struct otlphttp *x = state;
	(void)next;
	if (!x->started)
		return DBI_OK;
	if (deadline == 0)
		deadline = dbi_mono_ns() + 5 * DBI_NSEC_PER_SEC;
	atomic_store(&x->drain_deadline, deadline);
	atomic_store(&x->draining, 1);
	oh_sender_wake(x);
	while (!atomic_load(&x->drained) && dbi_mono_ns() < deadline)
		dbi_sleep_ns(2 * DBI_NSEC_PER_MSEC);
	queue_gauges(x);
	dbi_oq_sync(x->q, 0);
	return atomic_load(&x->drained) ? DBI_OK : DBI_AGAIN;
}

/* ---- lifecycle ---- */

static char *make_url(const char *base, const char *path)
{
	size_t n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	size_t len = n + strlen(path) + 1;
	char *u = malloc(len);
	if (u)
		snprintf(u, len, "%.*s%s", (int)n, base, path);
	return u;
}

static char *read_machine_id(void)
{
	static const char *files[] = {"/etc/machine-id", "/var/lib/dbus/machine-id"};
	char buf[128];
	for (size_t i = 0; i < DBI_ARRAY_LEN(files); i++) {
		FILE *f = fopen(files[i], "re");
		if (!f)
			continue;
		char *ok = fgets(buf, sizeof(buf), f);
		fclose(f);
		if (!ok)
			continue;
		buf[strcspn(buf, " \r\n")] = '\0';
		if (*buf)
			return strdup(buf);
	}
	return NULL;
}

/*
 * Default queue directory: <state dir>/<shm name>.queue.<exporter id> (dbi_state_dir:
 * runtime.state_dir, else /var/lib/dbi, ...), so two collectors on one host never share
 * one; '/' in the id becomes '_'.
 */
static char *queue_dir(const struct dbi_inst *inst, const struct otlphttp_cfg *c, struct dbi_errbuf *err)
{
	char base[4096], buf[4096 + 256], id[128];
	if (c->queue_directory && *c->queue_directory)
		return strdup(c->queue_directory);
	const struct dbi_config *all = inst->rt ? dbi_runtime_config(inst->rt) : NULL;
	if (dbi_state_dir(all ? all->runtime.state_dir : NULL, base, sizeof(base), err) != DBI_OK)
		return NULL;
	dbi_strlcpy(id, inst->id, sizeof(id));
	for (char *p = id; *p; p++)
		if (*p == '/' || *p == ' ')
			*p = '_';
	snprintf(buf, sizeof(buf), "%s/%s.queue.%s", base, all && all->runtime.shm_name ? all->runtime.shm_name : "dbi",
	         id);
	return strdup(buf);
}

static void otlphttp_destroy(void *state);

static int otlphttp_create(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err)
{
	const struct otlphttp_cfg *c = inst->cfg;
	struct otlphttp *x = calloc(1, sizeof(*x));
	char *hostname = NULL, *machine_id = NULL, *dir = NULL;
	if (!x)
		goto nomem;
	x->cfg = c;
	x->reg = inst->reg;
	x->st = inst->stats;
	dbi_strlcpy(x->id, inst->id, sizeof(x->id));
	int nr = c->profile == OH_PROFILE_NEWRELIC;
	x->max_request_bytes = c->max_request_bytes ? c->max_request_bytes : nr ? NR_MAX_REQUEST_BYTES : 0;

	static const char *paths[3] = {"/v1/metrics", "/v1/logs", "/v1/traces"};
	const char *per[3] = {c->metrics_endpoint, c->logs_endpoint, c->traces_endpoint};
	for (int i = 0; i < 3; i++) {
		if (per[i] && *per[i])
			x->url[i] = strdup(per[i]);
		else if (c->endpoint && *c->endpoint)
			x->url[i] = make_url(c->endpoint, paths[i]);
		else
			continue;
		if (!x->url[i])
			goto nomem;
	}

	struct dbi_otlp_limits lim = DBI_NR_LIMITS_INIT;
	struct dbi_attr extra = {.key = "instrumentation.provider", .type = DBI_AT_STR, .v.s = "opentelemetry"};
	struct dbi_otlp_enc_opts eo = {0};
	int hm = c->host_attributes == OH_HOST_DEFAULT ? (nr ? OH_HOST_AUTO : OH_HOST_NEVER) : c->host_attributes;
	eo.host_mode = hm == OH_HOST_AUTO     ? DBI_OTLP_HOST_AUTO
	               : hm == OH_HOST_ALWAYS ? DBI_OTLP_HOST_ALWAYS
	                                      : DBI_OTLP_HOST_NEVER;
	if (nr) {
		eo.limits = &lim;
		eo.res_extra = &extra;
		eo.nres_extra = 1;
	}
	if (eo.host_mode != DBI_OTLP_HOST_NEVER) {
		char hn[256];
		if (gethostname(hn, sizeof(hn)) == 0) {
			hn[sizeof(hn) - 1] = '\0';
			hostname = strdup(hn);
		}
		machine_id = read_machine_id();
		eo.host_name = hostname;
		eo.host_id = machine_id;
	}
	x->enc = dbi_otlp_enc_create(inst->reg, &eo);
	free(hostname);
	free(machine_id);
	if (!x->enc)
		goto nomem;
	if (dbi_compressor_init(&x->comp, c->compression, (int)c->compression_level) != DBI_OK) {
		dbi_err_add(err, "%s: cannot set up %s compression", inst->id, dbi_compressor_name(c->compression));
		goto fail;
	}

	struct dbi_oq_opts qo = {
	        .persistent = c->queue_enabled && c->queue_storage == OH_STORAGE_FILE,
	        .max_bytes = c->queue_max_bytes,
	        .queue_size = c->queue_enabled ? (uint32_t)c->queue_size : 1,
	        .max_unresolved = (uint32_t)DBI_MIN(c->num_consumers + 8, DBI_OQ_MAX_UNRESOLVED),
	};
	if (qo.persistent) {
		dir = queue_dir(inst, c, err);
		if (!dir) {
			dbi_err_add(err, "%s: no directory for the persistent queue (set sending_queue.directory)",
			            inst->id);
			goto fail;
		}
		qo.dir = dir;
	}
	if (dbi_oq_open(&x->q, &qo, err) != DBI_OK) {
		dbi_err_add(err, "%s: cannot open the sending queue", inst->id);
		goto fail;
	}
	if (qo.persistent)
		DBI_LOGI("otlphttp", "persistent sending queue", "exporter=%s dir=%s", inst->id, dir);
	free(dir);
	dir = NULL;

	char sid[DBI_STATS_ID];
	snprintf(sid, sizeof(sid), "exporter:%s:sender", inst->id);
	if (inst->rt) {
		if (dbi_runtime_stats_block(inst->rt, &x->sst, DBI_SK_EXPORTER, sid, "otlphttp", oh_sender_stats) !=
		    DBI_OK) {
			dbi_err_add(err, "%s: shared memory segment too small for its counters", inst->id);
			goto fail;
		}
	} else {
		x->local_blk = calloc(1, sizeof(*x->local_blk));
		if (!x->local_blk ||
		    dbi_stats_init(&x->sst, x->local_blk, DBI_SK_EXPORTER, sid, "otlphttp", oh_sender_stats) != DBI_OK)
			goto nomem;
	}
	if (oh_sender_create(x, err) != DBI_OK)
		goto fail;
	*state = x;
	return DBI_OK;
nomem:
	dbi_err_add(err, "%s: out of memory", inst->id);
fail:
	free(dir);
	if (x)
		otlphttp_destroy(x);
	return DBI_ERR;
}

static int otlphttp_start(void *state, struct dbi_errbuf *err)
{
	struct otlphttp *x = state;
	atomic_store(&x->draining, 0);
	atomic_store(&x->drained, 0);
	if (pthread_create(&x->thread, NULL, oh_sender_main, x) != 0) {
		dbi_err_add(err, "%s: cannot start the sender thread", x->id);
		return DBI_ERR;
	}
	x->started = 1;
	return DBI_OK;
}

static void otlphttp_stop(void *state)
{
	struct otlphttp *x = state;
	if (!x->started)
		return;
	atomic_store(&x->draining, 2);
	oh_sender_wake(x);
	pthread_join(x->thread, NULL);
	x->started = 0;
	oh_sender_finish(x);
	queue_gauges(x);
	dbi_stats_publish(x->st);
}

static void otlphttp_destroy(void *state)
{
	struct otlphttp *x = state;
	otlphttp_stop(x);
	oh_sender_destroy(x);
	dbi_oq_close(x->q);
	dbi_otlp_enc_destroy(x->enc);
	dbi_compressor_free(&x->comp);
	dbi_obuf_free(&x->raw);
	dbi_obuf_free(&x->body);
	dbi_obuf_free(&x->part);
	for (int i = 0; i < 3; i++)
		free(x->url[i]);
	free(x->local_blk);
	free(x);
}

static uint64_t otlphttp_shm_bytes(const void *cfg)
{
	(void)cfg;
	return sizeof(struct dbi_stats_block) + 1024; /* the sender's block */
}

const struct dbi_component dbi_exporter_otlphttp = {
        .type = "otlphttp",
        .kind = DBI_EXPORTER,
        .signals = DBI_SIG_METRICS | DBI_SIG_LOGS | DBI_SIG_TRACES,
        .doc = "OTLP/HTTP (protobuf or JSON) with retries, a persistent queue and a New Relic profile",
        .keys = otlphttp_keys,
        .conf_size = sizeof(struct otlphttp_cfg),
        .stats = otlphttp_stats,
        .validate = otlphttp_validate,
        .create = otlphttp_create,
        .destroy = otlphttp_destroy,
        .consume = otlphttp_consume,
        .tick = otlphttp_tick,
        .flush = otlphttp_flush,
        .start = otlphttp_start,
        .stop = otlphttp_stop,
        .shm_bytes = otlphttp_shm_bytes,
};
