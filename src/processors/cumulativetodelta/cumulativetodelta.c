/*
 * cumulativetodelta.c — the `cumulativetodelta` processor (OpenTelemetry semantics):
 * turns monotonic cumulative sums and cumulative explicit-bucket histograms into
 * deltas, which is what New Relic wants. Gauges, non-monotonic sums (New Relic makes
 * gauges of them; it cannot take non-monotonic deltas), delta metrics, exponential
 * histograms and summaries pass through untouched.
 *
 * A converted point is moved onto a *delta twin* of its series: the same resource,
 * scope, attributes, name, unit, description, kind and monotonicity, with a metric
 * descriptor that says DELTA, so every exporter downstream sees the right temporality.
 * Twins are interned once per series on the cold path; histograms are copied into the
 * batch arena (records are never modified in place).
 *
 * State is one slot per series this instance sees (points are routed by series hash,
 * so a series always meets the same instance). An index by series id finds the slot;
 * both grow only when new series appear, so the steady state allocates nothing. A
 * stream is the series plus its start time: a new start time starts over, a value (or
 * histogram count or bucket) going down is a reset — the point is dropped and becomes
 * the new baseline, as OTel does — and `initial_value` decides what happens to a
 * stream's first point. `max_staleness` forgets idle series in tick(), a slice of the
 * slots at a time, so memory follows the live series without a full scan per tick.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/registry.h"

enum { C2D_MATCH_STRICT = 0, C2D_MATCH_REGEXP = 1 };
enum { C2D_INIT_AUTO = 0, C2D_INIT_KEEP = 1, C2D_INIT_DROP = 2 };

struct c2d_cfg {
	struct dbi_strlist include_metrics;
	int include_match;
	struct dbi_strlist exclude_metrics;
	int exclude_match;
	int initial_value;
	uint64_t max_staleness;
};

static const struct dbi_conf_key c2d_keys[] = {
        {.name = "include.metrics",
         .type = DBI_CT_STRLIST,
         .offset = offsetof(struct c2d_cfg, include_metrics),
         .doc = "convert only these metric names (empty = all)"},
        {.name = "include.match_type",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct c2d_cfg, include_match),
         .def = "strict",
         .choices = "strict|regexp",
         .doc = "strict: exact names; regexp: PCRE2 patterns, unanchored (use ^...$)"},
        {.name = "exclude.metrics",
         .type = DBI_CT_STRLIST,
         .offset = offsetof(struct c2d_cfg, exclude_metrics),
         .doc = "never convert these metric names"},
        {.name = "exclude.match_type",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct c2d_cfg, exclude_match),
         .def = "strict",
         .choices = "strict|regexp",
         .doc = "strict: exact names; regexp: PCRE2 patterns, unanchored (use ^...$)"},
        {.name = "initial_value",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct c2d_cfg, initial_value),
         .def = "auto",
         .choices = "auto|keep|drop",
         .doc = "a stream's first point: auto = keep if the stream started after this processor, "
                "keep = always, drop = never"},
        {.name = "max_staleness",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct c2d_cfg, max_staleness),
         .def = "0",
         .doc = "forget series not seen for this long (0 = never)"},
        DBI_CONF_END,
};

enum {
	S_CONVERTED,
	S_PASSED,
	S_DROP_RESET,
	S_DROP_INITIAL,
	S_DROP_STALE_START,
	S_DROP_OUT_OF_ORDER,
	S_DROP_ARENA,
	S_UNCONVERTED,
	S_TRACKED,
	S_EXPIRED,
	S_NSTATS
};
static const struct dbi_stat_def c2d_stats[] = {
        [S_CONVERTED] = {"converted", DBI_STAT_COUNTER, "points and histograms passed on as deltas"},
        [S_PASSED] = {"passed_through", DBI_STAT_COUNTER,
                      "items passed on unchanged: not converted by kind or filter, or no-value/NaN markers"},
        [S_DROP_RESET] = {"dropped.reset", DBI_STAT_COUNTER,
                          "dropped: value, count or a bucket went down (or bounds changed); new baseline"},
        [S_DROP_INITIAL] = {"dropped.initial", DBI_STAT_COUNTER, "dropped: a stream's first point (initial_value)"},
        [S_DROP_STALE_START] = {"dropped.stale_start", DBI_STAT_COUNTER,
                                "dropped: start time older than the stream being tracked (late point)"},
        [S_DROP_OUT_OF_ORDER] = {"dropped.out_of_order", DBI_STAT_COUNTER,
                                 "dropped: time before the previous point of the stream"},
        [S_DROP_ARENA] = {"dropped.arena_full", DBI_STAT_COUNTER,
                          "histograms held back: batch arena full (their counts go into the next delta)"},
        [S_UNCONVERTED] = {"unconverted", DBI_STAT_COUNTER,
                           "passed on cumulative: no delta twin or state (runtime.max_series, memory)"},
        [S_TRACKED] = {"series_tracked", DBI_STAT_GAUGE, "series with conversion state"},
        [S_EXPIRED] = {"series_expired", DBI_STAT_COUNTER, "series forgotten after max_staleness"},
        [S_NSTATS] = {NULL, 0, NULL},
};

/* What to do with a metric descriptor / series. */
enum { V_UNKNOWN = 0, V_PASS, V_NOTWIN, V_SUM, V_HIST };

