/*
 * test_cumulativetodelta.c — the cumulativetodelta processor driven through its own
 * callbacks: a config parsed by the real loader, a real series registry, the real
 * component descriptor, and a `next` (dbi_next_func_create) that records what comes
 * out. Covers initial_value auto/keep/drop, steady deltas, resets, start time changes,
 * late and out-of-order points, int/double/NaN/wrap, histograms per bucket, pass-through
 * of gauges, non-monotonic and delta sums, include/exclude strict and regexp, staleness
 * expiry, growth past the preallocated tables, and the DELTA twin descriptors.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifdef DBI_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/registry.h"
#include "dbi/stats.h"

#define SEC DBI_NSEC_PER_SEC
#define CAP_PTS 65536
#define CAP_RECS 256

/* What came out of the processor, copied (batches are valid only during the call). */
struct capture {
	struct dbi_point pts[CAP_PTS];
	uint32_t npts;
	_Alignas(8) uint8_t recbuf[1 << 16];
	size_t reclen;
	const struct dbi_hist_rec *recs[CAP_RECS];
	uint32_t nrecs;
	unsigned calls;
};

struct fx {
	struct dbi_config *cfg;
	struct dbi_registry *reg;
	struct dbi_stats_block blk;
	struct dbi_stats st;
	struct dbi_inst inst;
	const struct dbi_component *desc;
	void *state;
	struct dbi_next *next;
	struct capture *cap;
	struct dbi_batch b;
	struct dbi_arena arena;
	uint32_t res, scope;
};

static int capture_fn(void *arg, struct dbi_batch *b)
{
	struct capture *c = arg;
	c->calls++;
	assert_true(c->npts + b->npts <= CAP_PTS);
	memcpy(c->pts + c->npts, b->pts, b->npts * sizeof(*b->pts));
	c->npts += b->npts;
	for (uint32_t i = 0; i < b->nrecs; i++) {
		const struct dbi_rec_hdr *h = b->recs[i];
		size_t len = DBI_ALIGN_UP(h->len, 8);
		assert_true(c->reclen + len <= sizeof(c->recbuf) && c->nrecs < CAP_RECS);
		memcpy(c->recbuf + c->reclen, h, h->len);
		c->recs[c->nrecs++] = (const struct dbi_hist_rec *)(const void *)(c->recbuf + c->reclen);
		c->reclen += len;
	}
	return DBI_OK;
}

static void cap_reset(struct fx *f)
{
	f->cap->npts = f->cap->nrecs = 0;
	f->cap->reclen = 0;
}

/* Build the processor from the `processors: cumulativetodelta:` YAML body `opts`. */
static struct fx *fx_new(const char *opts)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->cap = calloc(1, sizeof(*f->cap));
	assert_non_null(f->cap);
	char yaml[2048];
	snprintf(yaml, sizeof(yaml),
	         "receivers: {loadgen: {}}\n"
	         "processors:\n"
	         "  cumulativetodelta: %s\n"
	         "exporters: {nop: {}}\n"
	         "service:\n"
	         "  pipelines:\n"
	         "    metrics: {receivers: [loadgen], processors: [cumulativetodelta], exporters: [nop]}\n",
	         opts);
	struct dbi_errbuf err = {0};
	int rc = dbi_config_load_string(yaml, "test.yaml", dbi_components, &f->cfg, &err);
	if (rc != DBI_OK)
		fprintf(stderr, "%s\n", err.msg);
	assert_int_equal(rc, DBI_OK);
	struct dbi_conf_component *cc = dbi_config_find_kind(f->cfg, DBI_PROCESSOR, "cumulativetodelta");
	assert_non_null(cc);
	f->desc = dbi_component_find("cumulativetodelta", DBI_PROCESSOR);
	assert_non_null(f->desc);
	assert_ptr_equal(cc->desc, f->desc);
	f->reg = dbi_registry_create(1000000);
	assert_non_null(f->reg);
	assert_int_equal(dbi_stats_init(&f->st, &f->blk, DBI_SK_PROCESSOR, "c2d", "cumulativetodelta", f->desc->stats),
	                 DBI_OK);
	f->inst = (struct dbi_inst){.id = "cumulativetodelta@metrics#0",
	                            .desc = f->desc,
	                            .cfg = cc->cfg,
	                            .reg = f->reg,
	                            .stats = &f->st,
	                            .pipeline = "metrics",
	                            .shard = 0,
	                            .nshards = 1};
	err = (struct dbi_errbuf){0};
	rc = f->desc->create(&f->inst, &f->state, &err);
	if (rc != DBI_OK)
		fprintf(stderr, "%s\n", err.msg);
	assert_int_equal(rc, DBI_OK);
	f->next = dbi_next_func_create(capture_fn, f->cap);
	assert_non_null(f->next);
	assert_int_equal(dbi_batch_alloc(&f->b, DBI_SIG_METRICS, 4096, CAP_RECS), DBI_OK);
	assert_int_equal(dbi_arena_init(&f->arena, 1 << 16), DBI_OK);
	f->b.arena = &f->arena;
	struct dbi_attr ra = {.key = "service.instance.id", .type = DBI_AT_STR, .v.s = "db1:5432"};
	f->res = dbi_attrs_intern(f->reg, &ra, 1);
	f->scope = dbi_scope_intern(f->reg, "test", "1");
	return f;
}

