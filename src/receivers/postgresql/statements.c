/*
 * statements.c — pg_stat_statements → interval deltas → top-N + "other" + histogram +
 * query samples. See statements.h for the contract with the engine.
 *
 * Why it is built this way:
 *  - Cost on the database: every scrape reads pg_stat_statements(false), which never
 *    touches the query-text file; text is fetched only for statements that enter the
 *    top-N with a queryid the fingerprint cache has not seen.
 *  - Correct deltas: a statement is a new entry unless its counters continue the last
 *    ones. An entry absent from one scrape is forgotten, so when it comes back its whole
 *    counters are interval activity (it was created after the previous scrape). An entry
 *    whose counters went down, whose min/max moved the wrong way, whose stats_since changed
 *    (PG 17), or any entry after pg_stat_statements_info.stats_reset moved (PG 14+), was
 *    re-created within the interval: its current counters are the delta (a new baseline,
 *    counted). Nothing is ever negative and nothing is counted twice.
 *  - Collector CPU: one pass over the rows updates the table in place, accumulates the
 *    per-database aggregates, and keeps the top-N in a bounded min-heap (O(n log N), no
 *    full sort); statements falling out of the heap go into "other" as they fall, so
 *    top-N + other = all, exactly for counts. Nothing allocates in the steady state.
 *  - Cost on the database, again: most statements do not run in most intervals, yet
 *    sending every row costs the server as much as reading the entries. From PG 14
 *    (pg_stat_statements 1.9) each row carries a change key the server computes, a hash
 *    of (dbid, userid, queryid, toplevel, calls + plans); calls or plans move whenever
 *    anything else does. The module keeps each statement's key and asks only for the
 *    rows whose key it does not hold: what ran, what is new, and the rows it may not
 *    see (no queryid). Absent rows are unchanged. Entries can vanish only by eviction
 *    (dealloc moves) or reset (stats_reset moves); when either moved since the last read
 *    the server returns every row, and when one moves during a read, or the key filter
 *    is not safe for another reason (no baseline, overflow), the next read is a full one.
 *    Every full_read_every-th read (20) is a full one anyway. What this cannot see: an
 *    entry removed alone by pg_stat_statements_reset(userid, dbid, queryid), which moves
 *    neither stats_reset nor dealloc, stays known until the next full read; if it comes
 *    back before then with more calls than it had, that interval may count only the difference
 *    (PG 17's stats_since tells, so there it is counted whole). Nothing is negative or
 *    double either way; full_read_every = 1 turns the changed-only reads off.
 *  - Collector memory: a fleet has many small targets, so every per-target array starts
 *    small (a few statements, databases, export slots) and doubles on the cold path when
 *    a target shows more; the limits (max_statements, 2 x limit export slots) only cap
 *    the growth. Buffers needed only while texts arrive (the normalized-text buffer) are
 *    shared by the targets of one scraper thread.
 */
#include "statements.h"

#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opentelemetry/proto/logs/v1/logs.pb-c.h"

#define PGSS_MARK "/* dbi:statements */ "

/*
 * The change key: strict, so rows without queryid have none and are always returned.
 * hashint8extended exists from PG 11; the filter only runs from 14 (1.9) on.
 */
#define PGSS_RKEY                                                                                                      \
	"hashint8extended(calls + plans, hashint8extended(queryid, ((dbid::int8 << 32) | userid::int8) # "             \
	"toplevel::int::int8))"

/* ---- metric descriptors ---- */

static const struct dbi_metric_def stmt_defs[DBI_PGSS_M_COUNT] = {
        [DBI_PGSS_M_CALLS] = {"postgresql.statement.calls", "{call}",
                              "Executions of the statement in the interval (pg_stat_statements.calls).", DBI_MK_SUM, 1,
                              DBI_TEMP_DELTA, 0},
        [DBI_PGSS_M_EXEC_TIME] = {"postgresql.statement.execution.time", "s",
                                  "Time spent executing the statement in the interval (total_exec_time).", DBI_MK_SUM,
                                  1, DBI_TEMP_DELTA, 1},
        [DBI_PGSS_M_EXEC_MEAN] = {"postgresql.statement.execution.mean_time", "s",
                                  "Mean execution time of the statement over the interval's calls.", DBI_MK_GAUGE, 0, 0,
                                  1},
        [DBI_PGSS_M_PLAN_TIME] = {"postgresql.statement.planning.time", "s",
                                  "Time spent planning the statement in the interval (total_plan_time, PG 13+).",
                                  DBI_MK_SUM, 1, DBI_TEMP_DELTA, 1},
        [DBI_PGSS_M_ROWS] = {"postgresql.statement.rows", "{row}", "Rows retrieved or affected in the interval.",
                             DBI_MK_SUM, 1, DBI_TEMP_DELTA, 0},
        [DBI_PGSS_M_SHARED_HIT] = {"postgresql.statement.shared_blocks.hit", "{block}",
                                   "Shared buffer hits in the interval.", DBI_MK_SUM, 1, DBI_TEMP_DELTA, 0},
        [DBI_PGSS_M_SHARED_READ] = {"postgresql.statement.shared_blocks.read", "{block}",
                                    "Shared blocks read in the interval.", DBI_MK_SUM, 1, DBI_TEMP_DELTA, 0},
        [DBI_PGSS_M_SHARED_DIRTIED] = {"postgresql.statement.shared_blocks.dirtied", "{block}",
                                       "Shared blocks dirtied in the interval.", DBI_MK_SUM, 1, DBI_TEMP_DELTA, 0},
        [DBI_PGSS_M_SHARED_WRITTEN] = {"postgresql.statement.shared_blocks.written", "{block}",
                                       "Shared blocks written in the interval.", DBI_MK_SUM, 1, DBI_TEMP_DELTA, 0},
        [DBI_PGSS_M_LOCAL_READ] = {"postgresql.statement.local_blocks.read", "{block}",
                                   "Local (temporary table) blocks read in the interval.", DBI_MK_SUM, 1,
                                   DBI_TEMP_DELTA, 0},
        [DBI_PGSS_M_LOCAL_WRITTEN] = {"postgresql.statement.local_blocks.written", "{block}",
                                      "Local (temporary table) blocks written in the interval.", DBI_MK_SUM, 1,
                                      DBI_TEMP_DELTA, 0},
        [DBI_PGSS_M_TEMP_READ] = {"postgresql.statement.temp_blocks.read", "{block}",
                                  "Temporary-file blocks read in the interval.", DBI_MK_SUM, 1, DBI_TEMP_DELTA, 0},
        [DBI_PGSS_M_TEMP_WRITTEN] = {"postgresql.statement.temp_blocks.written", "{block}",
                                     "Temporary-file blocks written in the interval.", DBI_MK_SUM, 1, DBI_TEMP_DELTA,
                                     0},
        [DBI_PGSS_M_BLK_READ_TIME] = {"postgresql.statement.io.read_time", "s",
                                      "Time reading shared blocks in the interval (track_io_timing).", DBI_MK_SUM, 1,
                                      DBI_TEMP_DELTA, 1},
        [DBI_PGSS_M_BLK_WRITE_TIME] = {"postgresql.statement.io.write_time", "s",
                                       "Time writing shared blocks in the interval (track_io_timing).", DBI_MK_SUM, 1,
                                       DBI_TEMP_DELTA, 1},
        [DBI_PGSS_M_WAL_RECORDS] = {"postgresql.statement.wal.records", "{record}",
                                    "WAL records generated in the interval (PG 13+).", DBI_MK_SUM, 1, DBI_TEMP_DELTA,
                                    0},
        [DBI_PGSS_M_WAL_FPI] = {"postgresql.statement.wal.full_page_images", "{image}",
                                "WAL full-page images generated in the interval (PG 13+).", DBI_MK_SUM, 1,
                                DBI_TEMP_DELTA, 0},
        [DBI_PGSS_M_WAL_BYTES] = {"postgresql.statement.wal.bytes", "By",
                                  "WAL bytes generated in the interval (PG 13+).", DBI_MK_SUM, 1, DBI_TEMP_DELTA, 0},
};

static const struct dbi_metric_def db_exec_def = {
        "postgresql.query.toplevel.execution.time",
        "s",
        "Execution time of top-level statements of the database in the interval (sum of total_exec_time).",
        DBI_MK_SUM,
        1,
        DBI_TEMP_DELTA,
        1};
static const struct dbi_metric_def db_hist_def = {
        "postgresql.query.execution.duration",
        "s",
        "Top-level statement executions by duration in the interval; each statement's calls are placed in the "
        "bucket of its interval mean time (pg_stat_statements has no per-call times).",
        DBI_MK_HISTOGRAM,
        0,
        DBI_TEMP_DELTA,
        1};
static const struct dbi_metric_def dealloc_def = {
        "postgresql.statement.deallocations",
        "{deallocation}",
        "Times pg_stat_statements evicted its least-used entries in the interval (PG 14+).",
        DBI_MK_SUM,
        1,
        DBI_TEMP_DELTA,
        0};
static const struct dbi_metric_def tracked_def = {
        "postgresql.statement.tracked", "{statement}", "Statements in pg_stat_statements now.", DBI_MK_GAUGE, 0, 0, 0};

const struct dbi_metric_def *dbi_pgss_metric_def(enum dbi_pgss_metric m)
{
	return (unsigned)m < DBI_PGSS_M_COUNT ? &stmt_defs[m] : NULL;
}

const double dbi_pgss_hist_bounds_ms[DBI_PGSS_HIST_NB] = {0.1, 1, 10, 100, 1000};

unsigned dbi_pgss_hist_bucket(double mean_ms)
{
	unsigned b = 0;
	while (b < DBI_PGSS_HIST_NB && mean_ms > dbi_pgss_hist_bounds_ms[b])
		b++;
	return b;
}

/* Which counter / time a metric reads (-1: none). */
static const int8_t metric_ctr[DBI_PGSS_M_COUNT] = {
        [DBI_PGSS_M_CALLS] = DBI_PGSS_C_CALLS,
        [DBI_PGSS_M_EXEC_TIME] = -1,
        [DBI_PGSS_M_EXEC_MEAN] = -1,
        [DBI_PGSS_M_PLAN_TIME] = -1,
        [DBI_PGSS_M_ROWS] = DBI_PGSS_C_ROWS,
        [DBI_PGSS_M_SHARED_HIT] = DBI_PGSS_C_SHARED_HIT,
        [DBI_PGSS_M_SHARED_READ] = DBI_PGSS_C_SHARED_READ,
        [DBI_PGSS_M_SHARED_DIRTIED] = DBI_PGSS_C_SHARED_DIRTIED,
        [DBI_PGSS_M_SHARED_WRITTEN] = DBI_PGSS_C_SHARED_WRITTEN,
        [DBI_PGSS_M_LOCAL_READ] = DBI_PGSS_C_LOCAL_READ,
        [DBI_PGSS_M_LOCAL_WRITTEN] = DBI_PGSS_C_LOCAL_WRITTEN,
        [DBI_PGSS_M_TEMP_READ] = DBI_PGSS_C_TEMP_READ,
        [DBI_PGSS_M_TEMP_WRITTEN] = DBI_PGSS_C_TEMP_WRITTEN,
        [DBI_PGSS_M_BLK_READ_TIME] = -1,
        [DBI_PGSS_M_BLK_WRITE_TIME] = -1,
        [DBI_PGSS_M_WAL_RECORDS] = DBI_PGSS_C_WAL_RECORDS,
        [DBI_PGSS_M_WAL_FPI] = DBI_PGSS_C_WAL_FPI,
        [DBI_PGSS_M_WAL_BYTES] = DBI_PGSS_C_WAL_BYTES,
};
static const int8_t metric_tm[DBI_PGSS_M_COUNT] = {
        [DBI_PGSS_M_CALLS] = -1,
        [DBI_PGSS_M_EXEC_TIME] = DBI_PGSS_T_EXEC,
        [DBI_PGSS_M_EXEC_MEAN] = -1,
        [DBI_PGSS_M_PLAN_TIME] = DBI_PGSS_T_PLAN,
        [DBI_PGSS_M_ROWS] = -1,
        [DBI_PGSS_M_SHARED_HIT] = -1,
        [DBI_PGSS_M_SHARED_READ] = -1,
        [DBI_PGSS_M_SHARED_DIRTIED] = -1,
        [DBI_PGSS_M_SHARED_WRITTEN] = -1,
        [DBI_PGSS_M_LOCAL_READ] = -1,
        [DBI_PGSS_M_LOCAL_WRITTEN] = -1,
        [DBI_PGSS_M_TEMP_READ] = -1,
        [DBI_PGSS_M_TEMP_WRITTEN] = -1,
        [DBI_PGSS_M_BLK_READ_TIME] = DBI_PGSS_T_BLK_READ,
        [DBI_PGSS_M_BLK_WRITE_TIME] = DBI_PGSS_T_BLK_WRITE,
        [DBI_PGSS_M_WAL_RECORDS] = -1,
        [DBI_PGSS_M_WAL_FPI] = -1,
        [DBI_PGSS_M_WAL_BYTES] = -1,
};

/* ---- SQL per extension version ---- */

#define COLS_BLKS                                                                                                      \
	"rows, shared_blks_hit, shared_blks_read, shared_blks_dirtied, shared_blks_written, local_blks_read, "         \
	"local_blks_written, temp_blks_read, temp_blks_written, "

static const char sql_counters_1_3[] =
        PGSS_MARK "SELECT userid, dbid, queryid, calls, total_time AS total_exec_time, min_time AS min_exec_time, "
                  "max_time AS max_exec_time, " COLS_BLKS "blk_read_time, blk_write_time "
                  "FROM pg_stat_statements(false)";
