/*
 * test_otlp_json.c — the OTLP/JSON codec: documents shaped like the OTLP
 * specification's JSON examples decode into the right fields; the lenient spellings
 * the spec allows decode the same; encode -> decode reproduces the exact protobuf
 * bytes; encoded output follows the OTLP JSON rules (camelCase, hex ids, int64 as
 * strings); and bad input is refused with an error that says where.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbi/otlp_json.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#define METRICS_REQ (&opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor)
#define LOGS_REQ (&opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor)
#define TRACE_REQ (&opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor)
#define METRICS_RESP (&opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__descriptor)

#define metrics_req Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest
#define logs_req Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest
#define trace_req Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest

/* Metrics request in the shape of the OTLP specification's examples/metrics.json. */
static const char metrics_json[] =
        "{\n"
        "  \"resourceMetrics\": [{\n"
        "    \"resource\": {\n"
        "      \"attributes\": [{\"key\": \"service.name\", \"value\": {\"stringValue\": \"pg-fleet\"}}]\n"
        "    },\n"
        "    \"scopeMetrics\": [{\n"
        "      \"scope\": {\n"
        "        \"name\": \"dbi.receiver\", \"version\": \"1.0.0\",\n"
        "        \"attributes\": [{\"key\": \"scope.attr\", \"value\": {\"stringValue\": \"s\"}}]\n"
        "      },\n"
        "      \"metrics\": [\n"
        "        {\"name\": \"my.counter\", \"unit\": \"1\", \"description\": \"a counter\",\n"
        "         \"sum\": {\"aggregationTemporality\": 1, \"isMonotonic\": true,\n"
        "           \"dataPoints\": [{\"asDouble\": 5, \"startTimeUnixNano\": \"1544712660300000000\",\n"
        "             \"timeUnixNano\": \"1544712660300000000\",\n"
        "             \"attributes\": [{\"key\": \"my.counter.attr\", \"value\": {\"stringValue\": \"v\"}}]}]}},\n"
        "        {\"name\": \"my.gauge\", \"unit\": \"1\", \"description\": \"a gauge\",\n"
        "         \"gauge\": {\"dataPoints\": [{\"asInt\": \"-10\", \"timeUnixNano\": \"1544712660300000000\"}]}},\n"
        "        {\"name\": \"my.histogram\", \"unit\": \"ms\",\n"
        "         \"histogram\": {\"aggregationTemporality\": 2,\n"
        "           \"dataPoints\": [{\"startTimeUnixNano\": \"1544712660300000000\",\n"
        "             \"timeUnixNano\": \"1544712660300000000\", \"count\": 2, \"sum\": 2,\n"
        "             \"bucketCounts\": [1, \"1\"], \"explicitBounds\": [1], \"min\": 0, \"max\": 2}]}},\n"
        "        {\"name\": \"my.exponential.histogram\", \"unit\": \"s\",\n"
        "         \"exponentialHistogram\": {\"aggregationTemporality\": 1,\n"
        "           \"dataPoints\": [{\"startTimeUnixNano\": \"1544712660300000000\",\n"
        "             \"timeUnixNano\": \"1544712660300000000\", \"count\": 3, \"sum\": 10,\n"
        "             \"scale\": 0, \"zeroCount\": 1, \"zeroThreshold\": 0.001,\n"
        "             \"positive\": {\"offset\": 1, \"bucketCounts\": [0, 2]},\n"
        "             \"negative\": {\"offset\": -2, \"bucketCounts\": []},\n"
        "             \"min\": 0, \"max\": 5}]}},\n"
        "        {\"name\": \"my.summary\", \"unit\": \"ms\",\n"
        "         \"summary\": {\"dataPoints\": [{\"timeUnixNano\": \"1544712660300000000\",\n"
        "             \"count\": \"4\", \"sum\": 12.5, \"flags\": 1,\n"
        "             \"quantileValues\": [{\"quantile\": 0.5, \"value\": 3}, {\"quantile\": 1, "
        "\"value\": 6}]}]}}\n"
        "      ]\n"
        "    }]\n"
        "  }]\n"
        "}\n";

