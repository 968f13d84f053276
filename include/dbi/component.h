/*
 * component.h — how receivers, processors, exporters and extensions plug in.
 *
 * Each component is one `const struct dbi_component` (Fluent Bit style): its type name,
 * the signals it handles, its config map and callbacks. The runtime (runtime.h) owns
 * every thread, ring and stats block; a component only sees its callbacks:
 *
 *   receiver   run(state, rctx)        loop on a runtime thread; emit points/records
 *                                      through the rctx until dbi_rctx_stopping()
 *   processor  consume(state, batch, next)  work on a batch in place, pass it on with
 *              tick(state, now, next)       dbi_next(); buffering processors (batch)
 *              flush(state, next, deadline) keep data and pass it on later
 *   exporter   consume(state, batch, NULL), tick(), flush()   on its own thread
 *   extension  start(state) / stop(state)
 *
 * Contracts: a batch's records (and its arena) are valid only during the call that
 * received them; a processor that keeps data copies it. Processors must not modify a
 * record in place (another pipeline may share it): replace the pointer with a copy in
 * the batch arena. A receiver's run() returns to the runtime (dbi_rctx_flush,
 * dbi_rctx_sleep_until, dbi_rctx_wait_space) at least every second, which is its
 * heartbeat for the health check.
 *
 * Adding a component touches its own folder and one line in src/core/components.c.
 */
#ifndef DBI_COMPONENT_H
#define DBI_COMPONENT_H

#include <stdint.h>

#include "dbi/common.h"
#include "dbi/config.h"
#include "dbi/record.h"
#include "dbi/stats.h"

struct dbi_runtime;
struct dbi_registry;
struct dbi_rctx;
struct dbi_next;
struct dbi_arena;

enum dbi_comp_kind { DBI_RECEIVER = 1, DBI_PROCESSOR, DBI_EXPORTER, DBI_EXTENSION };
const char *dbi_comp_kind_name(enum dbi_comp_kind k);

/* A batch: metric points plus variable-length records, all of one signal. */
struct dbi_batch {
	unsigned signal; /* enum dbi_signal */
	struct dbi_point *pts;
	uint32_t npts, pts_cap;
	const struct dbi_rec_hdr **recs; /* histograms (metrics), logs, or spans */
	uint32_t nrecs, recs_cap;
	struct dbi_arena *arena; /* per-batch scratch: replacement records live here */
};

/* What the runtime tells a component instance about itself. */
struct dbi_inst {
	const char *id; /* "otlphttp/newrelic" */
	const struct dbi_component *desc;
	const void *cfg; /* filled config struct (desc->conf_size bytes) */
	struct dbi_runtime *rt;
	struct dbi_registry *reg;
	struct dbi_stats *stats; /* counters from desc->stats; written only by the calling thread */
	const char *pipeline;    /* processors: the pipeline this chain belongs to */
	unsigned shard, nshards; /* processors: which processor thread of how many */
	unsigned source;         /* receivers: slot number stamped on emitted records */
};

struct dbi_component {
	const char *type; /* "batch", "otlphttp" */
	enum dbi_comp_kind kind;
	unsigned signals; /* DBI_SIG_* it supports */
	const char *doc;  /* one line for --help */
	const struct dbi_conf_key *keys;
	size_t conf_size;
	const struct dbi_stat_def *stats; /* NULL-name terminated; may be NULL */

	/* Cross-key checks after the map is filled; report with dbi_err_add. */
	int (*validate)(const void *cfg, const char *id, struct dbi_errbuf *err);
	/* Build state; no threads yet. Returns DBI_OK or DBI_ERR with a message in err. */
	int (*create)(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err);
	void (*destroy)(void *state);

	/* receivers: how many runtime threads to run `run` on (NULL = 1). */
	unsigned (*threads)(const void *cfg, const struct dbi_config *all);
	int (*run)(void *state, struct dbi_rctx *rctx);

	/* processors and exporters */
	int (*consume)(void *state, struct dbi_batch *b, struct dbi_next *next);
	/* Called at least at the deadline it last returned (mono ns; 0 = no deadline). */
	uint64_t (*tick)(void *state, uint64_t now, struct dbi_next *next);
	/* Hand on/send everything held, giving up at deadline (mono ns). */
	int (*flush)(void *state, struct dbi_next *next, uint64_t deadline);

