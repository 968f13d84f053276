/*
 * test_otlp_proto.c — the OTLP .proto files as compiled by protoc-c: a metrics export
 * request with every point kind packs and unpacks to the same values, the bounded
 * unpacker rejects hostile nesting and malformed bytes, and — when protoc is
 * installed — an independent implementation (protoc --decode / --encode over the
 * same .proto files) agrees with protobuf-c on the bytes.
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

#include "dbi/otlp_pb.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#define T0 1544712660300000000ULL
#define T1 1544712661300000000ULL

/* A request with one metric of each kind, built on the stack. */
struct fixture {
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest req;
	Opentelemetry__Proto__Metrics__V1__ResourceMetrics rm, *rms[1];
	Opentelemetry__Proto__Resource__V1__Resource res;
	Opentelemetry__Proto__Common__V1__KeyValue kv_svc, kv_port, *res_attrs[2];
	Opentelemetry__Proto__Common__V1__AnyValue v_svc, v_port;
	Opentelemetry__Proto__Metrics__V1__ScopeMetrics sm, *sms[1];
	Opentelemetry__Proto__Common__V1__InstrumentationScope scope;
	Opentelemetry__Proto__Metrics__V1__Metric m_gauge, m_sum, m_hist, m_exp, m_summary, *metrics[5];
	Opentelemetry__Proto__Metrics__V1__Gauge gauge;
	Opentelemetry__Proto__Metrics__V1__Sum sum;
	Opentelemetry__Proto__Metrics__V1__Histogram hist;
	Opentelemetry__Proto__Metrics__V1__ExponentialHistogram exp;
	Opentelemetry__Proto__Metrics__V1__Summary summary;
	Opentelemetry__Proto__Metrics__V1__NumberDataPoint gp, sp, *gps[1], *sps[1];
	Opentelemetry__Proto__Metrics__V1__Exemplar ex, *exs[1];
	Opentelemetry__Proto__Metrics__V1__HistogramDataPoint hp, *hps[1];
	Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint ep, *eps[1];
	Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint__Buckets pos, neg;
	Opentelemetry__Proto__Metrics__V1__SummaryDataPoint qp, *qps[1];
	Opentelemetry__Proto__Metrics__V1__SummaryDataPoint__ValueAtQuantile q50, q99, *qs[2];
	uint64_t bucket_counts[3];
	double bounds[2];
	uint64_t pos_counts[4], neg_counts[1];
	uint8_t trace_id[16], span_id[8];
};

