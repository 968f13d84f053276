/*
 * test_otlp_receiver.c — the otlp receiver's decode path and body handling without
 * sockets: OTLP requests (written as OTLP/JSON for readability, decoded by the JSON
 * codec) go through otlp_emit() into a capturing sink, and the points, records,
 * registry entries and drop counts that come out are checked; bodies go through the
 * bounded decompressor; error bodies through the google.rpc.Status encoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#ifdef DBI_HAVE_ZSTD
#include <zstd.h>
#endif

#include "../../src/receivers/otlp/otlp_int.h"
#include "dbi/otlp_json.h"
#include "dbi/registry.h"

/* ---- a sink that keeps everything, and can play "full" after N items ---- */

struct cap {
	struct dbi_point pts[64];
	uint64_t routes[64];
	unsigned npts;
	uint8_t *recs[64];
	uint64_t rec_routes[64];
	unsigned nrecs;
	unsigned budget; /* items accepted before reporting full; 0 = unlimited */
	unsigned taken;
};

static int cap_point(void *cls, struct dbi_point *p, uint64_t route)
{
	struct cap *c = cls;
	if ((c->budget && c->taken >= c->budget) || c->npts == 64)
		return DBI_AGAIN;
	c->taken++;
	c->routes[c->npts] = route;
	c->pts[c->npts++] = *p;
	return DBI_OK;
}

static void *cap_reserve(void *cls, uint32_t type, uint32_t len, uint64_t route)
{
	struct cap *c = cls;
	if ((c->budget && c->taken >= c->budget) || c->nrecs == 64)
		return NULL;
	struct dbi_rec_hdr *h = calloc(1, len);
	h->type = type;
	h->len = len;
	c->rec_routes[c->nrecs] = route;
	c->recs[c->nrecs++] = (uint8_t *)h;
	return h;
}

static void cap_commit(void *cls, void *rec)
{
	struct cap *c = cls;
	(void)rec;
	c->taken++;
}

static void cap_free(struct cap *c)
{
	for (unsigned i = 0; i < c->nrecs; i++)
		free(c->recs[i]);
	memset(c, 0, sizeof(*c));
}

static void run(struct dbi_registry *reg, enum otlp_signal sig, const char *json, struct cap *c, struct otlp_result *r)
{
	ProtobufCMessage *m = NULL;
	struct dbi_errbuf err;
	struct otlp_sink s = {
	        .cls = c, .point = cap_point, .reserve = cap_reserve, .commit = cap_commit, .max_record = 1 << 20};
	struct otlp_dec *d = otlp_dec_create(reg);
	assert_non_null(d);
	if (dbi_otlp_json_decode(otlp_request_desc(sig), json, strlen(json), &m, &err) != DBI_OK)
		fail_msg("json: %s", err.msg);
	otlp_emit(d, sig, m, &s, r);
	protobuf_c_message_free_unpacked(m, NULL);
	otlp_dec_destroy(d);
}

static const char *attr_text(struct dbi_registry *reg, uint32_t id, char *buf, size_t cap)
{
	const struct dbi_attrset *a = dbi_attrs_get(reg, id);
	assert_non_null(a);
	return dbi_attrs_format(a->enc, a->len, buf, cap);
}

