// bench_otlp_encode.cc — the otlphttp exporter's hot path: a batch of points encoded into
// an OTLP ExportMetricsServiceRequest (hand-written protobuf) and compressed, per core.
// Arguments: compression (0 gzip, 1 zstd, 2 none), level (0 = codec default), shuffled
// order, New Relic profile. Items/s = points/s. Results and the command: bench/README.md.
#include <benchmark/benchmark.h>

#include "bench_support_otlp.h"

static void BM_OtlpEncode(benchmark::State &state)
{
	int comp = static_cast<int>(state.range(0));
	int level = static_cast<int>(state.range(1));
	int shuffled = static_cast<int>(state.range(2));
	int nr = static_cast<int>(state.range(3));
	// 200 servers x 32 metrics x 4 series = 25600 series, batches of 8192 points
	dbi_bench_otlp *b = dbi_bench_otlp_new(200, 32, 4, 8192, shuffled, comp, level, nr);
	uint64_t points = 0;
	for (auto _ : state)
		points += dbi_bench_otlp_run(b);
	state.SetItemsProcessed(static_cast<int64_t>(points));
	state.counters["raw_B/pt"] = static_cast<double>(dbi_bench_otlp_raw_bytes(b)) / 8192.0;
	state.counters["wire_B/pt"] = static_cast<double>(dbi_bench_otlp_wire_bytes(b)) / 8192.0;
	dbi_bench_otlp_free(b);
}
BENCHMARK(BM_OtlpEncode)
        ->ArgNames({"comp", "level", "shuffled", "nr"})
        ->Args({2, 0, 0, 0})  // encode only
        ->Args({2, 0, 1, 0})  // encode only, shuffled batch
        ->Args({0, 1, 0, 0})  // gzip level 1 (the exporter's default)
        ->Args({0, 1, 1, 0})  // gzip level 1, shuffled
        ->Args({0, 6, 0, 0})  // gzip level 6 (zlib's default)
        ->Args({1, 1, 0, 0})  // zstd level 1
        ->Args({1, 3, 0, 0})  // zstd level 3 (zstd's default)
        ->Args({0, 1, 0, 1}); // gzip level 1, New Relic profile

BENCHMARK_MAIN();
