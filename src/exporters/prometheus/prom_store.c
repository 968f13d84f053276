/*
 * prom_store.c — the `prometheus` exporter's series store, on the exporter thread.
 *
 * One slot per registry series id in a dense array: a point finds its series by
 * indexing, and once a series is known (family resolved, label text built and cached)
 * an update is a few stores and allocates nothing. Series of one family are linked so
 * the renderer walks families in order (Prometheus wants a family's samples together).
 *
 * Prometheus needs cumulative data: delta sums and histograms are accumulated here when
 * each delta starts where the previous one ended (or has no start), and restart from
 * the new delta when they do not line up, as the OTel spec and the Collector do. Delta
 * non-monotonic sums are dropped (spec). Series not updated within metric_expiration
 * are removed by a sweep, and so are series whose last point says "no recorded value".
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "opentelemetry/proto/metrics/v1/metrics.pb-c.h"

#include "dbi/log.h"
#include "dbi/otlp_pb.h"
#include "prom_int.h"

#define PB_ARENA (64u << 10)

/* ---- map: 64-bit key → 32-bit value, linear probing, backward-shift deletion ---- */

static uint64_t map_key(uint64_t h)
{
	return h ? h : 1;
}

static int map_init(struct prom_map *m, uint32_t cap)
{
	m->keys = calloc(cap, sizeof(*m->keys));
	m->vals = calloc(cap, sizeof(*m->vals));
	m->cap = cap;
	m->n = 0;
	return m->keys && m->vals ? DBI_OK : DBI_ERR;
}

static void map_free(struct prom_map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

uint32_t prom_map_get(const struct prom_map *m, uint64_t key)
{
	key = map_key(key);
	for (uint32_t i = (uint32_t)dbi_mix64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key)
			return m->vals[i];
		if (!m->keys[i])
			return 0;
	}
}

static int map_grow(struct prom_map *m)
{
	struct prom_map n;
	if (map_init(&n, m->cap * 2) != DBI_OK) {
		map_free(&n);
		return DBI_ERR;
	}
	for (uint32_t i = 0; i < m->cap; i++)
		if (m->keys[i])
			prom_map_put(&n, m->keys[i], m->vals[i]);
	map_free(m);
	*m = n;
	return DBI_OK;
}

int prom_map_put(struct prom_map *m, uint64_t key, uint32_t val)
{
	if ((m->n + 1) * 4 > m->cap * 3 && map_grow(m) != DBI_OK)
		return DBI_ERR;
	key = map_key(key);
	uint32_t i = (uint32_t)dbi_mix64(key) & (m->cap - 1);
	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	if (!m->keys[i])
		m->n++;
	m->keys[i] = key;
	m->vals[i] = val;
	return DBI_OK;
}

void prom_map_del(struct prom_map *m, uint64_t key)
{
	uint32_t mask = m->cap - 1;
	key = map_key(key);
	uint32_t i = (uint32_t)dbi_mix64(key) & mask;
	while (m->keys[i] != key) {
		if (!m->keys[i])
			return;
		i = (i + 1) & mask;
	}
	/* shift later members of the cluster back so lookups never stop at a hole early */
	for (uint32_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
		uint32_t home = (uint32_t)dbi_mix64(m->keys[j]) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			i = j;
		}
	}
	m->keys[i] = 0;
	m->vals[i] = 0;
	m->n--;
}

void prom_map_clear(struct prom_map *m)
{
	memset(m->keys, 0, m->cap * sizeof(*m->keys));
	memset(m->vals, 0, m->cap * sizeof(*m->vals));
	m->n = 0;
}

/* ---- set-up ---- */

int prom_store_init(struct prom *p)
{
	if (map_init(&p->fam_by_name, 256) != DBI_OK || map_init(&p->by_labels, 1024) != DBI_OK ||
	    map_init(&p->ti_seen, 256) != DBI_OK || prom_lbuild_init(p) != DBI_OK)
		return DBI_ERR;
	p->pb_arena = malloc(PB_ARENA);
	p->pb_arena_cap = p->pb_arena ? PB_ARENA : 0;
	return p->pb_arena ? DBI_OK : DBI_ERR;
}

