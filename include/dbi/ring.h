/*
 * ring.h — lock-free single-producer single-consumer rings that live in shared memory.
 *
 * Slot ring: power-of-two slots of a fixed size; free-running 64-bit indices; producer
 * and consumer indices each on their own cache line with a pad line between (no false
 * sharing even with adjacent-line prefetch); each side caches the other side's index and
 * reloads it (acquire) only when the cache says full/empty; publishing is one release
 * store per batch. The inline fast paths take the slot size as a parameter so callers
 * with a constant size get memcpy of a known size.
 *
 * Byte ring: variable-length records, each contiguous (a record that would straddle the
 * end is preceded by a skip marker), 8-byte aligned, with the same index discipline.
 * The consumer gets pointers into the ring (zero copy) and releases them in order.
 *
 * Both keep their counters in the header so another process (dbi-stat) can read depth
 * and throughput from the shared segment without asking the collector.
 */
#ifndef DBI_RING_H
#define DBI_RING_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "dbi/common.h"

#define DBI_RING_MAGIC 0x52494e47u  /* "RING" */
#define DBI_BRING_MAGIC 0x4252494eu /* "BRIN" */

struct dbi_ring {
	/* line 0: constant after init */
	uint32_t magic;
	uint32_t slot_size;
	uint64_t capacity; /* slots, power of two */
	uint64_t mask;
	char name[40];
	/* line 1: producer */
	_Alignas(DBI_CACHELINE) _Atomic uint64_t head; /* next slot to write; published */
	uint64_t cached_tail;                          /* producer's view of tail */
	uint64_t full_events;                          /* enqueue found the ring full */
	uint64_t pending;                              /* written but not yet published */
	/* line 2: pad, so prefetch of the producer line does not pull the consumer's */
	_Alignas(DBI_CACHELINE) uint8_t pad_p[DBI_CACHELINE];
	/* line 3: consumer */
	_Alignas(DBI_CACHELINE) _Atomic uint64_t tail; /* next slot to read; published */
	uint64_t cached_head;                          /* consumer's view of head */
	uint64_t empty_polls;                          /* dequeue found it empty */
	/* line 4: pad */
	_Alignas(DBI_CACHELINE) uint8_t pad_c[DBI_CACHELINE];
	/* slots follow, cache-line aligned */
	_Alignas(DBI_CACHELINE) uint8_t data[];
};

size_t dbi_ring_memsize(uint64_t capacity, uint32_t slot_size);
/* capacity must be a power of two >= 2. */
int dbi_ring_init(struct dbi_ring *r, const char *name, uint64_t capacity, uint32_t slot_size);

static inline uint64_t dbi_ring_depth(const struct dbi_ring *r)
{
	uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
	return h - t;
}

/* ---- producer side ---- */

/* Free slots as the producer sees them, refreshing its view of tail only when needed. */
static inline uint64_t dbi_ring_free_(struct dbi_ring *r, uint64_t head, uint64_t want)
{
	uint64_t free_slots = r->capacity - (head - r->cached_tail);
	if (free_slots < want) {
		r->cached_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
		free_slots = r->capacity - (head - r->cached_tail);
	}
	return free_slots;
}

/*
 * Copy up to n objects in without publishing (dbi_ring_publish makes them visible).
 * Returns how many fit.
 */
static inline unsigned dbi_ring_stage(struct dbi_ring *r, const void *objs, unsigned n, uint32_t slot_size)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed) + r->pending;
	uint64_t free_slots = dbi_ring_free_(r, head, n);
	if (dbi_unlikely(free_slots < n)) {
		n = (unsigned)free_slots;
		r->full_events++;
		if (n == 0)
			return 0;
	}
	uint64_t idx = head & r->mask;
	uint64_t first = DBI_MIN((uint64_t)n, r->capacity - idx);
	memcpy(r->data + idx * slot_size, objs, first * slot_size);
	if (first < n)
		memcpy(r->data, (const uint8_t *)objs + first * slot_size, (n - first) * slot_size);
	r->pending += n;
	return n;
}

/* Zero-copy producer: a pointer to the next free slot, or NULL when full. */
static inline void *dbi_ring_reserve(struct dbi_ring *r, uint32_t slot_size)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed) + r->pending;
	if (dbi_unlikely(dbi_ring_free_(r, head, 1) == 0)) {
		r->full_events++;
		return NULL;
	}
	r->pending++;
	return r->data + (head & r->mask) * slot_size;
}

/* Make every staged object visible to the consumer: one release store. */
static inline void dbi_ring_publish(struct dbi_ring *r)
{
	if (r->pending) {
		uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
		atomic_store_explicit(&r->head, head + r->pending, memory_order_release);
		r->pending = 0;
	}
}

/* Stage and publish: the usual call. */
static inline unsigned dbi_ring_enqueue_burst(struct dbi_ring *r, const void *objs, unsigned n, uint32_t slot_size)
{
	unsigned done = dbi_ring_stage(r, objs, n, slot_size);
	dbi_ring_publish(r);
	return done;
}

