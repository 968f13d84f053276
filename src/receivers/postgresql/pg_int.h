/*
 * pg_int.h — private to the `postgresql` receiver (src/receivers/postgresql/).
 *
 * The receiver is split by concern: pg_conf.c (config map, targets and the targets
 * file, connection parameters), pg_metrics.c (the metric catalog: OTel names, units,
 * types, default enablement, group), pg_sql.c (the SQL of each group by server version
 * and the rows → points mapping), pg_engine.c (the scraper threads: epoll over libpq's
 * non-blocking API in pipeline mode, schedules, deadlines, reconnects), pg_receiver.c
 * (the component: create, run, reconfigure) and pg_breaker.c (the seam to the circuit
 * breaker). A metric group is the unit of SQL: a disabled group's SQL is never sent.
 */
#ifndef DBI_PG_INT_H
#define DBI_PG_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dbi/circuit.h"
#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/registry.h"

#include "statements.h"

#define PG_COMP "postgresql"

/* Metric groups: the unit of SQL. Server groups run on the target's main session. */
enum pg_group {
	PG_G_SERVER = 0,   /* version, settings, database list: always on */
	PG_G_DATABASE,     /* pg_stat_database, sizes, wraparound ages */
	PG_G_CONFLICTS,    /* pg_stat_database_conflicts */
	PG_G_BGWRITER,     /* pg_stat_bgwriter (+ pg_stat_checkpointer from 17) */
	PG_G_WAL,          /* pg_stat_wal (14+) */
	PG_G_ARCHIVER,     /* pg_stat_archiver */
	PG_G_REPLICATION,  /* pg_stat_replication */
	PG_G_SLOTS,        /* pg_replication_slots */
	PG_G_LOCKS,        /* pg_locks by mode */
	PG_G_ACTIVITY,     /* pg_stat_activity sampling */
	PG_G_QUERY_TIME,   /* pg_stat_statements total per database */
	PG_G_STATEMENTS,   /* pg_stat_statements query intelligence (statements.h) */
	PG_G_FIRST_PER_DB, /* groups below run in every database's own session */
	PG_G_TABLES = PG_G_FIRST_PER_DB,
	PG_G_INDEXES,
	PG_G_FUNCTIONS,
	PG_G_RELATION_LOCKS, /* postgresql.database.locks: pg_locks x pg_class */
	PG_G_COUNT,
};

extern const char *const dbi_pg_group_names[PG_G_COUNT];

/* ---- the metric catalog (pg_metrics.c) ---- */

struct pg_metric_info {
	const char *name, *unit, *desc;
	uint8_t kind; /* DBI_MK_GAUGE / DBI_MK_SUM */
	uint8_t monotonic, is_double, def_on;
	uint8_t group;
};

enum pg_metric {
	/* OpenTelemetry postgresqlreceiver, enabled by default */
	PGM_BACKENDS,
	PGM_BGW_BUF_ALLOC,
	PGM_BGW_BUF_WRITES,
	PGM_BGW_CKPT_COUNT,
	PGM_BGW_DURATION,
	PGM_BGW_MAXWRITTEN,
	PGM_BLOCKS_READ,
	PGM_COMMITS,
	PGM_ROLLBACKS,
	PGM_CONN_MAX,
	PGM_DB_COUNT,
	PGM_DB_SIZE,
	PGM_INDEX_SCANS,
	PGM_INDEX_SIZE,
	PGM_OPERATIONS,
	PGM_REPL_DATA_DELAY,
	PGM_ROWS,
	PGM_TABLE_COUNT,
	PGM_TABLE_SIZE,
	PGM_TABLE_VACUUM,
	PGM_WAL_AGE,
	PGM_WAL_LAG,
	/* OpenTelemetry, optional */
	PGM_BLKS_HIT,
	PGM_BLKS_READ,
	PGM_DEADLOCKS,
	PGM_TEMP_FILES,
	PGM_TEMP_IO,
	PGM_TUP_DELETED,
	PGM_TUP_FETCHED,
	PGM_TUP_INSERTED,
	PGM_TUP_RETURNED,
	PGM_TUP_UPDATED,
	PGM_DB_LOCKS,
	PGM_FUNC_CALLS,
	PGM_QUERY_CONFLICTS,
	PGM_QUERY_EXEC_TIME,
	PGM_SEQ_SCANS,
	PGM_WAL_DELAY,
	/* dbi's own */
	PGM_XID_AGE,
	PGM_MXID_AGE,
	PGM_TABLE_AUTOVACUUM,
	PGM_TABLE_ANALYZE,
	PGM_TABLE_AUTOANALYZE,
	PGM_INDEX_TUP_READ,
	PGM_INDEX_TUP_FETCH,
	PGM_FUNC_TIME,
	PGM_LOCKS,
	PGM_ACT_SESSIONS,
	PGM_ACT_BLOCKED,
	PGM_ACT_OLDEST_XACT,
	PGM_ACT_OLDEST_XMIN,
	PGM_CONN_COUNT,
	PGM_CONN_USAGE,
	PGM_SLOT_RETAINED,
	PGM_SLOT_ACTIVE,
	PGM_SLOT_WAL_STATUS,
	PGM_WAL_BYTES,
	PGM_WAL_RECORDS,
	PGM_WAL_FPI,
	PGM_WAL_BUFFERS_FULL,
	PGM_CKPT_RESTARTPOINTS,
	PGM_ARCH_ARCHIVED,
	PGM_ARCH_FAILED,
	/* the receiver about itself, per target */
	PGM_SELF_UP,
	PGM_SELF_SCRAPE_DURATION,
	PGM_SELF_GROUP_ENABLED,
	PGM_SELF_SCRAPE_ERRORS,
	PGM_COUNT,
};