static void dist_free(struct prom_dist *d)
{
	if (!d)
		return;
	free(d->keys);
	free(d->vals);
	free(d->cum);
	for (int f = 0; f < PROM_NFMT; f++)
		free(d->le[f]);
	free(d);
}

void prom_store_free(struct prom *p)
{
	for (uint32_t i = 0; i < p->series_cap; i++) {
		free(p->series[i].labels);
		dist_free(p->series[i].dist);
	}
	free(p->series);
	for (uint32_t i = 0; i < p->nfams; i++) {
		free(p->fams[i].name);
		free(p->fams[i].om_name);
		free(p->fams[i].unit);
		free(p->fams[i].help);
	}
	free(p->fams);
	free(p->metric_fam);
	for (uint32_t i = 0; i < p->res_cap; i++)
		free(p->res[i].labels);
	free(p->res);
	free(p->res_active);
	map_free(&p->fam_by_name);
	map_free(&p->by_labels);
	map_free(&p->ti_seen);
	prom_lbuild_free(p);
	dbi_tbuf_free(&p->scratch);
	free(p->pb_arena);
}

void prom_drop(struct prom *p, int reason, uint64_t n)
{
	if (reason > PR_NONE && reason < PR_NREASONS)
		dbi_stats_add(p->st, PS_DROP_FIRST + (unsigned)reason - 1, n);
}

/* Grow a dense array to hold index id; new entries zeroed. */
static int grow(void **arr, uint32_t *cap, uint32_t id, size_t elem)
{
	if (id < *cap)
		return DBI_OK;
	if (id >= UINT32_MAX / 2)
		return DBI_ERR;
	uint32_t n = *cap ? *cap : 1024;
	while (n <= id)
		n *= 2;
	void *a = realloc(*arr, (size_t)n * elem);
	if (!a)
		return DBI_ERR;
	memset((char *)a + (size_t)*cap * elem, 0, (size_t)(n - *cap) * elem);
	*arr = a;
	*cap = n;
	return DBI_OK;
}

/* ---- families ---- */

static uint32_t reject(int reason)
{
	return PROM_FAM_REJECT | (uint32_t)reason;
}

static uint32_t new_family(struct prom *p, const struct dbi_metric *m, int type)
{
	char text[PROM_NAME_MAX], om[PROM_NAME_MAX], unit[160];
	if (prom_family_names(p->ns, m->name ? m->name : "", m->unit, type, p->cfg->add_metric_suffixes, text, om,
	                      unit) != DBI_OK)
		return reject(PR_INVALID_NAME);
	if (strcmp(text, "target_info") == 0 || strcmp(om, "target") == 0)
		return reject(PR_TYPE_CONFLICT); /* the exporter's own family */
	uint64_t kt = dbi_hash64(text, strlen(text), 0x74), ko = dbi_hash64(om, strlen(om), 0x6f);
	uint32_t ft = prom_map_get(&p->fam_by_name, kt), fo = prom_map_get(&p->fam_by_name, ko);
	if (ft || fo) {
		uint32_t f = ft ? ft : fo;
		struct prom_family *fam = &p->fams[f - 1];
		if (fam->type == type && (!ft || !fo || ft == fo) && strcmp(fam->name, text) == 0)
			return f;
		DBI_LOGW(p->inst->id, "metric dropped: its Prometheus name is taken by a metric of another type",
		         "metric=%s name=%s", m->name, text);
		return reject(PR_TYPE_CONFLICT);
	}
	if (p->nfams == p->fams_cap) {
		uint32_t cap = p->fams_cap ? p->fams_cap * 2 : 64;
		struct prom_family *nf = realloc(p->fams, cap * sizeof(*nf));
		if (!nf)
			return reject(PR_NO_MEMORY);
		p->fams = nf;
		p->fams_cap = cap;
	}
	struct prom_family *f = &p->fams[p->nfams];
	memset(f, 0, sizeof(*f));
	f->name = strdup(text);
	f->om_name = strdup(om);
	f->unit = unit[0] ? strdup(unit) : NULL;
	f->help = strdup(m->description ? m->description : "");
	f->type = (uint8_t)type;
	if (!f->name || !f->om_name || !f->help || (unit[0] && !f->unit) ||
	    prom_map_put(&p->fam_by_name, kt, p->nfams + 1) != DBI_OK ||
	    prom_map_put(&p->fam_by_name, ko, p->nfams + 1) != DBI_OK) {
		free(f->name);
		free(f->om_name);
		free(f->unit);
		free(f->help);
		prom_map_del(&p->fam_by_name, kt);
		prom_map_del(&p->fam_by_name, ko);
		return reject(PR_NO_MEMORY);
	}
	p->nfams++;
	dbi_stats_set(p->st, PS_FAMILIES, p->nfams);
	return p->nfams;
}

