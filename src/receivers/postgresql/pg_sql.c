/*
 * pg_sql.c — what the `postgresql` receiver asks PostgreSQL, and how each answer becomes
 * points. One function picks the SQL of a group's statement for the server's
 * server_version_num (12 to 17: PG 17 moved checkpoints to pg_stat_checkpointer, PG 14
 * added pg_stat_wal, PG 13 renamed pg_stat_statements' times and added wal_status);
 * one function maps each group's rows to metrics.
 *
 * Cost rules: server-wide views are read once per target on its main session (not
 * once per database); per-database views only on the database's own session. Sizes use
 * pg_relation_size, which takes an AccessShareLock: relations on which a granted
 * AccessExclusiveLock is seen are not sized (their size is absent, never waited for),
 * lock_timeout being the backstop for a lock taken in between. Every statement is
 * constant text, so the server's plan cache and pg_stat_statements see one entry each.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

#define V14 140000
#define V13 130000
#define V17 170000

/* relations in this database under a granted AccessExclusiveLock (seen once per statement) */
#define AEL_CTE                                                                                                        \
	"WITH ael AS MATERIALIZED (SELECT relation FROM pg_locks WHERE locktype = 'relation' AND "                     \
	"mode = 'AccessExclusiveLock' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = "        \
	"current_database())) "

