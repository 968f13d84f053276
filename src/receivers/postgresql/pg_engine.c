/*
 * pg_engine.c — the scraper threads of the `postgresql` receiver.
 *
 * Each runtime scraper thread owns the targets whose identity hashes to it and drives
 * all their sessions from one epoll loop (which also watches the runtime's wake fd),
 * with libpq's non-blocking API: PQconnectStartParams/PQconnectPoll to connect, then
 * pipeline mode for scrapes, so every statement of one scrape of one database goes out
 * in one write and comes back in one stream — one round trip — inside one
 * `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY` transaction (one snapshot).
 *
 * A target keeps one persistent main session (server-wide views are read there, for all
 * databases at once); per-database sessions exist only while a per-database group
 * (tables, indexes, functions, relation_locks) is on, are opened after the main
 * session's database list, run in parallel, and close after idle_timeout unused. Every
 * session has a deadline: a hung or dead server fails its own scrape (and reconnects with
 * exponential backoff) and never delays another target. A scrape still running when the
 * next is due makes that interval skipped and counted (dropped.scrape_overrun).
 *
 * Failed statements are classified by SQLSTATE: a missing privilege or object turns off
 * just that group for the target (one log line, dbi.postgresql.group.enabled = 0) and
 * the rest of the scrape is re-run at once without it; a statement timeout is a timeout
 * for the circuit breaker; anything else is a failure.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "dbi/circuit.h"
#include "dbi/clock.h"
#include "dbi/log.h"

#include "pg_int.h"
#include "pg_pqbuf.h"

#define PG_TICK_NS (200 * DBI_NSEC_PER_MSEC)
#define PG_GROUP_RETRY_NS (600 * DBI_NSEC_PER_SEC) /* a group turned off is tried again after */

struct pg_thread {
	struct dbi_pg *pg;
	struct dbi_rctx *rctx;
	struct dbi_stats *st;
	unsigned me;
	int ep;
	uint64_t gen;
	struct pg_target **tg;
	size_t ntg;
	struct pg_target **due; /* the same targets, a min-heap on next_due */
	uint64_t now;           /* mono, refreshed per loop and per event batch */
	/*
	 * Due scrapes come off the heap. The pass over every session (deadlines, idle
	 * timeouts) runs only at next_scan (the earliest deadline it saw, at most a tick away;
	 * deadlines set between passes lower it) or after the target set changed. Not on every
	 * event: with 1000 targets that pass was a tenth of the thread's CPU.
	 */
	uint64_t next_scan;
	bool rescan;
	int64_t nsessions;
	uint64_t file_check;
	struct pg_db **grave; /* databases dropped during an event batch, freed after it */
	size_t ngrave, capgrave;
	/* the statements group, shared by this thread's targets: fingerprints, sink, text scratch */
	struct dbi_qfp_cache *qfp;
	struct dbi_pgss_sink pgss_sink;
	char *pgss_text;
	struct dbi_pgss_pool *pgss_pool; /* top-N scratch of the statement scrapes in flight */
	uint32_t next_tag;
};

#define PG_PGSS_SAMPLE_MAX 4096 /* bytes of normalized text in a query sample */

/* ---- the due heap: the target whose scrape is due first at the root ---- */

static void due_down(struct pg_thread *th, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < th->ntg && th->due[l]->next_due < th->due[m]->next_due)
			m = l;
		if (l + 1 < th->ntg && th->due[l + 1]->next_due < th->due[m]->next_due)
			m = l + 1;
		if (m == i)
			return;
		struct pg_target *x = th->due[i];
		th->due[i] = th->due[m];
		th->due[m] = x;
		i = m;
	}
}

static void due_build(struct pg_thread *th)
{
	memcpy(th->due, th->tg, th->ntg * sizeof(*th->due));
	for (size_t i = th->ntg / 2; i-- > 0;)
		due_down(th, i);
}

/* A deadline was set: the pass over the sessions must run by then. */
static void scan_by(struct pg_thread *th, uint64_t when)
{
	if (when < th->next_scan)
		th->next_scan = when;
}

/* ---- the statements group: statements.c's output goes into this thread's rings ---- */

static int pgss_point(void *ctx, struct dbi_point *p, uint64_t route)
{
	struct pg_thread *th = ctx;
	if (dbi_rctx_emit_point(th->rctx, p, route) != DBI_OK) {
		dbi_stats_add(th->st, PGS_DROP_RING_FULL, 1);
		return DBI_AGAIN;
	}
	dbi_stats_add(th->st, PGS_POINTS, 1);
	return DBI_OK;
}

static void *pgss_reserve(void *ctx, uint32_t type, uint32_t len, uint64_t route)
{
	struct pg_thread *th = ctx;
	return dbi_rctx_reserve_record(th->rctx, type, len, route);
}

static void pgss_commit(void *ctx, void *rec)
{
	struct pg_thread *th = ctx;
	dbi_rctx_commit_record(th->rctx, rec);
}

static const struct pg_cfg *cfg_of(const struct dbi_pg *pg)
{
	return atomic_load_explicit(&pg->cfg, memory_order_acquire);
}

/* ---- emission ---- */

static void emit_raw(struct pg_sctx *x, int m, uint32_t res, uint32_t attrs, int64_t i, double d, uint64_t start)
{
	const struct pg_metric_info *mi = &dbi_pg_metrics[m];
	struct dbi_pg *pg = x->pg;
	uint32_t sid;

	if (!dbi_pg_metric_on(pg, m))
		return;
	sid = res && attrs ? dbi_series_intern(pg->reg, pg->metric_id[m], res, pg->scope, attrs) : 0;
	if (!sid) {
		dbi_stats_add(x->th->st, PGS_DROP_SERIES_LIMIT, 1);
		return;
	}
	struct dbi_point p = {
	        .time_ns = x->now,
	        .series = sid,
	        .kind = mi->kind == DBI_MK_SUM ? DBI_PK_SUM : DBI_PK_GAUGE,
	};
	if (mi->kind == DBI_MK_SUM)
		p.start_ns = start && start < x->now ? start : pg->start_wall;
	if (mi->is_double) {
		p.v.d = d;
		p.flags = DBI_PF_DOUBLE;
	} else {
		p.v.i = i;
	}
	if (dbi_rctx_emit_point(x->th->rctx, &p, dbi_series_get(pg->reg, sid)->hash) != DBI_OK)
		dbi_stats_add(x->th->st, PGS_DROP_RING_FULL, 1);
	else
		dbi_stats_add(x->th->st, PGS_POINTS, 1);
}

void dbi_pg_emit(struct pg_sctx *x, int m, uint32_t res, uint32_t attrs, double v, uint64_t start_ns)
{
	if (!isfinite(v))
		return;
	emit_raw(x, m, res, attrs, (int64_t)llround(v), v, start_ns);
}

