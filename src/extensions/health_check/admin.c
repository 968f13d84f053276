/*
 * admin.c — the health_check extension's admin API: circuit breakers by hand.
 *
 *   GET  /admin/circuits                     {"circuits": [circuit, ...]}
 *   GET  /admin/circuits/<target>            circuit
 *   POST /admin/circuits/<target>/open       force open (no scrapes, no probes)
 *   POST /admin/circuits/<target>/close      force closed (scrape whatever happens)
 *   POST /admin/circuits/<target>/auto       clear the override: the rules decide again
 *   POST /admin/circuits/<target>/reset      closed, fresh window and backoff, override cleared
 *
 * POST answers 200 with the circuit, 404 for an unknown target, 400 for an unknown action,
 * 409 when several receivers have that target (add ?receiver=<receiver id>; it also filters
 * the list). A change is a
 * request the target's scraper applies at its next scrape (circuit.h: one writer per
 * circuit): until then the answer shows it under "override"/"reset_pending" and
 * "effective_state", while "state" is still the old one.
 *
 * It has no authentication, so it runs on its own listener, which the config only allows on
 * a loopback address, and it refuses a peer that is not loopback (403), a request with an
 * Origin header (a browser page posting cross-site) and a Host that is not a loopback name
 * (DNS rebinding). Handlers run on libmicrohttpd's thread, never on a pipeline thread.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/circuit.h"
#include "dbi/clock.h"
#include "dbi/log.h"
#include "dbi/stats.h"
#include "health_check.h"

#define PREFIX "/admin/circuits"

struct jb {
	char *p;
	size_t len, cap;
	int oom;
};

static void jb_raw(struct jb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = DBI_MAX(b->cap * 2, b->len + n + 1024);
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void jb_printf(struct jb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_printf(struct jb *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		b->oom = 1; /* only used for short fragments */
	else
		jb_raw(b, tmp, (size_t)n);
}

/* A JSON string; bytes that are not printable ASCII are escaped or replaced. */
static void jb_str(struct jb *b, const char *s)
{
	jb_raw(b, "\"", 1);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			char e[2] = {'\\', (char)ch};
			jb_raw(b, e, 2);
		} else if (ch < 0x20) {
			jb_printf(b, "\\u%04x", ch);
		} else if (ch >= 0x7f) {
			jb_raw(b, "?", 1); /* error texts may be in any encoding: keep the answer valid UTF-8 */
		} else {
			jb_raw(b, s, 1);
		}
	}
	jb_raw(b, "\"", 1);
}

static void jb_key(struct jb *b, const char *k)
{
	jb_raw(b, ",", b->len && b->p[b->len - 1] != '{' ? 1 : 0);
	jb_str(b, k);
	jb_raw(b, ":", 1);
}

static void jb_time(struct jb *b, const char *k, uint64_t wall_ns)
{
	char t[40];
	jb_key(b, k);
	if (wall_ns)
		jb_str(b, dbi_fmt_time(wall_ns, t, sizeof(t)));
	else
		jb_raw(b, "null", 4);
}

static void circuit_json(struct jb *b, const char *owner, const struct dbi_circuit_view *v, uint64_t now)
{
	jb_raw(b, "{", 1);
	jb_key(b, "receiver");
	jb_str(b, owner);
	jb_key(b, "target");
	jb_str(b, v->target);
	jb_key(b, "state");
	jb_str(b, dbi_circuit_state_name(v->state));
	jb_key(b, "effective_state");
	jb_str(b, dbi_circuit_state_name(dbi_circuit_view_effective(v)));
	jb_key(b, "override");
	jb_str(b, dbi_circuit_override_name(v->override));
	jb_key(b, "override_pending");
	jb_printf(b, "%s", v->override != v->override_active ? "true" : "false");
	jb_key(b, "reset_pending");
	jb_printf(b, "%s", v->reset_pending ? "true" : "false");
	jb_key(b, "failures");
	jb_printf(b, "%llu", (unsigned long long)v->failures);
	jb_key(b, "successes");
	jb_printf(b, "%llu", (unsigned long long)v->successes);
	jb_key(b, "denied");
	jb_printf(b, "%llu", (unsigned long long)v->denied);
	jb_key(b, "probes");
	jb_printf(b, "%llu", (unsigned long long)v->probes);
	jb_key(b, "transitions");
	jb_printf(b, "%llu", (unsigned long long)v->transitions);
	jb_key(b, "window_calls");
	jb_printf(b, "%u", v->window_calls);
	jb_key(b, "window_failures");
	jb_printf(b, "%u", v->window_failures);
	jb_key(b, "backoff_s");
	jb_printf(b, "%.3f", (double)v->backoff_ns / 1e9);
	/* a forced-open circuit has no probe time: it waits for the admin */
	int probing = v->state == DBI_CIRCUIT_OPEN && v->override_active != DBI_CIRCUIT_FORCE_OPEN;
	jb_time(b, "next_probe", probing ? v->open_until_wall_ns : 0);
	jb_key(b, "next_probe_in_s");
	if (probing)
		jb_printf(b, "%.3f", v->open_until_wall_ns > now ? (double)(v->open_until_wall_ns - now) / 1e9 : 0.0);
	else
		jb_raw(b, "null", 4);
	jb_time(b, "last_change", v->last_change_wall_ns);
	jb_key(b, "last_reason");
	jb_str(b, v->last_reason);
	jb_key(b, "last_error");
	jb_str(b, v->last_error);
	jb_time(b, "last_error_time", v->last_error_wall_ns);
	jb_raw(b, "}", 1);
}

