// bench_prometheus.cc — the prometheus exporter with 100 000 live series: page render
// throughput (series/s) in text 0.0.4 and OpenMetrics, with and without gzip; store
// updates (points/s through consume); and scrape latency over loopback (time per
// scrape, identity and gzip) while the page is already rendered. See bench/README.md.
#include <benchmark/benchmark.h>

#include "bench_prometheus.h"

static const uint32_t kSeries = 100000;

static dbi_bench_prom *shared()
{
	static dbi_bench_prom *b = dbi_bench_prom_new(kSeries);
	return b;
}

static void BM_PromRender(benchmark::State &state)
{
	dbi_bench_prom *b = shared();
	int om = static_cast<int>(state.range(0)), gz = static_cast<int>(state.range(1));
	size_t bytes = 0;
	for (auto _ : state)
		bytes = dbi_bench_prom_render(b, om, gz);
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kSeries);
	state.counters["page_bytes"] = static_cast<double>(bytes);
	state.SetLabel(std::string(om ? "openmetrics" : "text") + (gz ? "+gzip" : ""));
}
BENCHMARK(BM_PromRender)->Args({0, 0})->Args({1, 0})->Args({0, 1})->Unit(benchmark::kMillisecond);

static void BM_PromUpdate(benchmark::State &state)
{
	dbi_bench_prom *b = shared();
	for (auto _ : state)
		benchmark::DoNotOptimize(dbi_bench_prom_update(b));
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kSeries);
}
BENCHMARK(BM_PromUpdate)->Unit(benchmark::kMillisecond);

static void BM_PromScrape(benchmark::State &state)
{
	dbi_bench_prom *b = shared();
	int om = static_cast<int>(state.range(0)), gz = static_cast<int>(state.range(1));
	static unsigned port = dbi_bench_prom_serve(b);
	if (!port) {
		state.SkipWithError("cannot start the HTTP endpoint");
		return;
	}
	size_t bytes = 0;
	for (auto _ : state)
		bytes = dbi_bench_prom_scrape(b, om, gz);
	state.counters["response_bytes"] = static_cast<double>(bytes);
	state.SetLabel(std::string(om ? "openmetrics" : "text") + (gz ? "+gzip" : ""));
}
BENCHMARK(BM_PromScrape)->Args({0, 0})->Args({0, 1})->Args({1, 1})->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