uint32_t dbi_pg_attrs(struct pg_sctx *x, size_t n, const char *const *kv)
{
	struct dbi_attr a[8];
	if (n > DBI_ARRAY_LEN(a))
		return 0;
	for (size_t i = 0; i < n; i++)
		a[i] = (struct dbi_attr){
		        .key = kv[2 * i], .type = DBI_AT_STR, .v.s = kv[2 * i + 1] ? kv[2 * i + 1] : ""};
	return dbi_attrs_intern(x->pg->reg, a, n);
}

static uint32_t resource(struct dbi_registry *reg, const struct pg_tconf *tc, const char *db, const char *schema,
                         const char *table, const char *index)
{
	struct dbi_attr a[DBI_ATTRS_MAX];
	size_t n = 0;

	a[n++] = (struct dbi_attr){.key = "server.address", .type = DBI_AT_STR, .v.s = tc->host};
	a[n++] = (struct dbi_attr){.key = "server.port", .type = DBI_AT_INT, .v.i = tc->port};
	a[n++] = (struct dbi_attr){.key = "service.instance.id", .type = DBI_AT_STR, .v.s = tc->instance_id};
	for (size_t i = 0; i < tc->nlabels && n < DBI_ATTRS_MAX - 4; i++)
		a[n++] = (struct dbi_attr){.key = tc->label_k[i], .type = DBI_AT_STR, .v.s = tc->label_v[i]};
	if (db)
		a[n++] = (struct dbi_attr){.key = "postgresql.database.name", .type = DBI_AT_STR, .v.s = db};
	if (schema)
		a[n++] = (struct dbi_attr){.key = "postgresql.schema.name", .type = DBI_AT_STR, .v.s = schema};
	if (table)
		a[n++] = (struct dbi_attr){.key = "postgresql.table.name", .type = DBI_AT_STR, .v.s = table};
	if (index)
		a[n++] = (struct dbi_attr){.key = "postgresql.index.name", .type = DBI_AT_STR, .v.s = index};
	return dbi_attrs_intern(reg, a, n);
}

uint32_t dbi_pg_res(struct pg_sctx *x, const char *db, const char *schema, const char *table, const char *index)
{
	return resource(x->pg->reg, x->t->tc, db, schema, table, index);
}

struct pg_db *dbi_pg_db_get(struct pg_sctx *x, const char *name, bool create)
{
	struct pg_target *t = x->t;
	struct pg_db *db;

	for (size_t i = 0; i < t->ndbs; i++)
		if (strcmp(t->dbs[i]->name, name) == 0)
			return t->dbs[i];
	if (!create)
		return NULL;
	if (t->ndbs == t->capdbs) {
		size_t cap = t->capdbs ? 2 * t->capdbs : 8;
		struct pg_db **v = realloc(t->dbs, cap * sizeof(*v));
		if (!v)
			return NULL;
		t->dbs = v;
		t->capdbs = cap;
	}
	db = calloc(1, sizeof(*db));
	if (!db || !(db->name = strdup(name))) {
		free(db);
		return NULL;
	}
	db->res = dbi_pg_res(x, name, NULL, NULL, NULL);
	db->s.t = t;
	db->s.db = db;
	db->s.fd = -1;
	t->dbs[t->ndbs++] = db;
	return db;
}

/* ---- sessions ---- */

static void watch(struct pg_thread *th, struct pg_session *s, uint32_t ev)
{
	int fd = s->conn ? PQsocket(s->conn) : -1;
	struct epoll_event e = {.events = ev, .data.ptr = s};

	if (s->ev && s->fd != fd) {
		epoll_ctl(th->ep, EPOLL_CTL_DEL, s->fd, NULL);
		s->ev = 0;
	}
	s->fd = fd;
	if (fd < 0 || s->ev == ev)
		return;
	if (epoll_ctl(th->ep, s->ev ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &e) == 0)
		s->ev = ev;
}

static void sess_close(struct pg_thread *th, struct pg_session *s)
{
	if (s->ev && s->fd >= 0)
		epoll_ctl(th->ep, EPOLL_CTL_DEL, s->fd, NULL);
	s->ev = 0;
	s->fd = -1;
	if (s->conn) {
		PQfinish(s->conn);
		th->nsessions--;
	}
	s->conn = NULL;
	s->state = SS_CLOSED;
	s->snapshot_set = false;
	s->flushing = false;
	s->nq = s->qi = 0;
}

static void notice_sink(void *arg, const char *msg)
{
	(void)arg;
	DBI_LOGD(PG_COMP, "server notice", "text=\"%.200s\"", msg);
}

static const char *sess_dbname(const struct pg_session *s)
{
	return s->db ? s->db->name : s->t->tc->maint_db;
}

static void scrape_part_done(struct pg_thread *th, struct pg_session *s, int result);

static int classify_connect_error(const char *msg)
{
	if (strstr(msg, "Connection refused") || strstr(msg, "No such file or directory") ||
	    strstr(msg, "No route to host") || strstr(msg, "Network is unreachable") ||
	    strstr(msg, "the database system is starting up") || strstr(msg, "the database system is shutting down"))
		return DBI_CIRCUIT_REFUSED;
	if (strstr(msg, "timeout") || strstr(msg, "timed out"))
		return DBI_CIRCUIT_TIMEOUT;
	return DBI_CIRCUIT_FAIL;
}

/* The session failed: close it, back off, finish its part of the scrape. */
static void sess_fail(struct pg_thread *th, struct pg_session *s, int result, const char *why)
{
	const struct pg_cfg *cfg = cfg_of(th->pg);
	char msg[200];
	bool was_connecting = s->state == SS_CONNECTING;
	bool busy = s->state == SS_BUSY || (was_connecting && s->want_scrape);

	snprintf(msg, sizeof(msg), "%s", why ? why : "");
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '"')
			*p = ' ';
	DBI_LOGW(PG_COMP, was_connecting ? "cannot connect" : "session failed", "target=%s database=%s error=\"%s\"",
	         s->t->tc->instance_id, sess_dbname(s), msg);
	if (was_connecting)
		dbi_stats_add(th->st, PGS_CONNECT_FAIL, 1);
	sess_close(th, s);
	s->backoff = s->backoff ? DBI_MIN(s->backoff * 2, cfg->reconnect_max) : cfg->reconnect_initial;
	s->retry_at = th->now + s->backoff;
	s->want_scrape = false;
	if (busy) {
		snprintf(s->err, sizeof(s->err), "%s", msg);
		scrape_part_done(th, s, result);
	}
}

static void sess_send(struct pg_thread *th, struct pg_session *s);

/* The session goes idle until its next scrape: its libpq buffers' pages go back. */
static void sess_idle_trim(struct pg_thread *th, struct pg_session *s)
{
	size_t n = dbi_pg_pqbuf_release(s->conn);

	if (n)
		dbi_stats_add(th->st, PGS_PQBUF_RELEASED, n);
}