static const char sql_counters_1_8[] =
        PGSS_MARK "SELECT userid, dbid, queryid, plans, total_plan_time, calls, total_exec_time, min_exec_time, "
                  "max_exec_time, " COLS_BLKS "blk_read_time, blk_write_time, wal_records, wal_fpi, "
                  "wal_bytes::int8 AS wal_bytes FROM pg_stat_statements(false)";
static const char sql_counters_1_9[] =
        PGSS_MARK "SELECT userid, dbid, toplevel, queryid, plans, total_plan_time, calls, total_exec_time, "
                  "min_exec_time, max_exec_time, " COLS_BLKS "blk_read_time, blk_write_time, wal_records, wal_fpi, "
                  "wal_bytes::int8 AS wal_bytes FROM pg_stat_statements(false)";
static const char sql_counters_1_11[] =
        PGSS_MARK "SELECT userid, dbid, toplevel, queryid, plans, total_plan_time, calls, total_exec_time, "
                  "min_exec_time, max_exec_time, " COLS_BLKS "shared_blk_read_time AS blk_read_time, "
                  "shared_blk_write_time AS blk_write_time, wal_records, wal_fpi, wal_bytes::int8 AS wal_bytes, "
                  "stats_since FROM pg_stat_statements(false)";
static const char sql_info[] = PGSS_MARK "SELECT stats_reset, dealloc FROM pg_stat_statements_info";
static const char sql_probe[] = PGSS_MARK "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'";
static const char sql_texts[] =
        PGSS_MARK "SELECT queryid, query FROM pg_stat_statements(true) WHERE queryid = ANY($1::int8[])";
static const char sql_names[] = PGSS_MARK "SELECT false AS is_role, oid, datname::text AS name FROM pg_database "
                                          "WHERE oid = ANY($1::oid[]) UNION ALL "
                                          "SELECT true, oid, rolname::text FROM pg_roles WHERE oid = ANY($2::oid[])";

enum dbi_pgss_api dbi_pgss_api_of(const char *v)
{
	unsigned long major, minor = 0;
	char *end;

	if (!v || !*v)
		return DBI_PGSS_API_NONE;
	major = strtoul(v, &end, 10);
	if (*end == '.')
		minor = strtoul(end + 1, NULL, 10);
	if (major != 1 || minor < 3)
		return major > 1 ? DBI_PGSS_API_1_11 : DBI_PGSS_API_NONE;
	if (minor >= 11)
		return DBI_PGSS_API_1_11;
	if (minor == 10)
		return DBI_PGSS_API_1_10;
	if (minor == 9)
		return DBI_PGSS_API_1_9;
	if (minor == 8)
		return DBI_PGSS_API_1_8;
	return DBI_PGSS_API_1_3;
}

enum dbi_pgss_api dbi_pgss_api_default(int v)
{
	if (v >= 170000)
		return DBI_PGSS_API_1_11;
	if (v >= 150000)
		return DBI_PGSS_API_1_10;
	if (v >= 140000)
		return DBI_PGSS_API_1_9;
	if (v >= 130000)
		return DBI_PGSS_API_1_8;
	if (v >= 90500)
		return DBI_PGSS_API_1_3;
	return DBI_PGSS_API_NONE;
}

const char *dbi_pgss_counters_sql(enum dbi_pgss_api api)
{
	switch (api) {
	case DBI_PGSS_API_1_3:
		return sql_counters_1_3;
	case DBI_PGSS_API_1_8:
		return sql_counters_1_8;
	case DBI_PGSS_API_1_9:
	case DBI_PGSS_API_1_10:
		return sql_counters_1_9;
	case DBI_PGSS_API_1_11:
		return sql_counters_1_11;
	default:
		return NULL;
	}
}

/*
 * The counters SQL for an API level and metric mask: only the columns the enabled
 * metrics need (plus keys, calls, execution time and min/max for re-creation checks).
 * Every column costs the server an output conversion per statement per scrape.
 */
size_t dbi_pgss_build_counters_sql(enum dbi_pgss_api api, uint32_t m, bool changed_only, char *buf, size_t cap)
{
	const bool v18 = api >= DBI_PGSS_API_1_8, v111 = api >= DBI_PGSS_API_1_11;
	const struct {
		const char *sql;
		bool on;
	} cols[] = {
	        {"userid, dbid", true},
	        {"toplevel", api >= DBI_PGSS_API_1_9},
	        {"queryid", true},
	        {"plans, total_plan_time", v18 && (m & DBI_PGSS_M_BIT(DBI_PGSS_M_PLAN_TIME))},
	        {"calls", true},
	        {v18 ? "total_exec_time, min_exec_time, max_exec_time"
	             : "total_time AS total_exec_time, min_time AS min_exec_time, max_time AS max_exec_time",
	         true},
	        {"rows", m & DBI_PGSS_M_BIT(DBI_PGSS_M_ROWS)},
	        {"shared_blks_hit", m & DBI_PGSS_M_BIT(DBI_PGSS_M_SHARED_HIT)},
	        {"shared_blks_read", m & DBI_PGSS_M_BIT(DBI_PGSS_M_SHARED_READ)},
	        {"shared_blks_dirtied", m & DBI_PGSS_M_BIT(DBI_PGSS_M_SHARED_DIRTIED)},
	        {"shared_blks_written", m & DBI_PGSS_M_BIT(DBI_PGSS_M_SHARED_WRITTEN)},
	        {"local_blks_read", m & DBI_PGSS_M_BIT(DBI_PGSS_M_LOCAL_READ)},
	        {"local_blks_written", m & DBI_PGSS_M_BIT(DBI_PGSS_M_LOCAL_WRITTEN)},
	        {"temp_blks_read", m & DBI_PGSS_M_BIT(DBI_PGSS_M_TEMP_READ)},
	        {"temp_blks_written", m & DBI_PGSS_M_BIT(DBI_PGSS_M_TEMP_WRITTEN)},
	        {v111 ? "shared_blk_read_time AS blk_read_time" : "blk_read_time",
	         m & DBI_PGSS_M_BIT(DBI_PGSS_M_BLK_READ_TIME)},
	        {v111 ? "shared_blk_write_time AS blk_write_time" : "blk_write_time",
	         m & DBI_PGSS_M_BIT(DBI_PGSS_M_BLK_WRITE_TIME)},
	        {"wal_records", v18 && (m & DBI_PGSS_M_BIT(DBI_PGSS_M_WAL_RECORDS))},
	        {"wal_fpi", v18 && (m & DBI_PGSS_M_BIT(DBI_PGSS_M_WAL_FPI))},
	        {"wal_bytes::int8 AS wal_bytes", v18 && (m & DBI_PGSS_M_BIT(DBI_PGSS_M_WAL_BYTES))},
	        {"stats_since", v111},
	};
	size_t o = 0;
	bool first = true;

	if (api == DBI_PGSS_API_NONE || cap == 0 || (changed_only && api < DBI_PGSS_API_1_9))
		return 0;
	o += (size_t)snprintf(buf + o, cap - o, "%sSELECT ", PGSS_MARK);
	if (changed_only)
		o += (size_t)snprintf(buf + o, cap - o, "* FROM (SELECT ");
	for (size_t i = 0; i < DBI_ARRAY_LEN(cols) && o < cap; i++) {
		if (!cols[i].on)
			continue;
		o += (size_t)snprintf(buf + o, cap - o, "%s%s", first ? "" : ", ", cols[i].sql);
		first = false;
	}
	if (o < cap && api >= DBI_PGSS_API_1_9)
		o += (size_t)snprintf(buf + o, cap - o, ", " PGSS_RKEY " AS rkey");
	if (o < cap)
		o += (size_t)snprintf(buf + o, cap - o, " FROM pg_stat_statements(false)");
	/*
	 * The info check is an uncorrelated subquery: evaluated once, after the function has
	 * read the entries, so an eviction or reset before that read is always seen.
	 */
	if (o < cap && changed_only)
		o += (size_t)snprintf(
		        buf + o, cap - o,
		        ") s WHERE (SELECT (extract(epoch FROM stats_reset) * 1000000)::int8 - "
		        "946684800000000 <> $2::int8 OR dealloc <> $3::int8 FROM pg_stat_statements_info) "
		        "OR NOT coalesce(rkey = ANY ($1::int8[]), false)");
	return o < cap ? o : 0;
}

const char *dbi_pgss_info_sql(enum dbi_pgss_api api)
{
	return api >= DBI_PGSS_API_1_9 ? sql_info : NULL;
}

const char *dbi_pgss_query_sql(enum dbi_pgss_qkind k)
{
	switch (k) {
	case DBI_PGSS_Q_PROBE:
		return sql_probe;
	case DBI_PGSS_Q_INFO_BEFORE:
	case DBI_PGSS_Q_INFO_AFTER:
		return sql_info;
	case DBI_PGSS_Q_NAMES:
		return sql_names;
	case DBI_PGSS_Q_TEXTS:
		return sql_texts;
	default:
		return NULL;
	}
}

const char *dbi_pgss_status_name(enum dbi_pgss_status st)
{
	switch (st) {
	case DBI_PGSS_OK:
		return "ok";
	case DBI_PGSS_EXT_MISSING:
		return "extension_missing";
	case DBI_PGSS_NOT_LOADED:
		return "not_preloaded";
	case DBI_PGSS_PRIVILEGE:
		return "insufficient_privilege";
	case DBI_PGSS_VERSION:
		return "version_mismatch";
	case DBI_PGSS_FAILED:
		return "failed";
	}
	return "?";
}

bool dbi_pgss_status_disables(enum dbi_pgss_status st)
{
	return st == DBI_PGSS_EXT_MISSING || st == DBI_PGSS_NOT_LOADED || st == DBI_PGSS_PRIVILEGE;
}

/* ---- state ---- */

/*
 * A tracked statement. Its last cumulative counters live beside it in dbi_pgss.cur,
 * packed: only the columns the counters query reads (npk of them, not all of struct
 * dbi_pgss_ctrs), since a fleet keeps one of these per statement per target.
 */
struct stmt {
	uint32_t dbid, userid;
	int64_t queryid;
	uint8_t toplevel, hidden, has_fp, has_rkey;
	uint32_t seen;  /* scrape generation */
	uint32_t xslot; /* export slot + 1, 0 = none */
	uint64_t fp;
	int64_t rkey; /* the server's change key of the last row read (has_rkey) */
	uint64_t stats_since;
	/*
	 * Only compared for moving the wrong way: float's rounding is monotonic, so a float
	 * that moved the wrong way means the double did (an equal float may hide a tiny move).
	 */
	float min_exec, max_exec;
};
_Static_assert(sizeof(struct stmt) == 64, "a tracked statement is 64 bytes (plus its packed counters)");

/*
 * Series ids of an exported statement. The pool is fixed at 2 x limit: at most limit
 * slots are used by one scrape, so a slot not used by this scrape can always be taken
 * back from its statement (which re-interns if it returns to the top-N). sid[] holds one
 * id per enabled metric, in metric order (s->nsid of them; slots are s->xstride apart).
 */
struct xslot {
	uint32_t attrs;
	uint32_t used_gen;     /* last scrape that emitted through it; 0 = free */
	uint32_t dbid, userid; /* owner */
	int64_t queryid;
	uint8_t toplevel;
	uint8_t with_fp; /* attrs carry db.query.fingerprint */
	uint8_t named;   /* database and role names were resolved (not OID strings) */
	uint32_t sid[];
};

/* A top-N candidate; its interval delta is packed in dbi_pgss.topd at the same slot. */
struct topslot {
	double key;     /* interval exec time */
	uint64_t calls; /* interval calls: the first tie-break */
	int64_t queryid;
	uint32_t dbid, userid;
	uint32_t idx; /* entry index (refreshed after compaction) */
	uint8_t toplevel;
};

/*
 * One top-N scratch set: held by a target from its counters read to its emit, then back in
 * the pool (or kept, without a pool). top/topd/heap mirror dbi_pgss's while held.
 */
struct topset {
	struct topset *next; /* the pool's free list */
	struct topslot *top;
	uint64_t *topd;
	uint32_t *heap;
	uint32_t cap; /* entries every array holds */
	uint32_t npk; /* packed columns topd was sized for */
};

struct dbi_pgss_pool {
	struct topset *free;
	uint32_t sets;
	/* the keys parameter of a changed-only read: built and sent at once, so one per thread */
	char *keys;
	size_t keys_cap;
	/* counters SQL texts, one copy per (version, metrics) instead of one per target */
	struct pool_sql {
		struct pool_sql *next;
		char sql[];
	} * sqls;
};

struct dbslot {
	uint32_t dbid;
	uint8_t used, has_other, series_done, other_done;
	uint32_t active_gen;
	struct dbi_pgss_ctrs other;
	double exec_ms; /* top-level */
	uint64_t hist[DBI_PGSS_HIST_NB + 1];
	uint64_t hist_count;
	uint32_t other_sid[DBI_PGSS_M_COUNT]; /* the first s->nsid used, as an xslot's */
	uint32_t exec_sid, hist_sid;
};

struct name {
	uint32_t oid;
	char *s; /* NULL = free slot */
};
struct namemap {
	struct name *v;
	uint32_t cap, n;
};

struct hidden_agg {
	uint32_t dbid, userid;
	uint8_t toplevel;
	struct dbi_pgss_ctrs v;
};

enum phase { PH_IDLE = 0, PH_PROBE, PH_COUNTERS, PH_FOLLOW, PH_READY, PH_FAILED, PH_DONE };

struct dbi_pgss {
	struct dbi_pgss_config cfg;
	struct dbi_qfp_cache *cache;
	struct dbi_pgss_stats stats;

	/* statements */
	struct stmt *st;
	uint64_t *cur;   /* npk packed counters per entry, parallel to st (in st's allocation, after cap entries) */
	uint32_t *index; /* entry + 1, linear probing */
	struct xslot *xs;
	struct dbslot *dbs;
	uint32_t *active_dbs; /* slot indices active this scrape */
	struct hidden_agg *hid;
	struct topset *tset; /* held from the counters read to emit: top, topd, heap are its arrays */
	struct topslot *top; /* top-N slots */
	uint64_t *topd;      /* npk packed interval deltas per top slot */
	uint32_t *heap;      /* slot numbers, min-heap on key */
	struct namemap dbnames, rolenames;