static const char metrics_json[] =
        "{\"resourceMetrics\":[{\"resource\":{\"attributes\":["
        "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}},"
        "{\"key\":\"n\",\"value\":{\"intValue\":\"3\"}}]},"
        "\"scopeMetrics\":[{\"scope\":{\"name\":\"sc\",\"version\":\"1.0\"},\"metrics\":["
        "{\"name\":\"g\",\"unit\":\"By\",\"description\":\"a gauge\",\"gauge\":{\"dataPoints\":["
        "{\"asDouble\":2.5,\"timeUnixNano\":\"100\",\"attributes\":[{\"key\":\"k\",\"value\":{\"stringValue\":\"v\"}}]}"
        ","
        "{\"timeUnixNano\":\"101\",\"flags\":1}]}},"
        "{\"name\":\"s\",\"sum\":{\"aggregationTemporality\":1,\"isMonotonic\":true,\"dataPoints\":["
        "{\"asInt\":\"-7\",\"startTimeUnixNano\":\"50\",\"timeUnixNano\":\"102\",\"attributes\":["
        "{\"key\":\"b\",\"value\":{\"boolValue\":true}},{\"key\":\"d\",\"value\":{\"doubleValue\":0.5}},"
        "{\"key\":\"raw\",\"value\":{\"bytesValue\":\"AAEC\"}},"
        "{\"key\":\"arr\",\"value\":{\"arrayValue\":{\"values\":[{\"intValue\":\"1\"}]}}},"
        "{\"key\":\"empty\",\"value\":{}}]}]}},"
        "{\"name\":\"h\",\"histogram\":{\"aggregationTemporality\":2,\"dataPoints\":["
        "{\"count\":\"3\",\"sum\":6,\"min\":1,\"max\":3,\"explicitBounds\":[1,2],\"bucketCounts\":[\"1\",\"1\",\"1\"],"
        "\"timeUnixNano\":\"103\"},"
        "{\"count\":\"3\",\"explicitBounds\":[1,2],\"bucketCounts\":[\"1\",\"2\"]},"
        "{\"count\":\"4\",\"sum\":8}]}},"
        "{\"name\":\"e\",\"exponentialHistogram\":{\"aggregationTemporality\":2,\"dataPoints\":["
        "{\"count\":\"2\",\"scale\":3,\"positive\":{\"offset\":1,\"bucketCounts\":[\"2\"]}}]}},"
        "{\"name\":\"q\",\"summary\":{\"dataPoints\":[{\"count\":\"1\",\"sum\":1,"
        "\"quantileValues\":[{\"quantile\":0.5,\"value\":1}]}]}},"
        "{\"name\":\"bad\",\"gauge\":{\"dataPoints\":[{\"timeUnixNano\":\"1\"}]}},"
        "{\"name\":\"\",\"gauge\":{\"dataPoints\":[{\"asInt\":\"1\"}]}}"
        "]}]}]}";

