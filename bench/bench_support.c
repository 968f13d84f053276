/*
 * bench_support.c — the C side of the ring benchmarks (see bench_support.h).
 */
#include "bench_support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/record.h"
#include "dbi/ring.h"

struct dbi_bench_ring {
	struct dbi_ring *r;
	pthread_t consumer;
	unsigned burst;
	_Atomic uint64_t produced;
	_Atomic int stop;
	uint64_t consumed;
	uint64_t checksum;
};

struct dbi_bench_ring *dbi_bench_ring_new(uint64_t capacity)
{
	struct dbi_bench_ring *b = calloc(1, sizeof(*b));
	void *mem = NULL;
	if (!b || posix_memalign(&mem, 64, dbi_ring_memsize(capacity, sizeof(struct dbi_point))) != 0) {
		free(b);
		return NULL;
	}
	b->r = mem;
	dbi_ring_init(b->r, "bench", capacity, sizeof(struct dbi_point));
	return b;
}

void dbi_bench_ring_free(struct dbi_bench_ring *b)
{
	free(b->r);
	free(b);
}

uint64_t dbi_bench_ring_same_thread(struct dbi_bench_ring *b, uint64_t n, unsigned burst)
{
	struct dbi_point pts[64];
	uint64_t sum = 0;
	memset(pts, 0, sizeof(pts));
	if (burst <= 1) {
		for (uint64_t i = 0; i < n; i++) {
			pts[0].seq = i;
			dbi_ring_enqueue(b->r, &pts[0], sizeof(struct dbi_point));
			dbi_ring_dequeue(b->r, &pts[1], sizeof(struct dbi_point));
			sum += pts[1].seq;
		}
		return sum;
	}
	for (uint64_t i = 0; i < n; i += burst) {
		pts[0].seq = i;
		dbi_ring_enqueue_burst(b->r, pts, burst, sizeof(struct dbi_point));
		dbi_ring_dequeue_burst(b->r, pts + 32, burst, sizeof(struct dbi_point));
		sum += pts[32].seq;
	}
	return sum;
}

static void *consumer_main(void *arg)
{
	struct dbi_bench_ring *b = arg;
	struct dbi_point pts[64];
	unsigned burst = b->burst ? b->burst : 1;
	for (;;) {
		unsigned n = dbi_ring_dequeue_burst(b->r, pts, burst, sizeof(struct dbi_point));
		if (n) {
			b->consumed += n;
			b->checksum += pts[0].seq;
			continue;
		}
		if (atomic_load_explicit(&b->stop, memory_order_acquire) &&
		    b->consumed == atomic_load_explicit(&b->produced, memory_order_acquire))
			break;
		__builtin_ia32_pause();
	}
	return NULL;
}

void dbi_bench_ring_consumer_start(struct dbi_bench_ring *b, unsigned burst)
{
	b->burst = burst;
	atomic_store(&b->stop, 0);
	b->consumed = 0;
	atomic_store(&b->produced, 0);
	pthread_create(&b->consumer, NULL, consumer_main, b);
}

void dbi_bench_ring_produce(struct dbi_bench_ring *b, uint64_t n, unsigned burst)
{
	struct dbi_point pts[64];
	memset(pts, 0, sizeof(pts));
	if (burst <= 1) {
		for (uint64_t i = 0; i < n; i++) {
			pts[0].seq = i;
			while (dbi_ring_enqueue(b->r, &pts[0], sizeof(struct dbi_point)) != 0)
				__builtin_ia32_pause();
		}
	} else {
		for (uint64_t i = 0; i < n; i += burst) {
			unsigned done = 0;
			pts[0].seq = i;
			while (done < burst) {
				unsigned k = dbi_ring_enqueue_burst(b->r, pts + done, burst - done,
				                                    sizeof(struct dbi_point));
				if (!k)
					__builtin_ia32_pause();
				done += k;
			}
		}
	}
	atomic_fetch_add_explicit(&b->produced, n, memory_order_release);
}

uint64_t dbi_bench_ring_consumer_stop(struct dbi_bench_ring *b)
{
	atomic_store_explicit(&b->stop, 1, memory_order_release);
	pthread_join(b->consumer, NULL);
	return b->consumed;
}
