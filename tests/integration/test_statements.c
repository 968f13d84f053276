/*
 * test_statements.c — the statements module against real PostgreSQL 15, driven the way
 * the receiver engine will drive it: its queries sent in libpq pipeline mode over one
 * session, each PGresult handed back, then emit.
 *
 * The reference is SQL: every counters result the module reads is also copied, row by
 * row, into a snapshot table, and the interval deltas are computed there by a join of
 * consecutive snapshots. So the module and the reference see exactly the same
 * pg_stat_statements state even under a running pgbench. Checked: top-N + other sums
 * equal the SQL sums (exactly for counts), the top-N is the SQL top-N; the per-database
 * execution time and histogram agree; pg_stat_statements_reset() (full and per entry)
 * gives neither negative nor doubled deltas; real eviction (pg_stat_statements.max =
 * 100) keeps the sums exact; text is fetched only for new queryids; samples go out once
 * per fingerprint with no literal in them; every extension version PG 15 can install
 * (1.7 .. 1.10) reads correctly, in binary and text results; and a missing or
 * not-preloaded extension gives a clear status that turns the group off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbi/common.h"
#include "opentelemetry/proto/logs/v1/logs.pb-c.h"
#include "pgss_sink.h"
#include "pgtest.h"

static struct dbi_pgtest pg;       /* the main cluster, for the whole group */
static int server_ver;             /* its server_version_num (DBI_PG_BINDIR picks the version) */
static uint32_t fx_full_every;     /* statement_metrics.full_read_every of the next fx_init (0: default) */
static struct dbi_pgtest pg_other; /* per-test extra cluster, stopped in teardown */

/* ---- fixture: registry, sink, module, sessions ---- */

struct fx {
	struct dbi_registry *reg;
	struct dbi_test_sink sink;
	struct dbi_pgss *s;
	uint32_t resource, scope;
	PGconn *conn; /* the module's session */
	PGconn *ref;  /* the test's session for snapshots (database postgres) */
	int k;        /* scrapes so far */
	bool tee;     /* copy every counters result into snap */
	bool text_results;
	unsigned nq[8]; /* queries issued, by kind */
	char sample_fp[64][DBI_QFP_HEX_SIZE];
	int nsample_fp;
};

static PGconn *connect_db(struct dbi_pgtest *p, const char *db)
{
	char ci[1200];
	assert_int_equal(dbi_pgtest_conninfo(p, db, NULL, ci, sizeof(ci)), DBI_OK);
	assert_int_equal(dbi_pgtest_conninfo_add(ci, sizeof(ci), "application_name", "dbi-collector"), DBI_OK);
	PGconn *c = PQconnectdb(ci);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", db, PQerrorMessage(c));
	return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

static char *value(PGconn *c, const char *sql, char *out, size_t len)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	dbi_strlcpy(out, PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0), len);
	PQclear(r);
	return out;
}

static long long value_ll(PGconn *c, const char *sql)
{
	char v[64];
	return atoll(value(c, sql, v, sizeof(v)));
}

static double value_d(PGconn *c, const char *sql)
{
	char v[64];
	return atof(value(c, sql, v, sizeof(v)));
}

static void fx_init_pool(struct fx *f, struct dbi_pgtest *p, const char *db, uint32_t limit, struct dbi_pgss_pool *pool)
{
	struct dbi_attr ra[] = {{.key = "service.instance.id", .type = DBI_AT_STR, .v.s = "test:5432"}};
	struct dbi_errbuf err;

	memset(f, 0, sizeof(*f));
	f->reg = dbi_registry_create(1u << 20);
	f->resource = dbi_attrs_intern(f->reg, ra, 1);
	f->scope = dbi_scope_intern(f->reg, "dbi.postgresql", "test");
	dbi_test_sink_init(&f->sink, f->reg);
	struct dbi_pgss_config c = {.reg = f->reg,
	                            .resource = f->resource,
	                            .scope = f->scope,
	                            .sink = &f->sink.sink,
	                            .limit = limit,
	                            .metrics = DBI_PGSS_M_ALL,
	                            .full_read_every = fx_full_every,
	                            .tag = 1,
	                            .pool = pool};
	f->s = dbi_pgss_create(&c, &err);
	assert_non_null(f->s);
	f->conn = connect_db(p, db);
	f->ref = connect_db(p, "postgres");
	exec_ok(f->ref, "SET client_min_messages = warning");
	dbi_pgss_connected(f->s, PQserverVersion(f->conn));
}

static void fx_init(struct fx *f, struct dbi_pgtest *p, const char *db, uint32_t limit)
{
	fx_init_pool(f, p, db, limit, NULL);
}

static void fx_free(struct fx *f)
{
	dbi_pgss_release(f->s);
	dbi_test_sink_free(&f->sink);
	dbi_registry_destroy(f->reg);
	PQfinish(f->conn);
	PQfinish(f->ref);
}

/* ---- the reference: snapshots of exactly what the module read ---- */

static const char *const snap_cols[] = {"userid",
                                        "dbid",
                                        "toplevel",
                                        "queryid",
                                        "plans",
                                        "total_plan_time",
                                        "calls",
                                        "total_exec_time",
                                        "min_exec_time",
                                        "max_exec_time",
                                        "rows",
                                        "shared_blks_hit",
                                        "shared_blks_read",
                                        "shared_blks_dirtied",
                                        "shared_blks_written",
                                        "local_blks_read",
                                        "local_blks_written",
                                        "temp_blks_read",
                                        "temp_blks_written",
                                        "blk_read_time",
                                        "blk_write_time",
                                        "wal_records",
                                        "wal_fpi",
                                        "wal_bytes",
                                        "stats_since"};
/* integer counters: any of them going down means the entry was re-created */
static const char *const snap_ints[] = {"plans",
                                        "calls",
                                        "rows",
                                        "shared_blks_hit",
                                        "shared_blks_read",
                                        "shared_blks_dirtied",
                                        "shared_blks_written",
                                        "local_blks_read",
                                        "local_blks_written",
                                        "temp_blks_read",
                                        "temp_blks_written",
                                        "wal_records",
                                        "wal_fpi",
                                        "wal_bytes"};

