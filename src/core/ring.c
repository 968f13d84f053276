/*
 * ring.c — initialisation of slot rings and the byte ring's out-of-line operations.
 * The slot ring's hot paths are inline in ring.h; the byte ring's reserve/peek carry
 * more branches (wrap markers), so they live here.
 *
 * Byte ring framing: every entry starts with an 8-byte frame {u32 len, u32 kind};
 * kind RECORD is followed by len payload bytes padded to 8; kind SKIP says "the rest
 * of the ring up to the end is unused, continue at offset 0", which keeps every record
 * contiguous so consumers can read it in place.
 */
#include "dbi/ring.h"

#include <assert.h>

#define FRAME_RECORD 0x52u
#define FRAME_SKIP 0x53u

struct frame {
	uint32_t len;
	uint32_t kind;
};

static int is_pow2(uint64_t x)
{
	return x >= 2 && (x & (x - 1)) == 0;
}

size_t dbi_ring_memsize(uint64_t capacity, uint32_t slot_size)
{
	return DBI_ALIGN_UP(sizeof(struct dbi_ring) + capacity * slot_size, DBI_CACHELINE);
}

int dbi_ring_init(struct dbi_ring *r, const char *name, uint64_t capacity, uint32_t slot_size)
{
	if (!is_pow2(capacity) || slot_size == 0)
		return DBI_ERR;
	memset(r, 0, sizeof(*r));
	r->slot_size = slot_size;
	r->capacity = capacity;
	r->mask = capacity - 1;
	dbi_strlcpy(r->name, name ? name : "", sizeof(r->name));
	atomic_store_explicit(&r->head, 0, memory_order_relaxed);
	atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
	r->magic = DBI_RING_MAGIC;
	return DBI_OK;
}

size_t dbi_bring_memsize(uint64_t size)
{
	return DBI_ALIGN_UP(sizeof(struct dbi_bring) + size, DBI_CACHELINE);
}

int dbi_bring_init(struct dbi_bring *r, const char *name, uint64_t size)
{
	if (!is_pow2(size) || size < 4096)
		return DBI_ERR;
	memset(r, 0, sizeof(*r));
	r->size = size;
	r->mask = size - 1;
	dbi_strlcpy(r->name, name ? name : "", sizeof(r->name));
	atomic_store_explicit(&r->head, 0, memory_order_relaxed);
	atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
	r->magic = DBI_BRING_MAGIC;
	return DBI_OK;
}

void *dbi_bring_reserve(struct dbi_bring *r, uint32_t len)
{
	uint64_t need = sizeof(struct frame) + DBI_ALIGN_UP((uint64_t)len, 8);
	if (dbi_unlikely(need > dbi_bring_max_record(r)))
		return NULL;
	uint64_t pos = atomic_load_explicit(&r->head, memory_order_relaxed) + r->pending;
	uint64_t off = pos & r->mask;
	uint64_t skip = (off + need > r->size) ? r->size - off : 0;
	uint64_t want = skip + need;

	if (r->size - (pos - r->cached_tail) < want) {
		r->cached_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
		if (r->size - (pos - r->cached_tail) < want) {
			r->full_events++;
			return NULL;
		}
	}
	if (skip) {
		struct frame *sf = (struct frame *)(void *)(r->data + off);
		sf->len = (uint32_t)(skip - sizeof(struct frame));
		sf->kind = FRAME_SKIP;
		off = 0;
	}
	struct frame *f = (struct frame *)(void *)(r->data + off);
	f->len = len;
	f->kind = FRAME_RECORD;
	r->pending += want;
	r->records++;
	return f + 1;
}

void dbi_bring_publish(struct dbi_bring *r)
{
	if (r->pending) {
		uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
		atomic_store_explicit(&r->head, head + r->pending, memory_order_release);
		r->pending = 0;
	}
}

const void *dbi_bring_peek(struct dbi_bring *r, uint32_t *len)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	for (;;) {
		uint64_t pos = tail + r->reading;
		if (pos == r->cached_head) {
			r->cached_head = atomic_load_explicit(&r->head, memory_order_acquire);
			if (pos == r->cached_head)
				return NULL;
		}
		const struct frame *f = (const struct frame *)(const void *)(r->data + (pos & r->mask));
		uint64_t step = sizeof(struct frame) + DBI_ALIGN_UP((uint64_t)f->len, 8);
		if (f->kind == FRAME_SKIP) {
			r->reading += step;
			continue;
		}
		assert(f->kind == FRAME_RECORD);
		r->reading += step;
		r->consumed_records++;
		*len = f->len;
		return f + 1;
	}
}

void dbi_bring_release(struct dbi_bring *r)
{
	if (r->reading) {
		uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
		atomic_store_explicit(&r->tail, tail + r->reading, memory_order_release);
		r->reading = 0;
	}
}
