/*
 * otlp.c — the `otlp` receiver: OTLP/HTTP (protobuf and JSON) on 4318 and OTLP/gRPC on
 * 4317, metrics, logs and traces, into the pipeline.
 *
 * One runtime thread does everything: the rings are single-producer, so the HTTP
 * server (libmicrohttpd in external epoll mode), the gRPC server (nghttp2 over
 * non-blocking sockets) and the runtime's wake fd share one epoll loop here, and every
 * emit happens on this thread. A request is decompressed (size- and ratio-bounded),
 * unpacked, admitted — refused whole with 429/RESOURCE_EXHAUSTED or 503/UNAVAILABLE
 * when the memory limiter or full rings say so, before anything is emitted, so a
 * client's retry never duplicates data — then emitted and published, and only then
 * answered 200: an accepted request is in the rings. Items the pipeline cannot take
 * (series limit, invalid points) are counted by reason and reported to the client in
 * partial_success.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/log.h"
#include "dbi/runtime.h"
#include "otlp_int.h"

struct otlp_cfg {
	bool grpc_enabled;
	struct dbi_endpoint grpc_ep;
	int64_t grpc_max_mib;
	int64_t grpc_max_conns;
	int64_t grpc_max_streams;
	uint64_t grpc_max_idle;
	bool http_enabled;
	struct dbi_endpoint http_ep;
	int64_t http_max_mib;
	int64_t http_max_conns;
	char *bearer_token;
	int64_t max_ratio;
	uint64_t backpressure_wait;
	uint64_t retry_after;
};

static const struct dbi_conf_key otlp_keys[] = {
        {.name = "protocols.grpc.enabled",
         .type = DBI_CT_BOOL,
         .offset = offsetof(struct otlp_cfg, grpc_enabled),
         .def = "true",
         .doc = "serve OTLP/gRPC"},
        {.name = "protocols.grpc.endpoint",
         .type = DBI_CT_ENDPOINT,
         .offset = offsetof(struct otlp_cfg, grpc_ep),
         .def = "127.0.0.1:4317",
         .doc = "gRPC listen address (0.0.0.0:4317 for every interface)"},
        {.name = "protocols.grpc.max_recv_msg_size_mib",
         .type = DBI_CT_INT,
         .offset = offsetof(struct otlp_cfg, grpc_max_mib),
         .def = "4",
         .min = 1,
         .max = 256,
         .doc = "largest request message, compressed and decompressed (MiB)"},
        {.name = "protocols.grpc.max_connections",
         .type = DBI_CT_INT,
         .offset = offsetof(struct otlp_cfg, grpc_max_conns),
         .def = "256",
         .min = 1,
         .max = 65536,
         .doc = "concurrent gRPC connections; more are closed at once"},
        {.name = "protocols.grpc.max_concurrent_streams",
         .type = DBI_CT_INT,
         .offset = offsetof(struct otlp_cfg, grpc_max_streams),
         .def = "16",
         .min = 1,
         .max = 1024,
         .doc = "concurrent requests per gRPC connection (HTTP/2 SETTINGS)"},
        {.name = "protocols.grpc.max_connection_idle",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct otlp_cfg, grpc_max_idle),
         .def = "5m",
         .doc = "close (GOAWAY) gRPC connections that sent nothing for this long; 0 = never"},
        {.name = "protocols.http.enabled",
         .type = DBI_CT_BOOL,
         .offset = offsetof(struct otlp_cfg, http_enabled),
         .def = "true",
         .doc = "serve OTLP/HTTP"},
        {.name = "protocols.http.endpoint",
         .type = DBI_CT_ENDPOINT,
         .offset = offsetof(struct otlp_cfg, http_ep),
         .def = "127.0.0.1:4318",
         .doc = "HTTP listen address (0.0.0.0:4318 for every interface)"},
        {.name = "protocols.http.max_recv_msg_size_mib",
         .type = DBI_CT_INT,
         .offset = offsetof(struct otlp_cfg, http_max_mib),
         .def = "4",
         .min = 1,
         .max = 256,
         .doc = "largest request body, compressed and decompressed (MiB)"},
        {.name = "protocols.http.max_connections",
         .type = DBI_CT_INT,
         .offset = offsetof(struct otlp_cfg, http_max_conns),
         .def = "256",
         .min = 1,
         .max = 65536,
         .doc = "concurrent HTTP connections; more are refused"},
        {.name = "auth.bearer_token",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct otlp_cfg, bearer_token),
         .flags = DBI_CK_SECRET,
         .doc = "when set, requests need 'Authorization: Bearer <token>' (401 / UNAUTHENTICATED)"},
        {.name = "max_decompression_ratio",
         .type = DBI_CT_INT,
         .offset = offsetof(struct otlp_cfg, max_ratio),
         .def = "200",
         .min = 0,
         .max = 100000,
         .doc = "refuse bodies that inflate more than this many times (past 1 MiB); 0 = no limit"},
        {.name = "backpressure_wait",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct otlp_cfg, backpressure_wait),
         .def = "50ms",
         .doc = "how long a request waits for room in a full pipeline before 429 / RESOURCE_EXHAUSTED"},
        {.name = "retry_after",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct otlp_cfg, retry_after),
         .def = "1s",
         .min = 1,
         .max = 3600,
         .doc = "delay suggested to refused clients (Retry-After, gRPC RetryInfo)"},
        DBI_CONF_END,
};

enum {
	/* per protocol, in enum otlp_outcome order minus duplicates; see outcome_stat() */
	S_HTTP_OK,
	S_HTTP_PARTIAL,
	S_HTTP_BAD,
	S_HTTP_TOO_LARGE,
	S_HTTP_FULL,
	S_HTTP_UNAVAILABLE,
	S_HTTP_UNAUTHORIZED,
	S_HTTP_UNSUPPORTED,
	S_GRPC_OK,
	S_GRPC_PARTIAL,
	S_GRPC_BAD,
	S_GRPC_TOO_LARGE,
	S_GRPC_FULL,
	S_GRPC_UNAVAILABLE,
	S_GRPC_UNAUTHORIZED,
	S_GRPC_UNSUPPORTED,
	S_POINTS,
	S_LOGS,
	S_SPANS,
	S_REFUSED_POINTS,
	S_REFUSED_LOGS,
	S_REFUSED_SPANS,
	S_DROP_SERIES_LIMIT,
	S_DROP_INVALID,
	S_DROP_ATTRIBUTES,
	S_DROP_TOO_LARGE,
	S_DROP_PIPELINE,
	S_BYTES_IN,
	S_BYTES_DECOMPRESSED,
	S_BOMBS,
	S_CONN_HTTP,
	S_CONN_GRPC,
	S_NSTATS
};

