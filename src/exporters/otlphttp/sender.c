/*
 * sender.c — the otlphttp exporter's sender thread: up to num_consumers HTTP/1.1
 * POSTs in flight on one curl multi handle (each consumer a reused easy handle, so
 * connections are kept alive), fed from the sending queue.
 *
 * A consumer holds one *part* of a queued request — all of it, or the items [lo, hi)
 * left after a 413 split or resolved before a restart — until the part is resolved:
 * acknowledged (2xx), or dropped for good (permanent 4xx, retries exhausted, a single
 * item too large), each counted by reason. A retryable failure keeps the part in its
 * consumer, waiting out the backoff or the server's Retry-After; a 429/503 Retry-After
 * also holds back every other consumer (the server asked the client to slow down, not
 * one request). The circuit breaker stops all starts while open and lets one probe
 * through when the cool-down ends.
 *
 * Usage accounting keeps 10-second buckets of bytes sent over the last five minutes;
 * their rate projected over 30 days is the GB/month New Relic would ingest.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "dbi/clock.h"
#include "dbi/log.h"
#include "dbi/otlp_json.h"
#include "dbi/otlp_pb.h"
#include "dbi/version.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include "otlphttp_int.h"
#include "pbwire.h"

#define RESP_MAX (64 * 1024)
#define USAGE_BUCKET_NS (10 * DBI_NSEC_PER_SEC)
#define USAGE_BUCKETS 30 /* five minutes */
#define MAX_CONSUMERS 64

const struct dbi_stat_def oh_sender_stats[] = {
        [OS_REQUESTS] = {"requests", DBI_STAT_COUNTER, "HTTP requests made (retries included)"},
        [OS_REQUESTS_OK] = {"requests.ok", DBI_STAT_COUNTER, "requests answered 2xx"},
        [OS_RETRIES] = {"retries", DBI_STAT_COUNTER, "requests scheduled again after a retryable failure"},
        [OS_BYTES_SENT] = {"bytes.sent", DBI_STAT_COUNTER, "request bytes acknowledged, as sent (compressed)"},
        [OS_BYTES_SENT_RAW] = {"bytes.sent_uncompressed", DBI_STAT_COUNTER,
                               "request bytes acknowledged, before compression"},
        [OS_POINTS_SENT] = {"points.sent", DBI_STAT_COUNTER, "data points acknowledged"},
        [OS_RECORDS_SENT] = {"records.sent", DBI_STAT_COUNTER, "log records and spans acknowledged"},
        [OS_FAIL_CONN] = {"failures.connection", DBI_STAT_COUNTER, "requests without an HTTP answer"},
        [OS_FAIL_4XX] = {"failures.4xx", DBI_STAT_COUNTER, "requests answered 4xx"},
        [OS_FAIL_5XX] = {"failures.5xx", DBI_STAT_COUNTER, "requests answered 5xx"},
        [OS_THROTTLED] = {"throttled", DBI_STAT_COUNTER, "429/503 answers whose Retry-After was honoured"},
        [OS_SPLITS] = {"splits", DBI_STAT_COUNTER, "requests split in two after HTTP 413"},
        [OS_DROP_RETRIES] = {"dropped.retries_exhausted", DBI_STAT_COUNTER,
                             "items dropped: still failing after max_elapsed_time (or retries disabled)"},
        [OS_DROP_BAD_REQUEST] = {"dropped.bad_request", DBI_STAT_COUNTER, "items dropped: HTTP 400"},
        [OS_DROP_UNAUTHORIZED] = {"dropped.unauthorized", DBI_STAT_COUNTER, "items dropped: HTTP 401/403"},
        [OS_DROP_NOT_FOUND] = {"dropped.not_found", DBI_STAT_COUNTER, "items dropped: HTTP 404"},
        [OS_DROP_REJECTED] = {"dropped.rejected", DBI_STAT_COUNTER, "items dropped: another non-retryable status"},
        [OS_DROP_TOO_LARGE] = {"dropped.too_large", DBI_STAT_COUNTER, "items dropped: HTTP 413 on a single item"},
        [OS_DROP_SHUTDOWN] = {"dropped.shutdown", DBI_STAT_COUNTER, "items dropped: memory queue at shutdown"},
        [OS_DROP_SPLIT] = {"dropped.split_failed", DBI_STAT_COUNTER, "items dropped: a request could not be cut"},
        [OS_PARTIAL_REJECTED] = {"partial_success.rejected", DBI_STAT_COUNTER,
                                 "items the endpoint accepted the request of but rejected (partial success)"},
        [OS_CIRCUIT_STATE] = {"circuit.state", DBI_STAT_GAUGE, "0 closed, 1 open, 2 half-open (probing)"},
        [OS_CIRCUIT_OPENS] = {"circuit.opens", DBI_STAT_COUNTER, "times the circuit breaker opened"},
        [OS_INFLIGHT] = {"inflight", DBI_STAT_GAUGE, "requests in flight"},
        [OS_LATENCY_LAST_MS] = {"latency.last_ms", DBI_STAT_GAUGE, "duration of the last request"},
        [OS_LATENCY_SUM_MS] = {"latency.sum_ms", DBI_STAT_COUNTER, "total duration of requests (avg = /requests)"},
        [OS_USAGE_MB_MONTH] = {"usage.projected_mb_month", DBI_STAT_GAUGE,
                               "uncompressed MB/month at the last 5 minutes' rate"},
        [OS_USAGE_WIRE_MB_MONTH] = {"usage.projected_wire_mb_month", DBI_STAT_GAUGE,
                                    "compressed MB/month at the last 5 minutes' rate"},
        [OS_NSTATS] = {NULL, 0, NULL},
};

