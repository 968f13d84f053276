#!/usr/bin/python3
"""test_otlp_export_interop.py - what dbi's otlphttp exporter sends, decoded by an independent
implementation: tests/interop/js/otlp_peer.js, an OTLP/HTTP receiver built on the protobuf
definitions the OpenTelemetry JS SDK generated from opentelemetry-proto (protobufjs), with
gzip from Node's zlib (support: tests/support/jspeer.py).

- PostgreSQL round trip: a throwaway PostgreSQL 15 with a pgbench workload, scraped by the real
  dbi-collector running config/newrelic.yaml as shipped (only the shm name and the interval
  changed, endpoint and key through its environment variables), stopped with SIGTERM (it
  drains). The peer must show the OTel receiver's metrics with their units and types, delta
  temporality for monotonic sums only, the New Relic resource attributes, attribute limits,
  the api-key header, gzip bodies under 1 MB and literal-free query samples. Once with
  protobuf, once with `encoding: json`.

  Values are checked exactly where PostgreSQL allows it: a database `interop` that the
  collector's role (dbi_monitor, the config's default user, GRANT pg_monitor) may not connect
  to, with autovacuum off, sees transactions only from this test, which flushes its
  statistics (pg_stat_force_next_flush) before reading pg_stat_database. So the sum of the
  postgresql.commits deltas the peer decoded for `interop` must equal the change of its
  xact_commit between the collector's first scrape and its last one (likewise rollbacks).

- Pass-through: the OpenTelemetry JS SDK (tests/interop/js/send.js) sends metrics, a log
  record and a span to dbi's otlp receiver; dbi's otlphttp exporter sends them on to the peer:
  ids, names, attributes, bodies and values must arrive intact; with `profile: newrelic`,
  over-long attribute keys and values arrive truncated to 255 and 4095 characters.
"""

import json
import os
import re
import socket
import subprocess
import sys
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.dont_write_bytecode = True

from collector import Collector  # noqa: E402
from jspeer import KIT, SRC, JsPeer, attrs, install_kit, log_records, metric_points, spans  # noqa: E402
from otlphttp_testlib import counter, eventually  # noqa: E402
from pgcluster import PgCluster  # noqa: E402

SECRET = "nr-interop-license-key-0123456789abcdef"
LITERAL = "dbi-interop-secret-7Qx"  # a string constant that must never leave in a query sample
MAX_REQUEST = 1000000
DELTA, CUMULATIVE = "AGGREGATION_TEMPORALITY_DELTA", "AGGREGATION_TEMPORALITY_CUMULATIVE"

# name: (unit, type, monotonic, value type) as in the OpenTelemetry Collector's postgresqlreceiver
EXPECTED = {
    "postgresql.backends": ("1", "sum", False, "asInt"),
    "postgresql.commits": ("1", "sum", True, "asInt"),
    "postgresql.rollbacks": ("1", "sum", True, "asInt"),
    "postgresql.db_size": ("By", "sum", False, "asInt"),
    "postgresql.blocks_read": ("1", "sum", True, "asInt"),
    "postgresql.table.size": ("By", "sum", False, "asInt"),
    "postgresql.table.count": ("{table}", "sum", False, "asInt"),
    "postgresql.operations": ("1", "sum", True, "asInt"),
    "postgresql.rows": ("1", "sum", False, "asInt"),
    "postgresql.index.scans": ("{scans}", "sum", True, "asInt"),
    "postgresql.index.size": ("By", "gauge", False, "asInt"),
    "postgresql.connection.max": ("{connections}", "gauge", False, "asInt"),
    "postgresql.database.count": ("{databases}", "sum", False, "asInt"),
    "postgresql.bgwriter.buffers.allocated": ("{buffers}", "sum", True, "asInt"),
    "postgresql.bgwriter.buffers.writes": ("{buffers}", "sum", True, "asInt"),
    "postgresql.bgwriter.checkpoint.count": ("{checkpoints}", "sum", True, "asInt"),
    "postgresql.bgwriter.duration": ("ms", "sum", True, "asDouble"),
    "postgresql.bgwriter.maxwritten": ("1", "sum", True, "asInt"),
}