static void sess_connected(struct pg_thread *th, struct pg_session *s)
{
	s->state = SS_IDLE;
	s->backoff = 0;
	s->conn_gen++;
	s->ver = PQserverVersion(s->conn);
	s->t->ver = s->ver;
	PQsetNoticeProcessor(s->conn, notice_sink, NULL);
	if (PQsetnonblocking(s->conn, 1) != 0 || PQenterPipelineMode(s->conn) != 1) {
		sess_fail(th, s, DBI_CIRCUIT_FAIL, PQerrorMessage(s->conn));
		return;
	}
	watch(th, s, EPOLLIN);
	s->last_used = th->now;
	if (s->want_scrape) {
		s->want_scrape = false;
		sess_send(th, s);
	} else {
		sess_idle_trim(th, s);
	}
}

static void sess_connect_poll(struct pg_thread *th, struct pg_session *s)
{
	switch (PQconnectPoll(s->conn)) {
	case PGRES_POLLING_READING:
		watch(th, s, EPOLLIN);
		break;
	case PGRES_POLLING_WRITING:
		watch(th, s, EPOLLOUT);
		break;
	case PGRES_POLLING_OK:
		sess_connected(th, s);
		break;
	default: {
		const char *e = PQerrorMessage(s->conn);
		sess_fail(th, s, classify_connect_error(e), e);
		break;
	}
	}
}

static int kv_add(const char **k, const char **v, int n, const char *key, const char *val)
{
	if (!val)
		return n;
	k[n] = key;
	v[n] = val;
	return n + 1;
}

static void sess_connect(struct pg_thread *th, struct pg_session *s)
{
	const struct pg_cfg *cfg = cfg_of(th->pg);
	const struct pg_tconf *tc = s->t->tc;
	char port[16], options[160], ctimeout[24];
	const char *k[20], *v[20];
	int n = 0;

	snprintf(port, sizeof(port), "%d", tc->port);
	snprintf(options, sizeof(options), "-c statement_timeout=%llu -c lock_timeout=%llu",
	         (unsigned long long)(cfg->statement_timeout / DBI_NSEC_PER_MSEC),
	         (unsigned long long)(cfg->lock_timeout / DBI_NSEC_PER_MSEC));
	snprintf(ctimeout, sizeof(ctimeout), "%llu",
	         (unsigned long long)((cfg->connect_timeout + DBI_NSEC_PER_SEC - 1) / DBI_NSEC_PER_SEC));
	n = kv_add(k, v, n, "host", tc->host);
	n = kv_add(k, v, n, "port", port);
	n = kv_add(k, v, n, "dbname", sess_dbname(s));
	n = kv_add(k, v, n, "user", tc->user);
	n = kv_add(k, v, n, "password", tc->password);
	n = kv_add(k, v, n, "application_name", cfg->application_name);
	n = kv_add(k, v, n, "options", options);
	n = kv_add(k, v, n, "connect_timeout", ctimeout);
	n = kv_add(k, v, n, "sslmode", tc->unix_socket ? "disable" : tc->sslmode);
	n = kv_add(k, v, n, "sslrootcert", tc->sslrootcert);
	n = kv_add(k, v, n, "sslcert", tc->sslcert);
	n = kv_add(k, v, n, "sslkey", tc->sslkey);
	k[n] = v[n] = NULL;

	s->conn = PQconnectStartParams(k, v, 0);
	dbi_stats_add(th->st, PGS_CONNECTS, 1);
	if (!s->conn) {
		sess_fail(th, s, DBI_CIRCUIT_FAIL, "out of memory");
		return;
	}
	th->nsessions++;
	s->state = SS_CONNECTING;
	s->deadline = th->now + cfg->connect_timeout;
	scan_by(th, s->deadline);
	if (PQstatus(s->conn) == CONNECTION_BAD) {
		const char *e = PQerrorMessage(s->conn);
		sess_fail(th, s, classify_connect_error(e), e);
		return;
	}
	watch(th, s, EPOLLOUT);
}

/* ---- which groups run ---- */

static bool group_runs(struct pg_thread *th, struct pg_target *t, int g)
{
	struct dbi_pg *pg = th->pg;

	if (g == PG_G_SERVER)
		return true;
	if (!dbi_pg_group_on(pg, g) || !dbi_pg_group_supported(g, t->ver))
		return false;
	if (t->goff[g] && th->now < t->goff_until[g])
		return false;
	if (g == PG_G_QUERY_TIME && !t->have_pgss)
		return false;
	if (g == PG_G_STATEMENTS && (!t->have_pgss || t->pgss_broken))
		return false;
	if (t->decision == DBI_CIRCUIT_PROBE)
		return false; /* half-open: the server group only */
	return true;
}

/* Log once when a configured group cannot run on this target, and why. */
static void group_off_notes(struct pg_thread *th, struct pg_target *t)
{
	struct dbi_pg *pg = th->pg;
	for (int g = PG_G_DATABASE; g < PG_G_COUNT; g++) {
		if (!dbi_pg_group_on(pg, g))
			continue;
		int reason = OFF_NO;
		if (!dbi_pg_group_supported(g, t->ver))
			reason = OFF_VERSION;
		else if ((g == PG_G_QUERY_TIME || g == PG_G_STATEMENTS) && !t->have_pgss)
			reason = OFF_EXTENSION;
		if (reason == OFF_NO) {
			if (t->goff[g] == OFF_VERSION || t->goff[g] == OFF_EXTENSION)
				t->goff[g] = OFF_NO;
			continue;
		}
		if (t->goff[g] == reason)
			continue;
		t->goff[g] = (uint8_t)reason;
		t->goff_until[g] = UINT64_MAX;
		if (reason == OFF_VERSION)
			DBI_LOGI(PG_COMP, "metric group off: not available in this PostgreSQL version",
			         "target=%s group=%s server_version_num=%d", t->tc->instance_id, dbi_pg_group_names[g],
			         t->ver);
		else
			DBI_LOGW(PG_COMP,
			         "metric group off: extension pg_stat_statements is not installed (CREATE EXTENSION "
			         "pg_stat_statements, with it in shared_preload_libraries); the other groups go on",
			         "target=%s group=%s database=%s", t->tc->instance_id, dbi_pg_group_names[g],
			         t->tc->maint_db);
	}
}

static bool any_per_db_group(struct pg_thread *th, struct pg_target *t)
{
	for (int g = PG_G_FIRST_PER_DB; g < PG_G_COUNT; g++)
		if (group_runs(th, t, g))
			return true;
	return false;
}

/* ---- pipelines ---- */