extern const struct pg_metric_info dbi_pg_metrics[PGM_COUNT];
int dbi_pg_metric_find(const char *name); /* index or -1 */

/* ---- configuration (pg_conf.c) ---- */

struct pg_tls_conf {
	bool insecure, insecure_skip_verify;
	char *ca_file, *cert_file, *key_file;
};

/* One element of `targets:` (and of the targets file): unset fields inherit. */
struct pg_target_conf {
	char *endpoint;
	char *transport; /* "tcp" | "unix"; NULL = inherit */
	char *username, *password;
	struct dbi_strlist databases, exclude_databases;
	struct pg_tls_conf tls;
	char *sslmode;
	struct dbi_strmap labels;
	uint64_t collection_interval; /* 0 = inherit */
	char *maintenance_database;
};

struct pg_metric_conf {
	char *name; /* first: DBI_CT_KEYED_LIST */
	bool enabled;
};

struct pg_cfg {
	char *endpoint;
	int transport;
	char *username, *password;
	struct dbi_strlist databases, exclude_databases;
	uint64_t collection_interval, initial_delay;
	double jitter;
	struct pg_tls_conf tls;
	char *sslmode;
	char *application_name;
	uint64_t statement_timeout, lock_timeout, connect_timeout, idle_timeout;
	uint64_t reconnect_initial, reconnect_max;
	char *maintenance_database;
	struct dbi_strmap labels;
	struct dbi_list targets; /* struct pg_target_conf */
	char *targets_file;
	struct dbi_list metrics; /* struct pg_metric_conf */
	bool groups[PG_G_COUNT];
	int64_t stmt_limit, stmt_max;    /* statement_metrics.limit, .max_statements */
	int64_t stmt_full_every;         /* statement_metrics.full_read_every */
	int64_t max_relations;           /* per database per scrape; 0 = no limit */
	struct dbi_circuit_conf circuit; /* circuit_breaker.* */
};

extern const struct dbi_conf_key dbi_pg_keys[];
extern const struct dbi_conf_key dbi_pg_target_keys[];
int dbi_pg_validate(const void *cfg, const char *id, struct dbi_errbuf *err);

/* A resolved target, immutable once published in a target set. */
struct pg_tconf {
	char *key; /* identity: "host:port user db" */
	uint64_t key_hash;
	uint64_t settings_hash; /* changes → the target is rebuilt */
	char host[256];
	int port;
	bool unix_socket;
	char instance_id[300];
	char *user, *password, *sslmode, *sslrootcert, *sslcert, *sslkey, *maint_db;
	char **databases, **exclude;
	size_t ndatabases, nexclude;
	char **label_k, **label_v;
	size_t nlabels;
	uint64_t interval;
};

/* Every target the receiver scrapes now; swapped whole (RCU style) on reload. */
struct pg_tset {
	uint64_t gen;
	struct pg_tconf *v;
	size_t n;
	struct pg_tset *next_retired;
};

/* Build a target set from the config plus the targets file's list (may be NULL). */
struct pg_tset *dbi_pg_tset_build(const struct pg_cfg *cfg, const struct dbi_list *file_targets,
                                  struct dbi_errbuf *err);
void dbi_pg_tset_free(struct pg_tset *ts);
bool dbi_pg_db_wanted(const struct pg_tconf *tc, const char *db);

/* ---- the receiver (pg_receiver.c) ---- */

struct pg_thread;

