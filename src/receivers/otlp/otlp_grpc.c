/*
 * otlp_grpc.c — OTLP/gRPC for the otlp receiver: the unary Export methods of
 * opentelemetry.proto.collector.{metrics,logs,trace}.v1.{Metrics,Logs,Trace}Service
 * over cleartext HTTP/2 (h2c, prior knowledge), served by nghttp2 on non-blocking
 * sockets in the receiver's own epoll loop (the same thread that emits into the rings).
 *
 * nghttp2 does the framing, HPACK and flow control; this file gathers each stream's
 * length-prefixed message (bounded by max_recv_msg_size_mib, refused as soon as it
 * grows past it), hands it to the shared request path, and answers with the response
 * message and trailers, or with a trailers-only error: grpc-status INVALID_ARGUMENT for
 * bad bytes, RESOURCE_EXHAUSTED with a google.rpc.RetryInfo detail when the pipeline is
 * full, UNAVAILABLE under memory pressure or while stopping, UNIMPLEMENTED for unknown
 * methods and encodings, UNAUTHENTICATED without the bearer token.
 *
 * Output goes through nghttp2_session_mem_send(); what the socket does not take is
 * kept and the connection waits for EPOLLOUT before nghttp2 produces more, so a client
 * that stops reading holds a bounded amount of memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "dbi/clock.h"
#include "dbi/config.h"
#include "dbi/log.h"
#include "otlp_int.h"

enum { TAG_LISTEN = 0x6c, TAG_CONN = 0x63 };

struct glisten {
	int tag;
	int fd;
};

struct gconn {
	int tag;
	int fd;
	struct otlp_grpc *g;
	nghttp2_session *s;
	uint8_t *out; /* bytes nghttp2 produced that the socket has not taken yet */
	size_t out_len, out_off, out_cap;
	int want_out;     /* registered for EPOLLOUT */
	uint64_t last_in; /* mono ns of the last bytes read */
	struct gconn *prev, *next;
};

struct gstream {
	int32_t id;
	int sig; /* enum otlp_signal, -1 unknown */
	int post, ct_ok, auth_ok, answered;
	enum otlp_encoding enc;
	char path[128];
	uint8_t *buf;
	size_t len, cap;
	uint8_t *resp; /* framed response message */
	size_t resp_len, resp_off;
};

struct otlp_grpc {
	struct otlp_recv *r;
	int epfd;
	struct glisten lst;
	unsigned port, nconns, max_conns, max_streams;
	uint64_t max_idle_ns; /* 0 = never close idle connections */
	struct gconn *conns;
};

static const char *const methods[] = {
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
};

/* ---- responses ---- */

/* nghttp2 takes non-const pointers but copies the bytes (no NO_COPY flags here). */
static nghttp2_nv nv(const char *name, const char *value)
{
	union {
		const char *c;
		uint8_t *u;
	} n = {.c = name}, v = {.c = value};
	nghttp2_nv r = {n.u, v.u, strlen(name), strlen(value), NGHTTP2_NV_FLAG_NONE};
	return r;
}

/* grpc-message is percent-encoded: everything outside printable ASCII, and '%'. */
static void pct_encode(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
		if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}

