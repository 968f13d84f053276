/*
 * pg_conf.c — configuration of the `postgresql` receiver: its config map (the OTel
 * postgresqlreceiver's key names first, then dbi's), cross-key validation, and the
 * resolution of `endpoint`, `targets:` and the targets file into a target set: one
 * immutable, deep-copied struct pg_tconf per server, with every inherited setting
 * filled in, so scraper threads never look at the config again and a reload can swap
 * the whole set at once.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/log.h"

#include "pg_int.h"

#define TLS_KEYS(T, B)                                                                                                 \
	{.name = "tls.insecure",                                                                                       \
	 .type = DBI_CT_BOOL,                                                                                          \
	 .offset = offsetof(T, B.insecure),                                                                            \
	 .doc = "no TLS at all (sslmode=disable)"},                                                                    \
	        {.name = "tls.insecure_skip_verify",                                                                   \
	         .type = DBI_CT_BOOL,                                                                                  \
	         .offset = offsetof(T, B.insecure_skip_verify),                                                        \
	         .doc = "TLS without checking the server certificate (sslmode=require)"},                              \
	        {.name = "tls.ca_file",                                                                                \
	         .type = DBI_CT_STRING,                                                                                \
	         .offset = offsetof(T, B.ca_file),                                                                     \
	         .doc = "CA certificate(s) to verify the server (sslrootcert; implies verify-full)"},                  \
	        {.name = "tls.cert_file",                                                                              \
	         .type = DBI_CT_STRING,                                                                                \
	         .offset = offsetof(T, B.cert_file),                                                                   \
	         .doc = "client certificate (sslcert)"},                                                               \
	{                                                                                                              \
		.name = "tls.key_file", .type = DBI_CT_STRING, .offset = offsetof(T, B.key_file),                      \
		.doc = "client key (sslkey)"                                                                           \
	}

#define SSLMODES "disable|allow|prefer|require|verify-ca|verify-full"

const struct dbi_conf_key dbi_pg_target_keys[] = {
        {.name = "endpoint",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_target_conf, endpoint),
         .flags = DBI_CK_REQUIRED,
         .doc = "host:port, or the unix socket directory (transport: unix)"},
        {.name = "transport",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_target_conf, transport),
         .choices = "tcp|unix",
         .doc = "tcp or unix (default: the receiver's)"},
        {.name = "username",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_target_conf, username),
         .doc = "default: the receiver's"},
        {.name = "password",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_target_conf, password),
         .flags = DBI_CK_SECRET,
         .doc = "default: the receiver's, then PGPASSWORD / PGPASSFILE"},
        {.name = "databases",
         .type = DBI_CT_STRLIST,
         .offset = offsetof(struct pg_target_conf, databases),
         .doc = "databases to scrape (patterns; [\"*\"] = all); default: the receiver's"},
        {.name = "exclude_databases",
         .type = DBI_CT_STRLIST,
         .offset = offsetof(struct pg_target_conf, exclude_databases),
         .doc = "databases to skip (patterns); default: the receiver's"},
        TLS_KEYS(struct pg_target_conf, tls),
        {.name = "sslmode",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_target_conf, sslmode),
         .choices = SSLMODES,
         .doc = "libpq sslmode; wins over tls.*"},
        {.name = "labels",
         .type = DBI_CT_STRMAP,
         .offset = offsetof(struct pg_target_conf, labels),
         .doc = "added to every resource of the target (after the receiver's labels)"},
        {.name = "collection_interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct pg_target_conf, collection_interval),
         .min = 0,
         .max = 86400,
         .doc = "default: the receiver's"},
        {.name = "maintenance_database",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_target_conf, maintenance_database),
         .doc = "database of the target's main session; default: the receiver's"},
        DBI_CONF_END,
};

static const struct dbi_conf_key pg_metric_keys[] = {
        {.name = "enabled",
         .type = DBI_CT_BOOL,
         .offset = offsetof(struct pg_metric_conf, enabled),
         .def = "true",
         .doc = "emit this metric"},
        DBI_CONF_END,
};

#define GROUP_KEY(g, what)                                                                                             \
	{                                                                                                              \
		.name = "groups." what, .type = DBI_CT_BOOL, .offset = offsetof(struct pg_cfg, groups[g]),             \
		.def = "true", .doc = "run this metric group's SQL"                                                    \
	}

const struct dbi_conf_key dbi_pg_keys[] = {
        {.name = "endpoint",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_cfg, endpoint),
         .def = "localhost:5432",
         .doc = "host:port (or socket directory[:port] with transport: unix); the one target when there is no "
                "targets/targets_file"},
        {.name = "transport",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct pg_cfg, transport),
         .choices = "tcp|unix",
         .def = "tcp",
         .doc = "tcp or unix"},
        {.name = "username",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_cfg, username),
         .doc = "role to connect as (default: libpq's, PGUSER)"},
        {.name = "password",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_cfg, password),
         .flags = DBI_CK_SECRET,
         .doc = "password; when empty libpq uses PGPASSWORD or PGPASSFILE (~/.pgpass)"},
        {.name = "databases",
         .type = DBI_CT_STRLIST,
         .offset = offsetof(struct pg_cfg, databases),
         .def = "[\"*\"]",
         .doc = "databases to scrape (fnmatch patterns); [\"*\"] or [] = every non-template database"},
        {.name = "exclude_databases",
         .type = DBI_CT_STRLIST,
         .offset = offsetof(struct pg_cfg, exclude_databases),
         .doc = "databases to skip (fnmatch patterns)"},
        {.name = "collection_interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct pg_cfg, collection_interval),
         .def = "10s",
         .min = 0.05,
         .max = 86400,
         .doc = "time between scrapes of a target"},
        {.name = "initial_delay",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct pg_cfg, initial_delay),
         .def = "1s",
         .doc = "wait before the first scrape"},
        {.name = "jitter",
         .type = DBI_CT_DOUBLE,
         .offset = offsetof(struct pg_cfg, jitter),
         .def = "1",
         .min = 0,
         .max = 1,
         .doc = "spread targets over this fraction of the interval (fixed per target, from its identity)"},
        TLS_KEYS(struct pg_cfg, tls),
        {.name = "sslmode",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_cfg, sslmode),
         .choices = SSLMODES,
         .doc = "libpq sslmode; wins over tls.* (default: from tls.*, else prefer)"},
        {.name = "application_name",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_cfg, application_name),
         .def = "dbi-collector",
         .doc = "application_name of every session"},
        {.name = "statement_timeout",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct pg_cfg, statement_timeout),
         .def = "5s",
         .min = 0.001,
         .max = 3600,
         .doc = "per statement, set on each session"},
        {.name = "lock_timeout",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct pg_cfg, lock_timeout),
         .def = "1s",
         .min = 0.001,
         .max = 3600,
         .doc = "per lock wait, set on each session"},
        {.name = "connect_timeout",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct pg_cfg, connect_timeout),
         .def = "5s",
         .min = 0.01,
         .max = 600,
         .doc = "connection set-up deadline, TLS and authentication included"},
        {.name = "idle_timeout",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct pg_cfg, idle_timeout),
         .def = "5m",
         .doc = "close a per-database session unused this long"},
        {.name = "reconnect.initial_interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct pg_cfg, reconnect_initial),
         .def = "1s",
         .min = 0.01,
         .max = 3600,
         .doc = "first wait after a failed connection; doubles up to reconnect.max_interval"},
        {.name = "reconnect.max_interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct pg_cfg, reconnect_max),
         .def = "1m",
         .min = 0.01,
         .max = 86400,
         .doc = "longest wait between connection attempts"},
        {.name = "maintenance_database",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_cfg, maintenance_database),
         .def = "postgres",
         .doc = "database of each target's main session (server-wide views are read there)"},
        {.name = "labels",
         .type = DBI_CT_STRMAP,
         .offset = offsetof(struct pg_cfg, labels),
         .doc = "resource attributes added to every target"},
        {.name = "targets",
         .type = DBI_CT_LIST,
         .offset = offsetof(struct pg_cfg, targets),
         .sub = dbi_pg_target_keys,
         .elem_size = sizeof(struct pg_target_conf),
         .doc = "servers to scrape; unset keys inherit the receiver's"},
        {.name = "targets_file",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct pg_cfg, targets_file),
         .doc = "YAML list of more targets (same keys), re-read when it changes"},
        {.name = "metrics",
         .type = DBI_CT_KEYED_LIST,
         .offset = offsetof(struct pg_cfg, metrics),
         .sub = pg_metric_keys,
         .elem_size = sizeof(struct pg_metric_conf),
         .doc = "per metric: {enabled: bool} (OTel names, e.g. postgresql.blks_hit)"},
        GROUP_KEY(PG_G_DATABASE, "database"),
        GROUP_KEY(PG_G_CONFLICTS, "conflicts"),
        GROUP_KEY(PG_G_BGWRITER, "bgwriter"),
        GROUP_KEY(PG_G_WAL, "wal"),
        GROUP_KEY(PG_G_ARCHIVER, "archiver"),
        GROUP_KEY(PG_G_REPLICATION, "replication"),
        GROUP_KEY(PG_G_SLOTS, "replication_slots"),
        GROUP_KEY(PG_G_LOCKS, "locks"),
        GROUP_KEY(PG_G_ACTIVITY, "activity"),
        GROUP_KEY(PG_G_QUERY_TIME, "query_time"),
        GROUP_KEY(PG_G_STATEMENTS, "statements"),
        GROUP_KEY(PG_G_TABLES, "tables"),
        GROUP_KEY(PG_G_INDEXES, "indexes"),
        GROUP_KEY(PG_G_FUNCTIONS, "functions"),
        GROUP_KEY(PG_G_RELATION_LOCKS, "relation_locks"),
        {.name = "statement_metrics.limit",
         .type = DBI_CT_INT,
         .offset = offsetof(struct pg_cfg, stmt_limit),
         .def = "200",
         .min = 1,
         .max = 100000,
         .doc = "statements group: top-N statements by interval execution time (plus an 'other' aggregate)"},
        {.name = "statement_metrics.max_statements",
         .type = DBI_CT_INT,
         .offset = offsetof(struct pg_cfg, stmt_max),
         .def = "100000",
         .min = 1,
         .max = 10000000,
         .doc = "statements group: statements tracked per target at most (memory bound)"},
        {.name = "statement_metrics.full_read_every",
         .type = DBI_CT_INT,
         .offset = offsetof(struct pg_cfg, stmt_full_every),
         .def = "20",
         .min = 1,
         .max = 1000000,
         .doc = "statements group (PG 14+): every Nth read returns all of pg_stat_statements, the others only "
                "the statements that ran; 1 = always all (see docs/query-intelligence.md)"},
        DBI_CIRCUIT_CONF_KEYS("circuit_breaker.", offsetof(struct pg_cfg, circuit)),
        {.name = "max_relations",
         .type = DBI_CT_INT,
         .offset = offsetof(struct pg_cfg, max_relations),
         .def = "10000",
         .min = 0,
         .max = 1e9,
         .doc = "tables (and indexes) reported per database per scrape; 0 = no limit"},
        DBI_CONF_END,
};

/* ---- endpoints ---- */