static void snap_create(PGconn *ref)
{
	exec_ok(ref, "DROP TABLE IF EXISTS snap");
	exec_ok(ref, "CREATE TABLE snap (k int, userid oid, dbid oid, toplevel bool, queryid int8, plans int8, "
	             "total_plan_time float8, calls int8, total_exec_time float8, min_exec_time float8, "
	             "max_exec_time float8, rows int8, shared_blks_hit int8, shared_blks_read int8, "
	             "shared_blks_dirtied int8, shared_blks_written int8, local_blks_read int8, "
	             "local_blks_written int8, temp_blks_read int8, temp_blks_written int8, blk_read_time float8, "
	             "blk_write_time float8, wal_records int8, wal_fpi int8, wal_bytes int8, "
	             "stats_since text)"); /* 1.11 (PG 17): the entry's creation, as the module read it */
}

/* A value of a (binary or text) result as COPY text; decoded here, independently of the module. */
static void copy_value(const PGresult *r, int row, int col, char *out, size_t len)
{
	const char *v = PQgetvalue(r, row, col);
	if (PQgetisnull(r, row, col)) {
		snprintf(out, len, "\\N");
		return;
	}
	if (PQfformat(r, col) == 0) {
		snprintf(out, len, "%s", v);
		return;
	}
	switch (PQftype(r, col)) {
	case 16: /* bool */
		snprintf(out, len, "%s", v[0] ? "t" : "f");
		return;
	case 26: { /* oid */
		uint32_t x;
		memcpy(&x, v, 4);
		snprintf(out, len, "%" PRIu32, be32toh(x));
		return;
	}
	case 20: { /* int8 */
		uint64_t x;
		memcpy(&x, v, 8);
		snprintf(out, len, "%" PRId64, (int64_t)be64toh(x));
		return;
	}
	case 1184: { /* timestamptz: microseconds since 2000-01-01 */
		uint64_t x;
		memcpy(&x, v, 8);
		snprintf(out, len, "%" PRId64, (int64_t)be64toh(x));
		return;
	}
	case 701: { /* float8 */
		uint64_t x;
		double d;
		memcpy(&x, v, 8);
		x = be64toh(x);
		memcpy(&d, &x, 8);
		snprintf(out, len, "%.17g", d);
		return;
	}
	default:
		fail_msg("unexpected column type %u", PQftype(r, col));
	}
}

static void snap_add(struct fx *f, const PGresult *r)
{
	char line[4096], v[64];
	PGresult *res = PQexec(f->ref, "COPY snap FROM STDIN");
	assert_int_equal(PQresultStatus(res), PGRES_COPY_IN);
	PQclear(res);
	for (int row = 0; row < PQntuples(r); row++) {
		size_t o = (size_t)snprintf(line, sizeof(line), "%d", f->k);
		for (size_t c = 0; c < DBI_ARRAY_LEN(snap_cols); c++) {
			int col = PQfnumber(r, snap_cols[c]);
			if (col < 0) /* older extension versions: no toplevel (1.9), no stats_since (1.11) */
				snprintf(v, sizeof(v), "%s",
				         !strcmp(snap_cols[c], "toplevel")      ? "t"
				         : !strcmp(snap_cols[c], "stats_since") ? "\\N"
				                                                : "0");
			else
				copy_value(r, row, col, v, sizeof(v));
			o += (size_t)snprintf(line + o, sizeof(line) - o, "\t%s", v);
		}
		line[o++] = '\n';
		assert_int_equal(PQputCopyData(f->ref, line, (int)o), 1);
	}
	assert_int_equal(PQputCopyEnd(f->ref, NULL), 1);
	res = PQgetResult(f->ref);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("COPY snap: %s", PQerrorMessage(f->ref));
	PQclear(res);
	while ((res = PQgetResult(f->ref)))
		PQclear(res);
}

/*
 * The module took the last counters result as changed rows only: in the reference,
 * every entry of the previous snapshot the result did not return is carried over
 * unchanged (rows without queryid are always returned). The premise itself, that those
 * entries did not change, is checked by test_changed_reads against full reads.
 */
static void snap_carry(struct fx *f)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
	         "INSERT INTO snap SELECT %d, p.userid, p.dbid, p.toplevel, p.queryid, p.plans, p.total_plan_time, "
	         "p.calls, p.total_exec_time, p.min_exec_time, p.max_exec_time, p.rows, p.shared_blks_hit, "
	         "p.shared_blks_read, p.shared_blks_dirtied, p.shared_blks_written, p.local_blks_read, "
	         "p.local_blks_written, p.temp_blks_read, p.temp_blks_written, p.blk_read_time, p.blk_write_time, "
	         "p.wal_records, p.wal_fpi, p.wal_bytes, p.stats_since FROM snap p WHERE p.k = %d AND "
	         "p.queryid IS NOT NULL AND "
	         "NOT EXISTS (SELECT 1 FROM snap c WHERE c.k = %d AND (c.dbid, c.userid, c.queryid, c.toplevel) = "
	         "(p.dbid, p.userid, p.queryid, p.toplevel))",
	         f->k, f->k - 1, f->k);
	exec_ok(f->ref, sql);
}

/*
 * The deltas of scrape k by SQL, as a temp table ref_d (dbid, userid, queryid, toplevel,
 * d_<col>..., active). Rules: an entry not in k-1, any integer counter lower, (calls on
 * both sides) max lower / min higher, or (1.11) another stats_since => its whole counters;
 * else the difference.
 */