static int add_q(struct pg_session *s, const char *sql, int kind, int group, int sub)
{
	if (s->nq >= PG_MAX_Q)
		return DBI_ERR;
	if (!PQsendQueryParams(s->conn, sql, 0, NULL, NULL, NULL, NULL, 0))
		return DBI_ERR;
	s->q[s->nq++] = (struct pg_query){.kind = (uint8_t)kind, .group = (uint8_t)group, .sub = (uint8_t)sub};
	return DBI_OK;
}

static int add_pgss(struct pg_session *s, struct pg_target *t, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		const struct dbi_pgss_query *q = &t->pq[i];
		if (s->nq >= PG_MAX_Q ||
		    !PQsendQueryParams(s->conn, q->sql, q->nparams, NULL, q->nparams ? q->params : NULL, NULL, NULL,
		                       q->result_binary))
			return DBI_ERR;
		s->q[s->nq++] = (struct pg_query){.kind = Q_HOOK, .group = PG_G_STATEMENTS, .sub = (uint8_t)i};
	}
	return DBI_OK;
}

/* Start the statements group's scrape: its first round of queries goes into this pipeline. */
static int pgss_start(struct pg_thread *th, struct pg_session *s)
{
	struct pg_target *t = s->t;
	const struct pg_cfg *cfg = cfg_of(th->pg);

	if (!t->pgss) {
		struct dbi_errbuf err;
		if (!th->qfp)
			th->qfp = dbi_qfp_cache_create(4u << 20);
		if (!th->pgss_text)
			th->pgss_text = malloc(PG_PGSS_SAMPLE_MAX);
		if (!th->pgss_pool)
			th->pgss_pool = dbi_pgss_pool_create();
		if (!th->qfp || !th->pgss_text || !th->pgss_pool) {
			t->pgss_broken = true;
			return DBI_OK;
		}
		th->pgss_sink = (struct dbi_pgss_sink){
		        .ctx = th, .point = pgss_point, .reserve = pgss_reserve, .commit = pgss_commit};
		struct dbi_pgss_config pc = {.reg = th->pg->reg,
		                             .resource = t->res_server,
		                             .scope = th->pg->scope,
		                             .sink = &th->pgss_sink,
		                             .limit = (uint32_t)cfg->stmt_limit,
		                             .max_statements = (uint32_t)cfg->stmt_max,
		                             .full_read_every = (uint32_t)cfg->stmt_full_every,
		                             .sample_max = PG_PGSS_SAMPLE_MAX,
		                             .cache = th->qfp,
		                             .tag = ++th->next_tag,
		                             .text_buf = th->pgss_text,
		                             .text_buf_len = PG_PGSS_SAMPLE_MAX,
		                             .pool = th->pgss_pool};
		dbi_err_clear(&err);
		t->pgss = dbi_pgss_create(&pc, &err);
		if (!t->pgss) {
			t->pgss_broken = true;
			DBI_LOGE(PG_COMP, "statements group off: cannot create its state", "target=%s error=\"%s\"",
			         t->tc->instance_id, err.msg);
			return DBI_OK;
		}
		t->pgss_tag = pc.tag;
	}
	if (t->pgss_conn != s->conn_gen) {
		dbi_pgss_connected(t->pgss, s->ver);
		dbi_pgss_set_extversion(t->pgss, t->pgss_extversion);
		t->pgss_conn = s->conn_gen;
	}
	dbi_pgss_begin(t->pgss, t->scrape_wall);
	unsigned n = dbi_pgss_queries(t->pgss, t->pq, DBI_PGSS_MAX_QUERIES);
	t->pgss_active = n > 0;
	return add_pgss(s, t, n);
}

static int add_group(struct pg_session *s, int g)
{
	for (int sub = 0;; sub++) {
		const char *sql = dbi_pg_group_sql(g, sub, s->ver);
		if (!sql)
			return DBI_OK;
		if (add_q(s, sql, Q_GROUP, g, sub) != DBI_OK)
			return DBI_ERR;
	}
}

static void sctx_init(struct pg_thread *th, struct pg_session *s, struct pg_sctx *x)
{
	*x = (struct pg_sctx){.pg = th->pg,
	                      .th = th,
	                      .t = s->t,
	                      .s = s,
	                      .db = s->db,
	                      .dbname = sess_dbname(s),
	                      .now = s->t->scrape_wall};
	if (!s->db)
		x->db = dbi_pg_db_get(x, x->dbname, false);
}