/* Series index values: 0 = not classified yet, else a slot number or one of these. */
#define IDX_PASS UINT32_MAX
#define IDX_NOTWIN (UINT32_MAX - 1)

struct c2d_filter {
	int type;
	const struct dbi_strlist *names;
	pcre2_code **re;
	pcre2_match_data *md;
};

struct c2d_mverdict {
	uint8_t verdict; /* V_* */
	uint32_t twin;   /* delta twin metric id */
};

/* Previous cumulative histogram of a stream: bounds[cap], then counts[cap + 1]. */
struct c2d_hprev {
	uint32_t cap, nbounds;
	uint64_t count;
	double sum;
	uint16_t flags; /* DBI_HF_HAS_SUM of the baseline */
	double bounds[];
};

static inline uint64_t *hprev_counts(struct c2d_hprev *h)
{
	return (uint64_t *)(void *)(h->bounds + h->cap);
}

struct c2d_slot {
	uint32_t sid;  /* input series id; 0 = free */
	uint32_t twin; /* delta twin series id; next free slot while free */
	uint64_t start_ns;
	uint64_t prev_ns; /* time of the baseline: the next delta's start */
	union {
		int64_t i;
		double d;
	} prev;
	uint64_t seen_ns; /* mono ns of the batch that last carried the series */
	struct c2d_hprev *hist;
	uint8_t kind; /* V_SUM or V_HIST */
	uint8_t has_prev;
	uint8_t prev_double;
};

struct c2d {
	const struct c2d_cfg *cfg;
	struct dbi_registry *reg;
	struct dbi_stats *st;
	struct c2d_filter inc, exc;
	uint64_t start_wall; /* initial_value auto: streams starting after this are whole */

	struct c2d_mverdict *metrics; /* by metric id */
	uint32_t metrics_cap;
	uint32_t *idx; /* by input series id */
	uint32_t idx_cap;
	struct c2d_slot *slots; /* slot 0 unused */
	uint32_t slots_cap, slots_hw, free_head, live;

	uint64_t now;          /* mono ns of the batch being converted (0 without max_staleness) */
	uint64_t sweep_every;  /* tick period */
	uint32_t sweep_passes; /* ticks per full pass over the slots */
	uint32_t sweep_at;
};

/* ---- include / exclude ---- */

static void filter_free(struct c2d_filter *f)
{
	if (f->re) {
		for (size_t i = 0; i < f->names->n; i++)
			pcre2_code_free(f->re[i]);
		free(f->re);
		f->re = NULL;
	}
	pcre2_match_data_free(f->md);
	f->md = NULL;
}