struct part {
	struct dbi_oq_item *it;
	uint32_t lo, hi;
	uint32_t raw_len;
	const uint8_t *body; /* it->body when whole, else own.data */
	size_t len;
	struct dbi_obuf own;
};

struct slot {
	CURL *easy;
	int has;  /* holds a part */
	int busy; /* a transfer is in flight */
	struct part p;
	uint64_t due;    /* waiting: not before this (mono ns) */
	int backing_off; /* the backoff clock started */
	struct dbi_retry_backoff bo;
	uint64_t t0;
	struct dbi_obuf resp;
	char errbuf[CURL_ERROR_SIZE];
};

struct oh_sender {
	CURLM *multi;
	struct curl_slist *hdrs;
	struct slot slots[MAX_CONSUMERS];
	int nslots;
	struct part *pend; /* parts waiting for a consumer (splits, leftovers of redelivered requests) */
	size_t npend, pendcap;
	struct dbi_retry_cfg bcfg;
	struct dbi_breaker_cfg ccfg;
	struct dbi_breaker circ;
	uint64_t throttle_until;
	uint64_t rng;
	struct dbi_compressor comp;
	struct dbi_obuf tmp;
	/* usage */
	uint64_t ub_raw[USAGE_BUCKETS], ub_wire[USAGE_BUCKETS];
	uint64_t ub_epoch; /* index of the current bucket since start */
	uint64_t t_start, last_usage_log;
	/* permanent-error log: one line per status per minute */
	uint64_t last_perm_log;
	long last_perm_status;
};

static double rand01(struct oh_sender *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return (double)(s->rng >> 11) * (1.0 / 9007199254740992.0);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct dbi_obuf *b = userdata;
	size_t n = size * nmemb, room = RESP_MAX > b->len ? RESP_MAX - b->len : 0;
	size_t take = DBI_MIN(n, room);
	if (take && dbi_obuf_reserve(b, b->len + take) == DBI_OK) {
		memcpy(b->data + b->len, ptr, take);
		b->len += take;
	}
	return n; /* keep reading what does not fit: the connection stays usable */
}

/* ---- parts ---- */

static void part_free(struct part *p)
{
	dbi_obuf_free(&p->own);
	memset(p, 0, sizeof(*p));
}

static int pend_push(struct oh_sender *s, const struct part *p, int front)
{
	if (s->npend == s->pendcap) {
		size_t ncap = s->pendcap ? s->pendcap * 2 : 16;
		struct part *np = realloc(s->pend, ncap * sizeof(*np));
		if (!np)
			return DBI_ERR;
		s->pend = np;
		s->pendcap = ncap;
	}
	if (front) {
		memmove(&s->pend[1], &s->pend[0], s->npend * sizeof(s->pend[0]));
		s->pend[0] = *p;
	} else {
		s->pend[s->npend] = *p;
	}
	s->npend++;
	return DBI_OK;
}

static unsigned item_stat(const struct dbi_oq_item *it)
{
	return it->m.signal == DBI_SIG_METRICS ? OS_POINTS_SENT : OS_RECORDS_SENT;
}

/* The part is resolved (sent or dropped). */
static void part_resolve(struct otlphttp *x, struct part *p)
{
	dbi_oq_part_done(x->q, p->it, p->lo, p->hi);
	part_free(p);
}

static void part_drop(struct otlphttp *x, struct part *p, unsigned stat)
{
	dbi_stats_add(&x->sst, stat, p->hi - p->lo);
	part_resolve(x, p);
}

/* Fill p->body for items [lo, hi) of p->it (a sub-range needs cutting and re-encoding). */
static int part_prepare(struct otlphttp *x, struct oh_sender *s, struct part *p)
{
	if (p->lo == 0 && p->hi == p->it->m.nitems) {
		p->body = p->it->body;
		p->len = p->it->body_len;
		p->raw_len = p->it->m.raw_len;
		return DBI_OK;
	}
	struct dbi_obuf pb = {0};
	int rc = oh_body_to_pb(&p->it->m, p->it->body, p->it->body_len, &pb);
	if (rc == DBI_OK)
		rc = oh_encode_part(x, &s->comp, &p->it->m, pb.data, pb.len, p->lo, p->hi, &s->tmp, &p->own,
		                    &p->raw_len);
	dbi_obuf_free(&pb);
	if (rc != DBI_OK)
		return DBI_ERR;
	p->body = p->own.data;
	p->len = p->own.len;
	return DBI_OK;
}