struct dbi_pg {
	const struct dbi_inst *inst;
	_Atomic(const struct pg_cfg *) cfg;
	struct dbi_registry *reg;
	uint32_t scope;
	uint32_t metric_id[PGM_COUNT];
	_Atomic(uint64_t) metric_on[(PGM_COUNT + 63) / 64]; /* bit per metric, from the config */
	_Atomic(uint32_t) group_on;                         /* bit per group: enabled and any metric on */
	uint32_t empty_attrs;
	/* the target set: readers load it between scrapes; reload publishes a new one */
	_Atomic(struct pg_tset *) tset;
	pthread_mutex_t pub_lock; /* publishers: reconfigure (main thread), targets file (thread 0) */
	struct pg_tset *retired;
	uint64_t gen;
	struct dbi_list file_targets; /* last good read of the targets file */
	char *file_path;
	uint64_t file_sig; /* mtime/size/inode of what was read */
	unsigned nthreads;
	_Atomic(uint64_t) *seen_gen; /* per thread: the generation it runs */
	uint64_t start_wall;
	struct dbi_circuit_table *circuits; /* one circuit per server (host:port) */
};

static inline bool dbi_pg_metric_on(const struct dbi_pg *pg, int m)
{
	return (atomic_load_explicit(&pg->metric_on[m / 64], memory_order_relaxed) >> (m % 64)) & 1;
}

static inline bool dbi_pg_group_on(const struct dbi_pg *pg, int g)
{
	return (atomic_load_explicit(&pg->group_on, memory_order_relaxed) >> g) & 1;
}

/* Recompute metric_on/group_on from a config. */
void dbi_pg_apply_enablement(struct dbi_pg *pg, const struct pg_cfg *cfg);
/* Publish a new target set (takes ownership); frees retired sets nobody runs any more. */
void dbi_pg_publish(struct dbi_pg *pg, struct pg_tset *ts);
/* Thread 0: re-read the targets file when it changed; DBI_OK when nothing to do. */
int dbi_pg_check_targets_file(struct dbi_pg *pg);

/* ---- the engine (pg_engine.c) ---- */

/* Per-target circuit (include/dbi/circuit.h), behind the seam in pg_breaker.c. */
struct pg_breaker {
	struct dbi_circuit *c; /* NULL: the table is full; the target is always allowed */
	struct dbi_circuit_series series;
	bool have_series;
};

#define PG_MAX_Q 40 /* statements in one pipeline */

enum pg_sess_state { SS_CLOSED = 0, SS_CONNECTING, SS_IDLE, SS_BUSY };

/* What a scrape's statement is: a control statement, or statement `sub` of a group. */
struct pg_query {
	uint8_t kind; /* Q_CTRL, Q_GROUP, Q_HOOK */
	uint8_t group;
	uint8_t sub;
	uint8_t failed;
};
enum { Q_CTRL = 0, Q_GROUP, Q_HOOK };

struct pg_target;
struct pg_db;

/* One libpq connection: the target's main session, or a database's own. */
struct pg_session {
	struct pg_target *t;
	struct pg_db *db; /* NULL: the main session */
	PGconn *conn;
	int fd;
	int state;
	uint32_t ev;        /* epoll events registered; 0 = not registered */
	uint64_t deadline;  /* mono: connect or pipeline deadline */
	uint64_t last_used; /* mono */
	uint64_t retry_at;  /* mono: no connection attempt before */
	uint64_t backoff;
	bool want_scrape; /* scrape once connected */
	bool snapshot_set;
	bool flushing; /* pipeline not yet fully sent */
	bool retried;  /* re-ran once after a group turned itself off */
	int ver;
	struct pg_query q[PG_MAX_Q];
	int nq, qi;
	bool got;        /* a result of q[qi] was seen */
	int result;      /* enum dbi_circuit_result of this pipeline */
	bool sticky_err; /* a group was turned off: re-run the rest */
	char err[200];
	uint64_t sent_ns;  /* mono: pipeline sent */
	uint32_t conn_gen; /* connections made so far */
};

struct pg_db {
	char *name;
	uint32_t res;
	bool seen;        /* in the last database list */
	bool connectable; /* datallowconn and CONNECT privilege */
	uint64_t stats_reset_ns;
	struct pg_session s;
};

struct pg_thread;

