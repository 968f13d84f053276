/*
 * test_statements.c — the statements module without a server: interval deltas (first
 * scrape is a baseline, new entries count whole, counters going down / min-max moving
 * the wrong way / stats_since changing / stats_reset moving re-baseline without negative
 * or doubled deltas, eviction and re-entry), the version column maps, top-N selection
 * and "other" sums, histogram bucketing, samples once per fingerprint with literal-free
 * text, text wanted only for new queryids, no allocation in the steady state; and the
 * fingerprint module: stability under literals, different shapes differ, normalization
 * and the fallback scrubber remove literals, hostile text never crashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/fingerprint.h"
#ifdef DBI_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif
#include "dbi/registry.h"
#include "opentelemetry/proto/logs/v1/logs.pb-c.h"
#include "pgss_sink.h"

#define T0 1700000000000000000ULL
#define SEC 1000000000ULL

struct fx {
	struct dbi_registry *reg;
	struct dbi_test_sink sink;
	struct dbi_pgss *s;
	uint32_t resource, scope;
};

static void fx_init_pool(struct fx *f, uint32_t limit, enum dbi_pgss_api api, struct dbi_pgss_pool *pool)
{
	struct dbi_attr ra[] = {{.key = "service.instance.id", .type = DBI_AT_STR, .v.s = "db1:5432"}};
	struct dbi_errbuf err;
	memset(f, 0, sizeof(*f));
	f->reg = dbi_registry_create(1u << 20);
	assert_non_null(f->reg);
	f->resource = dbi_attrs_intern(f->reg, ra, 1);
	f->scope = dbi_scope_intern(f->reg, "dbi.postgresql", "test");
	dbi_test_sink_init(&f->sink, f->reg);
	struct dbi_pgss_config c = {.reg = f->reg,
	                            .resource = f->resource,
	                            .scope = f->scope,
	                            .sink = &f->sink.sink,
	                            .limit = limit,
	                            .metrics = DBI_PGSS_M_ALL,
	                            .tag = 1,
	                            .pool = pool};
	f->s = dbi_pgss_create(&c, &err);
	assert_non_null(f->s);
	dbi_pgss_set_api(f->s, api);
	dbi_pgss_feed_name(f->s, false, 5, "appdb");
	dbi_pgss_feed_name(f->s, false, 6, "otherdb");
	dbi_pgss_feed_name(f->s, true, 10, "alice");
	dbi_pgss_feed_name(f->s, true, 11, "bob");
}

static void fx_init(struct fx *f, uint32_t limit, enum dbi_pgss_api api)
{
	fx_init_pool(f, limit, api, NULL);
}

static void fx_free(struct fx *f)
{
	dbi_pgss_release(f->s);
	dbi_test_sink_free(&f->sink);
	dbi_registry_destroy(f->reg);
}

static struct dbi_pgss_row row(uint32_t dbid, uint32_t userid, int64_t qid, uint64_t calls, double exec_ms)
{
	struct dbi_pgss_row r = {.dbid = dbid, .userid = userid, .queryid = qid, .has_queryid = true, .toplevel = true};
	r.v.c[DBI_PGSS_C_CALLS] = calls;
	r.v.c[DBI_PGSS_C_ROWS] = calls * 2;
	r.v.c[DBI_PGSS_C_SHARED_HIT] = calls * 3;
	r.v.t[DBI_PGSS_T_EXEC] = exec_ms;
	return r;
}

/* One scrape from decoded rows; no texts fed unless the caller does. */
static void scrape(struct fx *f, uint64_t now, const struct dbi_pgss_row *rows, size_t n,
                   const struct dbi_pgss_info *before, const struct dbi_pgss_info *after, bool emit)
{
	dbi_test_sink_clear(&f->sink);
	assert_int_equal(dbi_pgss_begin(f->s, now), DBI_OK);
	assert_int_equal(dbi_pgss_feed_counters(f->s, before, rows, n, after), DBI_OK);
	if (emit)
		assert_int_equal(dbi_pgss_emit(f->s), DBI_OK);
}

static double calls_of(struct fx *f, int64_t qid)
{
	char q[32];
	size_t n;
	snprintf(q, sizeof(q), "%lld", (long long)qid);
	double v = dbi_test_sink_sum(&f->sink, "postgresql.statement.calls", "postgresql.queryid", q, &n);
	return n ? v : -1;
}

static void test_baseline_then_deltas(void **state)
{
	struct fx f;
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	struct dbi_pgss_row r1[] = {row(5, 10, 100, 10, 50.0), row(5, 10, 101, 4, 2.0)};
	scrape(&f, T0, r1, 2, NULL, NULL, true);
	/* first scrape: a baseline, only the tracked gauge */
	assert_int_equal(dbi_test_sink_sum(&f.sink, "postgresql.statement.calls", NULL, NULL, NULL), 0);
	assert_int_equal(dbi_test_sink_sum(&f.sink, "postgresql.statement.tracked", NULL, NULL, NULL), 2);

	struct dbi_pgss_row r2[] = {row(5, 10, 100, 15, 80.0), row(5, 10, 101, 4, 2.0)};
	scrape(&f, T0 + 10 * SEC, r2, 2, NULL, NULL, true);
	assert_true(calls_of(&f, 100) == 5);
	assert_true(calls_of(&f, 101) == -1); /* no activity: not exported */
	size_t n;
	double et = dbi_test_sink_sum(&f.sink, "postgresql.statement.execution.time", "postgresql.queryid", "100", &n);
	assert_int_equal(n, 1);
	assert_true(fabs(et - 0.030) < 1e-12);
	double mean =
	        dbi_test_sink_sum(&f.sink, "postgresql.statement.execution.mean_time", "postgresql.queryid", "100", &n);
	assert_true(fabs(mean - 0.006) < 1e-12);
	assert_true(dbi_test_sink_sum(&f.sink, "postgresql.statement.rows", NULL, NULL, NULL) == 10);
	/* points carry the interval: start = previous scrape */
	for (size_t i = 0; i < f.sink.npts; i++) {
		assert_int_equal(f.sink.pts[i].time_ns, T0 + 10 * SEC);
		if (f.sink.pts[i].kind == DBI_PK_SUM)
			assert_int_equal(f.sink.pts[i].start_ns, T0);
	}
	/* attributes: names resolved, queryid as text, toplevel on 1.9+ */
	char buf[64];
	for (size_t i = 0; i < f.sink.npts; i++) {
		if (strcmp(dbi_test_sink_metric(&f.sink, &f.sink.pts[i]), "postgresql.statement.calls"))
			continue;
		assert_true(dbi_test_sink_attr(&f.sink, f.sink.pts[i].series, "postgresql.database.name", buf, 64));
		assert_string_equal(buf, "appdb");
		assert_true(dbi_test_sink_attr(&f.sink, f.sink.pts[i].series, "postgresql.user.name", buf, 64));
		assert_string_equal(buf, "alice");
		assert_true(
		        dbi_test_sink_attr(&f.sink, f.sink.pts[i].series, "postgresql.statement.toplevel", buf, 64));
		assert_string_equal(buf, "true");
	}
	fx_free(&f);
}