/* ---- requests ---- */

static int start(struct otlphttp *x, struct oh_sender *s, struct slot *sl, uint64_t now)
{
	struct part *p = &sl->p;
	if (!p->body && part_prepare(x, s, p) != DBI_OK) {
		DBI_LOGE("otlphttp", "cannot re-encode part of a queued request; dropped", "exporter=%s items=%u",
		         x->id, p->hi - p->lo);
		part_drop(x, p, OS_DROP_SPLIT);
		sl->has = 0;
		return DBI_ERR;
	}
	const char *url = x->url[oh_sig_index(p->it->m.signal)];
	sl->resp.len = 0;
	sl->errbuf[0] = '\0';
	curl_easy_setopt(sl->easy, CURLOPT_URL, url);
	curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDS, p->body);
	curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->len);
	dbi_breaker_allow(&s->circ, &s->ccfg, now);
	if (curl_multi_add_handle(s->multi, sl->easy) != CURLM_OK) {
		sl->due = now + DBI_NSEC_PER_SEC;
		return DBI_ERR;
	}
	sl->busy = 1;
	sl->t0 = now;
	dbi_stats_add(&x->sst, OS_REQUESTS, 1);
	return DBI_OK;
}

/* Printable excerpt of text for the log (quotes and control bytes replaced). */
static void text_excerpt(const uint8_t *txt, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < cap && o < 300; i++) {
		unsigned char c = txt[i];
		out[o++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : (c == '\n' ? ' ' : '?');
	}
	out[o] = '\0';
}

/* An error response for the log: a protobuf google.rpc.Status's message, else the text itself. */
static void body_excerpt(const struct dbi_obuf *b, int is_pb, char *out, size_t cap)
{
	const uint8_t *p = b->data, *end = b->data + b->len, *txt = b->data;
	size_t n = b->len;
	struct pb_field f;
	if (is_pb && b->len && pb_check_shallow(b->data, b->len) == 0) {
		while (pb_next(&p, end, &f) == 1)
			if (f.num == 2 && f.wt == PB_LEN) {
				txt = f.data;
				n = f.len;
			}
	}
	text_excerpt(txt, n, out, cap);
}

