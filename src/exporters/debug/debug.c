/*
 * debug.c — the `debug` exporter (OTel semantics): writes what reaches it to stdout.
 * verbosity basic: one line per batch with counts; normal: one line per point or record;
 * detailed: every point with its resource, scope, timestamps and type. It is how a new
 * user sees the collector working, so the output is meant to be read by people.
 * `format: json` writes one JSON object per point instead (name, unit, type, value,
 * timestamps, attributes, resource), for tests and scripts that check what was exported.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/otlp_json.h"
#include "dbi/otlp_pb.h"
#include "dbi/registry.h"
#include "opentelemetry/proto/logs/v1/logs.pb-c.h"
#include "opentelemetry/proto/metrics/v1/metrics.pb-c.h"
#include "opentelemetry/proto/trace/v1/trace.pb-c.h"

struct debug_cfg {
	int verbosity;
	int output;
	int format;
};

enum { V_BASIC, V_NORMAL, V_DETAILED };

static const struct dbi_conf_key debug_keys[] = {
        {.name = "verbosity",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct debug_cfg, verbosity),
         .def = "basic",
         .choices = "basic|normal|detailed",
         .doc = "basic: counts per batch; normal: a line per item; detailed: all"},
        {.name = "output",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct debug_cfg, output),
         .def = "stdout",
         .choices = "stdout|stderr",
         .doc = "where to write"},
        {.name = "format",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct debug_cfg, format),
         .def = "text",
         .choices = "text|json",
         .doc = "text for people; json: one object per point, histogram or log/span record per line"},
        DBI_CONF_END,
};

enum { D_POINTS, D_RECORDS, D_BATCHES, D_NSTATS };
static const struct dbi_stat_def debug_stats[] = {
        [D_POINTS] = {"points", DBI_STAT_COUNTER, "points written"},
        [D_RECORDS] = {"records", DBI_STAT_COUNTER, "records written"},
        [D_BATCHES] = {"batches", DBI_STAT_COUNTER, "batches written"},
        [D_NSTATS] = {NULL, 0, NULL},
};

struct debug {
	const struct debug_cfg *cfg;
	struct dbi_registry *reg;
	struct dbi_stats *st;
	FILE *out;
	char *buf; /* one batch's text, written at once */
	size_t cap, len;
};

static int debug_create(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err)
{
	struct debug *d = calloc(1, sizeof(*d));
	if (!d || !(d->buf = malloc(1 << 20))) {
		free(d);
		dbi_err_add(err, "%s: out of memory", inst->id);
		return DBI_ERR;
	}
	d->cap = 1 << 20;
	d->cfg = inst->cfg;
	d->reg = inst->reg;
	d->st = inst->stats;
	d->out = d->cfg->output ? stderr : stdout;
	*state = d;
	return DBI_OK;
}

static void debug_destroy(void *state)
{
	struct debug *d = state;
	free(d->buf);
	free(d);
}

