/*
 * health_check.c — the `health_check` extension: GET on its endpoint answers 200 with
 * a JSON status per pipeline when everything runs, and 503 while starting or
 * reloading, while shutting down, or when a pipeline has stalled (one of its threads
 * stopped making progress for `stall_timeout`). Load balancers and Kubernetes probes
 * point here.
 *
 * With `admin: {enabled: true}` it also serves the admin API (admin.c: circuit breakers
 * by hand) on a second listener, `admin.endpoint`, which must be a loopback address:
 * the status endpoint is often exposed to a load balancer, the admin API never is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/http.h"
#include "dbi/runtime.h"
#include "health_check.h"

static const struct dbi_conf_key hc_keys[] = {
        {.name = "endpoint",
         .type = DBI_CT_ENDPOINT,
         .offset = offsetof(struct hc_cfg, endpoint),
         .def = "127.0.0.1:13133",
         .doc = "address to listen on"},
        {.name = "path",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct hc_cfg, path),
         .def = "/",
         .doc = "URL path of the status"},
        {.name = "stall_timeout",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct hc_cfg, stall_timeout),
         .def = "10s",
         .doc = "a pipeline thread silent this long makes the pipeline 'stalled'"},
        {.name = "admin.enabled",
         .type = DBI_CT_BOOL,
         .offset = offsetof(struct hc_cfg, admin_enabled),
         .def = "false",
         .doc = "serve the admin API (circuit breakers: GET/POST /admin/circuits) on admin.endpoint"},
        {.name = "admin.endpoint",
         .type = DBI_CT_ENDPOINT,
         .offset = offsetof(struct hc_cfg, admin_endpoint),
         .def = "127.0.0.1:13134",
         .doc = "admin API address: loopback only (127.0.0.0/8, ::1 or localhost); it has no authentication"},
        DBI_CONF_END,
};

static const struct dbi_stat_def hc_stats[] = {
        [HC_REQUESTS] = {"requests", DBI_STAT_COUNTER, "status requests answered"},
        [HC_UNHEALTHY] = {"unhealthy_answers", DBI_STAT_COUNTER, "answers other than 200"},
        [HC_ADMIN_REQUESTS] = {"admin_requests", DBI_STAT_COUNTER, "admin API requests"},
        [HC_ADMIN_CHANGES] = {"admin_changes", DBI_STAT_COUNTER, "circuit changes requested through the admin API"},
        [HC_ADMIN_REFUSED] = {"admin_refused", DBI_STAT_COUNTER, "admin requests refused (peer, Origin, Host)"},
        [HC_NSTATS] = {NULL, 0, NULL},
};

static int hc_handle(void *cls, const struct dbi_http_request *req, struct dbi_http_response *r)
{
	struct hc *hc = cls;
	struct dbi_pipeline_health ph[64];
	enum dbi_health overall;
	dbi_stats_add_shared(hc->inst->stats, HC_REQUESTS, 1);
	if (strcmp(req->url, hc->cfg->path) != 0) {
		r->status = 404;
		r->body = "not found\n";
		r->body_len = strlen(r->body);
		return DBI_OK;
	}
	size_t n = dbi_runtime_health(hc->rt, hc->cfg->stall_timeout, ph, DBI_ARRAY_LEN(ph), &overall);
	size_t cap = 512 + n * 300, o = 0;
	char *buf = malloc(cap);
	if (!buf)
		return DBI_ERR;
	char ts[40];
	o += (size_t)snprintf(buf + o, cap - o,
	                      "{\"status\":\"%s\",\"up_since\":\"%s\",\"uptime_seconds\":%llu,\"pipelines\":{",
	                      dbi_health_name(overall), dbi_fmt_time(hc->start_wall, ts, sizeof(ts)),
	                      (unsigned long long)((dbi_wall_ns() - hc->start_wall) / DBI_NSEC_PER_SEC));
	for (size_t i = 0; i < n && i < DBI_ARRAY_LEN(ph) && o < cap; i++) {
		o += (size_t)snprintf(buf + o, cap - o, "%s\"%s\":{\"status\":\"%s\"", i ? "," : "", ph[i].id,
		                      dbi_health_name(ph[i].state));
		if (ph[i].reason[0] && o < cap)
			o += (size_t)snprintf(buf + o, cap - o, ",\"reason\":\"%s\"", ph[i].reason);
		if (o < cap)
			o += (size_t)snprintf(buf + o, cap - o, "}");
	}
	if (o < cap)
		o += (size_t)snprintf(buf + o, cap - o, "}}\n");
	r->status = overall == DBI_HEALTH_OK ? 200 : 503;
	if (r->status != 200)
		dbi_stats_add_shared(hc->inst->stats, HC_UNHEALTHY, 1);
	r->content_type = "application/json";
	r->body = buf;
	r->body_len = DBI_MIN(o, cap - 1);
	r->free_body = 1;
	return DBI_OK;
}

static int hc_validate(const void *cfg, const char *id, struct dbi_errbuf *err)
{
	const struct hc_cfg *c = cfg;
	if (c->admin_enabled && !hc_admin_host_is_loopback(c->admin_endpoint.host)) {
		dbi_err_add(
		        err,
		        "%s: admin.endpoint must be a loopback address (127.0.0.1, ::1 or localhost), not '%s': the "
		        "admin API changes circuit breakers and has no authentication",
		        id, c->admin_endpoint.host[0] ? c->admin_endpoint.host : "all interfaces");
		return DBI_ERR;
	}
	if (c->admin_enabled && c->admin_endpoint.port == c->endpoint.port &&
	    strcmp(c->admin_endpoint.host, c->endpoint.host) == 0) {
		dbi_err_add(err, "%s: admin.endpoint must differ from endpoint", id);
		return DBI_ERR;
	}
	return DBI_OK;
}

static int hc_create(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err)
{
	struct hc *hc = calloc(1, sizeof(*hc));
	if (!hc) {
		dbi_err_add(err, "%s: out of memory", inst->id);
		return DBI_ERR;
	}
	hc->cfg = inst->cfg;
	hc->inst = inst;
	hc->rt = inst->rt;
	hc->start_wall = dbi_wall_ns();
	*state = hc;
	return DBI_OK;
}

static int hc_start(void *state, struct dbi_errbuf *err)
{
	struct hc *hc = state;
	char name[96];
	if (dbi_http_start(&hc->http, hc->inst->id, &hc->cfg->endpoint, 0, hc_handle, hc, err) != DBI_OK)
		return DBI_ERR;
	if (!hc->cfg->admin_enabled)
		return DBI_OK;
	snprintf(name, sizeof(name), "%s admin", hc->inst->id);
	/* POST bodies are not used; a small limit keeps a client from making us buffer much */
	if (dbi_http_start(&hc->admin, name, &hc->cfg->admin_endpoint, 4096, hc_admin_handle, hc, err) != DBI_OK) {
		dbi_http_stop(hc->http);
		hc->http = NULL;
		return DBI_ERR;
	}
	return DBI_OK;
}

static void hc_stop(void *state)
{
	struct hc *hc = state;
	dbi_http_stop(hc->admin);
	dbi_http_stop(hc->http);
	hc->admin = NULL;
	hc->http = NULL;
}

static void hc_destroy(void *state)
{
	struct hc *hc = state;
	dbi_http_stop(hc->admin);
	dbi_http_stop(hc->http);
	free(hc);
}

const struct dbi_component dbi_extension_health_check = {
        .type = "health_check",
        .kind = DBI_EXTENSION,
        .doc = "HTTP status endpoint: 200 when every pipeline runs, 503 otherwise",
        .keys = hc_keys,
        .conf_size = sizeof(struct hc_cfg),
        .stats = hc_stats,
        .validate = hc_validate,
        .create = hc_create,
        .destroy = hc_destroy,
        .start = hc_start,
        .stop = hc_stop,
};
