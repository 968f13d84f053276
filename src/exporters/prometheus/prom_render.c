/*
 * prom_render.c — the `prometheus` exporter's page: the series store rendered as
 * Prometheus text exposition 0.0.4 and/or OpenMetrics 1.0 text, on the exporter thread
 * into a page buffer that scrapes later read (prometheus.c publishes it).
 *
 * The two formats share sample lines and differ in metadata: text writes HELP and TYPE
 * under the sample name (counters keep _total), OpenMetrics writes TYPE, UNIT and HELP
 * under the family name (counters without _total), adds _created samples, timestamps in
 * seconds, target as an info family, and ends with "# EOF". Label text is cached per
 * series, so a line is a handful of memcpy calls plus the number.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "prom_int.h"

struct render {
	struct prom *p;
	struct dbi_tbuf *b;
	int fmt;
	bool ts;
};

static const char *type_name(int type)
{
	switch (type) {
	case PT_COUNTER:
		return "counter";
	case PT_HISTOGRAM:
		return "histogram";
	case PT_SUMMARY:
		return "summary";
	default:
		return "gauge";
	}
}

/* Room is reserved by the caller: copy without checks. */
static inline void raw(struct dbi_tbuf *b, const char *s, size_t n)
{
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static size_t fmt_ts(uint64_t ns, int fmt, char *out)
{
	if (fmt == PROM_FMT_TEXT)
		return dbi_prom_fmt_uint(ns / DBI_NSEC_PER_MSEC, out);
	size_t n = dbi_prom_fmt_uint(ns / DBI_NSEC_PER_SEC, out);
	uint64_t ms = ns / DBI_NSEC_PER_MSEC % 1000;
	out[n++] = '.';
	out[n++] = (char)('0' + ms / 100);
	out[n++] = (char)('0' + ms / 10 % 10);
	out[n++] = (char)('0' + ms % 10);
	return n;
}

/* Seconds with nanoseconds, for _created values. */
static size_t fmt_seconds(uint64_t ns, char *out)
{
	size_t n = dbi_prom_fmt_uint(ns / DBI_NSEC_PER_SEC, out);
	uint64_t frac = ns % DBI_NSEC_PER_SEC;
	out[n++] = '.';
	for (uint64_t d = DBI_NSEC_PER_SEC / 10; d; d /= 10)
		out[n++] = (char)('0' + frac / d % 10);
	return n;
}

/*
 * One sample line: name suffix {labels[,xname="xval"]} value [timestamp].
 * xname NULL: no extra label.
 */
static void line(struct render *r, const char *name, size_t nl, const char *suffix, const struct prom_series *s,
                 const char *xname, const char *xval, size_t xl, const char *val, size_t vl)
{
	struct dbi_tbuf *b = r->b;
	size_t sl = suffix ? strlen(suffix) : 0, xn = xname ? strlen(xname) : 0;
	if (dbi_tbuf_room(b, nl + sl + s->labels_len + xn + xl + vl + 64) != DBI_OK)
		return;
	raw(b, name, nl);
	raw(b, suffix, sl);
	if (s->labels_len || xname) {
		b->p[b->len++] = '{';
		raw(b, s->labels, s->labels_len);
		if (xname) {
			if (s->labels_len)
				b->p[b->len++] = ',';
			raw(b, xname, xn);
			raw(b, "=\"", 2);
			raw(b, xval, xl);
			b->p[b->len++] = '"';
		}
		b->p[b->len++] = '}';
	}
	b->p[b->len++] = ' ';
	raw(b, val, vl);
	if (r->ts && s->time_ns) {
		b->p[b->len++] = ' ';
		b->len += fmt_ts(s->time_ns, r->fmt, b->p + b->len);
	}
	b->p[b->len++] = '\n';
}

static size_t value_text(const struct prom_series *s, char *num)
{
	if (s->is_double)
		return dbi_prom_fmt_double(s->v.d, num);
	return dbi_prom_fmt_int(s->v.i, num);
}

static void header(struct render *r, const struct prom_family *f)
{
	struct dbi_tbuf *b = r->b;
	if (r->fmt == PROM_FMT_TEXT) {
		if (f->help[0]) {
			dbi_tbuf_puts(b, "# HELP ");
			dbi_tbuf_puts(b, f->name);
			dbi_tbuf_putc(b, ' ');
			dbi_tbuf_help(b, f->help, strlen(f->help), false);
			dbi_tbuf_putc(b, '\n');
		}
		dbi_tbuf_puts(b, "# TYPE ");
		dbi_tbuf_puts(b, f->name);
		dbi_tbuf_putc(b, ' ');
		dbi_tbuf_puts(b, type_name(f->type));
		dbi_tbuf_putc(b, '\n');
		return;
	}
	dbi_tbuf_puts(b, "# TYPE ");
	dbi_tbuf_puts(b, f->om_name);
	dbi_tbuf_putc(b, ' ');
	dbi_tbuf_puts(b, type_name(f->type));
	dbi_tbuf_putc(b, '\n');
	if (f->unit) {
		dbi_tbuf_puts(b, "# UNIT ");
		dbi_tbuf_puts(b, f->om_name);
		dbi_tbuf_putc(b, ' ');
		dbi_tbuf_puts(b, f->unit);
		dbi_tbuf_putc(b, '\n');
	}
	if (f->help[0]) {
		dbi_tbuf_puts(b, "# HELP ");
		dbi_tbuf_puts(b, f->om_name);
		dbi_tbuf_putc(b, ' ');
		dbi_tbuf_help(b, f->help, strlen(f->help), true);
		dbi_tbuf_putc(b, '\n');
	}
}

static void created(struct render *r, const char *name, size_t nl, const struct prom_series *s)
{
	char num[DBI_PROM_NUM_MAX];
	if (r->fmt == PROM_FMT_OM && s->start_ns)
		line(r, name, nl, "_created", s, NULL, "", 0, num, fmt_seconds(s->start_ns, num));
}

static void dist_lines(struct render *r, const struct prom_family *f, const char *name, size_t nl,
                       const struct prom_series *s)
{
	const struct prom_dist *d = s->dist;
	char num[DBI_PROM_NUM_MAX];
	if (!d)
		return;
	const char *le = d->le[r->fmt];
	if (f->type == PT_HISTOGRAM) {
		for (uint32_t i = 0; i <= d->n; i++) {
			size_t ll = strlen(le);
			line(r, name, nl, "_bucket", s, "le", le, ll, num, dbi_prom_fmt_uint(d->cum[i], num));
			le += ll + 1;
		}
	} else {
		for (uint32_t i = 0; i < d->n; i++) {
			size_t ll = strlen(le);
			line(r, name, nl, "", s, "quantile", le, ll, num, dbi_prom_fmt_double(d->vals[i], num));
			le += ll + 1;
		}
	}
	if (d->has_sum)
		line(r, name, nl, "_sum", s, NULL, "", 0, num, dbi_prom_fmt_double(d->sum, num));
	line(r, name, nl, "_count", s, NULL, "", 0, num, dbi_prom_fmt_uint(d->count, num));
	created(r, name, nl, s);
}

static void family(struct render *r, const struct prom_family *f)
{
	struct prom *p = r->p;
	char num[DBI_PROM_NUM_MAX];
	const char *name = r->fmt == PROM_FMT_OM ? f->om_name : f->name;
	size_t nl = strlen(name);
	header(r, f);
	for (uint32_t id = f->head; id; id = p->series[id].next) {
		const struct prom_series *s = &p->series[id];
		switch (f->type) {
		case PT_COUNTER:
			line(r, name, nl, r->fmt == PROM_FMT_OM ? "_total" : "", s, NULL, "", 0, num,
			     value_text(s, num));
			created(r, name, nl, s);
			break;
		case PT_GAUGE:
			line(r, name, nl, "", s, NULL, "", 0, num, value_text(s, num));
			break;
		default:
			dist_lines(r, f, name, nl, s);
			break;
		}
	}
}

/* target_info: one per (job, instance) among resources with live series (spec). */
static void target_info(struct render *r)
{
	struct prom *p = r->p;
	struct dbi_tbuf *b = r->b;
	bool head = false;
	prom_map_clear(&p->ti_seen);
	for (uint32_t i = 0; i < p->nres_active; i++) {
		uint32_t rid = p->res_active[i];
		struct prom_res *res = &p->res[rid];
		if (!res->labels) {
			if (prom_resource_labels(p, rid, &res->key) != DBI_OK)
				continue;
			res->labels = malloc(p->scratch.len + 1);
			if (!res->labels)
				continue;
			if (p->scratch.len)
				memcpy(res->labels, p->scratch.p, p->scratch.len);
			res->labels[p->scratch.len] = '\0';
			res->labels_len = (uint32_t)p->scratch.len;
		}
		if (!res->labels_len || prom_map_get(&p->ti_seen, res->key) ||
		    prom_map_put(&p->ti_seen, res->key, rid) != DBI_OK)
			continue;
		if (!head) {
			dbi_tbuf_puts(b, r->fmt == PROM_FMT_OM ? "# TYPE target info\n# HELP target Target metadata\n"
			                                       : "# HELP target_info Target metadata\n"
			                                         "# TYPE target_info gauge\n");
			head = true;
		}
		dbi_tbuf_puts(b, "target_info{");
		dbi_tbuf_put(b, res->labels, res->labels_len);
		dbi_tbuf_puts(b, "} 1\n");
	}
}

int prom_render(struct prom *p, struct prom_page *page, unsigned fmts)
{
	int rc = DBI_OK;
	page->fmts = 0;
	for (int f = 0; f < PROM_NFMT; f++) {
		if (!(fmts & PROM_FMT_BIT(f)))
			continue;
		struct dbi_tbuf *b = &page->body[f];
		struct render r = {.p = p, .b = b, .fmt = f, .ts = p->cfg->send_timestamps};
		b->len = 0;
		b->oom = false;
		for (uint32_t i = 0; i < p->nfams; i++)
			if (p->fams[i].nseries)
				family(&r, &p->fams[i]);
		target_info(&r);
		if (f == PROM_FMT_OM)
			dbi_tbuf_puts(b, "# EOF\n");
		dbi_tbuf_putc(b, '\0'); /* a C string for tests and logs; not part of the body */
		b->len -= !b->oom;
		if (b->oom) {
			rc = DBI_ERR;
			continue;
		}
		page->fmts |= PROM_FMT_BIT(f);
	}
	return rc;
}

/* One stream per caller, reset between pages: deflateInit's ~256 KiB would be allocated per render. */
static z_stream *gz_stream(void **keep, z_stream *local)
{
	z_stream *z = keep ? *keep : NULL;
	if (z)
		return deflateReset(z) == Z_OK ? z : NULL;
	z = keep ? calloc(1, sizeof(*z)) : local;
	if (!z)
		return NULL;
	memset(z, 0, sizeof(*z));
	if (deflateInit2(z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		if (keep)
			free(z);
		return NULL;
	}
	if (keep)
		*keep = z;
	return z;
}

void prom_gzip_free(void *keep)
{
	if (keep) {
		deflateEnd(keep);
		free(keep);
	}
}

int prom_gzip(const struct dbi_tbuf *src, struct dbi_tbuf *dst, void **keep)
{
	z_stream local;
	dst->len = 0;
	dst->oom = false;
	if (src->len > UINT_MAX / 2)
		return DBI_ERR; /* one deflate call takes a uInt */
	z_stream *z = gz_stream(keep, &local);
	if (!z)
		return DBI_ERR;
	uLong bound = deflateBound(z, (uLong)src->len);
	int rc = DBI_ERR;
	if (dbi_tbuf_room(dst, bound) == DBI_OK) {
		z->next_in = (Bytef *)src->p;
		z->avail_in = (uInt)src->len;
		z->next_out = (Bytef *)dst->p;
		z->avail_out = (uInt)bound;
		if (deflate(z, Z_FINISH) == Z_STREAM_END) {
			dst->len = z->total_out;
			rc = DBI_OK;
		}
	}
	if (!keep)
		deflateEnd(z);
	return rc;
}
