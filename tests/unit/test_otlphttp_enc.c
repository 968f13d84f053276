/*
 * test_otlphttp_enc.c — the otlphttp exporter's hand-written OTLP encoder, checked
 * against independent decoders: protobuf-c's generated code (every field compared), the
 * JSON rendering of what protobuf-c decoded (the whole request against a literal), and
 * protoc --decode when protoc is installed. Also: the New Relic limits, logs and spans,
 * cutting requests into item ranges (nothing lost or duplicated), and hostile input
 * (malformed records, mutated requests) never crashing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/exporters/otlphttp/otlp_enc.h"
#include "dbi/otlp_json.h"
#include "dbi/otlp_pb.h"
#include "dbi/registry.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest MReq;
typedef Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest LReq;
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest TReq;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Common__V1__KeyValue KV;

#define T0 1700000000000000000ULL
#define T1 1700000010000000000ULL

static MReq *unpack_metrics(const struct dbi_obuf *b)
{
	ProtobufCMessage *m = NULL;
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	int rc = dbi_otlp_pb_unpack(
	        &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor, b->data,
	        b->len, &m, &err);
	if (rc != DBI_OK)
		fprintf(stderr, "unpack: %s\n", err.msg);
	assert_int_equal(rc, DBI_OK);
	return (MReq *)m;
}

static const KV *find_kv(KV **kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(kv[i]->key, key) == 0)
			return kv[i];
	return NULL;
}

static const char *kv_str(KV **kv, size_t n, const char *key)
{
	const KV *k = find_kv(kv, n, key);
	if (!k || k->value->value_case != OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
		return NULL;
	return k->value->string_value;
}

static const Metric *find_metric(const MReq *r, size_t res, size_t scope, const char *name)
{
	const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm = r->resource_metrics[res]->scope_metrics[scope];
	for (size_t i = 0; i < sm->n_metrics; i++)
		if (strcmp(sm->metrics[i]->name, name) == 0)
			return sm->metrics[i];
	return NULL;
}

/* ---- a registry with a bit of everything ---- */

struct world {
	struct dbi_registry *reg;
	uint32_t res_a, res_b, scope_pg, scope_x;
	uint32_t m_gauge, m_sum, m_updown, m_hist, m_exp, m_summary;
	uint32_t s_gauge_a1, s_gauge_a2, s_sum_a, s_sum_b, s_updown_b, s_hist_a, s_exp_a, s_summary_b, s_other_scope;
};

static uint32_t attrs1(struct dbi_registry *reg, const char *k, const char *v)
{
	struct dbi_attr a = {.key = k, .type = DBI_AT_STR, .v.s = v};
	return dbi_attrs_intern(reg, &a, 1);
}

static void world_build(struct world *w)
{
	memset(w, 0, sizeof(*w));
	w->reg = dbi_registry_create(1000);
	assert_non_null(w->reg);
	struct dbi_attr ra[] = {
	        {.key = "service.instance.id", .type = DBI_AT_STR, .v.s = "db01:5432"},
	        {.key = "server.port", .type = DBI_AT_INT, .v.i = 5432},
	        {.key = "pg.primary", .type = DBI_AT_BOOL, .v.b = 1},
	        {.key = "pg.load", .type = DBI_AT_DOUBLE, .v.d = 0.25},
	};
	w->res_a = dbi_attrs_intern(w->reg, ra, 4);
	w->res_b = attrs1(w->reg, "service.instance.id", "db02:5432");
	w->scope_pg = dbi_scope_intern(w->reg, "dbi/postgresql", "0.1.0");
	w->scope_x = dbi_scope_intern(w->reg, "other", "");
	struct dbi_metric_def md[] = {
	        {"pg.conn", "{connection}", "connections", DBI_MK_GAUGE, 0, 0, 0},
	        {"pg.commits", "{commit}", "commits", DBI_MK_SUM, 1, DBI_TEMP_CUMULATIVE, 0},
	        {"pg.updown", "", "", DBI_MK_SUM, 0, DBI_TEMP_DELTA, 1},
	        {"pg.latency", "ms", "query latency", DBI_MK_HISTOGRAM, 0, DBI_TEMP_DELTA, 1},
	        {"pg.exp", "ms", "", DBI_MK_EXPHISTOGRAM, 0, DBI_TEMP_CUMULATIVE, 1},
	        {"pg.summary", "s", "", DBI_MK_SUMMARY, 0, 0, 1},
	};
	w->m_gauge = dbi_metric_intern(w->reg, &md[0]);
	w->m_sum = dbi_metric_intern(w->reg, &md[1]);
	w->m_updown = dbi_metric_intern(w->reg, &md[2]);
	w->m_hist = dbi_metric_intern(w->reg, &md[3]);
	w->m_exp = dbi_metric_intern(w->reg, &md[4]);
	w->m_summary = dbi_metric_intern(w->reg, &md[5]);
	uint32_t db1 = attrs1(w->reg, "postgresql.database.name", "app"),
	         db2 = attrs1(w->reg, "postgresql.database.name", "b\xc3\xa4r"),
	         none = dbi_attrs_intern(w->reg, NULL, 0);
	w->s_gauge_a1 = dbi_series_intern(w->reg, w->m_gauge, w->res_a, w->scope_pg, db1);
	w->s_gauge_a2 = dbi_series_intern(w->reg, w->m_gauge, w->res_a, w->scope_pg, db2);
	w->s_sum_a = dbi_series_intern(w->reg, w->m_sum, w->res_a, w->scope_pg, db1);
	w->s_sum_b = dbi_series_intern(w->reg, w->m_sum, w->res_b, w->scope_pg, db1);
	w->s_updown_b = dbi_series_intern(w->reg, w->m_updown, w->res_b, w->scope_pg, none);
	w->s_hist_a = dbi_series_intern(w->reg, w->m_hist, w->res_a, w->scope_pg, db2);
	w->s_exp_a = dbi_series_intern(w->reg, w->m_exp, w->res_a, w->scope_pg, db1);
	w->s_summary_b = dbi_series_intern(w->reg, w->m_summary, w->res_b, w->scope_pg, db2);
	w->s_other_scope = dbi_series_intern(w->reg, w->m_gauge, w->res_a, w->scope_x, none);
	assert_true(w->s_gauge_a1 && w->s_gauge_a2 && w->s_sum_a && w->s_sum_b && w->s_updown_b && w->s_hist_a &&
	            w->s_exp_a && w->s_summary_b && w->s_other_scope);
}

static struct dbi_point pt_i(uint32_t series, int64_t v, uint64_t start)
{
	struct dbi_point p = {.time_ns = T1, .start_ns = start, .series = series, .kind = DBI_PK_SUM};
	p.v.i = v;
	return p;
}

static struct dbi_point pt_d(uint32_t series, double v)
{
	struct dbi_point p = {.time_ns = T1, .series = series, .kind = DBI_PK_GAUGE, .flags = DBI_PF_DOUBLE};
	p.v.d = v;
	return p;
}