static void test_metrics(void **state)
{
	struct dbi_registry *reg = dbi_registry_create(1000);
	struct cap c = {0};
	struct otlp_result r;
	struct otlp_need need;
	char buf[512];
	(void)state;

	run(reg, OTLP_METRICS, metrics_json, &c, &r);
	assert_int_equal(r.items, 10);
	assert_int_equal(r.accepted, 7);
	assert_int_equal(r.dropped[OTLP_DROP_INVALID], 3); /* no value, bad buckets, unnamed */
	assert_non_null(strstr(r.msg, "3 of 10 data points rejected: 3 invalid"));

	assert_int_equal(c.npts, 3);
	const struct dbi_point *p = &c.pts[0];
	assert_true(p->flags & DBI_PF_DOUBLE);
	assert_true(p->v.d == 2.5);
	assert_int_equal(p->kind, DBI_PK_GAUGE);
	assert_int_equal(p->time_ns, 100);
	const struct dbi_series *s = dbi_series_get(reg, p->series);
	assert_non_null(s);
	assert_int_equal(c.routes[0], s->hash);
	const struct dbi_metric *m = dbi_metric_get(reg, s->metric);
	assert_string_equal(m->name, "g");
	assert_string_equal(m->unit, "By");
	assert_string_equal(m->description, "a gauge");
	assert_int_equal(m->kind, DBI_MK_GAUGE);
	assert_string_equal(attr_text(reg, s->attrs, buf, sizeof(buf)), "k=\"v\"");
	assert_string_equal(attr_text(reg, s->resource, buf, sizeof(buf)), "n=3, service.name=\"svc\"");
	assert_string_equal(dbi_scope_get(reg, s->scope)->name, "sc");
	assert_string_equal(dbi_scope_get(reg, s->scope)->version, "1.0");

	assert_true(c.pts[1].flags & DBI_PF_NOVALUE); /* no value, but flagged: a staleness marker */

	p = &c.pts[2];
	assert_int_equal(p->kind, DBI_PK_SUM);
	assert_false(p->flags & DBI_PF_DOUBLE);
	assert_int_equal(p->v.i, -7);
	assert_int_equal(p->start_ns, 50);
	s = dbi_series_get(reg, p->series);
	m = dbi_metric_get(reg, s->metric);
	assert_true(m->monotonic);
	assert_int_equal(m->temporality, DBI_TEMP_DELTA);
	const struct dbi_attrset *as = dbi_attrs_get(reg, s->attrs);
	struct dbi_attr a;
	assert_true(dbi_attrs_find(as->enc, as->len, "b", &a) && a.type == DBI_AT_BOOL && a.v.b == 1);
	assert_true(dbi_attrs_find(as->enc, as->len, "d", &a) && a.type == DBI_AT_DOUBLE && a.v.d == 0.5);
	assert_true(dbi_attrs_find(as->enc, as->len, "raw", &a) && a.type == DBI_AT_BYTES && a.vlen == 3);
	assert_memory_equal(a.v.s, "\x00\x01\x02", 3);
	assert_true(dbi_attrs_find(as->enc, as->len, "arr", &a) && a.type == DBI_AT_ANYPB);
	/* the AnyValue bytes: array_value(5) { values(1) { int_value(3) = 1 } } */
	assert_int_equal(a.vlen, 6);
	assert_memory_equal(a.v.s, "\x2a\x04\x0a\x02\x18\x01", 6);
	assert_true(dbi_attrs_find(as->enc, as->len, "empty", &a) && a.type == DBI_AT_ANYPB && a.vlen == 0);

	/* records: two histograms (one count/sum only), exphist, summary */
	assert_int_equal(c.nrecs, 4);
	struct dbi_hist_rec *h = (struct dbi_hist_rec *)c.recs[0];
	assert_int_equal(h->h.type, DBI_REC_HIST);
	assert_int_equal(h->nbounds, 2);
	assert_int_equal(h->count, 3);
	assert_true(h->sum == 6 && h->min == 1 && h->max == 3);
	assert_int_equal(h->flags, DBI_HF_HAS_SUM | DBI_HF_HAS_MINMAX);
	assert_true(dbi_hist_bounds(h)[1] == 2.0);
	assert_int_equal(dbi_hist_counts(h)[2], 1);
	h = (struct dbi_hist_rec *)c.recs[1];
	assert_int_equal(h->nbounds, 0);
	assert_int_equal(dbi_hist_counts(h)[0], 4);
	assert_int_equal(h->flags, DBI_HF_HAS_SUM);
	struct dbi_otlp_point_rec *e = (struct dbi_otlp_point_rec *)c.recs[2];
	assert_int_equal(e->h.type, DBI_REC_EXPHIST);
	Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint *edp =
	        opentelemetry__proto__metrics__v1__exponential_histogram_data_point__unpack(NULL, e->pb_len,
	                                                                                    (uint8_t *)(e + 1));
	assert_non_null(edp);
	assert_int_equal(edp->scale, 3);
	assert_int_equal(edp->positive->bucket_counts[0], 2);
	opentelemetry__proto__metrics__v1__exponential_histogram_data_point__free_unpacked(edp, NULL);
	assert_int_equal(((struct dbi_rec_hdr *)c.recs[3])->type, DBI_REC_SUMMARY);
	assert_int_equal(dbi_metric_get(reg, dbi_series_get(reg, e->series)->metric)->kind, DBI_MK_EXPHISTOGRAM);

	/* the same request again: same series ids (through the cache), nothing new interned */
	struct dbi_registry_stats before, after;
	uint32_t first = c.pts[2].series;
	dbi_registry_get_stats(reg, &before);
	cap_free(&c);
	run(reg, OTLP_METRICS, metrics_json, &c, &r);
	dbi_registry_get_stats(reg, &after);
	assert_int_equal(c.pts[2].series, first);
	assert_int_equal(before.series, after.series);
	assert_int_equal(before.attrsets, after.attrsets);

	ProtobufCMessage *msg;
	struct dbi_errbuf err;
	assert_int_equal(
	        dbi_otlp_json_decode(otlp_request_desc(OTLP_METRICS), metrics_json, strlen(metrics_json), &msg, &err),
	        DBI_OK);
	otlp_count(OTLP_METRICS, msg, &need);
	assert_int_equal(need.items, 10);
	assert_int_equal(need.points, 5);
	assert_int_equal(need.records, 5);
	protobuf_c_message_free_unpacked(msg, NULL);
	cap_free(&c);
	dbi_registry_destroy(reg);
}