static void base64(const uint8_t *in, size_t len, char *out, size_t cap)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0, i = 0;
	for (; i + 2 < len && o + 5 < cap; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (i < len && o + 5 < cap) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

/* A response with no body: status and message in the headers, stream ended. */
static void trailers_only(struct gconn *k, struct gstream *st, unsigned http_status, int code, const char *msg,
                          uint64_t retry_ns)
{
	char status[8], scode[8], pmsg[768], details[512];
	nghttp2_nv hdr[6];
	size_t n = 0;
	snprintf(status, sizeof(status), "%u", http_status);
	snprintf(scode, sizeof(scode), "%d", code);
	pct_encode(msg, pmsg, sizeof(pmsg));
	hdr[n++] = nv(":status", status);
	hdr[n++] = nv("content-type", "application/grpc");
	hdr[n++] = nv("grpc-status", scode);
	if (*pmsg)
		hdr[n++] = nv("grpc-message", pmsg);
	if (retry_ns) {
		uint8_t *sb;
		size_t sl;
		if (otlp_status(0, code, msg, retry_ns, &sb, &sl) == DBI_OK) {
			if (sl * 4 / 3 + 8 < sizeof(details)) {
				base64(sb, sl, details, sizeof(details));
				hdr[n++] = nv("grpc-status-details-bin", details);
			}
			free(sb);
		}
	}
	st->answered = 1;
	nghttp2_submit_response(k->s, st->id, hdr, n, NULL);
}

static ssize_t read_resp(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
	struct gstream *st = src->ptr;
	size_t n = DBI_MIN(length, st->resp_len - st->resp_off);
	(void)user;
	memcpy(buf, st->resp + st->resp_off, n);
	st->resp_off += n;
	if (st->resp_off == st->resp_len) {
		nghttp2_nv tr[] = {nv("grpc-status", "0")};
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (nghttp2_submit_trailer(s, id, tr, DBI_ARRAY_LEN(tr)) != 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

static void respond_ok(struct gconn *k, struct gstream *st, enum otlp_signal sig, const struct otlp_result *res)
{
	uint8_t *msg;
	size_t len;
	if (otlp_response(sig, 0, res, &msg, &len) != DBI_OK) {
		trailers_only(k, st, 200, GRPC_INTERNAL, "out of memory", 0);
		return;
	}
	st->resp = malloc(len + 5);
	if (!st->resp) {
		free(msg);
		trailers_only(k, st, 200, GRPC_INTERNAL, "out of memory", 0);
		return;
	}
	st->resp[0] = 0;
	st->resp[1] = (uint8_t)(len >> 24);
	st->resp[2] = (uint8_t)(len >> 16);
	st->resp[3] = (uint8_t)(len >> 8);
	st->resp[4] = (uint8_t)len;
	memcpy(st->resp + 5, msg, len);
	free(msg);
	st->resp_len = len + 5;
	st->resp_off = 0;
	st->answered = 1;
	nghttp2_nv hdr[] = {nv(":status", "200"), nv("content-type", "application/grpc"),
	                    nv("grpc-accept-encoding", "identity,gzip,deflate")};
	nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_resp};
	nghttp2_submit_response(k->s, st->id, hdr, DBI_ARRAY_LEN(hdr), &dp);
}

/* The whole request is in: check it, hand it on, answer. */
static void finish_stream(struct gconn *k, struct gstream *st)
{
	struct otlp_recv *r = k->g->r;
	char msg[256];
	if (!st->post || st->sig < 0) {
		otlp_count_outcome(r, OTLP_GRPC, OTLP_OUT_UNSUPPORTED);
		snprintf(msg, sizeof(msg), "unknown method %.100s%s", st->path,
		         st->sig >= 0 ? "" : " (this server has the OTLP Export methods)");
		trailers_only(k, st, 200, GRPC_UNIMPLEMENTED, msg, 0);
		return;
	}
	if (!st->ct_ok) {
		otlp_count_outcome(r, OTLP_GRPC, OTLP_OUT_UNSUPPORTED);
		trailers_only(k, st, 415, GRPC_UNIMPLEMENTED, "content-type must be application/grpc", 0);
		return;
	}
	if (!st->auth_ok) {
		otlp_count_outcome(r, OTLP_GRPC, OTLP_OUT_UNAUTHORIZED);
		trailers_only(k, st, 200, GRPC_UNAUTHENTICATED, "missing or wrong bearer token", 0);
		return;
	}
	if (st->len < 5) {
		otlp_count_outcome(r, OTLP_GRPC, OTLP_OUT_BAD_REQUEST);
		trailers_only(k, st, 200, GRPC_INVALID_ARGUMENT, "truncated gRPC message (no 5-byte prefix)", 0);
		return;
	}
	uint32_t mlen =
	        (uint32_t)st->buf[1] << 24 | (uint32_t)st->buf[2] << 16 | (uint32_t)st->buf[3] << 8 | st->buf[4];
	if ((size_t)mlen + 5 != st->len || st->buf[0] > 1) {
		otlp_count_outcome(r, OTLP_GRPC, OTLP_OUT_BAD_REQUEST);
		snprintf(msg, sizeof(msg), "expected one length-prefixed message of %u bytes, got %zu bytes", mlen,
		         st->len - 5);
		trailers_only(k, st, 200, GRPC_INVALID_ARGUMENT, msg, 0);
		return;
	}
	enum otlp_encoding enc = st->buf[0] ? st->enc : OTLP_ENC_IDENTITY;
	if (st->buf[0] && (enc == OTLP_ENC_UNKNOWN || enc == OTLP_ENC_IDENTITY)) {
		otlp_count_outcome(r, OTLP_GRPC, OTLP_OUT_UNSUPPORTED);
		trailers_only(k, st, 200, GRPC_UNIMPLEMENTED,
		              "compressed message with a grpc-encoding this server does not support", 0);
		return;
	}
	struct otlp_req req = {
	        .proto = OTLP_GRPC, .sig = (enum otlp_signal)st->sig, .enc = enc, .body = st->buf + 5, .len = mlen};
	otlp_handle(r, &req);
	free(st->buf);
	st->buf = NULL;
	switch (req.outcome) {
	case OTLP_OUT_OK:
	case OTLP_OUT_PARTIAL:
		respond_ok(k, st, req.sig, &req.res);
		break;
	case OTLP_OUT_BAD_REQUEST:
		trailers_only(k, st, 200, GRPC_INVALID_ARGUMENT, req.msg, 0);
		break;
	case OTLP_OUT_TOO_LARGE:
		trailers_only(k, st, 200, GRPC_RESOURCE_EXHAUSTED, req.msg, 0);
		break;
	case OTLP_OUT_FULL:
		trailers_only(k, st, 200, GRPC_RESOURCE_EXHAUSTED, req.msg, otlp_retry_after_ns(r));
		break;
	case OTLP_OUT_PRESSURE:
	case OTLP_OUT_STOPPING:
		trailers_only(k, st, 200, GRPC_UNAVAILABLE, req.msg, otlp_retry_after_ns(r));
		break;
	default:
		trailers_only(k, st, 200, GRPC_INTERNAL, req.msg, 0);
		break;
	}
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	(void)user;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct gconn *k = user;
	struct gstream *st = calloc(1, sizeof(*st));
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->id = f->hd.stream_id;
	st->sig = -1;
	st->auth_ok = otlp_auth_ok(k->g->r, NULL);
	nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
	return 0;
}

static int header_is(const uint8_t *name, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
	struct gconn *k = user;
	struct gstream *st;
	(void)flags;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (!st)
		return 0;
	/* nghttp2 NUL-terminates names and values */
	if (header_is(name, namelen, ":path")) {
		snprintf(st->path, sizeof(st->path), "%.*s", (int)DBI_MIN(valuelen, 120), (const char *)value);
		for (int i = 0; i < OTLP_NSIGNALS; i++)
			if (strcmp((const char *)value, methods[i]) == 0 &&
			    otlp_signal_enabled(k->g->r, (enum otlp_signal)i))
				st->sig = i;
	} else if (header_is(name, namelen, ":method")) {
		st->post = strcmp((const char *)value, "POST") == 0;
	} else if (header_is(name, namelen, "content-type")) {
		st->ct_ok = strncasecmp((const char *)value, "application/grpc", 16) == 0 &&
		            (value[16] == '\0' || value[16] == '+' || value[16] == ';') &&
		            strncasecmp((const char *)value + 16, "+json", 5) != 0;
	} else if (header_is(name, namelen, "grpc-encoding")) {
		st->enc = otlp_encoding_parse((const char *)value);
	} else if (header_is(name, namelen, "authorization")) {
		st->auth_ok = otlp_auth_ok(k->g->r, (const char *)value);
	}
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	struct gconn *k = user;
	struct gstream *st = nghttp2_session_get_stream_user_data(s, id);
	(void)flags;
	if (!st || st->answered)
		return 0;
	size_t max = otlp_max_msg(k->g->r, OTLP_GRPC) + 5;
	otlp_count_bytes_in(k->g->r, len);
	if (st->len + len > max) {
		char msg[128];
		snprintf(msg, sizeof(msg), "message larger than max_recv_msg_size_mib (%zu bytes)", max - 5);
		otlp_count_outcome(k->g->r, OTLP_GRPC, OTLP_OUT_TOO_LARGE);
		free(st->buf);
		st->buf = NULL;
		st->len = st->cap = 0;
		trailers_only(k, st, 200, GRPC_RESOURCE_EXHAUSTED, msg, 0);
		return 0;
	}
	if (st->len + len > st->cap) {
		size_t cap = DBI_MIN(DBI_MAX(st->cap * 2, st->len + len), max);
		uint8_t *nb = realloc(st->buf, cap);
		if (!nb)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		st->buf = nb;
		st->cap = cap;
	}
	memcpy(st->buf + st->len, data, len);
	st->len += len;
	return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	struct gconn *k = user;
	if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		struct gstream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
		if (st && !st->answered)
			finish_stream(k, st);
	}
	return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
	struct gstream *st = nghttp2_session_get_stream_user_data(s, id);
	(void)code;
	(void)user;
	if (st) {
		nghttp2_session_set_stream_user_data(s, id, NULL);
		free(st->buf);
		free(st->resp);
		free(st);
	}
	return 0;
}

/* ---- connections ---- */

static void conn_close(struct gconn *k)
{
	struct otlp_grpc *g = k->g;
	if (k->prev)
		k->prev->next = k->next;
	else
		g->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	g->nconns--;
	nghttp2_session_del(k->s);
	close(k->fd);
	free(k->out);
	free(k);
}

static void set_out(struct gconn *k, int on)
{
	if (k->want_out == on)
		return;
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = k};
	epoll_ctl(k->g->epfd, EPOLL_CTL_MOD, k->fd, &ev);
	k->want_out = on;
}

/* Write what is pending, then what nghttp2 has; DBI_ERR when the connection is done. */
static int conn_flush(struct gconn *k)
{
	while (k->out_off < k->out_len) {
		ssize_t n = write(k->fd, k->out + k->out_off, k->out_len - k->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			set_out(k, 1);
			return DBI_OK;
		}
		if (n <= 0)
			return DBI_ERR;
		k->out_off += (size_t)n;
	}
	k->out_off = k->out_len = 0;
	for (;;) {
		const uint8_t *data;
		ssize_t len = nghttp2_session_mem_send(k->s, &data);
		if (len < 0)
			return DBI_ERR;
		if (len == 0)
			break;
		size_t done = 0;
		while (done < (size_t)len) {
			ssize_t n = write(k->fd, data + done, (size_t)len - done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n <= 0)
				return DBI_ERR;
			done += (size_t)n;
		}
		if (done < (size_t)len) {
			size_t rest = (size_t)len - done;
			if (rest > k->out_cap) {
				uint8_t *nb = realloc(k->out, rest);
				if (!nb)
					return DBI_ERR;
				k->out = nb;
				k->out_cap = rest;
			}
			memcpy(k->out, data + done, rest);
			k->out_len = rest;
			k->out_off = 0;
			set_out(k, 1);
			return DBI_OK;
		}
	}
	set_out(k, 0);
	if (!nghttp2_session_want_read(k->s) && !nghttp2_session_want_write(k->s))
		return DBI_ERR;
	return DBI_OK;
}

static int conn_read(struct gconn *k)
{
	uint8_t buf[16384];
	for (int turns = 0; turns < 64; turns++) {
		ssize_t n = read(k->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return DBI_ERR;
		k->last_in = dbi_mono_ns();
		if (nghttp2_session_mem_recv(k->s, buf, (size_t)n) < 0)
			return DBI_ERR;
		if (k->out_len)
			break; /* the client is not reading our answers: wait for it */
	}
	return DBI_OK;
}

static nghttp2_session_callbacks *callbacks(void)
{
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	return cb;
}

static void conn_accept(struct otlp_grpc *g)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(g->lst.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (g->nconns >= g->max_conns) {
			close(fd); /* over protocols.grpc.max_connections */
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct gconn *k = calloc(1, sizeof(*k));
		nghttp2_session_callbacks *cb = callbacks();
		if (!k || !cb || nghttp2_session_server_new(&k->s, cb, k) != 0) {
			if (cb)
				nghttp2_session_callbacks_del(cb);
			free(k);
			close(fd);
			continue;
		}
		nghttp2_session_callbacks_del(cb);
		k->tag = TAG_CONN;
		k->fd = fd;
		k->g = g;
		k->last_in = dbi_mono_ns();
		nghttp2_settings_entry iv[] = {
		        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, g->max_streams},
		        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20},
		        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384},
		};
		nghttp2_submit_settings(k->s, NGHTTP2_FLAG_NONE, iv, DBI_ARRAY_LEN(iv));
		nghttp2_session_set_local_window_size(k->s, NGHTTP2_FLAG_NONE, 0, 16 << 20);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = k};
		if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			nghttp2_session_del(k->s);
			free(k);
			close(fd);
			continue;
		}
		k->next = g->conns;
		if (g->conns)
			g->conns->prev = k;
		g->conns = k;
		g->nconns++;
		if (conn_flush(k) != DBI_OK)
			conn_close(k);
	}
}