const char *dbi_pg_group_sql(int group, int sub, int ver)
{
	switch (group) {
	case PG_G_SERVER:
		if (sub == 0)
			return "SELECT current_setting('max_connections')::int, "
			       "extract(epoch FROM pg_postmaster_start_time())::float8, pg_is_in_recovery(), "
			       "(SELECT count(*) FROM pg_database WHERE NOT datistemplate), "
			       "(SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements')";
		if (sub == 1)
			return "SELECT datname, datallowconn AND has_database_privilege(oid, 'CONNECT') "
			       "FROM pg_database WHERE NOT datistemplate";
		return NULL;
	case PG_G_DATABASE:
		if (sub)
			return NULL;
		return "SELECT d.datname, s.numbackends, s.xact_commit, s.xact_rollback, s.blks_read, s.blks_hit, "
		       "s.tup_returned, s.tup_fetched, s.tup_inserted, s.tup_updated, s.tup_deleted, s.temp_files, "
		       "s.temp_bytes, s.deadlocks, extract(epoch FROM s.stats_reset)::float8, "
		       "CASE WHEN has_database_privilege(d.oid, 'CONNECT') THEN pg_database_size(d.oid) END, "
		       "age(d.datfrozenxid), mxid_age(d.datminmxid) "
		       "FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid WHERE NOT d.datistemplate";
	case PG_G_CONFLICTS:
		if (sub)
			return NULL;
		return "SELECT c.datname, c.confl_tablespace, c.confl_lock, c.confl_snapshot, c.confl_bufferpin, "
		       "c.confl_deadlock FROM pg_stat_database_conflicts c JOIN pg_database d ON d.oid = c.datid "
		       "WHERE NOT d.datistemplate";
	case PG_G_BGWRITER:
		if (sub)
			return NULL;
		if (ver >= V17)
			return "SELECT c.num_timed, c.num_requested, c.write_time, c.sync_time, c.buffers_written, "
			       "b.buffers_clean, b.maxwritten_clean, NULL::bigint, NULL::bigint, b.buffers_alloc, "
			       "extract(epoch FROM b.stats_reset)::float8, c.restartpoints_timed, c.restartpoints_req, "
			       "c.restartpoints_done, extract(epoch FROM c.stats_reset)::float8 "
			       "FROM pg_stat_bgwriter b, pg_stat_checkpointer c";
		return "SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time, "
		       "buffers_checkpoint, buffers_clean, maxwritten_clean, buffers_backend, buffers_backend_fsync, "
		       "buffers_alloc, extract(epoch FROM stats_reset)::float8, NULL::bigint, NULL::bigint, "
		       "NULL::bigint, NULL::float8 FROM pg_stat_bgwriter";
	case PG_G_WAL:
		if (sub || ver < V14)
			return NULL;
		return "SELECT wal_records, wal_fpi, wal_bytes, wal_buffers_full, extract(epoch FROM "
		       "stats_reset)::float8 "
		       "FROM pg_stat_wal";
	case PG_G_ARCHIVER:
		if (sub)
			return NULL;
		return "SELECT archived_count, failed_count, "
		       "floor(extract(epoch FROM clock_timestamp() - last_archived_time))::bigint, "
		       "extract(epoch FROM stats_reset)::float8 FROM pg_stat_archiver";
	case PG_G_REPLICATION:
		if (sub)
			return NULL;
		return "SELECT coalesce(host(client_addr), 'unix'), "
		       "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) "
		       "END, extract(epoch FROM write_lag)::float8, extract(epoch FROM flush_lag)::float8, "
		       "extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication";
	case PG_G_SLOTS:
		if (sub)
			return NULL;
		if (ver >= V13)
			return "SELECT slot_name, slot_type, active, wal_status, pg_wal_lsn_diff(CASE WHEN "
			       "pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, "
			       "restart_lsn) FROM pg_replication_slots";
		return "SELECT slot_name, slot_type, active, NULL::text, pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() "
		       "THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, restart_lsn) "
		       "FROM pg_replication_slots";
	case PG_G_LOCKS:
		if (sub)
			return NULL;
		return "SELECT mode, locktype, granted, count(*) FROM pg_locks WHERE pid IS DISTINCT FROM "
		       "pg_backend_pid() "
		       "GROUP BY 1, 2, 3";
	case PG_G_ACTIVITY:
		if (sub == 0)
			return "SELECT coalesce(datname, ''), coalesce(state, ''), coalesce(wait_event_type, ''), "
			       "coalesce(wait_event, ''), coalesce(backend_type, ''), count(*), "
			       "count(*) FILTER (WHERE wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) "
			       "> 0) "
			       "FROM pg_stat_activity GROUP BY 1, 2, 3, 4, 5";
		if (sub == 1)
			return "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)) FILTER (WHERE "
			       "backend_type = 'client backend' AND pid <> pg_backend_pid()), 0)::float8, "
			       "coalesce(max(age(backend_xmin)) FILTER (WHERE pid <> pg_backend_pid()), 0), "
			       "count(*) FILTER (WHERE backend_type = 'client backend') FROM pg_stat_activity";
		return NULL;
	case PG_G_QUERY_TIME:
		if (sub)
			return NULL;
		if (ver >= V13)
			return "SELECT d.datname, sum(s.total_exec_time) / 1000 FROM pg_stat_statements(false) s "
			       "JOIN pg_database d ON d.oid = s.dbid GROUP BY 1";
		return "SELECT d.datname, sum(s.total_time) / 1000 FROM pg_stat_statements(false) s "
		       "JOIN pg_database d ON d.oid = s.dbid GROUP BY 1";
	case PG_G_TABLES:
		if (sub)
			return NULL;
		return AEL_CTE "SELECT s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup, s.n_tup_ins, s.n_tup_upd, "
		               "s.n_tup_del, s.n_tup_hot_upd, s.seq_scan, s.vacuum_count, s.autovacuum_count, "
		               "s.analyze_count, s.autoanalyze_count, io.heap_blks_read, io.heap_blks_hit, "
		               "io.idx_blks_read, io.idx_blks_hit, io.toast_blks_read, io.toast_blks_hit, "
		               "io.tidx_blks_read, io.tidx_blks_hit, "
		               "CASE WHEN s.relid IN (SELECT relation FROM ael) THEN NULL "
		               "ELSE pg_relation_size(s.relid) END "
		               "FROM pg_stat_user_tables s JOIN pg_statio_user_tables io ON io.relid = s.relid";
	case PG_G_INDEXES:
		if (sub)
			return NULL;
		return AEL_CTE "SELECT s.schemaname, s.relname, s.indexrelname, s.idx_scan, s.idx_tup_read, "
		               "s.idx_tup_fetch, CASE WHEN s.relid IN (SELECT relation FROM ael) OR s.indexrelid IN "
		               "(SELECT relation FROM ael) THEN NULL ELSE pg_relation_size(s.indexrelid) END "
		               "FROM pg_stat_user_indexes s";
	case PG_G_FUNCTIONS:
		if (sub)
			return NULL;
		return "SELECT schemaname, funcname, calls, total_time, self_time FROM pg_stat_user_functions";
	case PG_G_RELATION_LOCKS:
		if (sub)
			return NULL;
		return "SELECT c.relname, l.mode, l.locktype, count(*) FROM pg_locks l JOIN pg_class c ON c.oid = "
		       "l.relation WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
		       "AND l.pid IS DISTINCT FROM pg_backend_pid() GROUP BY 1, 2, 3";
	default:
		return NULL;
	}
}