static void fixture_build(struct fixture *f)
{
	static const uint8_t tid[16] = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03,
	                                0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};
	static const uint8_t sid[8] = {0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74};

	memset(f, 0, sizeof(*f));
	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__init(&f->req);
	opentelemetry__proto__metrics__v1__resource_metrics__init(&f->rm);
	opentelemetry__proto__resource__v1__resource__init(&f->res);
	opentelemetry__proto__common__v1__key_value__init(&f->kv_svc);
	opentelemetry__proto__common__v1__key_value__init(&f->kv_port);
	opentelemetry__proto__common__v1__any_value__init(&f->v_svc);
	opentelemetry__proto__common__v1__any_value__init(&f->v_port);
	opentelemetry__proto__metrics__v1__scope_metrics__init(&f->sm);
	opentelemetry__proto__common__v1__instrumentation_scope__init(&f->scope);

	f->v_svc.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
	f->v_svc.string_value = "db01:5432";
	f->kv_svc.key = "service.instance.id";
	f->kv_svc.value = &f->v_svc;
	f->v_port.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
	f->v_port.int_value = 5432;
	f->kv_port.key = "server.port";
	f->kv_port.value = &f->v_port;
	f->res_attrs[0] = &f->kv_svc;
	f->res_attrs[1] = &f->kv_port;
	f->res.n_attributes = 2;
	f->res.attributes = f->res_attrs;
	f->scope.name = "dbi.postgresql";
	f->scope.version = "0.1.0";

	/* gauge: double value */
	opentelemetry__proto__metrics__v1__metric__init(&f->m_gauge);
	opentelemetry__proto__metrics__v1__gauge__init(&f->gauge);
	opentelemetry__proto__metrics__v1__number_data_point__init(&f->gp);
	f->gp.time_unix_nano = T1;
	f->gp.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
	f->gp.as_double = 0.75;
	f->gps[0] = &f->gp;
	f->gauge.n_data_points = 1;
	f->gauge.data_points = f->gps;
	f->m_gauge.name = "postgresql.cache.hit_ratio";
	f->m_gauge.unit = "1";
	f->m_gauge.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
	f->m_gauge.gauge = &f->gauge;

	/* sum: cumulative monotonic int with an exemplar */
	opentelemetry__proto__metrics__v1__metric__init(&f->m_sum);
	opentelemetry__proto__metrics__v1__sum__init(&f->sum);
	opentelemetry__proto__metrics__v1__number_data_point__init(&f->sp);
	opentelemetry__proto__metrics__v1__exemplar__init(&f->ex);
	memcpy(f->trace_id, tid, sizeof(tid));
	memcpy(f->span_id, sid, sizeof(sid));
	f->ex.time_unix_nano = T1;
	f->ex.value_case = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_INT;
	f->ex.as_int = -7;
	f->ex.trace_id.data = f->trace_id;
	f->ex.trace_id.len = 16;
	f->ex.span_id.data = f->span_id;
	f->ex.span_id.len = 8;
	f->exs[0] = &f->ex;
	f->sp.start_time_unix_nano = T0;
	f->sp.time_unix_nano = T1;
	f->sp.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
	f->sp.as_int = 9007199254740993LL; /* not representable as a double */
	f->sp.n_exemplars = 1;
	f->sp.exemplars = f->exs;
	f->sps[0] = &f->sp;
	f->sum.n_data_points = 1;
	f->sum.data_points = f->sps;
	f->sum.aggregation_temporality =
	        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
	f->sum.is_monotonic = 1;
	f->m_sum.name = "postgresql.commits";
	f->m_sum.unit = "1";
	f->m_sum.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
	f->m_sum.sum = &f->sum;

	/* explicit-bucket histogram with sum, min = 0 (present!) and max */
	opentelemetry__proto__metrics__v1__metric__init(&f->m_hist);
	opentelemetry__proto__metrics__v1__histogram__init(&f->hist);
	opentelemetry__proto__metrics__v1__histogram_data_point__init(&f->hp);
	f->bounds[0] = 1.0;
	f->bounds[1] = 10.0;
	f->bucket_counts[0] = 3;
	f->bucket_counts[1] = 4;
	f->bucket_counts[2] = 1;
	f->hp.start_time_unix_nano = T0;
	f->hp.time_unix_nano = T1;
	f->hp.count = 8;
	f->hp.opt_sum_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_SUM_SUM;
	f->hp.sum = 31.5;
	f->hp.opt_min_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_MIN_MIN;
	f->hp.min = 0.0;
	f->hp.opt_max_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_MAX_MAX;
	f->hp.max = 12.25;
	f->hp.n_bucket_counts = 3;
	f->hp.bucket_counts = f->bucket_counts;
	f->hp.n_explicit_bounds = 2;
	f->hp.explicit_bounds = f->bounds;
	f->hps[0] = &f->hp;
	f->hist.n_data_points = 1;
	f->hist.data_points = f->hps;
	f->hist.aggregation_temporality =
	        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA;
	f->m_hist.name = "postgresql.query.duration";
	f->m_hist.unit = "ms";
	f->m_hist.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
	f->m_hist.histogram = &f->hist;

	/* exponential histogram: negative scale offset, zero threshold, no sum */
	opentelemetry__proto__metrics__v1__metric__init(&f->m_exp);
	opentelemetry__proto__metrics__v1__exponential_histogram__init(&f->exp);
	opentelemetry__proto__metrics__v1__exponential_histogram_data_point__init(&f->ep);
	opentelemetry__proto__metrics__v1__exponential_histogram_data_point__buckets__init(&f->pos);
	opentelemetry__proto__metrics__v1__exponential_histogram_data_point__buckets__init(&f->neg);
	f->pos_counts[0] = 1;
	f->pos_counts[1] = 0;
	f->pos_counts[2] = 5;
	f->pos_counts[3] = 2;
	f->pos.offset = -3;
	f->pos.n_bucket_counts = 4;
	f->pos.bucket_counts = f->pos_counts;
	f->neg_counts[0] = 1;
	f->neg.offset = 2;
	f->neg.n_bucket_counts = 1;
	f->neg.bucket_counts = f->neg_counts;
	f->ep.start_time_unix_nano = T0;
	f->ep.time_unix_nano = T1;
	f->ep.count = 11;
	f->ep.scale = -2;
	f->ep.zero_count = 2;
	f->ep.zero_threshold = 1e-9;
	f->ep.positive = &f->pos;
	f->ep.negative = &f->neg;
	f->ep.flags = OPENTELEMETRY__PROTO__METRICS__V1__DATA_POINT_FLAGS__DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK;
	f->eps[0] = &f->ep;
	f->exp.n_data_points = 1;
	f->exp.data_points = f->eps;
	f->exp.aggregation_temporality =
	        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
	f->m_exp.name = "postgresql.io.latency";
	f->m_exp.unit = "s";
	f->m_exp.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
	f->m_exp.exponential_histogram = &f->exp;

	/* summary */
	opentelemetry__proto__metrics__v1__metric__init(&f->m_summary);
	opentelemetry__proto__metrics__v1__summary__init(&f->summary);
	opentelemetry__proto__metrics__v1__summary_data_point__init(&f->qp);
	opentelemetry__proto__metrics__v1__summary_data_point__value_at_quantile__init(&f->q50);
	opentelemetry__proto__metrics__v1__summary_data_point__value_at_quantile__init(&f->q99);
	f->q50.quantile = 0.5;
	f->q50.value = 1.25;
	f->q99.quantile = 0.99;
	f->q99.value = 80.0;
	f->qs[0] = &f->q50;
	f->qs[1] = &f->q99;
	f->qp.start_time_unix_nano = T0;
	f->qp.time_unix_nano = T1;
	f->qp.count = 100;
	f->qp.sum = 512.5;
	f->qp.n_quantile_values = 2;
	f->qp.quantile_values = f->qs;
	f->qps[0] = &f->qp;
	f->summary.n_data_points = 1;
	f->summary.data_points = f->qps;
	f->m_summary.name = "postgresql.statement.time";
	f->m_summary.unit = "ms";
	f->m_summary.description = "statement time quantiles";
	f->m_summary.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY;
	f->m_summary.summary = &f->summary;

	f->metrics[0] = &f->m_gauge;
	f->metrics[1] = &f->m_sum;
	f->metrics[2] = &f->m_hist;
	f->metrics[3] = &f->m_exp;
	f->metrics[4] = &f->m_summary;
	f->sm.scope = &f->scope;
	f->sm.n_metrics = 5;
	f->sm.metrics = f->metrics;
	f->sms[0] = &f->sm;
	f->rm.resource = &f->res;
	f->rm.n_scope_metrics = 1;
	f->rm.scope_metrics = f->sms;
	f->rm.schema_url = "https://opentelemetry.io/schemas/1.26.0";
	f->rms[0] = &f->rm;
	f->req.n_resource_metrics = 1;
	f->req.resource_metrics = f->rms;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(protobuf_c_message_pack(m, buf), *len);
	return buf;
}

