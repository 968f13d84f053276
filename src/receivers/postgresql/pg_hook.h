/*
 * pg_hook.h — how a module outside the receiver core adds a metric group to the
 * `postgresql` receiver's scrape (the pg_stat_statements query-intelligence module is
 * the first: group "statements").
 *
 * The core owns the sessions, the schedule and the pipeline. A group module only says
 * which SQL to send in a target's scrape (it runs in the same pipeline and the same
 * REPEATABLE READ transaction as the other server-level groups, on the target's main
 * session), gets each result back, and emits points and records through the scrape
 * context. It keeps per-target state (previous counters, known query ids) behind the
 * void pointer it returns from target_new. Everything runs on the target's scraper
 * thread: no locking is needed for per-target state.
 *
 * The core disables the group for a target on a missing object or privilege (SQLSTATE
 * 42P01, 42883, 42501, 55000) with one log line, exactly as for its own groups.
 * Plug-in point: `dbi_pg_statements_ops` in pg_hooks.c (NULL until the module lands).
 */
#ifndef DBI_PG_HOOK_H
#define DBI_PG_HOOK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

struct dbi_rctx;
struct dbi_registry;
struct dbi_pg_scrape;

#define DBI_PG_HOOK_MAX_SQL 4

/* What a group module sees of one scrape of one target. */
struct dbi_pg_scrape {
	struct dbi_rctx *rctx;
	struct dbi_registry *reg;
	uint32_t scope;          /* the receiver's instrumentation scope id */
	uint32_t server_res;     /* resource of the server (server.address, port, instance, labels) */
	int server_version;      /* server_version_num */
	uint64_t time_ns;        /* the scrape's observation time (wall) */
	uint64_t start_ns;       /* postmaster start (wall): start of cumulative series */
	const char *instance_id; /* "host:port" */
	bool probe;              /* circuit half-open: keep the query set small */
	void *priv;              /* the core's */
};

/* Resource of one database of the scrape's target (interned once, cached). */
uint32_t dbi_pg_scrape_db_resource(struct dbi_pg_scrape *x, const char *db);
/* Emit one point of a metric the module interned itself (counts drops as the core does). */
int dbi_pg_scrape_emit(struct dbi_pg_scrape *x, uint32_t metric_id, uint32_t resource, uint32_t attrs, int kind,
                       bool is_double, int64_t i, double d, uint64_t start_ns);

struct dbi_pg_group_ops {
	const char *name; /* "statements" */
	/* Per-target state; NULL from target_new means "off for this target". */
	void *(*target_new)(const struct dbi_pg_scrape *x);
	void (*target_free)(void *st);
	/* Fill sql[] with up to DBI_PG_HOOK_MAX_SQL statements; return how many (0 = skip). */
	int (*queries)(void *st, const struct dbi_pg_scrape *x, const char **sql);
	/* One result of statement idx (tuples or error status). */
	void (*result)(void *st, struct dbi_pg_scrape *x, int idx, const PGresult *r);
	/* After the scrape's results: ok = every statement of the group succeeded. */
	void (*done)(void *st, struct dbi_pg_scrape *x, bool ok);
};

extern const struct dbi_pg_group_ops *const dbi_pg_statements_ops;

#endif