bool dbi_pg_group_supported(int group, int ver)
{
	return dbi_pg_group_sql(group, 0, ver) != NULL || (group == PG_G_STATEMENTS && ver >= 90500);
}

/* ---- reading text results ---- */

static const char *val(const PGresult *r, int row, int col)
{
	if (col >= PQnfields(r) || PQgetisnull(r, row, col))
		return NULL;
	return PQgetvalue(r, row, col);
}

static double num(const PGresult *r, int row, int col, bool *ok)
{
	const char *s = val(r, row, col);
	char *end;
	double d;
	*ok = false;
	if (!s)
		return 0;
	d = strtod(s, &end);
	if (end == s || !isfinite(d))
		return 0;
	*ok = true;
	return d;
}

static bool is_true(const PGresult *r, int row, int col)
{
	const char *s = val(r, row, col);
	return s && s[0] == 't';
}

static uint64_t epoch_ns(const PGresult *r, int row, int col, uint64_t dflt)
{
	bool ok;
	double d = num(r, row, col, &ok);
	return ok && d > 0 ? (uint64_t)(d * 1e9) : dflt;
}

/* Emit column col of row as metric m (absent on NULL or garbage). */
static void put(struct pg_sctx *x, int m, uint32_t res, uint32_t attrs, const PGresult *r, int row, int col,
                uint64_t start, double scale)
{
	bool ok;
	double v = num(r, row, col, &ok);
	if (ok)
		dbi_pg_emit(x, m, res, attrs, v * scale, start);
}

static uint32_t a1(struct pg_sctx *x, const char *k, const char *v)
{
	const char *kv[2] = {k, v};
	return dbi_pg_attrs(x, 1, kv);
}

static uint32_t a2(struct pg_sctx *x, const char *k1, const char *v1, const char *k2, const char *v2)
{
	const char *kv[4] = {k1, v1, k2, v2};
	return dbi_pg_attrs(x, 2, kv);
}

/* ---- groups ---- */

static void server_info(struct pg_sctx *x, const PGresult *r)
{
	struct pg_target *t = x->t;
	bool ok;
	if (PQntuples(r) < 1)
		return;
	t->max_connections = (int)num(r, 0, 0, &ok);
	if (!t->start_known) {
		t->start_ns = epoch_ns(r, 0, 1, x->pg->start_wall);
		t->start_known = true;
	}
	t->in_recovery = is_true(r, 0, 2);
	t->have_pgss = val(r, 0, 4) != NULL;
	snprintf(t->pgss_extversion, sizeof(t->pgss_extversion), "%s", t->have_pgss ? val(r, 0, 4) : "");
	t->known = true;
	dbi_pg_emit(x, PGM_CONN_MAX, t->res_server, x->pg->empty_attrs, t->max_connections, 0);
	put(x, PGM_DB_COUNT, t->res_server, x->pg->empty_attrs, r, 0, 3, t->start_ns, 1);
}

static void server_dbs(struct pg_sctx *x, const PGresult *r)
{
	struct pg_target *t = x->t;
	for (size_t i = 0; i < t->ndbs; i++)
		t->dbs[i]->seen = false;
	for (int row = 0; row < PQntuples(r); row++) {
		const char *name = val(r, row, 0);
		if (!name || !dbi_pg_db_wanted(t->tc, name))
			continue;
		struct pg_db *db = dbi_pg_db_get(x, name, true);
		if (!db)
			continue;
		db->seen = true;
		db->connectable = is_true(r, row, 1);
	}
}

