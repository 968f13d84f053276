/*
 * bench_support.h — C entry points the C++ Google Benchmark harnesses call. The hot
 * loops are C (the ring API is C11 atomics, which C++ cannot include), and each call does
 * a chunk of work so the call itself costs nothing measurable.
 */
#ifndef DBI_BENCH_SUPPORT_H
#define DBI_BENCH_SUPPORT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct dbi_bench_ring;

struct dbi_bench_ring *dbi_bench_ring_new(uint64_t capacity);
void dbi_bench_ring_free(struct dbi_bench_ring *b);
/* Same thread: enqueue then dequeue n points, one at a time or in bursts of `burst`. */
uint64_t dbi_bench_ring_same_thread(struct dbi_bench_ring *b, uint64_t n, unsigned burst);
/* Across threads: start a consumer thread that drains with bursts of `burst`. */
void dbi_bench_ring_consumer_start(struct dbi_bench_ring *b, unsigned burst);
/* Producer side: push n points in bursts of `burst`, spinning when full. */
void dbi_bench_ring_produce(struct dbi_bench_ring *b, uint64_t n, unsigned burst);
/* Stop the consumer after it has taken everything produced; returns points consumed. */
uint64_t dbi_bench_ring_consumer_stop(struct dbi_bench_ring *b);

#ifdef __cplusplus
}
#endif

#endif