/* Family of a metric id (index + 1), or PROM_FAM_REJECT | reason. Cached per metric. */
static uint32_t metric_family(struct prom *p, uint32_t mid)
{
	if (grow((void **)&p->metric_fam, &p->metric_cap, mid, sizeof(uint32_t)) != DBI_OK)
		return reject(PR_NO_MEMORY);
	if (p->metric_fam[mid])
		return p->metric_fam[mid];
	const struct dbi_metric *m = dbi_metric_get(p->reg, mid);
	uint32_t f;
	if (!m) {
		f = reject(PR_UNKNOWN_SERIES);
	} else {
		switch (m->kind) {
		case DBI_MK_GAUGE:
			f = new_family(p, m, PT_GAUGE);
			break;
		case DBI_MK_SUM:
			if (m->monotonic)
				f = new_family(p, m, PT_COUNTER);
			else if (m->temporality == DBI_TEMP_DELTA)
				f = reject(PR_DELTA_NONMONO);
			else
				f = new_family(p, m, PT_GAUGE);
			break;
		case DBI_MK_HISTOGRAM:
			f = new_family(p, m, PT_HISTOGRAM);
			break;
		case DBI_MK_SUMMARY:
			f = new_family(p, m, PT_SUMMARY);
			break;
		case DBI_MK_EXPHISTOGRAM:
			f = reject(PR_EXPHIST);
			break;
		default:
			f = reject(PR_KIND_MISMATCH);
			break;
		}
	}
	/* out of memory is worth retrying later; everything else is final for this metric */
	if (f != reject(PR_NO_MEMORY))
		p->metric_fam[mid] = f;
	return f;
}

/* ---- resources (target_info) ---- */

static int res_link(struct prom *p, uint32_t rid)
{
	if (grow((void **)&p->res, &p->res_cap, rid, sizeof(*p->res)) != DBI_OK)
		return DBI_ERR;
	struct prom_res *r = &p->res[rid];
	if (r->live++ == 0) {
		if (p->nres_active == p->res_active_cap) {
			uint32_t cap = p->res_active_cap ? p->res_active_cap * 2 : 64;
			uint32_t *a = realloc(p->res_active, cap * sizeof(*a));
			if (!a) {
				r->live--;
				return DBI_ERR;
			}
			p->res_active = a;
			p->res_active_cap = cap;
		}
		p->res_active[p->nres_active++] = rid;
		r->slot = p->nres_active;
	}
	return DBI_OK;
}

static void res_unlink(struct prom *p, uint32_t rid)
{
	if (rid >= p->res_cap || !p->res[rid].live)
		return;
	struct prom_res *r = &p->res[rid];
	if (--r->live == 0) {
		uint32_t last = p->res_active[--p->nres_active];
		p->res_active[r->slot - 1] = last;
		p->res[last].slot = r->slot;
		r->slot = 0;
	}
}

/* ---- series ---- */