static void ref_deltas(struct fx *f, int k)
{
	char sql[8192];
	size_t o = 0;

	exec_ok(f->ref, "DROP TABLE IF EXISTS ref_d");
	o += (size_t)snprintf(
	        sql + o, sizeof(sql) - o,
	        "CREATE TABLE ref_d AS WITH j AS (SELECT c.*, (p.k IS NULL OR (p.calls > 0 AND c.calls > 0 "
	        "AND (c.max_exec_time < p.max_exec_time OR c.min_exec_time > p.min_exec_time)) "
	        "OR c.stats_since <> p.stats_since");
	for (size_t i = 0; i < DBI_ARRAY_LEN(snap_ints); i++)
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, " OR c.%s < p.%s", snap_ints[i], snap_ints[i]);
	o += (size_t)snprintf(sql + o, sizeof(sql) - o, ") AS whole");
	for (size_t i = 0; i < DBI_ARRAY_LEN(snap_ints); i++)
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, ", p.%s AS p_%s", snap_ints[i], snap_ints[i]);
	o += (size_t)snprintf(sql + o, sizeof(sql) - o,
	                      ", p.total_exec_time AS p_exec, p.total_plan_time AS p_plan FROM snap c LEFT JOIN snap p "
	                      "ON p.k = c.k - 1 AND (p.dbid, p.userid, p.queryid, p.toplevel) = "
	                      "(c.dbid, c.userid, c.queryid, c.toplevel) WHERE c.k = %d) "
	                      "SELECT dbid, userid, queryid, toplevel",
	                      k);
	for (size_t i = 0; i < DBI_ARRAY_LEN(snap_ints); i++)
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, ", CASE WHEN whole THEN %s ELSE %s - p_%s END AS d_%s",
		                      snap_ints[i], snap_ints[i], snap_ints[i], snap_ints[i]);
	o += (size_t)snprintf(sql + o, sizeof(sql) - o,
	                      ", CASE WHEN whole THEN total_exec_time ELSE greatest(total_exec_time - p_exec, 0) END "
	                      "AS d_exec, CASE WHEN whole THEN total_plan_time ELSE greatest(total_plan_time - p_plan, "
	                      "0) END AS d_plan FROM j");
	exec_ok(f->ref, sql);
	o = (size_t)snprintf(sql, sizeof(sql), "ALTER TABLE ref_d ADD COLUMN active bool");
	exec_ok(f->ref, sql);
	o = (size_t)snprintf(sql, sizeof(sql), "UPDATE ref_d SET active = (d_exec > 0 OR d_plan > 0");
	for (size_t i = 0; i < DBI_ARRAY_LEN(snap_ints); i++)
		o += (size_t)snprintf(sql + o, sizeof(sql) - o, " OR d_%s <> 0", snap_ints[i]);
	snprintf(sql + o, sizeof(sql) - o, ")");
	exec_ok(f->ref, sql);
}

/* ---- the engine stand-in: pipeline mode, one round trip per round ---- */

static int drive(struct fx *f)
{
	struct dbi_pgss_query q[DBI_PGSS_MAX_QUERIES];
	struct timespec ts;
	unsigned n;
	int rc = DBI_OK;

	clock_gettime(CLOCK_REALTIME, &ts);
	dbi_test_sink_clear(&f->sink);
	if (dbi_pgss_begin(f->s, (uint64_t)ts.tv_sec * DBI_NSEC_PER_SEC + (uint64_t)ts.tv_nsec) != DBI_OK)
		return DBI_ERR;
	while (rc == DBI_OK && (n = dbi_pgss_queries(f->s, q, DBI_PGSS_MAX_QUERIES)) > 0) {
		assert_int_equal(PQenterPipelineMode(f->conn), 1);
		for (unsigned i = 0; i < n; i++) {
			f->nq[q[i].kind]++;
			assert_int_equal(PQsendQueryParams(f->conn, q[i].sql, q[i].nparams, NULL, q[i].params, NULL,
			                                   NULL, f->text_results ? 0 : q[i].result_binary),
			                 1);
		}
		assert_int_equal(PQpipelineSync(f->conn), 1);
		for (unsigned i = 0; i < n; i++) {
			PGresult *r = PQgetResult(f->conn), *extra;
			assert_non_null(r);
			if (rc == DBI_OK) {
				uint64_t changed0 = dbi_pgss_get_stats(f->s)->changed_reads;
				bool tee = q[i].kind == DBI_PGSS_Q_COUNTERS && f->tee &&
				           PQresultStatus(r) == PGRES_TUPLES_OK;
				if (tee)
					snap_add(f, r);
				rc = dbi_pgss_result(f->s, i, r);
				if (tee && dbi_pgss_get_stats(f->s)->changed_reads != changed0)
					snap_carry(f);
			}
			PQclear(r);
			while ((extra = PQgetResult(f->conn)))
				PQclear(extra); /* the NULL that ends each query's results */
		}
		PGresult *sync = PQgetResult(f->conn);
		assert_int_equal(PQresultStatus(sync), PGRES_PIPELINE_SYNC);
		PQclear(sync);
		assert_int_equal(PQexitPipelineMode(f->conn), 1);
	}
	if (rc != DBI_OK)
		return rc;
	assert_int_equal(dbi_pgss_emit(f->s), DBI_OK);
	f->k++;
	/* samples: remember fingerprints, check each is new */
	for (size_t i = 0; i < f->sink.nrecs; i++) {
		if (f->sink.recs[i].type != DBI_REC_LOG)
			continue;
		const struct dbi_otlp_rec *o = (const void *)f->sink.recs[i].buf;
		Opentelemetry__Proto__Logs__V1__LogRecord *lr =
		        opentelemetry__proto__logs__v1__log_record__unpack(NULL, o->pb_len, dbi_otlp_rec_pb(o));
		assert_non_null(lr);
		for (size_t a = 0; a < lr->n_attributes; a++) {
			if (strcmp(lr->attributes[a]->key, "db.query.fingerprint"))
				continue;
			for (int j = 0; j < f->nsample_fp; j++)
				assert_string_not_equal(f->sample_fp[j], lr->attributes[a]->value->string_value);
			if (f->nsample_fp < 64)
				dbi_strlcpy(f->sample_fp[f->nsample_fp++], lr->attributes[a]->value->string_value,
				            DBI_QFP_HEX_SIZE);
		}
		opentelemetry__proto__logs__v1__log_record__free_unpacked(lr, NULL);
	}
	return DBI_OK;
}

/* Every emitted sum is >= 0 (nothing negative, ever). */
static void check_nonnegative(struct fx *f)
{
	for (size_t i = 0; i < f->sink.npts; i++)
		if (dbi_point_value(&f->sink.pts[i]) < 0)
			fail_msg("negative %s: %g", dbi_test_sink_metric(&f->sink, &f->sink.pts[i]),
			         dbi_point_value(&f->sink.pts[i]));
}