static int parse_endpoint(const char *ep, bool unix_socket, char *host, size_t hlen, int *port, char *why, size_t wlen)
{
	const char *colon;
	char *end;
	long p = 5432;

	if (!ep || !*ep) {
		snprintf(why, wlen, "empty endpoint");
		return DBI_ERR;
	}
	if (!unix_socket && ep[0] == '[') {
		const char *rb = strchr(ep, ']');
		if (!rb) {
			snprintf(why, wlen, "'%s': missing ']'", ep);
			return DBI_ERR;
		}
		if ((size_t)(rb - ep - 1) >= hlen)
			goto toolong;
		memcpy(host, ep + 1, (size_t)(rb - ep - 1));
		host[rb - ep - 1] = '\0';
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if (rb[1] && !colon) {
			snprintf(why, wlen, "'%s': expected ':' after ']'", ep);
			return DBI_ERR;
		}
	} else {
		colon = strrchr(ep, ':');
		size_t n = colon ? (size_t)(colon - ep) : strlen(ep);
		if (n >= hlen)
			goto toolong;
		memcpy(host, ep, n);
		host[n] = '\0';
	}
	if (colon) {
		p = strtol(colon + 1, &end, 10);
		if (end == colon + 1 || *end || p < 1 || p > 65535) {
			snprintf(why, wlen, "'%s': invalid port (1 to 65535)", ep);
			return DBI_ERR;
		}
	}
	if (!host[0]) {
		snprintf(why, wlen, "'%s': no host", ep);
		return DBI_ERR;
	}
	if (unix_socket && host[0] != '/') {
		snprintf(why, wlen, "'%s': with transport unix the endpoint is an absolute socket directory[:port]",
		         ep);
		return DBI_ERR;
	}
	*port = (int)p;
	return DBI_OK;
toolong:
	snprintf(why, wlen, "endpoint too long");
	return DBI_ERR;
}