static void emit(struct debug *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct debug *d, const char *fmt, ...)
{
	va_list ap;
	if (d->cap - d->len < 4096) {
		fwrite(d->buf, 1, d->len, d->out);
		d->len = 0;
	}
	va_start(ap, fmt);
	int n = vsnprintf(d->buf + d->len, d->cap - d->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		d->len += DBI_MIN((size_t)n, d->cap - d->len - 1);
}

static const char *kind_name(const struct dbi_metric *m)
{
	switch (m->kind) {
	case DBI_MK_GAUGE:
		return "gauge";
	case DBI_MK_SUM:
		return m->monotonic ? "sum(monotonic)" : "sum";
	case DBI_MK_HISTOGRAM:
		return "histogram";
	case DBI_MK_EXPHISTOGRAM:
		return "exponential_histogram";
	case DBI_MK_SUMMARY:
		return "summary";
	}
	return "?";
}

/* Temporality of sums and histograms (OTel's debug exporter shows it too); NULL for the rest. */
static const char *temporality_text(const struct dbi_metric *m)
{
	if (!m || (m->kind != DBI_MK_SUM && m->kind != DBI_MK_HISTOGRAM && m->kind != DBI_MK_EXPHISTOGRAM))
		return NULL;
	switch (m->temporality) {
	case DBI_TEMP_DELTA:
		return "delta";
	case DBI_TEMP_CUMULATIVE:
		return "cumulative";
	}
	return "unspecified";
}

static void series_text(struct debug *d, uint32_t sid, const struct dbi_metric **mout, char *attrs, size_t alen,
                        char *res, size_t rlen)
{
	const struct dbi_series *s = dbi_series_get(d->reg, sid);
	*mout = s ? dbi_metric_get(d->reg, s->metric) : NULL;
	attrs[0] = '\0';
	res[0] = '\0';
	if (!s)
		return;
	const struct dbi_attrset *a = dbi_attrs_get(d->reg, s->attrs);
	const struct dbi_attrset *r = dbi_attrs_get(d->reg, s->resource);
	if (a)
		dbi_attrs_format(a->enc, a->len, attrs, alen);
	if (r)
		dbi_attrs_format(r->enc, r->len, res, rlen);
}

static void print_point(struct debug *d, const struct dbi_point *p)
{
	const struct dbi_metric *m;
	char attrs[1024], res[1024], ts[40];
	series_text(d, p->series, &m, attrs, sizeof(attrs), res, sizeof(res));
	const char *name = m ? m->name : "?";
	char val[64];
	if (p->flags & DBI_PF_DOUBLE)
		snprintf(val, sizeof(val), "%.17g", p->v.d);
	else
		snprintf(val, sizeof(val), "%" PRId64, p->v.i);
	if (d->cfg->verbosity == V_NORMAL) {
		emit(d, "%s{%s} %s\n", name, attrs, val);
		return;
	}
	emit(d, "metric %s (%s, unit %s) value %s\n  attributes: {%s}\n  resource: {%s}\n  time %s", name,
	     m ? kind_name(m) : "?", m && *m->unit ? m->unit : "-", val, attrs, res,
	     dbi_fmt_time(p->time_ns, ts, sizeof(ts)));
	if (p->start_ns)
		emit(d, " start %s", dbi_fmt_time(p->start_ns, ts, sizeof(ts)));
	emit(d, "\n");
	if (temporality_text(m))
		emit(d, "  temporality: %s\n", temporality_text(m));
}

static void print_hist(struct debug *d, const struct dbi_rec_hdr *h)
{
	const struct dbi_hist_rec *r = (const struct dbi_hist_rec *)h;
	const struct dbi_metric *m;
	char attrs[1024], res[1024];
	series_text(d, r->series, &m, attrs, sizeof(attrs), res, sizeof(res));
	emit(d, "%s{%s} histogram count=%" PRIu64 " sum=%g buckets=[", m ? m->name : "?", attrs, r->count, r->sum);
	const double *bounds = (const double *)(const void *)(r + 1);
	const uint64_t *counts = (const uint64_t *)(const void *)(bounds + r->nbounds);
	for (unsigned i = 0; i <= r->nbounds; i++) {
		if (i < r->nbounds)
			emit(d, "%s<=%g:%" PRIu64, i ? " " : "", bounds[i], counts[i]);
		else
			emit(d, " +Inf:%" PRIu64, counts[i]);
	}
	emit(d, "]\n");
	if (d->cfg->verbosity == V_DETAILED) {
		emit(d, "  resource: {%s}\n", res);
		if (temporality_text(m))
			emit(d, "  temporality: %s\n", temporality_text(m));
	}
}

/* detailed: the OTLP message a record carries, as one line of OTLP/JSON */
static void print_otlp(struct debug *d, const ProtobufCMessageDescriptor *desc, const uint8_t *pb, size_t len)
{
	ProtobufCMessage *m = NULL;
	char *json = NULL;
	size_t jlen;
	if (d->cfg->verbosity != V_DETAILED || dbi_otlp_pb_unpack(desc, pb, len, &m, NULL) != DBI_OK)
		return;
	if (dbi_otlp_json_encode(m, &json, &jlen) == DBI_OK)
		emit(d, "  otlp: %.*s\n", (int)DBI_MIN(jlen, 3000), json);
	free(json);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void print_record(struct debug *d, const struct dbi_rec_hdr *h)
{
	if (h->type == DBI_REC_HIST) {
		print_hist(d, h);
		return;
	}
	const char *what = h->type == DBI_REC_LOG ? "log" : h->type == DBI_REC_SPAN ? "span" : "point";
	if (h->type == DBI_REC_LOG || h->type == DBI_REC_SPAN) {
		const struct dbi_otlp_rec *r = (const struct dbi_otlp_rec *)h;
		char res[1024] = "", ts[40];
		const struct dbi_attrset *ra = dbi_attrs_get(d->reg, r->resource);
		if (ra)
			dbi_attrs_format(ra->enc, ra->len, res, sizeof(res));
		emit(d, "%s at %s (%u bytes OTLP) resource {%s}\n", what, dbi_fmt_time(r->time_ns, ts, sizeof(ts)),
		     r->pb_len, res);
		print_otlp(d,
		           h->type == DBI_REC_LOG ? &opentelemetry__proto__logs__v1__log_record__descriptor
		                                  : &opentelemetry__proto__trace__v1__span__descriptor,
		           dbi_otlp_rec_pb(r), r->pb_len);
		return;
	}
	emit(d, "%s record (%u bytes)\n", what, h->len);
	if (h->type == DBI_REC_EXPHIST || h->type == DBI_REC_SUMMARY) {
		const struct dbi_otlp_point_rec *r = (const struct dbi_otlp_point_rec *)h;
		print_otlp(d,
		           h->type == DBI_REC_EXPHIST
		                   ? &opentelemetry__proto__metrics__v1__exponential_histogram_data_point__descriptor
		                   : &opentelemetry__proto__metrics__v1__summary_data_point__descriptor,
		           (const uint8_t *)(r + 1), r->pb_len);
	}
}

/* A JSON string: attribute keys and values come from outside and may hold anything. */
static void json_str(struct debug *d, const char *s, size_t n)
{
	emit(d, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			emit(d, "\\%c", c);
		else if (c < 0x20)
			emit(d, "\\u%04x", c);
		else
			emit(d, "%c", c);
	}
	emit(d, "\"");
}

static void json_attrs(struct debug *d, uint32_t id)
{
	const struct dbi_attrset *a = dbi_attrs_get(d->reg, id);
	struct dbi_attr_iter it;
	struct dbi_attr at;
	int first = 1;
	emit(d, "{");
	if (a) {
		dbi_attrs_iter_init(&it, a->enc, a->len);
		while (dbi_attrs_next(&it, &at)) {
			emit(d, "%s", first ? "" : ",");
			first = 0;
			json_str(d, at.key, at.klen ? at.klen : strlen(at.key));
			emit(d, ":");
			if (at.type == DBI_AT_STR)
				json_str(d, at.v.s, at.vlen);
			else if (at.type == DBI_AT_INT)
				emit(d, "%" PRId64, at.v.i);
			else if (at.type == DBI_AT_DOUBLE)
				emit(d, "%.17g", at.v.d);
			else if (at.type == DBI_AT_BOOL)
				emit(d, "%s", at.v.b ? "true" : "false");
			else
				emit(d, "null");
		}
	}
	emit(d, "}");
}

static void json_point(struct debug *d, const struct dbi_point *p)
{
	const struct dbi_series *s = dbi_series_get(d->reg, p->series);
	const struct dbi_metric *m = s ? dbi_metric_get(d->reg, s->metric) : NULL;
	if (!m)
		return;
	emit(d, "{\"metric\":");
	json_str(d, m->name, strlen(m->name));
	emit(d, ",\"unit\":");
	json_str(d, m->unit ? m->unit : "", m->unit ? strlen(m->unit) : 0);
	emit(d, ",\"type\":\"%s\",\"monotonic\":%s,\"double\":%s,\"value\":", m->kind == DBI_MK_SUM ? "sum" : "gauge",
	     m->monotonic ? "true" : "false", (p->flags & DBI_PF_DOUBLE) ? "true" : "false");
	if (p->flags & DBI_PF_NOVALUE)
		emit(d, "null");
	else if (p->flags & DBI_PF_DOUBLE)
		emit(d, "%.17g", isfinite(p->v.d) ? p->v.d : 0.0);
	else
		emit(d, "%" PRId64, p->v.i);
	emit(d, ",\"time\":%" PRIu64 ",\"start\":%" PRIu64 ",\"attributes\":", p->time_ns, p->start_ns);
	json_attrs(d, s->attrs);
	emit(d, ",\"resource\":");
	json_attrs(d, s->resource);
	emit(d, "}\n");
}

static void json_record(struct debug *d, const struct dbi_rec_hdr *h)
{
	if (h->type == DBI_REC_HIST) {
		const struct dbi_hist_rec *r = (const struct dbi_hist_rec *)h;
		const struct dbi_series *s = dbi_series_get(d->reg, r->series);
		const struct dbi_metric *m = s ? dbi_metric_get(d->reg, s->metric) : NULL;
		const double *bounds = (const double *)(const void *)(r + 1);
		const uint64_t *counts = (const uint64_t *)(const void *)(bounds + r->nbounds);
		if (!m)
			return;
		emit(d, "{\"metric\":");
		json_str(d, m->name, strlen(m->name));
		emit(d, ",\"unit\":");
		json_str(d, m->unit ? m->unit : "", m->unit ? strlen(m->unit) : 0);
		emit(d, ",\"type\":\"histogram\",\"count\":%" PRIu64 ",\"sum\":%.17g,\"bounds\":[", r->count,
		     isfinite(r->sum) ? r->sum : 0.0);
		for (unsigned i = 0; i < r->nbounds; i++)
			emit(d, "%s%.17g", i ? "," : "", bounds[i]);
		emit(d, "],\"counts\":[");
		for (unsigned i = 0; i <= r->nbounds; i++)
			emit(d, "%s%" PRIu64, i ? "," : "", counts[i]);
		emit(d, "],\"time\":%" PRIu64 ",\"start\":%" PRIu64 ",\"attributes\":", r->time_ns, r->start_ns);
		json_attrs(d, s->attrs);
		emit(d, ",\"resource\":");
		json_attrs(d, s->resource);
		emit(d, "}\n");
		return;
	}
	if (h->type == DBI_REC_LOG || h->type == DBI_REC_SPAN) {
		const struct dbi_otlp_rec *r = (const struct dbi_otlp_rec *)h;
		emit(d, "{\"record\":\"%s\",\"time\":%" PRIu64 ",\"bytes\":%u,\"resource\":",
		     h->type == DBI_REC_LOG ? "log" : "span", r->time_ns, r->pb_len);
		json_attrs(d, r->resource);
		emit(d, "}\n");
	}
}

static int debug_consume(void *state, struct dbi_batch *b, struct dbi_next *next)
{
	struct debug *d = state;
	char ts[40];
	(void)next;
	d->len = 0;
	if (d->cfg->format == 1) {
		for (uint32_t i = 0; i < b->npts; i++)
			json_point(d, &b->pts[i]);
		for (uint32_t i = 0; i < b->nrecs; i++)
			json_record(d, b->recs[i]);
		goto out;
	}
	emit(d, "%s %s: %u points, %u records\n", dbi_fmt_time(dbi_wall_ns(), ts, sizeof(ts)),
	     dbi_signal_name(b->signal), b->npts, b->nrecs);
	if (d->cfg->verbosity != V_BASIC) {
		for (uint32_t i = 0; i < b->npts; i++)
			print_point(d, &b->pts[i]);
		for (uint32_t i = 0; i < b->nrecs; i++)
			print_record(d, b->recs[i]);
	}
out:
	fwrite(d->buf, 1, d->len, d->out);
	fflush(d->out);
	dbi_stats_add(d->st, D_POINTS, b->npts);
	dbi_stats_add(d->st, D_RECORDS, b->nrecs);
	dbi_stats_add(d->st, D_BATCHES, 1);
	return DBI_OK;
}

const struct dbi_component dbi_exporter_debug = {
        .type = "debug",
        .kind = DBI_EXPORTER,
        .signals = DBI_SIG_METRICS | DBI_SIG_LOGS | DBI_SIG_TRACES,
        .doc = "writes what it receives to stdout (basic | normal | detailed)",
        .keys = debug_keys,
        .conf_size = sizeof(struct debug_cfg),
        .stats = debug_stats,
        .create = debug_create,
        .destroy = debug_destroy,
        .consume = debug_consume,
};
