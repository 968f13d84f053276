/*
 * otlp_decode.c — OTLP export requests into the pipeline's data model.
 *
 * Metrics: every resource, scope, metric descriptor and point attribute set is interned
 * in the series registry, so what goes on is a 48-byte point (gauges and sums) or a
 * byte record (histograms, and the OTLP bytes of exponential histograms and summaries)
 * carrying a series id. Interning costs two RCU hash lookups per point; a direct-mapped
 * cache keyed by (metric, resource, scope, attribute bytes) turns the steady state —
 * the same series arriving every interval — into one probe and a memcmp.
 *
 * Logs and spans stay OTLP: each LogRecord/Span is re-encoded on its own after a
 * struct dbi_otlp_rec with resource and scope ids, its time and trace id, and routed
 * by trace id (whole traces on one processor thread) or, without one, by resource.
 *
 * Nothing here knows about rings or sockets: output goes to a struct otlp_sink, and
 * every item not handed on is counted under one reason (enum otlp_drop) so the
 * front ends can answer with partial_success.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp_int.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue pb_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue pb_any;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope pb_scope;
typedef Opentelemetry__Proto__Resource__V1__Resource pb_resource;
typedef Opentelemetry__Proto__Metrics__V1__Metric pb_metric;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint pb_number;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint pb_hist;
typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest pb_metrics_req;
typedef Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest pb_logs_req;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest pb_trace_req;

#define CACHE_BITS 16
#define CACHE_SIZE (1u << CACHE_BITS)
#define ENC_MAX 16384 /* what dbi_attrs_intern would accept, too */

struct cache_ent {
	uint64_t key;
	uint64_t route;
	uint32_t metric, resource, scope, attrs, series;
	uint32_t pad;
};

struct otlp_dec {
	struct dbi_registry *reg;
	struct cache_ent *cache;
	struct dbi_attr attrs[DBI_ATTRS_MAX];
	uint8_t enc[ENC_MAX];
	uint8_t *anybuf; /* packed AnyValues (arrays, maps) of the attribute set being built */
	size_t anycap;
	int full;                /* the sink gave up in this request: drop the rest */
	char first_invalid[160]; /* detail of the first invalid item */
};

const char *otlp_drop_name(enum otlp_drop d)
{
	static const char *const n[] = {"series_limit", "invalid", "attributes", "too_large", "pipeline_full"};
	return (unsigned)d < OTLP_NDROPS ? n[d] : "?";
}

struct otlp_dec *otlp_dec_create(struct dbi_registry *reg)
{
	struct otlp_dec *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->reg = reg;
	d->cache = calloc(CACHE_SIZE, sizeof(*d->cache));
	d->anycap = 4096;
	d->anybuf = malloc(d->anycap);
	if (!d->cache || !d->anybuf) {
		otlp_dec_destroy(d);
		return NULL;
	}
	return d;
}

void otlp_dec_destroy(struct otlp_dec *d)
{
	if (!d)
		return;
	free(d->cache);
	free(d->anybuf);
	free(d);
}