static const struct dbi_stat_def otlp_stats[] = {
        [S_HTTP_OK] = {"requests.http.ok", DBI_STAT_COUNTER, "HTTP requests accepted whole (200)"},
        [S_HTTP_PARTIAL] = {"requests.http.partial", DBI_STAT_COUNTER, "HTTP 200 with partial_success"},
        [S_HTTP_BAD] = {"requests.http.bad_request", DBI_STAT_COUNTER, "HTTP 400: undecodable body"},
        [S_HTTP_TOO_LARGE] = {"requests.http.too_large", DBI_STAT_COUNTER, "HTTP 413: over max_recv_msg_size_mib"},
        [S_HTTP_FULL] = {"requests.http.refused_full", DBI_STAT_COUNTER, "HTTP 429: pipeline full"},
        [S_HTTP_UNAVAILABLE] = {"requests.http.unavailable", DBI_STAT_COUNTER, "HTTP 503: memory limit or stopping"},
        [S_HTTP_UNAUTHORIZED] = {"requests.http.unauthorized", DBI_STAT_COUNTER, "HTTP 401: bad or no token"},
        [S_HTTP_UNSUPPORTED] = {"requests.http.unsupported", DBI_STAT_COUNTER,
                                "HTTP 404/405/415: wrong path, method or type"},
        [S_GRPC_OK] = {"requests.grpc.ok", DBI_STAT_COUNTER, "gRPC requests accepted whole (OK)"},
        [S_GRPC_PARTIAL] = {"requests.grpc.partial", DBI_STAT_COUNTER, "gRPC OK with partial_success"},
        [S_GRPC_BAD] = {"requests.grpc.invalid_argument", DBI_STAT_COUNTER, "gRPC INVALID_ARGUMENT"},
        [S_GRPC_TOO_LARGE] = {"requests.grpc.too_large", DBI_STAT_COUNTER, "gRPC RESOURCE_EXHAUSTED: too large"},
        [S_GRPC_FULL] = {"requests.grpc.refused_full", DBI_STAT_COUNTER, "gRPC RESOURCE_EXHAUSTED: pipeline full"},
        [S_GRPC_UNAVAILABLE] = {"requests.grpc.unavailable", DBI_STAT_COUNTER,
                                "gRPC UNAVAILABLE: memory limit or stopping"},
        [S_GRPC_UNAUTHORIZED] = {"requests.grpc.unauthenticated", DBI_STAT_COUNTER, "gRPC UNAUTHENTICATED"},
        [S_GRPC_UNSUPPORTED] = {"requests.grpc.unimplemented", DBI_STAT_COUNTER, "gRPC UNIMPLEMENTED or HTTP 415"},
        [S_POINTS] = {"accepted.points", DBI_STAT_COUNTER, "metric data points put into the pipeline"},
        [S_LOGS] = {"accepted.logs", DBI_STAT_COUNTER, "log records put into the pipeline"},
        [S_SPANS] = {"accepted.spans", DBI_STAT_COUNTER, "spans put into the pipeline"},
        [S_REFUSED_POINTS] = {"refused.points", DBI_STAT_COUNTER,
                              "data points in requests refused for backpressure (client retries)"},
        [S_REFUSED_LOGS] = {"refused.logs", DBI_STAT_COUNTER, "log records in requests refused for backpressure"},
        [S_REFUSED_SPANS] = {"refused.spans", DBI_STAT_COUNTER, "spans in requests refused for backpressure"},
        [S_DROP_SERIES_LIMIT] = {"dropped.series_limit", DBI_STAT_COUNTER,
                                 "items rejected: runtime.max_series reached"},
        [S_DROP_INVALID] = {"dropped.invalid", DBI_STAT_COUNTER, "items rejected: malformed"},
        [S_DROP_ATTRIBUTES] = {"dropped.attributes", DBI_STAT_COUNTER, "items rejected: attribute set too large"},
        [S_DROP_TOO_LARGE] = {"dropped.too_large", DBI_STAT_COUNTER, "items rejected: larger than a ring record"},
        [S_DROP_PIPELINE] = {"dropped.pipeline_full", DBI_STAT_COUNTER,
                             "items rejected: pipeline stayed full within a large request"},
        [S_BYTES_IN] = {"bytes_in", DBI_STAT_COUNTER, "request body bytes received (as sent)"},
        [S_BYTES_DECOMPRESSED] = {"bytes_decompressed", DBI_STAT_COUNTER, "request bytes after decompression"},
        [S_BOMBS] = {"decompression_refused", DBI_STAT_COUNTER, "bodies refused by the size or ratio guard"},
        [S_CONN_HTTP] = {"connections.http", DBI_STAT_GAUGE, "open HTTP connections"},
        [S_CONN_GRPC] = {"connections.grpc", DBI_STAT_GAUGE, "open gRPC connections"},
        [S_NSTATS] = {NULL, 0, NULL},
};

