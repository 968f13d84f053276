/*
 * statements.h — query intelligence from pg_stat_statements: the "statements" metric
 * group of the PostgreSQL receiver.
 *
 * One struct dbi_pgss per target keeps the last cumulative counters of every statement
 * (keyed by dbid, userid, queryid, toplevel) and turns each scrape into interval deltas
 * that survive pg_stat_statements_reset() and entry eviction; it exports the top-N
 * statements by interval execution time plus an "other" aggregate per database (so sums
 * still add up), a per-database execution-time histogram, and — once per new fingerprint
 * — a literal-free query sample log record.
 *
 * It does no I/O. The engine asks it which SQL to run, runs it (pipelined with its other
 * groups' queries), hands back each PGresult, and calls emit:
 *
 *	dbi_pgss_connected(s, PQserverVersion(conn));      after every (re)connect
 *	dbi_pgss_begin(s, now_unix_ns);
 *	while ((n = dbi_pgss_queries(s, q, DBI_PGSS_MAX_QUERIES)) > 0) {
 *		send q[0..n) (PQsendQueryParams with q[i].nparams/params/result_binary), sync;
 *		for i in 0..n: dbi_pgss_result(s, i, res_i);  (DBI_ERR: see dbi_pgss_status)
 *	}
 *	dbi_pgss_emit(s);                                  points and records go to the sink
 *
 * A scrape takes one round trip (counters) plus, only when a statement new to the cache
 * enters the top-N or a database/role name is unknown, a second one. The first scrape
 * after connecting adds a one-row extension probe (skipped when the engine reports the
 * version with dbi_pgss_set_extversion). Without the engine, dbi_pgss_feed_* hand the
 * module decoded rows directly (unit tests, benchmarks).
 */
#ifndef DBI_PG_STATEMENTS_H
#define DBI_PG_STATEMENTS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbi/common.h"
#include "dbi/fingerprint.h"
#include "dbi/record.h"
#include "dbi/registry.h"

struct dbi_pgss;

/*
 * Where output goes: the engine maps these onto dbi_rctx_emit_point,
 * dbi_rctx_reserve_record and dbi_rctx_commit_record. point returns DBI_OK or DBI_AGAIN
 * (pipeline full: the module counts a drop and goes on); reserve returns NULL when full.
 */
struct dbi_pgss_sink {
	void *ctx;
	int (*point)(void *ctx, struct dbi_point *p, uint64_t route_hash);
	void *(*reserve)(void *ctx, uint32_t type, uint32_t len, uint64_t route_hash);
	void (*commit)(void *ctx, void *rec);
};