static void sess_send(struct pg_thread *th, struct pg_session *s)
{
	const struct pg_cfg *cfg = cfg_of(th->pg);
	struct pg_target *t = s->t;
	PGTransactionStatusType ts = PQtransactionStatus(s->conn);
	int rc = DBI_OK;

	s->nq = s->qi = 0;
	s->got = false;
	s->result = DBI_CIRCUIT_OK;
	s->sticky_err = false;
	s->err[0] = '\0';
	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
		rc |= add_q(s, "ROLLBACK", Q_CTRL, 0, 0);
	if (!s->snapshot_set && s->ver >= 150000)
		rc |= add_q(s, "SET stats_fetch_consistency = snapshot", Q_CTRL, 0, 1);
	rc |= add_q(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", Q_CTRL, 0, 2);
	if (!s->db) {
		for (int g = 0; g < PG_G_FIRST_PER_DB && rc == DBI_OK; g++) {
			if (!group_runs(th, t, g))
				continue;
			if (g == PG_G_STATEMENTS) {
				rc |= pgss_start(th, s);
				continue;
			}
			rc |= add_group(s, g);
		}
	}
	/* per-database groups: on the database's own session, or here for the main session's database */
	bool here = s->db || dbi_pg_db_wanted(t->tc, t->tc->maint_db);
	if (here && t->decision == DBI_CIRCUIT_ALLOW)
		for (int g = PG_G_FIRST_PER_DB; g < PG_G_COUNT && rc == DBI_OK; g++)
			if (group_runs(th, t, g))
				rc |= add_group(s, g);
	rc |= add_q(s, "COMMIT", Q_CTRL, 0, 3);
	if (rc != DBI_OK || !PQpipelineSync(s->conn)) {
		sess_fail(th, s, DBI_CIRCUIT_FAIL, PQerrorMessage(s->conn));
		return;
	}
	dbi_stats_add(th->st, PGS_QUERIES, (uint64_t)s->nq);
	s->state = SS_BUSY;
	s->sent_ns = th->now;
	/* a statement may take statement_timeout; past twice that (or the interval) the server is hung */
	s->deadline = th->now + DBI_MAX(2 * cfg->statement_timeout, t->tc->interval) + DBI_NSEC_PER_SEC;
	scan_by(th, s->deadline);
	int f = PQflush(s->conn);
	if (f < 0) {
		sess_fail(th, s, DBI_CIRCUIT_FAIL, PQerrorMessage(s->conn));
		return;
	}
	s->flushing = f == 1;
	watch(th, s, s->flushing ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* A further round of the statements group alone (query texts, names): no snapshot needed. */
static void sess_send_pgss(struct pg_thread *th, struct pg_session *s, unsigned n)
{
	const struct pg_cfg *cfg = cfg_of(th->pg);

	s->nq = s->qi = 0;
	s->got = false;
	if (add_pgss(s, s->t, n) != DBI_OK || !PQpipelineSync(s->conn)) {
		s->t->pgss_active = false;
		sess_fail(th, s, DBI_CIRCUIT_FAIL, PQerrorMessage(s->conn));
		return;
	}
	dbi_stats_add(th->st, PGS_QUERIES, n);
	s->state = SS_BUSY;
	s->deadline = th->now + 2 * cfg->statement_timeout + DBI_NSEC_PER_SEC;
	scan_by(th, s->deadline);
	int f = PQflush(s->conn);
	if (f < 0) {
		s->t->pgss_active = false;
		sess_fail(th, s, DBI_CIRCUIT_FAIL, PQerrorMessage(s->conn));
		return;
	}
	s->flushing = f == 1;
	watch(th, s, s->flushing ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static int sqlstate_reason(const char *st, int *off)
{
	*off = OFF_NO;
	if (!st)
		return ER_QUERY;
	if (strcmp(st, "42501") == 0) {
		*off = OFF_PRIVILEGE;
		return ER_PRIVILEGE;
	}
	if (strcmp(st, "42P01") == 0 || strcmp(st, "42883") == 0 || strcmp(st, "42703") == 0 ||
	    strcmp(st, "55000") == 0 || strcmp(st, "0A000") == 0 || strcmp(st, "58P01") == 0) {
		*off = OFF_MISSING;
		return ER_MISSING;
	}
	if (strcmp(st, "57014") == 0 || strcmp(st, "55P03") == 0)
		return ER_TIMEOUT;
	return ER_QUERY;
}

static void worsen(struct pg_session *s, int result, const char *msg)
{
	if (result > s->result) {
		s->result = result;
		snprintf(s->err, sizeof(s->err), "%s", msg ? msg : "");
		for (char *p = s->err; *p; p++)
			if (*p == '\n' || *p == '"')
				*p = ' ';
	}
}

static void query_error(struct pg_thread *th, struct pg_session *s, struct pg_query *q, const PGresult *r)
{
	struct pg_target *t = s->t;
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	int off;
	int reason = sqlstate_reason(state, &off);

	q->failed = 1;
	if (q->kind == Q_CTRL) {
		worsen(s, reason == ER_TIMEOUT ? DBI_CIRCUIT_TIMEOUT : DBI_CIRCUIT_FAIL, msg);
		return;
	}
	dbi_stats_add(th->st, PGS_GROUP_ERRORS, 1);
	t->gerrors[q->group][reason]++;
	if (off != OFF_NO) {
		/* not the server's fault: turn the group off here, keep the rest going */
		if (t->goff[q->group] != off)
			DBI_LOGW(PG_COMP,
			         off == OFF_PRIVILEGE ? "metric group off: permission denied (GRANT pg_monitor TO the "
			                                "collector's role); "
			                                "the other groups go on"
			                              : "metric group off: a view or function it reads is missing; the "
			                                "other groups go on",
			         "target=%s database=%s group=%s sqlstate=%s error=\"%.160s\"", t->tc->instance_id,
			         sess_dbname(s), dbi_pg_group_names[q->group], state ? state : "", msg ? msg : "");
		t->goff[q->group] = (uint8_t)off;
		t->goff_until[q->group] = th->now + PG_GROUP_RETRY_NS;
		s->sticky_err = true;
		return;
	}
	if (reason == ER_TIMEOUT && strcmp(state, "55P03") == 0) {
		/* lock_timeout: a relation got locked between our lock check and the size; next time */
		DBI_LOGI(PG_COMP, "lock wait gave up (lock_timeout); the group is skipped this interval",
		         "target=%s database=%s group=%s", t->tc->instance_id, sess_dbname(s),
		         dbi_pg_group_names[q->group]);
		return;
	}
	DBI_LOGW(PG_COMP, "query failed", "target=%s database=%s group=%s sqlstate=%s error=\"%.160s\"",
	         t->tc->instance_id, sess_dbname(s), dbi_pg_group_names[q->group], state ? state : "", msg ? msg : "");
	worsen(s, reason == ER_TIMEOUT ? DBI_CIRCUIT_TIMEOUT : DBI_CIRCUIT_FAIL, msg);
}

static void handle_result(struct pg_thread *th, struct pg_session *s, const PGresult *r)
{
	struct pg_query *q = &s->q[s->qi];
	ExecStatusType st = PQresultStatus(r);
	struct pg_sctx x;

	if (q->kind == Q_HOOK) {
		/* the statements module judges its own results (errors included) */
		if (s->t->pgss && dbi_pgss_result(s->t->pgss, q->sub, r) != DBI_OK)
			q->failed = 1;
		return;
	}
	if (st == PGRES_PIPELINE_ABORTED) {
		q->failed = 1;
		return;
	}
	if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
		query_error(th, s, q, r);
		return;
	}
	if (q->kind == Q_CTRL) {
		if (q->sub == 1 && st == PGRES_COMMAND_OK)
			s->snapshot_set = true;
		return;
	}
	sctx_init(th, s, &x);
	if (st == PGRES_TUPLES_OK) {
		dbi_pg_group_result(&x, q->group, q->sub, r);
		if (q->group == PG_G_SERVER && q->sub == 0)
			group_off_notes(th, s->t);
	}
}

static void sess_send_pgss(struct pg_thread *th, struct pg_session *s, unsigned n);

/* After a pipeline with statements queries: next round, emit, or turn the group off. */
static bool pgss_continue(struct pg_thread *th, struct pg_session *s)
{
	struct pg_target *t = s->t;
	const char *msg = NULL;
	enum dbi_pgss_status st = dbi_pgss_status(t->pgss, &msg);

	if (st == DBI_PGSS_OK) {
		unsigned n = dbi_pgss_queries(t->pgss, t->pq, DBI_PGSS_MAX_QUERIES);
		if (n > 0) {
			sess_send_pgss(th, s, n);
			return true;
		}
		dbi_pgss_emit(t->pgss);
		const struct dbi_pgss_stats *ps = dbi_pgss_get_stats(t->pgss);
		dbi_stats_add(th->st, PGS_STMT_READS, ps->scrapes - t->pgss_reads);
		dbi_stats_add(th->st, PGS_STMT_READS_CHANGED, ps->changed_reads - t->pgss_changed);
		dbi_stats_add(th->st, PGS_STMT_ROWS, ps->rows - t->pgss_rows);
		t->pgss_reads = ps->scrapes;
		t->pgss_changed = ps->changed_reads;
		t->pgss_rows = ps->rows;
	} else if (dbi_pgss_status_disables(st)) {
		int off = st == DBI_PGSS_PRIVILEGE ? OFF_PRIVILEGE : OFF_MISSING;
		if (t->goff[PG_G_STATEMENTS] != off)
			DBI_LOGW(PG_COMP,
			         st == DBI_PGSS_PRIVILEGE
			                 ? "metric group off: permission denied (GRANT pg_monitor TO the collector's "
			                   "role); "
			                   "the other groups go on"
			                 : "metric group off: pg_stat_statements is not usable (CREATE EXTENSION "
			                   "pg_stat_statements, with it in shared_preload_libraries); the other groups "
			                   "go on",
			         "target=%s group=statements status=%s error=\"%.160s\"", t->tc->instance_id,
			         dbi_pgss_status_name(st), msg ? msg : "");
		t->goff[PG_G_STATEMENTS] = (uint8_t)off;
		t->goff_until[PG_G_STATEMENTS] = th->now + PG_GROUP_RETRY_NS;
		t->gerrors[PG_G_STATEMENTS][off == OFF_PRIVILEGE ? ER_PRIVILEGE : ER_MISSING]++;
	} else {
		t->gerrors[PG_G_STATEMENTS][ER_QUERY]++;
		dbi_stats_add(th->st, PGS_GROUP_ERRORS, 1);
	}
	t->pgss_active = false;
	return false;
}

static void pipeline_done(struct pg_thread *th, struct pg_session *s)
{
	struct pg_target *t = s->t;

	s->state = SS_IDLE;
	s->last_used = th->now;
	/* a group turned itself off and aborted the groups after it: run those now */
	if (s->sticky_err && !s->retried && s->result == DBI_CIRCUIT_OK) {
		bool aborted = false;
		for (int i = 0; i < s->nq; i++)
			aborted |= s->q[i].failed && s->q[i].kind != Q_CTRL && !t->goff[s->q[i].group];
		if (aborted) {
			s->retried = true;
			sess_send(th, s);
			return;
		}
	}
	if (!s->db && t->pgss_active && pgss_continue(th, s))
		return;
	sess_idle_trim(th, s);
	scrape_part_done(th, s, s->result);
}

static void sess_read(struct pg_thread *th, struct pg_session *s)
{
	if (!PQconsumeInput(s->conn)) {
		sess_fail(th, s, DBI_CIRCUIT_FAIL, PQerrorMessage(s->conn));
		return;
	}
	if (s->state != SS_BUSY) {
		/* idle: the server may have closed the session (restart, terminate) */
		if (PQstatus(s->conn) == CONNECTION_BAD)
			sess_close(th, s);
		return;
	}
	while (!PQisBusy(s->conn)) {
		PGresult *r = PQgetResult(s->conn);
		if (!r) {
			if (s->got) {
				s->got = false;
				s->qi++;
				continue;
			}
			break;
		}
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			pipeline_done(th, s);
			return;
		}
		if (s->qi < s->nq)
			handle_result(th, s, r);
		s->got = true;
		PQclear(r);
	}
	if (PQstatus(s->conn) == CONNECTION_BAD)
		sess_fail(th, s, DBI_CIRCUIT_FAIL, PQerrorMessage(s->conn));
}

static void sess_event(struct pg_thread *th, struct pg_session *s, uint32_t ev)
{
	if (s->state == SS_CONNECTING) {
		sess_connect_poll(th, s);
		return;
	}
	if (!s->conn)
		return;
	if (s->state == SS_BUSY && s->flushing && (ev & EPOLLOUT)) {
		int f = PQflush(s->conn);
		if (f < 0) {
			sess_fail(th, s, DBI_CIRCUIT_FAIL, PQerrorMessage(s->conn));
			return;
		}
		s->flushing = f == 1;
		watch(th, s, s->flushing ? EPOLLIN | EPOLLOUT : EPOLLIN);
	}
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		sess_read(th, s);
}

/* ---- scrapes ---- */

/* Start (or queue) a scrape on a session; false when it cannot run now. */
static bool sess_scrape(struct pg_thread *th, struct pg_session *s)
{
	s->retried = false;
	switch (s->state) {
	case SS_IDLE:
		sess_send(th, s);
		return true;
	case SS_CONNECTING:
		s->want_scrape = true;
		return true;
	case SS_CLOSED:
		if (th->now < s->retry_at)
			return false;
		s->want_scrape = true;
		sess_connect(th, s);
		return true;
	default:
		return false;
	}
}

static void emit_self(struct pg_thread *th, struct pg_target *t, uint64_t dur)
{
	struct pg_sctx x = {.pg = th->pg, .th = th, .t = t, .now = t->scrape_wall};
	static const char *const reasons[] = {"query", "timeout", "privilege", "missing"};

	dbi_pg_emit(&x, PGM_SELF_UP, t->res_server, th->pg->empty_attrs, t->up, 0);
	dbi_pg_emit(&x, PGM_SELF_SCRAPE_DURATION, t->res_server, th->pg->empty_attrs, (double)dur / 1e9, 0);
	for (int g = PG_G_DATABASE; g < PG_G_COUNT; g++) {
		if (!dbi_pg_group_on(th->pg, g))
			continue;
		const char *kv[2] = {"group", dbi_pg_group_names[g]};
		bool on = t->known && !t->goff[g] && dbi_pg_group_supported(g, t->ver) &&
		          ((g != PG_G_QUERY_TIME && g != PG_G_STATEMENTS) || t->have_pgss) &&
		          (g != PG_G_STATEMENTS || !t->pgss_broken);
		if (t->goff[g] && th->now >= t->goff_until[g])
			on = true; /* will be tried again */
		if (t->known)
			dbi_pg_emit(&x, PGM_SELF_GROUP_ENABLED, t->res_server, dbi_pg_attrs(&x, 1, kv), on, 0);
		for (int rsn = 0; rsn < 4; rsn++) {
			if (!t->gerrors[g][rsn])
				continue;
			const char *kv2[4] = {"group", dbi_pg_group_names[g], "reason", reasons[rsn]};
			dbi_pg_emit(&x, PGM_SELF_SCRAPE_ERRORS, t->res_server, dbi_pg_attrs(&x, 2, kv2),
			            (double)t->gerrors[g][rsn], th->pg->start_wall);
		}
	}
}

static void target_done(struct pg_thread *th, struct pg_target *t)
{
	uint64_t dur = th->now - t->scrape_mono;
	int result = t->worst;
	const struct pg_cfg *cfg = cfg_of(th->pg);

	if (result == DBI_CIRCUIT_OK && dur > cfg->statement_timeout)
		result = DBI_CIRCUIT_TIMEOUT; /* slower than a statement may be: a slow call */
	t->scraping = false;
	t->up = t->worst == DBI_CIRCUIT_OK;
	dbi_stats_add(th->st, PGS_SCRAPES, 1);
	dbi_stats_add(th->st, PGS_SCRAPE_NS, dur);
	if (result != DBI_CIRCUIT_OK)
		dbi_stats_add(th->st, PGS_SCRAPE_FAIL, 1);
	dbi_stats_add(th->st, PGS_LOCKED_SKIPPED, t->relations_skipped);
	t->relations_skipped = 0;
	dbi_pg_breaker_record(&t->breaker, result, dur, dbi_wall_ns(), t->worst_err);
	emit_self(th, t, dur);
	dbi_rctx_flush(th->rctx);
}

static void start_db_scrapes(struct pg_thread *th, struct pg_target *t)
{
	for (size_t i = 0; i < t->ndbs; i++) {
		struct pg_db *db = t->dbs[i];
		if (!db->seen || !db->connectable || strcmp(db->name, t->tc->maint_db) == 0)
			continue;
		if (sess_scrape(th, &db->s))
			t->inflight++;
		else
			dbi_stats_add(th->st, PGS_DROP_BACKOFF, 1);
	}
}

static void drop_unseen_dbs(struct pg_thread *th, struct pg_target *t, bool keep_sessions)
{
	size_t o = 0;
	for (size_t i = 0; i < t->ndbs; i++) {
		struct pg_db *db = t->dbs[i];
		if (db->seen) {
			if (!keep_sessions && db->s.state != SS_BUSY)
				sess_close(th, &db->s);
			t->dbs[o++] = db;
			continue;
		}
		sess_close(th, &db->s);
		/* an event for its session may still be in this batch: free it after the batch */
		if (th->ngrave == th->capgrave) {
			size_t cap = th->capgrave ? 2 * th->capgrave : 16;
			struct pg_db **g = realloc(th->grave, cap * sizeof(*g));
			if (!g) {
				t->dbs[o++] = db; /* keep it; dropped next time */
				continue;
			}
			th->grave = g;
			th->capgrave = cap;
		}
		th->grave[th->ngrave++] = db;
	}
	t->ndbs = o;
}

static void scrape_part_done(struct pg_thread *th, struct pg_session *s, int result)
{
	struct pg_target *t = s->t;

	if (!t->scraping)
		return;
	if (s->db && result == DBI_CIRCUIT_FAIL) {
		/* one database refused (pg_hba, too many clients, dropped): its groups' error, not the server's */
		t->gerrors[PG_G_TABLES][ER_QUERY]++;
		result = DBI_CIRCUIT_OK;
	}
	if (result > t->worst) {
		t->worst = result;
		snprintf(t->worst_err, sizeof(t->worst_err), "%s", s->err);
	}
	if (!s->db && result == DBI_CIRCUIT_OK && t->decision == DBI_CIRCUIT_ALLOW) {
		bool per_db = any_per_db_group(th, t);
		drop_unseen_dbs(th, t, per_db);
		if (per_db)
			start_db_scrapes(th, t);
	}
	if (--t->inflight <= 0)
		target_done(th, t);
}

/* The circuit's own series: every interval, also while it is open. */
static void emit_circuit(struct pg_thread *th, struct pg_target *t, uint64_t wall)
{
	struct dbi_point p[3];
	uint64_t routes[3];
	unsigned n = dbi_pg_breaker_points(&t->breaker, wall, p, routes);
	for (unsigned i = 0; i < n; i++) {
		if (dbi_rctx_emit_point(th->rctx, &p[i], routes[i]) != DBI_OK)
			dbi_stats_add(th->st, PGS_DROP_RING_FULL, 1);
		else
			dbi_stats_add(th->st, PGS_POINTS, 1);
	}
}

static void scrape_start(struct pg_thread *th, struct pg_target *t)
{
	uint64_t interval = t->tc->interval;

	/* the next slot keeps the cadence; slots already past are skipped and counted */
	t->next_due += interval;
	while (t->next_due <= th->now) {
		t->next_due += interval;
		dbi_stats_add(th->st, PGS_DROP_OVERRUN, 1);
	}
	if (t->scraping) {
		dbi_stats_add(th->st, PGS_DROP_OVERRUN, 1);
		return;
	}
	uint64_t wall = dbi_wall_ns();
	t->decision = dbi_pg_breaker_allow(&t->breaker, wall);
	emit_circuit(th, t, wall);
	if (t->decision == DBI_CIRCUIT_DENY) {
		/* open: no SQL, no connection; the sessions are closed until a probe is due */
		dbi_stats_add(th->st, PGS_DROP_CIRCUIT, 1);
		sess_close(th, &t->main);
		for (size_t i = 0; i < t->ndbs; i++)
			sess_close(th, &t->dbs[i]->s);
		return;
	}
	t->scraping = true;
	t->scrape_mono = th->now;
	t->scrape_wall = dbi_wall_ns();
	t->worst = DBI_CIRCUIT_OK;
	t->worst_err[0] = '\0';
	t->inflight = 1;
	if (!sess_scrape(th, &t->main)) {
		/* backing off after a failed connection: this interval is reported down */
		dbi_stats_add(th->st, PGS_DROP_BACKOFF, 1);
		t->worst = DBI_CIRCUIT_FAIL;
		snprintf(t->worst_err, sizeof(t->worst_err), "reconnect backoff");
		t->inflight = 0;
		t->scraping = false;
		t->up = 0;
		struct pg_sctx x = {.pg = th->pg, .th = th, .t = t, .now = t->scrape_wall};
		dbi_pg_emit(&x, PGM_SELF_UP, t->res_server, th->pg->empty_attrs, 0, 0);
	}
}

static void sess_check_deadline(struct pg_thread *th, struct pg_session *s, uint64_t idle_timeout, uint64_t *next)
{
	if (s->state == SS_CONNECTING || s->state == SS_BUSY) {
		if (th->now >= s->deadline) {
			sess_fail(th, s, DBI_CIRCUIT_TIMEOUT,
			          s->state == SS_CONNECTING ? "connect timeout" : "no answer before the deadline");
			return;
		}
		*next = DBI_MIN(*next, s->deadline);
	} else if (s->state == SS_IDLE && s->db && idle_timeout && th->now - s->last_used >= idle_timeout) {
		sess_close(th, s);
	}
}

/* ---- targets ---- */

static struct pg_target *target_new(struct pg_thread *th, const struct pg_tconf *tc)
{
	const struct pg_cfg *cfg = cfg_of(th->pg);
	struct pg_target *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->tc = tc;
	t->th = th;
	t->main.t = t;
	t->main.fd = -1;
	t->res_server = resource(th->pg->reg, tc, NULL, NULL, NULL, NULL);
	t->start_ns = th->pg->start_wall;
	dbi_pg_breaker_init(&t->breaker, th->pg, tc->instance_id, t->res_server);
	/* a fixed phase from the target's identity spreads a fleet over the interval */
	double phase = (double)(dbi_mix64(tc->key_hash) >> 11) / 9007199254740992.0;
	t->next_due = th->now + cfg->initial_delay + (uint64_t)(phase * cfg->jitter * (double)tc->interval);
	return t;
}

static void target_free(struct pg_thread *th, struct pg_target *t)
{
	sess_close(th, &t->main);
	for (size_t i = 0; i < t->ndbs; i++) {
		sess_close(th, &t->dbs[i]->s);
		free(t->dbs[i]->name);
		free(t->dbs[i]);
	}
	free(t->dbs);
	if (t->pgss) {
		dbi_pgss_release(t->pgss);
		dbi_qfp_cache_forget(th->qfp, t->pgss_tag);
	}
	free(t);
}

/* Pick up a newly published target set: keep unchanged targets, rebuild changed ones. */
static void sync_targets(struct pg_thread *th)
{
	struct dbi_pg *pg = th->pg;
	struct pg_tset *ts = atomic_load_explicit(&pg->tset, memory_order_acquire);
	struct pg_target **nv, **nd;
	size_t nn = 0;

	if (!ts || ts->gen == th->gen)
		return;
	nv = calloc(ts->n ? ts->n : 1, sizeof(*nv));
	nd = calloc(ts->n ? ts->n : 1, sizeof(*nd));
	if (!nv || !nd) {
		free(nv);
		free(nd);
		return; /* try again next loop */
	}
	for (size_t i = 0; i < ts->n; i++) {
		const struct pg_tconf *tc = &ts->v[i];
		struct pg_target *t = NULL;
		if (tc->key_hash % pg->nthreads != th->me)
			continue;
		for (size_t j = 0; j < th->ntg && !t; j++)
			if (th->tg[j] && th->tg[j]->tc->settings_hash == tc->settings_hash &&
			    strcmp(th->tg[j]->tc->key, tc->key) == 0) {
				t = th->tg[j];
				th->tg[j] = NULL;
				t->tc = tc;
			}
		if (!t && !(t = target_new(th, tc)))
			continue;
		nv[nn++] = t;
	}
	for (size_t j = 0; j < th->ntg; j++)
		if (th->tg[j]) {
			DBI_LOGI(PG_COMP, "target removed or changed", "target=%s", th->tg[j]->tc->instance_id);
			target_free(th, th->tg[j]);
		}
	free(th->tg);
	free(th->due);
	th->tg = nv;
	th->due = nd;
	th->ntg = nn;
	due_build(th);
	th->gen = ts->gen;
	atomic_store_explicit(&pg->seen_gen[th->me], ts->gen, memory_order_release);
	dbi_stats_add(th->st, PGS_TSET_SWAPS, 1);
	dbi_stats_set(th->st, PGS_TARGETS, nn);
	th->rescan = true;
}

int dbi_pg_run(struct dbi_pg *pg, struct dbi_rctx *rctx)
{
	struct pg_thread th = {.pg = pg, .rctx = rctx, .st = dbi_rctx_stats(rctx), .me = dbi_rctx_thread(rctx)};
	struct epoll_event evs[64];
	struct epoll_event we = {.events = EPOLLIN, .data.ptr = NULL};

	th.ep = epoll_create1(EPOLL_CLOEXEC);
	if (th.ep < 0) {
		DBI_LOGE(PG_COMP, "epoll_create1 failed", "errno=%d", errno);
		return DBI_ERR;
	}
	epoll_ctl(th.ep, EPOLL_CTL_ADD, dbi_rctx_wake_fd(rctx), &we);
	th.now = dbi_mono_ns();
	while (!dbi_rctx_stopping(rctx)) {
		const struct pg_cfg *cfg = cfg_of(pg);
		th.now = dbi_mono_ns();
		if (th.me == 0 && th.now >= th.file_check) {
			dbi_pg_check_targets_file(pg);
			if (pg->circuits)
				dbi_circuit_table_sync(pg->circuits, dbi_wall_ns());
			th.file_check = th.now + DBI_NSEC_PER_SEC;
		}
		sync_targets(&th);
		/* scrape_start moves next_due on by at least one interval: each target once */
		while (th.ntg && th.now >= th.due[0]->next_due) {
			scrape_start(&th, th.due[0]);
			due_down(&th, 0);
		}
		if (th.rescan || th.now >= th.next_scan) {
			uint64_t next = th.now + PG_TICK_NS;
			th.rescan = false;
			th.next_scan = UINT64_MAX; /* deadlines set during the pass lower it */
			for (size_t i = 0; i < th.ntg; i++) {
				struct pg_target *t = th.tg[i];
				sess_check_deadline(&th, &t->main, 0, &next);
				for (size_t d = 0; d < t->ndbs; d++)
					sess_check_deadline(&th, &t->dbs[d]->s, cfg->idle_timeout, &next);
			}
			th.next_scan = DBI_MIN(th.next_scan, next);
		}
		th.now = dbi_mono_ns();
		uint64_t next = th.ntg ? DBI_MIN(th.next_scan, th.due[0]->next_due) : th.next_scan;
		int timeout = next > th.now ? (int)((next - th.now + DBI_NSEC_PER_MSEC - 1) / DBI_NSEC_PER_MSEC) : 0;
		int n = epoll_wait(th.ep, evs, (int)DBI_ARRAY_LEN(evs), timeout);
		th.now = dbi_mono_ns();
		for (int i = 0; i < n; i++) {
			struct pg_session *s = evs[i].data.ptr;
			if (s)
				sess_event(&th, s, evs[i].events);
		}
		for (size_t i = 0; i < th.ngrave; i++) {
			free(th.grave[i]->name);
			free(th.grave[i]);
		}
		th.ngrave = 0;
		dbi_stats_set(th.st, PGS_SESSIONS, (uint64_t)th.nsessions);
		dbi_rctx_flush(rctx);
	}
	for (size_t i = 0; i < th.ngrave; i++) {
		free(th.grave[i]->name);
		free(th.grave[i]);
	}
	free(th.grave);
	for (size_t i = 0; i < th.ntg; i++)
		target_free(&th, th.tg[i]);
	free(th.tg);
	free(th.due);
	if (th.qfp) /* after the targets: each forgets its entries in it */
		dbi_qfp_cache_release(th.qfp);
	free(th.pgss_text);
	dbi_pgss_pool_release(th.pgss_pool); /* after the targets: they hand their sets back */
	atomic_store_explicit(&pg->seen_gen[th.me], UINT64_MAX, memory_order_release);
	close(th.ep);
	dbi_rctx_flush(rctx);
	return DBI_OK;
}