struct otlp_recv {
	const struct otlp_cfg *cfg;
	const struct dbi_inst *inst;
	struct otlp_dec *dec;
	struct otlp_http *http;
	struct otlp_grpc *grpc;
	struct dbi_rctx *rctx; /* while run() runs */
	struct dbi_stats *st;
	uint64_t ring_points, ring_bytes;
	uint64_t emit_deadline; /* mono ns: how long a large request may wait for room */
	int congested;          /* the last admission timed out: do not wait again until room shows */
	int stopping;
	unsigned signals; /* 1 << enum otlp_signal: in a pipeline this receiver feeds */
};

static int otlp_validate(const void *cfgp, const char *id, struct dbi_errbuf *err)
{
	const struct otlp_cfg *cfg = cfgp;
	if (!cfg->grpc_enabled && !cfg->http_enabled) {
		dbi_err_add(err, "%s: protocols.grpc and protocols.http are both disabled", id);
		return DBI_ERR;
	}
	return DBI_OK;
}

/* Which signals reach a pipeline from this receiver: the others are answered 404. */
static unsigned pipeline_signals(const struct dbi_config *all, const char *id)
{
	unsigned sigs = 0;
	for (size_t p = 0; p < all->npipelines; p++) {
		const struct dbi_conf_pipeline *pl = &all->pipelines[p];
		for (size_t i = 0; i < pl->nreceivers; i++) {
			const struct dbi_conf_component *cc = &all->components[pl->receivers[i]];
			if (cc->kind == DBI_RECEIVER && strcmp(cc->id, id) == 0)
				sigs |= pl->signal == DBI_SIG_METRICS ? 1u : pl->signal == DBI_SIG_LOGS ? 2u : 4u;
		}
	}
	return sigs;
}

