/*
 * stats.h — self counters in shared memory. Each component instance (and each of its
 * threads), each ring and the runtime own a stats block in the segment. A block has
 * one writer: it counts into process-local memory on the hot path (no shared cache
 * line touched) and publishes all counters at once under a change counter (seqlock),
 * so dbi-stat and the self-telemetry endpoint never see a torn snapshot.
 */
#ifndef DBI_STATS_H
#define DBI_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "dbi/common.h"

#define DBI_STATS_MAX 40
#define DBI_STAT_NAME 40
#define DBI_STATS_ID 80

enum dbi_stat_type { DBI_STAT_COUNTER = 0, DBI_STAT_GAUGE = 1 };

/* What a component declares: counter names ("received", "dropped.ring_full"), types, help. */
struct dbi_stat_def {
	const char *name;
	uint8_t type;
	const char *help;
};

enum dbi_stats_kind {
	DBI_SK_RECEIVER = 1,
	DBI_SK_PROCESSOR,
	DBI_SK_EXPORTER,
	DBI_SK_EXTENSION,
	DBI_SK_THREAD,
	DBI_SK_RUNTIME,
};
/* Plural group name for display: "receivers", "processors", ..., "runtime". */
const char *dbi_stats_kind_name(enum dbi_stats_kind k);

/* The block as laid out in shared memory (read by other processes: keep it stable). */
struct dbi_stats_block {
	_Atomic uint64_t seq;  /* odd while the writer is updating */
	uint32_t n;            /* counters in use */
	uint32_t kind;         /* enum dbi_stats_kind */
	char id[DBI_STATS_ID]; /* "otlphttp/newrelic", "postgresql#1", "batch@metrics#0" */
	char type[32];         /* component type: "batch" */
	uint64_t updated_ns;   /* wall clock of the last publish */
	char names[DBI_STATS_MAX][DBI_STAT_NAME];
	uint8_t types[DBI_STATS_MAX];
	_Alignas(8) uint64_t v[DBI_STATS_MAX];
};

/* Writer handle, process-local. */
struct dbi_stats {
	struct dbi_stats_block *blk;
	uint32_t n;
	uint64_t local[DBI_STATS_MAX];
};

/*
 * Set up a block (names/types from defs, NULL-name terminated). Returns DBI_ERR if there
 * are more than DBI_STATS_MAX or a name does not fit DBI_STAT_NAME. Call it before the
 * block's writer and in-process readers start.
 */
int dbi_stats_init(struct dbi_stats *s, struct dbi_stats_block *blk, enum dbi_stats_kind kind, const char *id,
                   const char *type, const struct dbi_stat_def *defs);
/* Index of a counter by name, -1 if absent. */
int dbi_stats_index(const struct dbi_stats *s, const char *name);

static inline void dbi_stats_add(struct dbi_stats *s, unsigned i, uint64_t n)
{
	s->local[i] += n;
}
static inline void dbi_stats_set(struct dbi_stats *s, unsigned i, uint64_t v)
{
	s->local[i] = v;
}
static inline uint64_t dbi_stats_get(const struct dbi_stats *s, unsigned i)
{
	return s->local[i];
}
/* Publish every counter to shared memory (cheap; call once per loop iteration or batch). */
void dbi_stats_publish(struct dbi_stats *s);

/*
 * Multi-writer blocks (threads a library owns, e.g. libmicrohttpd's): update the
 * shared value directly with an atomic add; readers may see counters from slightly
 * different instants but never a torn value.
 */
static inline void dbi_stats_add_shared(struct dbi_stats *s, unsigned i, uint64_t n)
{
	__atomic_fetch_add(&s->blk->v[i], n, __ATOMIC_RELAXED);
}

/*
 * Read a consistent snapshot (retries while the writer is mid-update).
 * Returns DBI_OK, or DBI_AGAIN if it could not get a stable copy within a few tries.
 */
int dbi_stats_snapshot(const struct dbi_stats_block *blk, struct dbi_stats_block *out);

/*
 * The retry policy of every seqlock reader (stats blocks here, circuits): up to
 * DBI_SEQ_TRIES attempts; before attempt n, dbi_seq_backoff(n) spins briefly, then yields
 * to a writer that may have been preempted mid-update.
 */
#define DBI_SEQ_TRIES 200
void dbi_seq_backoff(unsigned attempt);

#endif
