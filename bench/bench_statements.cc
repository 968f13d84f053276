// bench_statements.cc — collector CPU per scrape of the statements module: update 5 000
// (or 20 000) tracked statements from decoded pg_stat_statements rows, compute deltas,
// select the top-N with the bounded heap, aggregate "other" and the histogram, and emit
// into a counting sink. What varies between scrapes is only the counters, as in
// production; the rows are prepared outside the timed loop (decoding a PGresult is
// measured by bench/pgss_dbtime against a real server). See bench/README.md.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <vector>

extern "C" {
#include "dbi/registry.h"
#include "../src/receivers/postgresql/statements.h"
}

namespace {

struct CountSink {
	dbi_pgss_sink sink;
	uint64_t points = 0, records = 0;
	alignas(8) uint8_t scratch[65536];
};

int sink_point(void *ctx, dbi_point *p, uint64_t)
{
	auto *s = static_cast<CountSink *>(ctx);
	benchmark::DoNotOptimize(p->v.i);
	s->points++;
	return DBI_OK;
}

void *sink_reserve(void *ctx, uint32_t, uint32_t len, uint64_t)
{
	auto *s = static_cast<CountSink *>(ctx);
	return len <= sizeof(s->scratch) ? s->scratch : nullptr;
}

void sink_commit(void *ctx, void *)
{
	static_cast<CountSink *>(ctx)->records++;
}

uint64_t lcg(uint64_t &x)
{
	x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return x >> 33;
}

struct Setup {
	dbi_registry *reg;
	CountSink sink;
	dbi_pgss *s;
	std::vector<dbi_pgss_row> rows;
	uint64_t now = 1700000000000000000ULL, x = 1;

	Setup(size_t n, uint32_t limit, unsigned active_pct)
	{
		reg = dbi_registry_create(1u << 22);
		dbi_attr ra{};
		ra.key = "service.instance.id";
		ra.type = DBI_AT_STR;
		ra.v.s = "bench:5432";
		uint32_t res = dbi_attrs_intern(reg, &ra, 1);
		uint32_t scope = dbi_scope_intern(reg, "dbi.postgresql", "bench");
		sink.sink = {&sink, sink_point, sink_reserve, sink_commit};
		dbi_pgss_config c{};
		c.reg = reg;
		c.resource = res;
		c.scope = scope;
		c.sink = &sink.sink;
		c.limit = limit;
		c.tag = 1;
		dbi_errbuf err;
		s = dbi_pgss_create(&c, &err);
		dbi_pgss_set_api(s, DBI_PGSS_API_1_10);
		for (uint32_t d = 1; d <= 8; d++)
			dbi_pgss_feed_name(s, false, d, "db");
		for (uint32_t u = 1; u <= 4; u++)
			dbi_pgss_feed_name(s, true, u, "user");
		rows.resize(n);
		for (size_t i = 0; i < n; i++) {
			dbi_pgss_row &r = rows[i];
			r = dbi_pgss_row{};
			r.dbid = 1 + i % 8;
			r.userid = 1 + i % 4;
			r.queryid = (int64_t)(lcg(x) << 20 ^ i);
			r.has_queryid = true;
			r.toplevel = true;
			r.v.c[DBI_PGSS_C_CALLS] = lcg(x) % 100000;
			r.v.t[DBI_PGSS_T_EXEC] = (double)(lcg(x) % 1000000) / 3.0;
		}
		this->active_pct = active_pct;
		scrape(); // baseline
		advance();
		scrape(); // first interval: texts would be fetched; fingerprints are fed below
		int64_t want[1024];
		size_t nw = dbi_pgss_wanted_texts(s, want, 1024);
		for (size_t i = 0; i < nw; i++)
			dbi_pgss_feed_text(s, want[i], "SELECT * FROM t WHERE id = $1");
		dbi_pgss_emit(s);
	}
	~Setup()
	{
		dbi_pgss_release(s);
		dbi_registry_destroy(reg);
	}
	unsigned active_pct;

	// active_pct 0: a skewed workload, every statement busy in proportion to 1 / (1 + i / 50)
	// with +-10 % noise, so the top-N is about as stable as in production; otherwise each
	// statement is active with that probability at random cost, so the top-N churns every
	// scrape (the worst case: statements new to the top-N need their series interned).
	void advance()
	{
		for (size_t i = 0; i < rows.size(); i++) {
			dbi_pgss_row &r = rows[i];
			if (!active_pct) {
				double w = 1.0 / (1.0 + (double)i / 50.0);
				uint64_t c = 1 + (uint64_t)(w * 1000.0 * (0.9 + (double)(lcg(x) % 200) / 1000.0));
				r.v.c[DBI_PGSS_C_CALLS] += c;
				r.v.t[DBI_PGSS_T_EXEC] += (double)c * 0.5;
				continue;
			}
			if (lcg(x) % 100 >= active_pct)
				continue;
			uint64_t c = 1 + lcg(x) % 50;
			r.v.c[DBI_PGSS_C_CALLS] += c;
			r.v.c[DBI_PGSS_C_ROWS] += c;
			r.v.c[DBI_PGSS_C_SHARED_HIT] += c * 4;
			r.v.t[DBI_PGSS_T_EXEC] += (double)c * (double)(1 + lcg(x) % 1000) / 100.0;
		}
	}
	void scrape()
	{
		now += 10000000000ULL;
		dbi_pgss_begin(s, now);
		dbi_pgss_feed_counters(s, nullptr, rows.data(), rows.size(), nullptr);
	}
};

// One scrape: begin + counters (deltas, top-N, other, histogram) + emit.
void BM_StatementsScrape(benchmark::State &state)
{
	Setup st((size_t)state.range(0), 200, (unsigned)state.range(1));
	uint64_t i0 = dbi_pgss_get_stats(st.s)->series_interns, a0 = dbi_pgss_get_stats(st.s)->grow_allocs;
	for (auto _ : state) {
		state.PauseTiming();
		st.advance();
		state.ResumeTiming();
		st.scrape();
		dbi_pgss_emit(st.s);
	}
	i0 = dbi_pgss_get_stats(st.s)->series_interns - i0;
	state.SetItemsProcessed(state.iterations() * state.range(0));
	state.counters["points/scrape"] = benchmark::Counter((double)st.sink.points / (double)(state.iterations() + 2));
	state.counters["interned/scrape"] = (double)i0 / (double)state.iterations();
	/* the tables grew during the warm-up scrapes; none after */
	state.counters["allocs_after_warmup"] = (double)(dbi_pgss_get_stats(st.s)->grow_allocs - a0);
}
BENCHMARK(BM_StatementsScrape)->Args({5000, 0})->Args({5000, 10})->Args({5000, 100})->Args({20000, 0})->Unit(benchmark::kMicrosecond);

// The same without emission: the delta + top-N work alone.
void BM_StatementsDeltaTopN(benchmark::State &state)
{
	Setup st((size_t)state.range(0), 200, (unsigned)state.range(1));
	for (auto _ : state) {
		state.PauseTiming();
		st.advance();
		state.ResumeTiming();
		st.scrape();
		state.PauseTiming();
		dbi_pgss_emit(st.s);
		state.ResumeTiming();
	}
	state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_StatementsDeltaTopN)->Args({5000, 0})->Args({5000, 10})->Args({5000, 100})->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