static void test_new_entry_counts_whole(void **state)
{
	struct fx f;
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	struct dbi_pgss_row r1[] = {row(5, 10, 100, 10, 50.0)};
	scrape(&f, T0, r1, 1, NULL, NULL, true);
	struct dbi_pgss_row r2[] = {row(5, 10, 100, 10, 50.0), row(5, 10, 200, 7, 3.0)};
	scrape(&f, T0 + SEC, r2, 2, NULL, NULL, true);
	assert_true(calls_of(&f, 200) == 7);
	assert_int_equal(dbi_pgss_get_stats(f.s)->new_entries, 2);
	fx_free(&f);
}

static void test_decrease_rebaselines(void **state)
{
	struct fx f;
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	struct dbi_pgss_row a[] = {row(5, 10, 100, 1000, 500.0)};
	scrape(&f, T0, a, 1, NULL, NULL, true);
	/* partial reset / eviction + re-entry within one interval: counters go down */
	struct dbi_pgss_row b[] = {row(5, 10, 100, 3, 1.5)};
	scrape(&f, T0 + SEC, b, 1, NULL, NULL, true);
	assert_true(calls_of(&f, 100) == 3);
	assert_true(dbi_test_sink_min(&f.sink, "postgresql.statement.execution.time") >= 0);
	assert_int_equal(dbi_pgss_get_stats(f.s)->rebaselines, 1);
	/* and it continues normally from the new baseline */
	struct dbi_pgss_row c[] = {row(5, 10, 100, 5, 2.5)};
	scrape(&f, T0 + 2 * SEC, c, 1, NULL, NULL, true);
	assert_true(calls_of(&f, 100) == 2);
	fx_free(&f);
}

static void test_eviction_and_reentry(void **state)
{
	struct fx f;
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	struct dbi_pgss_row keep = row(5, 10, 1, 1, 1.0);
	struct dbi_pgss_row a[] = {keep, row(5, 10, 100, 50, 50.0)};
	scrape(&f, T0, a, 2, NULL, NULL, true);
	/* evicted: absent from this scrape */
	struct dbi_pgss_row b[] = {keep};
	scrape(&f, T0 + SEC, b, 1, NULL, NULL, true);
	assert_int_equal(dbi_pgss_get_stats(f.s)->gone, 1);
	assert_int_equal(dbi_pgss_get_stats(f.s)->tracked, 1);
	/* re-enters with MORE calls than it had: still only what happened since re-entry */
	struct dbi_pgss_row c[] = {keep, row(5, 10, 100, 60, 30.0)};
	scrape(&f, T0 + 2 * SEC, c, 2, NULL, NULL, true);
	assert_true(calls_of(&f, 100) == 60);
	fx_free(&f);
}

static void test_minmax_detects_recreation(void **state)
{
	struct fx f;
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	struct dbi_pgss_row a[] = {row(5, 10, 100, 50, 500.0)};
	a[0].min_exec = 1.0;
	a[0].max_exec = 90.0;
	scrape(&f, T0, a, 1, NULL, NULL, true);
	/* more calls than before, but max fell: the entry was evicted and re-created */
	struct dbi_pgss_row b[] = {row(5, 10, 100, 70, 600.0)};
	b[0].min_exec = 2.0;
	b[0].max_exec = 20.0;
	scrape(&f, T0 + SEC, b, 1, NULL, NULL, true);
	assert_true(calls_of(&f, 100) == 70);
	fx_free(&f);
}

static void test_stats_since_pg17(void **state)
{
	struct fx f;
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_11);
	struct dbi_pgss_row a[] = {row(5, 10, 100, 50, 500.0)};
	a[0].stats_since = 111;
	a[0].max_exec = 90;
	scrape(&f, T0, a, 1, NULL, NULL, true);
	struct dbi_pgss_row b[] = {row(5, 10, 100, 80, 900.0)};
	b[0].stats_since = 111;
	b[0].max_exec = 10; /* minmax-only reset (PG 17): not a re-creation */
	scrape(&f, T0 + SEC, b, 1, NULL, NULL, true);
	assert_true(calls_of(&f, 100) == 30);
	struct dbi_pgss_row c[] = {row(5, 10, 100, 90, 950.0)};
	c[0].stats_since = 222; /* re-created */
	scrape(&f, T0 + 2 * SEC, c, 1, NULL, NULL, true);
	assert_true(calls_of(&f, 100) == 90);
	fx_free(&f);
}

static void test_reset_via_info(void **state)
{
	struct fx f;
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	struct dbi_pgss_info i1 = {.valid = true, .stats_reset = 1, .dealloc = 0};
	struct dbi_pgss_info i2 = {.valid = true, .stats_reset = 2, .dealloc = 0};
	struct dbi_pgss_row a[] = {row(5, 10, 100, 5, 5.0)};
	scrape(&f, T0, a, 1, &i1, &i1, true);
	struct dbi_pgss_row b[] = {row(5, 10, 100, 8, 8.0)};
	scrape(&f, T0 + SEC, b, 1, &i1, &i1, true);
	assert_true(calls_of(&f, 100) == 3);
	/* reset, then more calls than before: counters went UP, stats_reset tells */
	struct dbi_pgss_row c[] = {row(5, 10, 100, 20, 20.0)};
	scrape(&f, T0 + 2 * SEC, c, 1, &i2, &i2, true);
	assert_true(calls_of(&f, 100) == 20);
	assert_int_equal(dbi_pgss_get_stats(f.s)->resets, 1);
	/* a reset racing the read (before != after): the next scrape must not count twice */
	struct dbi_pgss_info i3 = {.valid = true, .stats_reset = 3};
	struct dbi_pgss_row d[] = {row(5, 10, 100, 2, 2.0)}; /* read after the reset */
	scrape(&f, T0 + 3 * SEC, d, 1, &i2, &i3, true);
	assert_true(calls_of(&f, 100) == 2); /* counters went down: whole */
	struct dbi_pgss_row e[] = {row(5, 10, 100, 6, 6.0)};
	scrape(&f, T0 + 4 * SEC, e, 1, &i3, &i3, true);
	assert_true(calls_of(&f, 100) == 4); /* not 6: the reset was already accounted */
	fx_free(&f);
}

static void test_hidden_rows_go_to_other(void **state)
{
	struct fx f;
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	struct dbi_pgss_row a[] = {row(5, 11, 0, 5, 5.0), row(5, 11, 0, 7, 7.0), row(5, 10, 100, 1, 1.0)};
	a[0].has_queryid = a[1].has_queryid = false;
	scrape(&f, T0, a, 3, NULL, NULL, true);
	struct dbi_pgss_row b[] = {row(5, 11, 0, 6, 6.0), row(5, 11, 0, 9, 9.0), row(5, 10, 100, 2, 2.0)};
	b[0].has_queryid = b[1].has_queryid = false;
	scrape(&f, T0 + SEC, b, 3, NULL, NULL, true);
	struct dbi_pgss_ctrs o;
	assert_true(dbi_pgss_last_other(f.s, 5, &o));
	assert_int_equal(o.c[DBI_PGSS_C_CALLS], 3);
	assert_true(calls_of(&f, 100) == 1);
	assert_int_equal(dbi_pgss_get_stats(f.s)->hidden_rows, 4);
	fx_free(&f);
}

/* ---- top-N and other ---- */

static uint64_t lcg(uint64_t *x)
{
	*x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
	return *x >> 33;
}

struct ref {
	int64_t qid;
	uint32_t db;
	double exec;
	uint64_t calls;
};

