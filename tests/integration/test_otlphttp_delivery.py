#!/usr/bin/python3
"""test_otlphttp_delivery.py - the real dbi-collector (loadgen -> batch -> otlphttp) sending
to an independent OTLP/HTTP sink (tests/support/otlp_sink.py, its own protobuf decoder):
every point arrives exactly once with its resource, scope, temporality and value, with
gzip, zstd, no compression and OTLP/JSON; max_request_bytes is never exceeded; the New
Relic profile adds its resource attributes; headers are sent and never logged.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.dont_write_bytecode = True

from collector import Collector  # noqa: E402
from otlp_sink import Sink  # noqa: E402
from otlphttp_testlib import counter, counters, eventually  # noqa: E402

SECRET = "nr-test-license-key-0123456789abcdef"


def config(sink_url, targets=4, series=25, points=4000, rate=20000, batch=500, exporter="", processors="batch"):
    return """
receivers:
  loadgen: {targets: %d, series_per_target: %d, rate: %d, max_points: %d}
processors:
  batch: {send_batch_size: %d, timeout: 100ms}
exporters:
  otlphttp:
    endpoint: %s
    headers: {api-key: %s}
%s
service:
  pipelines:
    metrics: {receivers: [loadgen], processors: [%s], exporters: [otlphttp]}
runtime:
  shm: {name: "{shm}"}
""" % (targets, series, rate, points, batch, sink_url, SECRET, exporter, processors)


def has_unknown(d):
    if isinstance(d, dict):
        return "_unknown" in d or any(has_unknown(v) for v in d.values())
    if isinstance(d, list):
        return any(has_unknown(v) for v in d)
    return False


def check_points(test, pts, targets, series, points):
    """Each series got the values 1..k once, in total `points` points, from loadgen's shape."""
    test.assertEqual(len(pts), points)
    keys = set()
    per_series = {}
    for p in pts:
        test.assertEqual(p["metric"], "loadgen.counter")
        test.assertEqual(p["kind"], "sum")
        test.assertTrue(p["monotonic"])
        test.assertEqual(p["temporality"], 2)  # cumulative, as the descriptor says
        test.assertEqual(p["scope"], "dbi/loadgen")
        test.assertEqual(p["resource"]["service.name"], "loadgen")
        test.assertEqual(p["resource"]["server.port"], 5432)
        inst = p["resource"]["service.instance.id"]
        test.assertEqual(inst, p["resource"]["server.address"] + ":5432")
        test.assertGreater(p["time"], p["start"])
        test.assertGreater(p["start"], 0)
        key = (inst, p["attrs"]["series"], p["value"])
        test.assertNotIn(key, keys, "duplicate point %r" % (key,))
        keys.add(key)
        per_series.setdefault((inst, p["attrs"]["series"]), []).append(p["value"])
    test.assertEqual(len(per_series), min(targets * series, points))
    for vals in per_series.values():
        test.assertEqual(sorted(vals), list(range(1, len(vals) + 1)))