static uint64_t labels_key(uint32_t fam, const char *labels, size_t len)
{
	return dbi_hash64(labels, len, 0x9e3779b97f4a7c15ULL * fam);
}

static void series_remove(struct prom *p, uint32_t id)
{
	struct prom_series *s = &p->series[id];
	if (s->state == SS_LIVE) {
		struct prom_family *f = &p->fams[s->family - 1];
		if (s->prev)
			p->series[s->prev].next = s->next;
		else
			f->head = s->next;
		if (s->next)
			p->series[s->next].prev = s->prev;
		else
			f->tail = s->prev;
		f->nseries--;
		prom_map_del(&p->by_labels, labels_key(s->family, s->labels, s->labels_len));
		res_unlink(p, s->resource);
		p->live--;
		dbi_stats_set(p->st, PS_SERIES, p->live);
	}
	free(s->labels);
	dist_free(s->dist);
	memset(s, 0, sizeof(*s));
}

/*
 * The live slot of series id, resolving it on first sight; NULL when its points are
 * dropped (counted here).
 */
static struct prom_series *series_for(struct prom *p, uint32_t id, uint64_t now)
{
	/* an id the registry never handed out must not size the array */
	if (dbi_unlikely(id >= p->series_cap) && (id == 0 || id > dbi_series_max_id(p->reg))) {
		prom_drop(p, PR_UNKNOWN_SERIES, 1);
		return NULL;
	}
	if (grow((void **)&p->series, &p->series_cap, id, sizeof(*p->series)) != DBI_OK) {
		prom_drop(p, PR_NO_MEMORY, 1);
		return NULL;
	}
	struct prom_series *s = &p->series[id];
	if (dbi_likely(s->state == SS_LIVE))
		return s;
	if (s->state == SS_REJECTED) {
		s->seen = now; /* reconsidered once it has been quiet for metric_expiration */
		prom_drop(p, s->reject, 1);
		return NULL;
	}
	const struct dbi_series *ser = dbi_series_get(p->reg, id);
	if (!ser || id == 0) {
		prom_drop(p, PR_UNKNOWN_SERIES, 1);
		return NULL;
	}
	uint32_t f = metric_family(p, ser->metric);
	int why = PR_NONE;
	if (f & PROM_FAM_REJECT) {
		why = (int)(f & ~PROM_FAM_REJECT);
		if (why == PR_NONE)
			why = PR_KIND_MISMATCH;
		if (why == PR_NO_MEMORY) {
			prom_drop(p, why, 1);
			return NULL;
		}
	} else if (prom_series_labels(p, ser, p->fams[f - 1].type) != DBI_OK) {
		prom_drop(p, PR_NO_MEMORY, 1);
		return NULL;
	} else {
		uint64_t key = labels_key(f, p->scratch.p, p->scratch.len);
		uint32_t other = prom_map_get(&p->by_labels, key);
		if (other && other != id) {
			why = PR_DUPLICATE;
			DBI_LOGW(p->inst->id, "series dropped: another series has the same Prometheus name and labels",
			         "family=%s", p->fams[f - 1].name);
		} else {
			s->labels = malloc(p->scratch.len + 1);
			if (!s->labels || prom_map_put(&p->by_labels, key, id) != DBI_OK ||
			    res_link(p, ser->resource) != DBI_OK) {
				if (s->labels)
					prom_map_del(&p->by_labels, key);
				free(s->labels);
				s->labels = NULL;
				prom_drop(p, PR_NO_MEMORY, 1);
				return NULL;
			}
		}
	}
	if (why != PR_NONE) {
		s->state = SS_REJECTED;
		s->reject = (uint8_t)why;
		s->seen = now;
		prom_drop(p, why, 1);
		return NULL;
	}
	if (p->scratch.len)
		memcpy(s->labels, p->scratch.p, p->scratch.len);
	s->labels[p->scratch.len] = '\0';
	s->labels_len = (uint32_t)p->scratch.len;
	s->resource = ser->resource;
	s->family = f;
	const struct dbi_metric *m = dbi_metric_get(p->reg, ser->metric);
	s->delta = m && m->temporality == DBI_TEMP_DELTA;
	struct prom_family *fam = &p->fams[f - 1];
	s->next = 0;
	s->prev = fam->tail;
	if (fam->tail)
		p->series[fam->tail].next = id;
	else
		fam->head = id;
	fam->tail = id;
	fam->nseries++;
	s->state = SS_LIVE;
	p->live++;
	dbi_stats_set(p->st, PS_SERIES, p->live);
	return s;
}

