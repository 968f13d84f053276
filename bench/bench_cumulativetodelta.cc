// bench_cumulativetodelta.cc — points/s through the cumulativetodelta processor's consume,
// in the steady state (every series already has its baseline): monotonic sums converted,
// gauges passed through, histograms (10 bounds) converted, with and without max_staleness,
// over 1k (cache-resident) to 100k series. BM_C2D_FillOnly is the harness's own cost of
// refilling a batch; see bench/README.md for results and the command.
#include <benchmark/benchmark.h>

#include "bench_support_c2d.h"

static const uint32_t kBatches = 64;

static void run(benchmark::State &state, dbi_bench_c2d_kind kind, const char *opts)
{
	uint32_t nseries = static_cast<uint32_t>(state.range(0));
	dbi_bench_c2d *b = dbi_bench_c2d_new(kind, nseries, opts);
	if (!b) {
		state.SkipWithError("cannot build the processor");
		return;
	}
	uint64_t out = 0;
	for (auto _ : state)
		out += dbi_bench_c2d_run(b, kBatches);
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBatches * dbi_bench_c2d_batch_items(b)));
	state.counters["out_per_in"] =
	        static_cast<double>(out) / static_cast<double>(state.iterations() * kBatches * dbi_bench_c2d_batch_items(b));
	dbi_bench_c2d_free(b);
}

static void BM_C2D_Sum(benchmark::State &state)
{
	run(state, DBI_BENCH_C2D_SUM, "{}");
}
BENCHMARK(BM_C2D_Sum)->Arg(1000)->Arg(10000)->Arg(100000);

static void BM_C2D_SumStaleness(benchmark::State &state)
{
	run(state, DBI_BENCH_C2D_SUM, "{max_staleness: 5m}");
}
BENCHMARK(BM_C2D_SumStaleness)->Arg(1000)->Arg(100000);

static void BM_C2D_GaugePassThrough(benchmark::State &state)
{
	run(state, DBI_BENCH_C2D_GAUGE, "{}");
}
BENCHMARK(BM_C2D_GaugePassThrough)->Arg(1000)->Arg(100000);

static void BM_C2D_Histogram(benchmark::State &state)
{
	run(state, DBI_BENCH_C2D_HIST, "{}");
}
BENCHMARK(BM_C2D_Histogram)->Arg(1000)->Arg(100000);

static void BM_C2D_FillOnly(benchmark::State &state)
{
	dbi_bench_c2d *b = dbi_bench_c2d_new(DBI_BENCH_C2D_SUM, static_cast<uint32_t>(state.range(0)), "{}");
	if (!b) {
		state.SkipWithError("cannot build the processor");
		return;
	}
	for (auto _ : state)
		benchmark::DoNotOptimize(dbi_bench_c2d_fill_only(b, kBatches));
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBatches * dbi_bench_c2d_batch_items(b)));
	dbi_bench_c2d_free(b);
}
BENCHMARK(BM_C2D_FillOnly)->Arg(1000)->Arg(100000);

BENCHMARK_MAIN();
