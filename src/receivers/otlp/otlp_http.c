/*
 * otlp_http.c — OTLP/HTTP for the otlp receiver: POST /v1/metrics, /v1/logs and
 * /v1/traces with protobuf or JSON bodies, optionally gzip/deflate/zstd compressed.
 *
 * libmicrohttpd runs in external epoll mode: it owns no thread, the receiver's loop
 * waits on MHD's epoll fd and calls MHD_run(), so the access handler — which decodes
 * and emits — runs on the receiver's runtime thread, the single producer of its rings.
 * Whatever can be refused from the headers (path, method, type, encoding, token,
 * Content-Length) is answered before the body is read. Bodies are gathered up to
 * max_recv_msg_size_mib; past it the request is answered 413 at once.
 *
 * Status codes follow the OTLP/HTTP spec: 200 with an Export*ServiceResponse (its
 * partial_success set when items were rejected), 400 with a google.rpc.Status naming
 * what was wrong, 401, 404, 405, 413, 415, and 429/503 with Retry-After when the
 * pipeline or the memory limiter pushes back.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "dbi/config.h"
#include "dbi/log.h"
#include "otlp_int.h"

struct otlp_http {
	struct MHD_Daemon *d;
	struct otlp_recv *r;
	unsigned port;
	int epfd;
};

struct hreq {
	enum otlp_signal sig;
	int json;
	enum otlp_encoding enc;
	uint8_t *body;
	size_t len, cap;
	int answered;     /* a response was queued before the body was complete */
	size_t discarded; /* body bytes past the limit, read and dropped */
};

static const char *const paths[] = {"/v1/metrics", "/v1/logs", "/v1/traces"};

static enum MHD_Result send_resp(struct MHD_Connection *c, unsigned status, const char *ctype, uint8_t *body,
                                 size_t len, uint64_t retry_after_ns)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	char ra[24];
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (retry_after_ns) {
		snprintf(ra, sizeof(ra), "%llu",
		         (unsigned long long)((retry_after_ns + DBI_NSEC_PER_SEC - 1) / DBI_NSEC_PER_SEC));
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	if (status == 405)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
	if (status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	enum MHD_Result ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* A google.rpc.Status in the request's encoding (protobuf when it is unknown yet). */
static enum MHD_Result send_status(struct MHD_Connection *c, unsigned status, int json, int code, const char *msg,
                                   uint64_t retry_after_ns)
{
	uint8_t *body = NULL;
	size_t len = 0;
	if (otlp_status(json, code, msg, 0, &body, &len) != DBI_OK)
		return MHD_NO;
	return send_resp(c, status, json ? "application/json" : "application/x-protobuf", body, len, retry_after_ns);
}

/* media type of a Content-Type value: 1 protobuf, 2 JSON, 0 other */
static int media_type(const char *ct)
{
	size_t n;
	if (!ct)
		return 0;
	while (*ct == ' ')
		ct++;
	n = strcspn(ct, "; \t");
	if (n == strlen("application/x-protobuf") && strncasecmp(ct, "application/x-protobuf", n) == 0)
		return 1;
	if (n == strlen("application/protobuf") && strncasecmp(ct, "application/protobuf", n) == 0)
		return 1;
	if (n == strlen("application/json") && strncasecmp(ct, "application/json", n) == 0)
		return 2;
	return 0;
}

/* First call for a request: everything that can be decided from the headers. */
static enum MHD_Result on_headers(struct otlp_http *h, struct MHD_Connection *c, const char *url, const char *method,
                                  struct hreq *q)
{
	struct otlp_recv *r = h->r;
	const char *ct, *ce, *cl, *auth;
	int sig = -1, mt;
	char msg[160];

	for (int i = 0; i < OTLP_NSIGNALS; i++)
		if (strcmp(url, paths[i]) == 0)
			sig = i;
	if (sig < 0 || !otlp_signal_enabled(r, (enum otlp_signal)sig)) {
		q->answered = 1;
		otlp_count_outcome(r, OTLP_HTTP, OTLP_OUT_UNSUPPORTED);
		snprintf(msg, sizeof(msg), "no OTLP endpoint at %.100s%s", url,
		         sig >= 0 ? " (signal not in any pipeline of this receiver)" : "");
		return send_status(c, MHD_HTTP_NOT_FOUND, 0, 12, msg, 0);
	}
	q->sig = (enum otlp_signal)sig;
	if (strcmp(method, "POST") != 0) {
		q->answered = 1;
		otlp_count_outcome(r, OTLP_HTTP, OTLP_OUT_UNSUPPORTED);
		return send_status(c, MHD_HTTP_METHOD_NOT_ALLOWED, 0, 12, "only POST is allowed", 0);
	}
	ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	mt = media_type(ct);
	if (!mt) {
		q->answered = 1;
		otlp_count_outcome(r, OTLP_HTTP, OTLP_OUT_UNSUPPORTED);
		snprintf(msg, sizeof(msg),
		         "unsupported Content-Type '%.60s': use application/x-protobuf or application/json",
		         ct ? ct : "");
		return send_status(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, 0, 12, msg, 0);
	}
	q->json = mt == 2;
	auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!otlp_auth_ok(r, auth)) {
		q->answered = 1;
		otlp_count_outcome(r, OTLP_HTTP, OTLP_OUT_UNAUTHORIZED);
		return send_status(c, MHD_HTTP_UNAUTHORIZED, q->json, 16,
		                   auth ? "bearer token not accepted" : "missing Authorization: Bearer token", 0);
	}
	ce = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
	q->enc = otlp_encoding_parse(ce);
	if (q->enc == OTLP_ENC_UNKNOWN) {
		q->answered = 1;
		otlp_count_outcome(r, OTLP_HTTP, OTLP_OUT_UNSUPPORTED);
		snprintf(msg, sizeof(msg), "unsupported Content-Encoding '%.40s': use gzip, deflate, zstd or none", ce);
		return send_status(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, q->json, 12, msg, 0);
	}
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > otlp_max_msg(r, OTLP_HTTP)) {
		q->answered = 1;
		otlp_count_outcome(r, OTLP_HTTP, OTLP_OUT_TOO_LARGE);
		snprintf(msg, sizeof(msg), "body of %.20s bytes is larger than max_recv_msg_size_mib (%zu bytes)", cl,
		         otlp_max_msg(r, OTLP_HTTP));
		return send_status(c, MHD_HTTP_CONTENT_TOO_LARGE, q->json, 8, msg, 0);
	}
	return MHD_YES;
}