/* Metrics per statement (and per "other" aggregate); bit i of dbi_pgss_config.metrics. */
enum dbi_pgss_metric {
	DBI_PGSS_M_CALLS = 0,      /* postgresql.statement.calls */
	DBI_PGSS_M_EXEC_TIME,      /* postgresql.statement.execution.time */
	DBI_PGSS_M_EXEC_MEAN,      /* postgresql.statement.execution.mean_time (gauge) */
	DBI_PGSS_M_PLAN_TIME,      /* postgresql.statement.planning.time */
	DBI_PGSS_M_ROWS,           /* postgresql.statement.rows */
	DBI_PGSS_M_SHARED_HIT,     /* postgresql.statement.shared_blocks.hit */
	DBI_PGSS_M_SHARED_READ,    /* postgresql.statement.shared_blocks.read */
	DBI_PGSS_M_SHARED_DIRTIED, /* postgresql.statement.shared_blocks.dirtied */
	DBI_PGSS_M_SHARED_WRITTEN, /* postgresql.statement.shared_blocks.written */
	DBI_PGSS_M_LOCAL_READ,     /* postgresql.statement.local_blocks.read */
	DBI_PGSS_M_LOCAL_WRITTEN,  /* postgresql.statement.local_blocks.written */
	DBI_PGSS_M_TEMP_READ,      /* postgresql.statement.temp_blocks.read */
	DBI_PGSS_M_TEMP_WRITTEN,   /* postgresql.statement.temp_blocks.written */
	DBI_PGSS_M_BLK_READ_TIME,  /* postgresql.statement.io.read_time */
	DBI_PGSS_M_BLK_WRITE_TIME, /* postgresql.statement.io.write_time */
	DBI_PGSS_M_WAL_RECORDS,    /* postgresql.statement.wal.records */
	DBI_PGSS_M_WAL_FPI,        /* postgresql.statement.wal.full_page_images */
	DBI_PGSS_M_WAL_BYTES,      /* postgresql.statement.wal.bytes */
	DBI_PGSS_M_COUNT
};
#define DBI_PGSS_M_BIT(m) (1u << (m))
/* The default set (the rest are opt-in): the list. */
#define DBI_PGSS_M_DEFAULT                                                                                             \
	(DBI_PGSS_M_BIT(DBI_PGSS_M_CALLS) | DBI_PGSS_M_BIT(DBI_PGSS_M_EXEC_TIME) |                                     \
	 DBI_PGSS_M_BIT(DBI_PGSS_M_EXEC_MEAN) | DBI_PGSS_M_BIT(DBI_PGSS_M_ROWS) |                                      \
	 DBI_PGSS_M_BIT(DBI_PGSS_M_SHARED_HIT) | DBI_PGSS_M_BIT(DBI_PGSS_M_SHARED_READ) |                              \
	 DBI_PGSS_M_BIT(DBI_PGSS_M_SHARED_DIRTIED) | DBI_PGSS_M_BIT(DBI_PGSS_M_SHARED_WRITTEN) |                       \
	 DBI_PGSS_M_BIT(DBI_PGSS_M_TEMP_READ) | DBI_PGSS_M_BIT(DBI_PGSS_M_TEMP_WRITTEN) |                              \
	 DBI_PGSS_M_BIT(DBI_PGSS_M_WAL_BYTES))
#define DBI_PGSS_M_ALL ((1u << DBI_PGSS_M_COUNT) - 1)

/* Metric descriptor of a per-statement metric (names, units, kinds: docs/query-intelligence.md). */
const struct dbi_metric_def *dbi_pgss_metric_def(enum dbi_pgss_metric m);

struct dbi_pgss_config {
	struct dbi_registry *reg;
	uint32_t resource; /* attribute set id of the target's resource */
	uint32_t scope;    /* scope id */
	const struct dbi_pgss_sink *sink;

	uint32_t limit;          /* statement_metrics.limit: top-N exported; 0 = 200 */
	uint32_t max_statements; /* statements tracked at most (memory bound); 0 = 100000 */
	/* every Nth counters read is a full one, the others changed rows only (PG 14+); 0 = 20, 1 = all full */
	uint32_t full_read_every;
	uint32_t metrics;    /* mask of DBI_PGSS_M_BIT(); 0 = DBI_PGSS_M_DEFAULT */
	uint32_t sample_max; /* bytes of normalized text in a sample; 0 = 4096 */

	/* Fingerprint cache: shared by the targets of one scraper thread, or NULL for an own one. */
	struct dbi_qfp_cache *cache;
	size_t cache_bytes; /* budget of an own cache; 0 = 1 MiB */
	uint32_t tag;       /* this target's key in a shared cache (unique per target) */

	/*
	 * Scratch for normalized text while texts arrive, shared by the targets of one
	 * scraper thread (at least sample_max bytes), or NULL for an own one.
	 */
	char *text_buf;
	size_t text_buf_len;

	/*
	 * Top-N scratch shared by the targets of one scraper thread (dbi_pgss_pool_create),
	 * or NULL: the target keeps its own for good (and dbi_pgss_last_top works after emit).
	 */
	struct dbi_pgss_pool *pool;
};

/*
 * What the targets of one scraper thread can share instead of keeping one each: the top-N
 * selection of a scrape (candidates, their deltas, the heap: up to limit entries, ~26 KiB at
 * limit 200), needed only from the counters read to dbi_pgss_emit, so a thread holds as many
 * as it has statement scrapes in flight; the keys parameter of a changed-only read (~21 bytes
 * per tracked statement), built and sent at once; and the counters SQL texts (~1 KiB), one
 * per server version. Not thread-safe: one pool per scraper thread. Release it after every
 * dbi_pgss that used it.
 */
