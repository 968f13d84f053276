/*
 * bench_support_otlp.h — C entry points for the OTLP exporter benchmarks (bench_otlp_encode.cc):
 * a registry shaped like a PostgreSQL fleet, batches of points over it, and one call that
 * encodes a batch into an ExportMetricsServiceRequest and compresses it, as the otlphttp
 * exporter's consume() does.
 */
#ifndef DBI_BENCH_SUPPORT_OTLP_H
#define DBI_BENCH_SUPPORT_OTLP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct dbi_bench_otlp;

/*
 * targets x metrics x series_per_metric series; batches of batch_points points, in
 * scrape order (shuffled = 0) or shuffled. compression: 0 gzip, 1 zstd, 2 none; level 0 =
 * the codec default. newrelic = 1 applies the New Relic profile's limits and attributes.
 */
struct dbi_bench_otlp *dbi_bench_otlp_new(unsigned targets, unsigned metrics, unsigned series_per_metric,
                                          unsigned batch_points, int shuffled, int compression, int level,
                                          int newrelic);
void dbi_bench_otlp_free(struct dbi_bench_otlp *b);
/* Encode (and compress) the next batch; returns the points encoded. */
uint64_t dbi_bench_otlp_run(struct dbi_bench_otlp *b);
/* Bytes of the last request before and after compression. */
uint64_t dbi_bench_otlp_raw_bytes(const struct dbi_bench_otlp *b);
uint64_t dbi_bench_otlp_wire_bytes(const struct dbi_bench_otlp *b);

#ifdef __cplusplus
}
#endif

#endif