/* Trace request in the shape of the specification's examples/trace.json. */
static const char trace_json[] =
        "{\"resourceSpans\": [{\n"
        "  \"resource\": {\"attributes\": [{\"key\": \"service.name\", \"value\": {\"stringValue\": "
        "\"my.service\"}}]},\n"
        "  \"scopeSpans\": [{\n"
        "    \"scope\": {\"name\": \"my.library\", \"version\": \"1.0.0\"},\n"
        "    \"spans\": [{\n"
        "      \"traceId\": \"5B8EFFF798038103D269B633813FC60C\",\n"
        "      \"spanId\": \"EEE19B7EC3C1B174\",\n"
        "      \"parentSpanId\": \"EEE19B7EC3C1B173\",\n"
        "      \"name\": \"I'm a server span\",\n"
        "      \"startTimeUnixNano\": \"1544712660000000000\",\n"
        "      \"endTimeUnixNano\": \"1544712661000000000\",\n"
        "      \"kind\": 2, \"flags\": 257,\n"
        "      \"attributes\": [{\"key\": \"my.span.attr\", \"value\": {\"stringValue\": \"some value\"}},\n"
        "                     {\"key\": \"arr\", \"value\": {\"arrayValue\": {\"values\": [{\"intValue\": \"1\"},\n"
        "                        {\"boolValue\": false}, {\"doubleValue\": 1.5}]}}},\n"
        "                     {\"key\": \"map\", \"value\": {\"kvlistValue\": {\"values\": [\n"
        "                        {\"key\": \"inner\", \"value\": {\"bytesValue\": \"aGVsbG8=\"}}]}}}],\n"
        "      \"events\": [{\"timeUnixNano\": \"1544712660500000000\", \"name\": \"ev\",\n"
        "                  \"attributes\": [{\"key\": \"k\", \"value\": {\"intValue\": 3}}]}],\n"
        "      \"links\": [{\"traceId\": \"00000000000000000000000000000001\", \"spanId\": \"0000000000000002\",\n"
        "                 \"traceState\": \"a=b\", \"flags\": 768}],\n"
        "      \"status\": {\"code\": 2, \"message\": \"failed\"}\n"
        "    }]\n"
        "  }]\n"
        "}]}\n";

/* Logs request in the shape of the specification's examples/logs.json. */
static const char logs_json[] =
        "{\"resourceLogs\": [{\n"
        "  \"resource\": {\"attributes\": [{\"key\": \"service.name\", \"value\": {\"stringValue\": "
        "\"my.service\"}}]},\n"
        "  \"scopeLogs\": [{\n"
        "    \"scope\": {\"name\": \"my.library\", \"version\": \"1.0.0\"},\n"
        "    \"logRecords\": [{\n"
        "      \"timeUnixNano\": \"1544712660300000000\",\n"
        "      \"observedTimeUnixNano\": \"1544712660300000000\",\n"
        "      \"severityNumber\": 10,\n"
        "      \"severityText\": \"Information\",\n"
        "      \"traceId\": \"5b8efff798038103d269b633813fc60c\",\n"
        "      \"spanId\": \"eee19b7ec3c1b174\",\n"
        "      \"body\": {\"stringValue\": \"Example log record\"},\n"
        "      \"eventName\": \"db.checkpoint\",\n"
        "      \"attributes\": [\n"
        "        {\"key\": \"string.attribute\", \"value\": {\"stringValue\": \"some string\"}},\n"
        "        {\"key\": \"boolean.attribute\", \"value\": {\"boolValue\": true}},\n"
        "        {\"key\": \"int.attribute\", \"value\": {\"intValue\": \"10\"}},\n"
        "        {\"key\": \"double.attribute\", \"value\": {\"doubleValue\": 637.704}},\n"
        "        {\"key\": \"array.attribute\", \"value\": {\"arrayValue\": {\"values\": [\n"
        "          {\"stringValue\": \"many\"}, {\"stringValue\": \"values\"}]}}},\n"
        "        {\"key\": \"map.attribute\", \"value\": {\"kvlistValue\": {\"values\": [\n"
        "          {\"key\": \"some.map.key\", \"value\": {\"stringValue\": \"some value\"}}]}}}\n"
        "      ]\n"
        "    }]\n"
        "  }]\n"
        "}]}\n";

static ProtobufCMessage *decode_ok(const ProtobufCMessageDescriptor *d, const char *json)
{
	struct dbi_errbuf err;
	ProtobufCMessage *m = NULL;
	int rc;

	dbi_err_clear(&err);
	rc = dbi_otlp_json_decode(d, json, strlen(json), &m, &err);
	if (rc != DBI_OK)
		print_error("decode failed: %s\n", err.msg);
	assert_int_equal(rc, DBI_OK);
	assert_non_null(m);
	return m;
}

