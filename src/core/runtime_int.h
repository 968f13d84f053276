/*
 * runtime_int.h — the runtime's private structures, shared by runtime.c (build, start,
 * stop, reload), runtime_loops.c (thread main loops) and runtime_rctx.c (the receiver
 * emit API). Nothing outside src/core includes this.
 */
#ifndef DBI_RUNTIME_INT_H
#define DBI_RUNTIME_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/registry.h"
#include "dbi/ring.h"
#include "dbi/runtime.h"
#include "dbi/shm.h"
#include "dbi/stats.h"
#include "dbi/wait.h"

#define RT_MAX_SOURCES 64 /* receiver instances */
#define RT_BURST 512      /* points a processor takes from one ring per turn */
#define RT_REC_BURST 256  /* records per turn */
#define RT_PUBLISH_EVERY 256

/* Single producer → single consumer: points + variable-length records. */
struct chan {
	struct dbi_ring *pts;
	struct dbi_bring *recs;
	struct dbi_wait *consumer; /* wake the consumer after publishing */
	_Atomic int closed;        /* the producer has published its last record */
	unsigned source;           /* receiver slot (receiver → processor chans) */
};

/* Per-thread runtime counters (kind THREAD). */
enum {
	TS_POINTS_IN,
	TS_RECORDS_IN,
	TS_POINTS_OUT,
	TS_RECORDS_OUT,
	TS_BATCHES,
	TS_RING_FULL,
	TS_DROP_EXPORTER_FULL,
	TS_DROP_SHUTDOWN,
	TS_DROP_TOO_LARGE,
	TS_DROP_NO_PIPELINE,
	TS_WAKEUPS,
	TS_COUNT
};

struct thread_base {
	pthread_t tid;
	int started;
	char name[48];
	int cpu;
	int numa_node;
	unsigned role; /* enum dbi_comp_kind */
	struct dbi_runtime *rt;
	struct dbi_shm_thread *shm;
	struct dbi_stats ts;
	uint64_t last_publish_ns;
	uint64_t busy_start_ns;
	const uint64_t *allocatedp; /* jemalloc thread.allocated, when available */
};

/* One component instance (processors: one per processor thread). */
struct comp_inst {
	const struct dbi_conf_component *cc;
	struct dbi_inst inst;
	void *state;
	struct dbi_stats stats;
	uint64_t deadline; /* next tick, mono ns; 0 = none */
	char id[96];
};

struct dbi_rctx {
	struct thread_base tb;
	struct comp_inst *ci;
	unsigned index, nthreads;
	struct dbi_stats stats; /* component counters for this thread */
	struct chan **out;      /* [nshards] */
	unsigned nshards;
	uint64_t seq;
	uint64_t now;
	unsigned now_uses;
	unsigned staged;
	int wake_fd;
	int rc;
};

struct ptd; /* processor thread */

/* One pipeline's chain on one processor thread. */
struct pl_shard {
	const struct dbi_conf_pipeline *pl;
	struct ptd *pt;
	struct comp_inst **procs;
	unsigned nprocs;
	struct chan **outs; /* this thread's chan to each exporter of the pipeline */
	unsigned nouts;
};

struct dbi_next {
	struct pl_shard *ps;
	unsigned stage;
	/* dbi_next_func_create: no chain, batches go to fn (unit tests, benchmarks) */
	int (*fn)(void *arg, struct dbi_batch *b);
	void *arg;
};

struct route {
	unsigned pls[16];
	unsigned n;
};

struct ptd {
	struct thread_base tb;
	unsigned shard;
	struct dbi_wait wait;
	struct chan **in; /* from every receiver thread */
	unsigned nin;
	struct pl_shard *pls;
	unsigned npls;
	struct route routes[RT_MAX_SOURCES][3]; /* [source][signal index] */
	/* scratch */
	struct dbi_batch work[3];
	struct dbi_batch copy;
	struct dbi_arena arena;
};

struct etd {
	struct thread_base tb;
	struct comp_inst *ci;
	struct dbi_wait wait;
	struct chan **in; /* from every processor thread */
	unsigned nin;
	struct dbi_batch b[3];
	struct dbi_arena arena;
};

struct dbi_runtime {
	struct dbi_config *cfg; /* private deep reference: the config we were built from */
	const struct dbi_config *cfg_in;
	struct dbi_shm *shm;
	struct dbi_registry *reg;
	char version[64];

	struct comp_inst *receivers; /* one per receiver component */
	unsigned nreceivers;
	struct comp_inst *exporters;
	unsigned nexporters;
	struct comp_inst *extensions;
	unsigned nextensions;

	struct dbi_rctx *rthreads;
	unsigned nrthreads;
	struct ptd *pthreads;
	unsigned nshards;
	struct etd *ethreads; /* one per exporter */

	int cpus[1024];
	unsigned ncpus;
	unsigned next_cpu;
	int numa_nodes;

	_Atomic int stop_receivers;
	_Atomic int stopping;      /* drain mode: processors/exporters exit when inputs are done */
	_Atomic uint64_t deadline; /* mono ns; drop what is left after it */
	_Atomic int pressure;
	_Atomic int running;

	struct dbi_stats rstats; /* runtime block */
	struct dbi_shm_thread *main_thread;
	uint64_t start_mono;
	struct dbi_telemetry *telemetry; /* service.telemetry.metrics endpoint, NULL when off */
};

/* runtime.c: counter definitions of thread and runtime blocks (self-telemetry HELP text) */
extern const struct dbi_stat_def *const dbi_rt_thread_stat_defs;
extern const struct dbi_stat_def *const dbi_rt_runtime_stat_defs;

/* runtime_loops.c */
void *dbi_rt_receiver_main(void *arg);
void *dbi_rt_processor_main(void *arg);
void *dbi_rt_exporter_main(void *arg);
void dbi_rt_thread_enter(struct thread_base *tb);
void dbi_rt_thread_beat(struct thread_base *tb, int force_publish);

static inline unsigned dbi_sig_index(unsigned sig)
{
	return sig == DBI_SIG_METRICS ? 0 : sig == DBI_SIG_LOGS ? 1 : 2;
}
static inline unsigned dbi_rec_signal(uint32_t type)
{
	return type == DBI_REC_LOG ? DBI_SIG_LOGS : type == DBI_REC_SPAN ? DBI_SIG_TRACES : DBI_SIG_METRICS;
}

#endif