/* Explicit histogram record: 2 bounds, 3 counts. */
static struct dbi_hist_rec *make_hist(uint32_t series)
{
	size_t sz = dbi_hist_rec_size(2);
	struct dbi_hist_rec *r = calloc(1, sz);
	r->h.type = DBI_REC_HIST;
	r->h.len = (uint32_t)sz;
	r->time_ns = T1;
	r->start_ns = T0;
	r->count = 6;
	r->sum = 31.5;
	r->min = 0.5;
	r->max = 12.25;
	r->series = series;
	r->flags = DBI_HF_HAS_SUM | DBI_HF_HAS_MINMAX;
	r->nbounds = 2;
	dbi_hist_bounds(r)[0] = 1;
	dbi_hist_bounds(r)[1] = 10;
	dbi_hist_counts(r)[0] = 1;
	dbi_hist_counts(r)[1] = 3;
	dbi_hist_counts(r)[2] = 2;
	return r;
}

/* Pass-through record holding a packed data point message. */
static struct dbi_otlp_point_rec *make_passthrough(uint32_t type, uint32_t series, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	struct dbi_otlp_point_rec *r = calloc(1, sizeof(*r) + n);
	r->h.type = type;
	r->h.len = (uint32_t)(sizeof(*r) + n);
	r->series = series;
	r->pb_len = (uint32_t)n;
	protobuf_c_message_pack(m, (uint8_t *)(r + 1));
	return r;
}

static struct dbi_otlp_point_rec *make_exp(uint32_t series, int with_attrs)
{
	Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint ep;
	Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint__Buckets pos;
	uint64_t counts[3] = {1, 2, 3};
	KV kv, *kvs[1] = {&kv};
	Opentelemetry__Proto__Common__V1__AnyValue av;
	opentelemetry__proto__metrics__v1__exponential_histogram_data_point__init(&ep);
	opentelemetry__proto__metrics__v1__exponential_histogram_data_point__buckets__init(&pos);
	opentelemetry__proto__common__v1__key_value__init(&kv);
	opentelemetry__proto__common__v1__any_value__init(&av);
	av.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
	av.string_value = "inside";
	kv.key = "where";
	kv.value = &av;
	if (with_attrs) {
		ep.n_attributes = 1;
		ep.attributes = kvs;
	}
	ep.time_unix_nano = T1;
	ep.count = 6;
	ep.scale = -2;
	ep.zero_count = 2;
	pos.offset = -3;
	pos.n_bucket_counts = 3;
	pos.bucket_counts = counts;
	ep.positive = &pos;
	return make_passthrough(DBI_REC_EXPHIST, series, &ep.base);
}

static struct dbi_otlp_point_rec *make_summary(uint32_t series)
{
	Opentelemetry__Proto__Metrics__V1__SummaryDataPoint sp;
	Opentelemetry__Proto__Metrics__V1__SummaryDataPoint__ValueAtQuantile q, *qs[1] = {&q};
	opentelemetry__proto__metrics__v1__summary_data_point__init(&sp);
	opentelemetry__proto__metrics__v1__summary_data_point__value_at_quantile__init(&q);
	q.quantile = 0.99;
	q.value = 4.5;
	sp.time_unix_nano = T1;
	sp.count = 10;
	sp.sum = 20;
	sp.n_quantile_values = 1;
	sp.quantile_values = qs;
	return make_passthrough(DBI_REC_SUMMARY, series, &sp.base);
}

/* ---- tests ---- */