static void fx_free(struct fx *f)
{
	f->desc->destroy(f->state);
	dbi_next_func_destroy(f->next);
	dbi_batch_free(&f->b);
	dbi_arena_free(&f->arena);
	dbi_registry_destroy(f->reg);
	dbi_config_free(f->cfg);
	free(f->cap);
	free(f);
}

static uint64_t stat(struct fx *f, const char *name)
{
	int i = dbi_stats_index(&f->st, name);
	assert_true(i >= 0);
	return dbi_stats_get(&f->st, (unsigned)i);
}

static uint32_t metric(struct fx *f, const char *name, int kind, int monotonic, int temporality)
{
	struct dbi_metric_def d = {.name = name,
	                           .unit = "By",
	                           .description = "test metric",
	                           .kind = (uint8_t)kind,
	                           .monotonic = (uint8_t)monotonic,
	                           .temporality = (uint8_t)temporality};
	uint32_t id = dbi_metric_intern(f->reg, &d);
	assert_true(id > 0);
	return id;
}

static uint32_t series(struct fx *f, uint32_t m, int n)
{
	struct dbi_attr a = {.key = "n", .type = DBI_AT_INT, .v.i = n};
	uint32_t s = dbi_series_intern(f->reg, m, f->res, f->scope, dbi_attrs_intern(f->reg, &a, 1));
	assert_true(s > 0);
	return s;
}

static uint32_t counter(struct fx *f, const char *name, int n)
{
	return series(f, metric(f, name, DBI_MK_SUM, 1, DBI_TEMP_CUMULATIVE), n);
}

static struct dbi_point ipt(uint32_t sid, uint64_t start, uint64_t t, int64_t v)
{
	return (struct dbi_point){.series = sid, .start_ns = start, .time_ns = t, .v.i = v, .kind = DBI_PK_SUM};
}

static struct dbi_point dpt(uint32_t sid, uint64_t start, uint64_t t, double v)
{
	return (struct dbi_point){
	        .series = sid, .start_ns = start, .time_ns = t, .v.d = v, .flags = DBI_PF_DOUBLE, .kind = DBI_PK_SUM};
}

/* Run one batch of points through consume; returns how many came out. */
static uint32_t run(struct fx *f, const struct dbi_point *pts, uint32_t n)
{
	cap_reset(f);
	memcpy(f->b.pts, pts, n * sizeof(*pts));
	f->b.npts = n;
	f->b.nrecs = 0;
	dbi_arena_reset(&f->arena);
	assert_int_equal(f->desc->consume(f->state, &f->b, f->next), DBI_OK);
	return f->cap->npts;
}

static uint32_t run1(struct fx *f, struct dbi_point p)
{
	return run(f, &p, 1);
}

/* A time the processor's start is surely after / before. */
static uint64_t old_start(void)
{
	return dbi_wall_ns() - 3600 * SEC;
}

static void assert_twin(struct fx *f, uint32_t in, uint32_t out)
{
	assert_int_not_equal(in, out);
	const struct dbi_series *si = dbi_series_get(f->reg, in), *so = dbi_series_get(f->reg, out);
	assert_non_null(si);
	assert_non_null(so);
	assert_int_equal(si->resource, so->resource);
	assert_int_equal(si->scope, so->scope);
	assert_int_equal(si->attrs, so->attrs);
	const struct dbi_metric *mi = dbi_metric_get(f->reg, si->metric), *mo = dbi_metric_get(f->reg, so->metric);
	assert_int_equal(mi->temporality, DBI_TEMP_CUMULATIVE);
	assert_int_equal(mo->temporality, DBI_TEMP_DELTA);
	assert_string_equal(mi->name, mo->name);
	assert_string_equal(mi->unit, mo->unit);
	assert_string_equal(mi->description, mo->description);
	assert_int_equal(mi->kind, mo->kind);
	assert_int_equal(mi->monotonic, mo->monotonic);
}

/* ---- initial_value ---- */