/* Module sums (top-N + other) of scrape k against the SQL reference, all databases. */
static void check_against_ref(struct fx *f, uint32_t limit)
{
	static const struct {
		const char *metric, *col;
	} ints[] = {
	        {"postgresql.statement.calls", "d_calls"},
	        {"postgresql.statement.rows", "d_rows"},
	        {"postgresql.statement.shared_blocks.hit", "d_shared_blks_hit"},
	        {"postgresql.statement.shared_blocks.read", "d_shared_blks_read"},
	        {"postgresql.statement.shared_blocks.dirtied", "d_shared_blks_dirtied"},
	        {"postgresql.statement.shared_blocks.written", "d_shared_blks_written"},
	        {"postgresql.statement.temp_blocks.read", "d_temp_blks_read"},
	        {"postgresql.statement.temp_blocks.written", "d_temp_blks_written"},
	        {"postgresql.statement.wal.records", "d_wal_records"},
	        {"postgresql.statement.wal.bytes", "d_wal_bytes"},
	};
	char sql[512];

	ref_deltas(f, f->k - 1);
	check_nonnegative(f);
	for (size_t i = 0; i < DBI_ARRAY_LEN(ints); i++) {
		snprintf(sql, sizeof(sql), "SELECT coalesce(sum(%s), 0) FROM ref_d", ints[i].col);
		long long want = value_ll(f->ref, sql);
		double got = dbi_test_sink_sum(&f->sink, ints[i].metric, NULL, NULL, NULL);
		if (got != (double)want)
			fail_msg("%s: module %.0f, SQL %lld", ints[i].metric, got, want);
	}
	double want_exec = value_d(f->ref, "SELECT coalesce(sum(d_exec), 0) FROM ref_d");
	double got_exec = dbi_test_sink_sum(&f->sink, "postgresql.statement.execution.time", NULL, NULL, NULL) * 1000;
	assert_true(fabs(got_exec - want_exec) <= 1e-9 * want_exec + 1e-9);
	/* per database: top-level execution time and histogram */
	double want_top = value_d(f->ref, "SELECT coalesce(sum(d_exec), 0) FROM ref_d WHERE toplevel");
	double got_top =
	        dbi_test_sink_sum(&f->sink, "postgresql.query.toplevel.execution.time", NULL, NULL, NULL) * 1000;
	assert_true(fabs(got_top - want_top) <= 1e-9 * want_top + 1e-9);
	long long want_hcount = value_ll(f->ref, "SELECT coalesce(sum(d_calls), 0) FROM ref_d WHERE toplevel");
	uint64_t hcount = 0;
	for (size_t i = 0; i < f->sink.nrecs; i++)
		if (f->sink.recs[i].type == DBI_REC_HIST)
			hcount += ((struct dbi_hist_rec *)(void *)f->sink.recs[i].buf)->count;
	assert_int_equal(hcount, want_hcount);

	/* the top-N is SQL's top-N, in order */
	struct dbi_pgss_top top[64];
	size_t nt = dbi_pgss_last_top(f->s, top, 64);
	snprintf(sql, sizeof(sql),
	         "SELECT queryid, dbid, userid, toplevel FROM ref_d WHERE active ORDER BY d_exec DESC, d_calls DESC, "
	         "queryid, dbid, userid, toplevel DESC LIMIT %u",
	         limit);
	PGresult *r = PQexec(f->ref, sql);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_int_equal(nt, PQntuples(r));
	for (size_t i = 0; i < nt; i++) {
		assert_int_equal(top[i].queryid, atoll(PQgetvalue(r, (int)i, 0)));
		assert_int_equal(top[i].dbid, strtoul(PQgetvalue(r, (int)i, 1), NULL, 10));
		assert_int_equal(top[i].userid, strtoul(PQgetvalue(r, (int)i, 2), NULL, 10));
	}
	PQclear(r);
}

/* ---- group setup ---- */

static int group_setup(void **state)
{
	(void)state;
	if (dbi_pgtest_start(&pg, NULL) != DBI_OK)
		return -1;
	char v[16];
	if (dbi_pgtest_sql(&pg, NULL, "SHOW server_version_num", v, sizeof(v)) != DBI_OK)
		return -1;
	server_ver = atoi(v);
	if (dbi_pgtest_sql(&pg, NULL, "CREATE DATABASE work", NULL, 0) != DBI_OK)
		return -1;
	if (dbi_pgtest_pgbench_init(&pg, "work", 1) != DBI_OK)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	dbi_pgtest_stop(&pg);
	return 0;
}

static int other_teardown(void **state)
{
	(void)state;
	dbi_pgtest_stop(&pg_other);
	return 0;
}

/* ---- tests ---- */

static void test_sums_match_sql_under_pgbench(void **state)
{
	struct fx f;
	struct dbi_pgbench b;
	struct dbi_pgbench_opts bo = {.db = "work", .clients = 4, .jobs = 2, .seconds = 8};
	const uint32_t limit = 10;
	(void)state;

	const char *work_calls = "SELECT sum(calls) FROM pg_stat_statements WHERE dbid = "
	                         "(SELECT oid FROM pg_database WHERE datname = 'work')";
	double exported = 0;
	size_t n;

	fx_init(&f, &pg, "postgres", limit);
	f.tee = true;
	snap_create(f.ref);
	assert_int_equal(drive(&f), DBI_OK); /* baseline */
	long long calls0 = value_ll(f.ref, work_calls);
	assert_int_equal(dbi_pgtest_pgbench_start(&pg, &bo, &b), DBI_OK);
	for (int i = 0; i < 4; i++) {
		struct timespec d = {1, 500000000};
		nanosleep(&d, NULL);
		assert_int_equal(drive(&f), DBI_OK);
		check_against_ref(&f, limit);
		exported += dbi_test_sink_sum(&f.sink, "postgresql.statement.calls", "postgresql.database.name", "work",
		                              &n);
	}
	assert_int_equal(dbi_pgtest_pgbench_wait(&b, 60), DBI_OK);
	assert_int_equal(drive(&f), DBI_OK);
	check_against_ref(&f, limit);
	exported += dbi_test_sink_sum(&f.sink, "postgresql.statement.calls", "postgresql.database.name", "work", &n);
	/*
	 * Independent of the reference (which carries rows a changed-only read did not
	 * return): pgbench is done and "work" is quiet, so the calls exported over all
	 * intervals (top-N + other) are exactly what pg_stat_statements counted since the
	 * baseline. Most of these reads returned changed rows only.
	 */
	assert_int_equal((long long)exported, value_ll(f.ref, work_calls) - calls0);
	/* changed-only reads need pg_stat_statements_info (PG 14+) */
	if (server_ver >= 140000)
		assert_true(dbi_pgss_get_stats(f.s)->changed_reads >= 3);
	else
		assert_int_equal(dbi_pgss_get_stats(f.s)->changed_reads, 0);
	/* pgbench's statements are in the top-N with their database and user names */
	dbi_test_sink_sum(&f.sink, "postgresql.statement.calls", "postgresql.database.name", "work", &n);
	assert_true(n >= 2);
	dbi_test_sink_sum(&f.sink, "postgresql.statement.calls", "postgresql.user.name", "postgres", &n);
	assert_true(n >= 2);
	const struct dbi_pgss_stats *st = dbi_pgss_get_stats(f.s);
	assert_int_equal(st->bad_rows, 0);
	assert_int_equal(st->rebaselines, 0);
	assert_int_equal(st->resets, 0);
	fx_free(&f);
}