def machine_id():
    for f in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(f) as fh:
                v = fh.read().strip()
            if v:
                return v
        except OSError:
            pass
    return None


def shipped_config(encoding=None):
    """config/newrelic.yaml with only the shm name and the collection interval changed."""
    with open(os.path.join(SRC, "config", "newrelic.yaml")) as f:
        text = f.read()
    assert "shm: {name: dbi.newrelic}" in text and text.count("collection_interval: 30s") == 1
    text = text.replace("shm: {name: dbi.newrelic}", "shm: {name: \"{shm}\"}")
    text = text.replace("collection_interval: 30s", "collection_interval: 2s")
    if encoding:
        assert text.count("\n    compression: gzip") == 1
        text = text.replace("\n    compression: gzip", "\n    encoding: %s\n    compression: gzip" % encoding)
    return text


def log_fields(log, msg):
    """The logfmt fields of the collector's last log line with msg="<msg>"."""
    for line in reversed(log.splitlines()):
        if 'msg="%s"' % msg in line:
            return dict(re.findall(r'(\w[\w.]*)=("[^"]*"|\S+)', line))
    raise AssertionError("no %r line in the log:\n%s" % (msg, log[-3000:]))


def series_key(p):
    return (json.dumps(p["resource"], sort_keys=True), p["name"], json.dumps(p["attrs"], sort_keys=True))


def limit_violations(records):
    """New Relic's limits: names <= 255 chars, string values <= 4095, arrays <= 64, <= 100 per set."""
    bad = []

    def value(v, where):
        kind = (v or {}).get("value")
        if kind == "stringValue" and len(v[kind]) > 4095:
            bad.append("%s: value of %d chars" % (where, len(v[kind])))
        elif kind == "arrayValue":
            vals = v[kind].get("values", [])
            if len(vals) > 64:
                bad.append("%s: array of %d" % (where, len(vals)))
            for x in vals:
                value(x, where)
        elif kind == "kvlistValue":
            kvs(v[kind].get("values", []), where)

    def kvs(lst, where):
        if len(lst) > 100:
            bad.append("%s: %d attributes" % (where, len(lst)))
        for kv in lst:
            if len(kv["key"]) > 255:
                bad.append("%s: key of %d chars" % (where, len(kv["key"])))
            value(kv.get("value"), where + "." + kv["key"][:40])

    def walk(v, where):
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "attributes" and isinstance(x, list):
                    kvs(x, where)
                else:
                    walk(x, where + "." + k)
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, "%s[%d]" % (where, i))

    for r in records:
        walk(r.get("request") or {}, "request#%d" % r["seq"])
    return bad