struct dbi_pgss_pool;
struct dbi_pgss_pool *dbi_pgss_pool_create(void);
void dbi_pgss_pool_release(struct dbi_pgss_pool *p);
/* Scratch sets the pool has made (in use + free): at most the scrapes ever in flight at once. */
uint32_t dbi_pgss_pool_sets(const struct dbi_pgss_pool *p);

/* Statements tracked per target at first; the table doubles up to max_statements. */
#define DBI_PGSS_INITIAL_STATEMENTS 16u

/* Why a scrape failed. The *_MISSING/NOT_LOADED/PRIVILEGE ones mean "turn the group off". */
enum dbi_pgss_status {
	DBI_PGSS_OK = 0,
	DBI_PGSS_EXT_MISSING, /* extension not created in this database */
	DBI_PGSS_NOT_LOADED,  /* not in shared_preload_libraries */
	DBI_PGSS_PRIVILEGE,   /* permission denied */
	DBI_PGSS_VERSION,     /* columns not as expected (extension updated?): re-probed next scrape */
	DBI_PGSS_FAILED,      /* anything else (timeout, connection): transient */
};
const char *dbi_pgss_status_name(enum dbi_pgss_status st);
/* True for the statuses after which the engine should turn the group off (and say why). */
bool dbi_pgss_status_disables(enum dbi_pgss_status st);

struct dbi_pgss_stats {
	uint64_t scrapes;         /* scrapes whose counters were taken */
	uint64_t failures;        /* scrapes that failed (status != OK) */
	uint64_t rows;            /* counter rows read */
	uint64_t tracked;         /* statements tracked now (gauge) */
	uint64_t new_entries;     /* statements that appeared */
	uint64_t gone;            /* statements that disappeared (evicted or reset) */
	uint64_t rebaselines;     /* counters went down / entry re-created: new baseline */
	uint64_t resets;          /* pg_stat_statements_reset() seen (stats_reset moved) */
	uint64_t hidden_rows;     /* rows without queryid (insufficient privilege) */
	uint64_t overflow_rows;   /* rows beyond max_statements, not tracked */
	uint64_t bad_rows;        /* rows that could not be decoded */
	uint64_t text_queries;    /* text fetches issued */
	uint64_t texts_requested; /* queryids asked for */
	uint64_t texts_received;  /* texts fingerprinted */
	uint64_t text_missing;    /* exported statements without text (gone, or fetch failed) */
	uint64_t parse_fallbacks; /* texts libpg_query could not parse */
	uint64_t samples;         /* query samples emitted */
	uint64_t name_queries;    /* database/role name fetches issued */
	uint64_t points;          /* points emitted */
	uint64_t dropped_points;  /* sink full */
	uint64_t dropped_records; /* sink full (histograms, samples) */
	uint64_t series_limit;    /* registry refused a series */
	uint64_t series_interns;  /* statements whose series were (re-)interned: the cold path */
	uint64_t lost_intervals;  /* counters taken but never emitted (begin without emit) */
	uint64_t grow_allocs;     /* allocations after create (table growth; 0 in steady state) */
	uint64_t changed_reads;   /* counters reads that returned only the statements that ran */
};

struct dbi_pgss *dbi_pgss_create(const struct dbi_pgss_config *cfg, struct dbi_errbuf *err);
void dbi_pgss_release(struct dbi_pgss *s);

/*
 * After every (re)connect: the server's version (PQserverVersion). The extension version
 * is probed again on the next scrape and name caches are dropped.
 */
void dbi_pgss_connected(struct dbi_pgss *s, int server_version_num);
/* Optional: the engine already knows pg_extension.extversion (NULL: not installed). */
void dbi_pgss_set_extversion(struct dbi_pgss *s, const char *extversion);

/* ---- one scrape ---- */

#define DBI_PGSS_MAX_QUERIES 4

