/*
 * bench_prometheus.h — C entry points of the prometheus exporter benchmark
 * (bench_prometheus.cc). The exporter's structures use C11 atomics, which C++ cannot
 * include, so bench_support_prometheus.c builds and drives the exporter and the
 * harness only times the calls; each call does a whole render, update or scrape.
 */
#ifndef DBI_BENCH_PROMETHEUS_H
#define DBI_BENCH_PROMETHEUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct dbi_bench_prom;

/* An exporter holding nseries live counter series (nseries / 100 resources). */
struct dbi_bench_prom *dbi_bench_prom_new(uint32_t nseries);
void dbi_bench_prom_free(struct dbi_bench_prom *b);
/* One point for every series (value + 1), through the exporter's consume: points applied. */
uint64_t dbi_bench_prom_update(struct dbi_bench_prom *b);
/* Render and publish a page (om: OpenMetrics; gzip: also compress it). Returns body bytes. */
size_t dbi_bench_prom_render(struct dbi_bench_prom *b, int om, int gzip);
/* Start the HTTP endpoint on a free port; 0 on failure. */
unsigned dbi_bench_prom_serve(struct dbi_bench_prom *b);
/* One scrape over loopback (new connection, whole response read). Returns bytes received. */
size_t dbi_bench_prom_scrape(struct dbi_bench_prom *b, int om, int gzip);

#ifdef __cplusplus
}
#endif

#endif
