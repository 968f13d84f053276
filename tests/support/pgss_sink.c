/*
 * pgss_sink.c — the collecting sink of pgss_sink.h: points and records are copied into
 * growing arrays (tests) or only counted (benchmarks).
 */
#include "pgss_sink.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sink_point(void *ctx, struct dbi_point *p, uint64_t route)
{
	struct dbi_test_sink *t = ctx;
	(void)route;
	if (t->full)
		return DBI_AGAIN;
	t->counted_points++;
	if (t->counts)
		return DBI_OK;
	if (t->npts == t->pts_cap) {
		size_t nc = t->pts_cap ? t->pts_cap * 2 : 256;
		struct dbi_point *np = realloc(t->pts, nc * sizeof(*np));
		if (!np)
			return DBI_AGAIN;
		t->pts = np;
		t->pts_cap = nc;
	}
	t->pts[t->npts++] = *p;
	return DBI_OK;
}

static void *sink_reserve(void *ctx, uint32_t type, uint32_t len, uint64_t route)
{
	struct dbi_test_sink *t = ctx;
	struct dbi_rec_hdr *h;
	(void)route;
	if (t->full || len < sizeof(*h))
		return NULL;
	if (t->counts) {
		if (len > sizeof(t->scratch))
			return NULL;
		h = (struct dbi_rec_hdr *)(void *)t->scratch;
	} else {
		if (t->nrecs == t->recs_cap) {
			size_t nc = t->recs_cap ? t->recs_cap * 2 : 64;
			struct dbi_test_rec *nr = realloc(t->recs, nc * sizeof(*nr));
			if (!nr)
				return NULL;
			t->recs = nr;
			t->recs_cap = nc;
		}
		h = calloc(1, len);
		if (!h)
			return NULL;
		t->recs[t->nrecs++] = (struct dbi_test_rec){.buf = (uint8_t *)h, .type = type, .len = len};
	}
	memset(h, 0, sizeof(*h));
	h->type = type;
	h->len = len;
	return h;
}

static void sink_commit(void *ctx, void *rec)
{
	struct dbi_test_sink *t = ctx;
	(void)rec;
	t->counted_records++;
}

void dbi_test_sink_init(struct dbi_test_sink *t, struct dbi_registry *reg)
{
	memset(t, 0, sizeof(*t));
	t->reg = reg;
	t->sink.ctx = t;
	t->sink.point = sink_point;
	t->sink.reserve = sink_reserve;
	t->sink.commit = sink_commit;
}

void dbi_test_sink_clear(struct dbi_test_sink *t)
{
	for (size_t i = 0; i < t->nrecs; i++)
		free(t->recs[i].buf);
	t->nrecs = 0;
	t->npts = 0;
}

void dbi_test_sink_free(struct dbi_test_sink *t)
{
	dbi_test_sink_clear(t);
	free(t->pts);
	free(t->recs);
	t->pts = NULL;
	t->recs = NULL;
	t->pts_cap = t->recs_cap = 0;
}

const char *dbi_test_sink_metric(const struct dbi_test_sink *t, const struct dbi_point *p)
{
	const struct dbi_series *s = dbi_series_get(t->reg, p->series);
	const struct dbi_metric *m = s ? dbi_metric_get(t->reg, s->metric) : NULL;
	return m ? m->name : "";
}

bool dbi_test_sink_attr(const struct dbi_test_sink *t, uint32_t series, const char *key, char *out, size_t len)
{
	const struct dbi_series *s = dbi_series_get(t->reg, series);
	const struct dbi_attrset *a = s ? dbi_attrs_get(t->reg, s->attrs) : NULL;
	struct dbi_attr v;
	size_t n;

	if (!a || !dbi_attrs_find(a->enc, a->len, key, &v))
		return false;
	if (v.type == DBI_AT_BOOL) {
		snprintf(out, len, "%s", v.v.b ? "true" : "false");
		return true;
	}
	if (v.type != DBI_AT_STR)
		return false;
	n = v.vlen < len - 1 ? v.vlen : len - 1;
	memcpy(out, v.v.s, n);
	out[n] = '\0';
	return true;
}

double dbi_test_sink_sum(const struct dbi_test_sink *t, const char *metric, const char *key, const char *value,
                         size_t *n)
{
	double sum = 0;
	size_t cnt = 0;
	char buf[256];

	for (size_t i = 0; i < t->npts; i++) {
		const struct dbi_point *p = &t->pts[i];
		if (strcmp(dbi_test_sink_metric(t, p), metric) != 0)
			continue;
		if (key) {
			bool has = dbi_test_sink_attr(t, p->series, key, buf, sizeof(buf));
			if (value ? (!has || strcmp(buf, value) != 0) : has)
				continue;
		}
		sum += dbi_point_value(p);
		cnt++;
	}
	if (n)
		*n = cnt;
	return sum;
}

double dbi_test_sink_min(const struct dbi_test_sink *t, const char *metric)
{
	double m = INFINITY;
	for (size_t i = 0; i < t->npts; i++)
		if (strcmp(dbi_test_sink_metric(t, &t->pts[i]), metric) == 0 && dbi_point_value(&t->pts[i]) < m)
			m = dbi_point_value(&t->pts[i]);
	return m;
}