static int ref_cmp(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;
	if (x->exec != y->exec)
		return x->exec < y->exec ? 1 : -1;
	if (x->calls != y->calls)
		return x->calls < y->calls ? 1 : -1;
	return x->qid < y->qid ? -1 : x->qid > y->qid;
}

static void test_topn_and_other_sums(void **state)
{
	enum { N = 3000, LIMIT = 50 };
	struct fx f;
	static struct dbi_pgss_row a[N], b[N];
	static struct ref ref[N];
	uint64_t x = 42, sum_calls[2] = {0, 0}, sum_rows[2] = {0, 0};
	double sum_exec[2] = {0, 0};
	(void)state;

	fx_init(&f, LIMIT, DBI_PGSS_API_1_10);
	for (int i = 0; i < N; i++) {
		uint32_t db = (i % 3) ? 5 : 6;
		a[i] = row(db, 10 + (i % 2), 1000 + i, lcg(&x) % 1000, (double)(lcg(&x) % 100000) / 7.0);
		b[i] = a[i];
		uint64_t dc = (i % 5 == 0) ? 0 : lcg(&x) % 500; /* some idle */
		double de = dc ? (double)(lcg(&x) % 1000000) / 13.0 : 0;
		b[i].v.c[DBI_PGSS_C_CALLS] += dc;
		b[i].v.c[DBI_PGSS_C_ROWS] += dc * 2;
		b[i].v.t[DBI_PGSS_T_EXEC] += de;
		ref[i] = (struct ref){.qid = 1000 + i,
		                      .db = db,
		                      .exec = b[i].v.t[DBI_PGSS_T_EXEC] - a[i].v.t[DBI_PGSS_T_EXEC],
		                      .calls = dc};
		sum_calls[db == 6] += dc;
		sum_rows[db == 6] += dc * 2;
		sum_exec[db == 6] += ref[i].exec;
	}
	scrape(&f, T0, a, N, NULL, NULL, true);
	scrape(&f, T0 + SEC, b, N, NULL, NULL, true);

	/* the exported top-N is exactly the true top-N, best first */
	static struct dbi_pgss_top top[LIMIT + 1];
	size_t nt = dbi_pgss_last_top(f.s, top, LIMIT + 1);
	assert_int_equal(nt, LIMIT);
	qsort(ref, N, sizeof(ref[0]), ref_cmp);
	for (size_t i = 0; i < nt; i++) {
		assert_int_equal(top[i].queryid, ref[i].qid);
		assert_true(top[i].delta.t[DBI_PGSS_T_EXEC] == ref[i].exec);
	}

	/* top-N + other = all, per database: exactly for counts */
	for (int d = 0; d < 2; d++) {
		const char *dbname = d ? "otherdb" : "appdb";
		size_t n;
		double calls = dbi_test_sink_sum(&f.sink, "postgresql.statement.calls", "postgresql.database.name",
		                                 dbname, &n);
		double rows = dbi_test_sink_sum(&f.sink, "postgresql.statement.rows", "postgresql.database.name",
		                                dbname, NULL);
		double exec = dbi_test_sink_sum(&f.sink, "postgresql.statement.execution.time",
		                                "postgresql.database.name", dbname, NULL);
		assert_true(calls == (double)sum_calls[d]);
		assert_true(rows == (double)sum_rows[d]);
		assert_true(fabs(exec - sum_exec[d] / 1000.0) <= 1e-9 * sum_exec[d]);
		/* the per-database execution time and histogram agree with the statements */
		double qe = dbi_test_sink_sum(&f.sink, "postgresql.query.toplevel.execution.time", "postgresql.database.name",
		                              dbname, &n);
		assert_int_equal(n, 1);
		assert_true(fabs(qe - sum_exec[d] / 1000.0) <= 1e-9 * sum_exec[d]);
		struct dbi_pgss_ctrs o;
		assert_true(dbi_pgss_last_other(f.s, d ? 6 : 5, &o));
	}
	/* other series are labelled as such */
	size_t n_other;
	dbi_test_sink_sum(&f.sink, "postgresql.statement.calls", "db.query.fingerprint", "other", &n_other);
	assert_int_equal(n_other, 2);
	fx_free(&f);
}

/* ---- histogram ---- */

/*
 * Two targets of one thread share a pool of top-N scratch sets while their scrapes
 * overlap (counters of both read, then both emitted): each exports exactly what a target
 * with its own scratch exports, the pool makes one set per scrape in flight, no more, and
 * a scrape that fails or is never emitted does not leak a set.
 */
static void test_shared_topn_pool(void **state)
{
	enum { N = 12, LIMIT = 3, ROUNDS = 6 };
	struct dbi_pgss_pool *pool = dbi_pgss_pool_create();
	struct fx a, b, ra, rb; /* a, b share the pool; ra, rb are references with their own */
	struct dbi_pgss_row rows[2][N];
	(void)state;

	assert_non_null(pool);
	fx_init_pool(&a, LIMIT, DBI_PGSS_API_1_10, pool);
	fx_init_pool(&b, LIMIT, DBI_PGSS_API_1_10, pool);
	fx_init(&ra, LIMIT, DBI_PGSS_API_1_10);
	fx_init(&rb, LIMIT, DBI_PGSS_API_1_10);
	for (int t = 0; t < 2; t++)
		for (int i = 0; i < N; i++)
			rows[t][i] = row(i % 2 ? 6 : 5, 10, (t ? 2000 : 1000) + i, 1, 1.0);
	for (int k = 0; k < ROUNDS; k++) {
		uint64_t now = T0 + (uint64_t)k * SEC;
		for (int t = 0; t < 2; t++)
			for (int i = 0; i < N; i++) { /* a different top-N every round, and per target */
				uint64_t dc = (uint64_t)((i * 7 + k * 5 + t * 3) % N) + 1;
				rows[t][i].v.c[DBI_PGSS_C_CALLS] += dc;
				rows[t][i].v.c[DBI_PGSS_C_ROWS] += 2 * dc;
				rows[t][i].v.t[DBI_PGSS_T_EXEC] += (double)dc * (1.5 + t);
			}
		struct fx *fs[4] = {&a, &b, &ra, &rb};
		for (int j = 0; j < 4; j++) {
			dbi_test_sink_clear(&fs[j]->sink);
			assert_int_equal(dbi_pgss_begin(fs[j]->s, now), DBI_OK);
		}
		/* overlapping: both counters in before either emits */
		assert_int_equal(dbi_pgss_feed_counters(a.s, NULL, rows[0], N, NULL), DBI_OK);
		assert_int_equal(dbi_pgss_feed_counters(b.s, NULL, rows[1], N, NULL), DBI_OK);
		assert_int_equal(dbi_pgss_feed_counters(ra.s, NULL, rows[0], N, NULL), DBI_OK);
		assert_int_equal(dbi_pgss_feed_counters(rb.s, NULL, rows[1], N, NULL), DBI_OK);
		for (int j = 0; j < 4; j++)
			assert_int_equal(dbi_pgss_emit(fs[j]->s), DBI_OK);
		for (int t = 0; t < 2; t++) {
			struct fx *x = t ? &b : &a, *r = t ? &rb : &ra;
			const char *const ms[] = {"postgresql.statement.calls", "postgresql.statement.rows",
			                          "postgresql.statement.execution.time"};
			for (int i = 0; i < N; i++) {
				char q[32];
				size_t n1, n2;
				snprintf(q, sizeof(q), "%d", (t ? 2000 : 1000) + i);
				for (size_t m = 0; m < sizeof(ms) / sizeof(ms[0]); m++) {
					double v1 = dbi_test_sink_sum(&x->sink, ms[m], "postgresql.queryid", q, &n1);
					double v2 = dbi_test_sink_sum(&r->sink, ms[m], "postgresql.queryid", q, &n2);
					assert_int_equal(n1, n2);
					assert_true(v1 == v2);
				}
			}
			for (int d = 0; d < 2; d++) { /* "other" and totals per database */
				const char *dbname = d ? "otherdb" : "appdb";
				assert_true(dbi_test_sink_sum(&x->sink, "postgresql.statement.calls",
				                              "postgresql.database.name", dbname, NULL) ==
				            dbi_test_sink_sum(&r->sink, "postgresql.statement.calls",
				                              "postgresql.database.name", dbname, NULL));
			}
			if (k > 0) /* not the baseline: top-N statements were exported */
				assert_true(x->sink.npts > 0 && x->sink.npts == r->sink.npts);
		}
	}
	assert_int_equal(dbi_pgss_pool_sets(pool), 2);

	/* one target's scrape never emitted (session lost): it keeps its set and reuses it */
	assert_int_equal(dbi_pgss_begin(a.s, T0 + 100 * SEC), DBI_OK);
	assert_int_equal(dbi_pgss_feed_counters(a.s, NULL, rows[0], N, NULL), DBI_OK);
	for (int k = 0; k < 3; k++) {
		assert_int_equal(dbi_pgss_begin(a.s, T0 + (101 + (uint64_t)k) * SEC), DBI_OK);
		assert_int_equal(dbi_pgss_feed_counters(a.s, NULL, rows[0], N, NULL), DBI_OK);
		assert_int_equal(dbi_pgss_begin(b.s, T0 + (101 + (uint64_t)k) * SEC), DBI_OK);
		assert_int_equal(dbi_pgss_feed_counters(b.s, NULL, rows[1], N, NULL), DBI_OK);
		assert_int_equal(dbi_pgss_emit(b.s), DBI_OK);
	}
	assert_int_equal(dbi_pgss_pool_sets(pool), 2);
	/* a target released while holding a set gives it back; the pool frees it */
	fx_free(&a);
	fx_free(&b);
	fx_free(&ra);
	fx_free(&rb);
	dbi_pgss_pool_release(pool);
}