/* ---- the walk over every circuit of every receiver ---- */

enum act { ACT_NONE, ACT_OPEN, ACT_CLOSE, ACT_AUTO, ACT_RESET };

struct walk {
	struct jb *b;
	const char *target; /* NULL: list all */
	const char *owner;  /* NULL: any receiver */
	enum act act;
	int apply;   /* second pass: act and render */
	int matches; /* first pass: how many */
	int listed;
	uint64_t now;
	char owners[512]; /* for the 409 message */
};

static int visit(void *arg, struct dbi_circuit_table *t, struct dbi_circuit *c)
{
	struct walk *w = arg;
	struct dbi_circuit_view v;
	const char *owner = dbi_circuit_table_owner(t);
	if (w->target && strcmp(c->target, w->target) != 0)
		return 0;
	if (w->owner && strcmp(owner, w->owner) != 0)
		return 0;
	if (w->target && !w->apply) {
		size_t o = strlen(w->owners);
		snprintf(w->owners + o, sizeof(w->owners) - o, "%s%s", o ? ", " : "", owner);
		w->matches++;
		return 0;
	}
	switch (w->act) {
	case ACT_OPEN:
		dbi_circuit_override(c, DBI_CIRCUIT_FORCE_OPEN);
		break;
	case ACT_CLOSE:
		dbi_circuit_override(c, DBI_CIRCUIT_FORCE_CLOSED);
		break;
	case ACT_AUTO:
		dbi_circuit_override(c, DBI_CIRCUIT_NO_OVERRIDE);
		break;
	case ACT_RESET:
		dbi_circuit_reset(c);
		break;
	case ACT_NONE:
		break;
	}
	if (w->act != ACT_NONE)
		DBI_LOGI("health_check", "admin: circuit change requested", "receiver=%s target=%s action=%s", owner,
		         c->target,
		         w->act == ACT_OPEN    ? "open"
		         : w->act == ACT_CLOSE ? "close"
		         : w->act == ACT_AUTO  ? "auto"
		                               : "reset");
	if (dbi_circuit_snapshot(c, &v) != DBI_OK)
		return 0; /* its owner keeps writing; leave it out of this answer */
	if (w->listed++)
		jb_raw(w->b, ",", 1);
	circuit_json(w->b, owner, &v, w->now);
	return 0;
}

/* ---- request handling ---- */

static int reply(struct dbi_http_response *r, int status, const char *body)
{
	r->status = status;
	r->content_type = "application/json";
	r->body = body;
	r->body_len = strlen(body);
	return DBI_OK;
}

static int reply_error(struct dbi_http_response *r, int status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int reply_error(struct dbi_http_response *r, int status, const char *fmt, ...)
{
	char msg[700];
	struct jb b = {0};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	jb_raw(&b, "{\"error\":", 9);
	jb_str(&b, msg);
	jb_raw(&b, "}\n", 2);
	if (b.oom) {
		free(b.p);
		return reply(r, 500, "{\"error\":\"out of memory\"}\n");
	}
	r->status = status;
	r->content_type = "application/json";
	r->body = b.p;
	r->body_len = b.len;
	r->free_body = 1;
	return DBI_OK;
}

bool hc_admin_host_is_loopback(const char *host)
{
	unsigned char a[16];
	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, host, a) == 1) {
		static const unsigned char v6lo[16] = {[15] = 1};
		static const unsigned char v4mapped[12] = {[10] = 0xff, [11] = 0xff};
		return memcmp(a, v6lo, 16) == 0 || (memcmp(a, v4mapped, 12) == 0 && a[12] == 127);
	}
	return false;
}

