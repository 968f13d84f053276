/*
 * http.h — a thin layer over libmicrohttpd for the collector's small HTTP servers
 * (health check, Prometheus endpoints, self-telemetry, admin): bind an endpoint from
 * the config with a clear error, answer requests from one handler, stop cleanly.
 * Handlers run on libmicrohttpd's own thread, never on a pipeline thread.
 */
#ifndef DBI_HTTP_H
#define DBI_HTTP_H

#include <stddef.h>

#include "dbi/common.h"
#include "dbi/config.h"

struct dbi_http;
struct MHD_Connection;

struct dbi_http_request {
	struct MHD_Connection *conn;
	const char *method;
	const char *url;
	const char *body; /* POST/PUT body, complete (bounded by max_body) */
	size_t body_len;
};

/*
 * Fill a response; the server copies body, unless release is set: then body is sent
 * from where it is and release(release_cls) is called once the server is done with it
 * (zero copy for large pages held by a reference). Return DBI_OK, or DBI_ERR to drop
 * the connection (with release unset).
 */
struct dbi_http_response {
	int status;
	const char *content_type;
	const char *body;
	size_t body_len;
	const char *content_encoding; /* e.g. "gzip" or NULL */
	int free_body;                /* free(body) after sending */
	const char *extra_header[2];  /* optional name/value pair */
	void (*release)(void *cls);   /* zero copy: called when body is no longer needed */
	void *release_cls;
};

typedef int (*dbi_http_handler)(void *cls, const struct dbi_http_request *req, struct dbi_http_response *resp);

int dbi_http_start(struct dbi_http **out, const char *name, const struct dbi_endpoint *ep, size_t max_body,
                   dbi_http_handler h, void *cls, struct dbi_errbuf *err);
void dbi_http_stop(struct dbi_http *srv);
/* The port actually bound (useful with port 0 in tests). */
unsigned dbi_http_port(const struct dbi_http *srv);
/* Request header lookup (case-insensitive); NULL if absent. */
const char *dbi_http_header(const struct dbi_http_request *req, const char *name);
/* Query argument lookup; NULL if absent. */
const char *dbi_http_arg(const struct dbi_http_request *req, const char *name);
/* 1 if the client connected from a loopback address (127.0.0.0/8, ::1, ::ffff:127.x.x.x). */
int dbi_http_peer_is_loopback(const struct dbi_http_request *req);

#endif