static void test_histogram(void **state)
{
	struct fx f;
	(void)state;
	assert_int_equal(dbi_pgss_hist_bucket(0.05), 0);
	assert_int_equal(dbi_pgss_hist_bucket(0.1), 0); /* upper bound inclusive, as OTLP */
	assert_int_equal(dbi_pgss_hist_bucket(0.1000001), 1);
	assert_int_equal(dbi_pgss_hist_bucket(1), 1);
	assert_int_equal(dbi_pgss_hist_bucket(10), 2);
	assert_int_equal(dbi_pgss_hist_bucket(99.9), 3);
	assert_int_equal(dbi_pgss_hist_bucket(1000), 4);
	assert_int_equal(dbi_pgss_hist_bucket(1000.5), 5);

	fx_init(&f, 2, DBI_PGSS_API_1_10);
	struct dbi_pgss_row a[] = {row(5, 10, 1, 0, 0), row(5, 10, 2, 0, 0), row(5, 10, 3, 0, 0), row(5, 10, 4, 0, 0)};
	a[3].toplevel = false;
	scrape(&f, T0, a, 4, NULL, NULL, true);
	/* 10 calls of mean 0.05 ms, 4 of mean 5 ms, 2 of mean 2000 ms; a nested one ignored */
	struct dbi_pgss_row b[] = {row(5, 10, 1, 10, 0.5), row(5, 10, 2, 4, 20.0), row(5, 10, 3, 2, 4000.0),
	                           row(5, 10, 4, 9, 9.0)};
	b[3].toplevel = false;
	scrape(&f, T0 + SEC, b, 4, NULL, NULL, true);
	int nh = 0;
	for (size_t i = 0; i < f.sink.nrecs; i++) {
		if (f.sink.recs[i].type != DBI_REC_HIST)
			continue;
		struct dbi_hist_rec *h = (struct dbi_hist_rec *)(void *)f.sink.recs[i].buf;
		nh++;
		assert_int_equal(h->nbounds, 5);
		assert_true(fabs(dbi_hist_bounds(h)[0] - 0.0001) < 1e-15);
		assert_true(fabs(dbi_hist_bounds(h)[4] - 1.0) < 1e-15);
		uint64_t *c = dbi_hist_counts(h);
		assert_int_equal(c[0], 10);
		assert_int_equal(c[1], 0);
		assert_int_equal(c[2], 4);
		assert_int_equal(c[3], 0);
		assert_int_equal(c[4], 0);
		assert_int_equal(c[5], 2);
		assert_int_equal(h->count, 16);
		assert_true(fabs(h->sum - 4.0205) < 1e-12);
		assert_int_equal(h->start_ns, T0);
		assert_true(h->flags & DBI_HF_HAS_SUM);
		char buf[64];
		assert_true(dbi_test_sink_attr(&f.sink, h->series, "postgresql.database.name", buf, sizeof(buf)));
		assert_string_equal(buf, "appdb");
	}
	assert_int_equal(nh, 1);
	fx_free(&f);
}

/* ---- version maps ---- */