static void run_n(PGconn *c, const char *sql, int n)
{
	for (int i = 0; i < n; i++)
		exec_ok(c, sql);
}

static double calls_of_text(struct fx *f, PGconn *work, const char *like)
{
	char sql[512], qid[32];
	size_t n;
	snprintf(sql, sizeof(sql),
	         "SELECT queryid FROM pg_stat_statements WHERE query LIKE '%s' AND dbid = "
	         "(SELECT oid FROM pg_database WHERE datname = current_database())",
	         like);
	value(work, sql, qid, sizeof(qid));
	if (!qid[0])
		return -1;
	double v = dbi_test_sink_sum(&f->sink, "postgresql.statement.calls", "postgresql.queryid", qid, &n);
	return n ? v : -1;
}

static void reset_scenario(uint32_t full_every)
{
	struct fx f;
	PGconn *work;

	fx_full_every = full_every;
	fx_init(&f, &pg, "postgres", 200);
	fx_full_every = 0;
	work = connect_db(&pg, "work");
	exec_ok(work, "CREATE TABLE IF NOT EXISTS rt (id int primary key, v text)");
	run_n(work, "SELECT count(*) FROM rt WHERE id > 1", 4);
	assert_int_equal(drive(&f), DBI_OK); /* baseline */
	run_n(work, "SELECT count(*) FROM rt WHERE id > 2", 5);
	assert_int_equal(drive(&f), DBI_OK);
	assert_true(calls_of_text(&f, work, "SELECT count(*) FROM rt WHERE id > $1") == 5);

	/*
	 * Full reset in the interval; afterwards more calls than the entry had before (11):
	 * pg_stat_statements_info.stats_reset tells (PG 14+). Before 14 only counters going
	 * down can (docs/query-intelligence.md), so there fewer calls than before.
	 */
	bool info = server_ver >= 140000;
	int again = info ? 12 : 3;
	run_n(work, "SELECT count(*) FROM rt WHERE id > 3", 2);
	exec_ok(work, "SELECT pg_stat_statements_reset()");
	run_n(work, "SELECT count(*) FROM rt WHERE id > 4", again);
	assert_int_equal(drive(&f), DBI_OK);
	check_nonnegative(&f);
	assert_true(calls_of_text(&f, work, "SELECT count(*) FROM rt WHERE id > $1") == again);
	assert_int_equal(dbi_pgss_get_stats(f.s)->resets, info ? 1 : 0);
	if (!info)
		assert_true(dbi_pgss_get_stats(f.s)->rebaselines >= 1);
	run_n(work, "SELECT count(*) FROM rt WHERE id > 5", 3);
	assert_int_equal(drive(&f), DBI_OK);
	assert_true(calls_of_text(&f, work, "SELECT count(*) FROM rt WHERE id > $1") == 3);

	/* one entry reset (as an eviction does): re-enters within the interval with fewer calls */
	char qid[32], sql[256];
	value(work, "SELECT queryid FROM pg_stat_statements WHERE query LIKE 'SELECT count(*) FROM rt WHERE id > $1'",
	      qid, sizeof(qid));
	snprintf(sql, sizeof(sql), "SELECT pg_stat_statements_reset(0, 0, %s)", qid);
	exec_ok(work, sql);
	run_n(work, "SELECT count(*) FROM rt WHERE id > 6", 2);
	assert_int_equal(drive(&f), DBI_OK);
	check_nonnegative(&f);
	assert_true(calls_of_text(&f, work, "SELECT count(*) FROM rt WHERE id > $1") == 2);
	/*
	 * Reset alone and absent at a scrape, then back with MORE calls than ever. Full
	 * reads: counted from zero. Changed-only reads cannot see an entry vanish without
	 * stats_reset or dealloc moving (PG < 17): the documented limit is that interval
	 * counting the difference to the calls it had (2), unless the min/max check sees
	 * the re-creation; never negative or double.
	 */
	exec_ok(work, sql);
	assert_int_equal(drive(&f), DBI_OK);
	run_n(work, "SELECT count(*) FROM rt WHERE id > 7", 20);
	assert_int_equal(drive(&f), DBI_OK);
	check_nonnegative(&f);
	double calls = calls_of_text(&f, work, "SELECT count(*) FROM rt WHERE id > $1");
	if (full_every == 1 || !info) /* before PG 14 every read is a full one */
		assert_true(calls == 20);
	else /* 20 when the new entry's min/max happen to show the re-creation, else 20 - 2 */
		assert_true(calls == 20 || calls == 18);
	assert_int_equal(dbi_pgss_get_stats(f.s)->resets, info ? 1 : 0);
	if (full_every == 1 || !info)
		assert_int_equal(dbi_pgss_get_stats(f.s)->changed_reads, 0);
	else
		assert_true(dbi_pgss_get_stats(f.s)->changed_reads > 0);
	PQfinish(work);
	fx_free(&f);
}

static void test_reset_no_negative_no_double(void **state)
{
	(void)state;
	reset_scenario(1);  /* full reads only */
	reset_scenario(20); /* changed-only reads between full ones (the default) */
}

/*
 * Changed-only reads on a quiet database: a few statements run between scrapes; the read
 * returns just those (plus rows without queryid), nothing is taken as gone, the deltas
 * are exact; after pg_stat_statements_reset() the read is a full one again.
 */