	/* scrape */
	uint64_t now_ns;
	uint64_t start_ns;         /* this interval's start: the previous counters read */
	uint64_t last_counters_ns; /* when the counters were last read */
	uint64_t last_reset;
	int64_t dealloc_delta;
	struct dbi_pgss_info info_before, info_after, last_info;

	/* follow-up requests */
	struct dbi_pgss_query q[DBI_PGSS_MAX_QUERIES];
	int64_t *want_q;
	uint32_t *want_db, *want_role;
	char *param_q, *param_db, *param_role;
	size_t param_q_cap, param_oid_cap;
	char *normbuf; /* cfg.text_buf, or our own */
	char *counters_sql, *changed_sql;
	char *param_k; /* the keys held, an int8[] literal, for the changed-only read (no pool) */
	size_t param_k_cap;
	char param_reset[24], param_dealloc[24];

	uint8_t pk[DBI_PGSS_NCTR + DBI_PGSS_NTM]; /* packed column i: a counter (< NCTR) or NCTR + a time */
	uint32_t npk;
	uint32_t mid[DBI_PGSS_M_COUNT];
	uint32_t db_exec_mid, db_hist_mid, dealloc_mid, tracked_mid;
	uint32_t dealloc_sid, tracked_sid;
	int server_version;
	enum dbi_pgss_api api;
	uint32_t gen;
	uint32_t n, cap, icap;
	uint32_t xcap, xused, xfree, xhand; /* export slots: allocated, ever handed out, free among those, clock */
	uint32_t nsid, xstride;             /* series per exported statement (enabled metrics), bytes per slot */
	uint32_t dbcap, ndbs, nactive_dbs;
	uint32_t nhid, hidcap;
	uint32_t ntop, topcap;
	enum phase phase;
	enum dbi_pgss_status status;
	unsigned nq, got;
	uint32_t nwant_q, nwant_db, nwant_role, want_q_cap, want_db_cap, want_role_cap;

	bool own_cache;
	bool own_normbuf;
	bool api_known;     /* probed or set for this connection */
	bool ext_missing;   /* probe found no extension */
	bool have_baseline; /* a previous scrape's counters exist */
	bool prev_overflow; /* the previous scrape could not track every row */
	bool overflow_now;
	bool interval_ready; /* this scrape's deltas are valid for emission */
	bool reset_in_interval;
	bool reset_known;
	bool have_last_info;
	bool have_dealloc_delta;
	bool counters_taken;
	bool changed_asked;  /* this scrape's counters query is the changed-only one */
	bool changed_now;    /* ... and its rows were taken as changed rows only */
	bool full_next;      /* a changed-only read may have missed a vanished entry */
	uint32_t since_full; /* changed-only reads since the last full read */
	char msg[256];
};

/* ---- small helpers ---- */

static uint64_t key_hash(uint32_t dbid, uint32_t userid, int64_t queryid, uint8_t toplevel)
{
	uint64_t h = dbi_mix64((uint64_t)queryid ^ 0x9e3779b97f4a7c15ULL);
	h ^= dbi_mix64(((uint64_t)dbid << 32 | userid) + toplevel);
	return h;
}

static void ctrs_sub(struct dbi_pgss_ctrs *d, const struct dbi_pgss_ctrs *a, const struct dbi_pgss_ctrs *b)
{
	for (int i = 0; i < DBI_PGSS_NCTR; i++)
		d->c[i] = a->c[i] - b->c[i];
	for (int i = 0; i < DBI_PGSS_NTM; i++) {
		double v = a->t[i] - b->t[i];
		d->t[i] = v > 0 ? v : 0;
	}
}

static void ctrs_add(struct dbi_pgss_ctrs *d, const struct dbi_pgss_ctrs *a)
{
	for (int i = 0; i < DBI_PGSS_NCTR; i++)
		d->c[i] += a->c[i];
	for (int i = 0; i < DBI_PGSS_NTM; i++)
		d->t[i] += a->t[i];
}

static bool ctrs_decreased(const struct dbi_pgss_ctrs *cur, const struct dbi_pgss_ctrs *prev)
{
	for (int i = 0; i < DBI_PGSS_NCTR; i++)
		if (cur->c[i] < prev->c[i])
			return true;
	return false;
}

static bool ctrs_active(const struct dbi_pgss_ctrs *d)
{
	for (int i = 0; i < DBI_PGSS_NCTR; i++)
		if (d->c[i])
			return true;
	return d->t[DBI_PGSS_T_EXEC] > 0 || d->t[DBI_PGSS_T_PLAN] > 0;
}

/* The columns worth keeping per statement: calls, execution time, and what the metrics read. */
static void pack_layout(struct dbi_pgss *s)
{
	bool want[DBI_PGSS_NCTR + DBI_PGSS_NTM] = {false};

	want[DBI_PGSS_C_CALLS] = want[DBI_PGSS_NCTR + DBI_PGSS_T_EXEC] = true;
	for (int m = 0; m < DBI_PGSS_M_COUNT; m++) {
		if (!(s->cfg.metrics & DBI_PGSS_M_BIT(m)))
			continue;
		if (metric_ctr[m] >= 0)
			want[metric_ctr[m]] = true;
		if (metric_tm[m] >= 0)
			want[DBI_PGSS_NCTR + metric_tm[m]] = true;
		if (m == DBI_PGSS_M_PLAN_TIME)
			want[DBI_PGSS_C_PLANS] = true; /* read with it: a re-creation sign like any counter */
	}
	s->npk = 0;
	for (unsigned i = 0; i < DBI_ARRAY_LEN(want); i++)
		if (want[i])
			s->pk[s->npk++] = (uint8_t)i;
}

static void ctrs_pack(const struct dbi_pgss *s, uint64_t *dst, const struct dbi_pgss_ctrs *v)
{
	for (uint32_t i = 0; i < s->npk; i++) {
		unsigned k = s->pk[i];
		if (k < DBI_PGSS_NCTR)
			dst[i] = v->c[k];
		else
			memcpy(&dst[i], &v->t[k - DBI_PGSS_NCTR], sizeof(dst[i]));
	}
}

static void ctrs_unpack(const struct dbi_pgss *s, const uint64_t *src, struct dbi_pgss_ctrs *v)
{
	memset(v, 0, sizeof(*v));
	for (uint32_t i = 0; i < s->npk; i++) {
		unsigned k = s->pk[i];
		if (k < DBI_PGSS_NCTR)
			v->c[k] = src[i];
		else
			memcpy(&v->t[k - DBI_PGSS_NCTR], &src[i], sizeof(src[i]));
	}
}

/* The columns we do not keep, zeroed: what a packed round trip leaves of a row's counters. */
static void ctrs_mask(const struct dbi_pgss *s, struct dbi_pgss_ctrs *v)
{
	uint64_t tmp[DBI_PGSS_NCTR + DBI_PGSS_NTM];
	ctrs_pack(s, tmp, v);
	ctrs_unpack(s, tmp, v);
}

static void *grow_array(struct dbi_pgss *s, void *p, size_t elem, uint32_t *cap, uint32_t want)
{
	uint32_t nc = *cap ? *cap * 2 : 16;
	void *np;
	while (nc < want)
		nc *= 2;
	np = realloc(p, (size_t)nc * elem);
	if (!np)
		return NULL;
	memset((char *)np + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
	*cap = nc;
	s->stats.grow_allocs++;
	return np;
}

/* ---- names ---- */

static const char *name_get(const struct namemap *m, uint32_t oid)
{
	if (!m->cap)
		return NULL;
	for (uint32_t i = (uint32_t)dbi_mix64(oid) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->v[i].s)
			return NULL;
		if (m->v[i].oid == oid)
			return m->v[i].s;
	}
}

static void name_clear(struct namemap *m)
{
	for (uint32_t i = 0; i < m->cap; i++) {
		free(m->v[i].s);
		m->v[i].s = NULL;
	}
	m->n = 0;
}

static void name_put(struct dbi_pgss *s, struct namemap *m, uint32_t oid, const char *name)
{
	if (m->n + 1 > m->cap / 2) {
		struct namemap nm = {0};
		uint32_t ncap = m->cap ? m->cap * 2 : 8;
		if (ncap > (1u << 20))
			return; /* bound: names beyond this stay OIDs */
		nm.v = calloc(ncap, sizeof(*nm.v));
		if (!nm.v)
			return;
		nm.cap = ncap;
		s->stats.grow_allocs++;
		for (uint32_t i = 0; i < m->cap; i++) {
			if (!m->v[i].s)
				continue;
			uint32_t j = (uint32_t)dbi_mix64(m->v[i].oid) & (ncap - 1);
			while (nm.v[j].s)
				j = (j + 1) & (ncap - 1);
			nm.v[j] = m->v[i];
			nm.n++;
		}
		free(m->v);
		*m = nm;
	}
	uint32_t i = (uint32_t)dbi_mix64(oid) & (m->cap - 1);
	while (m->v[i].s && m->v[i].oid != oid)
		i = (i + 1) & (m->cap - 1);
	char *dup = strdup(name);
	if (!dup)
		return;
	if (m->v[i].s) {
		free(m->v[i].s);
	} else {
		m->n++;
	}
	m->v[i].oid = oid;
	m->v[i].s = dup;
}

/* ---- statement table ---- */

static uint32_t index_find(const struct dbi_pgss *s, uint32_t dbid, uint32_t userid, int64_t queryid, uint8_t toplevel)
{
	uint32_t mask = s->icap - 1;
	for (uint32_t i = (uint32_t)key_hash(dbid, userid, queryid, toplevel) & mask;; i = (i + 1) & mask) {
		uint32_t e = s->index[i];
		if (!e)
			return UINT32_MAX;
		const struct stmt *t = &s->st[e - 1];
		if (t->queryid == queryid && t->dbid == dbid && t->userid == userid && t->toplevel == toplevel)
			return e - 1;
	}
}

static void index_insert(struct dbi_pgss *s, uint32_t e)
{
	const struct stmt *t = &s->st[e];
	uint32_t mask = s->icap - 1;
	uint32_t i = (uint32_t)key_hash(t->dbid, t->userid, t->queryid, t->toplevel) & mask;
	while (s->index[i])
		i = (i + 1) & mask;
	s->index[i] = e + 1;
}

static void index_rebuild(struct dbi_pgss *s)
{
	memset(s->index, 0, (size_t)s->icap * sizeof(*s->index));
	for (uint32_t e = 0; e < s->n; e++)
		index_insert(s, e);
}

/*
 * The index of a table of cap statements: a power of two at least 1.5 x cap, so linear
 * probes stay short (at most 2/3 full).
 */
static uint32_t index_cap(uint32_t cap)
{
	uint32_t icap = 1;
	while (icap < cap + cap / 2 + 1)
		icap <<= 1;
	return icap;
}

/*
 * The statements and their packed counters are one allocation, the counters after cap
 * statements: one size-class rounding instead of two (~1 KiB a target of 80 statements).
 */
static inline size_t table_bytes(const struct dbi_pgss *s, uint32_t cap)
{
	return (size_t)cap * (sizeof(struct stmt) + s->npk * sizeof(uint64_t));
}

/*
 * Cold path: room for at least want statements (capped at max_statements). Grows the
 * table in place (realloc, then the counters move up to their new offset) and rebuilds
 * the index.
 */
static int table_reserve(struct dbi_pgss *s, uint32_t want)
{
	uint32_t ncap = DBI_MIN(want, s->cfg.max_statements), nicap;
	struct stmt *nst;
	uint32_t *nidx;

	if (ncap <= s->cap)
		return DBI_ERR;
	nicap = index_cap(ncap);
	nidx = calloc(nicap, sizeof(*nidx));
	if (!nidx)
		return DBI_ERR;
	nst = realloc(s->st, table_bytes(s, ncap));
	if (!nst) {
		free(nidx);
		return DBI_ERR;
	}
	s->st = nst;
	s->cur = (uint64_t *)(nst + ncap);
	memmove(s->cur, nst + s->cap, (size_t)s->n * s->npk * sizeof(uint64_t));
	free(s->index);
	s->index = nidx;
	s->icap = nicap;
	s->cap = ncap;
	s->stats.grow_allocs += 2;
	index_rebuild(s);
	return DBI_OK;
}

/*
 * Before the rows of a scrape: the table grows once to what pg_stat_statements holds now,
 * with 1/8 headroom, instead of doubling its way there (a fleet of targets with 70
 * statements each would otherwise keep 128 slots apiece). It never shrinks.
 */
static void table_fit(struct dbi_pgss *s, size_t nrows)
{
	if (nrows > s->cap)
		table_reserve(s, (uint32_t)DBI_MIN(nrows + nrows / 8 + 4, (size_t)UINT32_MAX / 4));
}

static inline struct xslot *xslot_at(const struct dbi_pgss *s, uint32_t i)
{
	return (struct xslot *)((char *)s->xs + (size_t)i * s->xstride);
}

static void xslot_free(struct dbi_pgss *s, struct stmt *t)
{
	if (!t->xslot)
		return;
	xslot_at(s, t->xslot - 1)->used_gen = 0;
	s->xfree++;
	t->xslot = 0;
}

/* ---- databases ---- */

