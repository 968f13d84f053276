/*
 * runtime.h — the runtime: builds the running collector from a config. It creates the
 * shared-memory segment, the series registry, one instance of every component (one per
 * processor thread for processors), the rings between threads, and the pinned threads:
 *
 *   receiver threads ──chan──▶ processor threads (one chain per pipeline) ──chan──▶ exporter threads
 *
 * A chan is a point ring plus a byte ring, single producer, single consumer. Points are
 * routed to a processor thread by series hash so stateful processors see whole series.
 * Stopping drains: inputs stop, every ring is emptied through the chains, buffering
 * processors flush, exporters flush, all within the shutdown deadline.
 */
#ifndef DBI_RUNTIME_H
#define DBI_RUNTIME_H

#include <stdint.h>

#include "dbi/common.h"
#include "dbi/config.h"
#include "dbi/stats.h"

struct dbi_runtime;
struct dbi_registry;
struct dbi_shm;

struct dbi_runtime_opts {
	const char *version; /* written into the shm header */
};

int dbi_runtime_create(struct dbi_runtime **out, const struct dbi_config *cfg, const struct dbi_runtime_opts *o,
                       struct dbi_errbuf *err);
/* Start extensions, then exporters, processors, receivers. */
int dbi_runtime_start(struct dbi_runtime *rt, struct dbi_errbuf *err);
/*
 * Stop receivers, drain and flush everything downstream, stop extensions. Returns DBI_OK
 * when everything drained in time, DBI_AGAIN when the deadline cut it short (what was
 * left is counted as dropped with reason shutdown_timeout).
 */
int dbi_runtime_stop(struct dbi_runtime *rt, uint64_t timeout_ns);
/*
 * Apply a new, already validated config. Components whose config changed and that
 * implement reconfigure are updated in place; any other change drains and rebuilds the
 * pipelines (nothing queued is lost). On failure the old config keeps running.
 */
int dbi_runtime_reload(struct dbi_runtime *rt, const struct dbi_config *cfg, struct dbi_errbuf *err);
void dbi_runtime_destroy(struct dbi_runtime *rt);

/* Main-thread housekeeping every ~100 ms: shm heartbeat, process stats. */
void dbi_runtime_housekeeping(struct dbi_runtime *rt);

struct dbi_registry *dbi_runtime_registry(struct dbi_runtime *rt);
struct dbi_shm *dbi_runtime_shm(struct dbi_runtime *rt);
const struct dbi_config *dbi_runtime_config(struct dbi_runtime *rt);

/* Memory pressure, set by the memory limiter: 0 none, 1 soft, 2 hard. */
void dbi_runtime_set_pressure(struct dbi_runtime *rt, int level);
int dbi_runtime_pressure(const struct dbi_runtime *rt);

/*
 * Allocate a stats block in the segment for a component's extra thread or sub-object
 * (e.g. one per PostgreSQL target). id is shown by dbi-stat. NULL if the segment is full.
 */
int dbi_runtime_stats_block(struct dbi_runtime *rt, struct dbi_stats *st, int kind, const char *id, const char *type,
                            const struct dbi_stat_def *defs);
/* Allocate a named blob region (component-defined layout) in the segment. */
void *dbi_runtime_shm_blob(struct dbi_runtime *rt, const char *name, uint64_t size, const char *owner);

/* Health of each pipeline, for the health_check extension. */
enum dbi_health { DBI_HEALTH_STARTING = 0, DBI_HEALTH_OK, DBI_HEALTH_STALLED, DBI_HEALTH_STOPPING };
const char *dbi_health_name(enum dbi_health h);
struct dbi_pipeline_health {
	char id[64];
	enum dbi_health state;
	char reason[160]; /* why stalled */
};
/* Fills up to max entries, returns the number of pipelines; overall state in *overall. */
size_t dbi_runtime_health(struct dbi_runtime *rt, uint64_t stall_ns, struct dbi_pipeline_health *out, size_t max,
                          enum dbi_health *overall);

/* Running totals across the pipeline, for tests and dbi-loadgen. */
struct dbi_runtime_totals {
	uint64_t points_in;  /* emitted by receivers */
	uint64_t points_out; /* handed to exporters' consume */
	uint64_t records_in, records_out;
	uint64_t dropped; /* all drop reasons */
};
void dbi_runtime_totals(struct dbi_runtime *rt, struct dbi_runtime_totals *out);

#endif