static int filter_build(struct c2d_filter *f, const struct dbi_strlist *names, int type, const char *id,
                        const char *what, struct dbi_errbuf *err)
{
	memset(f, 0, sizeof(*f));
	f->type = type;
	f->names = names;
	if (type != C2D_MATCH_REGEXP || names->n == 0)
		return DBI_OK;
	f->re = calloc(names->n, sizeof(*f->re));
	f->md = pcre2_match_data_create(1, NULL);
	if (!f->re || !f->md) {
		dbi_err_add(err, "%s: out of memory", id);
		goto fail;
	}
	for (size_t i = 0; i < names->n; i++) {
		int ec;
		PCRE2_SIZE off;
		f->re[i] = pcre2_compile((PCRE2_SPTR)names->v[i], PCRE2_ZERO_TERMINATED, 0, &ec, &off, NULL);
		if (!f->re[i]) {
			PCRE2_UCHAR msg[160];
			pcre2_get_error_message(ec, msg, sizeof(msg));
			dbi_err_add(err, "%s: %s.metrics[%zu] \"%s\": bad regexp at offset %zu: %s", id, what, i,
			            names->v[i], (size_t)off, (const char *)msg);
			goto fail;
		}
		/* JIT is a speed-up only: without it (no JIT support) matching still works */
		(void)pcre2_jit_compile(f->re[i], PCRE2_JIT_COMPLETE);
	}
	return DBI_OK;
fail:
	filter_free(f);
	return DBI_ERR;
}

static int filter_match(const struct c2d_filter *f, const char *name)
{
	for (size_t i = 0; i < f->names->n; i++) {
		if (f->type == C2D_MATCH_STRICT) {
			if (strcmp(name, f->names->v[i]) == 0)
				return 1;
		} else if (pcre2_match(f->re[i], (PCRE2_SPTR)name, strlen(name), 0, 0, f->md, NULL) >= 0) {
			return 1;
		}
	}
	return 0;
}

static int c2d_validate(const void *cfgp, const char *id, struct dbi_errbuf *err)
{
	const struct c2d_cfg *cfg = cfgp;
	struct c2d_filter f;
	int rc = DBI_OK;
	if (filter_build(&f, &cfg->include_metrics, cfg->include_match, id, "include", err) == DBI_OK)
		filter_free(&f);
	else
		rc = DBI_ERR;
	if (filter_build(&f, &cfg->exclude_metrics, cfg->exclude_match, id, "exclude", err) == DBI_OK)
		filter_free(&f);
	else
		rc = DBI_ERR;
	return rc;
}

/* ---- cold path: classification, twins, growth ---- */

static uint32_t pow2_at_least(uint64_t n)
{
	uint64_t p = 1;
	while (p < n)
		p <<= 1;
	return p > UINT32_MAX ? UINT32_MAX : (uint32_t)p;
}