int dbi_pg_validate(const void *cfgv, const char *id, struct dbi_errbuf *err)
{
	const struct pg_cfg *cfg = cfgv;
	char host[256], why[300];
	int port, rc = DBI_OK;

	for (size_t i = 0; i < cfg->metrics.n; i++) {
		const struct pg_metric_conf *m = (const struct pg_metric_conf *)cfg->metrics.items + i;
		if (dbi_pg_metric_find(m->name) < 0) {
			dbi_err_add(err, "%s: metrics: unknown metric '%s' (see docs/postgresql-metrics.md)", id,
			            m->name);
			rc = DBI_ERR;
		}
	}
	if (!cfg->targets.n && !cfg->targets_file &&
	    parse_endpoint(cfg->endpoint, cfg->transport == 1, host, sizeof(host), &port, why, sizeof(why)) != DBI_OK) {
		dbi_err_add(err, "%s: endpoint: %s", id, why);
		rc = DBI_ERR;
	}
	for (size_t i = 0; i < cfg->targets.n; i++) {
		const struct pg_target_conf *t = (const struct pg_target_conf *)cfg->targets.items + i;
		int tr = t->transport ? strcmp(t->transport, "unix") == 0 : cfg->transport;
		if (parse_endpoint(t->endpoint, tr == 1, host, sizeof(host), &port, why, sizeof(why)) != DBI_OK) {
			dbi_err_add(err, "%s: targets[%zu].endpoint: %s", id, i, why);
			rc = DBI_ERR;
		}
	}
	if (dbi_circuit_conf_check(&cfg->circuit, id, err) != DBI_OK)
		rc = DBI_ERR;
	if (cfg->reconnect_initial > cfg->reconnect_max) {
		dbi_err_add(err, "%s: reconnect.initial_interval is longer than reconnect.max_interval", id);
		rc = DBI_ERR;
	}
	return rc;
}