static void database_stats(struct pg_sctx *x, const PGresult *r)
{
	static const int cols[][2] = {
	        {PGM_BACKENDS, 1},    {PGM_COMMITS, 2},      {PGM_ROLLBACKS, 3},   {PGM_BLKS_READ, 4},
	        {PGM_BLKS_HIT, 5},    {PGM_TUP_RETURNED, 6}, {PGM_TUP_FETCHED, 7}, {PGM_TUP_INSERTED, 8},
	        {PGM_TUP_UPDATED, 9}, {PGM_TUP_DELETED, 10}, {PGM_TEMP_FILES, 11}, {PGM_TEMP_IO, 12},
	        {PGM_DEADLOCKS, 13},  {PGM_DB_SIZE, 15},     {PGM_XID_AGE, 16},    {PGM_MXID_AGE, 17},
	};
	uint32_t none = x->pg->empty_attrs;
	for (int row = 0; row < PQntuples(r); row++) {
		const char *name = val(r, row, 0);
		struct pg_db *db;
		if (!name || !dbi_pg_db_wanted(x->t->tc, name) || !(db = dbi_pg_db_get(x, name, true)))
			continue;
		db->stats_reset_ns = epoch_ns(r, row, 14, x->t->start_ns);
		for (size_t i = 0; i < DBI_ARRAY_LEN(cols); i++) {
			const struct pg_metric_info *mi = &dbi_pg_metrics[cols[i][0]];
			uint64_t start =
			        mi->kind == DBI_MK_SUM ? (mi->monotonic ? db->stats_reset_ns : x->t->start_ns) : 0;
			put(x, cols[i][0], db->res, none, r, row, cols[i][1], start, 1);
		}
	}
}

static void conflicts(struct pg_sctx *x, const PGresult *r)
{
	static const char *const types[] = {"tablespace", "lock", "snapshot", "bufferpin", "deadlock"};
	for (int row = 0; row < PQntuples(r); row++) {
		const char *name = val(r, row, 0);
		struct pg_db *db;
		if (!name || !dbi_pg_db_wanted(x->t->tc, name) || !(db = dbi_pg_db_get(x, name, true)))
			continue;
		for (int i = 0; i < 5; i++)
			put(x, PGM_QUERY_CONFLICTS, db->res, a1(x, "postgresql.conflict.type", types[i]), r, row, 1 + i,
			    db->stats_reset_ns ? db->stats_reset_ns : x->t->start_ns, 1);
	}
}

static void bgwriter(struct pg_sctx *x, const PGresult *r)
{
	struct pg_target *t = x->t;
	uint32_t res = t->res_server;
	if (PQntuples(r) < 1)
		return;
	t->bgw_reset_ns = epoch_ns(r, 0, 10, t->start_ns);
	t->ckpt_reset_ns = epoch_ns(r, 0, 14, t->bgw_reset_ns);
	uint64_t bs = t->bgw_reset_ns, cs = t->ckpt_reset_ns;
	put(x, PGM_BGW_CKPT_COUNT, res, a1(x, "type", "scheduled"), r, 0, 0, cs, 1);
	put(x, PGM_BGW_CKPT_COUNT, res, a1(x, "type", "requested"), r, 0, 1, cs, 1);
	put(x, PGM_BGW_DURATION, res, a1(x, "type", "write"), r, 0, 2, cs, 1);
	put(x, PGM_BGW_DURATION, res, a1(x, "type", "sync"), r, 0, 3, cs, 1);
	put(x, PGM_BGW_BUF_WRITES, res, a1(x, "source", "checkpoints"), r, 0, 4, cs, 1);
	put(x, PGM_BGW_BUF_WRITES, res, a1(x, "source", "bgwriter"), r, 0, 5, bs, 1);
	put(x, PGM_BGW_MAXWRITTEN, res, x->pg->empty_attrs, r, 0, 6, bs, 1);
	put(x, PGM_BGW_BUF_WRITES, res, a1(x, "source", "backend"), r, 0, 7, bs, 1);
	put(x, PGM_BGW_BUF_WRITES, res, a1(x, "source", "backend_fsync"), r, 0, 8, bs, 1);
	put(x, PGM_BGW_BUF_ALLOC, res, x->pg->empty_attrs, r, 0, 9, bs, 1);
	put(x, PGM_CKPT_RESTARTPOINTS, res, a1(x, "type", "scheduled"), r, 0, 11, cs, 1);
	put(x, PGM_CKPT_RESTARTPOINTS, res, a1(x, "type", "requested"), r, 0, 12, cs, 1);
	put(x, PGM_CKPT_RESTARTPOINTS, res, a1(x, "type", "done"), r, 0, 13, cs, 1);
}

