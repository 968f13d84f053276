/*
 * stats.c — self counters published to shared memory under a seqlock (see stats.h).
 *
 * One writer thread per block; readers are other processes (dbi-stat) or threads
 * (self-telemetry). Every shared word that changes after init is written with a release
 * store and read with an acquire load, so the seqlock needs no standalone fence: a
 * reader that sees any value of a newer publish also sees that publish's odd count and
 * retries. (gcc's ThreadSanitizer does not model fences, but it does model these, so
 * the TSan build really checks the scheme.) On x86 every one of them is a plain move;
 * elsewhere the cost is paid per word at publish time, once per loop iteration.
 */
#include "dbi/stats.h"

#include <sched.h>
#include <string.h>

#include "dbi/clock.h"

#define SEQ_SPINS 20 /* tries before yielding the CPU to a writer we may have preempted */

const char *dbi_stats_kind_name(enum dbi_stats_kind k)
{
	switch (k) {
	case DBI_SK_RECEIVER:
		return "receivers";
	case DBI_SK_PROCESSOR:
		return "processors";
	case DBI_SK_EXPORTER:
		return "exporters";
	case DBI_SK_EXTENSION:
		return "extensions";
	case DBI_SK_THREAD:
		return "threads";
	case DBI_SK_RUNTIME:
		return "runtime";
	}
	return "other";
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

void dbi_seq_backoff(unsigned attempt)
{
	if (attempt >= SEQ_SPINS)
		sched_yield();
	else if (attempt)
		cpu_relax();
}

/*
 * Make the count odd: readers that overlap what follows will retry. Each later store is
 * a release store, which keeps this one ordered before it.
 */
static void write_begin(struct dbi_stats_block *b)
{
	uint64_t q = atomic_load_explicit(&b->seq, memory_order_relaxed);
	if (!(q & 1))
		atomic_store_explicit(&b->seq, q + 1, memory_order_relaxed);
}

static void write_end(struct dbi_stats_block *b)
{
	uint64_t q = atomic_load_explicit(&b->seq, memory_order_relaxed);
	atomic_store_explicit(&b->seq, q + 1, memory_order_release);
}

int dbi_stats_init(struct dbi_stats *s, struct dbi_stats_block *blk, enum dbi_stats_kind kind, const char *id,
                   const char *type, const struct dbi_stat_def *defs)
{
	uint32_t n = 0;
	memset(s, 0, sizeof(*s));
	while (defs && defs[n].name) {
		/* a truncated name could silently merge two counters: reject it at startup */
		if (n >= DBI_STATS_MAX || strlen(defs[n].name) >= DBI_STAT_NAME)
			return DBI_ERR;
		n++;
	}
	if (!blk)
		return DBI_ERR;

	/*
	 * Names are written once, before the block's threads start; in-process readers
	 * never race them. Other processes may look now, so bracket it like a publish.
	 */
	write_begin(blk);
	__atomic_store_n(&blk->n, n, __ATOMIC_RELEASE);
	__atomic_store_n(&blk->kind, (uint32_t)kind, __ATOMIC_RELEASE);
	memset(blk->id, 0, sizeof(blk->id));
	memset(blk->type, 0, sizeof(blk->type));
	memset(blk->names, 0, sizeof(blk->names));
	memset(blk->types, 0, sizeof(blk->types));
	dbi_strlcpy(blk->id, id ? id : "", sizeof(blk->id));
	dbi_strlcpy(blk->type, type ? type : "", sizeof(blk->type));
	for (uint32_t i = 0; i < n; i++) {
		dbi_strlcpy(blk->names[i], defs[i].name, sizeof(blk->names[i]));
		blk->types[i] = defs[i].type;
	}
	for (uint32_t i = 0; i < DBI_STATS_MAX; i++)
		__atomic_store_n(&blk->v[i], 0, __ATOMIC_RELEASE);
	__atomic_store_n(&blk->updated_ns, dbi_wall_ns(), __ATOMIC_RELEASE);
	write_end(blk);

	s->blk = blk;
	s->n = n;
	return DBI_OK;
}

int dbi_stats_index(const struct dbi_stats *s, const char *name)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (strncmp(s->blk->names[i], name, DBI_STAT_NAME) == 0)
			return (int)i;
	return -1;
}

void dbi_stats_publish(struct dbi_stats *s)
{
	struct dbi_stats_block *b = s->blk;
	write_begin(b);
	for (uint32_t i = 0; i < s->n; i++)
		__atomic_store_n(&b->v[i], s->local[i], __ATOMIC_RELEASE);
	__atomic_store_n(&b->updated_ns, dbi_wall_ns(), __ATOMIC_RELEASE);
	write_end(b);
}

int dbi_stats_snapshot(const struct dbi_stats_block *blk, struct dbi_stats_block *out)
{
	for (unsigned t = 0; t < DBI_SEQ_TRIES; t++) {
		dbi_seq_backoff(t);
		uint64_t s1 = atomic_load_explicit(&blk->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		uint32_t n = __atomic_load_n(&blk->n, __ATOMIC_ACQUIRE);
		out->n = DBI_MIN(n, DBI_STATS_MAX);
		out->kind = __atomic_load_n(&blk->kind, __ATOMIC_ACQUIRE);
		memcpy(out->id, blk->id, sizeof(out->id));
		memcpy(out->type, blk->type, sizeof(out->type));
		memcpy(out->names, blk->names, sizeof(out->names));
		memcpy(out->types, blk->types, sizeof(out->types));
		/* acquire loads: the re-check below cannot move above them */
		for (uint32_t i = 0; i < DBI_STATS_MAX; i++)
			out->v[i] = __atomic_load_n(&blk->v[i], __ATOMIC_ACQUIRE);
		out->updated_ns = __atomic_load_n(&blk->updated_ns, __ATOMIC_ACQUIRE);
		if (atomic_load_explicit(&blk->seq, memory_order_relaxed) != s1)
			continue;
		atomic_store_explicit(&out->seq, s1, memory_order_relaxed);
		/* the block may come from another process: never hand out unterminated strings */
		out->id[sizeof(out->id) - 1] = '\0';
		out->type[sizeof(out->type) - 1] = '\0';
		for (uint32_t i = 0; i < DBI_STATS_MAX; i++)
			out->names[i][DBI_STAT_NAME - 1] = '\0';
		return DBI_OK;
	}
	return DBI_AGAIN;
}