static void test_versions(void **state)
{
	(void)state;
	assert_int_equal(dbi_pgss_api_of("1.7"), DBI_PGSS_API_1_3);
	assert_int_equal(dbi_pgss_api_of("1.4"), DBI_PGSS_API_1_3);
	assert_int_equal(dbi_pgss_api_of("1.8"), DBI_PGSS_API_1_8);
	assert_int_equal(dbi_pgss_api_of("1.9"), DBI_PGSS_API_1_9);
	assert_int_equal(dbi_pgss_api_of("1.10"), DBI_PGSS_API_1_10);
	assert_int_equal(dbi_pgss_api_of("1.11"), DBI_PGSS_API_1_11);
	assert_int_equal(dbi_pgss_api_of("1.12"), DBI_PGSS_API_1_11);
	assert_int_equal(dbi_pgss_api_of("1.2"), DBI_PGSS_API_NONE);
	assert_int_equal(dbi_pgss_api_of(""), DBI_PGSS_API_NONE);
	assert_int_equal(dbi_pgss_api_default(120017), DBI_PGSS_API_1_3);
	assert_int_equal(dbi_pgss_api_default(130010), DBI_PGSS_API_1_8);
	assert_int_equal(dbi_pgss_api_default(140000), DBI_PGSS_API_1_9);
	assert_int_equal(dbi_pgss_api_default(150004), DBI_PGSS_API_1_10);
	assert_int_equal(dbi_pgss_api_default(160000), DBI_PGSS_API_1_10);
	assert_int_equal(dbi_pgss_api_default(170002), DBI_PGSS_API_1_11);

	const char *s12 = dbi_pgss_counters_sql(DBI_PGSS_API_1_3);
	assert_non_null(strstr(s12, "total_time AS total_exec_time"));
	assert_non_null(strstr(s12, "blk_read_time"));
	assert_null(strstr(s12, "toplevel"));
	assert_null(strstr(s12, "wal_bytes"));
	assert_null(strstr(s12, "plans"));
	assert_null(dbi_pgss_info_sql(DBI_PGSS_API_1_3));
	const char *s13 = dbi_pgss_counters_sql(DBI_PGSS_API_1_8);
	assert_non_null(strstr(s13, " total_exec_time"));
	assert_non_null(strstr(s13, "plans, total_plan_time"));
	assert_non_null(strstr(s13, "wal_bytes::int8"));
	assert_null(strstr(s13, "toplevel"));
	assert_null(dbi_pgss_info_sql(DBI_PGSS_API_1_8));
	const char *s14 = dbi_pgss_counters_sql(DBI_PGSS_API_1_9);
	assert_non_null(strstr(s14, "toplevel"));
	assert_non_null(dbi_pgss_info_sql(DBI_PGSS_API_1_9));
	assert_ptr_equal(dbi_pgss_counters_sql(DBI_PGSS_API_1_10), s14);
	const char *s17 = dbi_pgss_counters_sql(DBI_PGSS_API_1_11);
	assert_non_null(strstr(s17, "shared_blk_read_time AS blk_read_time"));
	assert_non_null(strstr(s17, "shared_blk_write_time AS blk_write_time"));
	assert_non_null(strstr(s17, "stats_since"));
	/* the SQL the module runs: only the columns of the enabled metrics */
	char sqlb[1024];
	assert_true(dbi_pgss_build_counters_sql(DBI_PGSS_API_1_10, DBI_PGSS_M_DEFAULT, false, sqlb, sizeof(sqlb)) > 0);
	assert_non_null(strstr(sqlb, "shared_blks_hit"));
	assert_non_null(strstr(sqlb, "wal_bytes::int8"));
	assert_non_null(strstr(sqlb, "min_exec_time, max_exec_time"));
	assert_null(strstr(sqlb, "local_blks_read"));
	assert_null(strstr(sqlb, "plans, total_plan_time"));
	assert_null(strstr(sqlb, "blk_read_time"));
	assert_true(dbi_pgss_build_counters_sql(DBI_PGSS_API_1_11, DBI_PGSS_M_ALL, false, sqlb, sizeof(sqlb)) > 0);
	assert_non_null(strstr(sqlb, "shared_blk_read_time AS blk_read_time"));
	assert_non_null(strstr(sqlb, "stats_since"));
	assert_true(dbi_pgss_build_counters_sql(DBI_PGSS_API_1_3, DBI_PGSS_M_ALL, false, sqlb, sizeof(sqlb)) > 0);
	assert_null(strstr(sqlb, "wal_"));
	assert_non_null(strstr(sqlb, "max_time AS max_exec_time"));
	assert_int_equal(dbi_pgss_build_counters_sql(DBI_PGSS_API_1_10, DBI_PGSS_M_ALL, false, sqlb, 20), 0);
	/* the change key from 1.9 on; the changed-only filter only there */
	assert_true(dbi_pgss_build_counters_sql(DBI_PGSS_API_1_10, DBI_PGSS_M_DEFAULT, false, sqlb, sizeof(sqlb)) > 0);
	assert_non_null(strstr(sqlb, " AS rkey"));
	assert_null(strstr(sqlb, "$1"));
	assert_true(dbi_pgss_build_counters_sql(DBI_PGSS_API_1_10, DBI_PGSS_M_DEFAULT, true, sqlb, sizeof(sqlb)) > 0);
	assert_non_null(strstr(sqlb, "rkey = ANY ($1::int8[])"));
	assert_non_null(strstr(sqlb, "dealloc <> $3::int8"));
	assert_int_equal(dbi_pgss_build_counters_sql(DBI_PGSS_API_1_8, DBI_PGSS_M_DEFAULT, true, sqlb, sizeof(sqlb)),
	                 0);
	assert_true(dbi_pgss_build_counters_sql(DBI_PGSS_API_1_8, DBI_PGSS_M_DEFAULT, false, sqlb, sizeof(sqlb)) > 0);
	assert_null(strstr(sqlb, "rkey"));
	/* every scrape reads without text */
	const enum dbi_pgss_api all[] = {DBI_PGSS_API_1_3, DBI_PGSS_API_1_8, DBI_PGSS_API_1_9, DBI_PGSS_API_1_11};
	for (size_t i = 0; i < 4; i++) {
		assert_non_null(strstr(dbi_pgss_counters_sql(all[i]), "pg_stat_statements(false)"));
		assert_null(strstr(dbi_pgss_counters_sql(all[i]), "query,"));
	}
	/* before 13: no plan or WAL series at all */
	struct fx f;
	fx_init(&f, 10, DBI_PGSS_API_1_3);
	struct dbi_pgss_row a[] = {row(5, 10, 1, 1, 1)}, b[] = {row(5, 10, 1, 2, 2)};
	scrape(&f, T0, a, 1, NULL, NULL, true);
	scrape(&f, T0 + SEC, b, 1, NULL, NULL, true);
	size_t n;
	dbi_test_sink_sum(&f.sink, "postgresql.statement.wal.bytes", NULL, NULL, &n);
	assert_int_equal(n, 0);
	dbi_test_sink_sum(&f.sink, "postgresql.statement.planning.time", NULL, NULL, &n);
	assert_int_equal(n, 0);
	char buf[16];
	assert_false(dbi_test_sink_attr(&f.sink, f.sink.pts[0].series, "postgresql.statement.toplevel", buf, 16));
	fx_free(&f);
}

/* ---- texts and samples ---- */

static bool sample_of(struct fx *f, size_t i, char *body, size_t blen, char *fp, size_t flen)
{
	struct dbi_test_rec *r = &f->sink.recs[i];
	if (r->type != DBI_REC_LOG)
		return false;
	const struct dbi_otlp_rec *o = (const struct dbi_otlp_rec *)(const void *)r->buf;
	assert_int_equal(o->resource, f->resource);
	assert_int_equal(o->scope, f->scope);
	Opentelemetry__Proto__Logs__V1__LogRecord *lr =
	        opentelemetry__proto__logs__v1__log_record__unpack(NULL, o->pb_len, dbi_otlp_rec_pb(o));
	assert_non_null(lr);
	assert_string_equal(lr->event_name, "db.query.sample");
	assert_int_equal(lr->severity_number, OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO);
	snprintf(body, blen, "%s", lr->body->string_value);
	bool has_sys = false;
	for (size_t k = 0; k < lr->n_attributes; k++) {
		const char *key = lr->attributes[k]->key, *v = lr->attributes[k]->value->string_value;
		if (!strcmp(key, "db.query.fingerprint"))
			snprintf(fp, flen, "%s", v);
		if (!strcmp(key, "db.system"))
			has_sys = !strcmp(v, "postgresql");
	}
	assert_true(has_sys);
	opentelemetry__proto__logs__v1__log_record__free_unpacked(lr, NULL);
	return true;
}