static int grow_array(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
	uint32_t ncap = pow2_at_least(DBI_MAX((uint64_t)need, 2ULL * *cap));
	void *n = realloc(*arr, (size_t)ncap * elem);
	if (!n)
		return DBI_ERR;
	memset((char *)n + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
	*arr = n;
	*cap = ncap;
	return DBI_OK;
}

static const struct c2d_mverdict *metric_verdict(struct c2d *c, uint32_t mid)
{
	static const struct c2d_mverdict nomem = {V_NOTWIN, 0};
	if (mid >= c->metrics_cap &&
	    grow_array((void **)&c->metrics, &c->metrics_cap, mid + 1, sizeof(*c->metrics)) != DBI_OK)
		return &nomem;
	struct c2d_mverdict *mv = &c->metrics[mid];
	if (mv->verdict != V_UNKNOWN)
		return mv;
	const struct dbi_metric *m = dbi_metric_get(c->reg, mid);
	uint8_t v = V_PASS;
	if (m && m->temporality == DBI_TEMP_CUMULATIVE) {
		if (m->kind == DBI_MK_SUM && m->monotonic)
			v = V_SUM;
		else if (m->kind == DBI_MK_HISTOGRAM)
			v = V_HIST;
	}
	if (v != V_PASS && c->inc.names->n && !filter_match(&c->inc, m->name))
		v = V_PASS;
	if (v != V_PASS && c->exc.names->n && filter_match(&c->exc, m->name))
		v = V_PASS;
	if (v != V_PASS) {
		struct dbi_metric_def def = {.name = m->name,
		                             .unit = m->unit,
		                             .description = m->description,
		                             .kind = m->kind,
		                             .monotonic = m->monotonic,
		                             .temporality = DBI_TEMP_DELTA,
		                             .is_double = m->is_double};
		mv->twin = dbi_metric_intern(c->reg, &def);
		if (!mv->twin)
			v = V_NOTWIN;
	}
	mv->verdict = v;
	return mv;
}

static uint32_t slot_alloc(struct c2d *c)
{
	uint32_t n;
	if (c->free_head) {
		n = c->free_head;
		c->free_head = c->slots[n].twin;
	} else {
		if (c->slots_hw == c->slots_cap &&
		    grow_array((void **)&c->slots, &c->slots_cap, c->slots_cap + 1, sizeof(*c->slots)) != DBI_OK)
			return 0;
		n = c->slots_hw++;
	}
	memset(&c->slots[n], 0, sizeof(c->slots[n]));
	c->live++;
	return n;
}

static void slot_free(struct c2d *c, uint32_t n)
{
	struct c2d_slot *s = &c->slots[n];
	c->idx[s->sid] = 0;
	free(s->hist);
	memset(s, 0, sizeof(*s));
	s->twin = c->free_head;
	c->free_head = n;
	c->live--;
}

/*
 * First sight of a series (or first since it was forgotten): decide, intern the delta
 * twin and give it a slot. Returns the index value (a slot, IDX_PASS or IDX_NOTWIN).
 */
static uint32_t classify(struct c2d *c, uint32_t sid)
{
	const struct dbi_series *s = dbi_series_get(c->reg, sid);
	if (!s)
		return IDX_PASS; /* not a series of ours: nothing to convert against */
	if (sid >= c->idx_cap && grow_array((void **)&c->idx, &c->idx_cap, sid + 1, sizeof(*c->idx)) != DBI_OK)
		return IDX_NOTWIN;
	const struct c2d_mverdict *mv = metric_verdict(c, s->metric);
	if (mv->verdict == V_PASS)
		return c->idx[sid] = IDX_PASS;
	if (mv->verdict == V_NOTWIN)
		return c->idx[sid] = IDX_NOTWIN;
	uint32_t twin = dbi_series_intern(c->reg, mv->twin, s->resource, s->scope, s->attrs);
	if (!twin)
		return c->idx[sid] = IDX_NOTWIN;
	uint32_t n = slot_alloc(c);
	if (!n)
		return IDX_NOTWIN; /* not cached: try again when memory allows */
	c->slots[n].sid = sid;
	c->slots[n].twin = twin;
	c->slots[n].kind = mv->verdict;
	return c->idx[sid] = n;
}

/* The slot of a series to convert as `kind`, or NULL (counted) to pass the item on as it is. */
static inline struct c2d_slot *lookup(struct c2d *c, uint32_t sid, uint8_t kind)
{
	uint32_t v = sid < c->idx_cap ? c->idx[sid] : 0;
	if (dbi_unlikely(v == 0))
		v = classify(c, sid);
	if (dbi_unlikely(v >= IDX_NOTWIN)) {
		dbi_stats_add(c->st, v == IDX_PASS ? S_PASSED : S_UNCONVERTED, 1);
		return NULL;
	}
	struct c2d_slot *s = &c->slots[v];
	if (dbi_unlikely(s->kind != kind)) {
		/* a histogram metric carried as a number point, or the reverse: not ours to fix */
		dbi_stats_add(c->st, S_PASSED, 1);
		return NULL;
	}
	s->seen_ns = c->now;
	return s;
}

static inline int initial_kept(const struct c2d *c, uint64_t start_ns)
{
	int iv = c->cfg->initial_value;
	return iv == C2D_INIT_KEEP || (iv == C2D_INIT_AUTO && start_ns != 0 && start_ns > c->start_wall);
}

/*
 * The stream checks common to sums and histograms. Returns 0 to go on with a delta,
 * 1 when this point starts a stream, or -1 when it is dropped (counted).
 */
static inline int stream_check(struct c2d *c, const struct c2d_slot *s, uint64_t start_ns, uint64_t time_ns)
{
	if (dbi_unlikely(!s->has_prev))
		return 1;
	if (dbi_unlikely(start_ns != s->start_ns)) {
		if (start_ns && s->start_ns && start_ns < s->start_ns) {
			dbi_stats_add(c->st, S_DROP_STALE_START, 1);
			return -1;
		}
		return 1; /* restarted: a new stream */
	}
	/* the same time is let through: a producer may stamp a burst of samples with one time */
	if (dbi_unlikely(time_ns < s->prev_ns)) {
		dbi_stats_add(c->st, S_DROP_OUT_OF_ORDER, 1);
		return -1;
	}
	return 0;
}

/* ---- sums ---- */

static inline void sum_remember(struct c2d_slot *s, const struct dbi_point *p)
{
	s->start_ns = p->start_ns;
	s->prev_ns = p->time_ns;
	s->prev_double = (p->flags & DBI_PF_DOUBLE) != 0;
	if (s->prev_double)
		s->prev.d = p->v.d;
	else
		s->prev.i = p->v.i;
	s->has_prev = 1;
}

/* Convert one point in place; returns 1 to keep it, 0 to drop it. */
static inline int convert_point(struct c2d *c, struct dbi_point *p)
{
	struct c2d_slot *s = lookup(c, p->series, V_SUM);
	if (!s)
		return 1;
	if (dbi_unlikely((p->flags & DBI_PF_NOVALUE) || ((p->flags & DBI_PF_DOUBLE) && !isfinite(p->v.d)))) {
		/* staleness markers and NaN/Inf (OTel forwards NaN untouched): no state change */
		if (s->has_prev && p->start_ns == s->start_ns)
			p->start_ns = s->prev_ns;
		p->series = s->twin;
		dbi_stats_add(c->st, S_PASSED, 1);
		return 1;
	}
	int sc = stream_check(c, s, p->start_ns, p->time_ns);
	if (sc < 0)
		return 0;
	if (sc > 0) {
		sum_remember(s, p);
		if (!initial_kept(c, p->start_ns)) {
			dbi_stats_add(c->st, S_DROP_INITIAL, 1);
			return 0;
		}
		p->series = s->twin; /* the whole stream so far is the first delta */
		dbi_stats_add(c->st, S_CONVERTED, 1);
		return 1;
	}

	int reset;
	if (dbi_likely(!(p->flags & DBI_PF_DOUBLE) && !s->prev_double)) {
		uint64_t d = (uint64_t)p->v.i - (uint64_t)s->prev.i;
		reset = p->v.i < s->prev.i || d > (uint64_t)INT64_MAX; /* went down, or wrapped */
		if (!reset) {
			s->prev.i = p->v.i;
			p->v.i = (int64_t)d;
		}
	} else {
		double cur = dbi_point_value(p), prev = s->prev_double ? s->prev.d : (double)s->prev.i;
		reset = cur < prev;
		if (!reset) {
			s->prev_double = (p->flags & DBI_PF_DOUBLE) != 0;
			if (s->prev_double)
				s->prev.d = cur;
			else
				s->prev.i = p->v.i;
			p->v.d = cur - prev;
			p->flags |= DBI_PF_DOUBLE;
		}
	}
	uint64_t prev_ns = s->prev_ns;
	if (dbi_unlikely(reset)) {
		sum_remember(s, p); /* the new baseline */
		if (c->cfg->initial_value != C2D_INIT_KEEP) {
			dbi_stats_add(c->st, S_DROP_RESET, 1);
			return 0;
		}
		/* keep: the counter restarted after prev_ns, so all of its value is new */
	} else {
		s->prev_ns = p->time_ns;
	}
	p->start_ns = prev_ns;
	p->series = s->twin;
	dbi_stats_add(c->st, S_CONVERTED, 1);
	return 1;
}

/* ---- histograms ---- */

/* Room for a baseline of nbounds bounds (cold: only when a stream first appears or grows). */
static int hprev_reserve(struct c2d_slot *s, uint32_t nbounds)
{
	if (s->hist && s->hist->cap >= nbounds)
		return DBI_OK;
	size_t bytes = sizeof(struct c2d_hprev) + nbounds * sizeof(double) + (nbounds + 1) * sizeof(uint64_t);
	struct c2d_hprev *h = malloc(bytes);
	if (!h)
		return DBI_ERR;
	free(s->hist); /* a wider histogram replaces the baseline anyway: other bounds are a reset */
	memset(h, 0, sizeof(*h));
	h->cap = nbounds;
	s->hist = h;
	return DBI_OK;
}

static const double *rec_bounds(const struct dbi_hist_rec *r)
{
	return (const double *)(const void *)(r + 1);
}

static const uint64_t *rec_counts(const struct dbi_hist_rec *r)
{
	return (const uint64_t *)(const void *)(rec_bounds(r) + r->nbounds);
}

static void hist_remember(struct c2d_slot *s, const struct dbi_hist_rec *r)
{
	struct c2d_hprev *h = s->hist;
	h->nbounds = r->nbounds;
	memcpy(h->bounds, rec_bounds(r), r->nbounds * sizeof(double));
	memcpy(hprev_counts(h), rec_counts(r), (r->nbounds + 1) * sizeof(uint64_t));
	h->count = r->count;
	if (!(r->flags & DBI_HF_HAS_SUM))
		h->flags = 0;
	else if (!isnan(r->sum)) {
		h->sum = r->sum;
		h->flags = DBI_HF_HAS_SUM;
	} /* a NaN sum keeps the previous one as the baseline (OTel) */
	s->start_ns = r->start_ns;
	s->prev_ns = r->time_ns;
	s->has_prev = 1;
}

/* The baseline does not carry over: other bounds, or the count or a bucket went down. */
static int hist_is_reset(struct c2d_slot *s, const struct dbi_hist_rec *r)
{
	struct c2d_hprev *h = s->hist;
	if (r->nbounds != h->nbounds || r->count < h->count ||
	    memcmp(h->bounds, rec_bounds(r), r->nbounds * sizeof(double)) != 0)
		return 1;
	const uint64_t *rc = rec_counts(r), *pc = hprev_counts(h);
	for (uint32_t i = 0; i <= r->nbounds; i++)
		if (rc[i] < pc[i])
			return 1;
	return 0;
}

static struct dbi_hist_rec *hist_copy(struct c2d *c, struct dbi_arena *arena, const struct dbi_hist_rec *r,
                                      uint32_t twin)
{
	struct dbi_hist_rec *o = dbi_arena_alloc(arena, r->h.len);
	if (!o) {
		dbi_stats_add(c->st, S_DROP_ARENA, 1);
		return NULL;
	}
	memcpy(o, r, r->h.len);
	o->series = twin;
	return o;
}

/* Convert one histogram record: the record to pass on (a copy, or r itself), or NULL to drop it. */
static const struct dbi_rec_hdr *convert_hist(struct c2d *c, const struct dbi_hist_rec *r, struct dbi_arena *arena)
{
	if (r->h.len < sizeof(*r) || r->h.len < dbi_hist_rec_size(r->nbounds)) {
		dbi_stats_add(c->st, S_PASSED, 1); /* malformed: not ours to judge */
		return &r->h;
	}
	struct c2d_slot *s = lookup(c, r->series, V_HIST);
	if (!s)
		return &r->h;
	struct dbi_hist_rec *o;
	if (r->flags & DBI_HF_NOVALUE) {
		if (!(o = hist_copy(c, arena, r, s->twin)))
			return NULL;
		if (s->has_prev && r->start_ns == s->start_ns)
			o->start_ns = s->prev_ns;
		dbi_stats_add(c->st, S_PASSED, 1);
		return &o->h;
	}
	int sc = stream_check(c, s, r->start_ns, r->time_ns);
	if (sc < 0)
		return NULL;
	if (sc > 0) {
		if (hprev_reserve(s, r->nbounds) != DBI_OK)
			goto unconverted;
		if (!initial_kept(c, r->start_ns)) {
			hist_remember(s, r);
			dbi_stats_add(c->st, S_DROP_INITIAL, 1);
			return NULL;
		}
		if (!(o = hist_copy(c, arena, r, s->twin)))
			return NULL; /* state untouched: the next point starts the stream instead */
		hist_remember(s, r);
		dbi_stats_add(c->st, S_CONVERTED, 1);
		return &o->h;
	}
	if (hist_is_reset(s, r)) {
		uint64_t prev_ns = s->prev_ns;
		if (hprev_reserve(s, r->nbounds) != DBI_OK)
			goto unconverted;
		if (c->cfg->initial_value != C2D_INIT_KEEP) {
			hist_remember(s, r);
			dbi_stats_add(c->st, S_DROP_RESET, 1);
			return NULL;
		}
		if (!(o = hist_copy(c, arena, r, s->twin)))
			return NULL;
		hist_remember(s, r);
		o->start_ns = prev_ns;
		/* min/max were since the stream's start, before the restart */
		o->flags &= (uint16_t)~DBI_HF_HAS_MINMAX;
		o->min = o->max = 0;
		dbi_stats_add(c->st, S_CONVERTED, 1);
		return &o->h;
	}

	if (!(o = hist_copy(c, arena, r, s->twin)))
		return NULL;
	struct c2d_hprev *h = s->hist;
	uint64_t *oc = dbi_hist_counts(o);
	const uint64_t *pc = hprev_counts(h);
	for (uint32_t i = 0; i <= r->nbounds; i++)
		oc[i] -= pc[i];
	o->count -= h->count;
	if ((r->flags & DBI_HF_HAS_SUM) && (h->flags & DBI_HF_HAS_SUM) && !isnan(r->sum)) {
		o->sum = r->sum - h->sum;
	} else {
		o->flags &= (uint16_t)~DBI_HF_HAS_SUM;
		o->sum = 0;
	}
	/* the cumulative min/max say nothing about this interval alone */
	o->flags &= (uint16_t)~DBI_HF_HAS_MINMAX;
	o->min = o->max = 0;
	o->start_ns = s->prev_ns;
	hist_remember(s, r);
	dbi_stats_add(c->st, S_CONVERTED, 1);
	return &o->h;
unconverted:
	dbi_stats_add(c->st, S_UNCONVERTED, 1);
	return &r->h;
}

/* ---- callbacks ---- */

static int c2d_consume(void *state, struct dbi_batch *b, struct dbi_next *next)
{
	struct c2d *c = state;
	uint32_t w = 0;
	c->now = c->cfg->max_staleness ? dbi_mono_ns() : 0;
	for (uint32_t i = 0; i < b->npts; i++) {
		if (convert_point(c, &b->pts[i])) {
			if (w != i)
				b->pts[w] = b->pts[i];
			w++;
		}
	}
	b->npts = w;
	w = 0;
	for (uint32_t i = 0; i < b->nrecs; i++) {
		const struct dbi_rec_hdr *h = b->recs[i];
		if (h->type == DBI_REC_HIST)
			h = convert_hist(c, (const struct dbi_hist_rec *)h, b->arena);
		else
			dbi_stats_add(c->st, S_PASSED, 1);
		if (h)
			b->recs[w++] = h;
	}
	b->nrecs = w;
	dbi_stats_set(c->st, S_TRACKED, c->live);
	return dbi_next(next, b);
}

/*
 * Staleness: each tick looks at a slice of the slots, sized so that a full pass takes
 * about max_staleness / 2. A series is forgotten between max_staleness and 1.5 x
 * max_staleness after its last point.
 */
static uint64_t c2d_tick(void *state, uint64_t now, struct dbi_next *next)
{
	struct c2d *c = state;
	uint64_t ms = c->cfg->max_staleness;
	(void)next;
	if (ms == 0) {
		dbi_stats_set(c->st, S_TRACKED, c->live);
		return now + DBI_NSEC_PER_SEC;
	}
	uint32_t used = c->slots_hw - 1; /* slots 1 .. hw-1 */
	uint32_t budget = DBI_MIN(used, DBI_MAX(used / c->sweep_passes + 1, 256u));
	uint64_t expired = 0;
	for (uint32_t k = 0; k < budget; k++) {
		if (c->sweep_at == 0 || c->sweep_at >= c->slots_hw)
			c->sweep_at = 1;
		uint32_t n = c->sweep_at++;
		const struct c2d_slot *s = &c->slots[n];
		if (s->sid && s->seen_ns + ms < now) {
			slot_free(c, n);
			expired++;
		}
	}
	dbi_stats_add(c->st, S_EXPIRED, expired);
	dbi_stats_set(c->st, S_TRACKED, c->live);
	return now + c->sweep_every;
}

static void c2d_destroy(void *state)
{
	struct c2d *c = state;
	if (!c)
		return;
	for (uint32_t n = 1; n < c->slots_hw; n++)
		free(c->slots[n].hist);
	free(c->slots);
	free(c->idx);
	free(c->metrics);
	filter_free(&c->inc);
	filter_free(&c->exc);
	free(c);
}

static int c2d_create(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err)
{
	const struct c2d_cfg *cfg = inst->cfg;
	struct c2d *c = calloc(1, sizeof(*c));
	if (!c) {
		dbi_err_add(err, "%s: out of memory", inst->id);
		return DBI_ERR;
	}
	c->cfg = cfg;
	c->reg = inst->reg;
	c->st = inst->stats;
	c->start_wall = dbi_wall_ns();
	if (filter_build(&c->inc, &cfg->include_metrics, cfg->include_match, inst->id, "include", err) != DBI_OK ||
	    filter_build(&c->exc, &cfg->exclude_metrics, cfg->exclude_match, inst->id, "exclude", err) != DBI_OK)
		goto fail;

	/*
	 * Preallocate for the series known now (receivers intern theirs at create) plus
	 * their twins; new series later grow the tables on their cold path.
	 */
	uint32_t known = dbi_series_max_id(c->reg);
	unsigned shards = inst->nshards ? inst->nshards : 1;
	c->idx_cap = pow2_at_least(DBI_MAX(4096ULL, 2ULL * known + 2));
	c->slots_cap = pow2_at_least(DBI_MIN(DBI_MAX(1024ULL, known / shards + 2), 1ULL << 20));
	c->metrics_cap = 256;
	c->idx = calloc(c->idx_cap, sizeof(*c->idx));
	c->slots = calloc(c->slots_cap, sizeof(*c->slots));
	c->metrics = calloc(c->metrics_cap, sizeof(*c->metrics));
	if (!c->idx || !c->slots || !c->metrics) {
		dbi_err_add(err, "%s: out of memory for %u series", inst->id, c->idx_cap);
		goto fail;
	}
	c->slots_hw = 1;

	if (cfg->max_staleness) {
		c->sweep_every = DBI_MIN(DBI_MAX(cfg->max_staleness / 16, DBI_NSEC_PER_MSEC), DBI_NSEC_PER_SEC);
		uint64_t passes = cfg->max_staleness / 2 / c->sweep_every;
		c->sweep_passes = (uint32_t)DBI_MIN(DBI_MAX(passes, 1ULL), (uint64_t)UINT32_MAX);
	}
	*state = c;
	return DBI_OK;
fail:
	c2d_destroy(c);
	return DBI_ERR;
}

const struct dbi_component dbi_processor_cumulativetodelta = {
        .type = "cumulativetodelta",
        .kind = DBI_PROCESSOR,
        .signals = DBI_SIG_METRICS,
        .doc = "converts monotonic cumulative sums and histograms to delta (OTel semantics)",
        .keys = c2d_keys,
        .conf_size = sizeof(struct c2d_cfg),
        .stats = c2d_stats,
        .validate = c2d_validate,
        .create = c2d_create,
        .destroy = c2d_destroy,
        .consume = c2d_consume,
        .tick = c2d_tick,
};
