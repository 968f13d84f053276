/*
 * bench_support_c2d.h — C side of the cumulativetodelta benchmark (bench_cumulativetodelta.cc):
 * a processor instance over a real registry, fed batches the way the runtime does, with
 * a `next` that only counts what comes out.
 */
#ifndef DBI_BENCH_SUPPORT_C2D_H
#define DBI_BENCH_SUPPORT_C2D_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum dbi_bench_c2d_kind {
	DBI_BENCH_C2D_SUM = 0,   /* monotonic cumulative int sums: converted */
	DBI_BENCH_C2D_GAUGE = 1, /* gauges: passed through */
	DBI_BENCH_C2D_HIST = 2,  /* cumulative histograms, 10 bounds: converted */
};

struct dbi_bench_c2d;

/*
 * nseries series of one kind; opts is the processor's YAML flow map ("{}",
 * "{max_staleness: 5m}"). Every series has been seen once, so runs measure the steady state.
 */
struct dbi_bench_c2d *dbi_bench_c2d_new(enum dbi_bench_c2d_kind kind, uint32_t nseries, const char *opts);
void dbi_bench_c2d_free(struct dbi_bench_c2d *b);
/* Fill and convert nbatches batches of 512 points (256 histograms), series round-robin; returns items out. */
uint64_t dbi_bench_c2d_run(struct dbi_bench_c2d *b, uint32_t nbatches);
/* The same filling without the processor: the harness's own cost, to subtract. */
uint64_t dbi_bench_c2d_fill_only(struct dbi_bench_c2d *b, uint32_t nbatches);
/* Items per batch for this kind. */
uint32_t dbi_bench_c2d_batch_items(const struct dbi_bench_c2d *b);

#ifdef __cplusplus
}
#endif

#endif