static enum MHD_Result on_body(struct otlp_http *h, struct MHD_Connection *c, struct hreq *q)
{
	struct otlp_recv *r = h->r;
	struct otlp_req req = {
	        .proto = OTLP_HTTP, .sig = q->sig, .json = q->json, .enc = q->enc, .body = q->body, .len = q->len};
	static const unsigned http_status[OTLP_NOUTCOMES] = {
	        [OTLP_OUT_OK] = 200,        [OTLP_OUT_PARTIAL] = 200,      [OTLP_OUT_BAD_REQUEST] = 400,
	        [OTLP_OUT_TOO_LARGE] = 413, [OTLP_OUT_FULL] = 429,         [OTLP_OUT_PRESSURE] = 503,
	        [OTLP_OUT_STOPPING] = 503,  [OTLP_OUT_UNAUTHORIZED] = 401, [OTLP_OUT_UNSUPPORTED] = 415,
	};
	static const int grpc_code[OTLP_NOUTCOMES] = {
	        [OTLP_OUT_BAD_REQUEST] = GRPC_INVALID_ARGUMENT, [OTLP_OUT_TOO_LARGE] = GRPC_RESOURCE_EXHAUSTED,
	        [OTLP_OUT_FULL] = GRPC_RESOURCE_EXHAUSTED,      [OTLP_OUT_PRESSURE] = GRPC_UNAVAILABLE,
	        [OTLP_OUT_STOPPING] = GRPC_UNAVAILABLE,         [OTLP_OUT_UNAUTHORIZED] = GRPC_UNAUTHENTICATED,
	        [OTLP_OUT_UNSUPPORTED] = GRPC_UNIMPLEMENTED,
	};