static void wal(struct pg_sctx *x, const PGresult *r)
{
	struct pg_target *t = x->t;
	uint32_t none = x->pg->empty_attrs;
	if (PQntuples(r) < 1)
		return;
	t->wal_reset_ns = epoch_ns(r, 0, 4, t->start_ns);
	put(x, PGM_WAL_RECORDS, t->res_server, none, r, 0, 0, t->wal_reset_ns, 1);
	put(x, PGM_WAL_FPI, t->res_server, none, r, 0, 1, t->wal_reset_ns, 1);
	put(x, PGM_WAL_BYTES, t->res_server, none, r, 0, 2, t->wal_reset_ns, 1);
	put(x, PGM_WAL_BUFFERS_FULL, t->res_server, none, r, 0, 3, t->wal_reset_ns, 1);
}

static void archiver(struct pg_sctx *x, const PGresult *r)
{
	struct pg_target *t = x->t;
	uint32_t none = x->pg->empty_attrs;
	if (PQntuples(r) < 1)
		return;
	t->arch_reset_ns = epoch_ns(r, 0, 3, t->start_ns);
	put(x, PGM_ARCH_ARCHIVED, t->res_server, none, r, 0, 0, t->arch_reset_ns, 1);
	put(x, PGM_ARCH_FAILED, t->res_server, none, r, 0, 1, t->arch_reset_ns, 1);
	put(x, PGM_WAL_AGE, t->res_server, none, r, 0, 2, 0, 1); /* absent until something is archived */
}

static void replication(struct pg_sctx *x, const PGresult *r)
{
	static const char *const ops[] = {"write", "flush", "replay"};
	struct pg_target *t = x->t;
	for (int row = 0; row < PQntuples(r); row++) {
		const char *client = val(r, row, 0);
		if (!client)
			continue;
		put(x, PGM_REPL_DATA_DELAY, t->res_server, a1(x, "replication_client", client), r, row, 1, 0, 1);
		for (int i = 0; i < 3; i++) {
			bool ok;
			double lag = num(r, row, 2 + i, &ok);
			if (!ok)
				continue;
			uint32_t at = a2(x, "operation", ops[i], "replication_client", client);
			dbi_pg_emit(x, PGM_WAL_LAG, t->res_server, at, floor(lag), 0);
			dbi_pg_emit(x, PGM_WAL_DELAY, t->res_server, at, lag, 0);
		}
	}
}

static void slots(struct pg_sctx *x, const PGresult *r)
{
	struct pg_target *t = x->t;
	for (int row = 0; row < PQntuples(r); row++) {
		const char *name = val(r, row, 0), *type = val(r, row, 1), *status = val(r, row, 3);
		if (!name)
			continue;
		uint32_t at = a2(x, "slot_name", name, "slot_type", type ? type : "");
		dbi_pg_emit(x, PGM_SLOT_ACTIVE, t->res_server, at, is_true(r, row, 2), 0);
		put(x, PGM_SLOT_RETAINED, t->res_server, at, r, row, 4, 0, 1);
		if (status)
			dbi_pg_emit(x, PGM_SLOT_WAL_STATUS, t->res_server,
			            a2(x, "slot_name", name, "wal_status", status), 1, 0);
	}
}

static void locks(struct pg_sctx *x, const PGresult *r)
{
	for (int row = 0; row < PQntuples(r); row++) {
		const char *kv[6] = {"mode",      val(r, row, 0) ? val(r, row, 0) : "",
		                     "lock_type", val(r, row, 1) ? val(r, row, 1) : "",
		                     "granted",   is_true(r, row, 2) ? "true" : "false"};
		put(x, PGM_LOCKS, x->t->res_server, dbi_pg_attrs(x, 3, kv), r, row, 3, 0, 1);
	}
}

