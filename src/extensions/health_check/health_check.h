/*
 * health_check.h — private to the health_check extension: its config, state and
 * counters, shared by the status endpoint (health_check.c) and the admin API (admin.c).
 */
#ifndef DBI_HEALTH_CHECK_H
#define DBI_HEALTH_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "dbi/component.h"
#include "dbi/http.h"

struct hc_cfg {
	struct dbi_endpoint endpoint;
	char *path;
	uint64_t stall_timeout;
	bool admin_enabled;
	struct dbi_endpoint admin_endpoint;
};

enum { HC_REQUESTS, HC_UNHEALTHY, HC_ADMIN_REQUESTS, HC_ADMIN_CHANGES, HC_ADMIN_REFUSED, HC_NSTATS };

struct hc {
	const struct hc_cfg *cfg;
	const struct dbi_inst *inst;
	struct dbi_runtime *rt;
	struct dbi_http *http;
	struct dbi_http *admin;
	uint64_t start_wall;
};

/* The admin API's handler (admin.c); cls is the struct hc. */
int hc_admin_handle(void *cls, const struct dbi_http_request *req, struct dbi_http_response *r);
/* Is host a loopback address or "localhost"? */
bool hc_admin_host_is_loopback(const char *host);

#endif