class PostgresRoundTrip(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        install_kit()
        cls.pg = PgCluster(settings={"autovacuum": "off"}).start()
        try:
            pg = cls.pg
            pg.pgbench_init(scale=1)
            pg.sql("postgres", "CREATE ROLE dbi_monitor LOGIN")
            pg.sql("postgres", "GRANT pg_monitor TO dbi_monitor")
            pg.sql("postgres", "CREATE DATABASE interop")
            pg.sql("postgres", "REVOKE CONNECT ON DATABASE interop FROM PUBLIC")
            cls.in_interop("CREATE TABLE t (id serial PRIMARY KEY, v text)")
            # a steady, throttled load in `postgres`, the database the collector also uses
            cls.bench = pg.pgbench_start(clients=2, seconds=900, args=("-R", "100"))
        except BaseException:
            cls.pg.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.bench.kill()
        cls.pg.stop()

    @classmethod
    def in_interop(cls, *statements):
        """Each statement as its own transaction in `interop`, then the session's statistics
        flushed: psql returns after PostgreSQL has counted every one of them."""
        args = []
        for s in statements + ("SELECT pg_stat_force_next_flush()",):
            args += ["-c", s]
        cls.pg.psql(*args, conninfo=cls.pg.conninfo("interop"))

    def xacts(self):
        row = self.pg.rows("postgres", "SELECT xact_commit, xact_rollback FROM pg_stat_database "
                                        "WHERE datname = 'interop'")
        return int(row[0][0]), int(row[0][1])

    def run_collector(self, cfg):
        """Scrape, run the `interop` workload, scrape twice more (at least), SIGTERM."""
        before = self.xacts()
        peer = JsPeer()
        try:
            env = {"NEW_RELIC_OTLP_ENDPOINT": peer.url, "NEW_RELIC_LICENSE_KEY": SECRET,
                   "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(self.pg.port),
                   "POSTGRES_USER": "dbi_monitor", "POSTGRES_PASSWORD": ""}
            with Collector(cfg, env=env) as c:
                def scrapes():
                    return counter(c, "receiver:postgresql", "scrapes")
                self.assertTrue(eventually(lambda: scrapes() >= 2, timeout=60), c.log()[-3000:])
                self.in_interop(*(["INSERT INTO t (v) VALUES ('row %d')" % i for i in range(40)] +
                                  ["BEGIN", "INSERT INTO t (v) VALUES ('never')", "ROLLBACK"] * 3 +
                                  ["SELECT count(*) FROM t WHERE id > 424242 AND v <> '%s'" % LITERAL]))
                after = self.xacts()
                # a completed scrape that started after the workload: two completions from now
                n = scrapes()
                self.assertTrue(eventually(lambda: scrapes() >= n + 2, timeout=60), c.log()[-3000:])
                self.assertEqual(c.stop(), 0, c.log()[-3000:])
                log = c.log()
        finally:
            peer.close()
        records = peer.records()
        peer.remove()
        self.assertGreaterEqual(after[0] - before[0], 40 + 2, (before, after))
        self.assertEqual(after[1] - before[1], 3, (before, after))
        return records, before, after, log

    def check(self, records, before, after, log, encoding):
        port = self.pg.port
        instance = "127.0.0.1:%d" % port
        self.assertNotIn(SECRET, log)

        # -- the requests as they arrived
        self.assertTrue(records, "nothing arrived; log:\n" + log[-3000:])
        self.assertEqual({r["path"] for r in records}, {"/v1/metrics", "/v1/logs"})
        ctype = "application/json" if encoding == "json" else "application/x-protobuf"
        for r in records:
            self.assertEqual((r["status"], r["error"]), (200, None), r["path"])
            self.assertEqual(r["encoding"], encoding)
            self.assertEqual(r["headers"].get("content-type"), ctype)
            self.assertEqual(r["headers"].get("api-key"), SECRET)
            self.assertEqual(r["content_encoding"], "gzip")
            self.assertTrue(r["headers"].get("user-agent", "").startswith("dbi-collector/"))
            self.assertLessEqual(r["wire_bytes"], MAX_REQUEST)
            self.assertEqual(r["wire_bytes"], int(r["headers"]["content-length"]))
            self.assertGreater(r["body_bytes"], r["wire_bytes"])  # really compressed
            if encoding == "json":
                self.assertEqual(r["json_unknown_fields"], [], "keys OTLP/JSON does not have")
            else:
                # the JS encoder writes the decoded message back to the same size: no field
                # on the wire was unknown to the OTLP schema
                self.assertEqual(r["reencoded_bytes"], r["body_bytes"])
        self.assertEqual(limit_violations(records), [])

        # -- metrics: names, units, types, temporality
        pts = metric_points(records)
        logs = log_records(records)
        stopped = log_fields(log, "stopped")
        # everything the pipeline handed to the exporter was decoded (histogram points travel as
        # records, like log records)
        self.assertEqual(int(stopped["points_out"]) + int(stopped["records_out"]), len(pts) + len(logs), stopped)
        self.assertEqual(int(stopped["dropped"]), 0)
        names = {p["name"] for p in pts}
        for name, (unit, kind, mono, vtype) in EXPECTED.items():
            self.assertIn(name, names)
            for p in (p for p in pts if p["name"] == name):
                self.assertEqual((p["unit"], p["type"], p["monotonic"], p["value_type"]), (unit, kind, mono, vtype),
                                 name)
        for p in pts:
            if p["type"] == "sum":
                # monotonic sums delta (cumulativetodelta), non-monotonic ones stay cumulative:
                # New Relic cannot take non-monotonic deltas
                self.assertEqual(p["temporality"], DELTA if p["monotonic"] else CUMULATIVE, p["name"])
            elif p["type"] == "histogram":
                self.assertEqual(p["temporality"], DELTA, p["name"])
            else:
                self.assertEqual(p["type"], "gauge", p["name"])
            self.assertGreater(p["time"], 0)
        # a delta series covers time without gaps or overlaps: each start is the previous end
        series = {}
        for p in pts:
            if p["temporality"] == DELTA:
                series.setdefault(series_key(p), []).append(p)
        self.assertTrue(series)
        for key, ps in series.items():
            ps.sort(key=lambda p: p["time"])
            for prev, p in zip([None] + ps, ps):
                self.assertLess(p["start"], p["time"], key)
                if prev:
                    self.assertEqual(p["start"], prev["time"], key)

        # -- resources: what New Relic's INFRA-POSTGRESQLINSTANCE entity synthesis needs; the
        # server is local (127.0.0.1), so with host_attributes auto host.* are this machine's
        mid = machine_id()
        resources = [p["resource"] for p in pts if p["name"].startswith("postgresql.")] + [lr["resource"] for lr in logs]
        for res in resources:
            self.assertEqual(res["service.instance.id"], instance)
            self.assertEqual(res["server.address"], "127.0.0.1")
            self.assertIs(type(res["server.port"]), int)
            self.assertEqual(res["server.port"], port)
            self.assertEqual(res["instrumentation.provider"], "opentelemetry")
            self.assertEqual(res["host.name"], socket.gethostname())
            if mid:
                self.assertEqual(res["host.id"], mid)
            else:
                self.assertNotIn("host.id", res)
        dbs = {p["resource"].get("postgresql.database.name") for p in pts if p["name"] == "postgresql.commits"}
        self.assertEqual(dbs, {"postgres", "interop"})

        # -- values against PostgreSQL
        def db_points(name, db):
            return [p for p in pts if p["name"] == name and p["resource"].get("postgresql.database.name") == db]

        commits = db_points("postgresql.commits", "interop")
        self.assertGreaterEqual(len(commits), 2)
        self.assertEqual(sum(p["value"] for p in commits), after[0] - before[0])
        self.assertEqual(sum(p["value"] for p in db_points("postgresql.rollbacks", "interop")), after[1] - before[1])
        self.assertGreater(sum(p["value"] for p in db_points("postgresql.commits", "postgres")), 0)
        self.assertEqual(db_points("postgresql.backends", "interop")[-1]["value"], 0)
        max_conn = int(self.pg.sql("postgres", "SHOW max_connections"))
        self.assertEqual({p["value"] for p in pts if p["name"] == "postgresql.connection.max"}, {max_conn})
        ndb = int(self.pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE NOT datistemplate"))
        self.assertEqual({p["value"] for p in pts if p["name"] == "postgresql.database.count"}, {ndb})
        ntab = int(self.pg.sql("postgres", "SELECT count(*) FROM pg_stat_user_tables"))
        self.assertEqual({p["value"] for p in db_points("postgresql.table.count", "postgres")}, {ntab})
        tables = {p["resource"].get("postgresql.table.name") for p in pts if p["name"] == "postgresql.table.size"}
        self.assertTrue({"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"} <= tables)

        # -- query samples: a fingerprint, and no literal in any body
        self.assertTrue(logs, "no query samples arrived")
        for lr in logs:
            self.assertEqual(lr["record"].get("eventName"), "db.query.sample")
            self.assertRegex(lr["attrs"].get("db.query.fingerprint", ""), r"^[0-9a-f]{16}$")
            self.assertEqual(lr["attrs"].get("db.system"), "postgresql")
            self.assertIn("postgresql.database.name", lr["attrs"])
            self.assertNotIn("'", lr["body"])
            self.assertNotIn(LITERAL, lr["body"])
            self.assertNotIn("424242", lr["body"])
        ours = [lr for lr in logs if lr["attrs"]["postgresql.database.name"] == "interop" and "424242" not in
                lr["body"] and lr["body"].startswith("SELECT count(*) FROM t")]
        self.assertEqual([lr["body"] for lr in ours], ["SELECT count(*) FROM t WHERE id > $1 AND v <> $2"])

    def test_protobuf(self):
        records, before, after, log = self.run_collector(shipped_config())
        self.check(records, before, after, log, "proto")

    def test_json(self):
        records, before, after, log = self.run_collector(shipped_config("json"))
        self.check(records, before, after, log, "json")


PASS_THROUGH = """
receivers:
  otlp:
    protocols: {http: {endpoint: "127.0.0.1:{port:http}"}}
exporters:
  otlphttp:
    endpoint: %s
    headers: {api-key: %s}
%s
service:
  pipelines:
    metrics: {receivers: [otlp], exporters: [otlphttp]}
    logs: {receivers: [otlp], exporters: [otlphttp]}
    traces: {receivers: [otlp], exporters: [otlphttp]}
runtime:
  shm: {name: "{shm}"}
"""


class PassThrough(unittest.TestCase):
    """The JS SDK -> dbi's otlp receiver -> dbi's otlphttp exporter -> the JS peer."""

    def run_through(self, exporter_extra="", send_args=(), compression="gzip"):
        install_kit()
        run = uuid.uuid4().hex[:12]
        with JsPeer() as peer:
            with Collector(PASS_THROUGH % (peer.url, SECRET, exporter_extra)) as c:
                p = subprocess.run(["node", os.path.join(KIT, "send.js"), "--protocol", "http-proto", "--http-port",
                                    str(c.ports["http"]), "--run-id", run] + list(send_args),
                                   capture_output=True, timeout=120)
                self.assertEqual(p.returncode, 0, (p.stdout, p.stderr))
                sent = json.loads(p.stdout.decode().strip().splitlines()[-1])
                self.assertEqual(c.stop(), 0, c.log()[-3000:])
        records = peer.records()
        peer.remove()
        for r in records:
            self.assertEqual((r["status"], r["error"]), (200, None), r["path"])
            self.assertEqual(r["content_encoding"], compression)
            self.assertEqual(r["headers"].get("api-key"), SECRET)
            self.assertEqual(r["reencoded_bytes"], r["body_bytes"])
        self.assertEqual({r["path"] for r in records}, {"/v1/metrics", "/v1/logs", "/v1/traces"})
        return run, sent, records

    def check_resource(self, res, run, newrelic):
        extra = {"instrumentation.provider", "host.name", "host.id"} & set(res)
        self.assertEqual({k: v for k, v in res.items() if k not in extra},
                         {"service.name": "dbi-interop", "test.run": run, "test.protocol": "http-proto",
                          "host.cores": 2})
        self.assertIs(type(res["host.cores"]), int)
        if newrelic:
            # no server.address: the resource describes this machine, so host.* are added
            self.assertEqual(res["instrumentation.provider"], "opentelemetry")
            self.assertEqual(res["host.name"], socket.gethostname())
            if machine_id():
                self.assertEqual(res["host.id"], machine_id())
        else:
            self.assertEqual(extra, set())

    def check_span_and_log(self, run, sent, records, newrelic, long_attrs=None):
        sps = spans(records)
        self.assertEqual(len(sps), 1)
        sp = sps[0]
        self.check_resource(sp["resource"], run, newrelic)
        self.assertEqual((sp["scope"], sp["scope_version"]), ("dbi-interop-tracer", "7.8.9"))
        s = sp["span"]
        self.assertEqual(s["name"], "interop-span")
        self.assertEqual(s["traceId"], sent["span"]["traceId"])
        self.assertEqual(s["spanId"], sent["span"]["spanId"])
        self.assertRegex(s["traceId"], r"^[0-9a-f]{32}$")
        self.assertNotIn("parentSpanId", s)
        self.assertEqual(s["kind"], "SPAN_KIND_INTERNAL")
        self.assertLess(int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]))
        self.assertEqual({k: v for k, v in sp["attrs"].items() if k not in (long_attrs or {})},
                         {"span.attr": "x", "count": 3})
        self.assertEqual([(e["name"], attrs(e.get("attributes"))) for e in s["events"]], [("halfway", {"step": 1})])

        lrs = log_records(records)
        self.assertEqual(len(lrs), 1)
        lr = lrs[0]
        self.check_resource(lr["resource"], run, newrelic)
        self.assertEqual((lr["scope"], lr["scope_version"]), ("dbi-interop-logger", "4.5.6"))
        self.assertEqual(lr["body"], "interop log " + run)
        rec = lr["record"]
        self.assertEqual((rec["severityNumber"], rec["severityText"]), ("SEVERITY_NUMBER_WARN", "WARN"))
        self.assertEqual((rec["traceId"], rec["spanId"]), (s["traceId"], s["spanId"]))
        self.assertGreater(int(rec["timeUnixNano"]), 0)
        self.assertEqual({k: v for k, v in lr["attrs"].items() if k not in (long_attrs or {})},
                         {"log.kind": "test", "n": 7})
        return sp, lr

    def test_intact(self):
        run, sent, records = self.run_through()
        self.check_span_and_log(run, sent, records, newrelic=False)
        pts = metric_points(records)
        for p in pts:
            self.check_resource(p["resource"], run, newrelic=False)
            self.assertEqual(p["scope"], "dbi-interop-meter")

        def values(name):
            return {(json.dumps(p["attrs"], sort_keys=True), p["value"], p["temporality"], p["monotonic"], p["unit"])
                    for p in pts if p["name"] == name}
        self.assertEqual(values("interop.requests"),
                         {('{"code": 200, "route": "/a"}', 5, CUMULATIVE, True, "{request}"),
                          ('{"code": 500, "retried": true, "route": "/b"}', 3, CUMULATIVE, True, "{request}")})
        self.assertEqual(values("interop.queue"), {('{"queue": "main"}', 6, CUMULATIVE, False, "{item}")})
        self.assertEqual(values("interop.temperature"),
                         {('{"floor": 3, "room": "lab"}', 21.5, "AGGREGATION_TEMPORALITY_UNSPECIFIED", False, "Cel")})
        hists = [p for p in pts if p["name"] == "interop.latency"]
        self.assertTrue(hists)
        for h in hists:
            self.assertEqual(h["type"], "histogram")
            self.assertEqual(h["temporality"], CUMULATIVE)
            self.assertEqual(h["attrs"], {"route": "/a"})
            hp = h["point"]
            self.assertEqual((int(hp["count"]), hp["sum"], hp["min"], hp["max"]), (3, 170, 5, 150))
            counts = [int(x) for x in hp["bucketCounts"]]
            self.assertEqual(len(counts), len(hp["explicitBounds"]) + 1)
            self.assertEqual(sum(counts), 3)
            self.assertEqual([b for b, n in zip(hp["explicitBounds"] + [None], counts) if n], [5, 25, 250])

    def test_zstd(self):
        run, sent, records = self.run_through("    compression: zstd", compression="zstd")
        self.check_span_and_log(run, sent, records, newrelic=False)
        self.assertTrue(all(r["body_bytes"] > r["wire_bytes"] for r in records))

    def test_newrelic_profile_limits(self):
        long_key, long_value = "k" * 300, "x" * 5000
        run, sent, records = self.run_through("    profile: newrelic", ["--long-attrs"])
        sp, lr = self.check_span_and_log(run, sent, records, newrelic=True,
                                         long_attrs={long_key[:255], "long.value"})
        for a in (sp["attrs"], lr["attrs"]):
            # truncated, not dropped
            self.assertEqual(a[long_key[:255]], "long key")
            self.assertEqual(a["long.value"], long_value[:4095])
        self.assertEqual(limit_violations(records), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
