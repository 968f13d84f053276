/*
 * http.c — the collector's small HTTP servers over libmicrohttpd (see http.h). One
 * internal polling thread per server; bodies are gathered up to max_body and then the
 * handler sees the whole request once.
 */
#include "dbi/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "dbi/log.h"

struct dbi_http {
	struct MHD_Daemon *d;
	dbi_http_handler h;
	void *cls;
	size_t max_body;
	char name[64];
	unsigned port;
};

struct req_state {
	char *body;
	size_t len, cap;
	int too_big;
};

static enum MHD_Result answer(struct MHD_Connection *c, const struct dbi_http_response *r)
{
	struct MHD_Response *resp;
	if (r->release) {
		resp = MHD_create_response_from_buffer_with_free_callback_cls(
		        r->body_len, (void *)(r->body ? r->body : ""), r->release, r->release_cls);
		if (!resp)
			r->release(r->release_cls);
	} else {
		resp = MHD_create_response_from_buffer(r->body_len, (void *)(r->body ? r->body : ""),
		                                       r->free_body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
	}
	if (!resp)
		return MHD_NO;
	if (r->content_type)
		MHD_add_response_header(resp, "Content-Type", r->content_type);
	if (r->content_encoding)
		MHD_add_response_header(resp, "Content-Encoding", r->content_encoding);
	if (r->extra_header[0] && r->extra_header[1])
		MHD_add_response_header(resp, r->extra_header[0], r->extra_header[1]);
	enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct dbi_http *srv = cls;
	struct req_state *rs = *con_cls;
	(void)version;
	if (!rs) {
		rs = calloc(1, sizeof(*rs));
		if (!rs)
			return MHD_NO;
		*con_cls = rs;
		return MHD_YES;
	}
	if (*upload_size) {
		if (rs->len + *upload_size > srv->max_body) {
			rs->too_big = 1;
		} else {
			if (rs->len + *upload_size > rs->cap) {
				size_t cap = DBI_MAX(rs->cap * 2, rs->len + *upload_size);
				char *nb = realloc(rs->body, cap);
				if (!nb)
					return MHD_NO;
				rs->body = nb;
				rs->cap = cap;
			}
			memcpy(rs->body + rs->len, upload, *upload_size);
			rs->len += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	struct dbi_http_response r = {.status = 500, .content_type = "text/plain"};
	if (rs->too_big) {
		static const char msg[] = "request body too large\n";
		r.status = 413;
		r.body = msg;
		r.body_len = sizeof(msg) - 1;
		return answer(c, &r);
	}
	struct dbi_http_request req = {.conn = c, .method = method, .url = url, .body = rs->body, .body_len = rs->len};
	if (srv->h(srv->cls, &req, &r) != DBI_OK)
		return MHD_NO;
	return answer(c, &r);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	struct req_state *rs = *con_cls;
	if (rs) {
		free(rs->body);
		free(rs);
		*con_cls = NULL;
	}
}

int dbi_http_start(struct dbi_http **out, const char *name, const struct dbi_endpoint *ep, size_t max_body,
                   dbi_http_handler h, void *cls, struct dbi_errbuf *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE},
	                *ai = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", ep->port);
	int rc = getaddrinfo(ep->host[0] ? ep->host : NULL, port, &hints, &ai);
	if (rc != 0 || !ai) {
		dbi_err_add(err, "%s: cannot resolve %s:%u: %s", name, ep->host, ep->port, gai_strerror(rc));
		return DBI_ERR;
	}
	struct dbi_http *srv = calloc(1, sizeof(*srv));
	if (!srv) {
		freeaddrinfo(ai);
		dbi_err_add(err, "%s: out of memory", name);
		return DBI_ERR;
	}
	srv->h = h;
	srv->cls = cls;
	srv->max_body = max_body;
	dbi_strlcpy(srv->name, name, sizeof(srv->name));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
#if MHD_VERSION >= 0x00095300
	flags |= MHD_USE_AUTO;
#endif
	srv->d = MHD_start_daemon(flags, ep->port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	                          MHD_OPTION_NOTIFY_COMPLETED, on_done, srv, MHD_OPTION_CONNECTION_TIMEOUT,
	                          (unsigned)30, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!srv->d) {
		dbi_err_add(err, "%s: cannot listen on %s:%u (address in use or not allowed)", name,
		            ep->host[0] ? ep->host : "*", ep->port);
		free(srv);
		return DBI_ERR;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = di ? di->port : ep->port;
	*out = srv;
	return DBI_OK;
}

void dbi_http_stop(struct dbi_http *srv)
{
	if (!srv)
		return;
	MHD_stop_daemon(srv->d);
	free(srv);
}

unsigned dbi_http_port(const struct dbi_http *srv)
{
	return srv->port;
}

const char *dbi_http_header(const struct dbi_http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *dbi_http_arg(const struct dbi_http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

int dbi_http_peer_is_loopback(const struct dbi_http_request *req)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	if (!sa)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		const uint8_t *a = in6->sin6_addr.s6_addr;
		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) || (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && a[12] == 127);
	}
	return 0;
}
