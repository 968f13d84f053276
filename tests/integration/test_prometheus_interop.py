#!/usr/bin/python3
"""test_prometheus_interop.py - the prometheus exporter and the self-telemetry endpoint
against real Prometheus tools (Debian package `prometheus`):

- the real dbi-collector runs loadgen -> prometheus exporter, with self-telemetry on;
  loadgen emits a fixed number of points, so every counter ends at a known value;
- `promtool check metrics` finds nothing to complain about on either page;
- a real Prometheus server scrapes both endpoints every second (it asks for OpenMetrics
  and gzip, so that path is what it parses for the exporter; the self-telemetry page is
  text 0.0.4), and PromQL over its HTTP API returns loadgen's values, target_info with
  the resource attributes, and the collector's own counters;
- gzip and OpenMetrics responses decode and have the structure the formats require.

Everything it starts (collector, Prometheus) is killed at the end, also on failure.
"""

import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BINDIR = os.environ.get("DBI_BINARY_DIR") or os.path.join(HERE, "..", "..", "build")
COLLECTOR = os.path.join(BINDIR, "dbi-collector")
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")

TARGETS, SERIES_PER_TARGET, PER_SERIES = 3, 4, 100
TOTAL = TARGETS * SERIES_PER_TARGET * PER_SERIES
METRIC = "db_intelligence_db_requests_total"
OM_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
             "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, headers=None, timeout=10):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wait_until(pred, timeout, interval=0.2):
    end = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except (OSError, ValueError):
            v = None
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


def stop(proc, sig=signal.SIGTERM, timeout=15):
    """Stop a process we started (its own process group); returns its exit code."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    try:
        os.killpg(proc.pid, sig)
        return proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return proc.wait(timeout=10)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})? (\S+)( \S+)?$')


def check_openmetrics(testcase, text):
    """Structure OpenMetrics 1.0 requires: metadata before samples, families not
    interleaved, sample names matching their family's type, # EOF last."""
    testcase.assertTrue(text.endswith("# EOF\n"), text[-200:])
    types, seen_done, current = {}, set(), None
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
                "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("", "_count", "_sum", "_created")}
    for line in text[:-len("# EOF\n")].splitlines():
        if line.startswith("# "):
            parts = line.split(" ", 3)
            testcase.assertIn(parts[1], ("TYPE", "HELP", "UNIT"), line)
            fam = parts[2]
            if parts[1] == "TYPE":
                testcase.assertNotIn(fam, types, "second TYPE for " + fam)
                types[fam] = parts[3]
                if current:
                    seen_done.add(current)
                current = fam
            else:
                testcase.assertEqual(fam, current, "metadata outside its family: " + line)
            if parts[1] == "UNIT":
                testcase.assertTrue(fam.endswith("_" + parts[3]), line)
            continue
        m = SAMPLE.match(line)
        testcase.assertIsNotNone(m, "bad sample line: " + line)
        name = m.group(1)
        testcase.assertIsNotNone(current, line)
        testcase.assertIn(name, [current + s for s in suffixes[types[current]]], line)
        float(m.group(3))
        if types[current] == "histogram" and name.endswith("_bucket"):
            testcase.assertIn('le="', line)
    return types