struct pg_target {
	const struct pg_tconf *tc;
	struct pg_thread *th;
	struct pg_session main;
	struct pg_db **dbs;
	size_t ndbs, capdbs;
	uint64_t next_due, scrape_mono, scrape_wall;
	int inflight; /* sessions busy in the current scrape */
	int decision; /* enum dbi_circuit_decision of the current scrape */
	int worst;    /* worst enum dbi_circuit_result of the current scrape */
	char worst_err[200];
	bool scraping;
	uint32_t res_server;
	/*
	 * Start of the cumulative counters without a stats_reset: the postmaster start time
	 * first seen. A clean restart keeps the counters (saved at shutdown), so a later start
	 * time is not a reset; a crash zeroes them, which shows as values going down.
	 */
	uint64_t start_ns;
	bool start_known;
	uint64_t bgw_reset_ns, ckpt_reset_ns, wal_reset_ns, arch_reset_ns;
	int ver;
	int max_connections;
	bool in_recovery;
	bool have_pgss;
	bool known;                      /* the server query answered at least once */
	uint8_t goff[PG_G_COUNT];        /* turned off for this target: enum pg_off */
	uint64_t goff_until[PG_G_COUNT]; /* mono: try again after */
	uint64_t gerrors[PG_G_COUNT][4]; /* scrape errors by group and reason */
	uint64_t relations_skipped;
	/* the statements group (statements.h): one module instance per target */
	struct dbi_pgss *pgss;
	bool pgss_active;                             /* a statements scrape is under way on the main session */
	bool pgss_broken;                             /* could not be created: off for this target */
	uint32_t pgss_conn;                           /* main session conn_gen the module was told about */
	uint32_t pgss_tag;                            /* this target's key in the thread's fingerprint cache */
	uint64_t pgss_reads, pgss_changed, pgss_rows; /* module stats already added to the thread's */
	char pgss_extversion[16];
	struct dbi_pgss_query pq[DBI_PGSS_MAX_QUERIES];
	struct pg_breaker breaker;
	int up;
};

enum pg_off { OFF_NO = 0, OFF_PRIVILEGE, OFF_MISSING, OFF_VERSION, OFF_EXTENSION };
enum pg_err_reason { ER_QUERY = 0, ER_TIMEOUT, ER_PRIVILEGE, ER_MISSING };

/* One scrape of one database on one session: what SQL handlers need. */
struct pg_sctx {
	struct dbi_pg *pg;
	struct pg_thread *th;
	struct pg_target *t;
	struct pg_session *s;
	struct pg_db *db; /* the session's database (NULL on the main session: its own db by name) */
	const char *dbname;
	uint64_t now; /* wall ns */
};

int dbi_pg_run(struct dbi_pg *pg, struct dbi_rctx *rctx);

/* pg_sql.c: the SQL of statement `sub` of a group for a server version (NULL: none). */
const char *dbi_pg_group_sql(int group, int sub, int ver);
/* Does the group run on this server version at all? */
bool dbi_pg_group_supported(int group, int ver);
/* Turn one result into points. */
void dbi_pg_group_result(struct pg_sctx *x, int group, int sub, const PGresult *r);

/* pg_engine.c: emit helpers for pg_sql.c */
void dbi_pg_emit(struct pg_sctx *x, int metric, uint32_t res, uint32_t attrs, double v, uint64_t start_ns);
uint32_t dbi_pg_attrs(struct pg_sctx *x, size_t n, const char *const *kv);
uint32_t dbi_pg_res(struct pg_sctx *x, const char *db, const char *schema, const char *table, const char *index);
struct pg_db *dbi_pg_db_get(struct pg_sctx *x, const char *name, bool create);

/* Per-thread counters (the component's stats list). */
enum {
	PGS_SCRAPES,
	PGS_SCRAPE_FAIL,
	PGS_SCRAPE_NS,
	PGS_CONNECTS,
	PGS_CONNECT_FAIL,
	PGS_QUERIES,
	PGS_POINTS,
	PGS_DROP_RING_FULL,
	PGS_DROP_OVERRUN,
	PGS_DROP_SERIES_LIMIT,
	PGS_DROP_CIRCUIT,
	PGS_DROP_BACKOFF,
	PGS_GROUP_ERRORS,
	PGS_LOCKED_SKIPPED,
	PGS_TARGETS,
	PGS_SESSIONS,
	PGS_TSET_SWAPS,
	PGS_STMT_READS,
	PGS_STMT_READS_CHANGED,
	PGS_STMT_ROWS,
	PGS_PQBUF_RELEASED,
	PGS_NSTATS,
};
extern const struct dbi_stat_def dbi_pg_stats[];

/* ---- the circuit breaker seam (pg_breaker.c) ---- */

void dbi_pg_breaker_init(struct pg_breaker *b, struct dbi_pg *pg, const char *target, uint32_t resource);
int dbi_pg_breaker_allow(struct pg_breaker *b, uint64_t now_wall);
void dbi_pg_breaker_record(struct pg_breaker *b, int result, uint64_t duration_ns, uint64_t now_wall,
                           const char *error);
/* The circuit's state, transitions and failures as points (every interval, open or not). */
unsigned dbi_pg_breaker_points(const struct pg_breaker *b, uint64_t now_wall, struct dbi_point *out, uint64_t *routes);

#endif