class Delivery(unittest.TestCase):
    def run_one(self, tag, exporter="", points=4000, **kw):
        sink = Sink()
        cfg = config(sink.url, points=points, exporter=exporter, **kw)
        try:
            with Collector(cfg) as c:
                ok = eventually(lambda: len(sink.points()) >= points, timeout=60)
                # the usage projection starts after a second of history
                eventually(lambda: counter(c, "exporter:otlphttp:sender", "usage.projected_mb_month") > 0, 5)
                sent = counters(c, "exporter:otlphttp:sender")
                main = counters(c, "exporter:otlphttp")
                self.assertEqual(c.stop(), 0)
                log = c.log()
        finally:
            sink.close()
        self.assertTrue(ok, "only %d of %d points arrived; log:\n%s" % (len(sink.points()), points, log[-3000:]))
        self.assertNotIn(SECRET, log)
        return sink, sent, main, log

    def test_gzip_default(self):
        sink, sent, main, _ = self.run_one("gz")
        check_points(self, sink.points(), 4, 25, 4000)
        for r in sink.requests:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("content-encoding"), "gzip")
            self.assertEqual(r.headers.get("content-type"), "application/x-protobuf")
            self.assertEqual(r.headers.get("api-key"), SECRET)
            self.assertTrue(r.headers.get("user-agent", "").startswith("dbi-collector/"))
            self.assertEqual(r.path, "/v1/metrics")
            self.assertFalse(has_unknown(r.decoded), "a field the OTLP schema does not have")
        self.assertEqual(sent["points.sent"], 4000)
        self.assertEqual(sent["requests.ok"], len(sink.requests))
        self.assertEqual(sent["bytes.sent"], sum(r.wire_len for r in sink.requests))
        self.assertEqual(sent["bytes.sent_uncompressed"], sum(r.raw_len for r in sink.requests))
        self.assertEqual(main["items"], 4000)
        self.assertEqual(sum(v for k, v in main.items() if k.startswith("dropped.")), 0)
        self.assertEqual(sum(v for k, v in sent.items() if k.startswith("dropped.")), 0)
        self.assertGreater(sent["usage.projected_mb_month"], 0)

    def test_zstd(self):
        sink, _, _, _ = self.run_one("zstd", exporter="    compression: zstd")
        check_points(self, sink.points(), 4, 25, 4000)
        self.assertTrue(all(r.headers.get("content-encoding") == "zstd" for r in sink.requests))
        # a real zstd frame: the magic number
        self.assertTrue(all(r.raw_len > r.wire_len for r in sink.requests))

    def test_none(self):
        sink, _, _, _ = self.run_one("none", exporter="    compression: none")
        check_points(self, sink.points(), 4, 25, 4000)
        self.assertTrue(all("content-encoding" not in r.headers for r in sink.requests))
        self.assertTrue(all(r.raw_len == r.wire_len for r in sink.requests))

    def test_json(self):
        sink, sent, _, _ = self.run_one("json", exporter="    encoding: json\n    compression: gzip")
        check_points(self, sink.points(), 4, 25, 4000)
        self.assertTrue(all(r.headers.get("content-type") == "application/json" for r in sink.requests))
        self.assertTrue(all("resourceMetrics" in r.decoded for r in sink.requests))
        self.assertEqual(sent["points.sent"], 4000)

    def test_max_request_bytes(self):
        # batches of 2000 points compress to ~15 kB; the cap is 4000 bytes of body as sent
        sink, sent, main, _ = self.run_one("maxreq", exporter="    max_request_bytes: 4000", points=6000,
                                           batch=2000, targets=6, series=50)
        check_points(self, sink.points(), 6, 50, 6000)
        self.assertTrue(all(r.wire_len <= 4000 for r in sink.requests), [r.wire_len for r in sink.requests])
        self.assertNotIn(413, sink.statuses())
        self.assertGreater(len(sink.requests), 6000 // 2000)
        self.assertEqual(main["requests.queued"], len(sink.requests))

    def test_newrelic_profile(self):
        exporter = "    profile: newrelic\n    host_attributes: always"
        sink, _, _, _ = self.run_one("nr", exporter=exporter, points=1000)
        pts = sink.points()
        check_points(self, pts, 4, 25, 1000)
        machine_id = None
        for f in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
            if os.path.exists(f):
                with open(f) as fh:
                    machine_id = fh.read().strip() or None
                break
        for p in pts:
            self.assertEqual(p["resource"]["instrumentation.provider"], "opentelemetry")
            self.assertEqual(p["resource"]["host.name"], socket.gethostname())
            if machine_id:
                self.assertEqual(p["resource"]["host.id"], machine_id)
        self.assertTrue(all(r.headers.get("api-key") == SECRET for r in sink.requests))

    def test_newrelic_profile_auto_hosts(self):
        # default host_attributes (auto): loadgen's servers are not this machine, so no host.*
        sink, _, _, _ = self.run_one("nrauto", exporter="    profile: newrelic", points=500)
        for p in sink.points():
            self.assertEqual(p["resource"]["instrumentation.provider"], "opentelemetry")
            self.assertNotIn("host.name", p["resource"])
            self.assertNotIn("host.id", p["resource"])

    def test_tls(self):
        src = os.environ.get("DBI_SOURCE_DIR", os.path.join(HERE, "..", ".."))
        certs = tempfile.mkdtemp(prefix="dbi-otlp-tls-")
        try:
            subprocess.run([os.path.join(src, "scripts", "pg-cluster.sh"), "certs", certs, "--san",
                            "DNS:localhost,IP:127.0.0.1"], check=True, stdout=subprocess.DEVNULL)
            tls = (os.path.join(certs, "server.crt"), os.path.join(certs, "server.key"))
            ca = os.path.join(certs, "ca.crt")
            # verified against the right CA: delivered
            sink = Sink(tls=tls)
            try:
                cfg = config(sink.url, points=500, exporter="    tls: {ca_file: %s}" % ca)
                with Collector(cfg) as c:
                    self.assertTrue(eventually(lambda: len(sink.points()) >= 500, timeout=60), c.log()[-2000:])
            finally:
                sink.close()
            # verification is on by default: an unknown CA is refused, and retried, never sent
            sink = Sink(tls=tls)
            try:
                cfg = config(sink.url, points=500,
                             exporter="    retry_on_failure: {initial_interval: 200ms, max_interval: 1s}")
                with Collector(cfg) as c:
                    self.assertTrue(eventually(
                        lambda: counter(c, "exporter:otlphttp:sender", "failures.connection") >= 2, timeout=60))
                    self.assertEqual(len(sink.accepted()), 0)
                    c.stop()
                    self.assertIn("tls.ca_file", c.log())  # the hint
            finally:
                sink.close()
            # insecure_skip_verify: delivered without the CA
            sink = Sink(tls=tls)
            try:
                cfg = config(sink.url, points=500, exporter="    tls: {insecure_skip_verify: true}")
                with Collector(cfg) as c:
                    self.assertTrue(eventually(lambda: len(sink.points()) >= 500, timeout=60), c.log()[-2000:])
            finally:
                sink.close()
        finally:
            shutil.rmtree(certs, ignore_errors=True)

    def test_shipped_newrelic_config(self):
        # config/newrelic.yaml as shipped: a real PostgreSQL 15 scraped by the postgresql
        # receiver, through cumulativetodelta and the New Relic profile, into the sink
        # (pointed at through the config's environment variables). Checks what New Relic
        # needs for INFRA-POSTGRESQLINSTANCE entities and delta temporality.
        from pgcluster import PgCluster
        src = os.environ.get("DBI_SOURCE_DIR", os.path.join(HERE, "..", ".."))
        with open(os.path.join(src, "config", "newrelic.yaml")) as f:
            cfg = f.read().replace("dbi.newrelic", "{shm}").replace("collection_interval: 30s",
                                                                      "collection_interval: 2s")
        sink = Sink()
        try:
            with PgCluster() as pg:
                pg.pgbench_init(scale=1)
                bench = pg.pgbench_start(clients=2, seconds=30)
                env = {"NEW_RELIC_OTLP_ENDPOINT": sink.url, "NEW_RELIC_LICENSE_KEY": SECRET,
                       "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(pg.port), "POSTGRES_USER": pg.user}
                with Collector(cfg, env=env) as c:
                    time.sleep(9)  # a few 2 s scrapes; the batch (10 s timeout) flushes on SIGTERM
                    self.assertEqual(c.stop(), 0)
                    log = c.log()
                bench.kill()
        finally:
            sink.close()
        pts = sink.points()
        self.assertGreater(len(pts), 100, log[-2000:])
        self.assertNotIn(SECRET, log)
        for r in sink.requests:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("api-key"), SECRET)
            self.assertEqual(r.headers.get("content-encoding"), "gzip")
            self.assertLessEqual(r.wire_len, 1000000)
        instance = "127.0.0.1:%d" % pg.port
        names = {p["metric"] for p in pts}
        for want in ("postgresql.backends", "postgresql.commits", "postgresql.db_size", "postgresql.blocks_read",
                     "postgresql.table.size", "postgresql.operations"):
            self.assertIn(want, names)
        for p in pts:
            res = p["resource"]
            if not p["metric"].startswith("postgresql."):
                continue  # the receiver's own dbi.* self-metrics share the pipeline
            self.assertEqual(res["instrumentation.provider"], "opentelemetry")
            self.assertEqual(res["service.instance.id"], instance)
            self.assertEqual(res["server.address"], "127.0.0.1")
            self.assertEqual(int(res["server.port"]), pg.port)
            if p["kind"] == "sum" and p["monotonic"]:
                self.assertEqual(p["temporality"], 1, p)  # delta, from cumulativetodelta
        commits = [p for p in pts if p["metric"] == "postgresql.commits"]
        self.assertTrue(any(p["value"] and p["value"] > 0 for p in commits), commits[:3])
        # query samples (logs pipeline) carry a fingerprint and literal-free text
        logs = sink.records("logs")
        self.assertTrue(logs, "no query samples arrived")

    def test_partial_success_counted(self):
        for enc in ("proto", "json"):
            sink = Sink()
            sink.partial_reject = (3, "3 points had bad timestamps")
            try:
                with Collector(config(sink.url, points=1000, batch=1000, exporter="    encoding: " + enc)) as c:
                    self.assertTrue(eventually(lambda: len(sink.points()) >= 1000, timeout=60))
                    n = len(sink.accepted())
                    self.assertTrue(eventually(
                        lambda: counter(c, "exporter:otlphttp:sender", "partial_success.rejected") == 3 * n, 10))
                    c.stop()
                    self.assertIn("3 points had bad timestamps", c.log())
            finally:
                sink.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