static void invalid(struct otlp_dec *d, struct otlp_result *r, uint64_t n, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void invalid(struct otlp_dec *d, struct otlp_result *r, uint64_t n, const char *fmt, ...)
{
	r->dropped[OTLP_DROP_INVALID] += n;
	if (!d->first_invalid[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(d->first_invalid, sizeof(d->first_invalid), fmt, ap);
		va_end(ap);
	}
}

/* ---- attributes ---- */

static size_t any_packed_size(const pb_any *v)
{
	return v ? protobuf_c_message_get_packed_size(&v->base) : 0;
}

/*
 * Build the canonical encoding of kvs into d->enc. Strings and bytes point into the
 * message; arrays and maps are packed AnyValues in d->anybuf. Keys that are empty are
 * skipped (the registry cannot hold them). Returns the encoding length via *len;
 * DBI_ERR when the set is too large to intern.
 */
static int build_attrs(struct otlp_dec *d, pb_kv *const *kvs, size_t n, size_t *len)
{
	size_t m = 0, anyneed = 0, anyoff = 0;
	*len = 0;
	if (n > DBI_ATTRS_MAX)
		return DBI_ERR;
	for (size_t i = 0; i < n; i++) {
		const pb_any *v = kvs[i]->value;
		if (v && (v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE ||
		          v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE))
			anyneed += any_packed_size(v);
	}
	if (anyneed > ENC_MAX)
		return DBI_ERR;
	if (anyneed > d->anycap) {
		uint8_t *nb = realloc(d->anybuf, anyneed);
		if (!nb)
			return DBI_ERR;
		d->anybuf = nb;
		d->anycap = anyneed;
	}
	for (size_t i = 0; i < n; i++) {
		const pb_kv *kv = kvs[i];
		const pb_any *v = kv->value;
		struct dbi_attr *a = &d->attrs[m];
		if (!kv->key || !kv->key[0])
			continue;
		memset(a, 0, sizeof(*a));
		a->key = kv->key;
		switch (v ? v->value_case : OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET) {
		case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
			a->type = DBI_AT_STR;
			a->v.s = v->string_value ? v->string_value : "";
			a->vlen = (uint32_t)strlen(a->v.s);
			break;
		case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
			a->type = DBI_AT_BOOL;
			a->v.b = v->bool_value ? 1 : 0;
			break;
		case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
			a->type = DBI_AT_INT;
			a->v.i = v->int_value;
			break;
		case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
			a->type = DBI_AT_DOUBLE;
			a->v.d = v->double_value;
			break;
		case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
			if (v->bytes_value.len > ENC_MAX)
				return DBI_ERR;
			a->type = DBI_AT_BYTES;
			a->v.s = (const char *)v->bytes_value.data;
			a->vlen = (uint32_t)v->bytes_value.len;
			break;
		case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
		case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE: {
			size_t sz = protobuf_c_message_pack(&v->base, d->anybuf + anyoff);
			a->type = DBI_AT_ANYPB;
			a->v.s = (const char *)d->anybuf + anyoff;
			a->vlen = (uint32_t)sz;
			anyoff += sz;
			break;
		}
		default:
			/* empty value (or a profiles string index): an AnyValue with nothing set */
			a->type = DBI_AT_ANYPB;
			a->v.s = "";
			a->vlen = 0;
			break;
		}
		m++;
	}
	if (m == 0)
		return DBI_OK;
	*len = dbi_attrs_encode(d->enc, sizeof(d->enc), d->attrs, m);
	return *len ? DBI_OK : DBI_ERR;
}

/* Intern an encoding; once the series limit is reached only existing sets are found. */
static uint32_t intern_enc(struct otlp_dec *d, const uint8_t *enc, size_t len, int lookup_when_full)
{
	if (lookup_when_full && dbi_registry_series_full(d->reg))
		return dbi_attrs_lookup_enc(d->reg, enc, len);
	return dbi_attrs_intern_enc(d->reg, enc, len);
}

/*
 * The resource's attribute set id, or 0 with *why set. Metrics look up only once the
 * registry is full: a resource that is new then could not get a series anyway.
 */
static uint32_t resource_id(struct otlp_dec *d, const pb_resource *res, int metrics, enum otlp_drop *why)
{
	size_t len;
	uint32_t id;
	if (build_attrs(d, res ? res->attributes : NULL, res ? res->n_attributes : 0, &len) != DBI_OK) {
		*why = OTLP_DROP_ATTRIBUTES;
		return 0;
	}
	id = intern_enc(d, d->enc, len, metrics);
	if (!id)
		*why = metrics && dbi_registry_series_full(d->reg) ? OTLP_DROP_SERIES_LIMIT : OTLP_DROP_ATTRIBUTES;
	return id;
}

static uint32_t scope_id(struct otlp_dec *d, const pb_scope *sc)
{
	return dbi_scope_intern(d->reg, sc && sc->name ? sc->name : "", sc && sc->version ? sc->version : "");
}

/* The series of a point (and its routing hash), through the cache. 0 with *why set. */
static uint32_t series_id(struct otlp_dec *d, uint32_t metric, uint32_t resource, uint32_t scope, pb_kv *const *kvs,
                          size_t n, uint64_t *route, enum otlp_drop *why)
{
	size_t len;
	if (build_attrs(d, kvs, n, &len) != DBI_OK) {
		*why = OTLP_DROP_ATTRIBUTES;
		return 0;
	}
	uint64_t ids = ((uint64_t)metric << 32) ^ ((uint64_t)resource << 12) ^ scope;
	uint64_t key = dbi_hash64(d->enc, len, dbi_mix64(ids));
	struct cache_ent *e = &d->cache[key & (CACHE_SIZE - 1)];
	if (e->key == key && e->series && e->metric == metric && e->resource == resource && e->scope == scope) {
		const struct dbi_attrset *a = dbi_attrs_get(d->reg, e->attrs);
		if (a && a->len == len && (len == 0 || memcmp(a->enc, d->enc, len) == 0)) {
			*route = e->route;
			return e->series;
		}
	}
	uint32_t aid = intern_enc(d, d->enc, len, 1);
	uint32_t sid = aid ? dbi_series_intern(d->reg, metric, resource, scope, aid) : 0;
	if (!sid) {
		*why = dbi_registry_series_full(d->reg) ? OTLP_DROP_SERIES_LIMIT : OTLP_DROP_ATTRIBUTES;
		return 0;
	}
	*e = (struct cache_ent){.key = key,
	                        .route = dbi_series_get(d->reg, sid)->hash,
	                        .metric = metric,
	                        .resource = resource,
	                        .scope = scope,
	                        .attrs = aid,
	                        .series = sid};
	*route = e->route;
	return sid;
}

/* ---- metrics ---- */

static uint8_t temporality(int t)
{
	return t == DBI_TEMP_DELTA || t == DBI_TEMP_CUMULATIVE ? (uint8_t)t : DBI_TEMP_UNSPECIFIED;
}

/* Number of data points a metric carries, and whether they go to the point ring. */
static size_t metric_points(const pb_metric *m, int *as_points)
{
	*as_points = 0;
	switch (m->data_case) {
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
		*as_points = 1;
		return m->gauge ? m->gauge->n_data_points : 0;
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
		*as_points = 1;
		return m->sum ? m->sum->n_data_points : 0;
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
		return m->histogram ? m->histogram->n_data_points : 0;
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
		return m->exponential_histogram ? m->exponential_histogram->n_data_points : 0;
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
		return m->summary ? m->summary->n_data_points : 0;
	default:
		return 0;
	}
}

static int metric_def(const pb_metric *m, struct dbi_metric_def *def)
{
	memset(def, 0, sizeof(*def));
	def->name = m->name;
	def->unit = m->unit ? m->unit : "";
	def->description = m->description ? m->description : "";
	switch (m->data_case) {
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
		def->kind = DBI_MK_GAUGE;
		if (m->gauge->n_data_points)
			def->is_double = m->gauge->data_points[0]->value_case ==
			                 OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
		break;
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
		def->kind = DBI_MK_SUM;
		def->monotonic = m->sum->is_monotonic ? 1 : 0;
		def->temporality = temporality(m->sum->aggregation_temporality);
		if (m->sum->n_data_points)
			def->is_double = m->sum->data_points[0]->value_case ==
			                 OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
		break;
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
		def->kind = DBI_MK_HISTOGRAM;
		def->temporality = temporality(m->histogram->aggregation_temporality);
		def->is_double = 1;
		break;
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
		def->kind = DBI_MK_EXPHISTOGRAM;
		def->temporality = temporality(m->exponential_histogram->aggregation_temporality);
		def->is_double = 1;
		break;
	case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
		def->kind = DBI_MK_SUMMARY;
		def->is_double = 1;
		break;
	default:
		return DBI_ERR;
	}
	return DBI_OK;
}

struct mctx {
	struct otlp_dec *d;
	const struct otlp_sink *s;
	struct otlp_result *r;
	const pb_metric *m;
	uint32_t metric, resource, scope;
};

/* Hand one record to the sink; counts the outcome. */
static void *reserve(struct mctx *x, uint32_t type, size_t len, uint64_t route)
{
	void *rec;
	if (len > x->s->max_record) {
		x->r->dropped[OTLP_DROP_TOO_LARGE]++;
		return NULL;
	}
	if (x->d->full) {
		x->r->dropped[OTLP_DROP_PIPELINE]++;
		return NULL;
	}
	rec = x->s->reserve(x->s->cls, type, (uint32_t)len, route);
	if (!rec) {
		x->d->full = 1;
		x->r->dropped[OTLP_DROP_PIPELINE]++;
	}
	return rec;
}

static void commit(struct mctx *x, void *rec)
{
	x->s->commit(x->s->cls, rec);
	x->r->accepted++;
}

static void emit_number(struct mctx *x, const pb_number *dp, uint8_t kind)
{
	struct dbi_point p = {.time_ns = dp->time_unix_nano, .start_ns = dp->start_time_unix_nano, .kind = kind};
	enum otlp_drop why = OTLP_DROP_ATTRIBUTES;
	uint64_t route;
	if (dp->flags & OPENTELEMETRY__PROTO__METRICS__V1__DATA_POINT_FLAGS__DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK)
		p.flags |= DBI_PF_NOVALUE;
	if (dp->value_case == OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE) {
		p.flags |= DBI_PF_DOUBLE;
		p.v.d = dp->as_double;
	} else if (dp->value_case == OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT) {
		p.v.i = dp->as_int;
	} else if (!(p.flags & DBI_PF_NOVALUE)) {
		invalid(x->d, x->r, 1, "metric \"%.80s\": a data point has no value", x->m->name);
		return;
	}
	p.series = series_id(x->d, x->metric, x->resource, x->scope, dp->attributes, dp->n_attributes, &route, &why);
	if (!p.series) {
		x->r->dropped[why]++;
		return;
	}
	if (x->d->full) {
		x->r->dropped[OTLP_DROP_PIPELINE]++;
		return;
	}
	if (x->s->point(x->s->cls, &p, route) != DBI_OK) {
		x->d->full = 1;
		x->r->dropped[OTLP_DROP_PIPELINE]++;
		return;
	}
	x->r->accepted++;
}

static void emit_hist(struct mctx *x, const pb_hist *dp)
{
	size_t nb = dp->n_explicit_bounds, nc = dp->n_bucket_counts;
	enum otlp_drop why = OTLP_DROP_ATTRIBUTES;
	uint64_t route;
	if ((nc != 0 && nc != nb + 1) || nb > UINT16_MAX) {
		invalid(x->d, x->r, 1, "histogram \"%.80s\": %zu bucket counts for %zu bounds", x->m->name, nc, nb);
		return;
	}
	if (nc == 0)
		nb = 0; /* count and sum only: one bucket holding everything */
	uint32_t series =
	        series_id(x->d, x->metric, x->resource, x->scope, dp->attributes, dp->n_attributes, &route, &why);
	if (!series) {
		x->r->dropped[why]++;
		return;
	}
	struct dbi_hist_rec *h = reserve(x, DBI_REC_HIST, dbi_hist_rec_size((unsigned)nb), route);
	if (!h)
		return;
	h->time_ns = dp->time_unix_nano;
	h->start_ns = dp->start_time_unix_nano;
	h->count = dp->count;
	h->series = series;
	h->nbounds = (uint16_t)nb;
	h->flags = 0;
	h->sum = h->min = h->max = 0;
	if (dp->opt_sum_case == OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_SUM_SUM) {
		h->flags |= DBI_HF_HAS_SUM;
		h->sum = dp->sum;
	}
	if (dp->opt_min_case == OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_MIN_MIN &&
	    dp->opt_max_case == OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_MAX_MAX) {
		h->flags |= DBI_HF_HAS_MINMAX;
		h->min = dp->min;
		h->max = dp->max;
	}
	if (dp->flags & OPENTELEMETRY__PROTO__METRICS__V1__DATA_POINT_FLAGS__DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK)
		h->flags |= DBI_HF_NOVALUE;
	if (nb)
		memcpy(dbi_hist_bounds(h), dp->explicit_bounds, nb * sizeof(double));
	if (nc)
		memcpy(dbi_hist_counts(h), dp->bucket_counts, nc * sizeof(uint64_t));
	else
		dbi_hist_counts(h)[0] = dp->count;
	commit(x, h);
}

/* Exponential histogram and summary points travel as their OTLP bytes. */
static void emit_pb_point(struct mctx *x, const ProtobufCMessage *dp, pb_kv *const *kvs, size_t n, uint32_t type)
{
	enum otlp_drop why = OTLP_DROP_ATTRIBUTES;
	uint64_t route;
	uint32_t series = series_id(x->d, x->metric, x->resource, x->scope, kvs, n, &route, &why);
	if (!series) {
		x->r->dropped[why]++;
		return;
	}
	size_t pb = protobuf_c_message_get_packed_size(dp);
	struct dbi_otlp_point_rec *rec = reserve(x, type, sizeof(*rec) + pb, route);
	if (!rec)
		return;
	rec->series = series;
	rec->pb_len = (uint32_t)protobuf_c_message_pack(dp, (uint8_t *)(rec + 1));
	commit(x, rec);
}

static void emit_metric(struct mctx *x)
{
	const pb_metric *m = x->m;
	struct dbi_metric_def def;
	int as_points;
	size_t n = metric_points(m, &as_points);
	if (n == 0)
		return;
	if (!m->name || !m->name[0]) {
		invalid(x->d, x->r, n, "a metric has no name");
		return;
	}
	if (metric_def(m, &def) != DBI_OK || !(x->metric = dbi_metric_intern(x->d->reg, &def))) {
		invalid(x->d, x->r, n, "metric \"%.80s\" cannot be registered", m->name);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		switch (m->data_case) {
		case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
			emit_number(x, m->gauge->data_points[i], DBI_PK_GAUGE);
			break;
		case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
			emit_number(x, m->sum->data_points[i], DBI_PK_SUM);
			break;
		case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
			emit_hist(x, m->histogram->data_points[i]);
			break;
		case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM: {
			const Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint *dp =
			        m->exponential_histogram->data_points[i];
			emit_pb_point(x, &dp->base, dp->attributes, dp->n_attributes, DBI_REC_EXPHIST);
			break;
		}
		case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY: {
			const Opentelemetry__Proto__Metrics__V1__SummaryDataPoint *dp = m->summary->data_points[i];
			emit_pb_point(x, &dp->base, dp->attributes, dp->n_attributes, DBI_REC_SUMMARY);
			break;
		}
		default:
			break;
		}
	}
}

static size_t scope_metrics_points(const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm)
{
	size_t n = 0;
	int p;
	for (size_t k = 0; k < sm->n_metrics; k++)
		n += metric_points(sm->metrics[k], &p);
	return n;
}

static void emit_metrics(struct otlp_dec *d, const pb_metrics_req *req, const struct otlp_sink *s,
                         struct otlp_result *r)
{
	struct mctx x = {.d = d, .s = s, .r = r};
	for (size_t i = 0; i < req->n_resource_metrics; i++) {
		const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm = req->resource_metrics[i];
		enum otlp_drop why = OTLP_DROP_ATTRIBUTES;
		x.resource = resource_id(d, rm->resource, 1, &why);
		for (size_t j = 0; j < rm->n_scope_metrics; j++) {
			const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm = rm->scope_metrics[j];
			if (!x.resource) {
				r->dropped[why] += scope_metrics_points(sm);
				continue;
			}
			x.scope = scope_id(d, sm->scope);
			for (size_t k = 0; k < sm->n_metrics; k++) {
				x.m = sm->metrics[k];
				if (!x.scope) {
					int p;
					invalid(d, r, metric_points(x.m, &p), "a scope cannot be registered");
					continue;
				}
				emit_metric(&x);
			}
		}
	}
}

/* ---- logs and spans ---- */

static uint64_t otlp_route(struct otlp_dec *d, const ProtobufCBinaryData *trace_id, uint32_t resource)
{
	if (trace_id->len == 16)
		return dbi_hash64(trace_id->data, 16, 0x7e);
	const struct dbi_attrset *a = dbi_attrs_get(d->reg, resource);
	return a ? a->hash : 0;
}

static void emit_otlp_rec(struct mctx *x, const ProtobufCMessage *msg, uint32_t type, uint64_t time_ns,
                          const ProtobufCBinaryData *trace_id)
{
	size_t pb = protobuf_c_message_get_packed_size(msg);
	struct dbi_otlp_rec *rec = reserve(x, type, sizeof(*rec) + pb, otlp_route(x->d, trace_id, x->resource));
	if (!rec)
		return;
	rec->time_ns = time_ns;
	rec->resource = x->resource;
	rec->scope = x->scope;
	memset(rec->trace_id, 0, sizeof(rec->trace_id));
	if (trace_id->len == 16)
		memcpy(rec->trace_id, trace_id->data, 16);
	rec->pad = 0;
	rec->pb_len = (uint32_t)protobuf_c_message_pack(msg, (uint8_t *)(rec + 1));
	commit(x, rec);
}

static void emit_logs(struct otlp_dec *d, const pb_logs_req *req, const struct otlp_sink *s, struct otlp_result *r)
{
	struct mctx x = {.d = d, .s = s, .r = r};
	for (size_t i = 0; i < req->n_resource_logs; i++) {
		const Opentelemetry__Proto__Logs__V1__ResourceLogs *rl = req->resource_logs[i];
		enum otlp_drop why = OTLP_DROP_ATTRIBUTES;
		x.resource = resource_id(d, rl->resource, 0, &why);
		for (size_t j = 0; j < rl->n_scope_logs; j++) {
			const Opentelemetry__Proto__Logs__V1__ScopeLogs *sl = rl->scope_logs[j];
			x.scope = x.resource ? scope_id(d, sl->scope) : 0;
			if (!x.scope) {
				r->dropped[x.resource ? OTLP_DROP_INVALID : why] += sl->n_log_records;
				continue;
			}
			for (size_t k = 0; k < sl->n_log_records; k++) {
				const Opentelemetry__Proto__Logs__V1__LogRecord *lr = sl->log_records[k];
				if ((lr->trace_id.len != 0 && lr->trace_id.len != 16) ||
				    (lr->span_id.len != 0 && lr->span_id.len != 8)) {
					invalid(d, r, 1, "a log record has a trace id of %zu or span id of %zu bytes",
					        lr->trace_id.len, lr->span_id.len);
					continue;
				}
				emit_otlp_rec(&x, &lr->base, DBI_REC_LOG,
				              lr->time_unix_nano ? lr->time_unix_nano : lr->observed_time_unix_nano,
				              &lr->trace_id);
			}
		}
	}
}

static void emit_spans(struct otlp_dec *d, const pb_trace_req *req, const struct otlp_sink *s, struct otlp_result *r)
{
	struct mctx x = {.d = d, .s = s, .r = r};
	for (size_t i = 0; i < req->n_resource_spans; i++) {
		const Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = req->resource_spans[i];
		enum otlp_drop why = OTLP_DROP_ATTRIBUTES;
		x.resource = resource_id(d, rs->resource, 0, &why);
		for (size_t j = 0; j < rs->n_scope_spans; j++) {
			const Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = rs->scope_spans[j];
			x.scope = x.resource ? scope_id(d, ss->scope) : 0;
			if (!x.scope) {
				r->dropped[x.resource ? OTLP_DROP_INVALID : why] += ss->n_spans;
				continue;
			}
			for (size_t k = 0; k < ss->n_spans; k++) {
				const Opentelemetry__Proto__Trace__V1__Span *sp = ss->spans[k];
				if (sp->trace_id.len != 16 || sp->span_id.len != 8 ||
				    (sp->parent_span_id.len != 0 && sp->parent_span_id.len != 8)) {
					invalid(d, r, 1, "span \"%.80s\": trace id of %zu or span id of %zu bytes",
					        sp->name ? sp->name : "", sp->trace_id.len, sp->span_id.len);
					continue;
				}
				emit_otlp_rec(&x, &sp->base, DBI_REC_SPAN, sp->start_time_unix_nano, &sp->trace_id);
			}
		}
	}
}

/* ---- requests ---- */

void otlp_count(enum otlp_signal sig, const ProtobufCMessage *req, struct otlp_need *need)
{
	memset(need, 0, sizeof(*need));
	if (sig == OTLP_METRICS) {
		const pb_metrics_req *m = (const pb_metrics_req *)req;
		for (size_t i = 0; i < m->n_resource_metrics; i++)
			for (size_t j = 0; j < m->resource_metrics[i]->n_scope_metrics; j++) {
				const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm =
				        m->resource_metrics[i]->scope_metrics[j];
				for (size_t k = 0; k < sm->n_metrics; k++) {
					int as_points;
					size_t n = metric_points(sm->metrics[k], &as_points);
					need->items += n;
					if (as_points)
						need->points += n;
					else
						need->records += n;
				}
			}
	} else if (sig == OTLP_LOGS) {
		const pb_logs_req *l = (const pb_logs_req *)req;
		for (size_t i = 0; i < l->n_resource_logs; i++)
			for (size_t j = 0; j < l->resource_logs[i]->n_scope_logs; j++)
				need->records += l->resource_logs[i]->scope_logs[j]->n_log_records;
		need->items = need->records;
	} else {
		const pb_trace_req *t = (const pb_trace_req *)req;
		for (size_t i = 0; i < t->n_resource_spans; i++)
			for (size_t j = 0; j < t->resource_spans[i]->n_scope_spans; j++)
				need->records += t->resource_spans[i]->scope_spans[j]->n_spans;
		need->items = need->records;
	}
}

static void compose_message(struct otlp_dec *d, enum otlp_signal sig, struct otlp_result *r)
{
	static const char *const what[] = {"data points", "log records", "spans"};
	static const char *const why[] = {
	        [OTLP_DROP_SERIES_LIMIT] = "series limit reached (runtime.max_series)",
	        [OTLP_DROP_INVALID] = "invalid",
	        [OTLP_DROP_ATTRIBUTES] = "attribute set too large (over 128 attributes or 16 KiB)",
	        [OTLP_DROP_TOO_LARGE] = "item larger than the pipeline's largest record",
	        [OTLP_DROP_PIPELINE] = "pipeline full",
	};
	uint64_t rej = otlp_result_rejected(r);
	size_t o;
	r->msg[0] = '\0';
	if (!rej)
		return;
	o = (size_t)snprintf(r->msg, sizeof(r->msg), "%llu of %llu %s rejected:", (unsigned long long)rej,
	                     (unsigned long long)r->items, what[sig]);
	for (int i = 0; i < OTLP_NDROPS && o < sizeof(r->msg); i++) {
		if (!r->dropped[i])
			continue;
		o += (size_t)snprintf(r->msg + o, sizeof(r->msg) - o, " %llu %s%s%s%s;",
		                      (unsigned long long)r->dropped[i], why[i],
		                      i == OTLP_DROP_INVALID && d->first_invalid[0] ? " (" : "",
		                      i == OTLP_DROP_INVALID ? d->first_invalid : "",
		                      i == OTLP_DROP_INVALID && d->first_invalid[0] ? ")" : "");
	}
	if (o < sizeof(r->msg) && o > 0 && r->msg[o - 1] == ';')
		r->msg[o - 1] = '\0';
}

void otlp_emit(struct otlp_dec *d, enum otlp_signal sig, const ProtobufCMessage *req, const struct otlp_sink *s,
               struct otlp_result *r)
{
	struct otlp_need need;
	memset(r, 0, sizeof(*r));
	d->full = 0;
	d->first_invalid[0] = '\0';
	otlp_count(sig, req, &need);
	r->items = need.items;
	if (sig == OTLP_METRICS)
		emit_metrics(d, (const pb_metrics_req *)req, s, r);
	else if (sig == OTLP_LOGS)
		emit_logs(d, (const pb_logs_req *)req, s, r);
	else
		emit_spans(d, (const pb_trace_req *)req, s, r);
	compose_message(d, sig, r);
}