static void test_changed_reads(void **state)
{
	struct fx f;
	PGconn *work;
	(void)state;

	if (server_ver < 140000)
		skip(); /* changed-only reads need pg_stat_statements_info (PG 14+) */
	fx_init(&f, &pg, "postgres", 200);
	work = connect_db(&pg, "work");
	exec_ok(work, "CREATE TABLE IF NOT EXISTS cr (id int primary key, v text)");
	for (int i = 1; i <= 60; i++) { /* 60 entries that then stay idle: 1 .. 60 columns */
		char q[512];
		size_t o = (size_t)snprintf(q, sizeof(q), "SELECT id");
		for (int c = 1; c < i; c++)
			o += (size_t)snprintf(q + o, sizeof(q) - o, ", id");
		snprintf(q + o, sizeof(q) - o, " FROM cr");
		exec_ok(work, q);
	}
	assert_int_equal(drive(&f), DBI_OK); /* baseline, full */
	assert_int_equal(drive(&f), DBI_OK); /* full: the keys are known from here on */
	uint64_t rows0 = dbi_pgss_get_stats(f.s)->rows, ch0 = dbi_pgss_get_stats(f.s)->changed_reads;
	uint64_t tracked = dbi_pgss_get_stats(f.s)->tracked;
	assert_true(tracked >= 60);
	run_n(work, "SELECT count(*) FROM cr WHERE id > 9", 7);
	assert_int_equal(drive(&f), DBI_OK);
	assert_int_equal(dbi_pgss_get_stats(f.s)->changed_reads, ch0 + 1);
	uint64_t rows = dbi_pgss_get_stats(f.s)->rows - rows0;
	/* what ran since the last read: ours, the test's own queries, the collector's follow-ups */
	assert_true(rows > 0 && rows < tracked / 2);
	assert_true(calls_of_text(&f, work, "SELECT count(*) FROM cr WHERE id > $1") == 7);
	assert_true(dbi_pgss_get_stats(f.s)->tracked > tracked); /* the new one; absent ones stay */
	assert_int_equal(dbi_pgss_get_stats(f.s)->gone, 0);

	/* an eviction-like reset of everything: the next read is full, and nothing is negative */
	exec_ok(work, "SELECT pg_stat_statements_reset()");
	run_n(work, "SELECT count(*) FROM cr WHERE id > 9", 3);
	assert_int_equal(drive(&f), DBI_OK);
	check_nonnegative(&f);
	assert_true(calls_of_text(&f, work, "SELECT count(*) FROM cr WHERE id > $1") == 3);
	assert_true(dbi_pgss_get_stats(f.s)->gone > 0);
	PQfinish(work);
	fx_free(&f);
}

/*
 * Two targets of one scraper thread share a pool: the changed-only read's keys are built
 * in one buffer for both. Each target must send its own keys: if a target sent the other's
 * (newer) keys, the statements that ran between the two reads would look unchanged to it
 * and their calls would be lost.
 */
static void test_changed_reads_shared_pool(void **state)
{
	struct dbi_pgss_pool *pool;
	struct fx a, b;
	PGconn *work;
	(void)state;

	if (server_ver < 140000)
		skip(); /* changed-only reads need pg_stat_statements_info (PG 14+) */
	pool = dbi_pgss_pool_create();
	assert_non_null(pool);
	fx_init_pool(&a, &pg, "postgres", 200, pool);
	fx_init_pool(&b, &pg, "postgres", 200, pool);
	work = connect_db(&pg, "work");
	exec_ok(work, "CREATE TABLE IF NOT EXISTS cr (id int primary key, v text)");
	run_n(work, "SELECT count(*) FROM cr WHERE id > 11", 1);
	for (int k = 0; k < 2; k++) { /* baselines and the first full reads: keys known from here on */
		assert_int_equal(drive(&a), DBI_OK);
		assert_int_equal(drive(&b), DBI_OK);
	}
	uint64_t cha = dbi_pgss_get_stats(a.s)->changed_reads, chb = dbi_pgss_get_stats(b.s)->changed_reads;
	for (int k = 1; k <= 3; k++) {
		run_n(work, "SELECT count(*) FROM cr WHERE id > 11", 2 * k);
		assert_int_equal(drive(&b), DBI_OK); /* b's keys now say "ran 2k more times" */
		/* b also sees the one run after its previous read */
		assert_true(calls_of_text(&b, work, "SELECT count(*) FROM cr WHERE id > $1") == 2 * k + (k > 1));
		run_n(work, "SELECT count(*) FROM cr WHERE id > 11", 1);
		assert_int_equal(drive(&a), DBI_OK); /* a read last before both batches: it counts both */
		assert_true(calls_of_text(&a, work, "SELECT count(*) FROM cr WHERE id > $1") == 2 * k + 1);
		check_nonnegative(&a);
	}
	assert_int_equal(dbi_pgss_get_stats(a.s)->changed_reads, cha + 3);
	assert_int_equal(dbi_pgss_get_stats(b.s)->changed_reads, chb + 3);
	PQfinish(work);
	fx_free(&a);
	fx_free(&b);
	dbi_pgss_pool_release(pool);
}

static void test_texts_only_for_new_queryids(void **state)
{
	struct fx f;
	PGconn *work;
	(void)state;

	fx_init(&f, &pg, "postgres", 200);
	work = connect_db(&pg, "work");
	exec_ok(work, "CREATE TABLE IF NOT EXISTS tt (id int primary key, a int, s text)");
	const char *load[] = {"SELECT * FROM tt WHERE id = 1", "SELECT a FROM tt WHERE s = 'x'",
	                      "UPDATE tt SET a = a + 1 WHERE id = 2"};
	/* warm up: our own queries are statements too, and become known */
	for (int k = 0; k < 4; k++) {
		for (size_t i = 0; i < 3; i++)
			exec_ok(work, load[i]);
		assert_int_equal(drive(&f), DBI_OK);
	}
	unsigned texts = f.nq[DBI_PGSS_Q_TEXTS];
	uint64_t requested = dbi_pgss_get_stats(f.s)->texts_requested;
	for (int k = 0; k < 3; k++) {
		for (size_t i = 0; i < 3; i++)
			exec_ok(work, load[i]);
		assert_int_equal(drive(&f), DBI_OK);
	}
	assert_int_equal(f.nq[DBI_PGSS_Q_TEXTS], texts); /* nothing new: no text read */
	assert_int_equal(f.nq[DBI_PGSS_Q_COUNTERS], 7);
	assert_int_equal(f.nq[DBI_PGSS_Q_PROBE], 1);

	/* one new statement: one text query, for it alone */
	exec_ok(work, "SELECT s FROM tt WHERE a > 5 ORDER BY id");
	assert_int_equal(drive(&f), DBI_OK);
	assert_int_equal(f.nq[DBI_PGSS_Q_TEXTS], texts + 1);
	assert_int_equal(dbi_pgss_get_stats(f.s)->texts_requested, requested + 1);
	assert_true(calls_of_text(&f, work, "SELECT s FROM tt WHERE a > $1 ORDER BY id") == 1);
	/* it carries a fingerprint, and its sample went out */
	char qid[32], fp[32];
	size_t n;
	value(work, "SELECT queryid FROM pg_stat_statements WHERE query = 'SELECT s FROM tt WHERE a > $1 ORDER BY id'",
	      qid, sizeof(qid));
	for (size_t i = 0; i < f.sink.npts; i++) {
		char q[32];
		if (dbi_test_sink_attr(&f.sink, f.sink.pts[i].series, "postgresql.queryid", q, sizeof(q)) &&
		    !strcmp(q, qid))
			assert_true(dbi_test_sink_attr(&f.sink, f.sink.pts[i].series, "db.query.fingerprint", fp, 32));
	}
	dbi_test_sink_sum(&f.sink, "postgresql.statement.calls", "db.query.fingerprint", fp, &n);
	assert_int_equal(n, 1);
	bool found = false;
	for (int j = 0; j < f.nsample_fp; j++)
		found |= !strcmp(f.sample_fp[j], fp);
	assert_true(found);
	PQfinish(work);
	fx_free(&f);
}