void otlp_grpc_event(struct otlp_grpc *g, void *ptr, uint32_t events)
{
	int tag = *(int *)ptr;
	if (!g)
		return;
	if (tag == TAG_LISTEN) {
		conn_accept(g);
		return;
	}
	struct gconn *k = ptr;
	int rc = DBI_OK;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		rc = conn_read(k);
	if (rc == DBI_OK)
		rc = conn_flush(k);
	if (rc != DBI_OK)
		conn_close(k);
}

/* ---- life cycle ---- */

int otlp_grpc_start(struct otlp_grpc **out, struct otlp_recv *r, const struct dbi_endpoint *ep,
                    unsigned max_connections, unsigned max_streams, uint64_t max_idle_ns, struct dbi_errbuf *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE},
	                *ai = NULL;
	char port[8];
	int fd = -1, one = 1;
	snprintf(port, sizeof(port), "%u", ep->port);
	int rc = getaddrinfo(ep->host[0] ? ep->host : NULL, port, &hints, &ai);
	if (rc != 0 || !ai) {
		dbi_err_add(err, "otlp: protocols.grpc.endpoint: cannot resolve %s:%u: %s", ep->host, ep->port,
		            gai_strerror(rc));
		return DBI_ERR;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
		dbi_err_add(err, "otlp: protocols.grpc.endpoint: cannot listen on %s:%u: %s",
		            ep->host[0] ? ep->host : "*", ep->port, strerror(errno));
		freeaddrinfo(ai);
		if (fd >= 0)
			close(fd);
		return DBI_ERR;
	}
	freeaddrinfo(ai);
	struct otlp_grpc *g = calloc(1, sizeof(*g));
	if (!g) {
		close(fd);
		dbi_err_add(err, "otlp: out of memory");
		return DBI_ERR;
	}
	struct sockaddr_storage sa = {0};
	socklen_t sl = sizeof(sa);
	g->port = ep->port;
	if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) {
		struct sockaddr_in6 s6;
		struct sockaddr_in s4;
		memcpy(&s6, &sa, sizeof(s6));
		memcpy(&s4, &sa, sizeof(s4));
		g->port = ntohs(sa.ss_family == AF_INET6 ? s6.sin6_port : s4.sin_port);
	}
	g->r = r;
	g->lst.tag = TAG_LISTEN;
	g->lst.fd = fd;
	g->epfd = -1;
	g->max_conns = max_connections;
	g->max_streams = max_streams;
	g->max_idle_ns = max_idle_ns;
	*out = g;
	return DBI_OK;
}