static struct dbslot *db_slot(struct dbi_pgss *s, uint32_t dbid)
{
	if (s->ndbs + 1 > s->dbcap / 2) {
		uint32_t ncap = s->dbcap ? s->dbcap * 2 : 4;
		struct dbslot *nd = calloc(ncap, sizeof(*nd));
		uint32_t *na = calloc(ncap, sizeof(*na));
		if (!nd || !na) {
			free(nd);
			free(na);
			return NULL;
		}
		for (uint32_t i = 0; i < s->dbcap; i++) {
			if (!s->dbs[i].used)
				continue;
			uint32_t j = (uint32_t)dbi_mix64(s->dbs[i].dbid) & (ncap - 1);
			while (nd[j].used)
				j = (j + 1) & (ncap - 1);
			nd[j] = s->dbs[i];
		}
		/* active list holds slot numbers: rebuild it for the new layout */
		uint32_t nact = 0;
		for (uint32_t k = 0; k < s->nactive_dbs; k++) {
			uint32_t dbid2 = s->dbs[s->active_dbs[k]].dbid;
			uint32_t j = (uint32_t)dbi_mix64(dbid2) & (ncap - 1);
			while (nd[j].dbid != dbid2)
				j = (j + 1) & (ncap - 1);
			na[nact++] = j;
		}
		free(s->dbs);
		free(s->active_dbs);
		s->dbs = nd;
		s->active_dbs = na;
		s->nactive_dbs = nact;
		s->dbcap = ncap;
		s->stats.grow_allocs += 2;
	}
	uint32_t i = (uint32_t)dbi_mix64(dbid) & (s->dbcap - 1);
	while (s->dbs[i].used && s->dbs[i].dbid != dbid)
		i = (i + 1) & (s->dbcap - 1);
	if (!s->dbs[i].used) {
		memset(&s->dbs[i], 0, sizeof(s->dbs[i]));
		s->dbs[i].used = 1;
		s->dbs[i].dbid = dbid;
		s->ndbs++;
	}
	return &s->dbs[i];
}

static struct dbslot *db_active(struct dbi_pgss *s, uint32_t dbid)
{
	struct dbslot *d = db_slot(s, dbid);
	if (!d)
		return NULL;
	if (d->active_gen != s->gen) {
		d->active_gen = s->gen;
		d->has_other = 0;
		memset(&d->other, 0, sizeof(d->other));
		d->exec_ms = 0;
		memset(d->hist, 0, sizeof(d->hist));
		d->hist_count = 0;
		s->active_dbs[s->nactive_dbs++] = (uint32_t)(d - s->dbs);
	}
	return d;
}

static const struct dbslot *db_find(const struct dbi_pgss *s, uint32_t dbid)
{
	if (!s->dbcap)
		return NULL;
	for (uint32_t i = (uint32_t)dbi_mix64(dbid) & (s->dbcap - 1);; i = (i + 1) & (s->dbcap - 1)) {
		if (!s->dbs[i].used)
			return NULL;
		if (s->dbs[i].dbid == dbid)
			return &s->dbs[i];
	}
}

/* ---- top-N heap ---- */

/* a ranks below b: smaller exec time, then fewer calls, then a fixed key order. */
static bool top_less(const struct topslot *a, const struct topslot *b)
{
	if (a->key != b->key)
		return a->key < b->key;
	if (a->calls != b->calls)
		return a->calls < b->calls;
	if (a->queryid != b->queryid)
		return a->queryid > b->queryid;
	if (a->dbid != b->dbid)
		return a->dbid > b->dbid;
	if (a->userid != b->userid)
		return a->userid > b->userid;
	return a->toplevel < b->toplevel;
}

static void heap_down(struct dbi_pgss *s, uint32_t i)
{
	uint32_t n = s->ntop;
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && top_less(&s->top[s->heap[l]], &s->top[s->heap[m]]))
			m = l;
		if (r < n && top_less(&s->top[s->heap[r]], &s->top[s->heap[m]]))
			m = r;
		if (m == i)
			return;
		uint32_t t = s->heap[i];
		s->heap[i] = s->heap[m];
		s->heap[m] = t;
		i = m;
	}
}

static void heap_up(struct dbi_pgss *s, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (!top_less(&s->top[s->heap[i]], &s->top[s->heap[p]]))
			return;
		uint32_t t = s->heap[i];
		s->heap[i] = s->heap[p];
		s->heap[p] = t;
		i = p;
	}
}

static void to_other(struct dbi_pgss *s, uint32_t dbid, const struct dbi_pgss_ctrs *d)
{
	struct dbslot *db = db_active(s, dbid);
	if (!db)
		return;
	db->has_other = 1;
	ctrs_add(&db->other, d);
}

/* Cold path: more statements active in one interval than ever before (up to limit). */
static void top_grow(struct dbi_pgss *s)
{
	struct topset *ts = s->tset;
	uint32_t ncap = DBI_MIN(s->topcap ? 2 * s->topcap : 16, s->cfg.limit);
	struct topslot *nt;
	uint64_t *nd;
	uint32_t *nh;

	if (!ts)
		return;
	nt = realloc(ts->top, (size_t)ncap * sizeof(*nt));
	if (!nt)
		return;
	s->top = ts->top = nt;
	nd = realloc(ts->topd, (size_t)ncap * s->npk * sizeof(*nd));
	if (!nd)
		return;
	s->topd = ts->topd = nd;
	nh = realloc(ts->heap, (size_t)ncap * sizeof(*nh));
	if (!nh)
		return;
	s->heap = ts->heap = nh;
	s->topcap = ts->cap = ncap; /* only now: every array holds ncap */
	ts->npk = s->npk;
	s->stats.grow_allocs += 3;
}

/* ---- top-N scratch sets ---- */

struct dbi_pgss_pool *dbi_pgss_pool_create(void)
{
	return calloc(1, sizeof(struct dbi_pgss_pool));
}

static void topset_free(struct topset *ts)
{
	free(ts->top);
	free(ts->topd);
	free(ts->heap);
	free(ts);
}

void dbi_pgss_pool_release(struct dbi_pgss_pool *p)
{
	if (!p)
		return;
	while (p->free) {
		struct topset *ts = p->free;
		p->free = ts->next;
		topset_free(ts);
	}
	free(p->keys);
	while (p->sqls) {
		struct pool_sql *q = p->sqls;
		p->sqls = q->next;
		free(q);
	}
	free(p);
}

uint32_t dbi_pgss_pool_sets(const struct dbi_pgss_pool *p)
{
	return p ? p->sets : 0;
}

/* A scrape's counters arrive: hold a scratch set (the pool's, or a new one) until emit. */
static void top_hold(struct dbi_pgss *s)
{
	struct dbi_pgss_pool *p = s->cfg.pool;
	struct topset *ts = s->tset;

	if (!ts) {
		if (p && p->free) {
			ts = p->free;
			p->free = ts->next;
		} else {
			ts = calloc(1, sizeof(*ts));
			if (!ts)
				return; /* no top-N this scrape: everything counts in "other" */
			s->stats.grow_allocs++;
			if (p)
				p->sets++;
		}
		ts->next = NULL;
		s->tset = ts;
	}
	s->top = ts->top;
	s->topd = ts->topd;
	s->heap = ts->heap;
	/*
	 * A set sized for another column layout is regrown (realloc keeps it one allocation
	 * each); one grown for a larger limit is used up to ours.
	 */
	s->topcap = ts->npk == s->npk ? DBI_MIN(ts->cap, s->cfg.limit) : 0;
}

/* The scrape is over (emitted or failed): the set goes back to the pool, if there is one. */
static void top_put(struct dbi_pgss *s)
{
	struct dbi_pgss_pool *p = s->cfg.pool;
	struct topset *ts = s->tset;

	if (!ts || !p)
		return;
	ts->next = p->free;
	p->free = ts;
	s->tset = NULL;
	s->top = NULL;
	s->topd = NULL;
	s->heap = NULL;
	s->topcap = 0;
	s->ntop = 0;
}

/* Offer an active statement's delta to the top-N; what does not stay goes to "other". */
static void top_offer(struct dbi_pgss *s, const struct stmt *t, uint32_t idx, const struct dbi_pgss_ctrs *d)
{
	struct topslot cand = {.key = d->t[DBI_PGSS_T_EXEC],
	                       .calls = d->c[DBI_PGSS_C_CALLS],
	                       .queryid = t->queryid,
	                       .dbid = t->dbid,
	                       .userid = t->userid,
	                       .idx = idx,
	                       .toplevel = t->toplevel};
	if (s->ntop == s->topcap && s->topcap < s->cfg.limit)
		top_grow(s);
	if (s->ntop < s->topcap) {
		uint32_t slot = s->ntop;
		s->top[slot] = cand;
		ctrs_pack(s, &s->topd[(size_t)slot * s->npk], d);
		s->heap[s->ntop++] = slot;
		heap_up(s, s->ntop - 1);
		return;
	}
	if (!s->ntop) {
		to_other(s, cand.dbid, d); /* out of memory: still counted, in "other" */
		return;
	}
	uint32_t slot = s->heap[0];
	struct topslot *min = &s->top[slot];
	struct dbi_pgss_ctrs out;
	if (!top_less(min, &cand)) {
		to_other(s, cand.dbid, d);
		return;
	}
	ctrs_unpack(s, &s->topd[(size_t)slot * s->npk], &out);
	to_other(s, min->dbid, &out);
	*min = cand;
	ctrs_pack(s, &s->topd[(size_t)slot * s->npk], d);
	heap_down(s, 0);
}

/* After the heap is final: order it by rank, best first (N log N on N items only). */
static void top_sort(struct dbi_pgss *s)
{
	/* heap sort in place on the heap array: pop the minimum to the end repeatedly */
	uint32_t n = s->ntop;
	while (s->ntop > 1) {
		uint32_t t = s->heap[0];
		s->heap[0] = s->heap[s->ntop - 1];
		s->heap[s->ntop - 1] = t;
		s->ntop--;
		heap_down(s, 0);
	}
	s->ntop = n; /* heap[] now ascending from the end: heap[0] is the largest */
}

/* ---- create / release ---- */