/* Count rejected items from an Export*ServiceResponse's partial_success. */
/* JSON Export*ServiceResponse: decode it, then read its partial_success. */
static void partial_success_json(const struct dbi_obuf *b, unsigned signal, uint64_t *rejected, char *msg, size_t cap)
{
	ProtobufCMessage *m = NULL;
	const char *em = NULL;
	if (signal == DBI_SIG_METRICS) {
		if (dbi_otlp_json_decode(
		            &opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__descriptor,
		            (const char *)b->data, b->len, &m, NULL) != DBI_OK)
			return;
		const Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse *r = (const void *)m;
		if (r->partial_success) {
			*rejected = (uint64_t)r->partial_success->rejected_data_points;
			em = r->partial_success->error_message;
		}
	} else if (signal == DBI_SIG_LOGS) {
		if (dbi_otlp_json_decode(
		            &opentelemetry__proto__collector__logs__v1__export_logs_service_response__descriptor,
		            (const char *)b->data, b->len, &m, NULL) != DBI_OK)
			return;
		const Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse *r = (const void *)m;
		if (r->partial_success) {
			*rejected = (uint64_t)r->partial_success->rejected_log_records;
			em = r->partial_success->error_message;
		}
	} else {
		if (dbi_otlp_json_decode(
		            &opentelemetry__proto__collector__trace__v1__export_trace_service_response__descriptor,
		            (const char *)b->data, b->len, &m, NULL) != DBI_OK)
			return;
		const Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *r = (const void *)m;
		if (r->partial_success) {
			*rejected = (uint64_t)r->partial_success->rejected_spans;
			em = r->partial_success->error_message;
		}
	}
	if (em)
		text_excerpt((const uint8_t *)em, strlen(em), msg, cap);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Count rejected items from an Export*ServiceResponse's partial_success. */
static void partial_success(struct otlphttp *x, const struct dbi_obuf *b, int json, unsigned signal)
{
	uint64_t rejected = 0;
	char msg[256] = "";
	if (b->len == 0)
		return;
	if (json) {
		partial_success_json(b, signal, &rejected, msg, sizeof(msg));
	} else {
		const uint8_t *p = b->data, *end = b->data + b->len;
		struct pb_field f, g;
		while (pb_next(&p, end, &f) == 1) {
			if (f.num != 1 || f.wt != PB_LEN)
				continue;
			const uint8_t *q = f.data, *qe = f.data + f.len;
			while (pb_next(&q, qe, &g) == 1) {
				if (g.num == 1 && g.wt == PB_VARINT)
					rejected = g.v;
				else if (g.num == 2 && g.wt == PB_LEN)
					text_excerpt(g.data, g.len, msg, sizeof(msg));
			}
		}
	}
	if (rejected || *msg) {
		dbi_stats_add(&x->sst, OS_PARTIAL_REJECTED, rejected);
		DBI_LOGW("otlphttp", "endpoint accepted a request but rejected part of it",
		         "exporter=%s rejected=%" PRIu64 " message=\"%s\"", x->id, rejected, msg);
	}
}

static void log_permanent(struct otlphttp *x, struct oh_sender *s, struct slot *sl, long status, int is_pb,
                          uint64_t now)
{
	char ex[320];
	/* one line per status and minute: a misconfigured key must be loud but not flood */
	if (status == s->last_perm_status && now - s->last_perm_log < 60 * DBI_NSEC_PER_SEC)
		return;
	s->last_perm_status = status;
	s->last_perm_log = now;
	body_excerpt(&sl->resp, is_pb, ex, sizeof(ex));
	const char *hint = status == 401   ? " (missing or invalid api key / credentials)"
	                   : status == 403 ? " (key not allowed: wrong key type or account?)"
	                   : status == 404 ? " (wrong endpoint path?)"
	                                   : "";
	DBI_LOGE("otlphttp", "endpoint refused a request; not retried, dropped",
	         "exporter=%s status=%ld%s items=%u url=%s body=\"%s\"", x->id, status, hint, sl->p.hi - sl->p.lo,
	         x->url[oh_sig_index(sl->p.it->m.signal)], ex);
}

static void usage_add(struct oh_sender *s, uint64_t now, uint64_t raw, uint64_t wire)
{
	uint64_t b = (now - s->t_start) / USAGE_BUCKET_NS;
	while (s->ub_epoch < b) {
		s->ub_epoch++;
		s->ub_raw[s->ub_epoch % USAGE_BUCKETS] = 0;
		s->ub_wire[s->ub_epoch % USAGE_BUCKETS] = 0;
	}
	s->ub_raw[b % USAGE_BUCKETS] += raw;
	s->ub_wire[b % USAGE_BUCKETS] += wire;
}

static void usage_update(struct otlphttp *x, struct oh_sender *s, uint64_t now)
{
	usage_add(s, now, 0, 0);
	uint64_t raw = 0, wire = 0;
	for (int i = 0; i < USAGE_BUCKETS; i++) {
		raw += s->ub_raw[i];
		wire += s->ub_wire[i];
	}
	double secs = (double)DBI_MIN(now - s->t_start, (uint64_t)USAGE_BUCKETS * USAGE_BUCKET_NS) / 1e9;
	if (secs < 1.0)
		return;
	double month = 30.0 * 86400.0;
	double mb_raw = (double)raw / secs * month / 1e6, mb_wire = (double)wire / secs * month / 1e6;
	dbi_stats_set(&x->sst, OS_USAGE_MB_MONTH, (uint64_t)mb_raw);
	dbi_stats_set(&x->sst, OS_USAGE_WIRE_MB_MONTH, (uint64_t)mb_wire);
	uint64_t every = x->cfg->usage_log_interval;
	if (every && now - s->last_usage_log >= every) {
		s->last_usage_log = now;
		DBI_LOGI("otlphttp", "usage",
		         "exporter=%s projected_gb_month=%.3f projected_wire_gb_month=%.3f "
		         "points_sent=%" PRIu64 " records_sent=%" PRIu64 " bytes_sent=%" PRIu64,
		         x->id, mb_raw / 1000.0, mb_wire / 1000.0, dbi_stats_get(&x->sst, OS_POINTS_SENT),
		         dbi_stats_get(&x->sst, OS_RECORDS_SENT), dbi_stats_get(&x->sst, OS_BYTES_SENT));
	}
}

/* 413: cut the part in two; the slot keeps the first half, the second goes first in line. */
static void split(struct otlphttp *x, struct oh_sender *s, struct slot *sl)
{
	struct part *p = &sl->p;
	if (p->hi - p->lo <= 1) {
		DBI_LOGE("otlphttp", "endpoint says a single item is too large (413); dropped", "exporter=%s bytes=%zu",
		         x->id, p->len);
		part_drop(x, p, OS_DROP_TOO_LARGE);
		sl->has = 0;
		return;
	}
	uint32_t mid = p->lo + (p->hi - p->lo) / 2;
	struct part b = {.it = p->it, .lo = mid, .hi = p->hi};
	dbi_obuf_free(&p->own);
	p->hi = mid;
	p->body = NULL;
	if (pend_push(s, &b, 1) != DBI_OK) {
		part_drop(x, &b, OS_DROP_SPLIT);
	}
	dbi_stats_add(&x->sst, OS_SPLITS, 1);
	sl->due = 0;
	sl->backing_off = 0;
}

static void finish(struct otlphttp *x, struct oh_sender *s, struct slot *sl, CURLcode res, uint64_t now)
{
	long status = 0;
	struct part *p = &sl->p;
	char retry_after[72] = "";
	int json = 0, is_pb = 0;
	struct curl_header *h = NULL;
	if (res == CURLE_OK)
		curl_easy_getinfo(sl->easy, CURLINFO_RESPONSE_CODE, &status);
	/* header values live only until the next call on the handle: copy what is needed */
	if (status && curl_easy_header(sl->easy, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h)
		dbi_strlcpy(retry_after, h->value, sizeof(retry_after));
	if (status && curl_easy_header(sl->easy, "Content-Type", 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h) {
		json = strstr(h->value, "json") != NULL;
		is_pb = strstr(h->value, "protobuf") != NULL;
	}
	curl_multi_remove_handle(s->multi, sl->easy);
	sl->busy = 0;
	uint64_t ms = (now - sl->t0) / DBI_NSEC_PER_MSEC;
	dbi_stats_set(&x->sst, OS_LATENCY_LAST_MS, ms);
	dbi_stats_add(&x->sst, OS_LATENCY_SUM_MS, ms);
	int failed = dbi_retry_endpoint_failed(status);
	int was = s->circ.state;
	dbi_breaker_result(&s->circ, &s->ccfg, now, failed);
	if (s->circ.state == DBI_BREAKER_OPEN && was != DBI_BREAKER_OPEN) {
		dbi_stats_add(&x->sst, OS_CIRCUIT_OPENS, 1);
		char d[32];
		DBI_LOGW("otlphttp", "circuit breaker open: endpoint keeps failing; holding requests",
		         "exporter=%s for=%s", x->id, dbi_fmt_duration(s->circ.cooldown_ns, d, sizeof(d)));
	} else if (s->circ.state == DBI_BREAKER_CLOSED && was != DBI_BREAKER_CLOSED) {
		DBI_LOGI("otlphttp", "circuit breaker closed: endpoint answers again", "exporter=%s", x->id);
	}
	if (status == 0)
		dbi_stats_add(&x->sst, OS_FAIL_CONN, 1);
	else if (status >= 400 && status < 500)
		dbi_stats_add(&x->sst, OS_FAIL_4XX, 1);
	else if (status >= 500)
		dbi_stats_add(&x->sst, OS_FAIL_5XX, 1);

	switch (dbi_retry_classify(status)) {
	case DBI_RETRY_OK:
		dbi_stats_add(&x->sst, OS_REQUESTS_OK, 1);
		dbi_stats_add(&x->sst, OS_BYTES_SENT, p->len);
		dbi_stats_add(&x->sst, OS_BYTES_SENT_RAW, p->raw_len);
		dbi_stats_add(&x->sst, item_stat(p->it), p->hi - p->lo);
		usage_add(s, now, p->raw_len, p->len);
		partial_success(x, &sl->resp, json, p->it->m.signal);
		part_resolve(x, p);
		sl->has = 0;
		return;
	case DBI_RETRY_TOO_LARGE:
		split(x, s, sl);
		return;
	case DBI_RETRY_PERMANENT: {
		unsigned why = status == 400                      ? OS_DROP_BAD_REQUEST
		               : (status == 401 || status == 403) ? OS_DROP_UNAUTHORIZED
		               : status == 404                    ? OS_DROP_NOT_FOUND
		                                                  : OS_DROP_REJECTED;
		log_permanent(x, s, sl, status, is_pb, now);
		part_drop(x, p, why);
		sl->has = 0;
		return;
	}
	case DBI_RETRY_RETRY:
		break;
	}
	if (status == 0) {
		const char *hint =
		        res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE
		                ? " (TLS verification: set tls.ca_file, or tls.insecure_skip_verify for tests)"
		                : "";
		DBI_LOGW("otlphttp", "request failed; will retry", "exporter=%s error=\"%s%s\" url=%s", x->id,
		         sl->errbuf[0] ? sl->errbuf : curl_easy_strerror(res), hint,
		         x->url[oh_sig_index(p->it->m.signal)]);
	} else {
		DBI_LOGW("otlphttp", "endpoint failed a request; will retry", "exporter=%s status=%ld", x->id, status);
	}
	if (!x->cfg->retry_enabled) {
		part_drop(x, p, OS_DROP_RETRIES);
		sl->has = 0;
		return;
	}
	if (!sl->backing_off) {
		dbi_retry_backoff_start(&sl->bo, &s->bcfg, sl->t0);
		sl->backing_off = 1;
	}
	uint64_t wait = dbi_retry_backoff_next(&sl->bo, &s->bcfg, now, rand01(s));
	uint64_t ra;
	if ((status == 429 || status == 503) && *retry_after &&
	    dbi_retry_after_parse(retry_after, time(NULL), &ra) == DBI_OK) {
		dbi_stats_add(&x->sst, OS_THROTTLED, 1);
		/* the server's word beats our schedule, but max_elapsed_time still bounds it */
		if (s->bcfg.max_elapsed_ns && now - sl->bo.start_ns + ra > s->bcfg.max_elapsed_ns)
			wait = 0;
		else
			wait = DBI_MAX(ra, 1);
		if (wait)
			s->throttle_until = DBI_MAX(s->throttle_until, now + wait);
	}
	if (wait == 0) {
		DBI_LOGE("otlphttp", "giving up on a request after max_elapsed_time; dropped", "exporter=%s items=%u",
		         x->id, p->hi - p->lo);
		part_drop(x, p, OS_DROP_RETRIES);
		sl->has = 0;
		sl->backing_off = 0;
		return;
	}
	dbi_stats_add(&x->sst, OS_RETRIES, 1);
	sl->due = now + wait;
}

/* May a new request start now (throttle, circuit), without taking the probe slot? */
static int can_start(const struct oh_sender *s, uint64_t now)
{
	if (now < s->throttle_until)
		return 0;
	if (!s->ccfg.enabled || s->circ.state == DBI_BREAKER_CLOSED)
		return 1;
	if (s->circ.state == DBI_BREAKER_OPEN)
		return now >= s->circ.open_until;
	return !s->circ.probing;
}

/* A free slot gets the next part: a pending one, else the next request from the queue. */
static int next_part(struct otlphttp *x, struct oh_sender *s, struct part *out)
{
	for (;;) {
		if (s->npend) {
			*out = s->pend[0];
			memmove(&s->pend[0], &s->pend[1], (s->npend - 1) * sizeof(s->pend[0]));
			s->npend--;
			return 1;
		}
		struct dbi_oq_item *it;
		if (dbi_oq_take(x->q, &it) != DBI_OK)
			return 0;
		struct dbi_oq_range rest[DBI_OQ_MAX_RANGES + 1];
		uint32_t n = dbi_oq_remaining(it, rest, DBI_OQ_MAX_RANGES + 1);
		if (n == 0) {
			dbi_oq_part_done(x->q, it, 0, it->m.nitems); /* nothing left: resolve it */
			continue;
		}
		for (uint32_t i = 0; i < n; i++) {
			struct part p = {.it = it, .lo = rest[i].lo, .hi = rest[i].hi};
			if (pend_push(s, &p, 0) != DBI_OK)
				part_drop(x, &p, OS_DROP_SPLIT);
		}
	}
}

static uint64_t drive(struct otlphttp *x, struct oh_sender *s, uint64_t now, int draining)
{
	uint64_t next = now + DBI_NSEC_PER_SEC;
	int inflight = 0;
	for (int i = 0; i < s->nslots; i++) {
		struct slot *sl = &s->slots[i];
		if (sl->busy) {
			inflight++;
			continue;
		}
		if (draining == 2)
			continue;
		if (!sl->has) {
			/* persistent queue at shutdown: what is not started stays on disk */
			if (draining && x->cfg->queue_storage == OH_STORAGE_FILE && x->cfg->queue_enabled)
				continue;
			if (!can_start(s, now) || !next_part(x, s, &sl->p))
				continue;
			sl->has = 1;
			sl->due = 0;
			sl->backing_off = 0;
		}
		if (sl->due > now) {
			next = DBI_MIN(next, sl->due);
			continue;
		}
		if (!can_start(s, now))
			continue;
		if (start(x, s, sl, now) == DBI_OK)
			inflight++;
	}
	if (now < s->throttle_until)
		next = DBI_MIN(next, s->throttle_until);
	if (s->circ.state == DBI_BREAKER_OPEN)
		next = DBI_MIN(next, DBI_MAX(s->circ.open_until, now + DBI_NSEC_PER_MSEC));
	dbi_stats_set(&x->sst, OS_INFLIGHT, (uint64_t)inflight);
	dbi_stats_set(&x->sst, OS_CIRCUIT_STATE, (uint64_t)s->circ.state);
	return next;
}

static int all_idle(const struct oh_sender *s)
{
	for (int i = 0; i < s->nslots; i++)
		if (s->slots[i].has || s->slots[i].busy)
			return 0;
	return s->npend == 0;
}

static int any_busy(const struct oh_sender *s)
{
	for (int i = 0; i < s->nslots; i++)
		if (s->slots[i].busy)
			return 1;
	return 0;
}

void *oh_sender_main(void *arg)
{
	struct otlphttp *x = arg;
	struct oh_sender *s = x->snd;
	s->t_start = s->last_usage_log = dbi_mono_ns();
	for (;;) {
		uint64_t now = dbi_mono_ns();
		int draining = atomic_load(&x->draining);
		if (draining) {
			uint64_t dl = atomic_load(&x->drain_deadline);
			struct dbi_oq_stats qs;
			dbi_oq_get_stats(x->q, &qs);
			int persistent = x->cfg->queue_storage == OH_STORAGE_FILE && x->cfg->queue_enabled;
			/* memory: until everything is sent; disk: until what is in flight has landed */
			int done = persistent ? !any_busy(s) : (all_idle(s) && qs.pending == 0);
			if (draining == 2 || done || (dl && now >= dl))
				break;
		}
		uint64_t next = drive(x, s, now, draining);
		int running = 0;
		curl_multi_perform(s->multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
			if (m->msg != CURLMSG_DONE)
				continue;
			for (int i = 0; i < s->nslots; i++)
				if (s->slots[i].easy == m->easy_handle && s->slots[i].busy) {
					finish(x, s, &s->slots[i], m->data.result, dbi_mono_ns());
					next = 0; /* a slot may have freed up: go round at once */
					break;
				}
		}
		now = dbi_mono_ns();
		usage_update(x, s, now);
		dbi_stats_publish(&x->sst);
		if (next && next <= now)
			continue;
		if (next == 0)
			continue;
		uint64_t wait_ms = (next - now + DBI_NSEC_PER_MSEC - 1) / DBI_NSEC_PER_MSEC;
		if (draining) {
			uint64_t dl = atomic_load(&x->drain_deadline);
			if (dl && dl > now)
				wait_ms = DBI_MIN(wait_ms, (dl - now) / DBI_NSEC_PER_MSEC + 1);
		}
		curl_multi_poll(s->multi, NULL, 0, (int)DBI_MIN(wait_ms, 1000), NULL);
	}
	atomic_store(&x->drained, 1);
	return NULL;
}

void oh_sender_wake(struct otlphttp *x)
{
	if (x->snd && x->snd->multi)
		curl_multi_wakeup(x->snd->multi);
}

void oh_sender_finish(struct otlphttp *x)
{
	struct oh_sender *s = x->snd;
	if (!s)
		return;
	int mem = !(x->cfg->queue_storage == OH_STORAGE_FILE && x->cfg->queue_enabled);
	/* abandon each request once, whichever of its parts are still around */
	for (int i = 0; i < s->nslots; i++) {
		struct slot *sl = &s->slots[i];
		if (sl->busy) {
			curl_multi_remove_handle(s->multi, sl->easy);
			sl->busy = 0;
		}
		if (!sl->has)
			continue;
		if (mem)
			dbi_stats_add(&x->sst, OS_DROP_SHUTDOWN, sl->p.hi - sl->p.lo);
	}
	for (size_t i = 0; i < s->npend; i++)
		if (mem)
			dbi_stats_add(&x->sst, OS_DROP_SHUTDOWN, s->pend[i].hi - s->pend[i].lo);
	for (int i = 0; i < s->nslots; i++) {
		struct slot *sl = &s->slots[i];
		if (!sl->has)
			continue;
		struct dbi_oq_item *it = sl->p.it;
		for (int j = i; j < s->nslots; j++)
			if (s->slots[j].has && s->slots[j].p.it == it) {
				part_free(&s->slots[j].p);
				s->slots[j].has = 0;
			}
		for (size_t j = 0; j < s->npend; j++)
			if (s->pend[j].it == it) {
				part_free(&s->pend[j]);
				s->pend[j].it = NULL;
			}
		dbi_oq_abandon(x->q, it);
	}
	for (size_t i = 0; i < s->npend; i++) {
		struct dbi_oq_item *it = s->pend[i].it;
		if (!it)
			continue;
		for (size_t j = i; j < s->npend; j++)
			if (s->pend[j].it == it) {
				part_free(&s->pend[j]);
				s->pend[j].it = NULL;
			}
		dbi_oq_abandon(x->q, it);
	}
	s->npend = 0;
	if (mem) {
		struct dbi_oq_stats qs;
		dbi_oq_get_stats(x->q, &qs);
		dbi_stats_add(&x->sst, OS_DROP_SHUTDOWN, qs.pending_items);
		if (qs.pending_items)
			DBI_LOGW("otlphttp", "shutdown: queued items not sent in time were dropped",
			         "exporter=%s items=%" PRIu64, x->id, qs.pending_items);
	}
	dbi_stats_set(&x->sst, OS_INFLIGHT, 0);
	dbi_stats_publish(&x->sst);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int oh_sender_create(struct otlphttp *x, struct dbi_errbuf *err)
{
	const struct otlphttp_cfg *c = x->cfg;
	char line[8192];
	pthread_once(&curl_once, curl_init_once);
	struct oh_sender *s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	x->snd = s;
	s->rng = dbi_mono_ns() | 1;
	s->bcfg = (struct dbi_retry_cfg){c->retry_initial, c->retry_max_interval, c->retry_max_elapsed,
	                                 c->retry_randomization, c->retry_multiplier};
	s->ccfg = (struct dbi_breaker_cfg){c->cb_enabled, (uint32_t)c->cb_threshold, c->cb_open, c->cb_max_open};
	dbi_breaker_init(&s->circ, &s->ccfg);
	if (dbi_compressor_init(&s->comp, c->compression, (int)c->compression_level) != DBI_OK)
		goto nomem;
	s->multi = curl_multi_init();
	if (!s->multi)
		goto nomem;
	snprintf(line, sizeof(line), "Content-Type: %s",
	         c->encoding == OH_ENC_JSON ? "application/json" : "application/x-protobuf");
	s->hdrs = curl_slist_append(s->hdrs, line);
	if (dbi_compressor_name(c->compression)) {
		snprintf(line, sizeof(line), "Content-Encoding: %s", dbi_compressor_name(c->compression));
		s->hdrs = curl_slist_append(s->hdrs, line);
	}
	s->hdrs = curl_slist_append(s->hdrs, "Expect:"); /* no 100-continue round trip for big bodies */
	for (size_t i = 0; i < c->headers.n; i++) {
		const char *k = c->headers.k[i], *v = c->headers.v[i] ? c->headers.v[i] : "";
		if (!*k || strpbrk(k, ":\r\n ") || strpbrk(v, "\r\n")) {
			dbi_err_add(err, "%s: headers: invalid header name or value for \"%s\"", x->id, k);
			goto fail;
		}
		if (!*v)
			DBI_LOGW("otlphttp", "a configured header is empty (unset environment variable?)",
			         "exporter=%s header=%s", x->id, k);
		/* "Name;" is curl's way to send a header with an empty value */
		if (*v)
			snprintf(line, sizeof(line), "%s: %s", k, v);
		else
			snprintf(line, sizeof(line), "%s;", k);
		s->hdrs = curl_slist_append(s->hdrs, line);
	}
	explicit_bzero(line, sizeof(line));
	if (!s->hdrs)
		goto nomem;
	s->nslots = (int)DBI_MIN(c->queue_enabled ? c->num_consumers : 1, MAX_CONSUMERS);
	char ua[128];
	snprintf(ua, sizeof(ua), "dbi-collector/%s", DBI_VERSION);
	for (int i = 0; i < s->nslots; i++) {
		struct slot *sl = &s->slots[i];
		CURL *e = sl->easy = curl_easy_init();
		if (!e)
			goto nomem;
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->hdrs);
		curl_easy_setopt(e, CURLOPT_USERAGENT, ua);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->timeout / DBI_NSEC_PER_MSEC));
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
		                 (long)(DBI_MIN(c->timeout, 10 * DBI_NSEC_PER_SEC) / DBI_NSEC_PER_MSEC));
		curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->tls_insecure ? 0L : 1L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->tls_insecure ? 0L : 2L);
		if (c->tls_ca_file && *c->tls_ca_file)
			curl_easy_setopt(e, CURLOPT_CAINFO, c->tls_ca_file);
		if (c->tls_cert_file && *c->tls_cert_file)
			curl_easy_setopt(e, CURLOPT_SSLCERT, c->tls_cert_file);
		if (c->tls_key_file && *c->tls_key_file)
			curl_easy_setopt(e, CURLOPT_SSLKEY, c->tls_key_file);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &sl->resp);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, sl->errbuf);
		curl_easy_setopt(e, CURLOPT_PRIVATE, sl);
	}
	return DBI_OK;
nomem:
	dbi_err_add(err, "%s: out of memory setting up HTTP", x->id);
fail:
	explicit_bzero(line, sizeof(line));
	oh_sender_destroy(x);
	return DBI_ERR;
}

void oh_sender_destroy(struct otlphttp *x)
{
	struct oh_sender *s = x->snd;
	if (!s)
		return;
	for (int i = 0; i < MAX_CONSUMERS; i++) {
		struct slot *sl = &s->slots[i];
		if (sl->easy) {
			if (sl->busy && s->multi)
				curl_multi_remove_handle(s->multi, sl->easy);
			curl_easy_cleanup(sl->easy);
		}
		part_free(&sl->p);
		dbi_obuf_free(&sl->resp);
	}
	if (s->multi)
		curl_multi_cleanup(s->multi);
	for (struct curl_slist *l = s->hdrs; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data)); /* the api key was in there */
	curl_slist_free_all(s->hdrs);
	for (size_t i = 0; i < s->npend; i++)
		part_free(&s->pend[i]);
	free(s->pend);
	dbi_compressor_free(&s->comp);
	dbi_obuf_free(&s->tmp);
	free(s);
	x->snd = NULL;
}