static int otlp_create(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err)
{
	struct otlp_recv *r = calloc(1, sizeof(*r));
	if (!r || !(r->dec = otlp_dec_create(inst->reg))) {
		free(r);
		dbi_err_add(err, "%s: out of memory", inst->id);
		return DBI_ERR;
	}
	r->cfg = inst->cfg;
	r->inst = inst;
	r->st = inst->stats;
	const struct dbi_config *all = inst->rt ? dbi_runtime_config(inst->rt) : NULL;
	r->ring_points = all ? (uint64_t)all->runtime.ring_points : 65536;
	r->ring_bytes = all ? all->runtime.ring_bytes : 4u << 20;
	r->signals = all ? pipeline_signals(all, inst->id) : 7;
	*state = r;
	return DBI_OK;
}

static void otlp_stop(void *state)
{
	struct otlp_recv *r = state;
	otlp_http_stop(r->http);
	r->http = NULL;
	otlp_grpc_stop(r->grpc);
	r->grpc = NULL;
}

static void otlp_destroy(void *state)
{
	struct otlp_recv *r = state;
	otlp_stop(r);
	otlp_dec_destroy(r->dec);
	free(r);
}

static int otlp_start(void *state, struct dbi_errbuf *err)
{
	struct otlp_recv *r = state;
	const struct otlp_cfg *cfg = r->cfg;
	if (cfg->http_enabled &&
	    otlp_http_start(&r->http, r, &cfg->http_ep, (unsigned)cfg->http_max_conns, err) != DBI_OK)
		goto fail;
	if (cfg->grpc_enabled && otlp_grpc_start(&r->grpc, r, &cfg->grpc_ep, (unsigned)cfg->grpc_max_conns,
	                                         (unsigned)cfg->grpc_max_streams, cfg->grpc_max_idle, err) != DBI_OK)
		goto fail;
	DBI_LOGI(r->inst->id, "listening", "http=%u grpc=%u auth=%s", r->http ? otlp_http_port(r->http) : 0,
	         r->grpc ? otlp_grpc_port(r->grpc) : 0, cfg->bearer_token && *cfg->bearer_token ? "bearer" : "none");
	return DBI_OK;
fail:
	otlp_stop(r);
	return DBI_ERR;
}

/* ---- shared by the front ends ---- */

size_t otlp_max_msg(const struct otlp_recv *r, enum otlp_proto proto)
{
	return (size_t)(proto == OTLP_GRPC ? r->cfg->grpc_max_mib : r->cfg->http_max_mib) << 20;
}

uint64_t otlp_retry_after_ns(const struct otlp_recv *r)
{
	return r->cfg->retry_after;
}

int otlp_signal_enabled(const struct otlp_recv *r, enum otlp_signal sig)
{
	return (r->signals >> sig) & 1;
}