int otlp_grpc_attach(struct otlp_grpc *g, int epfd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &g->lst};
	g->epfd = epfd;
	return epoll_ctl(epfd, EPOLL_CTL_ADD, g->lst.fd, &ev) == 0 ? DBI_OK : DBI_ERR;
}

unsigned otlp_grpc_port(const struct otlp_grpc *g)
{
	return g->port;
}

unsigned otlp_grpc_connections(const struct otlp_grpc *g)
{
	return g->nconns;
}

/* Say GOAWAY to connections that sent nothing for max_idle_ns (they hold a slot). */
void otlp_grpc_sweep(struct otlp_grpc *g, uint64_t now)
{
	struct gconn *next;
	if (!g->max_idle_ns)
		return;
	for (struct gconn *k = g->conns; k; k = next) {
		next = k->next;
		if (now - k->last_in < g->max_idle_ns)
			continue;
		nghttp2_submit_goaway(k->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(k->s),
		                      NGHTTP2_NO_ERROR, NULL, 0);
		conn_flush(k);
		conn_close(k);
	}
}

void otlp_grpc_close_all(struct otlp_grpc *g)
{
	struct gconn *next;
	for (struct gconn *k = g->conns; k; k = next) {
		next = k->next;
		nghttp2_submit_goaway(k->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(k->s),
		                      NGHTTP2_NO_ERROR, NULL, 0);
		conn_flush(k);
		conn_close(k);
	}
	if (g->epfd >= 0)
		epoll_ctl(g->epfd, EPOLL_CTL_DEL, g->lst.fd, NULL);
	g->epfd = -1;
}

void otlp_grpc_stop(struct otlp_grpc *g)
{
	if (!g)
		return;
	struct gconn *next;
	for (struct gconn *k = g->conns; k; k = next) {
		next = k->next;
		conn_close(k);
	}
	close(g->lst.fd);
	free(g);
}