/* The host part of a Host header: "127.0.0.1:13134", "[::1]:13134", "localhost". */
static bool host_header_ok(const char *h)
{
	char host[256];
	size_t n;
	if (h[0] == '[') {
		const char *end = strchr(h, ']');
		if (!end)
			return false;
		n = (size_t)(end - h - 1);
		h++;
	} else {
		const char *colon = strrchr(h, ':');
		n = colon ? (size_t)(colon - h) : strlen(h);
	}
	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	return hc_admin_host_is_loopback(host);
}

static int refuse(struct hc *hc, struct dbi_http_response *r, const char *why)
{
	dbi_stats_add_shared(hc->inst->stats, HC_ADMIN_REFUSED, 1);
	DBI_LOGW("health_check", "admin: request refused", "reason=\"%s\"", why);
	return reply_error(r, 403, "%s", why);
}

int hc_admin_handle(void *cls, const struct dbi_http_request *req, struct dbi_http_response *r)
{
	struct hc *hc = cls;
	const char *host = dbi_http_header(req, "Host");
	char path[512];
	dbi_stats_add_shared(hc->inst->stats, HC_ADMIN_REQUESTS, 1);

	if (!dbi_http_peer_is_loopback(req))
		return refuse(hc, r, "the admin API answers loopback clients only");
	if (dbi_http_header(req, "Origin"))
		return refuse(hc, r, "cross-origin requests are refused (Origin header present)");
	if (host && !host_header_ok(host))
		return refuse(hc, r, "Host must be a loopback address or localhost");

	size_t plen = strlen(PREFIX);
	if (strncmp(req->url, PREFIX, plen) != 0 || (req->url[plen] != '\0' && req->url[plen] != '/'))
		return reply_error(r, 404, "not found: the admin API is under " PREFIX);
	if (dbi_strlcpy(path, req->url + plen, sizeof(path)) >= sizeof(path))
		return reply_error(r, 404, "unknown target");

	int is_get = strcmp(req->method, "GET") == 0, is_post = strcmp(req->method, "POST") == 0;
	struct jb b = {0};
	struct walk w = {.b = &b, .owner = dbi_http_arg(req, "receiver"), .now = dbi_wall_ns()};
	char *rest = path[0] == '/' ? path + 1 : path;

	if (*rest == '\0') { /* the list */
		if (!is_get) {
			r->extra_header[0] = "Allow";
			r->extra_header[1] = "GET";
			return reply_error(r, 405, "use GET on " PREFIX);
		}
		jb_raw(&b, "{\"circuits\":[", 13);
		dbi_circuit_foreach(visit, &w);
		jb_raw(&b, "]}\n", 3);
		goto send;
	}
	if (is_post) {
		char *slash = strrchr(rest, '/');
		if (!slash || slash == rest)
			return reply_error(r, 400,
			                   "POST " PREFIX "/<target>/<action>, action one of open, close, auto, reset");
		*slash = '\0';
		const char *action = slash + 1;
		w.act = strcmp(action, "open") == 0    ? ACT_OPEN
		        : strcmp(action, "close") == 0 ? ACT_CLOSE
		        : strcmp(action, "auto") == 0  ? ACT_AUTO
		        : strcmp(action, "reset") == 0 ? ACT_RESET
		                                       : ACT_NONE;
		if (w.act == ACT_NONE)
			return reply_error(r, 400, "unknown action '%.64s' (open, close, auto or reset)", action);
	} else if (!is_get) {
		r->extra_header[0] = "Allow";
		r->extra_header[1] = "GET, POST";
		return reply_error(r, 405, "use GET to read a circuit, POST to change it");
	}
	w.target = rest;
	dbi_circuit_foreach(visit, &w);
	if (w.matches == 0)
		return reply_error(r, 404, "no circuit for target '%.200s'%s%.64s", rest,
		                   w.owner ? " in receiver " : "", w.owner ? w.owner : "");
	if (w.matches > 1)
		return reply_error(r, 409,
		                   "target '%.200s' is scraped by several receivers (%.300s): add ?receiver=<id>", rest,
		                   w.owners);
	w.apply = 1;
	dbi_circuit_foreach(visit, &w);
	if (w.listed == 0) {
		free(b.p);
		return reply_error(r, 404, "no circuit for target '%.200s'", rest); /* removed meanwhile */
	}
	if (w.act != ACT_NONE)
		dbi_stats_add_shared(hc->inst->stats, HC_ADMIN_CHANGES, 1);
	jb_raw(&b, "\n", 1);
send:
	if (b.oom) {
		free(b.p);
		return reply(r, 500, "{\"error\":\"out of memory\"}\n");
	}
	r->status = 200;
	r->content_type = "application/json";
	r->body = b.p ? b.p : "";
	r->body_len = b.len;
	r->free_body = b.p != NULL;
	return DBI_OK;
}