/* ---- target sets ---- */

static char *dup0(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

static char **dupv(char *const *v, size_t n)
{
	char **out = calloc(n ? n : 1, sizeof(char *));
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(out[i] = strdup(v[i] ? v[i] : "")))
			return out; /* partial: freed by the caller with the set */
	return out;
}

static void freev(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void tconf_free(struct pg_tconf *t)
{
	free(t->key);
	free(t->user);
	free(t->password);
	free(t->sslmode);
	free(t->sslrootcert);
	free(t->sslcert);
	free(t->sslkey);
	free(t->maint_db);
	freev(t->databases, t->ndatabases);
	freev(t->exclude, t->nexclude);
	freev(t->label_k, t->nlabels);
	freev(t->label_v, t->nlabels);
}

void dbi_pg_tset_free(struct pg_tset *ts)
{
	if (!ts)
		return;
	for (size_t i = 0; i < ts->n; i++)
		tconf_free(&ts->v[i]);
	free(ts->v);
	free(ts);
}

static uint64_t hstr(uint64_t h, const char *s)
{
	return dbi_hash64(s ? s : "\x01", s ? strlen(s) + 1 : 1, h);
}

static const char *pick(const char *mine, const char *dflt)
{
	return mine && *mine ? mine : dflt;
}

/* Resolve one target (t == NULL: the receiver's own endpoint) into out. */
static int resolve(const struct pg_cfg *cfg, const struct pg_target_conf *t, struct pg_tconf *out, const char *where,
                   struct dbi_errbuf *err)
{
	char why[300];
	const struct pg_tls_conf *tls = t && (t->tls.ca_file || t->tls.insecure || t->tls.insecure_skip_verify ||
	                                      t->tls.cert_file || t->tls.key_file)
	                                        ? &t->tls
	                                        : &cfg->tls;
	int transport = t && t->transport ? strcmp(t->transport, "unix") == 0 : cfg->transport;
	const char *ep = t ? t->endpoint : cfg->endpoint;
	const char *mode = pick(t ? t->sslmode : NULL, cfg->sslmode);
	const struct dbi_strlist *dbs = t && t->databases.n ? &t->databases : &cfg->databases;
	const struct dbi_strlist *exc = t && t->exclude_databases.n ? &t->exclude_databases : &cfg->exclude_databases;
	uint64_t h;

	memset(out, 0, sizeof(*out));
	if (parse_endpoint(ep, transport == 1, out->host, sizeof(out->host), &out->port, why, sizeof(why)) != DBI_OK) {
		dbi_err_add(err, "%s: %s", where, why);
		return DBI_ERR;
	}
	out->unix_socket = transport == 1;
	snprintf(out->instance_id, sizeof(out->instance_id), "%s:%d", out->host, out->port);
	if (!mode)
		mode = tls->insecure               ? "disable"
		       : tls->insecure_skip_verify ? "require"
		       : tls->ca_file              ? "verify-full"
		                                   : "prefer";
	out->user = dup0(pick(t ? t->username : NULL, cfg->username));
	out->password = dup0(pick(t ? t->password : NULL, cfg->password));
	out->sslmode = strdup(mode);
	out->sslrootcert = dup0(tls->ca_file);
	out->sslcert = dup0(tls->cert_file);
	out->sslkey = dup0(tls->key_file);
	out->maint_db = strdup(pick(t ? t->maintenance_database : NULL, pick(cfg->maintenance_database, "postgres")));
	out->databases = dupv(dbs->v, dbs->n);
	out->ndatabases = dbs->n;
	out->exclude = dupv(exc->v, exc->n);
	out->nexclude = exc->n;
	/* receiver labels, then the target's (a target's label wins: later in the set) */
	size_t nl = cfg->labels.n + (t ? t->labels.n : 0);
	out->label_k = calloc(nl ? nl : 1, sizeof(char *));
	out->label_v = calloc(nl ? nl : 1, sizeof(char *));
	if (!out->label_k || !out->label_v)
		goto oom;
	for (size_t i = 0; i < nl; i++) {
		const struct dbi_strmap *m = i < cfg->labels.n ? &cfg->labels : &t->labels;
		size_t j = i < cfg->labels.n ? i : i - cfg->labels.n;
		out->label_k[i] = strdup(m->k[j]);
		out->label_v[i] = strdup(m->v[j]);
		out->nlabels = i + 1;
		if (!out->label_k[i] || !out->label_v[i])
			goto oom;
	}
	out->interval = t && t->collection_interval ? t->collection_interval : cfg->collection_interval;
	if (!out->sslmode || !out->maint_db || !out->databases || !out->exclude)
		goto oom;
	/* identity: where and as whom; everything else can change under the same identity */
	size_t klen = strlen(out->instance_id) + strlen(out->maint_db) + (out->user ? strlen(out->user) : 0) + 8;
	out->key = malloc(klen);
	if (!out->key)
		goto oom;
	snprintf(out->key, klen, "%s %s %s", out->instance_id, out->user ? out->user : "", out->maint_db);
	out->key_hash = dbi_hash64(out->key, strlen(out->key), 0x70677267);
	h = hstr(out->key_hash, out->password);
	h = hstr(h, out->sslmode);
	h = hstr(h, out->sslrootcert);
	h = hstr(h, out->sslcert);
	h = hstr(h, out->sslkey);
	for (size_t i = 0; i < out->ndatabases; i++)
		h = hstr(h, out->databases[i]);
	h = hstr(h, "|");
	for (size_t i = 0; i < out->nexclude; i++)
		h = hstr(h, out->exclude[i]);
	h = hstr(h, "|");
	for (size_t i = 0; i < out->nlabels; i++)
		h = hstr(hstr(h, out->label_k[i]), out->label_v[i]);
	h = dbi_hash64(&out->interval, sizeof(out->interval), h);
	out->settings_hash = h;
	return DBI_OK;
oom:
	dbi_err_add(err, "%s: out of memory", where);
	tconf_free(out);
	return DBI_ERR;
}

struct pg_tset *dbi_pg_tset_build(const struct pg_cfg *cfg, const struct dbi_list *file_targets, struct dbi_errbuf *err)
{
	size_t nfile = file_targets ? file_targets->n : 0;
	size_t cap = cfg->targets.n + nfile + 1;
	struct pg_tset *ts = calloc(1, sizeof(*ts));
	char where[64];

	if (!ts || !(ts->v = calloc(cap, sizeof(*ts->v)))) {
		free(ts);
		dbi_err_add(err, "out of memory");
		return NULL;
	}
	if (!cfg->targets.n && !cfg->targets_file) {
		if (resolve(cfg, NULL, &ts->v[0], "endpoint", err) != DBI_OK)
			goto fail;
		ts->n = 1;
	}
	for (size_t i = 0; i < cfg->targets.n + nfile; i++) {
		const struct pg_target_conf *t =
		        i < cfg->targets.n ? (const struct pg_target_conf *)cfg->targets.items + i
		                           : (const struct pg_target_conf *)file_targets->items + (i - cfg->targets.n);
		bool dup = false;
		if (i < cfg->targets.n)
			snprintf(where, sizeof(where), "targets[%zu]", i);
		else
			snprintf(where, sizeof(where), "targets_file[%zu]", i - cfg->targets.n);
		if (resolve(cfg, t, &ts->v[ts->n], where, err) != DBI_OK)
			goto fail;
		/* the same server listed twice is scraped once (the first wins) */
		for (size_t j = 0; j < ts->n && !dup; j++)
			dup = strcmp(ts->v[j].key, ts->v[ts->n].key) == 0;
		if (dup) {
			DBI_LOGW(PG_COMP, "target listed twice; scraping it once", "target=%s where=%s",
			         ts->v[ts->n].instance_id, where);
			tconf_free(&ts->v[ts->n]);
			continue;
		}
		ts->n++;
	}
	return ts;
fail:
	dbi_pg_tset_free(ts);
	return NULL;
}

bool dbi_pg_db_wanted(const struct pg_tconf *tc, const char *db)
{
	bool in = tc->ndatabases == 0;
	for (size_t i = 0; i < tc->ndatabases && !in; i++)
		in = fnmatch(tc->databases[i], db, 0) == 0;
	for (size_t i = 0; i < tc->nexclude && in; i++)
		in = fnmatch(tc->exclude[i], db, 0) != 0;
	return in;
}