int otlp_stopping(const struct otlp_recv *r)
{
	return r->stopping;
}

int otlp_auth_ok(const struct otlp_recv *r, const char *authorization)
{
	const char *tok = r->cfg->bearer_token;
	if (!tok || !*tok)
		return 1;
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return 0;
	const char *got = authorization + 7;
	while (*got == ' ')
		got++;
	size_t lt = strlen(tok), lg = strlen(got);
	unsigned diff = lt != lg;
	for (size_t i = 0; i < lt; i++)
		diff |= (unsigned)(tok[i] ^ (i < lg ? got[i] : 0));
	return diff == 0;
}

static unsigned outcome_stat(enum otlp_proto proto, enum otlp_outcome o)
{
	static const unsigned base[OTLP_NOUTCOMES] = {
	        [OTLP_OUT_OK] = S_HTTP_OK,
	        [OTLP_OUT_PARTIAL] = S_HTTP_PARTIAL,
	        [OTLP_OUT_BAD_REQUEST] = S_HTTP_BAD,
	        [OTLP_OUT_TOO_LARGE] = S_HTTP_TOO_LARGE,
	        [OTLP_OUT_FULL] = S_HTTP_FULL,
	        [OTLP_OUT_PRESSURE] = S_HTTP_UNAVAILABLE,
	        [OTLP_OUT_STOPPING] = S_HTTP_UNAVAILABLE,
	        [OTLP_OUT_UNAUTHORIZED] = S_HTTP_UNAUTHORIZED,
	        [OTLP_OUT_UNSUPPORTED] = S_HTTP_UNSUPPORTED,
	};
	return base[o] + (proto == OTLP_GRPC ? S_GRPC_OK - S_HTTP_OK : 0);
}

void otlp_count_outcome(struct otlp_recv *r, enum otlp_proto proto, enum otlp_outcome o)
{
	dbi_stats_add(r->st, outcome_stat(proto, o), 1);
}

void otlp_count_bytes_in(struct otlp_recv *r, size_t n)
{
	dbi_stats_add(r->st, S_BYTES_IN, n);
}

/* ---- the rctx sink: emit, and wait (bounded) when a large request outruns the rings ---- */

static int wait_room(struct otlp_recv *r)
{
	uint64_t now = dbi_mono_ns();
	if (now >= r->emit_deadline)
		return DBI_AGAIN;
	return dbi_rctx_wait_space(r->rctx, r->emit_deadline - now) == DBI_OK ? DBI_OK : DBI_AGAIN;
}

static int sink_point(void *cls, struct dbi_point *p, uint64_t route)
{
	struct otlp_recv *r = cls;
	while (dbi_rctx_emit_point(r->rctx, p, route) != DBI_OK)
		if (wait_room(r) != DBI_OK)
			return DBI_AGAIN;
	return DBI_OK;
}

static void *sink_reserve(void *cls, uint32_t type, uint32_t len, uint64_t route)
{
	struct otlp_recv *r = cls;
	void *rec;
	while (!(rec = dbi_rctx_reserve_record(r->rctx, type, len, route)))
		if (wait_room(r) != DBI_OK)
			return NULL;
	return rec;
}

static void sink_commit(void *cls, void *rec)
{
	struct otlp_recv *r = cls;
	dbi_rctx_commit_record(r->rctx, rec);
}

/*
 * Room for the whole request now? dbi_rctx_wait_space() says every ring is at most
 * three quarters full; a request no larger than a quarter of a ring then fits entirely,
 * so it is either emitted whole or refused whole. Larger requests are emitted as room
 * appears (bounded by emit_deadline).
 */
static int admit(struct otlp_recv *r, const struct otlp_need *need, size_t body_len)
{
	uint64_t rec_bytes = 2 * (uint64_t)body_len + need->records * 128;
	int fits_quarter = need->points <= r->ring_points / 4 && rec_bytes <= r->ring_bytes / 4;
	if (dbi_rctx_wait_space(r->rctx, 0) == DBI_OK) {
		r->congested = 0;
		return DBI_OK;
	}
	if (r->congested || !fits_quarter)
		return DBI_AGAIN;
	if (dbi_rctx_wait_space(r->rctx, r->cfg->backpressure_wait) == DBI_OK)
		return DBI_OK;
	r->congested = 1;
	return DBI_AGAIN;
}