static void test_texts_and_samples(void **state)
{
	struct fx f;
	int64_t want[16];
	char body[4096], fp[32];
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	struct dbi_pgss_row a[] = {row(5, 10, 1, 1, 1), row(5, 10, 2, 1, 1), row(6, 10, 3, 1, 1), row(5, 11, 1, 1, 1)};
	scrape(&f, T0, a, 4, NULL, NULL, true);
	assert_int_equal(dbi_pgss_wanted_texts(f.s, want, 16), 0); /* baseline: nothing exported */

	struct dbi_pgss_row b[] = {row(5, 10, 1, 2, 2), row(5, 10, 2, 2, 2), row(6, 10, 3, 2, 2), row(5, 11, 1, 2, 2)};
	scrape(&f, T0 + SEC, b, 4, NULL, NULL, false);
	size_t nw = dbi_pgss_wanted_texts(f.s, want, 16);
	assert_int_equal(nw, 3); /* queryid 1 once although two users run it */
	/* 2 and 3 differ only in literals: one fingerprint, one sample */
	dbi_pgss_feed_text(f.s, 1, "SELECT * FROM accounts WHERE owner = 'alice@example.com' /* app=billing */");
	dbi_pgss_feed_text(f.s, 2, "UPDATE accounts SET balance = balance - 42.5 WHERE id = 7");
	dbi_pgss_feed_text(f.s, 3, "UPDATE accounts SET balance = balance - $1 WHERE id = $2");
	assert_int_equal(dbi_pgss_emit(f.s), DBI_OK);
	int ns = 0;
	char fps[3][32];
	for (size_t i = 0; i < f.sink.nrecs; i++) {
		if (!sample_of(&f, i, body, sizeof(body), fp, sizeof(fp)))
			continue;
		snprintf(fps[ns], 32, "%s", fp);
		ns++;
		assert_null(strstr(body, "alice@example.com"));
		assert_null(strstr(body, "42.5"));
		assert_null(strstr(body, "app=billing"));
		assert_null(strstr(body, "= 7"));
	}
	assert_int_equal(ns, 2);
	assert_string_not_equal(fps[0], fps[1]);
	/* every exported statement carries its fingerprint; 2 and 3 share one */
	char f2[32] = "", f3[32] = "";
	for (size_t i = 0; i < f.sink.npts; i++) {
		char q[32];
		if (!dbi_test_sink_attr(&f.sink, f.sink.pts[i].series, "postgresql.queryid", q, sizeof(q)) ||
		    !strcmp(q, "other"))
			continue;
		assert_true(dbi_test_sink_attr(&f.sink, f.sink.pts[i].series, "db.query.fingerprint", fp, sizeof(fp)));
		if (!strcmp(q, "2"))
			snprintf(f2, sizeof(f2), "%s", fp);
		if (!strcmp(q, "3"))
			snprintf(f3, sizeof(f3), "%s", fp);
	}
	assert_string_equal(f2, f3);
	assert_int_equal(dbi_pgss_get_stats(f.s)->samples, 2);

	/* next scrape: all queryids cached, nothing to fetch, no new sample */
	struct dbi_pgss_row c[] = {row(5, 10, 1, 3, 3), row(5, 10, 2, 3, 3), row(6, 10, 3, 3, 3), row(5, 11, 1, 3, 3)};
	scrape(&f, T0 + 2 * SEC, c, 4, NULL, NULL, false);
	assert_int_equal(dbi_pgss_wanted_texts(f.s, want, 16), 0);
	assert_int_equal(dbi_pgss_emit(f.s), DBI_OK);
	assert_int_equal(dbi_pgss_get_stats(f.s)->samples, 2);
	/* a new statement: only its text is wanted */
	struct dbi_pgss_row d[] = {row(5, 10, 1, 4, 4), row(5, 10, 2, 3, 3), row(6, 10, 3, 3, 3), row(5, 11, 1, 3, 3),
	                           row(5, 10, 9, 1, 1)};
	scrape(&f, T0 + 3 * SEC, d, 5, NULL, NULL, false);
	assert_int_equal(dbi_pgss_wanted_texts(f.s, want, 16), 1);
	assert_int_equal(want[0], 9);
	/* text gone before we fetched it: exported without a fingerprint, counted */
	assert_int_equal(dbi_pgss_emit(f.s), DBI_OK);
	assert_int_equal(dbi_pgss_get_stats(f.s)->text_missing, 1);
	assert_true(calls_of(&f, 9) == 1);
	fx_free(&f);
}

static void test_unparseable_text(void **state)
{
	struct fx f;
	char body[4096], fp[32];
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	struct dbi_pgss_row a[] = {row(5, 10, 1, 1, 1)}, b[] = {row(5, 10, 1, 2, 2)};
	scrape(&f, T0, a, 1, NULL, NULL, true);
	scrape(&f, T0 + SEC, b, 1, NULL, NULL, false);
	dbi_pgss_feed_text(f.s, 1, "SELECT * FROM t WHERE name = 'truncated secret va");
	assert_int_equal(dbi_pgss_emit(f.s), DBI_OK);
	assert_int_equal(dbi_pgss_get_stats(f.s)->parse_fallbacks, 1);
	assert_true(sample_of(&f, 0, body, sizeof(body), fp, sizeof(fp)) ||
	            sample_of(&f, f.sink.nrecs - 1, body, sizeof(body), fp, sizeof(fp)));
	assert_null(strstr(body, "secret"));
	assert_non_null(strstr(body, "SELECT * FROM t WHERE name = $1"));
	fx_free(&f);
}

static void test_steady_state_allocates_nothing(void **state)
{
	enum { N = 2000 };
	struct fx f;
	static struct dbi_pgss_row r[N];
	(void)state;
	fx_init(&f, 100, DBI_PGSS_API_1_10);
	for (int i = 0; i < N; i++)
		r[i] = row(5 + i % 2, 10, i + 1, 1, 1);
	scrape(&f, T0, r, N, NULL, NULL, true);
	for (int k = 1; k < 3; k++) {
		for (int i = 0; i < N; i++) {
			r[i].v.c[DBI_PGSS_C_CALLS] += (uint64_t)(i % 7);
			r[i].v.t[DBI_PGSS_T_EXEC] += (double)(i % 13);
		}
		scrape(&f, T0 + k * SEC, r, N, NULL, NULL, true);
	}
	uint64_t allocs = dbi_pgss_get_stats(f.s)->grow_allocs;
	f.sink.counts = true; /* the sink itself keeps nothing, so allocates nothing */
#ifdef DBI_HAVE_JEMALLOC
	uint64_t bytes0 = 0, bytes1 = 0;
	size_t sz = sizeof(uint64_t);
	assert_int_equal(mallctl("thread.allocated", &bytes0, &sz, NULL, 0), 0);
#endif
	for (int k = 3; k < 10; k++) {
		for (int i = 0; i < N; i++) {
			/* the same activity as in the warm-up: the same top-N, no statement new to it */
			r[i].v.c[DBI_PGSS_C_CALLS] += (uint64_t)(i % 7);
			r[i].v.t[DBI_PGSS_T_EXEC] += (double)(i % 13);
		}
		scrape(&f, T0 + k * SEC, r, N, NULL, NULL, true);
	}
	assert_int_equal(dbi_pgss_get_stats(f.s)->grow_allocs, allocs);
#ifdef DBI_HAVE_JEMALLOC
	/* every allocation of this thread, libraries included (registry lookups, libpq: none here) */
	assert_int_equal(mallctl("thread.allocated", &bytes1, &sz, NULL, 0), 0);
	assert_int_equal(bytes1, bytes0);
#endif
	assert_true(f.sink.counted_points > 0);
	fx_free(&f);
}

