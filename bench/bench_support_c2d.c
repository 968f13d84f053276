/*
 * bench_support_c2d.c — the C side of the cumulativetodelta benchmark (see
 * bench_support_c2d.h). The processor is built exactly as the runtime builds it (config
 * from YAML through the real loader, a real registry, the registered descriptor); the
 * batch is refilled before every consume, as a processor thread refills its burst.
 */
#include "bench_support_c2d.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/registry.h"
#include "dbi/stats.h"

#define PTS_BATCH 512 /* the runtime's point burst */
#define REC_BATCH 256 /* and record burst */
#define HIST_BOUNDS 10

struct dbi_bench_c2d {
	enum dbi_bench_c2d_kind kind;
	struct dbi_config *cfg;
	struct dbi_registry *reg;
	struct dbi_stats_block blk;
	struct dbi_stats st;
	struct dbi_inst inst;
	const struct dbi_component *desc;
	void *state;
	struct dbi_next *next;
	struct dbi_batch b;
	struct dbi_arena arena;
	uint32_t nseries, cursor;
	uint32_t *ids;
	int64_t *values;
	struct dbi_hist_rec **hists; /* one cumulative record per series, advanced in place */
	uint64_t start_ns, time_ns;
	uint64_t out;
};

static int sink(void *arg, struct dbi_batch *b)
{
	struct dbi_bench_c2d *c = arg;
	c->out += b->npts + b->nrecs;
	return DBI_OK;
}

static struct dbi_hist_rec *hist_new(uint32_t sid, uint64_t start)
{
	size_t len = dbi_hist_rec_size(HIST_BOUNDS);
	struct dbi_hist_rec *r = calloc(1, len);
	if (!r)
		return NULL;
	r->h.type = DBI_REC_HIST;
	r->h.len = (uint32_t)len;
	r->series = sid;
	r->start_ns = start;
	r->nbounds = HIST_BOUNDS;
	r->flags = DBI_HF_HAS_SUM;
	for (unsigned i = 0; i < HIST_BOUNDS; i++)
		dbi_hist_bounds(r)[i] = (double)(1u << i);
	return r;
}

/* Refill the batch with the next round-robin slice of series, each one step further. */
static void fill(struct dbi_bench_c2d *c)
{
	struct dbi_batch *b = &c->b;
	dbi_arena_reset(&c->arena);
	if (c->kind == DBI_BENCH_C2D_HIST) {
		b->npts = 0;
		for (uint32_t i = 0; i < REC_BATCH; i++) {
			uint32_t k = c->cursor;
			struct dbi_hist_rec *r = c->hists[k];
			r->time_ns = c->time_ns;
			r->count++;
			r->sum += 3.5;
			dbi_hist_counts(r)[r->count % (HIST_BOUNDS + 1)]++;
			b->recs[i] = &r->h;
			if (++c->cursor == c->nseries) {
				c->cursor = 0;
				c->time_ns += 1000;
			}
		}
		b->nrecs = REC_BATCH;
		return;
	}
	b->nrecs = 0;
	for (uint32_t i = 0; i < PTS_BATCH; i++) {
		uint32_t k = c->cursor;
		struct dbi_point *p = &b->pts[i];
		p->series = c->ids[k];
		p->start_ns = c->start_ns;
		p->time_ns = c->time_ns;
		p->v.i = ++c->values[k];
		p->flags = 0;
		p->kind = c->kind == DBI_BENCH_C2D_GAUGE ? DBI_PK_GAUGE : DBI_PK_SUM;
		if (++c->cursor == c->nseries) {
			c->cursor = 0;
			c->time_ns += 1000;
		}
	}
	b->npts = PTS_BATCH;
}

uint32_t dbi_bench_c2d_batch_items(const struct dbi_bench_c2d *c)
{
	return c->kind == DBI_BENCH_C2D_HIST ? REC_BATCH : PTS_BATCH;
}

static uint64_t run_batches(struct dbi_bench_c2d *c, uint32_t nbatches)
{
	uint64_t before = c->out;
	for (uint32_t i = 0; i < nbatches; i++) {
		fill(c);
		c->desc->consume(c->state, &c->b, c->next);
	}
	return c->out - before;
}

/* Measured runs only: under callgrind, --toggle-collect=dbi_bench_c2d_run leaves the warm-up out. */
uint64_t dbi_bench_c2d_run(struct dbi_bench_c2d *c, uint32_t nbatches)
{
	return run_batches(c, nbatches);
}

uint64_t dbi_bench_c2d_fill_only(struct dbi_bench_c2d *c, uint32_t nbatches)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < nbatches; i++) {
		fill(c);
		n += c->b.npts + c->b.nrecs;
	}
	return n;
}