static void test_series_limit_and_full_sink(void **state)
{
	struct dbi_registry *reg = dbi_registry_create(2);
	struct cap c = {0};
	struct otlp_result r;
	struct dbi_registry_stats before, after;
	const char *three =
	        "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"x\",\"gauge\":{"
	        "\"dataPoints\":[{\"asInt\":\"1\",\"attributes\":[{\"key\":\"i\",\"value\":{\"intValue\":\"1\"}}]},"
	        "{\"asInt\":\"2\",\"attributes\":[{\"key\":\"i\",\"value\":{\"intValue\":\"2\"}}]},"
	        "{\"asInt\":\"3\",\"attributes\":[{\"key\":\"i\",\"value\":{\"intValue\":\"3\"}}]}]}}]}]}]}";
	(void)state;
	run(reg, OTLP_METRICS, three, &c, &r);
	assert_int_equal(r.accepted, 2);
	assert_int_equal(r.dropped[OTLP_DROP_SERIES_LIMIT], 1);
	assert_non_null(strstr(r.msg, "series limit"));
	/* once full, refused points do not grow the registry */
	dbi_registry_get_stats(reg, &before);
	const char *other =
	        "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":\"new\",\"value\":{"
	        "\"stringValue\":\"res\"}}]},\"scopeMetrics\":[{\"metrics\":[{\"name\":\"x\",\"gauge\":{"
	        "\"dataPoints\":[{\"asInt\":\"1\",\"attributes\":[{\"key\":\"z\",\"value\":{\"intValue\":\"9\"}}]}"
	        "]}}]}]}]}";
	cap_free(&c);
	run(reg, OTLP_METRICS, other, &c, &r);
	dbi_registry_get_stats(reg, &after);
	assert_int_equal(r.dropped[OTLP_DROP_SERIES_LIMIT], 1);
	assert_int_equal(before.attrsets, after.attrsets);
	cap_free(&c);
	dbi_registry_destroy(reg);

	/* a sink that fills after one point: the rest is counted, not emitted */
	reg = dbi_registry_create(100);
	c.budget = 1;
	run(reg, OTLP_METRICS, three, &c, &r);
	assert_int_equal(r.accepted, 1);
	assert_int_equal(r.dropped[OTLP_DROP_PIPELINE], 2);
	assert_int_equal(c.npts, 1);
	cap_free(&c);
	dbi_registry_destroy(reg);
}