/* A statement that stays in the top-N keeps its series; only newcomers are interned. */
static void test_series_kept_across_scrapes(void **state)
{
	enum { N = 30 };
	struct fx f;
	struct dbi_pgss_row r[N];
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	for (int i = 0; i < N; i++)
		r[i] = row(5, 10, i + 1, 0, 0);
	scrape(&f, T0, r, N, NULL, NULL, true);
	/*
	 * Round k: statements [a, a + na) and [b, b + 5) are busiest. The last round puts
	 * newcomers (15..19) above incumbents (0..4) while the clock hand sits on the
	 * incumbents' slots: they must keep them.
	 */
	static const int a[] = {0, 5, 0, 5, 20, 0}, na[] = {10, 10, 10, 10, 10, 5}, b[] = {0, 0, 0, 0, 0, 15};
	static const uint64_t want[] = {10, 5, 0, 0, 10, 5};
	static const int first[] = {9, 14, 9, 14, 29, 19};
	for (size_t k = 0; k < DBI_ARRAY_LEN(a); k++) {
		for (int i = 0; i < N; i++) {
			bool hot = (i >= a[k] && i < a[k] + na[k]) || (b[k] && i >= b[k] && i < b[k] + 5);
			r[i].v.c[DBI_PGSS_C_CALLS] += 1;
			r[i].v.t[DBI_PGSS_T_EXEC] += hot ? 100.0 + i : 1.0;
		}
		uint64_t before = dbi_pgss_get_stats(f.s)->series_interns;
		scrape(&f, T0 + (k + 1) * SEC, r, N, NULL, NULL, true);
		assert_int_equal(dbi_pgss_get_stats(f.s)->series_interns - before, want[k]);
		struct dbi_pgss_top top[10];
		assert_int_equal(dbi_pgss_last_top(f.s, top, 10), 10);
		assert_int_equal(top[0].queryid, first[k] + 1); /* exec 100 + i: the highest i first */
	}
	fx_free(&f);
}

static void test_max_statements_overflow(void **state)
{
	struct fx f;
	struct dbi_errbuf err;
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	dbi_pgss_release(f.s);
	struct dbi_pgss_config c = {
	        .reg = f.reg, .resource = f.resource, .scope = f.scope, .sink = &f.sink.sink, .max_statements = 2};
	f.s = dbi_pgss_create(&c, &err);
	dbi_pgss_set_api(f.s, DBI_PGSS_API_1_10);
	struct dbi_pgss_row a[] = {row(5, 10, 1, 1, 1), row(5, 10, 2, 1, 1), row(5, 10, 3, 100, 100)};
	scrape(&f, T0, a, 3, NULL, NULL, true);
	assert_int_equal(dbi_pgss_get_stats(f.s)->overflow_rows, 1);
	/* 1 and 2 are gone, but the table only learns that after this scrape's rows */
	struct dbi_pgss_row b[] = {row(5, 10, 3, 101, 101)};
	scrape(&f, T0 + SEC, b, 1, NULL, NULL, true);
	assert_int_equal(dbi_pgss_get_stats(f.s)->overflow_rows, 2);
	/* room again: the untracked entry is NOT counted whole (we never saw its baseline) */
	struct dbi_pgss_row c2[] = {row(5, 10, 3, 103, 103)};
	scrape(&f, T0 + 2 * SEC, c2, 1, NULL, NULL, true);
	assert_true(calls_of(&f, 3) == -1);
	struct dbi_pgss_row d[] = {row(5, 10, 3, 106, 106)};
	scrape(&f, T0 + 3 * SEC, d, 1, NULL, NULL, true);
	assert_true(calls_of(&f, 3) == 3);
	fx_free(&f);
}

static void test_full_sink_counts(void **state)
{
	struct fx f;
	(void)state;
	fx_init(&f, 10, DBI_PGSS_API_1_10);
	struct dbi_pgss_row a[] = {row(5, 10, 1, 1, 1)}, b[] = {row(5, 10, 1, 2, 2)};
	scrape(&f, T0, a, 1, NULL, NULL, true);
	f.sink.full = true;
	scrape(&f, T0 + SEC, b, 1, NULL, NULL, true);
	assert_true(dbi_pgss_get_stats(f.s)->dropped_points > 0);
	assert_true(dbi_pgss_get_stats(f.s)->dropped_records > 0);
	fx_free(&f);
}

/* ---- fingerprint module ---- */

static uint64_t fp_of(const char *q, uint8_t *src)
{
	struct dbi_qfp r;
	assert_int_equal(dbi_qfp_compute(q, &r, NULL, 0, NULL), DBI_OK);
	if (src)
		*src = r.source;
	return r.fp;
}

static void test_fingerprint_stability(void **state)
{
	uint8_t src;
	(void)state;
	uint64_t a = fp_of("SELECT * FROM users WHERE id = 5 AND name = 'bob'", &src);
	assert_int_equal(src, DBI_QFP_PARSED);
	assert_true(a == fp_of("select * from users where id = 99999 and name = 'carol'", NULL));
	assert_true(a == fp_of("SELECT * FROM users WHERE id = $1 AND name = $2", NULL));
	assert_true(a == fp_of("SELECT * FROM users /* c */ WHERE id = 1 AND name = E'x\\'y'", NULL));
	assert_true(fp_of("SELECT 1 FROM t WHERE x IN (1, 2, 3)", NULL) ==
	            fp_of("SELECT 1 FROM t WHERE x IN ($1)", NULL));
	/* different shapes */
	assert_true(a != fp_of("SELECT * FROM users WHERE id = 5", NULL));
	assert_true(a != fp_of("SELECT * FROM accounts WHERE id = 5 AND name = 'bob'", NULL));
	assert_true(a != fp_of("SELECT id FROM users WHERE id = 5 AND name = 'bob'", NULL));
	assert_true(fp_of("DELETE FROM users WHERE id = 1", NULL) != fp_of("SELECT FROM users WHERE id = 1", NULL));
	/* fallback: stable under literals too, and flagged */
	uint64_t b = fp_of("SELECT * FROM t WHERE a = 'x' AND b = 'unterminated", &src);
	assert_int_equal(src, DBI_QFP_FALLBACK);
	assert_true(b == fp_of("SELECT * FROM t WHERE a = 'yy' AND b = 'also cut off here", NULL));
	assert_true(b == fp_of("select *  from t\nwhere a = 'z' and b = 'q", NULL));
	assert_true(b != fp_of("SELECT * FROM u WHERE a = 'x' AND b = 'unterminated", NULL));
	char hex[DBI_QFP_HEX_SIZE];
	dbi_qfp_hex(0x0a42922fab0bd73fULL, hex);
	assert_string_equal(hex, "0a42922fab0bd73f");
}

static void norm(const char *q, char *out, size_t cap)
{
	struct dbi_qfp r;
	assert_int_equal(dbi_qfp_compute(q, &r, out, cap, NULL), DBI_OK);
}