void dbi_bench_c2d_free(struct dbi_bench_c2d *c)
{
	if (!c)
		return;
	if (c->state)
		c->desc->destroy(c->state);
	dbi_next_func_destroy(c->next);
	dbi_batch_free(&c->b);
	dbi_arena_free(&c->arena);
	if (c->hists)
		for (uint32_t i = 0; i < c->nseries; i++)
			free(c->hists[i]);
	free(c->hists);
	free(c->ids);
	free(c->values);
	if (c->reg)
		dbi_registry_destroy(c->reg);
	if (c->cfg)
		dbi_config_free(c->cfg);
	free(c);
}

struct dbi_bench_c2d *dbi_bench_c2d_new(enum dbi_bench_c2d_kind kind, uint32_t nseries, const char *opts)
{
	struct dbi_bench_c2d *c = calloc(1, sizeof(*c));
	struct dbi_errbuf err = {0};
	char yaml[1024];
	if (!c)
		return NULL;
	c->kind = kind;
	c->nseries = nseries;
	snprintf(yaml, sizeof(yaml),
	         "receivers: {loadgen: {}}\n"
	         "processors: {cumulativetodelta: %s}\n"
	         "exporters: {nop: {}}\n"
	         "service: {pipelines: {metrics: {receivers: [loadgen], processors: [cumulativetodelta], "
	         "exporters: [nop]}}}\n",
	         opts);
	if (dbi_config_load_string(yaml, "bench.yaml", dbi_components, &c->cfg, &err) != DBI_OK)
		goto fail;
	c->desc = dbi_component_find("cumulativetodelta", DBI_PROCESSOR);
	c->reg = dbi_registry_create(4 * nseries + 16);
	c->ids = calloc(nseries, sizeof(*c->ids));
	c->values = calloc(nseries, sizeof(*c->values));
	if (!c->desc || !c->reg || !c->ids || !c->values)
		goto fail;
	if (dbi_stats_init(&c->st, &c->blk, DBI_SK_PROCESSOR, "bench", "cumulativetodelta", c->desc->stats) != DBI_OK)
		goto fail;

	struct dbi_metric_def md = {.name = "bench.metric", .unit = "1", .kind = DBI_MK_SUM, .monotonic = 1};
	md.temporality = DBI_TEMP_CUMULATIVE;
	if (kind == DBI_BENCH_C2D_GAUGE)
		md.kind = DBI_MK_GAUGE;
	else if (kind == DBI_BENCH_C2D_HIST)
		md.kind = DBI_MK_HISTOGRAM;
	uint32_t m = dbi_metric_intern(c->reg, &md);
	uint32_t scope = dbi_scope_intern(c->reg, "bench", "1");
	struct dbi_attr ra = {.key = "service.instance.id", .type = DBI_AT_STR, .v.s = "bench:5432"};
	uint32_t res = dbi_attrs_intern(c->reg, &ra, 1);
	c->start_ns = dbi_wall_ns() - 3600 * DBI_NSEC_PER_SEC;
	c->time_ns = dbi_wall_ns();
	if (kind == DBI_BENCH_C2D_HIST && !(c->hists = calloc(nseries, sizeof(*c->hists))))
		goto fail;
	for (uint32_t i = 0; i < nseries; i++) {
		struct dbi_attr a = {.key = "n", .type = DBI_AT_INT, .v.i = i};
		c->ids[i] = dbi_series_intern(c->reg, m, res, scope, dbi_attrs_intern(c->reg, &a, 1));
		if (!c->ids[i])
			goto fail;
		if (c->hists && !(c->hists[i] = hist_new(c->ids[i], c->start_ns)))
			goto fail;
	}

	c->inst = (struct dbi_inst){.id = "cumulativetodelta@bench#0",
	                            .desc = c->desc,
	                            .cfg = dbi_config_find_kind(c->cfg, DBI_PROCESSOR, "cumulativetodelta")->cfg,
	                            .reg = c->reg,
	                            .stats = &c->st,
	                            .pipeline = "bench",
	                            .nshards = 1};
	if (c->desc->create(&c->inst, &c->state, &err) != DBI_OK)
		goto fail;
	c->next = dbi_next_func_create(sink, c);
	if (!c->next || dbi_batch_alloc(&c->b, 1, PTS_BATCH, REC_BATCH) != DBI_OK ||
	    dbi_arena_init(&c->arena, 1 << 20) != DBI_OK)
		goto fail;
	c->b.arena = &c->arena;
	/* one pass so every series has its twin, slot and baseline: the runs are steady state */
	uint32_t per = dbi_bench_c2d_batch_items(c);
	run_batches(c, (nseries + per - 1) / per + 1);
	return c;
fail:
	if (err.count)
		fprintf(stderr, "bench_c2d: %s\n", err.msg);
	dbi_bench_c2d_free(c);
	return NULL;
}