/* What a query is for (the engine may log or count by it; tests count text fetches). */
enum dbi_pgss_qkind {
	DBI_PGSS_Q_PROBE = 1,   /* pg_extension.extversion, once per connection */
	DBI_PGSS_Q_INFO_BEFORE, /* pg_stat_statements_info before the counters (PG 14+) */
	DBI_PGSS_Q_COUNTERS,    /* pg_stat_statements(false): every scrape */
	DBI_PGSS_Q_INFO_AFTER,  /* pg_stat_statements_info after the counters (PG 14+) */
	DBI_PGSS_Q_NAMES,       /* database and role names of unknown OIDs */
	DBI_PGSS_Q_TEXTS,       /* query text of queryids new to the fingerprint cache */
};
/* SQL of the fixed-text queries (counters: dbi_pgss_counters_sql). */
const char *dbi_pgss_query_sql(enum dbi_pgss_qkind k);

struct dbi_pgss_query {
	const char *sql;
	int nparams; /* text-format parameters, each NUL-terminated */
	const char *params[3];
	int result_binary; /* ask for binary results (resultFormat = 1) */
	uint8_t kind;      /* enum dbi_pgss_qkind */
};

/* Start a scrape; now_ns is its Unix-epoch time (the points' time). */
int dbi_pgss_begin(struct dbi_pgss *s, uint64_t now_ns);

/*
 * The queries to run now, in order, into q[0..max); returns how many. 0 means the scrape
 * is ready for dbi_pgss_emit (or failed: see dbi_pgss_status). The strings stay valid
 * until the next call on s, or with a pool (config.pool) until the next dbi_pgss_queries on
 * any target of that pool: send them before building another target's.
 */
unsigned dbi_pgss_queries(struct dbi_pgss *s, struct dbi_pgss_query *q, unsigned max);

/*
 * The result of query i of the last dbi_pgss_queries() (any status; the module does not
 * PQclear it). DBI_OK, or DBI_ERR when the scrape failed: dbi_pgss_status() says why.
 */
int dbi_pgss_result(struct dbi_pgss *s, unsigned i, const PGresult *r);

/* Emit the scrape's points and histograms (samples went out when texts arrived). */
int dbi_pgss_emit(struct dbi_pgss *s);

enum dbi_pgss_status dbi_pgss_status(const struct dbi_pgss *s, const char **msg);
const struct dbi_pgss_stats *dbi_pgss_get_stats(const struct dbi_pgss *s);

/* ---- decoded input, for tests and benchmarks (the engine uses dbi_pgss_result) ---- */

/* pg_stat_statements API levels: the extension version the column set follows. */
enum dbi_pgss_api {
	DBI_PGSS_API_NONE = 0,
	DBI_PGSS_API_1_3 = 103,  /* 1.3 .. 1.7 (PG 9.5 .. 12): total_time, no plans/wal/toplevel */
	DBI_PGSS_API_1_8 = 108,  /* PG 13: plans, total_exec_time, wal_* */
	DBI_PGSS_API_1_9 = 109,  /* PG 14: toplevel, pg_stat_statements_info */
	DBI_PGSS_API_1_10 = 110, /* PG 15, 16: temp_blk_*_time, jit_* (unused here) */
	DBI_PGSS_API_1_11 = 111, /* PG 17: shared_blk_*_time, local_blk_*_time, stats_since */
};
/* API level of an extension version string ("1.10"); DBI_PGSS_API_NONE if unusable. */
enum dbi_pgss_api dbi_pgss_api_of(const char *extversion);
/* The version a server ships by default (server_version_num 120000 -> 1.3..1.7 API). */
enum dbi_pgss_api dbi_pgss_api_default(int server_version_num);
/* The per-scrape counters SQL with every column, and the info SQL (NULL before 1.9). */
const char *dbi_pgss_counters_sql(enum dbi_pgss_api api);
/*
 * The counters SQL the module runs: only the columns the metric mask needs. From 1.9 on
 * it also returns each row's change key (rkey); changed_only adds the filter that returns
 * only rows whose key is not in $1 (int8[]), unless pg_stat_statements_info's stats_reset
 * (microseconds since 2000) or dealloc moved from $2 / $3. 0: error, or changed_only
 * before 1.9.
 */