static void touched(struct prom *p, struct prom_series *s, uint64_t now)
{
	s->seen = now;
	p->updated = now;
	dbi_stats_add(p->st, PS_POINTS, 1);
}

static void stale(struct prom *p, uint32_t id, uint64_t now)
{
	series_remove(p, id);
	p->updated = now;
	dbi_stats_add(p->st, PS_STALE, 1);
}

/* Is a delta point the continuation of what was accumulated? */
static bool continues(const struct prom_series *s, uint64_t start_ns)
{
	return s->time_ns && (start_ns == 0 || start_ns == s->time_ns);
}

void prom_apply_point(struct prom *p, const struct dbi_point *pt, uint64_t now)
{
	if (pt->kind == DBI_PK_MARK)
		return;
	struct prom_series *s = series_for(p, pt->series, now);
	if (!s)
		return;
	uint8_t type = p->fams[s->family - 1].type;
	if (type != PT_GAUGE && type != PT_COUNTER) {
		prom_drop(p, PR_KIND_MISMATCH, 1);
		return;
	}
	if (pt->flags & DBI_PF_NOVALUE) {
		stale(p, pt->series, now);
		return;
	}
	bool dbl = pt->flags & DBI_PF_DOUBLE;
	if (s->delta) {
		if (s->time_ns && pt->time_ns <= s->time_ns) {
			prom_drop(p, PR_OUT_OF_ORDER, 1);
			return;
		}
		if (continues(s, pt->start_ns)) {
			if (!dbl && !s->is_double) {
				s->v.i += pt->v.i;
			} else {
				double cur = s->is_double ? s->v.d : (double)s->v.i;
				s->v.d = cur + dbi_point_value(pt);
				s->is_double = 1;
			}
			s->time_ns = pt->time_ns;
			touched(p, s, now);
			return;
		}
		/* first delta, or one that does not line up: the cumulative series restarts */
		s->start_ns = pt->start_ns ? pt->start_ns : pt->time_ns;
	} else {
		s->start_ns = pt->start_ns;
	}
	s->is_double = dbl;
	s->v.i = pt->v.i; /* the union's bits: int or double */
	s->time_ns = pt->time_ns;
	touched(p, s, now);
}

/* Make room for n keys; the rendered label values are rebuilt when keys change. */
static struct prom_dist *dist_prepare(struct prom_series *s, uint32_t n)
{
	struct prom_dist *d = s->dist;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return NULL;
		s->dist = d;
	}
	if (n > d->cap || !d->keys) {
		uint32_t cap = DBI_MAX(n, 1);
		double *k = realloc(d->keys, cap * sizeof(double));
		if (k)
			d->keys = k;
		double *v = k ? realloc(d->vals, cap * sizeof(double)) : NULL;
		if (v)
			d->vals = v;
		uint64_t *c = v ? realloc(d->cum, (cap + 1) * sizeof(uint64_t)) : NULL;
		if (!c)
			return NULL;
		d->cum = c;
		d->cap = cap;
	}
	return d;
}

static bool same_keys(const struct prom_dist *d, const double *keys, uint32_t n)
{
	return d->le[PROM_FMT_TEXT] && d->n == n && (n == 0 || memcmp(d->keys, keys, n * sizeof(double)) == 0);
}