static void test_logs_and_spans(void **state)
{
	struct dbi_registry *reg = dbi_registry_create(100);
	struct cap c = {0};
	struct otlp_result r;
	char buf[256];
	(void)state;
	run(reg, OTLP_LOGS,
	    "{\"resourceLogs\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":"
	    "\"l\"}}]},\"scopeLogs\":[{\"scope\":{\"name\":\"ls\"},\"logRecords\":["
	    "{\"observedTimeUnixNano\":\"77\",\"body\":{\"stringValue\":\"hello\"},"
	    "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0102030405060708\"},"
	    "{\"timeUnixNano\":\"78\",\"body\":{\"stringValue\":\"no trace\"}}]}]}]}",
	    &c, &r);
	assert_int_equal(r.accepted, 2);
	assert_int_equal(c.nrecs, 2);
	struct dbi_otlp_rec *o = (struct dbi_otlp_rec *)c.recs[0];
	assert_int_equal(o->h.type, DBI_REC_LOG);
	assert_int_equal(o->time_ns, 77); /* observed time when time is unset */
	assert_int_equal(o->trace_id[15], 0x10);
	assert_int_equal(c.rec_routes[0], dbi_hash64(o->trace_id, 16, 0x7e));
	assert_string_equal(attr_text(reg, o->resource, buf, sizeof(buf)), "service.name=\"l\"");
	assert_string_equal(dbi_scope_get(reg, o->scope)->name, "ls");
	Opentelemetry__Proto__Logs__V1__LogRecord *lr =
	        opentelemetry__proto__logs__v1__log_record__unpack(NULL, o->pb_len, dbi_otlp_rec_pb(o));
	assert_non_null(lr);
	assert_string_equal(lr->body->string_value, "hello");
	opentelemetry__proto__logs__v1__log_record__free_unpacked(lr, NULL);
	o = (struct dbi_otlp_rec *)c.recs[1];
	assert_int_equal(c.rec_routes[1], dbi_attrs_get(reg, o->resource)->hash); /* no trace: by resource */
	cap_free(&c);

	run(reg, OTLP_TRACES,
	    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":["
	    "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0102030405060708\",\"name\":\"s1\","
	    "\"startTimeUnixNano\":\"5\"},"
	    "{\"traceId\":\"\",\"spanId\":\"0102030405060708\",\"name\":\"no-trace\"}]}]}]}",
	    &c, &r);
	assert_int_equal(r.accepted, 1);
	assert_int_equal(r.dropped[OTLP_DROP_INVALID], 1);
	assert_non_null(strstr(r.msg, "1 of 2 spans rejected"));
	o = (struct dbi_otlp_rec *)c.recs[0];
	assert_int_equal(o->h.type, DBI_REC_SPAN);
	assert_int_equal(o->time_ns, 5);
	cap_free(&c);
	dbi_registry_destroy(reg);
}

static size_t gz(const uint8_t *in, size_t len, uint8_t *out, size_t cap, int bits)
{
	z_stream z = {0};
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	size_t n = z.total_out;
	deflateEnd(&z);
	return n;
}