static void test_metrics_all_kinds(void **state)
{
	(void)state;
	struct world w;
	world_build(&w);
	struct dbi_otlp_enc *e = dbi_otlp_enc_create(w.reg, NULL);
	assert_non_null(e);
	struct dbi_point pts[] = {
	        pt_d(w.s_gauge_a1, 12.5),
	        pt_i(w.s_sum_b, 7, T0),
	        pt_i(w.s_sum_a, -9000000000LL, T0),
	        pt_d(w.s_gauge_a2, -0.0),
	        pt_i(w.s_updown_b, -3, T0),
	        pt_d(w.s_other_scope, 1e300),
	        pt_i(w.s_sum_a, 9007199254740993LL, T0),
	};
	pts[3].flags |= DBI_PF_NOVALUE; /* staleness marker: no value, flag set */
	struct dbi_hist_rec *h = make_hist(w.s_hist_a);
	struct dbi_otlp_point_rec *x1 = make_exp(w.s_exp_a, 0), *x2 = make_exp(w.s_exp_a, 1),
	                          *sm = make_summary(w.s_summary_b);
	const struct dbi_rec_hdr *recs[] = {&h->h, &x1->h, &sm->h, &x2->h};
	struct dbi_obuf out = {0};
	uint32_t n = 0;
	assert_int_equal(dbi_otlp_enc_metrics(e, pts, 7, recs, 4, &out, &n), DBI_OK);
	assert_int_equal(n, 11);
	uint32_t counted = 0;
	assert_int_equal(dbi_otlp_count_items(DBI_SIG_METRICS, out.data, out.len, &counted), DBI_OK);
	assert_int_equal(counted, 11);

	MReq *r = unpack_metrics(&out);
	/* first-appearance order: resource A (gauge first), then B */
	assert_int_equal(r->n_resource_metrics, 2);
	const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *ra = r->resource_metrics[0],
	                                                         *rb = r->resource_metrics[1];
	assert_string_equal(kv_str(ra->resource->attributes, ra->resource->n_attributes, "service.instance.id"),
	                    "db01:5432");
	assert_int_equal(ra->resource->n_attributes, 4);
	const KV *port = find_kv(ra->resource->attributes, 4, "server.port");
	assert_int_equal(port->value->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
	assert_int_equal(port->value->int_value, 5432);
	const KV *prim = find_kv(ra->resource->attributes, 4, "pg.primary");
	assert_int_equal(prim->value->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE);
	assert_true(prim->value->bool_value);
	const KV *load = find_kv(ra->resource->attributes, 4, "pg.load");
	assert_true(load->value->double_value == 0.25);
	assert_string_equal(kv_str(rb->resource->attributes, rb->resource->n_attributes, "service.instance.id"),
	                    "db02:5432");
	/* resource A: scope dbi/postgresql then scope other */
	assert_int_equal(ra->n_scope_metrics, 2);
	assert_string_equal(ra->scope_metrics[0]->scope->name, "dbi/postgresql");
	assert_string_equal(ra->scope_metrics[0]->scope->version, "0.1.0");
	assert_string_equal(ra->scope_metrics[1]->scope->name, "other");
	assert_string_equal(ra->scope_metrics[1]->scope->version, "");

	const Metric *g = find_metric(r, 0, 0, "pg.conn");
	assert_non_null(g);
	assert_string_equal(g->unit, "{connection}");
	assert_string_equal(g->description, "connections");
	assert_int_equal(g->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE);
	assert_int_equal(g->gauge->n_data_points, 2);
	const Opentelemetry__Proto__Metrics__V1__NumberDataPoint *gp = g->gauge->data_points[0];
	assert_int_equal(gp->value_case, OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE);
	assert_true(gp->as_double == 12.5);
	assert_int_equal(gp->time_unix_nano, T1);
	assert_int_equal(gp->start_time_unix_nano, 0);
	assert_string_equal(kv_str(gp->attributes, gp->n_attributes, "postgresql.database.name"), "app");
	gp = g->gauge->data_points[1];
	assert_int_equal(gp->flags, 1);
	assert_int_equal(gp->value_case, OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE__NOT_SET);
	assert_string_equal(kv_str(gp->attributes, gp->n_attributes, "postgresql.database.name"), "b\xc3\xa4r");

	const Metric *s = find_metric(r, 0, 0, "pg.commits");
	assert_int_equal(s->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM);
	assert_true(s->sum->is_monotonic);
	assert_int_equal(
	        s->sum->aggregation_temporality,
	        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE);
	assert_int_equal(s->sum->n_data_points, 2);
	assert_int_equal(s->sum->data_points[0]->value_case,
	                 OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT);
	assert_int_equal(s->sum->data_points[0]->as_int, -9000000000LL);
	assert_int_equal(s->sum->data_points[1]->as_int, 9007199254740993LL);
	assert_int_equal(s->sum->data_points[0]->start_time_unix_nano, T0);

	const Metric *hm = find_metric(r, 0, 0, "pg.latency");
	assert_int_equal(hm->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM);
	assert_int_equal(hm->histogram->aggregation_temporality,
	                 OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA);
	const Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *hp = hm->histogram->data_points[0];
	assert_int_equal(hp->count, 6);
	assert_int_equal(hp->opt_sum_case, OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_SUM_SUM);
	assert_true(hp->sum == 31.5);
	assert_int_equal(hp->opt_min_case, OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_MIN_MIN);
	assert_true(hp->min == 0.5);
	assert_int_equal(hp->opt_max_case, OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_MAX_MAX);
	assert_true(hp->max == 12.25);
	assert_int_equal(hp->n_explicit_bounds, 2);
	assert_true(hp->explicit_bounds[0] == 1 && hp->explicit_bounds[1] == 10);
	assert_int_equal(hp->n_bucket_counts, 3);
	assert_int_equal(hp->bucket_counts[0], 1);
	assert_int_equal(hp->bucket_counts[1], 3);
	assert_int_equal(hp->bucket_counts[2], 2);
	assert_int_equal(hp->start_time_unix_nano, T0);
	assert_string_equal(kv_str(hp->attributes, hp->n_attributes, "postgresql.database.name"), "b\xc3\xa4r");

	const Metric *xm = find_metric(r, 0, 0, "pg.exp");
	assert_int_equal(xm->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM);
	assert_int_equal(xm->exponential_histogram->n_data_points, 2);
	const Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint *xp =
	        xm->exponential_histogram->data_points[0];
	assert_int_equal(xp->scale, -2);
	assert_int_equal(xp->positive->offset, -3);
	assert_int_equal(xp->positive->n_bucket_counts, 3);
	/* no attributes inside: the series' ones are added */
	assert_int_equal(xp->n_attributes, 1);
	assert_string_equal(kv_str(xp->attributes, 1, "postgresql.database.name"), "app");
	/* attributes inside: passed through as they are, nothing added */
	xp = xm->exponential_histogram->data_points[1];
	assert_int_equal(xp->n_attributes, 1);
	assert_string_equal(kv_str(xp->attributes, 1, "where"), "inside");

	const Metric *ud = find_metric(r, 1, 0, "pg.updown");
	assert_false(ud->sum->is_monotonic);
	assert_int_equal(ud->sum->data_points[0]->as_int, -3);
	assert_int_equal(ud->sum->data_points[0]->n_attributes, 0);
	const Metric *qm = find_metric(r, 1, 0, "pg.summary");
	assert_int_equal(qm->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY);
	assert_true(qm->summary->data_points[0]->quantile_values[0]->quantile == 0.99);
	assert_string_equal(kv_str(qm->summary->data_points[0]->attributes, 1, "postgresql.database.name"),
	                    "b\xc3\xa4r");
	const Metric *other = find_metric(r, 0, 1, "pg.conn");
	assert_true(other->gauge->data_points[0]->as_double == 1e300);

	/* protobuf-c repacks it to the same number of bytes: no stray or missing field */
	assert_int_equal(protobuf_c_message_get_packed_size(&r->base), out.len);
	protobuf_c_message_free_unpacked(&r->base, NULL);

	/* the same batch again: caches give the same bytes */
	struct dbi_obuf again = {0};
	assert_int_equal(dbi_otlp_enc_metrics(e, pts, 7, recs, 4, &again, &n), DBI_OK);
	assert_int_equal(again.len, out.len);
	assert_memory_equal(again.data, out.data, out.len);
	assert_int_equal(dbi_otlp_enc_stats(e)->invalid, 0);

	dbi_obuf_free(&again);
	dbi_obuf_free(&out);
	free(h);
	free(x1);
	free(x2);
	free(sm);
	dbi_otlp_enc_destroy(e);
	dbi_registry_destroy(w.reg);
}

/* The whole request, decoded by protobuf-c and rendered as OTLP/JSON, against a literal. */
static void test_metrics_json_literal(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(100);
	uint32_t res = attrs1(reg, "service.name", "pg");
	uint32_t scope = dbi_scope_intern(reg, "s", "1");
	struct dbi_metric_def md = {"c", "1", "", DBI_MK_SUM, 1, DBI_TEMP_DELTA, 0};
	uint32_t m = dbi_metric_intern(reg, &md);
	uint32_t s1 = dbi_series_intern(reg, m, res, scope, attrs1(reg, "k", "v"));
	struct dbi_point p = pt_i(s1, 42, T0);
	struct dbi_otlp_enc *e = dbi_otlp_enc_create(reg, NULL);
	struct dbi_obuf out = {0};
	uint32_t n;
	assert_int_equal(dbi_otlp_enc_metrics(e, &p, 1, NULL, 0, &out, &n), DBI_OK);
	MReq *r = unpack_metrics(&out);
	char *json;
	size_t jl;
	assert_int_equal(dbi_otlp_json_encode(&r->base, &json, &jl), DBI_OK);
	const char *want = "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{"
	                   "\"stringValue\":"
	                   "\"pg\"}}]},\"scopeMetrics\":[{\"scope\":{\"name\":\"s\",\"version\":\"1\"},\"metrics\":[{"
	                   "\"name\":\"c\","
	                   "\"unit\":\"1\",\"sum\":{\"dataPoints\":[{\"startTimeUnixNano\":\"1700000000000000000\","
	                   "\"timeUnixNano\":"
	                   "\"1700000010000000000\",\"asInt\":\"42\",\"attributes\":[{\"key\":\"k\",\"value\":{"
	                   "\"stringValue\":\"v\"}}]}],"
	                   "\"aggregationTemporality\":1,\"isMonotonic\":true}}]}]}]}";
	assert_string_equal(json, want);
	free(json);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	dbi_obuf_free(&out);
	dbi_otlp_enc_destroy(e);
	dbi_registry_destroy(reg);
}

/* ---- protoc, an independent decoder ---- */

static char *protoc_decode(const char *type, const char *proto, const struct dbi_obuf *b)
{
	char in[] = "/tmp/dbi_enc_inXXXXXX", outp[] = "/tmp/dbi_enc_outXXXXXX", cmd[2048];
	int fd = mkstemp(in), fo = mkstemp(outp);
	assert_true(fd >= 0 && fo >= 0);
	assert_int_equal(write(fd, b->data, b->len), (ssize_t)b->len);
	close(fd);
	close(fo);
	snprintf(cmd, sizeof(cmd), "protoc -I%s/proto --decode=%s %s < %s > %s", DBI_SOURCE_DIR, type, proto, in, outp);
	char *text = NULL;
	if (system(cmd) == 0) {
		FILE *f = fopen(outp, "rb");
		fseek(f, 0, SEEK_END);
		long sz = ftell(f);
		fseek(f, 0, SEEK_SET);
		text = calloc(1, (size_t)sz + 1);
		assert_int_equal(fread(text, 1, (size_t)sz, f), (size_t)sz);
		fclose(f);
	}
	unlink(in);
	unlink(outp);
	return text;
}

static void test_protoc_decodes_encoder_output(void **state)
{
	(void)state;
	if (system("protoc --version >/dev/null 2>&1") != 0)
		skip();
	struct world w;
	world_build(&w);
	struct dbi_otlp_enc *e = dbi_otlp_enc_create(w.reg, NULL);
	struct dbi_point pts[] = {pt_i(w.s_sum_a, 9007199254740993LL, T0), pt_d(w.s_gauge_a1, 0.75)};
	struct dbi_hist_rec *h = make_hist(w.s_hist_a);
	const struct dbi_rec_hdr *recs[] = {&h->h};
	struct dbi_obuf out = {0};
	uint32_t n;
	assert_int_equal(dbi_otlp_enc_metrics(e, pts, 2, recs, 1, &out, &n), DBI_OK);
	char *t = protoc_decode("opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest",
	                        "opentelemetry/proto/collector/metrics/v1/metrics_service.proto", &out);
	assert_non_null(t);
	assert_non_null(strstr(t, "as_int: 9007199254740993"));
	assert_non_null(strstr(t, "as_double: 0.75"));
	assert_non_null(strstr(t, "name: \"pg.commits\""));
	assert_non_null(strstr(t, "aggregation_temporality: AGGREGATION_TEMPORALITY_CUMULATIVE"));
	assert_non_null(strstr(t, "is_monotonic: true"));
	assert_non_null(strstr(t, "explicit_bounds: 10"));
	assert_non_null(strstr(t, "bucket_counts: 3"));
	assert_non_null(strstr(t, "max: 12.25"));
	assert_non_null(strstr(t, "string_value: \"db01:5432\""));
	assert_null(strstr(t, "\n1:")); /* no field protoc did not recognise */
	free(t);
	free(h);
	dbi_obuf_free(&out);
	dbi_otlp_enc_destroy(e);
	dbi_registry_destroy(w.reg);
}

/* ---- New Relic limits and resource attributes ---- */

static void test_newrelic_limits(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(100);
	char longkey[301], longval[5001];
	memset(longkey, 'k', 300);
	longkey[300] = '\0';
	/* 4094 ASCII bytes then a 3-byte character straddling the 4095 cut */
	memset(longval, 'v', 5000);
	memcpy(longval + 4094, "\xe2\x82\xac", 3);
	longval[5000] = '\0';
	/* an array of 100 strings as an AnyValue message */
	Opentelemetry__Proto__Common__V1__AnyValue arr, items[100], *pitems[100];
	Opentelemetry__Proto__Common__V1__ArrayValue av;
	opentelemetry__proto__common__v1__any_value__init(&arr);
	opentelemetry__proto__common__v1__array_value__init(&av);
	for (int i = 0; i < 100; i++) {
		opentelemetry__proto__common__v1__any_value__init(&items[i]);
		items[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
		items[i].string_value = i == 0 ? longval : "x";
		pitems[i] = &items[i];
	}
	av.n_values = 100;
	av.values = pitems;
	arr.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
	arr.array_value = &av;
	size_t alen = protobuf_c_message_get_packed_size(&arr.base);
	uint8_t *abuf = malloc(alen);
	protobuf_c_message_pack(&arr.base, abuf);

	struct dbi_attr pa[120];
	char names[120][16];
	int na = 0;
	pa[na++] = (struct dbi_attr){.key = longkey, .type = DBI_AT_STR, .v.s = "short"};
	pa[na++] = (struct dbi_attr){.key = "a.long", .type = DBI_AT_STR, .v.s = longval};
	pa[na++] = (struct dbi_attr){
	        .key = "a.array", .type = DBI_AT_ANYPB, .v.s = (const char *)abuf, .vlen = (uint32_t)alen};
	while (na < 120) {
		snprintf(names[na], sizeof(names[na]), "z%03d", na);
		pa[na] = (struct dbi_attr){.key = names[na], .type = DBI_AT_INT, .v.i = na};
		na++;
	}
	uint32_t attrs = dbi_attrs_intern(reg, pa, 120);
	assert_true(attrs != 0);
	struct dbi_attr remote[] = {{.key = "server.address", .type = DBI_AT_STR, .v.s = "db7.example.com"}};
	struct dbi_attr local[] = {{.key = "server.address", .type = DBI_AT_STR, .v.s = "127.0.0.1"}};
	struct dbi_attr own[] = {{.key = "instrumentation.provider", .type = DBI_AT_STR, .v.s = "mine"},
	                         {.key = "host.name", .type = DBI_AT_STR, .v.s = "elsewhere"}};
	uint32_t r_remote = dbi_attrs_intern(reg, remote, 1), r_local = dbi_attrs_intern(reg, local, 1),
	         r_own = dbi_attrs_intern(reg, own, 2);
	uint32_t scope = dbi_scope_intern(reg, "s", "");
	struct dbi_metric_def md = {"g", "", "", DBI_MK_GAUGE, 0, 0, 0};
	uint32_t m = dbi_metric_intern(reg, &md);
	uint32_t s1 = dbi_series_intern(reg, m, r_remote, scope, attrs);
	uint32_t s2 = dbi_series_intern(reg, m, r_local, scope, dbi_attrs_intern(reg, NULL, 0));
	uint32_t s3 = dbi_series_intern(reg, m, r_own, scope, dbi_attrs_intern(reg, NULL, 0));

	struct dbi_otlp_limits lim = DBI_NR_LIMITS_INIT;
	struct dbi_attr extra = {.key = "instrumentation.provider", .type = DBI_AT_STR, .v.s = "opentelemetry"};
	struct dbi_otlp_enc_opts o = {.limits = &lim,
	                              .res_extra = &extra,
	                              .nres_extra = 1,
	                              .host_name = "collector-host",
	                              .host_id = "abc123",
	                              .host_mode = DBI_OTLP_HOST_AUTO};
	struct dbi_otlp_enc *e = dbi_otlp_enc_create(reg, &o);
	struct dbi_point pts[] = {pt_d(s1, 1), pt_d(s2, 2), pt_d(s3, 3), pt_d(s1, 4)};
	struct dbi_obuf out = {0};
	uint32_t n;
	assert_int_equal(dbi_otlp_enc_metrics(e, pts, 4, NULL, 0, &out, &n), DBI_OK);
	assert_int_equal(n, 4);
	MReq *r = unpack_metrics(&out);
	assert_int_equal(r->n_resource_metrics, 3);

	/* remote server: provider added, no host attributes of the collector's machine */
	Opentelemetry__Proto__Resource__V1__Resource *res = r->resource_metrics[0]->resource;
	assert_string_equal(kv_str(res->attributes, res->n_attributes, "instrumentation.provider"), "opentelemetry");
	assert_null(find_kv(res->attributes, res->n_attributes, "host.name"));
	assert_null(find_kv(res->attributes, res->n_attributes, "host.id"));
	/* local server: this machine's identity */
	res = r->resource_metrics[1]->resource;
	assert_string_equal(kv_str(res->attributes, res->n_attributes, "host.name"), "collector-host");
	assert_string_equal(kv_str(res->attributes, res->n_attributes, "host.id"), "abc123");
	/* present attributes are never overridden */
	res = r->resource_metrics[2]->resource;
	assert_string_equal(kv_str(res->attributes, res->n_attributes, "instrumentation.provider"), "mine");
	assert_string_equal(kv_str(res->attributes, res->n_attributes, "host.name"), "elsewhere");
	assert_null(find_kv(res->attributes, res->n_attributes, "host.id"));

	const Opentelemetry__Proto__Metrics__V1__NumberDataPoint *p =
	        r->resource_metrics[0]->scope_metrics[0]->metrics[0]->gauge->data_points[0];
	assert_int_equal(p->n_attributes, 100);
	int saw_key = 0, saw_long = 0, saw_arr = 0;
	for (size_t i = 0; i < p->n_attributes; i++) {
		const KV *kv = p->attributes[i];
		assert_true(strlen(kv->key) <= 255);
		if (kv->key[0] == 'k') {
			assert_int_equal(strlen(kv->key), 255);
			saw_key = 1;
		}
		if (strcmp(kv->key, "a.long") == 0) {
			/* cut before the euro sign that would straddle 4095: valid UTF-8, 4094 bytes */
			assert_int_equal(strlen(kv->value->string_value), 4094);
			saw_long = 1;
		}
		if (strcmp(kv->key, "a.array") == 0) {
			assert_int_equal(kv->value->value_case,
			                 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE);
			assert_int_equal(kv->value->array_value->n_values, 64);
			assert_int_equal(strlen(kv->value->array_value->values[0]->string_value), 4094);
			saw_arr = 1;
		}
	}
	assert_true(saw_key && saw_long && saw_arr);
	/* per point sent: s1 appears twice */
	const struct dbi_otlp_enc_stats *st = dbi_otlp_enc_stats(e);
	assert_int_equal(st->keys_truncated, 2);
	assert_int_equal(st->values_truncated, 4); /* a.long and the array's first element, twice */
	assert_int_equal(st->arrays_truncated, 2);
	assert_int_equal(st->attrs_dropped, 40);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	dbi_obuf_free(&out);
	dbi_otlp_enc_destroy(e);
	free(abuf);
	dbi_registry_destroy(reg);
}

/* ---- logs and spans ---- */

static struct dbi_otlp_rec *make_log(uint32_t res, uint32_t scope, const char *body, int nattrs, const char *longval)
{
	Opentelemetry__Proto__Logs__V1__LogRecord lr;
	Opentelemetry__Proto__Common__V1__AnyValue b, vals[150];
	KV kvs[150], *pk[150];
	char keys[150][16];
	opentelemetry__proto__logs__v1__log_record__init(&lr);
	opentelemetry__proto__common__v1__any_value__init(&b);
	b.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
	b.string_value = (char *)body;
	lr.body = &b;
	lr.time_unix_nano = T1;
	lr.severity_number = OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_WARN;
	lr.dropped_attributes_count = 2;
	for (int i = 0; i < nattrs; i++) {
		opentelemetry__proto__common__v1__key_value__init(&kvs[i]);
		opentelemetry__proto__common__v1__any_value__init(&vals[i]);
		snprintf(keys[i], sizeof(keys[i]), "a%03d", i);
		kvs[i].key = keys[i];
		vals[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
		vals[i].string_value = i == 0 && longval ? (char *)longval : "v";
		kvs[i].value = &vals[i];
		pk[i] = &kvs[i];
	}
	lr.n_attributes = (size_t)nattrs;
	lr.attributes = pk;
	size_t n = protobuf_c_message_get_packed_size(&lr.base);
	struct dbi_otlp_rec *r = calloc(1, sizeof(*r) + n);
	r->h.type = DBI_REC_LOG;
	r->h.len = (uint32_t)(sizeof(*r) + n);
	r->time_ns = T1;
	r->resource = res;
	r->scope = scope;
	r->pb_len = (uint32_t)n;
	protobuf_c_message_pack(&lr.base, (uint8_t *)(r + 1));
	return r;
}

static void test_logs_and_spans(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(100);
	uint32_t ra = attrs1(reg, "service.name", "a"), rb = attrs1(reg, "service.name", "b");
	uint32_t s1 = dbi_scope_intern(reg, "pglog", "1"), s2 = dbi_scope_intern(reg, "other", "");
	struct dbi_otlp_rec *l[5] = {make_log(ra, s1, "one", 1, NULL), make_log(rb, s1, "two", 1, NULL),
	                             make_log(ra, s2, "three", 1, NULL), make_log(ra, s1, "four", 1, NULL),
	                             make_log(rb, s1, "five", 1, NULL)};
	struct dbi_otlp_rec *bad = calloc(1, sizeof(*bad) + 4);
	bad->h.type = DBI_REC_LOG;
	bad->h.len = sizeof(*bad) + 4;
	bad->pb_len = 4;
	memcpy(bad + 1, "\xff\xff\xff\xff", 4); /* not protobuf */
	const struct dbi_rec_hdr *recs[] = {&l[0]->h, &l[1]->h, &bad->h, &l[2]->h, &l[3]->h, &l[4]->h};
	struct dbi_otlp_enc *e = dbi_otlp_enc_create(reg, NULL);
	struct dbi_obuf out = {0};
	uint32_t n;
	assert_int_equal(dbi_otlp_enc_records(e, DBI_SIG_LOGS, recs, 6, &out, &n), DBI_OK);
	assert_int_equal(n, 5);
	assert_int_equal(dbi_otlp_enc_stats(e)->invalid, 1);
	ProtobufCMessage *m = NULL;
	assert_int_equal(
	        dbi_otlp_pb_unpack(&opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor,
	                           out.data, out.len, &m, NULL),
	        DBI_OK);
	LReq *r = (LReq *)m;
	assert_int_equal(r->n_resource_logs, 2);
	assert_int_equal(r->resource_logs[0]->n_scope_logs, 2);
	const Opentelemetry__Proto__Logs__V1__ScopeLogs *sl = r->resource_logs[0]->scope_logs[0];
	assert_string_equal(sl->scope->name, "pglog");
	assert_int_equal(sl->n_log_records, 2);
	assert_string_equal(sl->log_records[0]->body->string_value, "one");
	assert_string_equal(sl->log_records[1]->body->string_value, "four");
	assert_int_equal(sl->log_records[0]->severity_number,
	                 OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_WARN);
	assert_string_equal(r->resource_logs[0]->scope_logs[1]->log_records[0]->body->string_value, "three");
	assert_string_equal(r->resource_logs[1]->scope_logs[0]->log_records[1]->body->string_value, "five");
	protobuf_c_message_free_unpacked(m, NULL);

	/* spans: a record of the wrong type for the signal is refused */
	Opentelemetry__Proto__Trace__V1__Span sp;
	opentelemetry__proto__trace__v1__span__init(&sp);
	uint8_t tid[16] = {1, 2, 3}, sid[8] = {4, 5};
	sp.trace_id.data = tid;
	sp.trace_id.len = 16;
	sp.span_id.data = sid;
	sp.span_id.len = 8;
	sp.name = "SELECT";
	sp.start_time_unix_nano = T0;
	sp.end_time_unix_nano = T1;
	size_t sn = protobuf_c_message_get_packed_size(&sp.base);
	struct dbi_otlp_rec *span = calloc(1, sizeof(*span) + sn);
	span->h.type = DBI_REC_SPAN;
	span->h.len = (uint32_t)(sizeof(*span) + sn);
	span->resource = ra;
	span->scope = s1;
	span->pb_len = (uint32_t)sn;
	protobuf_c_message_pack(&sp.base, (uint8_t *)(span + 1));
	const struct dbi_rec_hdr *srecs[] = {&span->h, &l[0]->h};
	assert_int_equal(dbi_otlp_enc_records(e, DBI_SIG_TRACES, srecs, 2, &out, &n), DBI_OK);
	assert_int_equal(n, 1);
	assert_int_equal(dbi_otlp_pb_unpack(
	                         &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
	                         out.data, out.len, &m, NULL),
	                 DBI_OK);
	TReq *t = (TReq *)m;
	assert_int_equal(t->n_resource_spans, 1);
	assert_string_equal(t->resource_spans[0]->scope_spans[0]->spans[0]->name, "SELECT");
	assert_int_equal(t->resource_spans[0]->scope_spans[0]->spans[0]->end_time_unix_nano, T1);
	protobuf_c_message_free_unpacked(m, NULL);

	for (int i = 0; i < 5; i++)
		free(l[i]);
	free(bad);
	free(span);
	dbi_obuf_free(&out);
	dbi_otlp_enc_destroy(e);
	dbi_registry_destroy(reg);
}

static void test_logs_newrelic_limits(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(100);
	uint32_t ra = attrs1(reg, "service.name", "a");
	uint32_t s1 = dbi_scope_intern(reg, "pglog", "1");
	char *longval = malloc(6001);
	memset(longval, 'q', 6000);
	longval[6000] = '\0';
	struct dbi_otlp_rec *l = make_log(ra, s1, "msg", 130, longval);
	const struct dbi_rec_hdr *recs[] = {&l->h};
	struct dbi_otlp_limits lim = DBI_NR_LIMITS_INIT;
	struct dbi_otlp_enc_opts o = {.limits = &lim};
	struct dbi_otlp_enc *e = dbi_otlp_enc_create(reg, &o);
	struct dbi_obuf out = {0};
	uint32_t n;
	assert_int_equal(dbi_otlp_enc_records(e, DBI_SIG_LOGS, recs, 1, &out, &n), DBI_OK);
	ProtobufCMessage *m = NULL;
	assert_int_equal(
	        dbi_otlp_pb_unpack(&opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor,
	                           out.data, out.len, &m, NULL),
	        DBI_OK);
	const Opentelemetry__Proto__Logs__V1__LogRecord *lr =
	        ((LReq *)m)->resource_logs[0]->scope_logs[0]->log_records[0];
	assert_int_equal(lr->n_attributes, 100);
	assert_int_equal(lr->dropped_attributes_count, 2 + 30);
	assert_int_equal(strlen(lr->attributes[0]->value->string_value), 4095);
	assert_string_equal(lr->body->string_value, "msg");
	assert_int_equal(dbi_otlp_enc_stats(e)->values_truncated, 1);
	assert_int_equal(dbi_otlp_enc_stats(e)->attrs_dropped, 30);
	protobuf_c_message_free_unpacked(m, NULL);
	free(longval);
	free(l);
	dbi_obuf_free(&out);
	dbi_otlp_enc_destroy(e);
	dbi_registry_destroy(reg);
}

/* ---- cutting requests ---- */

/* Every data point of a metrics request as "resource|scope|metric|point bytes" strings. */
static size_t flatten(const struct dbi_obuf *b, char ***out)
{
	MReq *r = unpack_metrics(b);
	size_t n = 0, cap = 64;
	char **v = malloc(cap * sizeof(*v));
	for (size_t i = 0; i < r->n_resource_metrics; i++) {
		const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm = r->resource_metrics[i];
		for (size_t j = 0; j < rm->n_scope_metrics; j++) {
			const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm = rm->scope_metrics[j];
			assert_true(sm->n_metrics > 0); /* no empty containers */
			for (size_t k = 0; k < sm->n_metrics; k++) {
				const Metric *mt = sm->metrics[k];
				size_t np = 0;
				ProtobufCMessage **pts = NULL;
				switch (mt->data_case) {
				case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
					np = mt->gauge->n_data_points;
					pts = (ProtobufCMessage **)mt->gauge->data_points;
					break;
				case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
					np = mt->sum->n_data_points;
					pts = (ProtobufCMessage **)mt->sum->data_points;
					break;
				case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
					np = mt->histogram->n_data_points;
					pts = (ProtobufCMessage **)mt->histogram->data_points;
					break;
				case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
					np = mt->exponential_histogram->n_data_points;
					pts = (ProtobufCMessage **)mt->exponential_histogram->data_points;
					break;
				case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
					np = mt->summary->n_data_points;
					pts = (ProtobufCMessage **)mt->summary->data_points;
					break;
				default:
					fail();
				}
				assert_true(np > 0);
				for (size_t p = 0; p < np; p++) {
					uint8_t tmp[4096];
					size_t pl = protobuf_c_message_pack(pts[p], tmp);
					char *s = malloc(2 * pl + 256);
					int o = snprintf(s, 256, "%s|%s|%s|%d|",
					                 kv_str(rm->resource->attributes, rm->resource->n_attributes,
					                        "service.instance.id"),
					                 sm->scope->name, mt->name, (int)mt->data_case);
					for (size_t q = 0; q < pl; q++)
						o += sprintf(s + o, "%02x", tmp[q]);
					if (n == cap)
						v = realloc(v, (cap *= 2) * sizeof(*v));
					v[n++] = s;
				}
			}
		}
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	*out = v;
	return n;
}

static int strcmp_p(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_flat(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void test_extract_splits_exactly(void **state)
{
	(void)state;
	struct world w;
	world_build(&w);
	struct dbi_otlp_enc *e = dbi_otlp_enc_create(w.reg, NULL);
	struct dbi_point pts[] = {pt_d(w.s_gauge_a1, 1),  pt_i(w.s_sum_b, 2, T0),    pt_i(w.s_sum_a, 3, T0),
	                          pt_d(w.s_gauge_a2, 4),  pt_i(w.s_updown_b, 5, T0), pt_d(w.s_other_scope, 6),
	                          pt_i(w.s_sum_a, 7, T0), pt_d(w.s_gauge_a1, 8)};
	struct dbi_hist_rec *h = make_hist(w.s_hist_a);
	struct dbi_otlp_point_rec *x1 = make_exp(w.s_exp_a, 0), *sm = make_summary(w.s_summary_b);
	const struct dbi_rec_hdr *recs[] = {&h->h, &x1->h, &sm->h};
	struct dbi_obuf out = {0}, a = {0}, b = {0};
	uint32_t n;
	assert_int_equal(dbi_otlp_enc_metrics(e, pts, 8, recs, 3, &out, &n), DBI_OK);
	assert_int_equal(n, 11);
	char **all;
	size_t nall = flatten(&out, &all);
	assert_int_equal(nall, 11);
	qsort(all, nall, sizeof(*all), strcmp_p);
	for (uint32_t k = 0; k <= n; k++) {
		assert_int_equal(dbi_otlp_extract(DBI_SIG_METRICS, out.data, out.len, 0, k, &a), DBI_OK);
		assert_int_equal(dbi_otlp_extract(DBI_SIG_METRICS, out.data, out.len, k, n, &b), DBI_OK);
		uint32_t ca = 0, cb = 0;
		if (a.len)
			assert_int_equal(dbi_otlp_count_items(DBI_SIG_METRICS, a.data, a.len, &ca), DBI_OK);
		if (b.len)
			assert_int_equal(dbi_otlp_count_items(DBI_SIG_METRICS, b.data, b.len, &cb), DBI_OK);
		assert_int_equal(ca, k);
		assert_int_equal(cb, n - k);
		char **fa = NULL, **fb = NULL;
		size_t na = a.len ? flatten(&a, &fa) : 0, nb = b.len ? flatten(&b, &fb) : 0;
		char **both = malloc((na + nb + 1) * sizeof(*both));
		if (na)
			memcpy(both, fa, na * sizeof(*both));
		if (nb)
			memcpy(both + na, fb, nb * sizeof(*both));
		qsort(both, na + nb, sizeof(*both), strcmp_p);
		assert_int_equal(na + nb, nall);
		for (size_t i = 0; i < nall; i++)
			assert_string_equal(both[i], all[i]);
		free(both);
		free_flat(fa, na);
		free_flat(fb, nb);
	}
	/* the whole range is the same bytes */
	assert_int_equal(dbi_otlp_extract(DBI_SIG_METRICS, out.data, out.len, 0, n, &a), DBI_OK);
	assert_int_equal(a.len, out.len);
	assert_memory_equal(a.data, out.data, out.len);
	/* ranges past the end are empty, not errors */
	assert_int_equal(dbi_otlp_extract(DBI_SIG_METRICS, out.data, out.len, n, n + 5, &a), DBI_OK);
	assert_int_equal(a.len, 0);
	free_flat(all, nall);
	dbi_obuf_free(&out);
	dbi_obuf_free(&a);
	dbi_obuf_free(&b);
	free(h);
	free(x1);
	free(sm);
	dbi_otlp_enc_destroy(e);
	dbi_registry_destroy(w.reg);
}

static void test_extract_logs(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(100);
	uint32_t ra = attrs1(reg, "service.name", "a"), rb = attrs1(reg, "service.name", "b");
	uint32_t s1 = dbi_scope_intern(reg, "pglog", "1");
	struct dbi_otlp_rec *l[4] = {make_log(ra, s1, "0", 1, NULL), make_log(rb, s1, "1", 1, NULL),
	                             make_log(ra, s1, "2", 1, NULL), make_log(rb, s1, "3", 1, NULL)};
	const struct dbi_rec_hdr *recs[] = {&l[0]->h, &l[1]->h, &l[2]->h, &l[3]->h};
	struct dbi_otlp_enc *e = dbi_otlp_enc_create(reg, NULL);
	struct dbi_obuf out = {0}, part = {0};
	uint32_t n, c;
	assert_int_equal(dbi_otlp_enc_records(e, DBI_SIG_LOGS, recs, 4, &out, &n), DBI_OK);
	/* request order is a: 0, 2; b: 1, 3 -> items [1, 3) are "2" and "1" */
	assert_int_equal(dbi_otlp_extract(DBI_SIG_LOGS, out.data, out.len, 1, 3, &part), DBI_OK);
	assert_int_equal(dbi_otlp_count_items(DBI_SIG_LOGS, part.data, part.len, &c), DBI_OK);
	assert_int_equal(c, 2);
	ProtobufCMessage *m = NULL;
	assert_int_equal(
	        dbi_otlp_pb_unpack(&opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor,
	                           part.data, part.len, &m, NULL),
	        DBI_OK);
	LReq *r = (LReq *)m;
	assert_int_equal(r->n_resource_logs, 2);
	assert_string_equal(kv_str(r->resource_logs[0]->resource->attributes, 1, "service.name"), "a");
	assert_string_equal(r->resource_logs[0]->scope_logs[0]->log_records[0]->body->string_value, "2");
	assert_string_equal(r->resource_logs[0]->scope_logs[0]->scope->name, "pglog");
	assert_string_equal(r->resource_logs[1]->scope_logs[0]->log_records[0]->body->string_value, "1");
	protobuf_c_message_free_unpacked(m, NULL);
	for (int i = 0; i < 4; i++)
		free(l[i]);
	dbi_obuf_free(&out);
	dbi_obuf_free(&part);
	dbi_otlp_enc_destroy(e);
	dbi_registry_destroy(reg);
}

/* ---- bad input ---- */

static void test_invalid_items_counted(void **state)
{
	(void)state;
	struct world w;
	world_build(&w);
	struct dbi_otlp_enc *e = dbi_otlp_enc_create(w.reg, NULL);
	struct dbi_point pts[] = {pt_d(99999, 1), pt_d(w.s_hist_a, 2) /* a number point for a histogram */,
	                          pt_d(w.s_gauge_a1, 3)};
	struct dbi_hist_rec *h = make_hist(w.s_gauge_a1); /* histogram record for a gauge */
	struct dbi_hist_rec *trunc = make_hist(w.s_hist_a);
	trunc->h.len = sizeof(*trunc) + 8; /* shorter than its bounds and counts */
	struct dbi_otlp_point_rec *exp_bad = make_exp(w.s_exp_a, 0);
	((uint8_t *)(exp_bad + 1))[0] = 0xff; /* broken tag */
	struct dbi_rec_hdr tiny = {.type = DBI_REC_SUMMARY, .len = 4};
	const struct dbi_rec_hdr *recs[] = {&h->h, &trunc->h, &exp_bad->h, &tiny};
	struct dbi_obuf out = {0};
	uint32_t n;
	assert_int_equal(dbi_otlp_enc_metrics(e, pts, 3, recs, 4, &out, &n), DBI_OK);
	assert_int_equal(n, 1);
	assert_int_equal(dbi_otlp_enc_stats(e)->invalid, 6);
	MReq *r = unpack_metrics(&out);
	assert_int_equal(r->n_resource_metrics, 1);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	/* nothing valid: empty output, not an error */
	assert_int_equal(dbi_otlp_enc_metrics(e, pts, 2, NULL, 0, &out, &n), DBI_OK);
	assert_int_equal(n, 0);
	assert_int_equal(out.len, 0);
	free(h);
	free(trunc);
	free(exp_bad);
	dbi_obuf_free(&out);
	dbi_otlp_enc_destroy(e);
	dbi_registry_destroy(w.reg);
}

static void test_mutated_requests_never_crash(void **state)
{
	(void)state;
	struct world w;
	world_build(&w);
	struct dbi_otlp_enc *e = dbi_otlp_enc_create(w.reg, NULL);
	struct dbi_point pts[] = {pt_d(w.s_gauge_a1, 1), pt_i(w.s_sum_b, 2, T0), pt_i(w.s_sum_a, 3, T0)};
	struct dbi_hist_rec *h = make_hist(w.s_hist_a);
	const struct dbi_rec_hdr *recs[] = {&h->h};
	struct dbi_obuf out = {0}, part = {0};
	uint32_t n;
	assert_int_equal(dbi_otlp_enc_metrics(e, pts, 3, recs, 1, &out, &n), DBI_OK);
	uint8_t *m = malloc(out.len);
	uint64_t rng = 88172645463325252ULL;
	int ok = 0, bad = 0;
	for (int iter = 0; iter < 20000; iter++) {
		memcpy(m, out.data, out.len);
		size_t len = out.len;
		for (int k = 0; k < 3; k++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			if (rng % 5 == 0)
				len = rng % (out.len + 1);
			else
				m[(rng >> 8) % out.len] = (uint8_t)(rng >> 32);
		}
		uint32_t c;
		for (unsigned sig = 1; sig <= 4; sig <<= 1) {
			if (dbi_otlp_count_items(sig, m, len, &c) == DBI_OK) {
				ok++;
				assert_int_equal(dbi_otlp_extract(sig, m, len, c / 2, c, &part), DBI_OK);
			} else {
				bad++;
				(void)dbi_otlp_extract(sig, m, len, 0, 1, &part);
			}
		}
	}
	assert_true(ok > 0 && bad > 0);
	free(m);
	free(h);
	dbi_obuf_free(&out);
	dbi_obuf_free(&part);
	dbi_otlp_enc_destroy(e);
	dbi_registry_destroy(w.reg);
}

/* Many series and batches: the caches grow past their first sizes and stay right. */
static void test_many_series(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(100000);
	struct dbi_metric_def md = {"m", "", "", DBI_MK_SUM, 1, DBI_TEMP_CUMULATIVE, 0};
	uint32_t metric = dbi_metric_intern(reg, &md), scope = dbi_scope_intern(reg, "s", "");
	enum { NS = 20000 };
	struct dbi_point *pts = calloc(NS, sizeof(*pts));
	for (int i = 0; i < NS; i++) {
		char host[32];
		snprintf(host, sizeof(host), "h%d", i % 50);
		uint32_t res = attrs1(reg, "service.instance.id", host);
		struct dbi_attr a = {.key = "series", .type = DBI_AT_INT, .v.i = i};
		uint32_t s = dbi_series_intern(reg, metric, res, scope, dbi_attrs_intern(reg, &a, 1));
		assert_true(s != 0);
		pts[i] = pt_i(s, i, T0);
	}
	struct dbi_otlp_enc *e = dbi_otlp_enc_create(reg, NULL);
	struct dbi_obuf out = {0};
	uint32_t n;
	for (int round = 0; round < 3; round++) {
		assert_int_equal(dbi_otlp_enc_metrics(e, pts, NS, NULL, 0, &out, &n), DBI_OK);
		assert_int_equal(n, NS);
		MReq *r = unpack_metrics(&out);
		assert_int_equal(r->n_resource_metrics, 50);
		int64_t sum = 0;
		size_t np = 0;
		for (size_t i = 0; i < 50; i++) {
			const Metric *mt = r->resource_metrics[i]->scope_metrics[0]->metrics[0];
			np += mt->sum->n_data_points;
			for (size_t k = 0; k < mt->sum->n_data_points; k++) {
				const Opentelemetry__Proto__Metrics__V1__NumberDataPoint *p = mt->sum->data_points[k];
				sum += p->as_int;
				/* the series attribute matches the value it was made with */
				assert_int_equal(p->attributes[0]->value->int_value, p->as_int);
			}
		}
		assert_int_equal(np, NS);
		assert_int_equal(sum, (int64_t)NS * (NS - 1) / 2);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	free(pts);
	dbi_obuf_free(&out);
	dbi_otlp_enc_destroy(e);
	dbi_registry_destroy(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_metrics_all_kinds),
	        cmocka_unit_test(test_metrics_json_literal),
	        cmocka_unit_test(test_protoc_decodes_encoder_output),
	        cmocka_unit_test(test_newrelic_limits),
	        cmocka_unit_test(test_logs_and_spans),
	        cmocka_unit_test(test_logs_newrelic_limits),
	        cmocka_unit_test(test_extract_splits_exactly),
	        cmocka_unit_test(test_extract_logs),
	        cmocka_unit_test(test_invalid_items_counted),
	        cmocka_unit_test(test_mutated_requests_never_crash),
	        cmocka_unit_test(test_many_series),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