static void count_result(struct otlp_recv *r, enum otlp_signal sig, const struct otlp_result *res)
{
	static const unsigned acc[] = {S_POINTS, S_LOGS, S_SPANS};
	dbi_stats_add(r->st, acc[sig], res->accepted);
	for (int i = 0; i < OTLP_NDROPS; i++)
		dbi_stats_add(r->st, S_DROP_SERIES_LIMIT + (unsigned)i, res->dropped[i]);
}

void otlp_handle(struct otlp_recv *r, struct otlp_req *req)
{
	static const unsigned refused[] = {S_REFUSED_POINTS, S_REFUSED_LOGS, S_REFUSED_SPANS};
	static const char *const what[] = {"metrics", "logs", "traces"};
	ProtobufCMessage *msg = NULL;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	struct dbi_errbuf *err = NULL;
	struct otlp_need need;
	int pressure, rc;

	memset(&req->res, 0, sizeof(req->res));
	req->msg[0] = '\0';
	if (r->stopping || !r->rctx || dbi_rctx_stopping(r->rctx)) {
		req->outcome = OTLP_OUT_STOPPING;
		snprintf(req->msg, sizeof(req->msg), "the collector is shutting down");
		goto out;
	}
	pressure = dbi_rctx_pressure(r->rctx);
	if (pressure) {
		req->outcome = pressure > 1 ? OTLP_OUT_PRESSURE : OTLP_OUT_FULL;
		snprintf(req->msg, sizeof(req->msg), "memory limit reached (%s): retry later",
		         pressure > 1 ? "hard" : "soft");
		goto out;
	}
	rc = otlp_decompress(req->enc, req->body, req->len, otlp_max_msg(r, req->proto), (unsigned)r->cfg->max_ratio,
	                     &plain, &plain_len, req->msg, sizeof(req->msg));
	if (rc != OTLP_BODY_OK) {
		req->outcome = rc == OTLP_BODY_CORRUPT ? OTLP_OUT_BAD_REQUEST : OTLP_OUT_TOO_LARGE;
		if (rc != OTLP_BODY_CORRUPT)
			dbi_stats_add(r->st, S_BOMBS, 1);
		goto out;
	}
	dbi_stats_add(r->st, S_BYTES_DECOMPRESSED, plain_len);
	err = malloc(sizeof(*err));
	if (!err) {
		req->outcome = OTLP_OUT_PRESSURE;
		snprintf(req->msg, sizeof(req->msg), "out of memory");
		goto out;
	}
	dbi_err_clear(err);
	if (otlp_unpack(req->sig, req->json, plain, plain_len, &msg, err) != DBI_OK) {
		req->outcome = OTLP_OUT_BAD_REQUEST;
		snprintf(req->msg, sizeof(req->msg), "cannot decode the %s request as %s: %s", what[req->sig],
		         req->json ? "OTLP/JSON" : "protobuf", err->msg);
		goto out;
	}
	otlp_count(req->sig, msg, &need);
	if (admit(r, &need, plain_len) != DBI_OK) {
		req->outcome = OTLP_OUT_FULL;
		dbi_stats_add(r->st, refused[req->sig], need.items);
		snprintf(req->msg, sizeof(req->msg), "pipeline full: retry later");
		goto out;
	}
	struct otlp_sink sink = {.cls = r,
	                         .point = sink_point,
	                         .reserve = sink_reserve,
	                         .commit = sink_commit,
	                         .max_record = (uint32_t)DBI_MIN(r->ring_bytes / 4 - 8, UINT32_MAX)};
	r->emit_deadline = dbi_mono_ns() + DBI_MAX(20 * r->cfg->backpressure_wait, DBI_NSEC_PER_SEC);
	otlp_emit(r->dec, req->sig, msg, &sink, &req->res);
	dbi_rctx_flush(r->rctx); /* in the rings before the client hears "accepted" */
	count_result(r, req->sig, &req->res);
	if (otlp_result_rejected(&req->res)) {
		req->outcome = OTLP_OUT_PARTIAL;
		dbi_strlcpy(req->msg, req->res.msg, sizeof(req->msg));
	} else {
		req->outcome = OTLP_OUT_OK;
	}
out:
	if (msg)
		protobuf_c_message_free_unpacked(msg, NULL);
	free(plain);
	free(err);
	otlp_count_outcome(r, req->proto, req->outcome);
}