	otlp_handle(r, &req);
	q->answered = 1;
	const char *ctype = q->json ? "application/json" : "application/x-protobuf";
	if (req.outcome == OTLP_OUT_OK || req.outcome == OTLP_OUT_PARTIAL) {
		uint8_t *body;
		size_t len;
		if (otlp_response(q->sig, q->json, &req.res, &body, &len) != DBI_OK)
			return MHD_NO;
		return send_resp(c, 200, ctype, body, len, 0);
	}
	int retry =
	        req.outcome == OTLP_OUT_FULL || req.outcome == OTLP_OUT_PRESSURE || req.outcome == OTLP_OUT_STOPPING;
	return send_status(c, http_status[req.outcome], q->json, grpc_code[req.outcome], req.msg,
	                   retry ? otlp_retry_after_ns(r) : 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct otlp_http *h = cls;
	struct hreq *q = *con_cls;
	(void)version;
	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		*con_cls = q;
		return on_headers(h, c, url, method, q);
	}
	if (q->answered) {
		*upload_size = 0; /* refused already: discard the rest */
		return MHD_YES;
	}
	size_t max = otlp_max_msg(h->r, OTLP_HTTP);
	if (*upload_size) {
		otlp_count_bytes_in(h->r, *upload_size);
		/*
		 * Past the limit (a chunked body: no Content-Length to refuse up front): read
		 * and drop the rest so the client can read the 413 (closing on unread data
		 * resets the connection), but only up to a few times the limit.
		 */
		if (q->discarded || q->len + *upload_size > max) {
			q->discarded += *upload_size;
			*upload_size = 0;
			if (q->discarded > 4 * max) {
				otlp_count_outcome(h->r, OTLP_HTTP, OTLP_OUT_TOO_LARGE);
				return MHD_NO;
			}
			return MHD_YES;
		}
		if (q->len + *upload_size > q->cap) {
			size_t cap = DBI_MAX(q->cap * 2, q->len + *upload_size);
			uint8_t *nb = realloc(q->body, DBI_MIN(cap, max));
			if (!nb)
				return MHD_NO;
			q->body = nb;
			q->cap = DBI_MIN(cap, max);
		}
		memcpy(q->body + q->len, upload, *upload_size);
		q->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	if (q->discarded) {
		char msg[128];
		q->answered = 1;
		otlp_count_outcome(h->r, OTLP_HTTP, OTLP_OUT_TOO_LARGE);
		snprintf(msg, sizeof(msg), "body larger than max_recv_msg_size_mib (%zu bytes)", max);
		return send_status(c, MHD_HTTP_CONTENT_TOO_LARGE, q->json, GRPC_RESOURCE_EXHAUSTED, msg, 0);
	}
	return on_body(h, c, q);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct hreq *q = *con_cls;
	(void)cls;
	(void)c;
	(void)toe;
	if (q) {
		free(q->body);
		free(q);
		*con_cls = NULL;
	}
}

int otlp_http_start(struct otlp_http **out, struct otlp_recv *r, const struct dbi_endpoint *ep,
                    unsigned max_connections, struct dbi_errbuf *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE},
	                *ai = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", ep->port);
	int rc = getaddrinfo(ep->host[0] ? ep->host : NULL, port, &hints, &ai);
	if (rc != 0 || !ai) {
		dbi_err_add(err, "otlp: protocols.http.endpoint: cannot resolve %s:%u: %s", ep->host, ep->port,
		            gai_strerror(rc));
		return DBI_ERR;
	}
	struct otlp_http *h = calloc(1, sizeof(*h));
	if (!h) {
		freeaddrinfo(ai);
		dbi_err_add(err, "otlp: out of memory");
		return DBI_ERR;
	}
	h->r = r;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->d = MHD_start_daemon(flags, ep->port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	                        MHD_OPTION_NOTIFY_COMPLETED, on_done, h, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
	                        MHD_OPTION_CONNECTION_LIMIT, max_connections, MHD_OPTION_LISTENING_ADDRESS_REUSE,
	                        (unsigned)1, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!h->d) {
		dbi_err_add(err,
		            "otlp: protocols.http.endpoint: cannot listen on %s:%u (address in use or not allowed)",
		            ep->host[0] ? ep->host : "*", ep->port);
		free(h);
		return DBI_ERR;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : ep->port;
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	h->epfd = di ? di->epoll_fd : -1;
	if (h->epfd < 0) {
		dbi_err_add(err, "otlp: libmicrohttpd has no epoll descriptor");
		MHD_stop_daemon(h->d);
		free(h);
		return DBI_ERR;
	}
	*out = h;
	return DBI_OK;
}

int otlp_http_fd(const struct otlp_http *h)
{
	return h->epfd;
}

uint64_t otlp_http_timeout_ms(struct otlp_http *h)
{
	MHD_UNSIGNED_LONG_LONG t;
	if (MHD_get_timeout(h->d, &t) == MHD_YES)
		return (uint64_t)t;
	return UINT64_MAX;
}

void otlp_http_run(struct otlp_http *h)
{
	MHD_run(h->d);
}

unsigned otlp_http_port(const struct otlp_http *h)
{
	return h->port;
}

unsigned otlp_http_connections(const struct otlp_http *h)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return di ? di->num_connections : 0;
}

void otlp_http_stop(struct otlp_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->d);
	free(h);
}