static void test_normalization(void **state)
{
	char out[1024];
	(void)state;
	norm("SELECT * FROM t WHERE id = 5 AND s = 'secret' AND f = 1.5e3", out, sizeof(out));
	assert_string_equal(out, "SELECT * FROM t WHERE id = $1 AND s = $2 AND f = $3");
	norm("SELECT * FROM t WHERE id = $1 AND x = 42", out, sizeof(out));
	assert_string_equal(out, "SELECT * FROM t WHERE id = $1 AND x = $2");
	/* comments go (they carry app tags, user names) */
	norm("SELECT 1 /* user=bob@example.com */ -- 'x'", out, sizeof(out));
	assert_null(strstr(out, "bob"));
	assert_null(strstr(out, "'x'"));
	/* constants the parser keeps as plain strings */
	norm("COPY t FROM '/home/alice/secret.csv'", out, sizeof(out));
	assert_null(strstr(out, "secret"));
	norm("CREATE ROLE bob PASSWORD 'hunter2'", out, sizeof(out));
	assert_null(strstr(out, "hunter2"));
	norm("SELECT $tag$ dollar secret $tag$, E'esc\\'aped secret', U&'d\\0061t secret', X'ff', B'101'", out,
	     sizeof(out));
	assert_null(strstr(out, "secret"));
	assert_null(strstr(out, "ff"));
	/* identifiers and typmods stay */
	norm("SELECT \"Weird 'Name'\" FROM t1 WHERE c::varchar(10) = 'v'", out, sizeof(out));
	assert_non_null(strstr(out, "\"Weird 'Name'\""));
	assert_non_null(strstr(out, "t1"));
	/* fallback text: numbers go too, unterminated literal runs to the end */
	norm("SELECT * FROM t WHERE id = 12345 AND n = 'cut", out, sizeof(out));
	assert_string_equal(out, "SELECT * FROM t WHERE id = $1 AND n = $2");
	/* truncation on a UTF-8 boundary */
	char small[8];
	dbi_qfp_scrub("SELECT \xc3\xa9\xc3\xa9\xc3\xa9", 13, true, small, sizeof(small), NULL, NULL);
	assert_string_equal(small, "SELECT ");
	char small10[10];
	dbi_qfp_scrub("SELECT \xc3\xa9\xc3\xa9\xc3\xa9", 13, true, small10, sizeof(small10), NULL, NULL);
	assert_string_equal(small10, "SELECT \xc3\xa9");
	bool trunc = false;
	uint64_t h1, h2;
	dbi_qfp_scrub("SELECT 'a' FROM long_table_name", 31, true, small, sizeof(small), &h1, &trunc);
	assert_true(trunc);
	dbi_qfp_scrub("SELECT 'bbb' FROM long_table_name", 33, true, NULL, 0, &h2, NULL);
	assert_true(h1 == h2); /* the hash covers the whole text, whatever the buffer */
}

static void test_hostile_text(void **state)
{
	char out[256];
	struct dbi_qfp r;
	uint64_t x = 7;
	char q[512];
	(void)state;
	static const char *const odd[] = {"",
	                                  "'",
	                                  "$",
	                                  "$$",
	                                  "$a$",
	                                  "/*",
	                                  "/* /* */",
	                                  "--",
	                                  "E'\\",
	                                  "U&'",
	                                  "\"",
	                                  "0x",
	                                  "1e",
	                                  ".5e+",
	                                  "$1$2$3",
	                                  "\xff\xfe\xc3",
	                                  "SELECT ((((((((((1",
	                                  "$99999999999999999999"};
	for (size_t i = 0; i < DBI_ARRAY_LEN(odd); i++)
		assert_int_equal(dbi_qfp_compute(odd[i], &r, out, sizeof(out), NULL), DBI_OK);
	for (int k = 0; k < 2000; k++) {
		size_t n = lcg(&x) % (sizeof(q) - 1);
		static const char alphabet[] = "'\"$-/*\\eEuU&0123.abc ()\n\xc3\xa9;=";
		for (size_t i = 0; i < n; i++)
			q[i] = alphabet[lcg(&x) % (sizeof(alphabet) - 1)];
		q[n] = '\0';
		assert_int_equal(dbi_qfp_compute(q, &r, out, sizeof(out), NULL), DBI_OK);
		assert_true(strlen(out) < sizeof(out));
	}
	assert_int_equal(dbi_qfp_compute(NULL, &r, out, sizeof(out), NULL), DBI_ERR);
}

static void test_cache_lru(void **state)
{
	(void)state;
	struct dbi_qfp_cache *c = dbi_qfp_cache_create(0); /* smallest: 256 entries */
	struct dbi_qfp_cache_stats st;
	struct dbi_qfp q = {.fp = 0, .source = DBI_QFP_PARSED}, o;
	dbi_qfp_cache_get_stats(c, &st);
	assert_int_equal(st.capacity, 256);
	for (int64_t i = 0; i < 256; i++) {
		q.fp = (uint64_t)i * 3;
		dbi_qfp_cache_put(c, 1, i, &q);
	}
	assert_true(dbi_qfp_cache_get(c, 1, 0, &o)); /* touch 0: now most recent */
	q.fp = 999;
	dbi_qfp_cache_put(c, 1, 1000, &q); /* evicts 1, the least recent */
	assert_true(dbi_qfp_cache_get(c, 1, 0, &o));
	assert_false(dbi_qfp_cache_get(c, 1, 1, &o));
	assert_true(dbi_qfp_cache_get(c, 1, 2, &o));
	assert_int_equal(o.fp, 6);
	assert_false(dbi_qfp_cache_get(c, 2, 2, &o)); /* tags are separate */
	dbi_qfp_cache_mark_sampled(c, 1, 77);
	assert_true(dbi_qfp_cache_sampled(c, 1, 77));
	assert_false(dbi_qfp_cache_sampled(c, 2, 77));
	dbi_qfp_cache_forget(c, 1);
	assert_false(dbi_qfp_cache_get(c, 1, 2, &o));
	assert_false(dbi_qfp_cache_sampled(c, 1, 77));
	dbi_qfp_cache_get_stats(c, &st);
	assert_int_equal(st.used, 0);
	assert_int_equal(st.evictions, 2); /* the sampled mark took a slot too */
	dbi_qfp_cache_release(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_baseline_then_deltas),
	        cmocka_unit_test(test_new_entry_counts_whole),
	        cmocka_unit_test(test_decrease_rebaselines),
	        cmocka_unit_test(test_eviction_and_reentry),
	        cmocka_unit_test(test_minmax_detects_recreation),
	        cmocka_unit_test(test_stats_since_pg17),
	        cmocka_unit_test(test_reset_via_info),
	        cmocka_unit_test(test_hidden_rows_go_to_other),
	        cmocka_unit_test(test_topn_and_other_sums),
	        cmocka_unit_test(test_shared_topn_pool),
	        cmocka_unit_test(test_histogram),
	        cmocka_unit_test(test_versions),
	        cmocka_unit_test(test_texts_and_samples),
	        cmocka_unit_test(test_unparseable_text),
	        cmocka_unit_test(test_steady_state_allocates_nothing),
	        cmocka_unit_test(test_series_kept_across_scrapes),
	        cmocka_unit_test(test_max_statements_overflow),
	        cmocka_unit_test(test_full_sink_counts),
	        cmocka_unit_test(test_fingerprint_stability),
	        cmocka_unit_test(test_normalization),
	        cmocka_unit_test(test_hostile_text),
	        cmocka_unit_test(test_cache_lru),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