struct dbi_pgss *dbi_pgss_create(const struct dbi_pgss_config *cfg, struct dbi_errbuf *err)
{
	struct dbi_pgss *s = calloc(1, sizeof(*s));
	if (!s) {
		dbi_err_set(err, "statements: out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	if (!cfg->reg || !cfg->sink || !cfg->sink->point || !cfg->sink->reserve || !cfg->sink->commit) {
		dbi_err_set(err, "statements: registry and sink are required");
		goto fail;
	}
	if (!s->cfg.limit)
		s->cfg.limit = 200;
	if (!s->cfg.max_statements)
		s->cfg.max_statements = 100000;
	if (!s->cfg.full_read_every)
		s->cfg.full_read_every = 20;
	if (!s->cfg.metrics)
		s->cfg.metrics = DBI_PGSS_M_DEFAULT;
	s->cfg.metrics &= DBI_PGSS_M_ALL;
	s->nsid = (uint32_t)__builtin_popcount(s->cfg.metrics);
	s->xstride = (uint32_t)DBI_ALIGN_UP(offsetof(struct xslot, sid) + s->nsid * sizeof(uint32_t),
	                                    _Alignof(struct xslot));
	if (!s->cfg.sample_max)
		s->cfg.sample_max = 4096;
	if (s->cfg.sample_max < 64)
		s->cfg.sample_max = 64;
	if (!s->cfg.cache_bytes)
		s->cfg.cache_bytes = 1u << 20;

	s->cache = cfg->cache;
	if (!s->cache) {
		s->cache = dbi_qfp_cache_create(s->cfg.cache_bytes);
		s->own_cache = true;
		if (!s->cache)
			goto oom;
	}
	for (int m = 0; m < DBI_PGSS_M_COUNT; m++) {
		s->mid[m] = dbi_metric_intern(cfg->reg, &stmt_defs[m]);
		if (!s->mid[m])
			goto reg;
	}
	s->db_exec_mid = dbi_metric_intern(cfg->reg, &db_exec_def);
	s->db_hist_mid = dbi_metric_intern(cfg->reg, &db_hist_def);
	s->dealloc_mid = dbi_metric_intern(cfg->reg, &dealloc_def);
	s->tracked_mid = dbi_metric_intern(cfg->reg, &tracked_def);
	if (!s->db_exec_mid || !s->db_hist_mid || !s->dealloc_mid || !s->tracked_mid)
		goto reg;

	/* small to start: most targets of a fleet track tens of statements, not thousands */
	s->cap = DBI_MIN(DBI_PGSS_INITIAL_STATEMENTS, s->cfg.max_statements);
	s->icap = index_cap(s->cap);
	pack_layout(s);
	s->st = calloc(1, table_bytes(s, s->cap));
	s->cur = s->st ? (uint64_t *)(s->st + s->cap) : NULL;
	s->index = calloc(s->icap, sizeof(*s->index));
	s->dbcap = 4;
	s->dbs = calloc(s->dbcap, sizeof(*s->dbs));
	s->active_dbs = calloc(s->dbcap, sizeof(*s->active_dbs));
	if (cfg->text_buf && cfg->text_buf_len >= s->cfg.sample_max) {
		s->normbuf = cfg->text_buf;
	} else {
		s->normbuf = malloc(s->cfg.sample_max);
		s->own_normbuf = true;
	}
	if (!s->st || !s->cur || !s->index || !s->normbuf || !s->dbs || !s->active_dbs)
		goto oom;
	s->phase = PH_IDLE;
	return s;
oom:
	dbi_err_set(err, "statements: out of memory");
	goto fail;
reg:
	dbi_err_set(err, "statements: cannot intern metric descriptors");
fail:
	dbi_pgss_release(s);
	return NULL;
}

void dbi_pgss_release(struct dbi_pgss *s)
{
	if (!s)
		return;
	if (s->own_cache)
		dbi_qfp_cache_release(s->cache);
	name_clear(&s->dbnames);
	name_clear(&s->rolenames);
	free(s->dbnames.v);
	free(s->rolenames.v);
	free(s->st); /* and the counters after it */
	free(s->index);
	free(s->xs);
	free(s->dbs);
	free(s->active_dbs);
	free(s->hid);
	if (s->tset && s->cfg.pool)
		top_put(s);
	else if (s->tset)
		topset_free(s->tset);
	free(s->want_q);
	free(s->want_db);
	free(s->want_role);
	free(s->param_q);
	free(s->param_db);
	free(s->param_role);
	if (s->own_normbuf)
		free(s->normbuf);
	if (!s->cfg.pool) { /* else the pool's */
		free(s->counters_sql);
		free(s->changed_sql);
	}
	free(s->param_k);
	free(s);
}

/* The pool's copy of sql (made on first use); NULL when out of memory. */
static char *pool_sql(struct dbi_pgss_pool *p, const char *sql)
{
	struct pool_sql *q;
	size_t n = strlen(sql) + 1;

	for (q = p->sqls; q; q = q->next)
		if (strcmp(q->sql, sql) == 0)
			return q->sql;
	q = malloc(sizeof(*q) + n);
	if (!q)
		return NULL;
	memcpy(q->sql, sql, n);
	q->next = p->sqls;
	p->sqls = q;
	return q->sql;
}

/*
 * Keep *dst equal to sql: the pool's shared copy, or our own at its exact size (a fleet
 * has one per target). NULL sql drops it.
 */
static int set_sql(struct dbi_pgss *s, char **dst, const char *sql)
{
	char *dup;

	if (sql && *dst && strcmp(*dst, sql) == 0)
		return DBI_OK;
	if (!sql)
		dup = NULL;
	else if (s->cfg.pool)
		dup = pool_sql(s->cfg.pool, sql);
	else
		dup = strdup(sql);
	if (sql && !dup)
		return DBI_ERR;
	if (!s->cfg.pool)
		free(*dst);
	*dst = dup;
	return DBI_OK;
}

void dbi_pgss_set_api(struct dbi_pgss *s, enum dbi_pgss_api api)
{
	char sql[2048];

	s->api = api;
	s->api_known = false;
	s->ext_missing = false;
	if (api == DBI_PGSS_API_NONE || !dbi_pgss_build_counters_sql(api, s->cfg.metrics, false, sql, sizeof(sql)) ||
	    set_sql(s, &s->counters_sql, sql) != DBI_OK)
		return;
	/* the changed-only variant is an optimization: without it every read is a full one */
	if (!dbi_pgss_build_counters_sql(api, s->cfg.metrics, true, sql, sizeof(sql)) ||
	    set_sql(s, &s->changed_sql, sql) != DBI_OK)
		set_sql(s, &s->changed_sql, NULL);
	s->full_next = true; /* a new connection or version: the keys held may not match */
	s->api_known = true;
}

void dbi_pgss_connected(struct dbi_pgss *s, int server_version_num)
{
	s->server_version = server_version_num;
	s->api_known = false;
	s->ext_missing = false;
	s->full_next = true; /* maybe another server behind the same endpoint: the keys held mean nothing */
	/* names may have changed while we were away: resolve again, re-intern series */
	name_clear(&s->dbnames);
	name_clear(&s->rolenames);
	for (uint32_t e = 0; e < s->n; e++)
		xslot_free(s, &s->st[e]);
	for (uint32_t i = 0; i < s->dbcap; i++)
		s->dbs[i].series_done = 0;
	s->dealloc_sid = s->tracked_sid = 0;
}

void dbi_pgss_set_extversion(struct dbi_pgss *s, const char *extversion)
{
	if (!extversion) {
		s->api_known = true;
		s->ext_missing = true;
		return;
	}
	dbi_pgss_set_api(s, dbi_pgss_api_of(extversion));
	if (!s->api_known) {
		s->api_known = true;
		s->ext_missing = true;
	}
}

enum dbi_pgss_status dbi_pgss_status(const struct dbi_pgss *s, const char **msg)
{
	if (msg)
		*msg = s->msg;
	return s->status;
}

const struct dbi_pgss_stats *dbi_pgss_get_stats(const struct dbi_pgss *s)
{
	return &s->stats;
}

static int fail(struct dbi_pgss *s, enum dbi_pgss_status st, const char *fmt, const char *detail)
{
	s->status = st;
	snprintf(s->msg, sizeof(s->msg), fmt, detail ? detail : "");
	s->phase = PH_FAILED;
	s->stats.failures++;
	top_put(s);
	return DBI_ERR;
}

/* ---- the scrape: counters ---- */

int dbi_pgss_begin(struct dbi_pgss *s, uint64_t now_ns)
{
	if (s->counters_taken && s->phase != PH_DONE && s->interval_ready)
		s->stats.lost_intervals++;
	s->now_ns = now_ns;
	s->status = DBI_PGSS_OK;
	s->msg[0] = '\0';
	s->counters_taken = false;
	s->interval_ready = false;
	s->nq = s->got = 0;
	s->nwant_q = s->nwant_db = s->nwant_role = 0;
	memset(&s->info_before, 0, sizeof(s->info_before));
	memset(&s->info_after, 0, sizeof(s->info_after));
	if (s->api_known && s->ext_missing) {
		return fail(
		        s, DBI_PGSS_EXT_MISSING,
		        "pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements)%s",
		        NULL);
	}
	if (!s->api_known && s->server_version && s->server_version < 90500)
		return fail(s, DBI_PGSS_VERSION, "server version too old for pg_stat_statements(showtext)%s", NULL);
	s->phase = s->api_known ? PH_COUNTERS : PH_PROBE;
	return DBI_OK;
}

static void counters_start(struct dbi_pgss *s, const struct dbi_pgss_info *before)
{
	s->gen++;
	top_hold(s);
	s->ntop = 0;
	s->nactive_dbs = 0;
	s->nhid = 0;
	s->overflow_now = false;
	s->reset_in_interval = false;
	if (before && before->valid) {
		s->info_before = *before;
		if (s->reset_known && before->stats_reset != s->last_reset) {
			s->reset_in_interval = true;
			s->stats.resets++;
		}
	}
}

/*
 * One row: update the entry, compute its interval delta, feed the aggregates. full_ok
 * says whether an entry unknown to us may count its whole counters as interval activity.
 */
static void counters_row(struct dbi_pgss *s, const struct dbi_pgss_row *r, bool hidden)
{
	/* hidden aggregates get their own key space (bit 1 of the key's toplevel byte) */
	uint8_t tl = (uint8_t)(r->toplevel ? 1 : 0) | (hidden ? 2 : 0);
	uint32_t e = index_find(s, r->dbid, r->userid, hidden ? 0 : r->queryid, tl);
	struct dbi_pgss_ctrs d, prev, v = r->v;
	bool have_delta = false;
	struct stmt *t;

	if (e == UINT32_MAX) {
		if (s->n == s->cap && table_reserve(s, 2 * s->cap) != DBI_OK) {
			s->stats.overflow_rows++;
			s->overflow_now = true;
			return;
		}
		e = s->n++;
		t = &s->st[e];
		memset(t, 0, sizeof(*t));
		t->dbid = r->dbid;
		t->userid = r->userid;
		t->queryid = hidden ? 0 : r->queryid;
		t->toplevel = tl;
		t->hidden = hidden;
		index_insert(s, e);
		s->stats.new_entries++;
		/*
		 * Unknown to us but the previous scrape saw everything: the entry was created
		 * since then, so all of its counters belong to this interval. Hidden
		 * aggregates are sums over entries we cannot tell apart: baseline only.
		 */
		if (s->have_baseline && !s->prev_overflow && (!hidden || s->reset_in_interval)) {
			ctrs_mask(s, &v); /* a delta has exactly the columns a kept baseline has */
			d = v;
			have_delta = true;
		}
	} else {
		t = &s->st[e];
		if (t->seen == s->gen) {
			s->stats.bad_rows++; /* the same key twice in one result */
			return;
		}
		bool recreated = s->reset_in_interval;
		ctrs_unpack(s, &s->cur[(size_t)e * s->npk], &prev);
		ctrs_mask(s, &v);
		if (!recreated && r->stats_since && t->stats_since && r->stats_since != t->stats_since)
			recreated = true;
		if (!recreated && ctrs_decreased(&v, &prev))
			recreated = true;
		/* min only falls and max only rises over an entry's life (PG < 17: no minmax-only reset) */
		if (!recreated && !r->stats_since && !hidden && prev.c[DBI_PGSS_C_CALLS] && v.c[DBI_PGSS_C_CALLS] &&
		    ((float)r->max_exec < t->max_exec || (float)r->min_exec > t->min_exec))
			recreated = true;
		if (recreated) {
			s->stats.rebaselines++;
			if (!hidden || s->reset_in_interval) {
				d = v;
				have_delta = true;
			}
		} else {
			ctrs_sub(&d, &v, &prev);
			have_delta = true;
		}
	}
	t->seen = s->gen;
	t->rkey = r->rkey;
	t->has_rkey = r->has_rkey;
	ctrs_pack(s, &s->cur[(size_t)e * s->npk], &r->v);
	t->stats_since = r->stats_since;
	t->min_exec = (float)r->min_exec;
	t->max_exec = (float)r->max_exec;

	if (!have_delta || !ctrs_active(&d))
		return;
	if (t->toplevel & 1) {
		struct dbslot *db = db_active(s, t->dbid);
		uint64_t calls = d.c[DBI_PGSS_C_CALLS];
		if (db) {
			db->exec_ms += d.t[DBI_PGSS_T_EXEC];
			if (calls) {
				db->hist[dbi_pgss_hist_bucket(d.t[DBI_PGSS_T_EXEC] / (double)calls)] += calls;
				db->hist_count += calls;
			}
		}
	}
	if (hidden)
		to_other(s, t->dbid, &d);
	else
		top_offer(s, t, e, &d);
}

static void hidden_add(struct dbi_pgss *s, const struct dbi_pgss_row *r)
{
	uint32_t i;
	for (i = 0; i < s->nhid; i++)
		if (s->hid[i].dbid == r->dbid && s->hid[i].userid == r->userid && s->hid[i].toplevel == r->toplevel)
			break;
	if (i == s->nhid) {
		if (s->nhid == s->hidcap) {
			struct hidden_agg *nh = grow_array(s, s->hid, sizeof(*nh), &s->hidcap, s->nhid + 1);
			if (!nh) {
				s->stats.overflow_rows++;
				return;
			}
			s->hid = nh;
		}
		memset(&s->hid[i], 0, sizeof(s->hid[i]));
		s->hid[i].dbid = r->dbid;
		s->hid[i].userid = r->userid;
		s->hid[i].toplevel = r->toplevel;
		s->nhid++;
	}
	ctrs_add(&s->hid[i].v, &r->v);
}

static void row_in(struct dbi_pgss *s, const struct dbi_pgss_row *r)
{
	s->stats.rows++;
	if (!r->has_queryid) {
		s->stats.hidden_rows++;
		hidden_add(s, r);
		return;
	}
	counters_row(s, r, false);
}

/* Does any top-N statement's queryid lack a fingerprint? Which names are unknown? */
static void plan_followups(struct dbi_pgss *s)
{
	s->nwant_q = s->nwant_db = s->nwant_role = 0;
	if (!s->interval_ready)
		return;
	for (uint32_t k = 0; k < s->ntop; k++) {
		struct stmt *t = &s->st[s->top[s->heap[k]].idx];
		struct dbi_qfp q;
		if (!t->has_fp && dbi_qfp_cache_get(s->cache, s->cfg.tag, t->queryid, &q)) {
			t->fp = q.fp;
			t->has_fp = 1;
		}
		if (!t->has_fp) {
			uint32_t j;
			for (j = 0; j < s->nwant_q && s->want_q[j] != t->queryid; j++)
				;
			if (j == s->nwant_q) {
				if (s->nwant_q == s->want_q_cap) {
					int64_t *nw =
					        grow_array(s, s->want_q, sizeof(*nw), &s->want_q_cap, s->nwant_q + 1);
					if (!nw)
						continue;
					s->want_q = nw;
				}
				s->want_q[s->nwant_q++] = t->queryid;
			}
		}
		if (!name_get(&s->rolenames, t->userid)) {
			uint32_t j;
			for (j = 0; j < s->nwant_role && s->want_role[j] != t->userid; j++)
				;
			if (j == s->nwant_role) {
				if (s->nwant_role == s->want_role_cap) {
					uint32_t *nw = grow_array(s, s->want_role, sizeof(*nw), &s->want_role_cap,
					                          s->nwant_role + 1);
					if (!nw)
						continue;
					s->want_role = nw;
				}
				s->want_role[s->nwant_role++] = t->userid;
			}
		}
	}
	for (uint32_t k = 0; k < s->nactive_dbs; k++) {
		uint32_t dbid = s->dbs[s->active_dbs[k]].dbid;
		if (name_get(&s->dbnames, dbid))
			continue;
		if (s->nwant_db == s->want_db_cap) {
			uint32_t *nw = grow_array(s, s->want_db, sizeof(*nw), &s->want_db_cap, s->nwant_db + 1);
			if (!nw)
				continue;
			s->want_db = nw;
		}
		s->want_db[s->nwant_db++] = dbid;
	}
}

/*
 * changed: this read returned only the rows whose key we did not hold, so an entry
 * absent from it is unchanged, not gone.
 */
static void counters_end(struct dbi_pgss *s, bool changed)
{
	uint32_t removed = 0;

	for (uint32_t i = 0; i < s->nhid; i++) {
		struct dbi_pgss_row r = {.dbid = s->hid[i].dbid,
		                         .userid = s->hid[i].userid,
		                         .toplevel = s->hid[i].toplevel,
		                         .v = s->hid[i].v};
		counters_row(s, &r, true);
	}
	s->changed_now = changed;
	if (changed) {
		s->since_full++;
		s->stats.changed_reads++;
	} else {
		s->since_full = 0;
		s->full_next = false;
	}
	/* entries not in a full read are gone (evicted or reset): forget them */
	for (uint32_t e = 0; e < s->n && !changed; e++)
		if (s->st[e].seen != s->gen)
			removed++;
	if (removed) {
		uint32_t j = 0;
		for (uint32_t e = 0; e < s->n; e++) {
			if (s->st[e].seen != s->gen) {
				xslot_free(s, &s->st[e]);
				continue;
			}
			if (j != e) {
				s->st[j] = s->st[e];
				memcpy(&s->cur[(size_t)j * s->npk], &s->cur[(size_t)e * s->npk],
				       s->npk * sizeof(*s->cur));
			}
			j++;
		}
		s->n = j;
		s->stats.gone += removed;
		index_rebuild(s);
		for (uint32_t k = 0; k < s->ntop; k++) {
			struct topslot *ts = &s->top[k];
			ts->idx = index_find(s, ts->dbid, ts->userid, ts->queryid, ts->toplevel);
		}
	}
	s->stats.tracked = s->n;
	top_sort(s);

	s->interval_ready = s->have_baseline;
	if (!s->interval_ready)
		s->ntop = 0; /* first scrape: a baseline, nothing to export */
	s->start_ns = s->last_counters_ns;
	s->last_counters_ns = s->now_ns;
	s->have_baseline = true;
	s->prev_overflow = s->overflow_now;
	s->counters_taken = true;
	/* until the "after" info arrives we cannot tell whether a reset raced this read */
	s->reset_known = false;
	s->stats.scrapes++;
	plan_followups(s);
}

/*
 * Reset bookkeeping for the next scrape: stats_reset read before and after the counters.
 * Equal: the counters belong to that reset epoch, and a later change means a reset
 * after this read. Different: a reset raced the read; the next scrape relies on the
 * counters alone (decrease / min-max checks).
 */
/* Neither an eviction nor a reset between two reads of pg_stat_statements_info. */
static bool info_still(const struct dbi_pgss_info *a, const struct dbi_pgss_info *b)
{
	return a->valid && b->valid && a->stats_reset == b->stats_reset && a->dealloc == b->dealloc;
}

static void info_after(struct dbi_pgss *s, const struct dbi_pgss_info *after)
{
	if (after && after->valid)
		s->info_after = *after;
	/* an entry vanished during a changed-only read: the server may have sent all rows, or not */
	if (s->changed_now && !info_still(&s->info_before, &s->info_after))
		s->full_next = true;
	if (s->info_before.valid && s->info_after.valid && s->info_before.stats_reset == s->info_after.stats_reset) {
		s->reset_known = true;
		s->last_reset = s->info_after.stats_reset;
	} else {
		s->reset_known = false;
	}
	s->have_dealloc_delta = false;
	if (s->info_after.valid) {
		if (s->have_last_info && s->info_after.stats_reset == s->last_info.stats_reset &&
		    s->info_after.dealloc >= s->last_info.dealloc) {
			s->dealloc_delta = s->info_after.dealloc - s->last_info.dealloc;
			s->have_dealloc_delta = true;
		} else if (s->have_last_info) {
			s->dealloc_delta = s->info_after.dealloc; /* a reset zeroes dealloc */
			s->have_dealloc_delta = true;
		}
		s->last_info = s->info_after;
		s->have_last_info = true;
	} else {
		s->have_last_info = false;
	}
}

int dbi_pgss_feed_counters(struct dbi_pgss *s, const struct dbi_pgss_info *before, const struct dbi_pgss_row *rows,
                           size_t n, const struct dbi_pgss_info *after)
{
	if (s->phase == PH_IDLE || s->phase == PH_DONE || s->phase == PH_FAILED)
		return DBI_ERR;
	counters_start(s, before);
	table_fit(s, n);
	for (size_t i = 0; i < n; i++)
		row_in(s, &rows[i]);
	counters_end(s, false);
	info_after(s, after);
	s->phase = (s->nwant_q || s->nwant_db || s->nwant_role) ? PH_FOLLOW : PH_READY;
	return DBI_OK;
}

size_t dbi_pgss_wanted_texts(const struct dbi_pgss *s, int64_t *out, size_t max)
{
	size_t n = DBI_MIN((size_t)s->nwant_q, max);
	if (n) /* want_q is allocated with the first wanted text */
		memcpy(out, s->want_q, n * sizeof(*out));
	return n;
}

void dbi_pgss_feed_name(struct dbi_pgss *s, bool is_role, uint32_t oid, const char *name)
{
	name_put(s, is_role ? &s->rolenames : &s->dbnames, oid, name);
}

/* ---- samples ---- */

typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue pb_any;

static const char *db_name(struct dbi_pgss *s, uint32_t dbid, char *buf, size_t len)
{
	const char *n = name_get(&s->dbnames, dbid);
	if (n)
		return n;
	snprintf(buf, len, "%" PRIu32, dbid);
	return buf;
}

static const char *role_name(struct dbi_pgss *s, uint32_t oid, char *buf, size_t len)
{
	const char *n = name_get(&s->rolenames, oid);
	if (n)
		return n;
	snprintf(buf, len, "%" PRIu32, oid);
	return buf;
}

static bool emit_sample(struct dbi_pgss *s, const struct stmt *t, const char *text)
{
	Opentelemetry__Proto__Logs__V1__LogRecord lr = OPENTELEMETRY__PROTO__LOGS__V1__LOG_RECORD__INIT;
	pb_any body = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
	pb_kv kv[4];
	pb_any v[4];
	pb_kv *kvp[4];
	char fph[DBI_QFP_HEX_SIZE], qid[24], dbb[16];
	const char *keys[4] = {"db.query.fingerprint", "postgresql.queryid", "postgresql.database.name", "db.system"};
	const char *vals[4];
	struct dbi_otlp_rec *rec;
	size_t len;

	dbi_qfp_hex(t->fp, fph);
	snprintf(qid, sizeof(qid), "%" PRId64, t->queryid);
	vals[0] = fph;
	vals[1] = qid;
	vals[2] = db_name(s, t->dbid, dbb, sizeof(dbb));
	vals[3] = "postgresql";
	for (int i = 0; i < 4; i++) {
		opentelemetry__proto__common__v1__key_value__init(&kv[i]);
		opentelemetry__proto__common__v1__any_value__init(&v[i]);
		v[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
		v[i].string_value = (char *)vals[i];
		kv[i].key = (char *)keys[i];
		kv[i].value = &v[i];
		kvp[i] = &kv[i];
	}
	body.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
	body.string_value = (char *)text;
	lr.time_unix_nano = s->now_ns;
	lr.observed_time_unix_nano = s->now_ns;
	lr.severity_number = OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO;
	lr.severity_text = "INFO";
	lr.body = &body;
	lr.n_attributes = 4;
	lr.attributes = kvp;
	lr.event_name = "db.query.sample";

	len = opentelemetry__proto__logs__v1__log_record__get_packed_size(&lr);
	rec = s->cfg.sink->reserve(s->cfg.sink->ctx, DBI_REC_LOG, (uint32_t)(sizeof(*rec) + len), t->fp);
	if (!rec) {
		s->stats.dropped_records++;
		return false;
	}
	rec->time_ns = s->now_ns;
	rec->resource = s->cfg.resource;
	rec->scope = s->cfg.scope;
	memset(rec->trace_id, 0, sizeof(rec->trace_id));
	rec->pb_len = (uint32_t)len;
	rec->pad = 0;
	opentelemetry__proto__logs__v1__log_record__pack(&lr, (uint8_t *)(rec + 1));
	s->cfg.sink->commit(s->cfg.sink->ctx, rec);
	s->stats.samples++;
	return true;
}

void dbi_pgss_feed_text(struct dbi_pgss *s, int64_t queryid, const char *text)
{
	struct dbi_qfp q;
	bool truncated, sampled = false;

	if (!text)
		return;
	if (dbi_qfp_cache_get(s->cache, s->cfg.tag, queryid, &q)) {
		/* a duplicate row (same queryid for another user/database): already done */
		bool any = false;
		for (uint32_t k = 0; k < s->ntop; k++) {
			struct stmt *t = &s->st[s->top[s->heap[k]].idx];
			if (t->queryid == queryid && !t->has_fp) {
				t->fp = q.fp;
				t->has_fp = 1;
				any = true;
			}
		}
		if (!any)
			return;
	} else {
		if (dbi_qfp_compute(text, &q, s->normbuf, s->cfg.sample_max, &truncated) != DBI_OK)
			return;
		s->stats.texts_received++;
		if (q.source == DBI_QFP_FALLBACK)
			s->stats.parse_fallbacks++;
		dbi_qfp_cache_put(s->cache, s->cfg.tag, queryid, &q);
		for (uint32_t k = 0; k < s->ntop; k++) {
			struct stmt *t = &s->st[s->top[s->heap[k]].idx];
			if (t->queryid != queryid)
				continue;
			t->fp = q.fp;
			t->has_fp = 1;
			if (!sampled && !dbi_qfp_cache_sampled(s->cache, s->cfg.tag, q.fp)) {
				if (emit_sample(s, t, s->normbuf))
					dbi_qfp_cache_mark_sampled(s->cache, s->cfg.tag, q.fp);
				sampled = true;
			}
		}
	}
}

/* ---- emission ---- */

static void emit_point(struct dbi_pgss *s, uint32_t sid, uint8_t kind, bool is_double, double dv, int64_t iv)
{
	struct dbi_point p;
	const struct dbi_series *se;

	if (!sid)
		return;
	memset(&p, 0, sizeof(p));
	p.time_ns = s->now_ns;
	p.start_ns = kind == DBI_PK_SUM ? s->start_ns : 0;
	p.series = sid;
	p.kind = kind;
	if (is_double) {
		p.flags = DBI_PF_DOUBLE;
		p.v.d = dv;
	} else {
		p.v.i = iv;
	}
	se = dbi_series_get(s->cfg.reg, sid);
	if (s->cfg.sink->point(s->cfg.sink->ctx, &p, se ? se->hash : sid) != DBI_OK)
		s->stats.dropped_points++;
	else
		s->stats.points++;
}

/* sid: one series id per enabled metric, in metric order (0 = none) */
static void emit_metrics(struct dbi_pgss *s, const uint32_t *sid, const struct dbi_pgss_ctrs *d)
{
	uint32_t r = 0;
	for (int m = 0; m < DBI_PGSS_M_COUNT; m++) {
		if (!(s->cfg.metrics & DBI_PGSS_M_BIT(m)))
			continue;
		uint32_t id = sid[r++];
		if (!id)
			continue;
		if (m == DBI_PGSS_M_EXEC_MEAN) {
			if (d->c[DBI_PGSS_C_CALLS])
				emit_point(s, id, DBI_PK_GAUGE, true,
				           d->t[DBI_PGSS_T_EXEC] / 1000.0 / (double)d->c[DBI_PGSS_C_CALLS], 0);
		} else if (metric_tm[m] >= 0) {
			emit_point(s, id, DBI_PK_SUM, true, d->t[metric_tm[m]] / 1000.0, 0);
		} else {
			emit_point(s, id, DBI_PK_SUM, false, 0, (int64_t)d->c[metric_ctr[m]]);
		}
	}
}

/* Does this API level report the metric's source column at all? */
static bool api_has(const struct dbi_pgss *s, int m)
{
	if (s->api && s->api < DBI_PGSS_API_1_8 &&
	    (m == DBI_PGSS_M_PLAN_TIME || m == DBI_PGSS_M_WAL_RECORDS || m == DBI_PGSS_M_WAL_FPI ||
	     m == DBI_PGSS_M_WAL_BYTES))
		return false;
	return true;
}

static uint32_t intern_series_set(struct dbi_pgss *s, const struct dbi_attr *a, size_t na, uint32_t *sid)
{
	uint32_t attrs = dbi_attrs_intern(s->cfg.reg, a, na), r = 0;
	if (!attrs)
		return 0;
	for (int m = 0; m < DBI_PGSS_M_COUNT; m++) {
		if (!(s->cfg.metrics & DBI_PGSS_M_BIT(m)))
			continue;
		uint32_t *id = &sid[r++];
		*id = 0;
		if (!api_has(s, m))
			continue;
		*id = dbi_series_intern(s->cfg.reg, s->mid[m], s->cfg.resource, s->cfg.scope, attrs);
		if (!*id)
			s->stats.series_limit++;
	}
	return attrs;
}

/* Cold path: room for more exported statements, growing by half up to 2 x limit slots. */
static int xslot_grow(struct dbi_pgss *s)
{
	uint32_t max = 2 * s->cfg.limit, ncap;
	struct xslot *nx;

	if (s->xcap >= max)
		return DBI_ERR;
	ncap = DBI_MIN(s->xcap ? s->xcap + (s->xcap + 1) / 2 : 16, max); /* 16, 24, 36, ...: most export ~20 */
	nx = realloc(s->xs, (size_t)ncap * s->xstride);
	if (!nx)
		return DBI_ERR;
	memset((char *)nx + (size_t)s->xcap * s->xstride, 0, (size_t)(ncap - s->xcap) * s->xstride);
	s->xs = nx;
	s->xcap = ncap;
	s->stats.grow_allocs++;
	return DBI_OK;
}

static struct xslot *stmt_series(struct dbi_pgss *s, struct stmt *t)
{
	struct xslot *x;
	struct dbi_attr a[6];
	char fph[DBI_QFP_HEX_SIZE], qid[24], dbb[16], rb[16];
	size_t na = 0;

	if (t->xslot) {
		x = xslot_at(s, t->xslot - 1);
		if (x->with_fp == t->has_fp &&
		    (x->named || !name_get(&s->dbnames, t->dbid) || !name_get(&s->rolenames, t->userid)))
			return x;
	} else {
		uint32_t slot;
		if (s->xfree) {
			/* a slot its statement left (gone from pg_stat_statements, or reconnect) */
			for (slot = s->xhand; xslot_at(s, slot)->used_gen; slot = (slot + 1) % s->xused)
				;
			s->xfree--;
		} else if (s->xused < s->xcap || xslot_grow(s) == DBI_OK) {
			slot = s->xused++;
		} else {
			/* clock: the first slot not used by this scrape (one exists at 2 x limit) */
			uint32_t tries = 0;
			if (!s->xused)
				return NULL; /* not even the first slots could be allocated */
			for (slot = s->xhand % s->xused; xslot_at(s, slot)->used_gen == s->gen && tries < s->xused;
			     slot = (slot + 1) % s->xused)
				tries++;
			if (tries == s->xused)
				return NULL; /* out of memory below 2 x limit slots: counted by the caller */
		}
		s->xhand = (slot + 1) % s->xused;
		x = xslot_at(s, slot);
		if (x->used_gen) {
			uint32_t owner = index_find(s, x->dbid, x->userid, x->queryid, x->toplevel);
			if (owner != UINT32_MAX)
				s->st[owner].xslot = 0;
		}
		memset(x, 0, s->xstride);
		x->dbid = t->dbid;
		x->userid = t->userid;
		x->queryid = t->queryid;
		x->toplevel = t->toplevel;
		t->xslot = slot + 1;
	}
	snprintf(qid, sizeof(qid), "%" PRId64, t->queryid);
	a[na++] = (struct dbi_attr){
	        .key = "postgresql.database.name", .type = DBI_AT_STR, .v.s = db_name(s, t->dbid, dbb, sizeof(dbb))};
	a[na++] = (struct dbi_attr){
	        .key = "postgresql.user.name", .type = DBI_AT_STR, .v.s = role_name(s, t->userid, rb, sizeof(rb))};
	a[na++] = (struct dbi_attr){.key = "postgresql.queryid", .type = DBI_AT_STR, .v.s = qid};
	if (t->has_fp) {
		dbi_qfp_hex(t->fp, fph);
		a[na++] = (struct dbi_attr){.key = "db.query.fingerprint", .type = DBI_AT_STR, .v.s = fph};
	}
	if (s->api >= DBI_PGSS_API_1_9)
		a[na++] = (struct dbi_attr){
		        .key = "postgresql.statement.toplevel", .type = DBI_AT_BOOL, .v.b = t->toplevel};
	x->attrs = intern_series_set(s, a, na, x->sid);
	s->stats.series_interns++;
	x->with_fp = t->has_fp;
	x->named = name_get(&s->dbnames, t->dbid) && name_get(&s->rolenames, t->userid);
	return x;
}

/* The "other" series of a database: only once it has any (most targets never do: limit 200). */
static void db_other_series(struct dbi_pgss *s, struct dbslot *db)
{
	char dbb[16];
	struct dbi_attr a[3] = {
	        {.key = "postgresql.database.name", .type = DBI_AT_STR, .v.s = db_name(s, db->dbid, dbb, sizeof(dbb))},
	        {.key = "db.query.fingerprint", .type = DBI_AT_STR, .v.s = "other"},
	        {.key = "postgresql.queryid", .type = DBI_AT_STR, .v.s = "other"},
	};
	intern_series_set(s, a, 3, db->other_sid);
	db->other_done = 1;
}

static void db_series(struct dbi_pgss *s, struct dbslot *db)
{
	char dbb[16];
	const char *name = db_name(s, db->dbid, dbb, sizeof(dbb));
	struct dbi_attr a[1] = {
	        {.key = "postgresql.database.name", .type = DBI_AT_STR, .v.s = name},
	};
	uint32_t one;

	db->other_done = 0; /* the name may have changed: re-interned when next needed */
	one = dbi_attrs_intern(s->cfg.reg, a, 1);
	db->exec_sid = one ? dbi_series_intern(s->cfg.reg, s->db_exec_mid, s->cfg.resource, s->cfg.scope, one) : 0;
	db->hist_sid = one ? dbi_series_intern(s->cfg.reg, s->db_hist_mid, s->cfg.resource, s->cfg.scope, one) : 0;
	if (!db->exec_sid || !db->hist_sid)
		s->stats.series_limit++;
	/* a name that is still an OID string is re-resolved next time */
	db->series_done = name_get(&s->dbnames, db->dbid) != NULL;
}

static void emit_hist(struct dbi_pgss *s, const struct dbslot *db)
{
	size_t len = dbi_hist_rec_size(DBI_PGSS_HIST_NB);
	const struct dbi_series *se = dbi_series_get(s->cfg.reg, db->hist_sid);
	struct dbi_hist_rec *h;

	if (!db->hist_sid)
		return;
	h = s->cfg.sink->reserve(s->cfg.sink->ctx, DBI_REC_HIST, (uint32_t)len, se ? se->hash : db->hist_sid);
	if (!h) {
		s->stats.dropped_records++;
		return;
	}
	h->time_ns = s->now_ns;
	h->start_ns = s->start_ns;
	h->count = db->hist_count;
	h->sum = db->exec_ms / 1000.0;
	h->min = h->max = 0;
	h->series = db->hist_sid;
	h->flags = DBI_HF_HAS_SUM;
	h->nbounds = DBI_PGSS_HIST_NB;
	for (int i = 0; i < DBI_PGSS_HIST_NB; i++)
		dbi_hist_bounds(h)[i] = dbi_pgss_hist_bounds_ms[i] / 1000.0;
	memcpy(dbi_hist_counts(h), db->hist, sizeof(db->hist));
	s->cfg.sink->commit(s->cfg.sink->ctx, h);
}

static void emit_target(struct dbi_pgss *s)
{
	if (!s->tracked_sid || !s->dealloc_sid) {
		uint32_t none = dbi_attrs_intern(s->cfg.reg, NULL, 0);
		s->tracked_sid =
		        none ? dbi_series_intern(s->cfg.reg, s->tracked_mid, s->cfg.resource, s->cfg.scope, none) : 0;
		s->dealloc_sid =
		        none ? dbi_series_intern(s->cfg.reg, s->dealloc_mid, s->cfg.resource, s->cfg.scope, none) : 0;
	}
	emit_point(s, s->tracked_sid, DBI_PK_GAUGE, false, 0, (int64_t)s->n);
	if (s->have_dealloc_delta)
		emit_point(s, s->dealloc_sid, DBI_PK_SUM, false, 0, s->dealloc_delta);
}

int dbi_pgss_emit(struct dbi_pgss *s)
{
	if (s->phase != PH_READY && s->phase != PH_FOLLOW)
		return DBI_ERR;
	if (s->interval_ready) {
		/* pin the slots this scrape will use before any new statement takes one */
		for (uint32_t k = 0; k < s->ntop; k++) {
			const struct stmt *t = &s->st[s->top[s->heap[k]].idx];
			if (t->xslot)
				xslot_at(s, t->xslot - 1)->used_gen = s->gen;
		}
		for (uint32_t k = 0; k < s->ntop; k++) {
			struct topslot *ts = &s->top[s->heap[k]];
			struct stmt *t = &s->st[ts->idx];
			struct dbi_pgss_ctrs d;
			struct xslot *x;
			if (!t->has_fp)
				s->stats.text_missing++;
			x = stmt_series(s, t);
			if (!x) {
				s->stats.dropped_points += (uint64_t)__builtin_popcount(s->cfg.metrics);
				continue;
			}
			x->used_gen = s->gen;
			ctrs_unpack(s, &s->topd[(size_t)s->heap[k] * s->npk], &d);
			emit_metrics(s, x->sid, &d);
		}
		for (uint32_t k = 0; k < s->nactive_dbs; k++) {
			struct dbslot *db = &s->dbs[s->active_dbs[k]];
			if (!db->series_done)
				db_series(s, db);
			if (db->has_other) {
				if (!db->other_done)
					db_other_series(s, db);
				emit_metrics(s, db->other_sid, &db->other);
			}
			emit_point(s, db->exec_sid, DBI_PK_SUM, true, db->exec_ms / 1000.0, 0);
			emit_hist(s, db);
		}
	}
	emit_target(s);
	s->phase = PH_DONE;
	top_put(s);
	return DBI_OK;
}

/* ---- inspection ---- */

size_t dbi_pgss_last_top(const struct dbi_pgss *s, struct dbi_pgss_top *out, size_t max)
{
	size_t n = 0;
	for (uint32_t k = 0; k < s->ntop && n < max; k++, n++) {
		const struct topslot *ts = &s->top[s->heap[k]];
		const struct stmt *t = &s->st[ts->idx];
		struct dbi_pgss_ctrs d;
		ctrs_unpack(s, &s->topd[(size_t)s->heap[k] * s->npk], &d);
		out[n] = (struct dbi_pgss_top){.dbid = ts->dbid,
		                               .userid = ts->userid,
		                               .queryid = ts->queryid,
		                               .toplevel = ts->toplevel,
		                               .has_fp = t->has_fp,
		                               .fp = t->fp,
		                               .delta = d};
	}
	return n;
}

bool dbi_pgss_last_other(const struct dbi_pgss *s, uint32_t dbid, struct dbi_pgss_ctrs *out)
{
	const struct dbslot *db = db_find(s, dbid);
	if (!db || db->active_gen != s->gen || !db->has_other || !s->interval_ready)
		return false;
	*out = db->other;
	return true;
}

/* ---- PGresult decoding ---- */

#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT4 23
#define OID_OID 26
#define OID_FLOAT8 701
#define OID_TIMESTAMPTZ 1184

static bool col_u64(const PGresult *r, int row, int col, uint64_t *out)
{
	const char *v;
	*out = 0;
	if (col < 0 || PQgetisnull(r, row, col))
		return true;
	v = PQgetvalue(r, row, col);
	if (PQfformat(r, col) == 1) {
		Oid t = PQftype(r, col);
		int len = PQgetlength(r, row, col);
		if ((t == OID_INT8 || t == OID_TIMESTAMPTZ || t == OID_FLOAT8) && len == 8) {
			uint64_t x;
			memcpy(&x, v, 8);
			*out = be64toh(x);
			return true;
		}
		if ((t == OID_INT4 || t == OID_OID) && len == 4) {
			uint32_t x;
			memcpy(&x, v, 4);
			*out = t == OID_INT4 ? (uint64_t)(int64_t)(int32_t)be32toh(x) : be32toh(x);
			return true;
		}
		if (t == OID_BOOL && len == 1) {
			*out = v[0] != 0;
			return true;
		}
		return false;
	}
	if (PQftype(r, col) == OID_BOOL) {
		*out = v[0] == 't';
		return true;
	}
	if (PQftype(r, col) == OID_TIMESTAMPTZ) {
		*out = dbi_hash64(v, strlen(v), 0x7d); /* identity only */
		return true;
	}
	char *end;
	if (*v == '-')
		*out = (uint64_t)strtoll(v, &end, 10);
	else
		*out = strtoull(v, &end, 10);
	return end != v && *end == '\0';
}

static bool col_f64(const PGresult *r, int row, int col, double *out)
{
	const char *v;
	if (col < 0 || PQgetisnull(r, row, col)) {
		*out = 0;
		return true;
	}
	v = PQgetvalue(r, row, col);
	if (PQfformat(r, col) == 1) {
		uint64_t x;
		if (PQftype(r, col) != OID_FLOAT8 || PQgetlength(r, row, col) != 8)
			return false;
		memcpy(&x, v, 8);
		x = be64toh(x);
		memcpy(out, &x, 8);
		return true;
	}
	char *end;
	*out = strtod(v, &end);
	return end != v && *end == '\0';
}

struct colmap {
	int userid, dbid, toplevel, queryid, stats_since, min_exec, max_exec, rkey;
	int c[DBI_PGSS_NCTR];
	int t[DBI_PGSS_NTM];
};

static void colmap_build(const PGresult *r, struct colmap *m)
{
	static const char *const cnames[DBI_PGSS_NCTR] = {"calls",
	                                                  "plans",
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
	static const char *const tnames[DBI_PGSS_NTM] = {"total_exec_time", "total_plan_time", "blk_read_time",
	                                                 "blk_write_time"};
	m->userid = PQfnumber(r, "userid");
	m->dbid = PQfnumber(r, "dbid");
	m->toplevel = PQfnumber(r, "toplevel");
	m->queryid = PQfnumber(r, "queryid");
	m->stats_since = PQfnumber(r, "stats_since");
	m->min_exec = PQfnumber(r, "min_exec_time");
	m->max_exec = PQfnumber(r, "max_exec_time");
	m->rkey = PQfnumber(r, "rkey");
	for (int i = 0; i < DBI_PGSS_NCTR; i++)
		m->c[i] = PQfnumber(r, cnames[i]);
	for (int i = 0; i < DBI_PGSS_NTM; i++)
		m->t[i] = PQfnumber(r, tnames[i]);
}

static bool decode_row(const PGresult *r, int row, const struct colmap *m, struct dbi_pgss_row *out)
{
	uint64_t u;
	bool ok = true;

	memset(out, 0, sizeof(*out));
	ok &= col_u64(r, row, m->userid, &u);
	out->userid = (uint32_t)u;
	ok &= col_u64(r, row, m->dbid, &u);
	out->dbid = (uint32_t)u;
	if (m->toplevel >= 0) {
		ok &= col_u64(r, row, m->toplevel, &u);
		out->toplevel = u != 0;
	} else {
		out->toplevel = true;
	}
	out->has_queryid = !PQgetisnull(r, row, m->queryid);
	ok &= col_u64(r, row, m->queryid, &u);
	out->queryid = (int64_t)u;
	ok &= col_u64(r, row, m->stats_since, &out->stats_since);
	if (m->rkey >= 0 && !PQgetisnull(r, row, m->rkey)) {
		ok &= col_u64(r, row, m->rkey, &u);
		out->rkey = (int64_t)u;
		out->has_rkey = true;
	}
	ok &= col_f64(r, row, m->min_exec, &out->min_exec);
	ok &= col_f64(r, row, m->max_exec, &out->max_exec);
	for (int i = 0; i < DBI_PGSS_NCTR; i++)
		ok &= col_u64(r, row, m->c[i], &out->v.c[i]);
	for (int i = 0; i < DBI_PGSS_NTM; i++)
		ok &= col_f64(r, row, m->t[i], &out->v.t[i]);
	return ok;
}

static bool decode_info(const PGresult *r, struct dbi_pgss_info *out)
{
	uint64_t u;
	memset(out, 0, sizeof(*out));
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) < 2)
		return false;
	if (!col_u64(r, 0, 0, &out->stats_reset) || !col_u64(r, 0, 1, &u))
		return false;
	out->dealloc = (int64_t)u;
	out->valid = true;
	return true;
}

/* Map an error result to a status and message. */
static int result_error(struct dbi_pgss *s, const PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *em = r ? PQresultErrorMessage(r) : "no result";
	char detail[160];

	dbi_strlcpy(detail, em && *em ? em : PQresStatus(r ? PQresultStatus(r) : PGRES_FATAL_ERROR), sizeof(detail));
	for (char *p = detail; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (!state)
		return fail(s, DBI_PGSS_FAILED, "pg_stat_statements query failed: %s", detail);
	if (!strcmp(state, "42883") || !strcmp(state, "42P01"))
		return fail(s, DBI_PGSS_EXT_MISSING,
		            "pg_stat_statements is not installed in this database (CREATE EXTENSION "
		            "pg_stat_statements): %s",
		            detail);
	if (!strcmp(state, "55000"))
		return fail(s, DBI_PGSS_NOT_LOADED,
		            "pg_stat_statements is not loaded (add it to shared_preload_libraries and restart): %s",
		            detail);
	if (!strcmp(state, "42501"))
		return fail(s, DBI_PGSS_PRIVILEGE,
		            "permission denied reading pg_stat_statements (grant pg_monitor): %s", detail);
	if (!strcmp(state, "42703")) {
		s->api_known = false; /* probe again next scrape */
		return fail(s, DBI_PGSS_VERSION, "pg_stat_statements columns differ from its version: %s", detail);
	}
	return fail(s, DBI_PGSS_FAILED, "pg_stat_statements query failed: %s", detail);
}

/* A text array literal "{1,2,3}"; cap must allow n elements (22 bytes each for int8, 12 for oid) + 3. */
static void build_int_array(char *buf, size_t cap, const void *vals, uint32_t n, bool is_i64)
{
	const size_t widest = is_i64 ? 21 : 11; /* ",-9223372036854775808" / ",4294967295" */
	size_t o = 0;
	buf[o++] = '{';
	for (uint32_t i = 0; i < n && o + widest + 2 <= cap; i++) {
		int w = is_i64 ? snprintf(buf + o, cap - o, "%s%" PRId64, i ? "," : "", ((const int64_t *)vals)[i])
		               : snprintf(buf + o, cap - o, "%s%" PRIu32, i ? "," : "", ((const uint32_t *)vals)[i]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
	buf[o++] = '}';
	buf[o] = '\0';
}

static int oid_params(struct dbi_pgss *s)
{
	size_t need = (size_t)DBI_MAX(s->nwant_db, s->nwant_role) * 12 + 4;
	if (need > s->param_oid_cap) {
		char *a = realloc(s->param_db, need), *b;
		if (!a)
			return DBI_ERR;
		s->param_db = a;
		b = realloc(s->param_role, need);
		if (!b)
			return DBI_ERR;
		s->param_role = b;
		s->param_oid_cap = need;
		s->stats.grow_allocs += 2;
	}
	build_int_array(s->param_db, s->param_oid_cap, s->want_db, s->nwant_db, false);
	build_int_array(s->param_role, s->param_oid_cap, s->want_role, s->nwant_role, false);
	return DBI_OK;
}

static int q_params(struct dbi_pgss *s)
{
	size_t need = (size_t)s->nwant_q * 22 + 4;
	if (need > s->param_q_cap) {
		size_t cap = DBI_MAX(need, 2 * s->param_q_cap);
		char *a = realloc(s->param_q, cap);
		if (!a)
			return DBI_ERR;
		s->param_q = a;
		s->param_q_cap = cap;
		s->stats.grow_allocs++;
	}
	return DBI_OK;
}

/* Is a changed-only read safe now? (See the top of the file.) */
static bool changed_read_ok(const struct dbi_pgss *s)
{
	return s->changed_sql && s->have_baseline && s->have_last_info && s->last_info.valid && s->reset_known &&
	       !s->prev_overflow && !s->full_next && s->since_full + 1 < s->cfg.full_read_every;
}

/*
 * $1..$3 of the changed-only read: the keys held, and the info they belong to. The keys go
 * into the pool's buffer when there is one (the engine sends them before it builds another
 * target's), else into our own.
 */
static const char *changed_keys(const struct dbi_pgss *s)
{
	return s->cfg.pool ? s->cfg.pool->keys : s->param_k;
}

static int changed_params(struct dbi_pgss *s)
{
	char **buf = s->cfg.pool ? &s->cfg.pool->keys : &s->param_k;
	size_t *cap = s->cfg.pool ? &s->cfg.pool->keys_cap : &s->param_k_cap;
	size_t need = (size_t)s->n * 21 + 3, o = 0; /* ",-9223372036854775808" per key, braces, NUL */
	char *k;

	if (need > *cap) {
		size_t ncap = DBI_MAX(need + need / 4, (size_t)256);
		char *a = realloc(*buf, ncap);
		if (!a)
			return DBI_ERR;
		*buf = a;
		*cap = ncap;
		s->stats.grow_allocs++;
	}
	k = *buf;
	k[o++] = '{';
	for (uint32_t e = 0; e < s->n; e++) {
		const struct stmt *t = &s->st[e];
		if (t->hidden || !t->has_rkey)
			continue;
		o += (size_t)snprintf(k + o, *cap - o, "%s%" PRId64, o > 1 ? "," : "", t->rkey);
	}
	k[o++] = '}';
	k[o] = '\0';
	snprintf(s->param_reset, sizeof(s->param_reset), "%" PRId64, (int64_t)s->last_info.stats_reset);
	snprintf(s->param_dealloc, sizeof(s->param_dealloc), "%" PRId64, s->last_info.dealloc);
	return DBI_OK;
}

unsigned dbi_pgss_queries(struct dbi_pgss *s, struct dbi_pgss_query *q, unsigned max)
{
	unsigned n = 0;

	if (s->nq && s->got < s->nq) {
		/* the current round is still out: the same queries again (a pool's keys rebuilt: shared) */
		if (s->changed_asked && s->phase == PH_COUNTERS && s->cfg.pool) {
			if (changed_params(s) != DBI_OK)
				return 0;
			for (unsigned i = 0; i < s->nq; i++)
				if (s->q[i].kind == DBI_PGSS_Q_COUNTERS && s->q[i].nparams == 3)
					s->q[i].params[0] = changed_keys(s);
		}
		n = DBI_MIN(s->nq, max);
		memcpy(q, s->q, n * sizeof(*q));
		return n;
	}
	s->nq = s->got = 0;
	memset(s->q, 0, sizeof(s->q));
	switch (s->phase) {
	case PH_PROBE:
		s->q[n++] = (struct dbi_pgss_query){.sql = sql_probe, .kind = DBI_PGSS_Q_PROBE};
		break;
	case PH_COUNTERS:
		if (dbi_pgss_info_sql(s->api))
			s->q[n++] = (struct dbi_pgss_query){
			        .sql = sql_info, .result_binary = 1, .kind = DBI_PGSS_Q_INFO_BEFORE};
		s->changed_asked = changed_read_ok(s) && changed_params(s) == DBI_OK;
		if (s->changed_asked)
			s->q[n++] =
			        (struct dbi_pgss_query){.sql = s->changed_sql,
			                                .nparams = 3,
			                                .params = {changed_keys(s), s->param_reset, s->param_dealloc},
			                                .result_binary = 1,
			                                .kind = DBI_PGSS_Q_COUNTERS};
		else
			s->q[n++] = (struct dbi_pgss_query){
			        .sql = s->counters_sql, .result_binary = 1, .kind = DBI_PGSS_Q_COUNTERS};
		if (dbi_pgss_info_sql(s->api))
			s->q[n++] = (struct dbi_pgss_query){
			        .sql = sql_info, .result_binary = 1, .kind = DBI_PGSS_Q_INFO_AFTER};
		break;
	case PH_FOLLOW:
		/* names first: the samples sent while texts arrive carry the database name */
		if ((s->nwant_db || s->nwant_role) && oid_params(s) == DBI_OK) {
			s->q[n++] = (struct dbi_pgss_query){.sql = sql_names,
			                                    .nparams = 2,
			                                    .params = {s->param_db, s->param_role},
			                                    .kind = DBI_PGSS_Q_NAMES};
			s->stats.name_queries++;
		}
		if (s->nwant_q && q_params(s) == DBI_OK) {
			build_int_array(s->param_q, s->param_q_cap, s->want_q, s->nwant_q, true);
			s->q[n++] = (struct dbi_pgss_query){
			        .sql = sql_texts, .nparams = 1, .params = {s->param_q}, .kind = DBI_PGSS_Q_TEXTS};
			s->stats.text_queries++;
			s->stats.texts_requested += s->nwant_q;
		}
		if (!n)
			s->phase = PH_READY;
		break;
	default:
		break;
	}
	s->nq = n;
	n = DBI_MIN(n, max);
	memcpy(q, s->q, n * sizeof(*q));
	return n;
}

int dbi_pgss_result(struct dbi_pgss *s, unsigned i, const PGresult *r)
{
	const struct dbi_pgss_query *q;
	ExecStatusType st;

	if (i >= s->nq || s->phase == PH_FAILED)
		return DBI_ERR;
	q = &s->q[i];
	s->got++;
	st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	switch (q->kind) {
	case DBI_PGSS_Q_PROBE:
		if (st != PGRES_TUPLES_OK)
			return result_error(s, r);
		if (PQntuples(r) < 1 || PQgetisnull(r, 0, 0)) {
			s->api_known = true;
			s->ext_missing = true;
			return fail(s, DBI_PGSS_EXT_MISSING,
			            "pg_stat_statements is not installed in this database "
			            "(CREATE EXTENSION pg_stat_statements)%s",
			            NULL);
		}
		dbi_pgss_set_api(s, dbi_pgss_api_of(PQgetvalue(r, 0, 0)));
		if (!s->api_known)
			return fail(s, DBI_PGSS_VERSION, "unsupported pg_stat_statements version %s",
			            PQgetvalue(r, 0, 0));
		s->phase = PH_COUNTERS;
		break;
	case DBI_PGSS_Q_INFO_BEFORE:
		if (st != PGRES_TUPLES_OK && st != PGRES_PIPELINE_ABORTED)
			return result_error(s, r);
		if (!decode_info(r, &s->info_before))
			memset(&s->info_before, 0, sizeof(s->info_before));
		break;
	case DBI_PGSS_Q_COUNTERS: {
		struct colmap cm, *m = &cm;
		struct dbi_pgss_row row;
		int nrows;

		if (st != PGRES_TUPLES_OK)
			return result_error(s, r);
		colmap_build(r, m);
		if (m->userid < 0 || m->dbid < 0 || m->queryid < 0 || m->c[DBI_PGSS_C_CALLS] < 0 ||
		    m->t[DBI_PGSS_T_EXEC] < 0)
			return fail(s, DBI_PGSS_VERSION, "pg_stat_statements result lacks expected columns%s", NULL);
		counters_start(s, &s->info_before);
		nrows = PQntuples(r);
		table_fit(s, (size_t)nrows);
		for (int k = 0; k < nrows; k++) {
			if (!decode_row(r, k, m, &row)) {
				s->stats.bad_rows++;
				continue;
			}
			row_in(s, &row);
		}
		/*
		 * Changed rows only, unless the info read before this query shows an eviction or
		 * reset since the keys were taken: the server's check (later) saw it too and
		 * returned every row.
		 */
		counters_end(s, s->changed_asked && info_still(&s->info_before, &s->last_info));
		if (!dbi_pgss_info_sql(s->api))
			info_after(s, NULL);
		break;
	}
	case DBI_PGSS_Q_INFO_AFTER: {
		struct dbi_pgss_info after;
		if (!decode_info(r, &after))
			memset(&after, 0, sizeof(after));
		if (s->counters_taken)
			info_after(s, &after);
		break;
	}
	case DBI_PGSS_Q_NAMES:
		if (st == PGRES_TUPLES_OK) {
			for (int k = 0; k < PQntuples(r); k++) {
				const char *role = PQgetvalue(r, k, 0);
				uint32_t oid = (uint32_t)strtoul(PQgetvalue(r, k, 1), NULL, 10);
				dbi_pgss_feed_name(s, role[0] == 't', oid, PQgetvalue(r, k, 2));
			}
		}
		break;
	case DBI_PGSS_Q_TEXTS:
		if (st == PGRES_TUPLES_OK) {
			for (int k = 0; k < PQntuples(r); k++) {
				if (PQgetisnull(r, k, 0) || PQgetisnull(r, k, 1))
					continue;
				dbi_pgss_feed_text(s, (int64_t)strtoll(PQgetvalue(r, k, 0), NULL, 10),
				                   PQgetvalue(r, k, 1));
			}
		}
		break;
	default:
		return DBI_ERR;
	}

	if (s->got == s->nq) {
		if (s->phase == PH_COUNTERS && s->counters_taken)
			s->phase = (s->nwant_q || s->nwant_db || s->nwant_role) ? PH_FOLLOW : PH_READY;
		else if (s->phase == PH_FOLLOW)
			s->phase = PH_READY;
		s->nq = s->got = 0;
	}
	return DBI_OK;
}