/* Set keys and their rendered label values (le / quantile), both formats. */
static int set_keys(struct prom_dist *d, const double *keys, uint32_t n, bool hist)
{
	for (int f = 0; f < PROM_NFMT; f++) {
		struct dbi_tbuf b = {0};
		char num[DBI_PROM_NUM_MAX];
		for (uint32_t i = 0; i < n; i++) {
			size_t l = dbi_prom_fmt_canonical(keys[i], f == PROM_FMT_OM, num);
			dbi_tbuf_put(&b, num, l);
			dbi_tbuf_putc(&b, '\0');
		}
		if (hist)
			dbi_tbuf_put(&b, "+Inf", 5);
		if (b.oom) {
			dbi_tbuf_free(&b);
			return DBI_ERR;
		}
		free(d->le[f]);
		d->le[f] = b.p ? b.p : calloc(1, 1);
		d->le_len[f] = (uint32_t)b.len;
		if (!d->le[f])
			return DBI_ERR;
	}
	if (n)
		memmove(d->keys, keys, n * sizeof(double));
	d->n = n;
	return DBI_OK;
}

static void apply_hist(struct prom *p, const struct dbi_hist_rec *r, uint64_t now)
{
	if (r->h.len < sizeof(*r) || r->h.len < dbi_hist_rec_size(r->nbounds)) {
		prom_drop(p, PR_BAD_RECORD, 1);
		return;
	}
	const double *bounds = (const double *)(const void *)(r + 1);
	const uint64_t *counts = (const uint64_t *)(const void *)(bounds + r->nbounds);
	for (uint32_t i = 0; i < r->nbounds; i++)
		if (isnan(bounds[i]) || (i && bounds[i] <= bounds[i - 1])) {
			prom_drop(p, PR_BAD_RECORD, 1);
			return;
		}
	struct prom_series *s = series_for(p, r->series, now);
	if (!s)
		return;
	if (p->fams[s->family - 1].type != PT_HISTOGRAM) {
		prom_drop(p, PR_KIND_MISMATCH, 1);
		return;
	}
	if (r->flags & DBI_HF_NOVALUE) {
		stale(p, r->series, now);
		return;
	}
	bool keep = s->dist && same_keys(s->dist, bounds, r->nbounds);
	if (s->delta && s->time_ns && r->time_ns <= s->time_ns) {
		prom_drop(p, PR_OUT_OF_ORDER, 1);
		return;
	}
	struct prom_dist *d = dist_prepare(s, r->nbounds);
	if (!d || (!keep && set_keys(d, bounds, r->nbounds, true) != DBI_OK)) {
		prom_drop(p, PR_NO_MEMORY, 1);
		return;
	}
	bool add = s->delta && keep && continues(s, r->start_ns);
	uint64_t run = 0;
	for (uint32_t i = 0; i <= r->nbounds; i++) {
		run += counts[i];
		d->cum[i] = add ? d->cum[i] + run : run;
	}
	d->count = d->cum[r->nbounds];
	bool has_sum = r->flags & DBI_HF_HAS_SUM;
	if (add) {
		d->sum += r->sum;
		d->has_sum = d->has_sum && has_sum;
	} else {
		d->sum = r->sum;
		d->has_sum = has_sum;
		s->start_ns = s->delta ? (r->start_ns ? r->start_ns : r->time_ns) : r->start_ns;
	}
	/* a negative observation makes _sum non-monotonic: the spec leaves it out then */
	if ((r->flags & DBI_HF_HAS_MINMAX) && r->min < 0)
		d->has_sum = false;
	s->time_ns = r->time_ns;
	touched(p, s, now);
}

static void *arena_alloc(void *data, size_t size)
{
	struct prom *p = data;
	size = DBI_ALIGN_UP(size, 8);
	if (size > p->pb_arena_cap - p->pb_arena_used)
		return NULL;
	void *r = p->pb_arena + p->pb_arena_used;
	p->pb_arena_used += size;
	return r;
}

static void arena_free(void *data, void *ptr)
{
	(void)data;
	(void)ptr;
}