static void test_samples_once_and_literal_free(void **state)
{
	struct fx f;
	PGconn *work;
	static const char *const secrets[] = {"secret-literal-8472", "987654321", "hunter2-pw", "acme-secret",
	                                      "4111111111111111"};
	(void)state;

	fx_init(&f, &pg, "postgres", 200);
	work = connect_db(&pg, "work");
	assert_int_equal(drive(&f), DBI_OK);
	exec_ok(work, "SELECT * FROM pgbench_accounts WHERE filler = 'secret-literal-8472' AND aid = 987654321");
	exec_ok(work, "/* customer=acme-secret */ SELECT count(*) FROM pgbench_branches WHERE bid > 3");
	exec_ok(work, "CREATE ROLE sample_role PASSWORD 'hunter2-pw'");
	exec_ok(work, "DROP ROLE sample_role");
	exec_ok(work, "SELECT abalance FROM pgbench_accounts WHERE aid IN (1, 2)");
	exec_ok(work, "SELECT abalance FROM pgbench_accounts WHERE aid IN (4111111111111111, 2, 3)");
	/* the two IN lists are two queryids (one fingerprint, below) */
	char q1[32], q2[32];
	value(work, "SELECT queryid FROM pg_stat_statements WHERE query LIKE '%aid IN ($1, $2)'", q1, sizeof(q1));
	value(work, "SELECT queryid FROM pg_stat_statements WHERE query LIKE '%aid IN ($1, $2, $3)'", q2, sizeof(q2));
	assert_true(q1[0] && q2[0]);
	assert_string_not_equal(q1, q2);
	/* the utility statement is stored with its literal: only our normalization removes it */
	assert_true(value_ll(work, "SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%hunter2-pw%'") == 1);
	dbi_test_sink_clear(&f.sink);
	assert_int_equal(drive(&f), DBI_OK);
	int samples = 0, in_lists = 0;
	char fp1[32] = "", fp2[32] = "";
	for (size_t i = 0; i < f.sink.npts; i++) {
		char q[32];
		if (!dbi_test_sink_attr(&f.sink, f.sink.pts[i].series, "postgresql.queryid", q, sizeof(q)))
			continue;
		if (!strcmp(q, q1))
			dbi_test_sink_attr(&f.sink, f.sink.pts[i].series, "db.query.fingerprint", fp1, 32);
		if (!strcmp(q, q2))
			dbi_test_sink_attr(&f.sink, f.sink.pts[i].series, "db.query.fingerprint", fp2, 32);
	}
	assert_true(fp1[0] != '\0');
	assert_string_equal(fp1, fp2);
	for (size_t i = 0; i < f.sink.nrecs; i++) {
		if (f.sink.recs[i].type != DBI_REC_LOG)
			continue;
		const struct dbi_otlp_rec *o = (const void *)f.sink.recs[i].buf;
		Opentelemetry__Proto__Logs__V1__LogRecord *lr =
		        opentelemetry__proto__logs__v1__log_record__unpack(NULL, o->pb_len, dbi_otlp_rec_pb(o));
		const char *body = lr->body->string_value;
		samples++;
		for (size_t s = 0; s < DBI_ARRAY_LEN(secrets); s++)
			if (strstr(body, secrets[s]))
				fail_msg("literal %s in sample: %s", secrets[s], body);
		for (size_t a = 0; a < lr->n_attributes; a++) {
			const char *k = lr->attributes[a]->key, *v = lr->attributes[a]->value->string_value;
			if (!strcmp(k, "db.query.fingerprint") && !strcmp(v, fp1))
				in_lists++;
			if (!strcmp(k, "postgresql.database.name") && strstr(body, "pgbench_"))
				assert_string_equal(v, "work");
		}
		opentelemetry__proto__logs__v1__log_record__free_unpacked(lr, NULL);
	}
	assert_true(samples >= 5);
	assert_int_equal(in_lists, 1);
	assert_int_equal(dbi_pgss_get_stats(f.s)->samples, (uint64_t)samples);
	PQfinish(work);
	fx_free(&f);
}

