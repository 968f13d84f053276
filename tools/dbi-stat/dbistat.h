/*
 * dbistat.h — dbi-stat's internals: a sample is a copy of everything the tool shows,
 * read from the collector's segment at one instant; the renderers (text, JSON) turn
 * two consecutive samples into values and per-second rates. Sampling only reads the
 * segment; nothing here ever writes to it.
 */
#ifndef DBISTAT_H
#define DBISTAT_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "dbi/circuit.h"
#include "dbi/shm.h"
#include "dbi/stats.h"

struct st_ring {
	uint64_t capacity, slot_size, head, tail, full_events;
};

struct st_bring {
	uint64_t size, head, tail, records_in, records_out, full_events;
};

struct st_thread {
	char name[48];
	int32_t tid, cpu, numa_node;
	uint32_t role;
	uint64_t heartbeat_mono_ns, busy_ns, allocated_bytes, cpu_ns;
};

struct st_region {
	struct dbi_shm_region d; /* directory entry, strings terminated */
	int valid;               /* contents read and plausible */
	union {
		struct st_ring ring;
		struct st_bring bring;
		struct st_thread thread;
		struct dbi_stats_block stats;
	} u;
	/* circuit regions: one view per circuit (owned) and the owning receiver */
	struct dbi_circuit_view *circ;
	uint32_t ncirc;
	char circ_owner[64];
};

struct st_sample {
	uint64_t mono_ns, wall_ns; /* when it was taken */
	char path[PATH_MAX];
	char instance[DBI_SHM_NAME_MAX];
	char collector_version[64];
	int32_t pid;
	uint32_t page_mode, state;
	uint64_t start_wall_ns, heartbeat_wall_ns, generation, size, used;
	int alive;        /* the collector still holds the segment */
	int dir_unstable; /* a reload kept changing the directory while we read it */
	uint32_t n;
	struct st_region *r; /* n entries, owned */
};

/* The directory as last read, re-read only when the generation or count changes. */
struct st_dircache {
	uint64_t generation;
	uint32_t n;
	int valid;
	struct dbi_shm_region *d; /* DBI_SHM_MAX_REGIONS entries */
};

int st_sample_take(struct dbi_shm *shm, struct st_dircache *dc, struct st_sample *out);
void st_sample_free(struct st_sample *s);
void st_dircache_free(struct st_dircache *dc);
/* The previous sample's region matching cur[i] (same kind and name), or NULL. */
const struct st_region *st_match(const struct st_sample *prev, const struct st_sample *cur, uint32_t i);
/* Per-second rate between two readings of a counter; NaN when unknown or reset. */
double st_rate(uint64_t cur, uint64_t prev, double dt_s);

struct st_view {
	const struct st_sample *prev; /* NULL: no rates */
	const struct st_sample *cur;
	const char *notice; /* one-line message for this frame, or NULL */
};

void st_render_text(FILE *f, const struct st_view *v);
void st_render_json(FILE *f, const struct st_view *v, int pretty);

/* Copy a name from the segment for display: bounded, non-printable bytes replaced. */
const char *st_clean(const char *s, size_t max, char *buf, size_t len);

#endif