	/*
	 * Any kind, optional, on the main thread: start after create and before the
	 * pipeline threads run (bind listening sockets here, not in create); stop after
	 * the pipeline threads have drained and exited.
	 */
	int (*start)(void *state, struct dbi_errbuf *err);
	void (*stop)(void *state);
	/* Bytes of shared memory the component will take with dbi_runtime_stats_block / _shm_blob. */
	uint64_t (*shm_bytes)(const void *cfg);

	/*
	 * Optional: apply a changed config in place on reload (same type and id). Called
	 * on the main thread while the component's threads run: the component makes the
	 * switch safe itself (e.g. an atomic pointer swap). newcfg stays valid until the
	 * next reload. On error the component must keep its old config.
	 */
	int (*reconfigure)(void *state, const void *newcfg, struct dbi_errbuf *err);
};

/* Pass a batch to the rest of the chain (processors only). */
int dbi_next(struct dbi_next *next, struct dbi_batch *b);

/*
 * Test seam: a `next` that hands every non-empty batch to fn(arg, b) instead of a
 * pipeline, so unit tests and benchmarks can drive a processor's callbacks directly.
 * The batch is valid only during the call, as anywhere else.
 */
struct dbi_next *dbi_next_func_create(int (*fn)(void *arg, struct dbi_batch *b), void *arg);
void dbi_next_func_destroy(struct dbi_next *n);

/* ---- receiver thread context ---- */

bool dbi_rctx_stopping(const struct dbi_rctx *c);
/* Readable (eventfd) when the thread should stop; for receivers that block in poll(). */
int dbi_rctx_wake_fd(const struct dbi_rctx *c);
unsigned dbi_rctx_thread(const struct dbi_rctx *c); /* 0..nthreads-1 */
unsigned dbi_rctx_nthreads(const struct dbi_rctx *c);
struct dbi_stats *dbi_rctx_stats(struct dbi_rctx *c); /* this thread's block */

/*
 * Pressure from the memory limiter: 0 none, 1 soft limit (back off: skip optional work,
 * answer OTLP clients 429/503), 2 hard limit (refuse new data).
 */
int dbi_rctx_pressure(const struct dbi_rctx *c);

/*
 * Emit one point (seq, ingest_ns, source are filled in). Staged; visible to the
 * pipeline at dbi_rctx_flush() or when enough are staged. DBI_AGAIN when the ring to
 * its processor thread is full: the caller decides to wait (dbi_rctx_wait_space), skip
 * or refuse, and counts it.
 */
int dbi_rctx_emit_point(struct dbi_rctx *c, struct dbi_point *p, uint64_t route_hash);

/*
 * Reserve space for a byte record of len bytes (header included); fill it after the
 * header, then dbi_rctx_commit_record(). NULL = full (as above) or too large.
 */
void *dbi_rctx_reserve_record(struct dbi_rctx *c, uint32_t type, uint32_t len, uint64_t route_hash);
void dbi_rctx_commit_record(struct dbi_rctx *c, void *rec);

/* Publish everything staged and wake the processor threads. */
void dbi_rctx_flush(struct dbi_rctx *c);
/* Wait up to timeout_ns for space in every ring; DBI_OK, DBI_AGAIN (timeout) or DBI_DONE (stopping). */
int dbi_rctx_wait_space(struct dbi_rctx *c, uint64_t timeout_ns);
/* Sleep until the deadline (mono ns) or until asked to stop; DBI_DONE when stopping. */
int dbi_rctx_sleep_until(struct dbi_rctx *c, uint64_t deadline_mono_ns);

/* ---- arenas and batch buffers (preallocated: nothing allocates in steady state) ---- */
struct dbi_arena {
	uint8_t *base;
	size_t cap, used;
	uint64_t exhausted; /* allocations refused */
};
int dbi_arena_init(struct dbi_arena *a, size_t cap);
void dbi_arena_free(struct dbi_arena *a);
void *dbi_arena_alloc(struct dbi_arena *a, size_t len); /* 8-byte aligned; NULL if exhausted */
static inline void dbi_arena_reset(struct dbi_arena *a)
{
	a->used = 0;
}
int dbi_batch_alloc(struct dbi_batch *b, unsigned signal, uint32_t pts_cap, uint32_t recs_cap);
void dbi_batch_free(struct dbi_batch *b);

/* Registry of every component, NULL terminated (src/core/components.c). */
extern const struct dbi_component *const dbi_components[];
const struct dbi_component *dbi_component_find(const char *type, enum dbi_comp_kind kind);

#endif