size_t dbi_pgss_build_counters_sql(enum dbi_pgss_api api, uint32_t metrics, bool changed_only, char *buf, size_t cap);
const char *dbi_pgss_info_sql(enum dbi_pgss_api api);
void dbi_pgss_set_api(struct dbi_pgss *s, enum dbi_pgss_api api);

enum dbi_pgss_ctr {
	DBI_PGSS_C_CALLS = 0,
	DBI_PGSS_C_PLANS,
	DBI_PGSS_C_ROWS,
	DBI_PGSS_C_SHARED_HIT,
	DBI_PGSS_C_SHARED_READ,
	DBI_PGSS_C_SHARED_DIRTIED,
	DBI_PGSS_C_SHARED_WRITTEN,
	DBI_PGSS_C_LOCAL_READ,
	DBI_PGSS_C_LOCAL_WRITTEN,
	DBI_PGSS_C_TEMP_READ,
	DBI_PGSS_C_TEMP_WRITTEN,
	DBI_PGSS_C_WAL_RECORDS,
	DBI_PGSS_C_WAL_FPI,
	DBI_PGSS_C_WAL_BYTES,
	DBI_PGSS_NCTR
};
enum dbi_pgss_tm {
	DBI_PGSS_T_EXEC = 0, /* ms, as pg_stat_statements reports */
	DBI_PGSS_T_PLAN,
	DBI_PGSS_T_BLK_READ,
	DBI_PGSS_T_BLK_WRITE,
	DBI_PGSS_NTM
};

struct dbi_pgss_ctrs {
	uint64_t c[DBI_PGSS_NCTR];
	double t[DBI_PGSS_NTM];
};

struct dbi_pgss_row {
	uint32_t dbid, userid;
	int64_t queryid;
	bool has_queryid; /* false: "<insufficient privilege>" rows */
	bool toplevel;
	double min_exec, max_exec; /* ms; 0 when unknown */
	uint64_t stats_since;      /* PG 17: identity of the entry's creation time; 0 unknown */
	int64_t rkey;              /* the server's change key of this row (has_rkey): see statements.c */
	bool has_rkey;
	struct dbi_pgss_ctrs v;
};

/* pg_stat_statements_info, read before and after the counters (reset detection, PG 14+). */
struct dbi_pgss_info {
	bool valid;
	uint64_t stats_reset; /* identity of the reset timestamp */
	int64_t dealloc;
};

/* Instead of dbi_pgss_queries/result: the decoded counters of one scrape. */
int dbi_pgss_feed_counters(struct dbi_pgss *s, const struct dbi_pgss_info *before, const struct dbi_pgss_row *rows,
                           size_t n, const struct dbi_pgss_info *after);
/* Queryids whose text the module wants now (after the counters); returns how many. */
size_t dbi_pgss_wanted_texts(const struct dbi_pgss *s, int64_t *out, size_t max);
/* Text of one queryid (NULL: not available). */
void dbi_pgss_feed_text(struct dbi_pgss *s, int64_t queryid, const char *text);
/* A database (is_role false) or role name. */
void dbi_pgss_feed_name(struct dbi_pgss *s, bool is_role, uint32_t oid, const char *name);

/* ---- inspection, for tests: the last scrape's exported statements ---- */

struct dbi_pgss_top {
	uint32_t dbid, userid;
	int64_t queryid;
	bool toplevel;
	bool has_fp;
	uint64_t fp;
	struct dbi_pgss_ctrs delta;
};
/* The top-N of the last scrape, by interval execution time descending; returns how many. */
size_t dbi_pgss_last_top(const struct dbi_pgss *s, struct dbi_pgss_top *out, size_t max);
/* Interval deltas of the "other" aggregate of one database in the last scrape (false: none). */
bool dbi_pgss_last_other(const struct dbi_pgss *s, uint32_t dbid, struct dbi_pgss_ctrs *out);

/* Histogram bounds, ms: [0.1, 1, 10, 100, 1000]. */
#define DBI_PGSS_HIST_NB 5
extern const double dbi_pgss_hist_bounds_ms[DBI_PGSS_HIST_NB];
/* Bucket of an interval mean time (ms): bucket i holds (bounds[i-1], bounds[i]]. */
unsigned dbi_pgss_hist_bucket(double mean_ms);

#endif