static void test_extension_versions(void **state)
{
	static const char *const versions[] = {"1.7", "1.8", "1.9", "1.10"};
	int tested = 0;
	(void)state;
	for (size_t v = 0; v < DBI_ARRAY_LEN(versions); v++) {
		char sql0[160], avail[8];
		/* the versions this server ships (12: 1.7; 13: 1.8; 14: 1.9; 15+: 1.10) */
		snprintf(sql0, sizeof(sql0),
		         "SELECT count(*) FROM pg_available_extension_versions WHERE name = 'pg_stat_statements' AND "
		         "version = '%s'",
		         versions[v]);
		assert_int_equal(dbi_pgtest_sql(&pg, NULL, sql0, avail, sizeof(avail)), DBI_OK);
		if (strcmp(avail, "1") != 0)
			continue;
		tested++;
		for (int text = 0; text < 2; text++) {
			char db[32], sql[256];
			struct fx f;
			PGconn *c;
			snprintf(db, sizeof(db), "v%zu_%d", v, text);
			snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0", db);
			assert_int_equal(dbi_pgtest_sql(&pg, NULL, sql, NULL, 0), DBI_OK);
			snprintf(sql, sizeof(sql), "CREATE EXTENSION pg_stat_statements VERSION '%s'", versions[v]);
			assert_int_equal(dbi_pgtest_sql(&pg, db, sql, NULL, 0), DBI_OK);
			fx_init(&f, &pg, db, 200);
			f.text_results = text;
			f.tee = v >= 1; /* the reference table has the 1.8+ columns */
			snap_create(f.ref);
			c = connect_db(&pg, db);
			exec_ok(c, "CREATE TABLE vt (id int)");
			assert_int_equal(drive(&f), DBI_OK);
			run_n(c, "SELECT count(*) FROM vt WHERE id = 1", 9);
			assert_int_equal(drive(&f), DBI_OK);
			assert_int_equal(dbi_pgss_status(f.s, NULL), DBI_PGSS_OK);
			assert_true(calls_of_text(&f, c, "SELECT count(*) FROM vt WHERE id = $1") == 9);
			size_t n;
			/* plan/WAL series only from 1.8 on; toplevel attribute from 1.9 on */
			dbi_test_sink_sum(&f.sink, "postgresql.statement.wal.bytes", NULL, NULL, &n);
			assert_true(v == 0 ? n == 0 : n > 0);
			char tl[16];
			assert_true(dbi_test_sink_attr(&f.sink, f.sink.pts[0].series, "postgresql.statement.toplevel",
			                               tl, 16) == (v >= 2));
			if (v >= 1) {
				run_n(c, "SELECT count(*) FROM vt WHERE id = 2", 3);
				assert_int_equal(drive(&f), DBI_OK);
				check_against_ref(&f, 200);
			}
			PQfinish(c);
			fx_free(&f);
		}
	}
	assert_true(tested >= 1);
}

static void test_extension_absent(void **state)
{
	struct fx f;
	const char *msg;
	(void)state;
	assert_int_equal(dbi_pgtest_sql(&pg, NULL, "CREATE DATABASE noext TEMPLATE template0", NULL, 0), DBI_OK);
	fx_init(&f, &pg, "noext", 200);
	assert_int_equal(drive(&f), DBI_ERR);
	assert_int_equal(dbi_pgss_status(f.s, &msg), DBI_PGSS_EXT_MISSING);
	assert_true(dbi_pgss_status_disables(DBI_PGSS_EXT_MISSING));
	assert_non_null(strstr(msg, "CREATE EXTENSION pg_stat_statements"));
	/* and it stays off without asking the server again on this connection */
	unsigned probes = f.nq[DBI_PGSS_Q_PROBE];
	assert_int_equal(drive(&f), DBI_ERR);
	assert_int_equal(f.nq[DBI_PGSS_Q_PROBE], probes);
	assert_int_equal(f.nq[DBI_PGSS_Q_COUNTERS], 0);
	fx_free(&f);
}

static void test_not_preloaded(void **state)
{
	const char *settings[] = {"shared_preload_libraries=auto_explain", NULL};
	struct dbi_pgtest_opts o = {.settings = settings};
	struct fx f;
	const char *msg;
	(void)state;
	assert_int_equal(dbi_pgtest_start(&pg_other, &o), DBI_OK);
	fx_init(&f, &pg_other, "postgres", 200);
	assert_int_equal(drive(&f), DBI_ERR);
	assert_int_equal(dbi_pgss_status(f.s, &msg), DBI_PGSS_NOT_LOADED);
	assert_true(dbi_pgss_status_disables(DBI_PGSS_NOT_LOADED));
	assert_non_null(strstr(msg, "shared_preload_libraries"));
	fx_free(&f);
	dbi_pgtest_stop(&pg_other);
}

static void test_eviction_keeps_sums_exact(void **state)
{
	const char *settings[] = {"pg_stat_statements.max=100", NULL};
	struct dbi_pgtest_opts o = {.settings = settings};
	struct fx f;
	PGconn *c;
	(void)state;

	assert_int_equal(dbi_pgtest_start(&pg_other, &o), DBI_OK);
	assert_int_equal(
	        dbi_pgtest_sql(&pg_other, NULL,
	                       "DO $$BEGIN FOR i IN 1..300 LOOP EXECUTE format('CREATE TABLE e%s (id int)', i); "
	                       "END LOOP; END$$",
	                       NULL, 0),
	        DBI_OK);
	fx_init(&f, &pg_other, "postgres", 20);
	f.tee = true;
	snap_create(f.ref);
	c = connect_db(&pg_other, "postgres");
	assert_int_equal(drive(&f), DBI_OK);
	for (int round = 0; round < 6; round++) {
		char sql[256];
		/* a hot set that survives, and a churning tail that evicts and re-enters */
		for (int h = 1; h <= 10; h++) {
			snprintf(sql, sizeof(sql), "SELECT count(*) FROM e%d", h);
			run_n(c, sql, 5);
		}
		snprintf(sql, sizeof(sql),
		         "DO $$BEGIN FOR i IN %d..%d LOOP EXECUTE format('SELECT count(*) FROM e%%s', i); "
		         "END LOOP; END$$",
		         11 + round * 40, 150 + round * 25);
		exec_ok(c, sql);
		assert_int_equal(drive(&f), DBI_OK);
		check_against_ref(&f, 20);
	}
	assert_true(dbi_pgss_get_stats(f.s)->gone > 0);
	size_t n;
	dbi_test_sink_sum(&f.sink, "postgresql.statement.deallocations", NULL, NULL, &n);
	if (server_ver >= 140000) { /* pg_stat_statements_info.dealloc */
		assert_true(value_ll(f.ref, "SELECT dealloc FROM pg_stat_statements_info") > 0);
		assert_int_equal(n, 1);
	} else {
		assert_int_equal(n, 0);
	}
	PQfinish(c);
	fx_free(&f);
	dbi_pgtest_stop(&pg_other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sums_match_sql_under_pgbench),
	        cmocka_unit_test(test_reset_no_negative_no_double),
	        cmocka_unit_test(test_changed_reads),
	        cmocka_unit_test(test_changed_reads_shared_pool),
	        cmocka_unit_test(test_texts_only_for_new_queryids),
	        cmocka_unit_test(test_samples_once_and_literal_free),
	        cmocka_unit_test(test_extension_versions),
	        cmocka_unit_test(test_extension_absent),
	        cmocka_unit_test_teardown(test_not_preloaded, other_teardown),
	        cmocka_unit_test_teardown(test_eviction_keeps_sums_exact, other_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
