#!/usr/bin/python3
"""test_otlphttp_roundtrip.py - OTLP in, OTLP out, with the real dbi-collector in between:
OTLP/JSON requests (metrics of every kind, logs, spans; two resources, two scopes) go to
the `otlp` receiver, through `batch`, out of the `otlphttp` exporter to the independent sink
(tests/support/otlp_sink.py), which decodes the protobuf with its own decoder. Everything
arrives with values, attributes, resources and scopes intact: gauges and sums (int and
double, temporality, monotonic), explicit-bucket histograms, exponential histograms and
summaries (passed through as bytes), log records and spans (copied through). With the New
Relic profile, an over-long log attribute is truncated and the resources get
instrumentation.provider.
"""

import json
import os
import sys
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.dont_write_bytecode = True

from collector import Collector  # noqa: E402
from otlp_sink import Sink, attrs  # noqa: E402
from otlphttp_testlib import eventually  # noqa: E402

T0 = 1700000000000000000
T1 = 1700000010000000000


def config(sink_url, exporter=""):
    return """
receivers:
  otlp:
    protocols:
      http: {endpoint: "127.0.0.1:{port:http}"}
      grpc: {enabled: false}
processors:
  batch: {send_batch_size: 1000, timeout: 100ms}
exporters:
  otlphttp:
    endpoint: %s
%s
service:
  pipelines:
    metrics: {receivers: [otlp], processors: [batch], exporters: [otlphttp]}
    logs: {receivers: [otlp], processors: [batch], exporters: [otlphttp]}
    traces: {receivers: [otlp], processors: [batch], exporters: [otlphttp]}
runtime:
  shm: {name: "{shm}"}
""" % (sink_url, exporter)


def kv(k, v):
    if isinstance(v, bool):
        return {"key": k, "value": {"boolValue": v}}
    if isinstance(v, int):
        return {"key": k, "value": {"intValue": str(v)}}
    if isinstance(v, float):
        return {"key": k, "value": {"doubleValue": v}}
    return {"key": k, "value": {"stringValue": v}}


def resource(name, inst):
    return {"attributes": [kv("service.name", name), kv("service.instance.id", inst), kv("server.port", 5432)]}


METRICS = {"resourceMetrics": [
    {"resource": resource("pg", "db1:5432"), "scopeMetrics": [
        {"scope": {"name": "dbi/test", "version": "1.0"}, "metrics": [
            {"name": "pg.gauge", "unit": "1", "description": "a gauge",
             "gauge": {"dataPoints": [
                 {"attributes": [kv("db", "app")], "timeUnixNano": str(T1), "asDouble": 0.75},
                 {"attributes": [kv("db", "b\u00e4r")], "timeUnixNano": str(T1), "asInt": "-42"}]}},
            {"name": "pg.sum", "unit": "{commit}",
             "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
                 {"attributes": [kv("db", "app")], "startTimeUnixNano": str(T0), "timeUnixNano": str(T1),
                  "asInt": "9007199254740993"}]}},
            {"name": "pg.hist", "unit": "ms",
             "histogram": {"aggregationTemporality": 1, "dataPoints": [
                 {"attributes": [kv("db", "app")], "startTimeUnixNano": str(T0), "timeUnixNano": str(T1),
                  "count": "6", "sum": 31.5, "bucketCounts": ["1", "3", "2"], "explicitBounds": [1.0, 10.0],
                  "min": 0.5, "max": 12.25}]}},
            {"name": "pg.exp", "unit": "ms",
             "exponentialHistogram": {"aggregationTemporality": 2, "dataPoints": [
                 {"attributes": [kv("db", "app")], "startTimeUnixNano": str(T0), "timeUnixNano": str(T1),
                  "count": "6", "sum": 12.0, "scale": -2, "zeroCount": "2",
                  "positive": {"offset": -3, "bucketCounts": ["1", "2", "1"]}}]}},
            {"name": "pg.summary", "unit": "s",
             "summary": {"dataPoints": [
                 {"attributes": [kv("db", "app")], "startTimeUnixNano": str(T0), "timeUnixNano": str(T1),
                  "count": "10", "sum": 20.0, "quantileValues": [{"quantile": 0.99, "value": 4.5}]}]}},
        ]}]},
    {"resource": resource("pg", "db2:5432"), "scopeMetrics": [
        {"scope": {"name": "other"}, "metrics": [
            {"name": "pg.sum", "unit": "{commit}",
             "sum": {"aggregationTemporality": 1, "isMonotonic": False, "dataPoints": [
                 {"startTimeUnixNano": str(T0), "timeUnixNano": str(T1), "asDouble": -1.5}]}}]}]},
]}

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def logs(long_value=None):
    recs = []
    for i in range(5):
        a = [kv("i", i), kv("user", "u%d" % i)]
        if long_value and i == 0:
            a.append(kv("statement", long_value))
        recs.append({"timeUnixNano": str(T1 + i), "severityNumber": 13, "severityText": "WARN",
                     "body": {"stringValue": "log line %d" % i}, "attributes": a,
                     "traceId": TRACE_ID, "spanId": SPAN_ID})
    return {"resourceLogs": [
        {"resource": resource("pglog", "db1:5432"),
         "scopeLogs": [{"scope": {"name": "dbi/pglog"}, "logRecords": recs[:3]}]},
        {"resource": resource("pglog", "db2:5432"),
         "scopeLogs": [{"scope": {"name": "dbi/pglog"}, "logRecords": recs[3:]}]}]}