class PrometheusInterop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(COLLECTOR, os.X_OK):
            raise unittest.SkipTest("no dbi-collector at " + COLLECTOR)
        if not PROMTOOL or not PROMETHEUS:
            raise unittest.SkipTest("promtool/prometheus not installed (Debian package prometheus)")
        cls.tmp = tempfile.mkdtemp(prefix="dbi-prom-interop.")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.collector = cls.prom = None
        cls.addClassCleanup(cls.stop_all)
        cls.exp_port, cls.tel_port, cls.prom_port = free_port(), free_port(), free_port()
        cfg = os.path.join(cls.tmp, "collector.yaml")
        with open(cfg, "w") as f:
            f.write(f"""receivers:
  loadgen:
    targets: {TARGETS}
    series_per_target: {SERIES_PER_TARGET}
    rate: 600
    max_points: {TOTAL}
    metric_name: db.requests
exporters:
  prometheus:
    endpoint: 127.0.0.1:{cls.exp_port}
    const_labels: {{env: interop}}
service:
  telemetry:
    metrics: {{address: "127.0.0.1:{cls.tel_port}"}}
  pipelines:
    metrics: {{receivers: [loadgen], exporters: [prometheus]}}
runtime:
  shm: {{name: dbi.test.prominterop.{os.getpid()}}}
""")
        cls.collector_log = open(os.path.join(cls.tmp, "collector.log"), "w")
        cls.addClassCleanup(cls.collector_log.close)
        cls.collector = subprocess.Popen([COLLECTOR, "--config", cfg], stdout=cls.collector_log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        cls.exp_url = f"http://127.0.0.1:{cls.exp_port}/metrics"
        cls.tel_url = f"http://127.0.0.1:{cls.tel_port}/metrics"

        # loadgen stops after TOTAL points: wait until the page shows every series at its end value
        def done():
            status, _, body = get(cls.exp_url)
            text = body.decode()
            return status == 200 and text.count(f"}} {PER_SERIES}\n") == TARGETS * SERIES_PER_TARGET
        if not wait_until(done, 60):
            raise AssertionError("the exporter page never showed every series at its final value; log:\n"
                                 + cls.log())

        pcfg = os.path.join(cls.tmp, "prometheus.yml")
        with open(pcfg, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: dbi
    honor_labels: true
    static_configs: [{{targets: ["127.0.0.1:{cls.exp_port}"]}}]
  - job_name: dbi-self
    static_configs: [{{targets: ["127.0.0.1:{cls.tel_port}"]}}]
""")
        cls.prom_log = open(os.path.join(cls.tmp, "prometheus.log"), "w")
        cls.addClassCleanup(cls.prom_log.close)
        cls.prom = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + pcfg, "--storage.tsdb.path=" + os.path.join(cls.tmp, "tsdb"),
             f"--web.listen-address=127.0.0.1:{cls.prom_port}", "--log.level=warn"],
            stdout=cls.prom_log, stderr=subprocess.STDOUT, start_new_session=True, cwd=cls.tmp)
        cls.prom_url = f"http://127.0.0.1:{cls.prom_port}"
        if not wait_until(lambda: get(cls.prom_url + "/-/ready", timeout=2)[0] == 200, 60):
            raise AssertionError("prometheus did not become ready:\n" + cls.plog())

    @classmethod
    def stop_all(cls):
        stop(cls.prom)
        cls.collector_rc = stop(cls.collector)

    @classmethod
    def log(cls):
        cls.collector_log.flush()
        with open(cls.collector_log.name) as f:
            return f.read()[-4000:]

    @classmethod
    def plog(cls):
        cls.prom_log.flush()
        with open(cls.prom_log.name) as f:
            return f.read()[-4000:]

    def query(self, promql):
        url = self.prom_url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, _, body = get(url)
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        self.assertEqual(doc["status"], "success", doc)
        return doc["data"]["result"]

    def query_until(self, promql, pred, timeout=60):
        last = []

        def ok():
            nonlocal last
            last = self.query(promql)
            return pred(last)
        if not wait_until(ok, timeout, 0.5):
            self.fail(f"{promql}: got {last}\nprometheus log:\n{self.plog()}")
        return last

    def promtool(self, page):
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=page, capture_output=True, timeout=60)
        out = (r.stdout + r.stderr).decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertEqual(out.strip(), "", out)

    # (a) promtool
    def test_promtool_exporter_page(self):
        status, headers, body = get(self.exp_url)
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        text = body.decode()
        self.assertIn(f"# TYPE {METRIC} counter\n", text)
        self.assertIn("# TYPE target_info gauge\n", text)
        self.promtool(body)

    def test_promtool_self_telemetry_page(self):
        status, headers, body = get(self.tel_url)
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        text = body.decode()
        for family in ("dbi_component_emitted_total", "dbi_component_dropped_total", "dbi_ring_depth",
                       "dbi_thread_cpu_seconds_total", "dbi_process_resident_memory_bytes"):
            self.assertIn(f"# TYPE {family} ", text)
        self.promtool(body)

    # (b) a real Prometheus
    def test_prometheus_scrapes_loadgen_values(self):
        n = TARGETS * SERIES_PER_TARGET
        res = self.query_until(METRIC, lambda r: len(r) == n)
        seen = set()
        for s in res:
            m = s["metric"]
            self.assertEqual(m["__name__"], METRIC)
            self.assertEqual(m["job"], "loadgen")
            self.assertRegex(m["instance"], r"^loadgen-[0-2]:5432$")
            self.assertEqual(m["env"], "interop")
            self.assertEqual(m["otel_scope_name"], "dbi/loadgen")
            self.assertEqual(m["otel_scope_version"], "1")
            self.assertEqual(float(s["value"][1]), PER_SERIES, s)
            seen.add((m["instance"], m["series"]))
        self.assertEqual(len(seen), n)
        total = self.query(f"sum({METRIC})")
        self.assertEqual(float(total[0]["value"][1]), TOTAL)
        self.assertEqual(float(self.query('up{job="dbi"}')[0]["value"][1]), 1)

    def test_prometheus_target_info(self):
        res = self.query_until("target_info", lambda r: len(r) == TARGETS)
        for s in res:
            m = s["metric"]
            t = m["instance"].split(":")[0]
            self.assertEqual(m["job"], "loadgen")
            self.assertEqual(m["server_address"], t)
            self.assertEqual(m["server_port"], "5432")
            self.assertNotIn("service_name", m)
            self.assertEqual(float(s["value"][1]), 1)
        # joining on job/instance brings resource attributes to the data, the usual use
        joined = self.query(f"{METRIC} * on (job, instance) group_left (server_address) target_info")
        self.assertEqual(len(joined), TARGETS * SERIES_PER_TARGET)

    def test_prometheus_scrapes_self_telemetry(self):
        q = 'sum(dbi_component_emitted_total{job="dbi-self",component="loadgen"})'
        self.query_until(q, lambda r: r and float(r[0]["value"][1]) == TOTAL)
        self.query_until('dbi_component_points_total{job="dbi-self",component="prometheus"}',
                         lambda r: r and float(r[0]["value"][1]) == TOTAL)
        self.query_until('sum(dbi_component_dropped_total{job="dbi-self"})',
                         lambda r: r and float(r[0]["value"][1]) == 0)
        # Prometheus asked our exporter for OpenMetrics and gzip: it parsed that path
        self.query_until('dbi_component_scrapes_openmetrics_total{component="prometheus"}',
                         lambda r: r and float(r[0]["value"][1]) > 0)
        self.query_until('dbi_component_scrapes_gzip_total{component="prometheus"}',
                         lambda r: r and float(r[0]["value"][1]) > 0)
        self.assertEqual(float(self.query('up{job="dbi-self"}')[0]["value"][1]), 1)

    # (c) gzip and OpenMetrics
    def test_gzip_and_openmetrics(self):
        _, _, plain = get(self.exp_url)
        status, headers, body = get(self.exp_url, {"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("content-encoding"), "gzip")
        self.assertEqual(gzip.decompress(body), plain)

        status, headers, om = get(self.exp_url, {"Accept": OM_ACCEPT})
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8")
        self.assertNotIn("content-encoding", headers)
        types = check_openmetrics(self, om.decode())
        self.assertEqual(types["db_intelligence_db_requests"], "counter")
        self.assertEqual(types["target"], "info")
        text = om.decode()
        self.assertEqual(text.count(f"\n{METRIC}{{"), TARGETS * SERIES_PER_TARGET)
        self.assertEqual(text.count("\ndb_intelligence_db_requests_created{"), TARGETS * SERIES_PER_TARGET)

        status, headers, omgz = get(self.exp_url, {"Accept": OM_ACCEPT, "Accept-Encoding": "gzip, deflate"})
        self.assertEqual(headers.get("content-encoding"), "gzip")
        self.assertEqual(gzip.decompress(omgz), om)

        # a client that does not ask for gzip or OpenMetrics gets neither
        status, headers, body = get(self.exp_url, {"Accept": "text/plain", "Accept-Encoding": "identity"})
        self.assertNotIn("content-encoding", headers)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        self.assertEqual(get(self.exp_url.replace("/metrics", "/nope"))[0], 404)

    @classmethod
    def tearDownClass(cls):
        cls.stop_all()
        if cls.collector_rc not in (0, None):
            raise AssertionError(f"dbi-collector exited with {cls.collector_rc}; log:\n{cls.log()}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
