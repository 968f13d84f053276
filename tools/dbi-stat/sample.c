/*
 * sample.c — read one consistent-enough picture of a collector's segment: the header,
 * the region directory (copied under the generation check, re-read only when it
 * changed) and each region's counters. Stats blocks and circuit breakers come through
 * their seqlocks; rings and thread regions are single words read atomically, so a sample
 * mixes instants a few microseconds apart, which is fine for display and rates.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/clock.h"
#include "dbi/ring.h"
#include "dbistat.h"

/* plain fields another process writes: read each once, untorn */
#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

const char *st_clean(const char *s, size_t max, char *buf, size_t len)
{
	size_t i = 0;
	for (; i < max && i + 1 < len && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		/* names come from another process: no terminal escapes, no broken UTF-8 in JSON */
		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[i] = '\0';
	return buf;
}

static int read_ring(const void *p, uint64_t size, struct st_ring *o)
{
	const struct dbi_ring *r = p;
	if (size < sizeof(*r) || LOAD(&r->magic) != DBI_RING_MAGIC)
		return 0;
	o->capacity = LOAD(&r->capacity);
	o->slot_size = LOAD(&r->slot_size);
	/* tail first: head read after it is never behind it */
	o->tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	o->head = atomic_load_explicit(&r->head, memory_order_acquire);
	o->full_events = LOAD(&r->full_events);
	return o->capacity > 0;
}

static int read_bring(const void *p, uint64_t size, struct st_bring *o)
{
	const struct dbi_bring *r = p;
	if (size < sizeof(*r) || LOAD(&r->magic) != DBI_BRING_MAGIC)
		return 0;
	o->size = LOAD(&r->size);
	o->records_out = LOAD(&r->consumed_records);
	o->tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	o->head = atomic_load_explicit(&r->head, memory_order_acquire);
	o->records_in = LOAD(&r->records);
	o->full_events = LOAD(&r->full_events);
	return o->size > 0;
}

static int read_thread(const void *p, uint64_t size, struct st_thread *o)
{
	const struct dbi_shm_thread *t = p;
	if (size < sizeof(*t))
		return 0;
	for (size_t i = 0; i < sizeof(o->name); i++)
		o->name[i] = LOAD(&t->name[i]);
	o->name[sizeof(o->name) - 1] = '\0';
	o->tid = LOAD(&t->tid);
	o->cpu = LOAD(&t->cpu);
	o->numa_node = LOAD(&t->numa_node);
	o->role = LOAD(&t->role);
	o->heartbeat_mono_ns = atomic_load_explicit(&t->heartbeat_mono_ns, memory_order_relaxed);
	o->busy_ns = atomic_load_explicit(&t->busy_ns, memory_order_relaxed);
	o->allocated_bytes = atomic_load_explicit(&t->allocated_bytes, memory_order_relaxed);
	o->cpu_ns = atomic_load_explicit(&t->cpu_ns, memory_order_relaxed);
	return 1;
}

/* A circuit table: every published circuit through its seqlock; one a writer kept busy is left out. */
static int read_circuits(const void *p, uint64_t size, struct st_region *r)
{
	int n = dbi_circuit_region_count(p, size);
	if (n < 0)
		return 0;
	const struct dbi_circuit_region *cr = p;
	st_clean(cr->owner, sizeof(cr->owner), r->circ_owner, sizeof(r->circ_owner));
	r->circ = calloc(n ? (size_t)n : 1, sizeof(*r->circ));
	if (!r->circ)
		return 0;
	for (int i = 0; i < n; i++) {
		struct dbi_circuit_view *v = &r->circ[r->ncirc];
		if (dbi_circuit_snapshot(dbi_circuit_region_at(p, (uint32_t)i), v) == DBI_OK) {
			char t[sizeof(v->target)];
			st_clean(v->target, sizeof(v->target), t, sizeof(t));
			memcpy(v->target, t, sizeof(t));
			r->ncirc++;
		}
	}
	return 1;
}

static int refresh_dir(struct dbi_shm *shm, struct st_dircache *dc, int *unstable)
{
	const struct dbi_shm_header *h = dbi_shm_header(shm);
	uint64_t gen = atomic_load_explicit(&h->generation, memory_order_acquire);
	uint32_t n = atomic_load_explicit(&h->nregions, memory_order_acquire);
	*unstable = 0;
	if (!dc->d) {
		dc->d = calloc(DBI_SHM_MAX_REGIONS, sizeof(*dc->d));
		if (!dc->d)
			return -1;
	}
	/* regions are appended during startup without a generation change, hence the count too */
	if (dc->valid && dc->generation == gen && dc->n == n)
		return 0;
	if (dbi_shm_regions_snapshot(shm, dc->d, DBI_SHM_MAX_REGIONS, &dc->n, &dc->generation) != DBI_OK) {
		dc->valid = 0;
		dc->n = 0;
		*unstable = 1;
		return 0;
	}
	dc->valid = 1;
	return 0;
}

int st_sample_take(struct dbi_shm *shm, struct st_dircache *dc, struct st_sample *out)
{
	const struct dbi_shm_header *h = dbi_shm_header(shm);

	for (int attempt = 0; attempt < 3; attempt++) {
		st_sample_free(out);
		memset(out, 0, sizeof(*out));
		if (refresh_dir(shm, dc, &out->dir_unstable) != 0)
			return -1;
		out->mono_ns = dbi_mono_ns();
		out->wall_ns = dbi_wall_ns();
		dbi_strlcpy(out->path, dbi_shm_path(shm), sizeof(out->path));
		st_clean(h->instance, sizeof(h->instance), out->instance, sizeof(out->instance));
		st_clean(h->collector_version, sizeof(h->collector_version), out->collector_version,
		         sizeof(out->collector_version));
		out->pid = h->pid;
		out->page_mode = h->page_mode;
		out->state = atomic_load_explicit(&h->state, memory_order_acquire);
		out->start_wall_ns = h->start_wall_ns;
		out->heartbeat_wall_ns = atomic_load_explicit(&h->heartbeat_wall_ns, memory_order_relaxed);
		out->generation = dc->generation;
		out->size = h->size;
		out->used = atomic_load_explicit(&h->alloc_offset, memory_order_relaxed);
		out->alive = dbi_shm_alive(shm);

		out->r = calloc(dc->n ? dc->n : 1, sizeof(*out->r));
		if (!out->r)
			return -1;
		out->n = dc->n;
		for (uint32_t i = 0; i < dc->n; i++) {
			struct st_region *r = &out->r[i];
			r->d = dc->d[i];
			const void *p = dbi_shm_region_ptr(shm, &r->d);
			if (!p)
				continue;
			switch (r->d.kind) {
			case DBI_REGION_RING:
				r->valid = read_ring(p, r->d.size, &r->u.ring);
				break;
			case DBI_REGION_BRING:
				r->valid = read_bring(p, r->d.size, &r->u.bring);
				break;
			case DBI_REGION_THREAD:
				r->valid = read_thread(p, r->d.size, &r->u.thread);
				break;
			case DBI_REGION_STATS:
				r->valid = r->d.size >= sizeof(struct dbi_stats_block) &&
				           dbi_stats_snapshot(p, &r->u.stats) == DBI_OK;
				break;
			case DBI_REGION_CIRCUIT:
				r->valid = read_circuits(p, r->d.size, r);
				break;
			default:
				r->valid = 1; /* listed by name and size only */
				break;
			}
		}
		/* a reload between reading the directory and the regions: read it all again */
		if (atomic_load_explicit(&h->generation, memory_order_acquire) == dc->generation || out->dir_unstable)
			return 0;
	}
	return 0;
}

void st_sample_free(struct st_sample *s)
{
	for (uint32_t i = 0; s->r && i < s->n; i++)
		free(s->r[i].circ);
	free(s->r);
	s->r = NULL;
	s->n = 0;
}

void st_dircache_free(struct st_dircache *dc)
{
	free(dc->d);
	memset(dc, 0, sizeof(*dc));
}

const struct st_region *st_match(const struct st_sample *prev, const struct st_sample *cur, uint32_t i)
{
	const struct st_region *c = &cur->r[i];
	/* after a restart or a reload the regions are new and their counters start over */
	if (!prev || prev->pid != cur->pid || prev->generation != cur->generation)
		return NULL;
	/* same place in the same layout: the usual case */
	if (i < prev->n && prev->r[i].d.kind == c->d.kind && strcmp(prev->r[i].d.name, c->d.name) == 0)
		return &prev->r[i];
	for (uint32_t j = 0; j < prev->n; j++)
		if (prev->r[j].d.kind == c->d.kind && strcmp(prev->r[j].d.name, c->d.name) == 0)
			return &prev->r[j];
	return NULL;
}

double st_rate(uint64_t cur, uint64_t prev, double dt_s)
{
	if (dt_s <= 0 || cur < prev)
		return NAN;
	return (double)(cur - prev) / dt_s;
}