static void activity(struct pg_sctx *x, int sub, const PGresult *r)
{
	struct pg_target *t = x->t;
	uint32_t none = x->pg->empty_attrs;
	if (sub == 0) {
		double blocked = 0;
		for (int row = 0; row < PQntuples(r); row++) {
			const char *kv[10] = {"database",        val(r, row, 0), "state",      val(r, row, 1),
			                      "wait_event_type", val(r, row, 2), "wait_event", val(r, row, 3),
			                      "backend_type",    val(r, row, 4)};
			bool ok;
			for (int i = 1; i < 10; i += 2)
				if (!kv[i])
					kv[i] = "";
			put(x, PGM_ACT_SESSIONS, t->res_server, dbi_pg_attrs(x, 5, kv), r, row, 5, 0, 1);
			blocked += num(r, row, 6, &ok);
		}
		dbi_pg_emit(x, PGM_ACT_BLOCKED, t->res_server, none, blocked, 0);
		return;
	}
	if (PQntuples(r) < 1)
		return;
	bool ok;
	double conns = num(r, 0, 2, &ok);
	put(x, PGM_ACT_OLDEST_XACT, t->res_server, none, r, 0, 0, 0, 1);
	put(x, PGM_ACT_OLDEST_XMIN, t->res_server, none, r, 0, 1, 0, 1);
	if (ok) {
		dbi_pg_emit(x, PGM_CONN_COUNT, t->res_server, none, conns, 0);
		if (t->max_connections > 0)
			dbi_pg_emit(x, PGM_CONN_USAGE, t->res_server, none, conns / t->max_connections, 0);
	}
}

static void query_time(struct pg_sctx *x, const PGresult *r)
{
	for (int row = 0; row < PQntuples(r); row++) {
		const char *name = val(r, row, 0);
		struct pg_db *db;
		if (!name || !dbi_pg_db_wanted(x->t->tc, name) || !(db = dbi_pg_db_get(x, name, true)))
			continue;
		put(x, PGM_QUERY_EXEC_TIME, db->res, x->pg->empty_attrs, r, row, 1, x->t->start_ns, 1);
	}
}

static uint64_t db_start(struct pg_sctx *x)
{
	return x->db && x->db->stats_reset_ns ? x->db->stats_reset_ns : x->t->start_ns;
}

static int limit_rows(struct pg_sctx *x, int n)
{
	const struct pg_cfg *cfg = atomic_load(&x->pg->cfg);
	if (cfg->max_relations > 0 && n > cfg->max_relations)
		return (int)cfg->max_relations;
	return n;
}

static void tables(struct pg_sctx *x, const PGresult *r)
{
	static const struct {
		int m, col;
		const char *k, *v;
	} cols[] = {
	        {PGM_ROWS, 2, "state", "live"},
	        {PGM_ROWS, 3, "state", "dead"},
	        {PGM_OPERATIONS, 4, "operation", "ins"},
	        {PGM_OPERATIONS, 5, "operation", "upd"},
	        {PGM_OPERATIONS, 6, "operation", "del"},
	        {PGM_OPERATIONS, 7, "operation", "hot_upd"},
	        {PGM_SEQ_SCANS, 8, NULL, NULL},
	        {PGM_TABLE_VACUUM, 9, NULL, NULL},
	        {PGM_TABLE_AUTOVACUUM, 10, NULL, NULL},
	        {PGM_TABLE_ANALYZE, 11, NULL, NULL},
	        {PGM_TABLE_AUTOANALYZE, 12, NULL, NULL},
	        {PGM_BLOCKS_READ, 13, "source", "heap_read"},
	        {PGM_BLOCKS_READ, 14, "source", "heap_hit"},
	        {PGM_BLOCKS_READ, 15, "source", "idx_read"},
	        {PGM_BLOCKS_READ, 16, "source", "idx_hit"},
	        {PGM_BLOCKS_READ, 17, "source", "toast_read"},
	        {PGM_BLOCKS_READ, 18, "source", "toast_hit"},
	        {PGM_BLOCKS_READ, 19, "source", "tidx_read"},
	        {PGM_BLOCKS_READ, 20, "source", "tidx_hit"},
	        {PGM_TABLE_SIZE, 21, NULL, NULL},
	};
	uint32_t attrs[DBI_ARRAY_LEN(cols)];
	uint64_t start = db_start(x);
	int n = PQntuples(r), lim = limit_rows(x, n);
	uint32_t dbres = x->db ? x->db->res : dbi_pg_res(x, x->dbname, NULL, NULL, NULL);

	for (size_t i = 0; i < DBI_ARRAY_LEN(cols); i++)
		attrs[i] = cols[i].k ? a1(x, cols[i].k, cols[i].v) : x->pg->empty_attrs;
	dbi_pg_emit(x, PGM_TABLE_COUNT, dbres, x->pg->empty_attrs, n, x->t->start_ns);
	for (int row = 0; row < lim; row++) {
		const char *schema = val(r, row, 0), *rel = val(r, row, 1);
		if (!schema || !rel)
			continue;
		uint32_t res = dbi_pg_res(x, x->dbname, schema, rel, NULL);
		if (!res)
			continue;
		if (!val(r, row, 21))
			x->t->relations_skipped++;
		for (size_t i = 0; i < DBI_ARRAY_LEN(cols); i++) {
			const struct pg_metric_info *mi = &dbi_pg_metrics[cols[i].m];
			put(x, cols[i].m, res, attrs[i], r, row, cols[i].col, mi->monotonic ? start : x->t->start_ns,
			    1);
		}
	}
}