TRACES = {"resourceSpans": [
    {"resource": resource("app", "app-1"), "scopeSpans": [{"scope": {"name": "tracer"}, "spans": [
        {"traceId": TRACE_ID, "spanId": SPAN_ID, "name": "SELECT orders", "kind": 3,
         "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T1),
         "attributes": [kv("db.system", "postgresql"), kv("db.statement", "SELECT 1")],
         "status": {"code": 1}},
        {"traceId": TRACE_ID, "spanId": "0102030405060708", "parentSpanId": SPAN_ID, "name": "fetch",
         "startTimeUnixNano": str(T0 + 5), "endTimeUnixNano": str(T1 - 5)}]}]}]}


def post(port, path, doc):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=json.dumps(doc).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def by_metric(points):
    out = {}
    for p in points:
        out.setdefault(p["metric"], []).append(p)
    return out


class RoundTrip(unittest.TestCase):
    def test_every_signal_and_kind(self):
        sink = Sink()
        try:
            with Collector(config(sink.url)) as c:
                port = c.ports["http"]
                self.assertEqual(post(port, "/v1/metrics", METRICS), 200)
                self.assertEqual(post(port, "/v1/logs", logs()), 200)
                self.assertEqual(post(port, "/v1/traces", TRACES), 200)
                self.assertTrue(eventually(lambda: len(sink.points()) >= 7 and len(sink.records("logs")) >= 5
                                           and len(sink.records("traces")) >= 2, timeout=30), c.log()[-2000:])
                time.sleep(0.5)
                self.assertEqual(c.stop(), 0)
        finally:
            sink.close()
        self.assertTrue(all(r.status == 200 for r in sink.requests))
        m = by_metric(sink.points())
        self.assertEqual(sorted(m), ["pg.exp", "pg.gauge", "pg.hist", "pg.sum", "pg.summary"])
        g = {p["attrs"]["db"]: p for p in m["pg.gauge"]}
        self.assertEqual(g["app"]["value"], 0.75)
        self.assertEqual(g["b\u00e4r"]["value"], -42)
        self.assertEqual(g["app"]["resource"]["service.instance.id"], "db1:5432")
        self.assertEqual(g["app"]["resource"]["server.port"], 5432)
        self.assertEqual(g["app"]["scope"], "dbi/test")
        self.assertEqual(g["app"]["unit"], "1")
        sums = {p["resource"]["service.instance.id"]: p for p in m["pg.sum"]}
        self.assertEqual(sums["db1:5432"]["value"], 9007199254740993)
        self.assertEqual(sums["db1:5432"]["temporality"], 2)
        self.assertTrue(sums["db1:5432"]["monotonic"])
        self.assertEqual(sums["db1:5432"]["start"], T0)
        self.assertEqual(sums["db2:5432"]["value"], -1.5)
        self.assertEqual(sums["db2:5432"]["temporality"], 1)
        self.assertFalse(sums["db2:5432"]["monotonic"])
        self.assertEqual(sums["db2:5432"]["scope"], "other")

        # the decoded requests, for the fields the flattened view does not carry
        hist = exp = summ = None
        for r in sink.accepted("/v1/metrics"):
            for rm in r.decoded.get("resource_metrics", []):
                for sm in rm.get("scope_metrics", []):
                    for mt in sm.get("metrics", []):
                        if mt["name"] == "pg.hist":
                            hist = mt["histogram"]
                        elif mt["name"] == "pg.exp":
                            exp = mt["exponential_histogram"]
                        elif mt["name"] == "pg.summary":
                            summ = mt["summary"]
        hp = hist["data_points"][0]
        self.assertEqual(hist["aggregation_temporality"], 1)
        self.assertEqual(hp["count"], 6)
        self.assertEqual(hp["sum"], 31.5)
        self.assertEqual(hp["bucket_counts"], [1, 3, 2])
        self.assertEqual(hp["explicit_bounds"], [1.0, 10.0])
        self.assertEqual((hp["min"], hp["max"]), (0.5, 12.25))
        self.assertEqual(attrs(hp["attributes"]), {"db": "app"})
        ep = exp["data_points"][0]
        self.assertEqual(exp["aggregation_temporality"], 2)
        self.assertEqual((ep["count"], ep["scale"], ep["zero_count"], ep["sum"]), (6, -2, 2, 12.0))
        self.assertEqual(attrs(ep["attributes"]), {"db": "app"})  # once, not twice
        self.assertEqual(summ["data_points"][0]["count"], 10)
        self.assertEqual(attrs(summ["data_points"][0]["attributes"]), {"db": "app"})

        lg = sink.records("logs")
        self.assertEqual(len(lg), 5)
        bodies = sorted(x["item"]["body"]["string_value"] for x in lg)
        self.assertEqual(bodies, ["log line %d" % i for i in range(5)])
        for x in lg:
            it = x["item"]
            i = int(it["body"]["string_value"].split()[-1])
            self.assertEqual(x["resource"]["service.instance.id"], "db1:5432" if i < 3 else "db2:5432")
            self.assertEqual(x["scope"], "dbi/pglog")
            self.assertEqual(it["severity_number"], 13)
            self.assertEqual(it["severity_text"], "WARN")
            self.assertEqual(it["time_unix_nano"], T1 + i)
            self.assertEqual(attrs(it["attributes"]), {"i": i, "user": "u%d" % i})
            self.assertEqual(it["trace_id"].hex(), TRACE_ID)
            self.assertEqual(it["span_id"].hex(), SPAN_ID)

        sp = {x["item"]["name"]: x for x in sink.records("traces")}
        self.assertEqual(sorted(sp), ["SELECT orders", "fetch"])
        s = sp["SELECT orders"]["item"]
        self.assertEqual(s["trace_id"].hex(), TRACE_ID)
        self.assertEqual(s["span_id"].hex(), SPAN_ID)
        self.assertEqual(s["kind"], 3)
        self.assertEqual((s["start_time_unix_nano"], s["end_time_unix_nano"]), (T0, T1))
        self.assertEqual(attrs(s["attributes"]), {"db.system": "postgresql", "db.statement": "SELECT 1"})
        self.assertEqual(sp["fetch"]["item"]["parent_span_id"].hex(), SPAN_ID)
        self.assertEqual(sp["fetch"]["resource"]["service.name"], "app")
        self.assertEqual(sp["fetch"]["scope"], "tracer")

    def test_newrelic_limits_on_logs(self):
        sink = Sink()
        long_value = "x" * 5000
        try:
            with Collector(config(sink.url, "    profile: newrelic")) as c:
                self.assertEqual(post(c.ports["http"], "/v1/logs", logs(long_value)), 200)
                self.assertTrue(eventually(lambda: len(sink.records("logs")) >= 5, timeout=30), c.log()[-2000:])
                c.stop()
        finally:
            sink.close()
        for x in sink.records("logs"):
            self.assertEqual(x["resource"]["instrumentation.provider"], "opentelemetry")
            a = attrs(x["item"]["attributes"])
            if "statement" in a:
                self.assertEqual(len(a["statement"]), 4095)


if __name__ == "__main__":
    unittest.main(verbosity=2)