static void test_metrics_pack_unpack(void **state)
{
	struct fixture f;
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest *r;
	Opentelemetry__Proto__Metrics__V1__Metric **ms;
	struct dbi_errbuf err;
	ProtobufCMessage *out;
	uint8_t *buf, *buf2;
	size_t len, len2;

	(void)state;
	fixture_build(&f);
	buf = pack(&f.req.base, &len);
	assert_int_equal(
	        dbi_otlp_pb_unpack(
	                &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor, buf,
	                len, &out, &err),
	        DBI_OK);
	r = (Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest *)out;

	assert_int_equal(r->n_resource_metrics, 1);
	assert_string_equal(r->resource_metrics[0]->schema_url, "https://opentelemetry.io/schemas/1.26.0");
	assert_int_equal(r->resource_metrics[0]->resource->n_attributes, 2);
	assert_string_equal(r->resource_metrics[0]->resource->attributes[0]->key, "service.instance.id");
	assert_string_equal(r->resource_metrics[0]->resource->attributes[0]->value->string_value, "db01:5432");
	assert_int_equal(r->resource_metrics[0]->resource->attributes[1]->value->value_case,
	                 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
	assert_int_equal(r->resource_metrics[0]->resource->attributes[1]->value->int_value, 5432);
	assert_string_equal(r->resource_metrics[0]->scope_metrics[0]->scope->name, "dbi.postgresql");
	assert_int_equal(r->resource_metrics[0]->scope_metrics[0]->n_metrics, 5);
	ms = r->resource_metrics[0]->scope_metrics[0]->metrics;

	/* gauge */
	assert_string_equal(ms[0]->name, "postgresql.cache.hit_ratio");
	assert_int_equal(ms[0]->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE);
	assert_int_equal(ms[0]->gauge->data_points[0]->value_case,
	                 OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE);
	assert_true(ms[0]->gauge->data_points[0]->as_double == 0.75);
	assert_true(ms[0]->gauge->data_points[0]->time_unix_nano == T1);

	/* sum */
	assert_int_equal(ms[1]->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM);
	assert_true(ms[1]->sum->is_monotonic);
	assert_int_equal(
	        ms[1]->sum->aggregation_temporality,
	        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE);
	assert_true(ms[1]->sum->data_points[0]->as_int == 9007199254740993LL);
	assert_true(ms[1]->sum->data_points[0]->start_time_unix_nano == T0);
	assert_int_equal(ms[1]->sum->data_points[0]->n_exemplars, 1);
	assert_true(ms[1]->sum->data_points[0]->exemplars[0]->as_int == -7);
	assert_int_equal(ms[1]->sum->data_points[0]->exemplars[0]->trace_id.len, 16);
	assert_memory_equal(ms[1]->sum->data_points[0]->exemplars[0]->trace_id.data, f.trace_id, 16);
	assert_memory_equal(ms[1]->sum->data_points[0]->exemplars[0]->span_id.data, f.span_id, 8);

	/* histogram: min = 0 survives because it is explicitly present */
	assert_int_equal(ms[2]->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM);
	assert_int_equal(ms[2]->histogram->aggregation_temporality,
	                 OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA);
	{
		Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *hp = ms[2]->histogram->data_points[0];

		assert_true(hp->count == 8);
		assert_int_equal(hp->opt_sum_case,
		                 OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_SUM_SUM);
		assert_true(hp->sum == 31.5);
		assert_int_equal(hp->opt_min_case,
		                 OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_MIN_MIN);
		assert_true(hp->min == 0.0);
		assert_true(hp->max == 12.25);
		assert_int_equal(hp->n_bucket_counts, 3);
		assert_true(hp->bucket_counts[0] == 3 && hp->bucket_counts[1] == 4 && hp->bucket_counts[2] == 1);
		assert_int_equal(hp->n_explicit_bounds, 2);
		assert_true(hp->explicit_bounds[0] == 1.0 && hp->explicit_bounds[1] == 10.0);
	}

	/* exponential histogram: no sum, sint32 offsets and scale */
	assert_int_equal(ms[3]->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM);
	{
		Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint *ep =
		        ms[3]->exponential_histogram->data_points[0];

		assert_int_equal(ep->opt_sum_case,
		                 OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__OPT_SUM__NOT_SET);
		assert_int_equal(ep->scale, -2);
		assert_true(ep->count == 11 && ep->zero_count == 2);
		assert_true(ep->zero_threshold == 1e-9);
		assert_int_equal(ep->positive->offset, -3);
		assert_int_equal(ep->positive->n_bucket_counts, 4);
		assert_true(ep->positive->bucket_counts[2] == 5);
		assert_int_equal(ep->negative->offset, 2);
		assert_int_equal(ep->flags, 1);
	}

	/* summary */
	assert_int_equal(ms[4]->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY);
	assert_string_equal(ms[4]->description, "statement time quantiles");
	assert_true(ms[4]->summary->data_points[0]->count == 100);
	assert_true(ms[4]->summary->data_points[0]->sum == 512.5);
	assert_int_equal(ms[4]->summary->data_points[0]->n_quantile_values, 2);
	assert_true(ms[4]->summary->data_points[0]->quantile_values[1]->quantile == 0.99);
	assert_true(ms[4]->summary->data_points[0]->quantile_values[1]->value == 80.0);

	/* and the unpacked message packs to the same bytes */
	buf2 = pack(out, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	free(buf2);
	free(buf);
	protobuf_c_message_free_unpacked(out, NULL);
}

/* Field numbers on the wire, checked byte by byte for a few spec facts. */
static void test_wire_field_numbers(void **state)
{
	Opentelemetry__Proto__Metrics__V1__NumberDataPoint p =
	        OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__INIT;
	Opentelemetry__Proto__Trace__V1__Span s = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
	Opentelemetry__Proto__Logs__V1__LogRecord l = OPENTELEMETRY__PROTO__LOGS__V1__LOG_RECORD__INIT;
	uint8_t buf[64];
	size_t n;

	(void)state;
	/* as_int = field 6, sfixed64: tag (6 << 3 | 1) = 0x31 */
	p.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
	p.as_int = 1;
	n = protobuf_c_message_pack(&p.base, buf);
	assert_int_equal(n, 9);
	assert_int_equal(buf[0], 0x31);
	/* flags = field 8, uint32 varint: 0x40 */
	p.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE__NOT_SET;
	p.flags = 1;
	n = protobuf_c_message_pack(&p.base, buf);
	assert_int_equal(n, 2);
	assert_int_equal(buf[0], 0x40);
	/* Span.flags = field 16, fixed32: tag 16 << 3 | 5 = 0x85 as varint 0x85 0x01 */
	s.flags = 0x301;
	n = protobuf_c_message_pack(&s.base, buf);
	assert_int_equal(n, 6);
	assert_int_equal(buf[0], 0x85);
	assert_int_equal(buf[1], 0x01);
	/* LogRecord.event_name = field 12, string: 0x62; observed_time = field 11, fixed64: 0x59 */
	l.event_name = "e";
	l.observed_time_unix_nano = 1;
	n = protobuf_c_message_pack(&l.base, buf);
	assert_int_equal(n, 9 + 3);
	assert_int_equal(buf[0], 0x59);
	assert_int_equal(buf[9], 0x62);
}

/* Nested AnyValue kvlists: each level is AnyValue{6: KeyValueList{1: KeyValue{2: AnyValue}}}. */
static uint8_t *nested_anyvalue(unsigned levels, size_t *len)
{
	size_t cap = 16 + (size_t)levels * 40, n = 0, i;
	uint8_t *a = malloc(cap), *b = malloc(cap), *t;

	assert_non_null(a);
	assert_non_null(b);
	/* innermost AnyValue: int_value = 1 */
	a[n++] = 0x18;
	a[n++] = 0x01;
	for (i = 0; i < levels; i++) {
		size_t m = 0, kv, kvl;

		/* KeyValue { key(1) = "k", value(2) = a } */
		kv = 3 + 1 + (n < 128 ? 1 : n < 16384 ? 2 : 3) + n;
		/* KeyValueList { values(1) = kv } */
		kvl = 1 + (kv < 128 ? 1 : kv < 16384 ? 2 : 3) + kv;
		b[m++] = 0x32; /* AnyValue.kvlist_value */
		for (size_t v = kvl;; v >>= 7) {
			b[m++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
			if (v < 0x80)
				break;
		}
		b[m++] = 0x0a; /* KeyValueList.values */
		for (size_t v = kv;; v >>= 7) {
			b[m++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
			if (v < 0x80)
				break;
		}
		b[m++] = 0x0a; /* KeyValue.key */
		b[m++] = 0x01;
		b[m++] = 'k';
		b[m++] = 0x12; /* KeyValue.value */
		for (size_t v = n;; v >>= 7) {
			b[m++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
			if (v < 0x80)
				break;
		}
		assert_true(m + n <= cap);
		memcpy(b + m, a, n);
		n += m;
		t = a;
		a = b;
		b = t;
	}
	free(b);
	*len = n;
	return a;
}

static void test_unpack_depth_limit(void **state)
{
	const ProtobufCMessageDescriptor *d = &opentelemetry__proto__common__v1__any_value__descriptor;
	struct dbi_errbuf err;
	ProtobufCMessage *m;
	uint8_t *buf;
	size_t len;

	(void)state;
	/* 20 map levels = 61 messages: accepted */
	buf = nested_anyvalue(20, &len);
	assert_int_equal(dbi_otlp_pb_unpack(d, buf, len, &m, &err), DBI_OK);
	protobuf_c_message_free_unpacked(m, NULL);
	free(buf);
	/* 22 levels = 67 messages: refused before protobuf-c recurses */
	buf = nested_anyvalue(22, &len);
	assert_int_equal(dbi_otlp_pb_unpack(d, buf, len, &m, &err), DBI_ERR);
	assert_null(m);
	assert_non_null(strstr(err.msg, "nested deeper than 64"));
	free(buf);
	/* 5000 levels (~15000 messages) would strain protobuf-c's stack; we answer with an error */
	buf = nested_anyvalue(5000, &len);
	assert_int_equal(dbi_otlp_pb_unpack(d, buf, len, &m, &err), DBI_ERR);
	free(buf);
}

static void test_unpack_malformed(void **state)
{
	const ProtobufCMessageDescriptor *d =
	        &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor;
	static const uint8_t truncated_len[] = {0x0a, 0x05, 0x0a, 0x01};
	static const uint8_t bad_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	static const uint8_t group[] = {0x0b, 0x0c};
	static const uint8_t field_zero[] = {0x00, 0x01};
	struct dbi_errbuf err;
	ProtobufCMessage *m;

	(void)state;
	assert_int_equal(dbi_otlp_pb_unpack(d, truncated_len, sizeof(truncated_len), &m, &err), DBI_ERR);
	assert_non_null(strstr(err.msg, "malformed"));
	assert_int_equal(dbi_otlp_pb_unpack(d, bad_varint, sizeof(bad_varint), &m, &err), DBI_ERR);
	assert_int_equal(dbi_otlp_pb_unpack(d, group, sizeof(group), &m, &err), DBI_ERR);
	assert_int_equal(dbi_otlp_pb_unpack(d, field_zero, sizeof(field_zero), &m, &err), DBI_ERR);
	/* empty input is an empty request */
	assert_int_equal(dbi_otlp_pb_unpack(d, NULL, 0, &m, &err), DBI_OK);
	assert_int_equal(((Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *)m)->n_resource_logs,
	                 0);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- independent check with protoc (Debian package protobuf-compiler) ---- */

static int have_protoc(void)
{
	return system("protoc --version >/dev/null 2>&1") == 0;
}

/* Runs protoc with args, stdin from in_path, returns its stdout (malloc'd) or NULL. */
static char *run_protoc(const char *args, const char *in_path)
{
	char cmd[2048], out_path[] = "/tmp/dbi_protoc_outXXXXXX";
	char *text = NULL;
	FILE *fp;
	long sz;
	int fd = mkstemp(out_path);

	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "protoc -I%s/proto %s < %s > %s", DBI_SOURCE_DIR, args, in_path, out_path);
	if (system(cmd) == 0 && (fp = fopen(out_path, "rb")) != NULL) {
		fseek(fp, 0, SEEK_END);
		sz = ftell(fp);
		fseek(fp, 0, SEEK_SET);
		text = calloc(1, (size_t)sz + 1);
		assert_non_null(text);
		assert_int_equal(fread(text, 1, (size_t)sz, fp), (size_t)sz);
		text[sz] = '\0';
		fclose(fp);
	}
	unlink(out_path);
	return text;
}

static char *write_temp(const void *data, size_t len)
{
	char *path = strdup("/tmp/dbi_protoc_inXXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_protoc_decodes_our_bytes(void **state)
{
	struct fixture f;
	uint8_t *buf;
	size_t len;
	char *in, *text;

	(void)state;
	if (!have_protoc())
		skip();
	fixture_build(&f);
	buf = pack(&f.req.base, &len);
	in = write_temp(buf, len);
	text = run_protoc("--decode=opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest "
	                  "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
	                  in);
	assert_non_null(text);
	/* protoc prints text format with the .proto field names: spot-check the facts */
	assert_non_null(strstr(text, "string_value: \"db01:5432\""));
	assert_non_null(strstr(text, "int_value: 5432"));
	assert_non_null(strstr(text, "as_double: 0.75"));
	assert_non_null(strstr(text, "as_int: 9007199254740993"));
	assert_non_null(strstr(text, "as_int: -7"));
	assert_non_null(strstr(text, "trace_id: \"[\\216\\377\\367\\230\\003\\201\\003\\322i\\2663\\201?\\306\\014\""));
	assert_non_null(strstr(text, "aggregation_temporality: AGGREGATION_TEMPORALITY_CUMULATIVE"));
	assert_non_null(strstr(text, "aggregation_temporality: AGGREGATION_TEMPORALITY_DELTA"));
	assert_non_null(strstr(text, "is_monotonic: true"));
	assert_non_null(strstr(text, "start_time_unix_nano: 1544712660300000000"));
	assert_non_null(strstr(text, "sum: 31.5"));
	assert_non_null(strstr(text, "min: 0"));
	assert_non_null(strstr(text, "max: 12.25"));
	assert_non_null(strstr(text, "explicit_bounds: 10"));
	assert_non_null(strstr(text, "scale: -2"));
	assert_non_null(strstr(text, "offset: -3"));
	assert_non_null(strstr(text, "zero_count: 2"));
	assert_non_null(strstr(text, "zero_threshold: 1e-09"));
	assert_non_null(strstr(text, "quantile: 0.99"));
	assert_non_null(strstr(text, "schema_url: \"https://opentelemetry.io/schemas/1.26.0\""));
	assert_null(strstr(text, "\n1:")); /* no field protoc did not recognise */
	free(text);
	unlink(in);
	free(in);
	free(buf);
}

/* protoc --encode of a text-format message: the bytes an independent encoder produces. */
static size_t protoc_encode(const char *type, const char *proto, const char *text, uint8_t *data, size_t cap)
{
	char cmd[2048], out[] = "/tmp/dbi_protoc_binXXXXXX";
	char *in = write_temp(text, strlen(text));
	int fd = mkstemp(out);
	size_t len;
	FILE *fp;

	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "protoc -I%s/proto --encode=%s %s < %s > %s", DBI_SOURCE_DIR, type, proto, in, out);
	assert_int_equal(system(cmd), 0);
	fp = fopen(out, "rb");
	assert_non_null(fp);
	len = fread(data, 1, cap, fp);
	assert_true(len < cap);
	fclose(fp);
	unlink(out);
	unlink(in);
	free(in);
	return len;
}

static void test_protoc_encodes_we_decode(void **state)
{
	static const char trace_text[] =
	        "resource_spans {\n"
	        "  resource { attributes { key: \"service.name\" value { string_value: \"checkout\" } } }\n"
	        "  scope_spans {\n"
	        "    scope { name: \"lib\" version: \"2\" }\n"
	        "    spans {\n"
	        "      trace_id: \"\\001\\002\\003\\004\\005\\006\\007\\010\\011\\012\\013\\014\\015\\016\\017\\020\"\n"
	        "      span_id: \"\\021\\022\\023\\024\\025\\026\\027\\030\"\n"
	        "      flags: 769 name: \"SELECT\" kind: SPAN_KIND_CLIENT\n"
	        "      start_time_unix_nano: 1 end_time_unix_nano: 2\n"
	        "      events { time_unix_nano: 3 name: \"retry\" }\n"
	        "      links { span_id: \"\\001\\001\\001\\001\\001\\001\\001\\001\" flags: 256 }\n"
	        "      status { message: \"boom\" code: STATUS_CODE_ERROR }\n"
	        "    }\n"
	        "  }\n"
	        "}\n";
	static const char log_text[] =
	        "resource_logs { scope_logs { log_records {\n"
	        "  time_unix_nano: 5 observed_time_unix_nano: 6 severity_number: SEVERITY_NUMBER_WARN2\n"
	        "  severity_text: \"WARNING\" body { string_value: \"checkpoint\" } flags: 1 event_name: \"pg.log\"\n"
	        "} } }\n";
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *tr;
	Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *lr;
	Opentelemetry__Proto__Trace__V1__Span *sp;
	Opentelemetry__Proto__Logs__V1__LogRecord *rec;
	struct dbi_errbuf err;
	ProtobufCMessage *m;
	uint8_t data[4096];
	size_t len;

	(void)state;
	if (!have_protoc())
		skip();

	len = protoc_encode("opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
	                    "opentelemetry/proto/collector/trace/v1/trace_service.proto", trace_text, data,
	                    sizeof(data));
	assert_int_equal(dbi_otlp_pb_unpack(
	                         &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
	                         data, len, &m, &err),
	                 DBI_OK);
	tr = (Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *)m;
	assert_string_equal(tr->resource_spans[0]->resource->attributes[0]->value->string_value, "checkout");
	sp = tr->resource_spans[0]->scope_spans[0]->spans[0];
	assert_int_equal(sp->trace_id.len, 16);
	assert_int_equal(sp->trace_id.data[15], 0x10);
	assert_int_equal(sp->span_id.len, 8);
	assert_int_equal(sp->span_id.data[0], 0x11);
	assert_int_equal(sp->flags, 769);
	assert_string_equal(sp->name, "SELECT");
	assert_int_equal(sp->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT);
	assert_true(sp->start_time_unix_nano == 1 && sp->end_time_unix_nano == 2);
	assert_string_equal(sp->events[0]->name, "retry");
	assert_int_equal(sp->links[0]->flags, 256);
	assert_int_equal(sp->status->code, OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
	assert_string_equal(sp->status->message, "boom");
	assert_int_equal(sp->base.n_unknown_fields, 0);
	protobuf_c_message_free_unpacked(m, NULL);

	len = protoc_encode("opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest",
	                    "opentelemetry/proto/collector/logs/v1/logs_service.proto", log_text, data, sizeof(data));
	assert_int_equal(
	        dbi_otlp_pb_unpack(&opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor,
	                           data, len, &m, &err),
	        DBI_OK);
	lr = (Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *)m;
	rec = lr->resource_logs[0]->scope_logs[0]->log_records[0];
	assert_true(rec->time_unix_nano == 5 && rec->observed_time_unix_nano == 6);
	assert_int_equal(rec->severity_number, OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_WARN2);
	assert_int_equal(rec->severity_number, 14);
	assert_string_equal(rec->severity_text, "WARNING");
	assert_string_equal(rec->body->string_value, "checkpoint");
	assert_int_equal(rec->flags, 1);
	assert_string_equal(rec->event_name, "pg.log");
	assert_int_equal(rec->base.n_unknown_fields, 0);
	protobuf_c_message_free_unpacked(m, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_metrics_pack_unpack),      cmocka_unit_test(test_wire_field_numbers),
	        cmocka_unit_test(test_unpack_depth_limit),       cmocka_unit_test(test_unpack_malformed),
	        cmocka_unit_test(test_protoc_decodes_our_bytes), cmocka_unit_test(test_protoc_encodes_we_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
