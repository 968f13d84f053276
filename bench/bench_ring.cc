// bench_ring.cc — SPSC slot ring throughput: single and burst-of-32 enqueue/dequeue,
// in one thread and across two threads (producer here, consumer on another core).
// Items/s is the figure of merit; see bench/README.md for results and the command.
#include <benchmark/benchmark.h>

#include "bench_support.h"

static void BM_RingSameThread(benchmark::State &state)
{
	unsigned burst = static_cast<unsigned>(state.range(0));
	dbi_bench_ring *b = dbi_bench_ring_new(4096);
	const uint64_t chunk = 1 << 16;
	for (auto _ : state)
		benchmark::DoNotOptimize(dbi_bench_ring_same_thread(b, chunk, burst));
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * chunk));
	dbi_bench_ring_free(b);
}
BENCHMARK(BM_RingSameThread)->Arg(1)->Arg(32);

static void BM_RingTwoThreads(benchmark::State &state)
{
	unsigned burst = static_cast<unsigned>(state.range(0));
	dbi_bench_ring *b = dbi_bench_ring_new(65536);
	const uint64_t chunk = 1 << 18;
	dbi_bench_ring_consumer_start(b, burst);
	for (auto _ : state)
		dbi_bench_ring_produce(b, chunk, burst);
	uint64_t consumed = dbi_bench_ring_consumer_stop(b);
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * chunk));
	state.counters["consumed"] = static_cast<double>(consumed);
	dbi_bench_ring_free(b);
}
BENCHMARK(BM_RingTwoThreads)->Arg(1)->Arg(32)->UseRealTime();

BENCHMARK_MAIN();