static void apply_summary(struct prom *p, const struct dbi_otlp_point_rec *r, uint64_t now)
{
	typedef Opentelemetry__Proto__Metrics__V1__SummaryDataPoint summary_pb;
	const ProtobufCMessageDescriptor *desc = &opentelemetry__proto__metrics__v1__summary_data_point__descriptor;
	if (r->h.len < sizeof(*r) || r->pb_len > r->h.len - sizeof(*r)) {
		prom_drop(p, PR_BAD_RECORD, 1);
		return;
	}
	const uint8_t *pb = (const uint8_t *)(r + 1);
	ProtobufCAllocator arena;
	arena.alloc = arena_alloc;
	arena.free = arena_free;
	arena.allocator_data = p;
	p->pb_arena_used = 0;
	summary_pb *dp = NULL;
	if (dbi_otlp_pb_check(desc, pb, r->pb_len, DBI_OTLP_MAX_DEPTH, NULL) == DBI_OK)
		dp = (summary_pb *)protobuf_c_message_unpack(desc, &arena, r->pb_len, pb);
	if (!dp || dp->n_quantile_values > 4096) {
		prom_drop(p, PR_BAD_RECORD, 1);
		return;
	}
	uint32_t n = (uint32_t)dp->n_quantile_values;
	for (uint32_t i = 0; i < n; i++) {
		double q = dp->quantile_values[i]->quantile;
		if (!(q >= 0 && q <= 1) || (i && q <= dp->quantile_values[i - 1]->quantile)) {
			prom_drop(p, PR_BAD_RECORD, 1);
			return;
		}
	}
	struct prom_series *s = series_for(p, r->series, now);
	if (!s)
		return;
	if (p->fams[s->family - 1].type != PT_SUMMARY) {
		prom_drop(p, PR_KIND_MISMATCH, 1);
		return;
	}
	if (dp->flags & OPENTELEMETRY__PROTO__METRICS__V1__DATA_POINT_FLAGS__DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK) {
		stale(p, r->series, now);
		return;
	}
	struct prom_dist *d = dist_prepare(s, n);
	if (!d) {
		prom_drop(p, PR_NO_MEMORY, 1);
		return;
	}
	/* vals holds the quantiles for a moment: compared with, or copied to, keys */
	for (uint32_t i = 0; i < n; i++)
		d->vals[i] = dp->quantile_values[i]->quantile;
	if (!same_keys(d, d->vals, n) && set_keys(d, d->vals, n, false) != DBI_OK) {
		prom_drop(p, PR_NO_MEMORY, 1);
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		d->vals[i] = dp->quantile_values[i]->value;
	d->count = dp->count;
	d->sum = dp->sum;
	d->has_sum = dp->sum >= 0;
	s->start_ns = dp->start_time_unix_nano;
	s->time_ns = dp->time_unix_nano;
	touched(p, s, now);
}

void prom_apply_record(struct prom *p, const struct dbi_rec_hdr *h, uint64_t now)
{
	switch (h->type) {
	case DBI_REC_HIST:
		apply_hist(p, (const struct dbi_hist_rec *)h, now);
		break;
	case DBI_REC_SUMMARY:
		apply_summary(p, (const struct dbi_otlp_point_rec *)h, now);
		break;
	case DBI_REC_EXPHIST:
		prom_drop(p, PR_EXPHIST, 1);
		break;
	default:
		prom_drop(p, PR_KIND_MISMATCH, 1);
		break;
	}
}

uint64_t prom_sweep(struct prom *p, uint64_t now)
{
	uint64_t exp = p->cfg->metric_expiration, n = 0;
	if (!exp)
		return 0;
	for (uint32_t id = 1; id < p->series_cap; id++) {
		struct prom_series *s = &p->series[id];
		if (s->state == SS_FREE || now < s->seen || now - s->seen <= exp)
			continue;
		n += s->state == SS_LIVE;
		series_remove(p, id);
	}
	if (n) {
		p->updated = now;
		dbi_stats_add(p->st, PS_EXPIRED, n);
	}
	return n;
}