static void indexes(struct pg_sctx *x, const PGresult *r)
{
	uint64_t start = db_start(x);
	int lim = limit_rows(x, PQntuples(r));
	uint32_t none = x->pg->empty_attrs;
	for (int row = 0; row < lim; row++) {
		const char *schema = val(r, row, 0), *rel = val(r, row, 1), *idx = val(r, row, 2);
		if (!schema || !rel || !idx)
			continue;
		uint32_t res = dbi_pg_res(x, x->dbname, schema, rel, idx);
		if (!res)
			continue;
		if (!val(r, row, 6))
			x->t->relations_skipped++;
		put(x, PGM_INDEX_SCANS, res, none, r, row, 3, start, 1);
		put(x, PGM_INDEX_TUP_READ, res, none, r, row, 4, start, 1);
		put(x, PGM_INDEX_TUP_FETCH, res, none, r, row, 5, start, 1);
		put(x, PGM_INDEX_SIZE, res, none, r, row, 6, 0, 1);
	}
}

static void functions(struct pg_sctx *x, const PGresult *r)
{
	uint64_t start = db_start(x);
	uint32_t dbres = x->db ? x->db->res : dbi_pg_res(x, x->dbname, NULL, NULL, NULL);
	char fn[256];
	for (int row = 0; row < PQntuples(r); row++) {
		const char *schema = val(r, row, 0), *name = val(r, row, 1);
		if (!schema || !name)
			continue;
		snprintf(fn, sizeof(fn), "%s.%s", schema, name);
		put(x, PGM_FUNC_CALLS, dbres, a1(x, "function", fn), r, row, 2, start, 1);
		put(x, PGM_FUNC_TIME, dbres, a2(x, "function", fn, "type", "total"), r, row, 3, start, 1);
		put(x, PGM_FUNC_TIME, dbres, a2(x, "function", fn, "type", "self"), r, row, 4, start, 1);
	}
}

static void relation_locks(struct pg_sctx *x, const PGresult *r)
{
	uint32_t dbres = x->db ? x->db->res : dbi_pg_res(x, x->dbname, NULL, NULL, NULL);
	for (int row = 0; row < PQntuples(r); row++) {
		const char *kv[6] = {"relation", val(r, row, 0), "mode", val(r, row, 1), "lock_type", val(r, row, 2)};
		if (!kv[1] || !kv[3] || !kv[5])
			continue;
		put(x, PGM_DB_LOCKS, dbres, dbi_pg_attrs(x, 3, kv), r, row, 3, 0, 1);
	}
}

void dbi_pg_group_result(struct pg_sctx *x, int group, int sub, const PGresult *r)
{
	switch (group) {
	case PG_G_SERVER:
		if (sub == 0)
			server_info(x, r);
		else
			server_dbs(x, r);
		break;
	case PG_G_DATABASE:
		database_stats(x, r);
		break;
	case PG_G_CONFLICTS:
		conflicts(x, r);
		break;
	case PG_G_BGWRITER:
		bgwriter(x, r);
		break;
	case PG_G_WAL:
		wal(x, r);
		break;
	case PG_G_ARCHIVER:
		archiver(x, r);
		break;
	case PG_G_REPLICATION:
		replication(x, r);
		break;
	case PG_G_SLOTS:
		slots(x, r);
		break;
	case PG_G_LOCKS:
		locks(x, r);
		break;
	case PG_G_ACTIVITY:
		activity(x, sub, r);
		break;
	case PG_G_QUERY_TIME:
		query_time(x, r);
		break;
	case PG_G_TABLES:
		tables(x, r);
		break;
	case PG_G_INDEXES:
		indexes(x, r);
		break;
	case PG_G_FUNCTIONS:
		functions(x, r);
		break;
	case PG_G_RELATION_LOCKS:
		relation_locks(x, r);
		break;
	default:
		break;
	}
}