static void test_initial_auto(void **state)
{
	(void)state;
	struct fx *f = fx_new("{}");
	uint32_t a = counter(f, "c.old", 0), b = counter(f, "c.new", 0), z = counter(f, "c.zero", 0);
	uint64_t t = dbi_wall_ns(), sa = old_start();
	/* started before the processor: its first value holds counts we never saw */
	assert_int_equal(run1(f, ipt(a, sa, t, 100)), 0);
	assert_int_equal(stat(f, "dropped.initial"), 1);
	/* started after: the whole stream is the first delta */
	uint64_t st = dbi_wall_ns() + 1;
	assert_int_equal(run1(f, ipt(b, st, t + SEC, 7)), 1);
	struct dbi_point o = f->cap->pts[0];
	assert_twin(f, b, o.series);
	assert_int_equal(o.v.i, 7);
	assert_int_equal(o.start_ns, st);
	assert_int_equal(o.time_ns, t + SEC);
	/* no start time: unknown, so dropped (OTel) */
	assert_int_equal(run1(f, ipt(z, 0, t + SEC, 3)), 0);
	assert_int_equal(stat(f, "dropped.initial"), 2);
	/* after the first, every one converts */
	assert_int_equal(run1(f, ipt(a, sa, t + SEC, 130)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 30);
	assert_int_equal(f->cap->pts[0].start_ns, t);
	assert_int_equal(stat(f, "converted"), 2);
	fx_free(f);
}

static void test_initial_keep_drop(void **state)
{
	(void)state;
	struct fx *f = fx_new("{initial_value: keep}");
	uint32_t a = counter(f, "c", 0);
	uint64_t st = old_start(), t = dbi_wall_ns();
	assert_int_equal(run1(f, ipt(a, st, t, 100)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 100);
	assert_int_equal(f->cap->pts[0].start_ns, st);
	assert_int_equal(run1(f, ipt(a, st, t + SEC, 130)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 30);
	assert_int_equal(stat(f, "dropped.initial"), 0);
	fx_free(f);

	f = fx_new("{initial_value: drop}");
	a = counter(f, "c", 0);
	st = dbi_wall_ns() + SEC; /* even a stream that started after us */
	assert_int_equal(run1(f, ipt(a, st, st + SEC, 5)), 0);
	assert_int_equal(stat(f, "dropped.initial"), 1);
	assert_int_equal(run1(f, ipt(a, st, st + 2 * SEC, 9)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 4);
	fx_free(f);
}

/* ---- steady state ---- */

static void test_steady_deltas(void **state)
{
	(void)state;
	struct fx *f = fx_new("{initial_value: drop}");
	uint32_t a = counter(f, "c.a", 0), b = counter(f, "c.b", 1);
	uint64_t st = old_start(), t = dbi_wall_ns();
	/* two series interleaved in one batch: each keeps its own baseline */
	struct dbi_point in[] = {
	        ipt(a, st, t, 10),
	        ipt(b, st, t, 1000),
	        ipt(a, st, t + SEC, 15),
	        ipt(b, st, t + SEC, 1001),
	        ipt(a, st, t + 2 * SEC, 15),
	        ipt(a, st, t + 3 * SEC, 40),
	        ipt(b, st, t + 3 * SEC, 1100),
	};
	assert_int_equal(run(f, in, DBI_ARRAY_LEN(in)), 5);
	struct dbi_point *o = f->cap->pts;
	int64_t want[] = {5, 1, 0, 25, 99};
	uint64_t want_start[] = {t, t, t + SEC, t + 2 * SEC, t + SEC};
	uint64_t want_time[] = {t + SEC, t + SEC, t + 2 * SEC, t + 3 * SEC, t + 3 * SEC};
	uint32_t want_in[] = {a, b, a, a, b};
	for (int i = 0; i < 5; i++) {
		assert_int_equal(o[i].v.i, want[i]);
		assert_int_equal(o[i].start_ns, want_start[i]);
		assert_int_equal(o[i].time_ns, want_time[i]);
		assert_false(o[i].flags & DBI_PF_DOUBLE);
		assert_twin(f, want_in[i], o[i].series);
	}
	assert_int_equal(o[0].series, o[2].series);
	assert_int_not_equal(o[0].series, o[1].series);
	assert_int_equal(stat(f, "converted"), 5);
	assert_int_equal(stat(f, "dropped.initial"), 2);
	assert_int_equal(stat(f, "series_tracked"), 2);
	fx_free(f);
}

static void test_doubles_nan_wrap(void **state)
{
	(void)state;
	struct fx *f = fx_new("{initial_value: drop}");
	uint32_t d = counter(f, "c.d", 0), w = counter(f, "c.w", 0);
	uint64_t st = old_start(), t = dbi_wall_ns();
	assert_int_equal(run1(f, dpt(d, st, t, 1.5)), 0);
	assert_int_equal(run1(f, dpt(d, st, t + SEC, 4.0)), 1);
	assert_true(f->cap->pts[0].flags & DBI_PF_DOUBLE);
	assert_true(f->cap->pts[0].v.d == 2.5);
	/* NaN: passed on (on the delta twin) without touching the baseline */
	assert_int_equal(run1(f, dpt(d, st, t + 2 * SEC, NAN)), 1);
	assert_true(isnan(f->cap->pts[0].v.d));
	assert_twin(f, d, f->cap->pts[0].series);
	assert_int_equal(stat(f, "passed_through"), 1);
	assert_int_equal(run1(f, dpt(d, st, t + 3 * SEC, 5.0)), 1);
	assert_true(f->cap->pts[0].v.d == 1.0);
	assert_int_equal(f->cap->pts[0].start_ns, t + SEC);
	/* an int point after doubles: computed as double */
	assert_int_equal(run1(f, ipt(d, st, t + 4 * SEC, 7)), 1);
	assert_true(f->cap->pts[0].flags & DBI_PF_DOUBLE);
	assert_true(f->cap->pts[0].v.d == 2.0);
	/* no-value marker: passed on, baseline untouched */
	struct dbi_point nv = ipt(d, st, t + 5 * SEC, 0);
	nv.flags = DBI_PF_NOVALUE;
	assert_int_equal(run1(f, nv), 1);
	assert_int_equal(run1(f, ipt(d, st, t + 6 * SEC, 10)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 3);
	assert_int_equal(f->cap->pts[0].start_ns, t + 4 * SEC);

	/* a counter that wraps (int64 overflow to negative) is a reset */
	assert_int_equal(run1(f, ipt(w, st, t, INT64_MAX - 5)), 0);
	assert_int_equal(run1(f, ipt(w, st, t + SEC, INT64_MAX)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 5);
	assert_int_equal(run1(f, ipt(w, st, t + 2 * SEC, INT64_MIN + 3)), 0);
	assert_int_equal(stat(f, "dropped.reset"), 1);
	assert_int_equal(run1(f, ipt(w, st, t + 3 * SEC, INT64_MIN + 10)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 7);
	/* a difference too large for int64 is not a delta either */
	assert_int_equal(run1(f, ipt(w, st, t + 4 * SEC, INT64_MAX)), 0);
	assert_int_equal(stat(f, "dropped.reset"), 2);
	fx_free(f);
}

/* ---- resets and streams ---- */

static void test_reset(void **state)
{
	(void)state;
	struct fx *f = fx_new("{}");
	uint32_t a = counter(f, "c", 0);
	uint64_t st = old_start(), t = dbi_wall_ns();
	struct dbi_point in[] = {ipt(a, st, t, 10), ipt(a, st, t + SEC, 20), ipt(a, st, t + 2 * SEC, 5),
	                         ipt(a, st, t + 3 * SEC, 8)};
	assert_int_equal(run(f, in, 4), 2);
	assert_int_equal(f->cap->pts[0].v.i, 10);
	/* 5 was dropped and is the new baseline */
	assert_int_equal(f->cap->pts[1].v.i, 3);
	assert_int_equal(f->cap->pts[1].start_ns, t + 2 * SEC);
	assert_int_equal(stat(f, "dropped.reset"), 1);
	fx_free(f);

	/* keep: the value after a reset is all new counts */
	f = fx_new("{initial_value: keep}");
	a = counter(f, "c", 0);
	assert_int_equal(run(f, in, 4), 4);
	assert_int_equal(f->cap->pts[2].v.i, 5);
	assert_int_equal(f->cap->pts[2].start_ns, t + SEC);
	assert_int_equal(f->cap->pts[3].v.i, 3);
	assert_int_equal(stat(f, "dropped.reset"), 0);
	fx_free(f);
}

static void test_start_time_change(void **state)
{
	(void)state;
	struct fx *f = fx_new("{}");
	uint32_t a = counter(f, "c", 0);
	uint64_t s1 = old_start(), t = dbi_wall_ns() + 10 * SEC;
	assert_int_equal(run1(f, ipt(a, s1, t, 100)), 0);
	assert_int_equal(run1(f, ipt(a, s1, t + SEC, 110)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 10);
	/* the server restarted: a new stream that began while we were watching (auto keeps it),
	 * even though its value (3) is far below the old stream's */
	uint64_t s2 = t + SEC + 1;
	assert_int_equal(run1(f, ipt(a, s2, t + 2 * SEC, 3)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 3);
	assert_int_equal(f->cap->pts[0].start_ns, s2);
	assert_int_equal(stat(f, "dropped.reset"), 0);
	/* a new stream with a higher value is a new stream too, not a delta of 5000 - 3 */
	uint64_t s3 = t + 2 * SEC + 1;
	assert_int_equal(run1(f, ipt(a, s3, t + 3 * SEC, 5000)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 5000);
	assert_int_equal(run1(f, ipt(a, s3, t + 4 * SEC, 5004)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 4);
	assert_int_equal(f->cap->pts[0].start_ns, t + 3 * SEC);
	/* a late point of an older stream does not disturb the current one */
	assert_int_equal(run1(f, ipt(a, s2, t + 5 * SEC, 50)), 0);
	assert_int_equal(stat(f, "dropped.stale_start"), 1);
	/* nor does a point older than the last one */
	assert_int_equal(run1(f, ipt(a, s3, t + 3 * SEC, 5001)), 0);
	assert_int_equal(stat(f, "dropped.out_of_order"), 1);
	/* one at the same time still counts (a producer stamping a burst with one time) */
	assert_int_equal(run1(f, ipt(a, s3, t + 4 * SEC, 5006)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 2);
	assert_int_equal(f->cap->pts[0].start_ns, t + 4 * SEC);
	assert_int_equal(run1(f, ipt(a, s3, t + 6 * SEC, 5010)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 4);
	assert_int_equal(f->cap->pts[0].start_ns, t + 4 * SEC);
	assert_int_equal(stat(f, "dropped.out_of_order"), 1);
	fx_free(f);
}

/* ---- pass-through ---- */

static void test_passthrough(void **state)
{
	(void)state;
	struct fx *f = fx_new("{initial_value: keep}");
	uint32_t g = series(f, metric(f, "g", DBI_MK_GAUGE, 0, DBI_TEMP_UNSPECIFIED), 0);
	uint32_t nm = series(f, metric(f, "nm", DBI_MK_SUM, 0, DBI_TEMP_CUMULATIVE), 0);
	uint32_t dl = series(f, metric(f, "dl", DBI_MK_SUM, 1, DBI_TEMP_DELTA), 0);
	uint64_t t = dbi_wall_ns();
	struct dbi_point gp = {.series = g, .time_ns = t, .v.i = 50, .kind = DBI_PK_GAUGE};
	struct dbi_point gp2 = gp;
	gp2.time_ns = t + SEC;
	gp2.v.i = 20;
	struct dbi_point in[] = {gp,  ipt(nm, 1, t, 10),      ipt(dl, 1, t, 4),
	                         gp2, ipt(nm, 1, t + SEC, 3), ipt(dl, 1, t + SEC, 2)};
	assert_int_equal(run(f, in, DBI_ARRAY_LEN(in)), DBI_ARRAY_LEN(in));
	assert_memory_equal(f->cap->pts, in, sizeof(in)); /* untouched, bit for bit */
	assert_int_equal(stat(f, "passed_through"), DBI_ARRAY_LEN(in));
	assert_int_equal(stat(f, "converted"), 0);
	assert_int_equal(stat(f, "series_tracked"), 0);
	/* a point whose series is not in the registry is not ours to judge */
	assert_int_equal(run1(f, ipt(999999, 1, t, 1)), 1);
	assert_int_equal(f->cap->pts[0].series, 999999);
	fx_free(f);
}

/* ---- include / exclude ---- */

static int converts(struct fx *f, uint32_t sid)
{
	uint64_t t = dbi_wall_ns();
	run1(f, ipt(sid, 1, t, 1));
	return f->cap->npts == 1 && f->cap->pts[0].series != sid;
}

static void test_filters_strict(void **state)
{
	(void)state;
	struct fx *f = fx_new("{initial_value: keep, include: {metrics: [pg.a, pg.b], match_type: strict},"
	                      " exclude: {metrics: [pg.b]}}");
	assert_true(converts(f, counter(f, "pg.a", 0)));
	assert_false(converts(f, counter(f, "pg.b", 0)));   /* excluded wins */
	assert_false(converts(f, counter(f, "pg.c", 0)));   /* not included */
	assert_false(converts(f, counter(f, "pg.a.x", 0))); /* strict is whole-name */
	assert_true(converts(f, counter(f, "pg.a", 1)));    /* verdict is per metric, cached */
	fx_free(f);

	f = fx_new("{initial_value: keep, exclude: {metrics: [x]}}"); /* no include: everything */
	assert_true(converts(f, counter(f, "y", 0)));
	assert_false(converts(f, counter(f, "x", 0)));
	fx_free(f);
}

static void test_filters_regexp(void **state)
{
	(void)state;
	struct fx *f = fx_new("{initial_value: keep, include: {metrics: ['^postgresql\\.', 'pgbouncer'], "
	                      "match_type: regexp}, exclude: {metrics: ['\\.(blocks|io)\\.'], match_type: regexp}}");
	assert_true(converts(f, counter(f, "postgresql.commits", 0)));
	assert_true(converts(f, counter(f, "my.pgbouncer.clients", 0))); /* unanchored */
	assert_false(converts(f, counter(f, "xpostgresql.commits", 0)));
	assert_false(converts(f, counter(f, "postgresql.blocks.read", 0)));
	assert_false(converts(f, counter(f, "postgresql.io.read", 0)));
	assert_true(converts(f, counter(f, "postgresql.iox.read", 0)));
	fx_free(f);
}

static void test_filters_bad_regexp(void **state)
{
	(void)state;
	struct dbi_config *cfg = NULL;
	struct dbi_errbuf err = {0};
	const char *yaml = "receivers: {loadgen: {}}\n"
	                   "processors: {cumulativetodelta: {include: {match_type: regexp, metrics: ['ok', 'a(b']}}}\n"
	                   "exporters: {nop: {}}\n"
	                   "service: {pipelines: {metrics: {receivers: [loadgen], processors: [cumulativetodelta], "
	                   "exporters: [nop]}}}\n";
	assert_int_equal(dbi_config_load_string(yaml, "bad.yaml", dbi_components, &cfg, &err), DBI_ERR);
	assert_non_null(strstr(err.msg, "include.metrics[1]"));
	assert_non_null(strstr(err.msg, "a(b"));
	/* the same text is fine as a strict name */
	err = (struct dbi_errbuf){0};
	const char *ok = "receivers: {loadgen: {}}\n"
	                 "processors: {cumulativetodelta: {include: {metrics: ['a(b']}}}\n"
	                 "exporters: {nop: {}}\n"
	                 "service: {pipelines: {metrics: {receivers: [loadgen], processors: [cumulativetodelta], "
	                 "exporters: [nop]}}}\n";
	assert_int_equal(dbi_config_load_string(ok, "ok.yaml", dbi_components, &cfg, &err), DBI_OK);
	dbi_config_free(cfg);
}

/* ---- histograms ---- */

static const double BOUNDS[] = {1, 5, 10};

/* A cumulative histogram record in buf: bounds BOUNDS (first nb of them), counts as given. */
static struct dbi_hist_rec *hist(void *buf, uint32_t sid, uint64_t start, uint64_t t, unsigned nb,
                                 const uint64_t *counts, double sum)
{
	struct dbi_hist_rec *r = buf;
	memset(r, 0, dbi_hist_rec_size(nb));
	r->h.type = DBI_REC_HIST;
	r->h.len = (uint32_t)dbi_hist_rec_size(nb);
	r->series = sid;
	r->start_ns = start;
	r->time_ns = t;
	r->nbounds = (uint16_t)nb;
	r->flags = DBI_HF_HAS_SUM | DBI_HF_HAS_MINMAX;
	r->sum = sum;
	r->min = 0.5;
	r->max = 42;
	memcpy(dbi_hist_bounds(r), BOUNDS, nb * sizeof(double));
	for (unsigned i = 0; i <= nb; i++) {
		dbi_hist_counts(r)[i] = counts[i];
		r->count += counts[i];
	}
	return r;
}

static uint32_t run_recs(struct fx *f, struct dbi_hist_rec **recs, uint32_t n)
{
	cap_reset(f);
	f->b.npts = 0;
	for (uint32_t i = 0; i < n; i++)
		f->b.recs[i] = &recs[i]->h;
	f->b.nrecs = n;
	dbi_arena_reset(&f->arena);
	assert_int_equal(f->desc->consume(f->state, &f->b, f->next), DBI_OK);
	return f->cap->nrecs;
}

static void test_histograms(void **state)
{
	(void)state;
	struct fx *f = fx_new("{}");
	uint32_t h = series(f, metric(f, "h", DBI_MK_HISTOGRAM, 0, DBI_TEMP_CUMULATIVE), 0);
	uint64_t st = old_start(), t = dbi_wall_ns();
	_Alignas(8) uint8_t b1[256], b2[256], b3[256], b4[256], b5[256], keep2[256];
	struct dbi_hist_rec *r[] = {
	        hist(b1, h, st, t, 3, (const uint64_t[]){1, 2, 3, 4}, 50.0),
	        hist(b2, h, st, t + SEC, 3, (const uint64_t[]){2, 2, 5, 4}, 60.5),
	};
	memcpy(keep2, b2, r[1]->h.len);
	assert_int_equal(run_recs(f, r, 2), 1);
	assert_int_equal(stat(f, "dropped.initial"), 1);
	/* the input record is never modified */
	assert_memory_equal(keep2, b2, r[1]->h.len);
	struct dbi_hist_rec *o = (struct dbi_hist_rec *)(uintptr_t)f->cap->recs[0];
	assert_twin(f, h, o->series);
	assert_int_equal(o->nbounds, 3);
	assert_memory_equal(dbi_hist_bounds(o), BOUNDS, sizeof(BOUNDS));
	uint64_t want[] = {1, 0, 2, 0};
	assert_memory_equal(dbi_hist_counts(o), want, sizeof(want));
	assert_int_equal(o->count, 3);
	assert_true(o->flags & DBI_HF_HAS_SUM);
	assert_true(o->sum == 10.5);
	assert_false(o->flags & DBI_HF_HAS_MINMAX); /* cumulative min/max say nothing of the interval */
	assert_int_equal(o->start_ns, t);
	assert_int_equal(o->time_ns, t + SEC);
	assert_int_equal(o->h.type, DBI_REC_HIST);

	/* a bucket going down (count still up) is a reset: dropped, new baseline */
	struct dbi_hist_rec *r3 = hist(b3, h, st, t + 2 * SEC, 3, (const uint64_t[]){3, 3, 4, 4}, 70);
	assert_int_equal(run_recs(f, &r3, 1), 0);
	assert_int_equal(stat(f, "dropped.reset"), 1);
	struct dbi_hist_rec *r4 = hist(b4, h, st, t + 3 * SEC, 3, (const uint64_t[]){3, 4, 4, 6}, 75);
	assert_int_equal(run_recs(f, &r4, 1), 1);
	o = (struct dbi_hist_rec *)(uintptr_t)f->cap->recs[0];
	uint64_t want2[] = {0, 1, 0, 2};
	assert_memory_equal(dbi_hist_counts(o), want2, sizeof(want2));
	assert_int_equal(o->count, 3);
	assert_true(o->sum == 5);
	assert_int_equal(o->start_ns, t + 2 * SEC);
	/* other bounds: a reset too */
	struct dbi_hist_rec *r5 = hist(b5, h, st, t + 4 * SEC, 2, (const uint64_t[]){9, 9, 9}, 80);
	assert_int_equal(run_recs(f, &r5, 1), 0);
	assert_int_equal(stat(f, "dropped.reset"), 2);
	r5 = hist(b5, h, st, t + 5 * SEC, 2, (const uint64_t[]){10, 9, 12}, 90);
	assert_int_equal(run_recs(f, &r5, 1), 1);
	o = (struct dbi_hist_rec *)(uintptr_t)f->cap->recs[0];
	assert_int_equal(o->nbounds, 2);
	uint64_t want3[] = {1, 0, 3};
	assert_memory_equal(dbi_hist_counts(o), want3, sizeof(want3));
	/* total count going down is a reset */
	r5 = hist(b5, h, st, t + 6 * SEC, 2, (const uint64_t[]){1, 1, 1}, 1);
	assert_int_equal(run_recs(f, &r5, 1), 0);
	assert_int_equal(stat(f, "dropped.reset"), 3);
	/* a NaN sum: the delta has no sum, the old sum stays the baseline */
	r5 = hist(b5, h, st, t + 7 * SEC, 2, (const uint64_t[]){2, 1, 1}, NAN);
	assert_int_equal(run_recs(f, &r5, 1), 1);
	o = (struct dbi_hist_rec *)(uintptr_t)f->cap->recs[0];
	assert_false(o->flags & DBI_HF_HAS_SUM);
	assert_int_equal(o->count, 1);
	r5 = hist(b5, h, st, t + 8 * SEC, 2, (const uint64_t[]){3, 1, 1}, 4);
	assert_int_equal(run_recs(f, &r5, 1), 1);
	o = (struct dbi_hist_rec *)(uintptr_t)f->cap->recs[0];
	assert_true(o->flags & DBI_HF_HAS_SUM);
	assert_true(o->sum == 3);
	assert_int_equal(stat(f, "converted"), 5);
	fx_free(f);
}

static void test_histogram_first_keep_and_passthrough(void **state)
{
	(void)state;
	struct fx *f = fx_new("{initial_value: keep}");
	uint32_t h = series(f, metric(f, "h", DBI_MK_HISTOGRAM, 0, DBI_TEMP_CUMULATIVE), 0);
	uint32_t hd = series(f, metric(f, "hd", DBI_MK_HISTOGRAM, 0, DBI_TEMP_DELTA), 0);
	uint64_t st = old_start(), t = dbi_wall_ns();
	_Alignas(8) uint8_t b1[256], b2[256], b3[64];
	struct dbi_hist_rec *r[] = {
	        hist(b1, h, st, t, 3, (const uint64_t[]){1, 2, 3, 4}, 50.0),
	        hist(b2, hd, st, t, 3, (const uint64_t[]){1, 2, 3, 4}, 50.0),
	};
	/* a log record in a metrics batch is passed on as it is, too */
	struct dbi_rec_hdr *other = (struct dbi_rec_hdr *)(void *)b3;
	memset(b3, 0, sizeof(b3));
	other->type = DBI_REC_SUMMARY;
	other->len = sizeof(b3);
	cap_reset(f);
	f->b.npts = 0;
	f->b.recs[0] = &r[0]->h;
	f->b.recs[1] = &r[1]->h;
	f->b.recs[2] = other;
	f->b.nrecs = 3;
	dbi_arena_reset(&f->arena);
	assert_int_equal(f->desc->consume(f->state, &f->b, f->next), DBI_OK);
	assert_int_equal(f->cap->nrecs, 3);
	const struct dbi_hist_rec *o = f->cap->recs[0];
	assert_twin(f, h, o->series);
	assert_int_equal(o->count, 10);
	assert_true(o->flags & DBI_HF_HAS_MINMAX); /* the first delta is the whole stream */
	assert_int_equal(o->start_ns, st);
	assert_memory_equal(f->cap->recs[1], b2, r[1]->h.len);
	assert_memory_equal(f->cap->recs[2], b3, sizeof(b3));
	assert_int_equal(stat(f, "passed_through"), 2);
	/* arena full: the histogram is held back and its counts go into the next delta */
	struct dbi_arena tiny;
	assert_int_equal(dbi_arena_init(&tiny, 16), DBI_OK);
	r[0] = hist(b1, h, st, t + SEC, 3, (const uint64_t[]){2, 2, 3, 4}, 51);
	cap_reset(f);
	f->b.recs[0] = &r[0]->h;
	f->b.nrecs = 1;
	f->b.arena = &tiny;
	assert_int_equal(f->desc->consume(f->state, &f->b, f->next), DBI_OK);
	assert_int_equal(f->cap->nrecs, 0);
	assert_int_equal(stat(f, "dropped.arena_full"), 1);
	f->b.arena = &f->arena;
	dbi_arena_free(&tiny);
	r[0] = hist(b1, h, st, t + 2 * SEC, 3, (const uint64_t[]){3, 2, 3, 5}, 55);
	assert_int_equal(run_recs(f, r, 1), 1);
	o = f->cap->recs[0];
	assert_int_equal(o->count, 3); /* 13 - 10: the held-back point's counts are in it */
	uint64_t want[] = {2, 0, 0, 1};
	assert_memory_equal(dbi_hist_counts((struct dbi_hist_rec *)(uintptr_t)o), want, sizeof(want));
	assert_int_equal(o->start_ns, t);
	fx_free(f);
}

/* ---- staleness and growth ---- */

static void test_staleness(void **state)
{
	(void)state;
	struct fx *f = fx_new("{initial_value: drop, max_staleness: 1s}");
	enum { N = 3000 };
	static struct dbi_point in[N];
	uint32_t ids[N];
	uint32_t m = metric(f, "c", DBI_MK_SUM, 1, DBI_TEMP_CUMULATIVE);
	uint64_t st = old_start(), t = dbi_wall_ns();
	for (int i = 0; i < N; i++) {
		ids[i] = series(f, m, i);
		in[i] = ipt(ids[i], st, t, i);
	}
	assert_int_equal(run(f, in, N), 0);
	uint64_t after = dbi_mono_ns(); /* the batch was seen at or before this */
	assert_int_equal(stat(f, "series_tracked"), N);
	/* before max_staleness has passed, ticks forget nothing */
	uint64_t next = 0;
	for (int k = 0; k < 50; k++)
		next = f->desc->tick(f->state, after + SEC / 2, f->next);
	assert_true(next > after + SEC / 2 && next <= after + SEC);
	assert_int_equal(stat(f, "series_expired"), 0);
	/* series 0 stays busy (seen at or after mid); the others go quiet */
	dbi_sleep_ns(DBI_NSEC_PER_MSEC);
	uint64_t mid = dbi_mono_ns();
	assert_true(mid > after);
	assert_int_equal(run1(f, ipt(ids[0], st, t + SEC, 10)), 1);
	uint64_t later = mid + SEC; /* past max_staleness for the quiet ones only */
	/* one tick looks at a slice, not at everything */
	f->desc->tick(f->state, later, f->next);
	uint64_t first = stat(f, "series_expired");
	assert_true(first > 0 && first < N - 1);
	for (int k = 0; k < 100 && stat(f, "series_expired") < N - 1; k++)
		f->desc->tick(f->state, later, f->next);
	assert_int_equal(stat(f, "series_expired"), N - 1);
	assert_int_equal(stat(f, "series_tracked"), 1);
	/* a forgotten series starts over: its next point is a first point again */
	uint64_t dropped = stat(f, "dropped.initial");
	assert_int_equal(run1(f, ipt(ids[5], st, t + 2 * SEC, 100)), 0);
	assert_int_equal(stat(f, "dropped.initial"), dropped + 1);
	assert_int_equal(run1(f, ipt(ids[5], st, t + 3 * SEC, 104)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 4);
	/* the busy one kept its baseline */
	assert_int_equal(run1(f, ipt(ids[0], st, t + 3 * SEC, 15)), 1);
	assert_int_equal(f->cap->pts[0].v.i, 5);
	assert_int_equal(stat(f, "series_tracked"), 2);
	fx_free(f);
}

static void test_growth(void **state)
{
	(void)state;
	/* the processor is created before these series exist: its tables must grow */
	struct fx *f = fx_new("{initial_value: drop}");
	enum { N = 20000 };
	static struct dbi_point in[4096];
	static uint32_t ids[N];
	uint32_t m = metric(f, "c", DBI_MK_SUM, 1, DBI_TEMP_CUMULATIVE);
	uint64_t st = old_start(), t = dbi_wall_ns();
	for (int i = 0; i < N; i++)
		ids[i] = series(f, m, i);
	uint64_t out = 0;
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i += 4096) {
			int n = DBI_MIN(4096, N - i);
			for (int k = 0; k < n; k++)
				in[k] = ipt(ids[i + k], st, t + (uint64_t)round * SEC, (round + 1) * (i + k));
			out += run(f, in, (uint32_t)n);
			for (uint32_t k = 0; k < f->cap->npts; k++)
				assert_int_equal(f->cap->pts[k].v.i, i + (int)k);
		}
	}
	assert_int_equal(out, 2 * N);
	assert_int_equal(stat(f, "series_tracked"), N);
	assert_int_equal(stat(f, "converted"), 2 * N);
	fx_free(f);
}

/* Bytes this thread has allocated so far (jemalloc), or 0 when unknown. */
static uint64_t thread_allocated(void)
{
#ifdef DBI_HAVE_JEMALLOC
	uint64_t v = 0;
	size_t sz = sizeof(v);
	if (mallctl("thread.allocated", &v, &sz, NULL, 0) == 0)
		return v;
#endif
	return 0;
}

static void test_steady_state_allocates_nothing(void **state)
{
	(void)state;
	if (thread_allocated() == 0) {
		skip(); /* sanitizer builds have no jemalloc to ask */
		return;
	}
	struct fx *f = fx_new("{max_staleness: 1m}");
	enum { N = 2000, H = 50 };
	static struct dbi_point in[N];
	static _Alignas(8) uint8_t hb[H][256];
	struct dbi_hist_rec *hr[H];
	uint32_t m = metric(f, "c", DBI_MK_SUM, 1, DBI_TEMP_CUMULATIVE);
	uint32_t g = metric(f, "g", DBI_MK_GAUGE, 0, DBI_TEMP_UNSPECIFIED);
	uint32_t hm = metric(f, "h", DBI_MK_HISTOGRAM, 0, DBI_TEMP_CUMULATIVE);
	uint32_t ids[N], hids[H];
	for (int i = 0; i < N; i++)
		ids[i] = series(f, i % 4 ? m : g, i);
	for (int i = 0; i < H; i++)
		hids[i] = series(f, hm, i);
	uint64_t st = old_start(), t = dbi_wall_ns(), before = 0;
	for (int round = 0; round < 20; round++) {
		if (round == 2) /* every series has its twin, slot and baseline by now */
			before = thread_allocated();
		for (int i = 0; i < N; i++)
			in[i] = ipt(ids[i], st, t + (uint64_t)round * SEC, (int64_t)round * i);
		for (int i = 0; i < H; i++) {
			uint64_t k = (uint64_t)round;
			hr[i] = hist(hb[i], hids[i], st, t + k * SEC, 3, (const uint64_t[]){k, 2 * k, k, k}, (double)k);
		}
		for (int i = 0; i < N; i += 512)
			run(f, in + i, (uint32_t)DBI_MIN(512, N - i));
		run_recs(f, hr, H);
		f->desc->tick(f->state, dbi_mono_ns(), f->next);
	}
	assert_int_equal(thread_allocated(), before);
	assert_int_equal(stat(f, "converted"), 19 * (N - N / 4) + 19 * H);
	fx_free(f);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_initial_auto),
	        cmocka_unit_test(test_initial_keep_drop),
	        cmocka_unit_test(test_steady_deltas),
	        cmocka_unit_test(test_doubles_nan_wrap),
	        cmocka_unit_test(test_reset),
	        cmocka_unit_test(test_start_time_change),
	        cmocka_unit_test(test_passthrough),
	        cmocka_unit_test(test_filters_strict),
	        cmocka_unit_test(test_filters_regexp),
	        cmocka_unit_test(test_filters_bad_regexp),
	        cmocka_unit_test(test_histograms),
	        cmocka_unit_test(test_histogram_first_keep_and_passthrough),
	        cmocka_unit_test(test_staleness),
	        cmocka_unit_test(test_growth),
	        cmocka_unit_test(test_steady_state_allocates_nothing),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