/* ---- the loop ---- */

static char wake_tag, http_tag;

static int otlp_run(void *state, struct dbi_rctx *c)
{
	struct otlp_recv *r = state;
	struct epoll_event ev[64];
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	uint64_t last_flush = 0;

	if (epfd < 0) {
		DBI_LOGE(r->inst->id, "epoll_create1 failed", "err=%s", strerror(errno));
		return DBI_ERR;
	}
	r->rctx = c;
	r->st = dbi_rctx_stats(c);
	r->stopping = 0;
	struct epoll_event we = {.events = EPOLLIN, .data.ptr = &wake_tag};
	epoll_ctl(epfd, EPOLL_CTL_ADD, dbi_rctx_wake_fd(c), &we);
	if (r->http) {
		struct epoll_event he = {.events = EPOLLIN, .data.ptr = &http_tag};
		epoll_ctl(epfd, EPOLL_CTL_ADD, otlp_http_fd(r->http), &he);
	}
	if (r->grpc && otlp_grpc_attach(r->grpc, epfd) != DBI_OK)
		DBI_LOGE(r->inst->id, "cannot watch the gRPC socket", "err=%s", strerror(errno));

	while (!dbi_rctx_stopping(c)) {
		uint64_t timeout = 100;
		if (r->http)
			timeout = DBI_MIN(timeout, otlp_http_timeout_ms(r->http));
		int n = epoll_wait(epfd, ev, (int)DBI_ARRAY_LEN(ev), (int)timeout);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.ptr == &wake_tag || ev[i].data.ptr == &http_tag)
				continue;
			otlp_grpc_event(r->grpc, ev[i].data.ptr, ev[i].events);
		}
		if (r->http)
			otlp_http_run(r->http);
		uint64_t now = dbi_mono_ns();
		if (now - last_flush >= 100 * DBI_NSEC_PER_MSEC) {
			dbi_stats_set(r->st, S_CONN_HTTP, r->http ? otlp_http_connections(r->http) : 0);
			dbi_stats_set(r->st, S_CONN_GRPC, r->grpc ? otlp_grpc_connections(r->grpc) : 0);
			dbi_rctx_flush(c); /* stats and heartbeat */
			last_flush = now;
			if (r->grpc)
				otlp_grpc_sweep(r->grpc, now);
		}
	}
	/* last turn: whoever is mid-request hears 503 / UNAVAILABLE, gRPC clients GOAWAY */
	r->stopping = 1;
	if (r->http)
		otlp_http_run(r->http);
	if (r->grpc)
		otlp_grpc_close_all(r->grpc);
	close(epfd);
	dbi_stats_set(r->st, S_CONN_GRPC, 0);
	dbi_rctx_flush(c);
	r->rctx = NULL;
	return DBI_OK;
}

const struct dbi_component dbi_receiver_otlp = {
        .type = "otlp",
        .kind = DBI_RECEIVER,
        .signals = DBI_SIG_METRICS | DBI_SIG_LOGS | DBI_SIG_TRACES,
        .doc = "OTLP/HTTP (protobuf, JSON) on 4318 and OTLP/gRPC on 4317: metrics, logs, traces",
        .keys = otlp_keys,
        .conf_size = sizeof(struct otlp_cfg),
        .stats = otlp_stats,
        .validate = otlp_validate,
        .create = otlp_create,
        .destroy = otlp_destroy,
        .start = otlp_start,
        .stop = otlp_stop,
        .run = otlp_run,
};