/* Decoding must fail and the error must contain want. */
static void decode_fails(const ProtobufCMessageDescriptor *d, const char *json, size_t len, const char *want)
{
	struct dbi_errbuf err;
	ProtobufCMessage *m = (ProtobufCMessage *)1;

	dbi_err_clear(&err);
	assert_int_equal(dbi_otlp_json_decode(d, json, len, &m, &err), DBI_ERR);
	assert_null(m);
	if (!strstr(err.msg, want))
		print_error("error \"%s\" lacks \"%s\"\n", err.msg, want);
	assert_non_null(strstr(err.msg, want));
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

/* encode(m) then decode must give a message that packs to the same bytes as m. */
static void assert_round_trip(const ProtobufCMessage *m, unsigned flags)
{
	ProtobufCMessage *back;
	uint8_t *a, *b;
	size_t alen, blen, jlen;
	char *json;

	assert_int_equal(dbi_otlp_json_encode_ex(m, flags, &json, &jlen), DBI_OK);
	assert_int_equal(strlen(json), jlen);
	back = decode_ok(m->descriptor, json);
	a = pack(m, &alen);
	b = pack(back, &blen);
	if (alen != blen || memcmp(a, b, alen) != 0)
		print_error("round trip differs for %s\n", json);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	free(a);
	free(b);
	free(json);
	protobuf_c_message_free_unpacked(back, NULL);
}

static void test_decode_metrics_example(void **state)
{
	ProtobufCMessage *m = decode_ok(METRICS_REQ, metrics_json);
	metrics_req *r = (metrics_req *)m;
	Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm;
	Opentelemetry__Proto__Metrics__V1__Metric **ms;

	(void)state;
	assert_int_equal(r->n_resource_metrics, 1);
	assert_string_equal(r->resource_metrics[0]->resource->attributes[0]->key, "service.name");
	assert_string_equal(r->resource_metrics[0]->resource->attributes[0]->value->string_value, "pg-fleet");
	sm = r->resource_metrics[0]->scope_metrics[0];
	assert_string_equal(sm->scope->name, "dbi.receiver");
	assert_string_equal(sm->scope->version, "1.0.0");
	assert_string_equal(sm->scope->attributes[0]->key, "scope.attr");
	assert_int_equal(sm->n_metrics, 5);
	ms = sm->metrics;

	assert_string_equal(ms[0]->name, "my.counter");
	assert_string_equal(ms[0]->description, "a counter");
	assert_int_equal(ms[0]->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM);
	assert_int_equal(ms[0]->sum->aggregation_temporality, 1);
	assert_true(ms[0]->sum->is_monotonic);
	assert_int_equal(ms[0]->sum->data_points[0]->value_case,
	                 OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE);
	assert_true(ms[0]->sum->data_points[0]->as_double == 5.0);
	assert_true(ms[0]->sum->data_points[0]->start_time_unix_nano == 1544712660300000000ULL);
	assert_string_equal(ms[0]->sum->data_points[0]->attributes[0]->value->string_value, "v");

	assert_int_equal(ms[1]->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE);
	assert_int_equal(ms[1]->gauge->data_points[0]->value_case,
	                 OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT);
	assert_true(ms[1]->gauge->data_points[0]->as_int == -10);

	{
		Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *hp = ms[2]->histogram->data_points[0];

		assert_int_equal(ms[2]->histogram->aggregation_temporality, 2);
		assert_true(hp->count == 2);
		assert_int_equal(hp->opt_sum_case,
		                 OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_SUM_SUM);
		assert_true(hp->sum == 2.0);
		assert_int_equal(hp->opt_min_case,
		                 OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_MIN_MIN);
		assert_true(hp->min == 0.0);
		assert_true(hp->max == 2.0);
		assert_int_equal(hp->n_bucket_counts, 2);
		assert_true(hp->bucket_counts[0] == 1 && hp->bucket_counts[1] == 1);
		assert_int_equal(hp->n_explicit_bounds, 1);
		assert_true(hp->explicit_bounds[0] == 1.0);
	}
	{
		Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint *ep =
		        ms[3]->exponential_histogram->data_points[0];

		assert_int_equal(ms[3]->data_case,
		                 OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM);
		assert_true(ep->count == 3 && ep->zero_count == 1);
		assert_true(ep->sum == 10.0);
		assert_true(ep->zero_threshold == 0.001);
		assert_int_equal(ep->positive->offset, 1);
		assert_int_equal(ep->positive->n_bucket_counts, 2);
		assert_true(ep->positive->bucket_counts[1] == 2);
		assert_int_equal(ep->negative->offset, -2);
		assert_int_equal(ep->negative->n_bucket_counts, 0);
		assert_true(ep->max == 5.0);
	}
	{
		Opentelemetry__Proto__Metrics__V1__SummaryDataPoint *qp = ms[4]->summary->data_points[0];

		assert_true(qp->count == 4);
		assert_true(qp->sum == 12.5);
		assert_int_equal(qp->flags, 1);
		assert_int_equal(qp->n_quantile_values, 2);
		assert_true(qp->quantile_values[1]->quantile == 1.0 && qp->quantile_values[1]->value == 6.0);
	}
	assert_round_trip(m, 0);
	assert_round_trip(m, DBI_OTLP_JSON_PRETTY);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void test_decode_trace_example(void **state)
{
	static const uint8_t tid[16] = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03,
	                                0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};
	static const uint8_t sid[8] = {0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74};
	ProtobufCMessage *m = decode_ok(TRACE_REQ, trace_json);
	trace_req *r = (trace_req *)m;
	Opentelemetry__Proto__Trace__V1__Span *sp;
	Opentelemetry__Proto__Common__V1__AnyValue *arr, *map;

	(void)state;
	sp = r->resource_spans[0]->scope_spans[0]->spans[0];
	assert_int_equal(sp->trace_id.len, 16);
	assert_memory_equal(sp->trace_id.data, tid, 16);
	assert_int_equal(sp->span_id.len, 8);
	assert_memory_equal(sp->span_id.data, sid, 8);
	assert_int_equal(sp->parent_span_id.len, 8);
	assert_int_equal(sp->parent_span_id.data[7], 0x73);
	assert_string_equal(sp->name, "I'm a server span");
	assert_int_equal(sp->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
	assert_int_equal(sp->flags, 257);
	assert_true(sp->start_time_unix_nano == 1544712660000000000ULL);
	assert_true(sp->end_time_unix_nano == 1544712661000000000ULL);
	assert_int_equal(sp->n_attributes, 3);
	arr = sp->attributes[1]->value;
	assert_int_equal(arr->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE);
	assert_int_equal(arr->array_value->n_values, 3);
	assert_true(arr->array_value->values[0]->int_value == 1);
	assert_int_equal(arr->array_value->values[1]->value_case,
	                 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE);
	assert_false(arr->array_value->values[1]->bool_value);
	assert_true(arr->array_value->values[2]->double_value == 1.5);
	map = sp->attributes[2]->value;
	assert_int_equal(map->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE);
	assert_string_equal(map->kvlist_value->values[0]->key, "inner");
	assert_int_equal(map->kvlist_value->values[0]->value->bytes_value.len, 5);
	assert_memory_equal(map->kvlist_value->values[0]->value->bytes_value.data, "hello", 5);
	assert_string_equal(sp->events[0]->name, "ev");
	assert_true(sp->events[0]->attributes[0]->value->int_value == 3);
	assert_int_equal(sp->links[0]->trace_id.data[15], 1);
	assert_int_equal(sp->links[0]->span_id.data[7], 2);
	assert_string_equal(sp->links[0]->trace_state, "a=b");
	assert_int_equal(sp->links[0]->flags, 768);
	assert_int_equal(sp->status->code, OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
	assert_string_equal(sp->status->message, "failed");
	assert_round_trip(m, 0);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void test_decode_logs_example(void **state)
{
	ProtobufCMessage *m = decode_ok(LOGS_REQ, logs_json);
	logs_req *r = (logs_req *)m;
	Opentelemetry__Proto__Logs__V1__LogRecord *rec;

	(void)state;
	rec = r->resource_logs[0]->scope_logs[0]->log_records[0];
	assert_true(rec->time_unix_nano == 1544712660300000000ULL);
	assert_true(rec->observed_time_unix_nano == 1544712660300000000ULL);
	assert_int_equal(rec->severity_number, OPENTELEMETRY__PROTO__LOGS__V1__SEVERITY_NUMBER__SEVERITY_NUMBER_INFO2);
	assert_string_equal(rec->severity_text, "Information");
	assert_int_equal(rec->trace_id.len, 16);
	assert_int_equal(rec->trace_id.data[0], 0x5b);
	assert_int_equal(rec->span_id.len, 8);
	assert_int_equal(rec->span_id.data[7], 0x74);
	assert_string_equal(rec->body->string_value, "Example log record");
	assert_string_equal(rec->event_name, "db.checkpoint");
	assert_int_equal(rec->n_attributes, 6);
	assert_true(rec->attributes[1]->value->bool_value);
	assert_true(rec->attributes[2]->value->int_value == 10);
	assert_true(rec->attributes[3]->value->double_value == 637.704);
	assert_string_equal(rec->attributes[4]->value->array_value->values[1]->string_value, "values");
	assert_string_equal(rec->attributes[5]->value->kvlist_value->values[0]->value->string_value, "some value");
	assert_round_trip(m, 0);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* snake_case names, enum names, numbers for int64s, unknown fields, nulls. */
static void test_decode_lenient_spellings(void **state)
{
	static const char json[] =
	        "{\"resource_spans\": [{\"scope_spans\": [{\"spans\": [{\n"
	        "  \"trace_id\": \"5b8efff798038103d269b633813fc60c\", \"span_id\": \"eee19b7ec3c1b174\",\n"
	        "  \"parent_span_id\": \"\", \"kind\": \"SPAN_KIND_CLIENT\",\n"
	        "  \"start_time_unix_nano\": 1544712660000000000, \"end_time_unix_nano\": 1.5e18,\n"
	        "  \"status\": {\"code\": \"STATUS_CODE_OK\"},\n"
	        "  \"someFutureField\": {\"deep\": [1, 2, {\"x\": null}]},\n"
	        "  \"traceState\": null,\n"
	        "  \"attributes\": [{\"key\": \"d\", \"value\": {\"double_value\": \"NaN\"}},\n"
	        "                 {\"key\": \"i\", \"value\": {\"doubleValue\": \"-Infinity\"}},\n"
	        "                 {\"key\": \"s\", \"value\": {\"doubleValue\": \"2.5e3\"}},\n"
	        "                 {\"key\": \"b\", \"value\": {\"bytesValue\": \"_-8\"}},\n"
	        "                 {\"key\": \"e\", \"value\": {}}]\n"
	        "}]}]}]}";
	ProtobufCMessage *m = decode_ok(TRACE_REQ, json);
	Opentelemetry__Proto__Trace__V1__Span *sp = ((trace_req *)m)->resource_spans[0]->scope_spans[0]->spans[0];

	(void)state;
	assert_int_equal(sp->trace_id.len, 16);
	assert_int_equal(sp->parent_span_id.len, 0);
	assert_int_equal(sp->kind, 3);
	assert_true(sp->start_time_unix_nano == 1544712660000000000ULL);
	assert_true(sp->end_time_unix_nano == 1500000000000000000ULL);
	assert_int_equal(sp->status->code, 1);
	assert_string_equal(sp->trace_state, "");
	assert_true(isnan(sp->attributes[0]->value->double_value));
	assert_true(isinf(sp->attributes[1]->value->double_value) && sp->attributes[1]->value->double_value < 0);
	assert_true(sp->attributes[2]->value->double_value == 2500.0);
	assert_int_equal(sp->attributes[3]->value->bytes_value.len, 2);
	assert_int_equal(sp->attributes[3]->value->bytes_value.data[0], 0xff);
	assert_int_equal(sp->attributes[3]->value->bytes_value.data[1], 0xef);
	assert_int_equal(sp->attributes[4]->value->value_case,
	                 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET);
	assert_round_trip(m, 0);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* What the encoder writes: the OTLP JSON rules, checked on the text itself. */
static void test_encode_format(void **state)
{
	static const char json[] =
	        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{"
	        "\"traceId\":\"5B8EFFF798038103D269B633813FC60C\",\"spanId\":\"eee19b7ec3c1b174\","
	        "\"kind\":\"SPAN_KIND_SERVER\",\"startTimeUnixNano\":1,\"droppedAttributesCount\":0,"
	        "\"attributes\":[{\"key\":\"q\\\"\\u0001\\u00e9\",\"value\":{\"intValue\":-9007199254740993}},"
	        "{\"key\":\"z\",\"value\":{\"intValue\":0}},"
	        "{\"key\":\"n\",\"value\":{\"doubleValue\":\"NaN\"}},"
	        "{\"key\":\"p\",\"value\":{\"doubleValue\":0.1}},"
	        "{\"key\":\"b\",\"value\":{\"bytesValue\":\"AAEC\"}}]}]}]}]}";
	ProtobufCMessage *m = decode_ok(TRACE_REQ, json);
	char *out;
	size_t len;

	(void)state;
	assert_int_equal(dbi_otlp_json_encode(m, &out, &len), DBI_OK);
	assert_non_null(strstr(out, "\"traceId\":\"5b8efff798038103d269b633813fc60c\""));
	assert_non_null(strstr(out, "\"spanId\":\"eee19b7ec3c1b174\""));
	assert_non_null(strstr(out, "\"kind\":2"));
	assert_non_null(strstr(out, "\"startTimeUnixNano\":\"1\""));
	assert_null(strstr(out, "droppedAttributesCount")); /* default value: omitted */
	assert_null(strstr(out, "parentSpanId"));
	assert_non_null(strstr(out, "\"key\":\"q\\\"\\u0001\xc3\xa9\""));
	assert_non_null(strstr(out, "\"intValue\":\"-9007199254740993\""));
	assert_non_null(strstr(out, "{\"intValue\":\"0\"}")); /* a set oneof member is written even if zero */
	assert_non_null(strstr(out, "\"doubleValue\":\"NaN\""));
	assert_non_null(strstr(out, "\"doubleValue\":0.1}"));
	assert_non_null(strstr(out, "\"bytesValue\":\"AAEC\""));
	assert_null(strstr(out, "_")); /* no snake_case key anywhere */
	free(out);
	protobuf_c_message_free_unpacked(m, NULL);
}

static void test_responses(void **state)
{
	static const char json[] = "{\"partialSuccess\":{\"rejectedDataPoints\":\"3\",\"errorMessage\":\"3 points "
	                           "too old\"}}";
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse *r;
	Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse lr =
	        OPENTELEMETRY__PROTO__COLLECTOR__LOGS__V1__EXPORT_LOGS_SERVICE_RESPONSE__INIT;
	ProtobufCMessage *m = decode_ok(METRICS_RESP, json);
	char *out;
	size_t len;

	(void)state;
	r = (Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse *)m;
	assert_non_null(r->partial_success);
	assert_true(r->partial_success->rejected_data_points == 3);
	assert_string_equal(r->partial_success->error_message, "3 points too old");
	assert_int_equal(dbi_otlp_json_encode(m, &out, &len), DBI_OK);
	assert_string_equal(out, json);
	free(out);
	protobuf_c_message_free_unpacked(m, NULL);
	/* a full success is the empty object */
	assert_int_equal(dbi_otlp_json_encode(&lr.base, &out, &len), DBI_OK);
	assert_string_equal(out, "{}");
	assert_int_equal(len, 2);
	free(out);
}

/* A request built in C with every field kind, extreme values included. */
static void test_round_trip_built(void **state)
{
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest req =
	        OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
	Opentelemetry__Proto__Metrics__V1__ResourceMetrics
	        rm = OPENTELEMETRY__PROTO__METRICS__V1__RESOURCE_METRICS__INIT,
	        *rms[1] = {&rm};
	Opentelemetry__Proto__Metrics__V1__ScopeMetrics sm = OPENTELEMETRY__PROTO__METRICS__V1__SCOPE_METRICS__INIT,
	                                                *sms[1] = {&sm};
	Opentelemetry__Proto__Metrics__V1__Metric g = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__INIT,
	                                          h = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__INIT,
	                                          *ms[2] = {&g, &h};
	Opentelemetry__Proto__Metrics__V1__Gauge gauge = OPENTELEMETRY__PROTO__METRICS__V1__GAUGE__INIT;
	Opentelemetry__Proto__Metrics__V1__NumberDataPoint
	        p1 = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__INIT,
	        p2 = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__INIT,
	        p3 = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__INIT, *ps[3] = {&p1, &p2, &p3};
	Opentelemetry__Proto__Metrics__V1__Histogram hist = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM__INIT;
	Opentelemetry__Proto__Metrics__V1__HistogramDataPoint
	        hp = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__INIT,
	        *hps[1] = {&hp};
	Opentelemetry__Proto__Common__V1__KeyValue kv = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT,
	                                           *kvs[1] = {&kv};
	Opentelemetry__Proto__Common__V1__AnyValue av = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
	uint64_t counts[3] = {0, UINT64_MAX, 1};
	double bounds[2] = {-1e-300, 1.7976931348623157e308};
	uint8_t raw[5] = {0, 0xff, 0x80, '"', '\\'};

	(void)state;
	p1.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
	p1.as_int = INT64_MIN;
	p1.time_unix_nano = UINT64_MAX;
	p2.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
	p2.as_double = 0.1 + 0.2; /* needs 17 digits */
	p2.flags = UINT32_MAX;
	p3.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
	p3.as_double = -0.0;
	gauge.n_data_points = 3;
	gauge.data_points = ps;
	g.name = "g \xe2\x82\xac \t";
	g.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
	g.gauge = &gauge;
	hp.count = UINT64_MAX;
	hp.n_bucket_counts = 3;
	hp.bucket_counts = counts;
	hp.n_explicit_bounds = 2;
	hp.explicit_bounds = bounds;
	hp.opt_sum_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_SUM_SUM;
	hp.sum = INFINITY;
	hp.opt_max_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_MAX_MAX;
	hp.max = 5e-324; /* smallest subnormal */
	av.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
	av.bytes_value.data = raw;
	av.bytes_value.len = sizeof(raw);
	kv.key = "raw";
	kv.value = &av;
	hp.n_attributes = 1;
	hp.attributes = kvs;
	hist.n_data_points = 1;
	hist.data_points = hps;
	hist.aggregation_temporality = 7; /* open enum: unknown values survive */
	h.name = "h";
	h.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
	h.histogram = &hist;
	sm.n_metrics = 2;
	sm.metrics = ms;
	rm.n_scope_metrics = 1;
	rm.scope_metrics = sms;
	req.n_resource_metrics = 1;
	req.resource_metrics = rms;
	assert_round_trip(&req.base, 0);
	assert_round_trip(&req.base, DBI_OTLP_JSON_PRETTY);
}

static void test_errors_name_the_path(void **state)
{
	static const char wrong_type[] = "{\"resourceMetrics\":[{\"scopeMetrics\":[{},{\"metrics\":[{},{},{\"sum\":{"
	                                 "\"dataPoints\":[{\"asInt\":{}}]}}]}]}]"
	                                 "}";
	static const char bad_id[] = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"abc\"}]}]}]}";
	static const char bad_hex[] =
	        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"spanId\":\"eee19b7ec3c1b17g\"}]}]}]}";
	static const char both[] =
	        "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"gauge\":{},\"sum\":{}}]}]}]}";
	static const char enum_name[] = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"kind\":\"SERVER\"}]}]}]}";
	static const char u32_range[] =
	        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"droppedAttributesCount\":4294967296}]}]}]}";
	static const char negative[] =
	        "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"timeUnixNano\":\"-1\"}]}]}]}";
	static const char fraction[] =
	        "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"severityNumber\":9.5}]}]}]}";
	static const char bad_int_str[] =
	        "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"timeUnixNano\":\"12x\"}]}]}]}";
	static const char int_overflow[] = "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"value\":{"
	                                   "\"intValue\":\"9223372036854775808\"}}]}}]}";
	static const char bad_b64[] =
	        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"value\":{\"bytesValue\":\"a$==\"}}]}}]}";
	static const char bad_bool[] =
	        "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"sum\":{\"isMonotonic\":1}}]}]}]}";
	static const char not_list[] = "{\"resourceMetrics\":{}}";
	static const char null_elem[] = "{\"resourceMetrics\":[null]}";
	static const char twice[] = "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"timeUnixNano\":\"1\","
	                            "\"time_unix_nano\":\"2\"}]}]}]}";
	static const char bad_double[] =
	        "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"value\":{\"doubleValue\":\"inf\"}}]}}]}";

	(void)state;
	decode_fails(
	        METRICS_REQ, wrong_type, sizeof(wrong_type) - 1,
	        "resourceMetrics[0].scopeMetrics[1].metrics[2].sum.dataPoints[0].asInt: expected integer, got object");
	decode_fails(TRACE_REQ, bad_id, sizeof(bad_id) - 1,
	             "resourceSpans[0].scopeSpans[0].spans[0].traceId: expected 32 hex digits for a 16-byte id, got 3");
	decode_fails(TRACE_REQ, bad_hex, sizeof(bad_hex) - 1, "spans[0].spanId: invalid hex digit at position 15");
	decode_fails(METRICS_REQ, both, sizeof(both) - 1, "only one of a oneof may be set");
	decode_fails(TRACE_REQ, enum_name, sizeof(enum_name) - 1, "spans[0].kind: unknown SpanKind value \"SERVER\"");
	decode_fails(TRACE_REQ, u32_range, sizeof(u32_range) - 1,
	             "droppedAttributesCount: integer 4294967296 out of range");
	decode_fails(LOGS_REQ, negative, sizeof(negative) - 1, "timeUnixNano: expected non-negative integer");
	decode_fails(LOGS_REQ, fraction, sizeof(fraction) - 1, "severityNumber: expected integer, got non-integral");
	decode_fails(LOGS_REQ, bad_int_str, sizeof(bad_int_str) - 1,
	             "expected non-negative integer, got string \"12x\"");
	decode_fails(TRACE_REQ, int_overflow, sizeof(int_overflow) - 1,
	             "attributes[0].value.intValue: integer out of range");
	decode_fails(TRACE_REQ, bad_b64, sizeof(bad_b64) - 1, "bytesValue: invalid base64 character at position 1");
	decode_fails(METRICS_REQ, bad_bool, sizeof(bad_bool) - 1, "isMonotonic: expected boolean, got number");
	decode_fails(METRICS_REQ, not_list, sizeof(not_list) - 1, "resourceMetrics: expected array, got object");
	decode_fails(METRICS_REQ, null_elem, sizeof(null_elem) - 1, "resourceMetrics[0]: null in a list");
	decode_fails(LOGS_REQ, twice, sizeof(twice) - 1, "time_unix_nano given twice");
	decode_fails(TRACE_REQ, bad_double, sizeof(bad_double) - 1, "doubleValue: expected number, got string \"inf\"");
}

static void test_errors_malformed_json(void **state)
{
	static const char trailing[] = "{\"resourceSpans\":[]} x";
	static const char bad_utf8[] = "{\"resourceSpans\":[{\"schemaUrl\":\"\xc3\x28\"}]}";
	static const char nul_inside[] = "{\"resourceSpans\":[]}\0{}";
	char *deep;
	size_t i, n = 100000;

	(void)state;
	/* truncated at every length: never a crash, always an error */
	for (i = 0; i < sizeof(metrics_json) - 2; i++) {
		struct dbi_errbuf err;
		ProtobufCMessage *m;

		assert_int_equal(dbi_otlp_json_decode(METRICS_REQ, metrics_json, i, &m, &err), DBI_ERR);
	}
	decode_fails(METRICS_REQ, metrics_json, 100, "unexpected end of input");
	decode_fails(METRICS_REQ, "", 0, "unexpected end of input");
	decode_fails(TRACE_REQ, trailing, sizeof(trailing) - 1, "invalid JSON");
	decode_fails(TRACE_REQ, bad_utf8, sizeof(bad_utf8) - 1, "invalid JSON");
	decode_fails(TRACE_REQ, nul_inside, sizeof(nul_inside) - 1, "invalid JSON");
	decode_fails(TRACE_REQ, "[]", 2, "expected a JSON object for ExportTraceServiceRequest, got array");
	decode_fails(TRACE_REQ, "null", 4, "expected a JSON object for ExportTraceServiceRequest, got null");
	decode_fails(TRACE_REQ, "12", 2, "got number");
	decode_fails(TRACE_REQ, "\"x\"", 3, "got string");
	decode_fails(TRACE_REQ, "{}", DBI_OTLP_JSON_MAX_INPUT + 1, "exceeds");

	/* 100000 nested arrays, and nested kvlists past the message depth limit */
	deep = malloc(2 * n + 1);
	assert_non_null(deep);
	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\0';
	decode_fails(TRACE_REQ, deep, 2 * n, "invalid JSON");
	free(deep);
	{
		const char *open = "{\"kvlistValue\":{\"values\":[{\"key\":\"k\",\"value\":";
		size_t levels = 30, olen = strlen(open), pos = 0;
		char *s = malloc(64 + levels * (olen + 8));
		const char *head = "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"k\",\"value\":";

		assert_non_null(s);
		pos += (size_t)sprintf(s + pos, "%s", head);
		for (i = 0; i < levels; i++)
			pos += (size_t)sprintf(s + pos, "%s", open);
		pos += (size_t)sprintf(s + pos, "{}");
		for (i = 0; i < levels; i++)
			pos += (size_t)sprintf(s + pos, "}]}}");
		pos += (size_t)sprintf(s + pos, "}]}}]}");
		decode_fails(TRACE_REQ, s, pos, "nested deeper than 64");
		free(s);
	}
}

/* Nesting that is deep but legal decodes, encodes, and decodes again. */
static void test_deep_but_legal(void **state)
{
	const char *open = "{\"arrayValue\":{\"values\":[";
	size_t levels = 29, pos = 0, i; /* 5 + 2 * 29 = 63 messages deep */
	char *s = malloc(256 + levels * 40);
	ProtobufCMessage *m;

	(void)state;
	assert_non_null(s);
	pos += (size_t)sprintf(s + pos, "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"body\":");
	for (i = 0; i < levels; i++)
		pos += (size_t)sprintf(s + pos, "%s", open);
	pos += (size_t)sprintf(s + pos, "{\"intValue\":\"1\"}");
	for (i = 0; i < levels; i++)
		pos += (size_t)sprintf(s + pos, "]}}");
	pos += (size_t)sprintf(s + pos, "}]}]}]}");
	m = decode_ok(LOGS_REQ, s);
	assert_round_trip(m, 0);
	protobuf_c_message_free_unpacked(m, NULL);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_decode_metrics_example), cmocka_unit_test(test_decode_trace_example),
	        cmocka_unit_test(test_decode_logs_example),    cmocka_unit_test(test_decode_lenient_spellings),
	        cmocka_unit_test(test_encode_format),          cmocka_unit_test(test_responses),
	        cmocka_unit_test(test_round_trip_built),       cmocka_unit_test(test_errors_name_the_path),
	        cmocka_unit_test(test_errors_malformed_json),  cmocka_unit_test(test_deep_but_legal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