static inline int dbi_ring_enqueue(struct dbi_ring *r, const void *obj, uint32_t slot_size)
{
	return dbi_ring_enqueue_burst(r, obj, 1, slot_size) == 1 ? DBI_OK : DBI_AGAIN;
}

/* ---- consumer side ---- */

/* Readable slots as the consumer sees them, refreshing its view of head only on a miss. */
static inline uint64_t dbi_ring_avail_(struct dbi_ring *r, uint64_t tail, uint64_t want)
{
	uint64_t avail = r->cached_head - tail;
	if (avail < want) {
		r->cached_head = atomic_load_explicit(&r->head, memory_order_acquire);
		avail = r->cached_head - tail;
	}
	return avail;
}

/* Copy out up to n objects and release their slots. Returns how many. */
static inline unsigned dbi_ring_dequeue_burst(struct dbi_ring *r, void *objs, unsigned n, uint32_t slot_size)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t avail = dbi_ring_avail_(r, tail, n);
	if (avail == 0) {
		r->empty_polls++;
		return 0;
	}
	if (avail < n)
		n = (unsigned)avail;
	uint64_t idx = tail & r->mask;
	uint64_t first = DBI_MIN((uint64_t)n, r->capacity - idx);
	memcpy(objs, r->data + idx * slot_size, first * slot_size);
	if (first < n)
		memcpy((uint8_t *)objs + first * slot_size, r->data, (n - first) * slot_size);
	atomic_store_explicit(&r->tail, tail + n, memory_order_release);
	return n;
}

static inline int dbi_ring_dequeue(struct dbi_ring *r, void *obj, uint32_t slot_size)
{
	return dbi_ring_dequeue_burst(r, obj, 1, slot_size) == 1 ? DBI_OK : DBI_AGAIN;
}

/*
 * Zero-copy consumer: *first points at up to max contiguous readable slots (stops at
 * the wrap); returns the count. Release them with dbi_ring_consume().
 */
static inline unsigned dbi_ring_peek(struct dbi_ring *r, void **first, unsigned max, uint32_t slot_size)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t avail = dbi_ring_avail_(r, tail, max);
	if (avail == 0) {
		r->empty_polls++;
		return 0;
	}
	uint64_t idx = tail & r->mask;
	uint64_t n = DBI_MIN(DBI_MIN(avail, (uint64_t)max), r->capacity - idx);
	*first = r->data + idx * slot_size;
	return (unsigned)n;
}

static inline void dbi_ring_consume(struct dbi_ring *r, unsigned n)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	atomic_store_explicit(&r->tail, tail + n, memory_order_release);
}

/* ---- byte ring ---- */

struct dbi_bring {
	uint32_t magic;
	uint32_t pad0;
	uint64_t size; /* bytes, power of two */
	uint64_t mask;
	char name[40];
	_Alignas(DBI_CACHELINE) _Atomic uint64_t head; /* byte offset, free-running; published */
	uint64_t cached_tail;
	uint64_t pending; /* bytes reserved, not yet published */
	uint64_t full_events;
	uint64_t records; /* records published (producer count) */
	_Alignas(DBI_CACHELINE) uint8_t pad_p[DBI_CACHELINE];
	_Alignas(DBI_CACHELINE) _Atomic uint64_t tail;
	uint64_t cached_head;
	uint64_t reading; /* bytes handed out by peek, not yet released */
	uint64_t consumed_records;
	_Alignas(DBI_CACHELINE) uint8_t pad_c[DBI_CACHELINE];
	_Alignas(DBI_CACHELINE) uint8_t data[];
};

size_t dbi_bring_memsize(uint64_t size);
int dbi_bring_init(struct dbi_bring *r, const char *name, uint64_t size);

/* Largest record (header included) a ring of this size accepts. */
static inline uint64_t dbi_bring_max_record(const struct dbi_bring *r)
{
	return r->size / 4;
}

/*
 * Reserve len bytes (8-byte aligned, contiguous) for one record; NULL when full or when
 * len exceeds dbi_bring_max_record. Fill it, then reserve more or publish.
 */
void *dbi_bring_reserve(struct dbi_bring *r, uint32_t len);
void dbi_bring_publish(struct dbi_bring *r);

/*
 * Next unread record in order (zero copy), or NULL when none; *len is its length as
 * reserved. Pointers stay valid until dbi_bring_release() gives the space back, which
 * releases every record peeked so far.
 */
const void *dbi_bring_peek(struct dbi_bring *r, uint32_t *len);
void dbi_bring_release(struct dbi_bring *r);

static inline uint64_t dbi_bring_used(const struct dbi_bring *r)
{
	return atomic_load_explicit(&r->head, memory_order_acquire) -
	       atomic_load_explicit(&r->tail, memory_order_acquire);
}

#endif