static void test_decompress(void **state)
{
	size_t big = 8u << 20, n, outlen;
	uint8_t *zeros = calloc(1, big), *comp = malloc(1 << 20), *out;
	char why[256];
	(void)state;
	const char text[] = "hello hello hello hello";
	n = gz((const uint8_t *)text, sizeof(text), comp, 1 << 20, 15 + 16);
	assert_int_equal(otlp_decompress(OTLP_ENC_GZIP, comp, n, 1024, 200, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_OK);
	assert_int_equal(outlen, sizeof(text));
	assert_memory_equal(out, text, sizeof(text));
	free(out);
	/* two gzip members are one body */
	memcpy(comp + n, comp, n);
	assert_int_equal(otlp_decompress(OTLP_ENC_GZIP, comp, 2 * n, 1024, 200, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_OK);
	assert_int_equal(outlen, 2 * sizeof(text));
	free(out);
	/* truncated */
	assert_int_equal(otlp_decompress(OTLP_ENC_GZIP, comp, n - 4, 1024, 200, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_CORRUPT);
	assert_null(out);
	/* deflate: zlib-wrapped and raw */
	n = gz((const uint8_t *)text, sizeof(text), comp, 1 << 20, 15);
	assert_int_equal(otlp_decompress(OTLP_ENC_DEFLATE, comp, n, 1024, 200, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_OK);
	free(out);
	n = gz((const uint8_t *)text, sizeof(text), comp, 1 << 20, -15);
	assert_int_equal(otlp_decompress(OTLP_ENC_DEFLATE, comp, n, 1024, 200, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_OK);
	free(out);
	/* 8 MiB of zeros: over a 4 MiB limit, stops there */
	n = gz(zeros, big, comp, 1 << 20, 15 + 16);
	assert_int_equal(otlp_decompress(OTLP_ENC_GZIP, comp, n, 4u << 20, 0, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_TOO_LARGE);
	assert_non_null(strstr(why, "larger than 4194304"));
	/* under a 16 MiB limit but ~1000x: the ratio guard */
	assert_int_equal(otlp_decompress(OTLP_ENC_GZIP, comp, n, 16u << 20, 200, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_BOMB);
	assert_int_equal(otlp_decompress(OTLP_ENC_GZIP, comp, n, 16u << 20, 0, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_OK);
	assert_int_equal(outlen, big);
	free(out);
	assert_int_equal(otlp_decompress(OTLP_ENC_IDENTITY, zeros, 10, 5, 0, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_TOO_LARGE);
#ifdef DBI_HAVE_ZSTD
	n = ZSTD_compress(comp, 1 << 20, zeros, big, 3);
	assert_false(ZSTD_isError(n));
	assert_int_equal(otlp_decompress(OTLP_ENC_ZSTD, comp, n, 4u << 20, 0, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_TOO_LARGE);
	assert_int_equal(otlp_decompress(OTLP_ENC_ZSTD, comp, n, 16u << 20, 0, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_OK);
	assert_int_equal(outlen, big);
	free(out);
	assert_int_equal(otlp_decompress(OTLP_ENC_ZSTD, comp, n / 2, 16u << 20, 0, &out, &outlen, why, sizeof(why)),
	                 OTLP_BODY_CORRUPT);
	assert_int_equal(otlp_encoding_parse("zstd"), OTLP_ENC_ZSTD);
#endif
	assert_int_equal(otlp_encoding_parse(NULL), OTLP_ENC_IDENTITY);
	assert_int_equal(otlp_encoding_parse("GZIP"), OTLP_ENC_GZIP);
	assert_int_equal(otlp_encoding_parse("br"), OTLP_ENC_UNKNOWN);
	free(zeros);
	free(comp);
}

static void test_status_and_response(void **state)
{
	uint8_t *b;
	size_t n;
	struct otlp_result r = {.items = 5, .dropped = {[OTLP_DROP_INVALID] = 2}};
	(void)state;
	snprintf(r.msg, sizeof(r.msg), "2 of 5 bad");
	/* Status{code=8, message="full", details=[Any{RetryInfo{1.5s}}]} */
	assert_int_equal(otlp_status(0, 8, "full", 1500000000ULL, &b, &n), DBI_OK);
	static const uint8_t want_head[] = {0x08, 0x08, 0x12, 0x04, 'f', 'u', 'l', 'l', 0x1a};
	assert_memory_equal(b, want_head, sizeof(want_head));
	assert_non_null(memmem(b, n, "type.googleapis.com/google.rpc.RetryInfo", 40));
	/* Duration{seconds=1, nanos=500000000} at the end */
	static const uint8_t dur[] = {0x08, 0x01, 0x10, 0x80, 0xca, 0xb5, 0xee, 0x01};
	assert_memory_equal(b + n - sizeof(dur), dur, sizeof(dur));
	free(b);
	assert_int_equal(otlp_status(1, 3, "bad \"x\"\n", 0, &b, &n), DBI_OK);
	assert_string_equal((char *)b, "{\"code\":3,\"message\":\"bad \\\"x\\\"\\u000a\"}");
	free(b);
	assert_int_equal(otlp_response(OTLP_LOGS, 1, &r, &b, &n), DBI_OK);
	assert_string_equal((char *)b,
	                    "{\"partialSuccess\":{\"rejectedLogRecords\":\"2\",\"errorMessage\":\"2 of 5 bad\"}}");
	free(b);
	memset(&r, 0, sizeof(r));
	assert_int_equal(otlp_response(OTLP_METRICS, 0, &r, &b, &n), DBI_OK);
	assert_int_equal(n, 0); /* all accepted: an empty response message */
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_metrics),
	        cmocka_unit_test(test_series_limit_and_full_sink),
	        cmocka_unit_test(test_logs_and_spans),
	        cmocka_unit_test(test_decompress),
	        cmocka_unit_test(test_status_and_response),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
