#!/usr/bin/python3
"""test_collector.py — the real dbi-collector binary end to end: config errors with
file:line:col, SIGTERM drains with nothing lost (loadgen sequence numbers counted in and
out), SIGHUP reload (applied, and refused when the new file is bad), the health endpoint
(200 when running, 503 when a pipeline stalls), dbi-stat against the live process, and a
second collector with the same instance name refused."""
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from collector import BIN, Collector, free_port, wait_until  # noqa: E402

BASE = """
receivers:
  loadgen:
    targets: 4
    series_per_target: 25
    rate: {rate}
    max_points: {max_points}
processors:
  batch:
    send_batch_size: {batch}
    timeout: {timeout}
exporters:
  nop:
extensions:
  health_check:
    endpoint: 127.0.0.1:{{port:health}}
    stall_timeout: 2s
service:
  extensions: [health_check]
  shutdown_timeout: 20s
  pipelines:
    metrics:
      receivers: [loadgen]
      processors: [batch]
      exporters: [nop]
runtime:
  shm: {{name: {{shm}}}}
  rings: {{points: 4096, bytes: 1MiB}}
"""


def base(rate=20000, max_points=0, batch=8192, timeout="200ms"):
    return BASE.format(rate=rate, max_points=max_points, batch=batch, timeout=timeout)


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class ConfigErrors(unittest.TestCase):
    def validate(self, text):
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"dbi-bad-{os.getpid()}.yaml")
        with open(path, "w") as f:
            f.write(text)
        try:
            r = subprocess.run([os.path.join(BIN, "dbi-collector"), "validate", "--config", path],
                               capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(path)
        return r, path

    def test_valid(self):
        r, path = self.validate(base().replace("{shm}", "x").replace("{port:health}", "13133"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("valid", r.stdout)

    def test_errors_name_file_line_col(self):
        bad = base().replace("{shm}", "x").replace("{port:health}", "13133")
        bad = bad.replace("    timeout: 200ms", "    timeout: ten\n    colour: blue")
        bad = bad.replace("exporters: [nop]", "exporters: [nop, debug]")
        r, path = self.validate(bad)
        self.assertEqual(r.returncode, 1)
        err = r.stderr
        self.assertRegex(err, rf"{path}:\d+:\d+: .*invalid duration 'ten'")
        self.assertRegex(err, rf"{path}:\d+:\d+: .*unknown key 'colour'")
        self.assertRegex(err, rf"{path}:\d+:\d+: .*'debug' is not declared")

    def test_run_refuses_bad_config(self):
        path = f"/tmp/dbi-bad-run-{os.getpid()}.yaml"
        with open(path, "w") as f:
            f.write("receivers: {loadgen: {rate: -1}}\n")
        try:
            r = subprocess.run([os.path.join(BIN, "dbi-collector"), "--config", path],
                               capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(path)
        self.assertEqual(r.returncode, 1)
        self.assertIn(path + ":1:", r.stderr)


class Lifecycle(unittest.TestCase):
    def test_sigterm_drains_everything(self):
        # A huge batch held by a long timeout: without a drain nothing would reach the exporter.
        with Collector(base(rate=50000, batch=1000000, timeout="60s")) as c:
            wait_until(lambda: c.counter("receiver:loadgen", "emitted") > 20000, what="points emitted")
            self.assertEqual(c.counter("exporter:nop", "points"), 0)
            rc = c.stop()
        self.assertEqual(rc, 0, c.log())
        stopped = c.log_fields("stopped")
        drained = c.log_fields("drained")
        self.assertIsNotNone(stopped, c.log())
        self.assertIsNotNone(drained, c.log())
        k = int(stopped["points_in"])
        self.assertGreater(k, 20000)
        self.assertEqual(int(stopped["points_out"]), k)
        self.assertEqual(int(stopped["dropped"]), 0)
        self.assertEqual(int(drained["points"]), k)
        # one producer thread: sequence numbers 1..k, each exactly once
        self.assertEqual(int(drained["seq_sum"]), k * (k + 1) // 2)

    def test_exact_count_with_max_points(self):
        with Collector(base(rate=0, max_points=300000)) as c:
            wait_until(lambda: c.counter("exporter:nop", "points") == 300000, timeout=60, what="all points")
            rc = c.stop()
        self.assertEqual(rc, 0)
        self.assertEqual(int(c.log_fields("drained")["seq_sum"]), 300000 * 300001 // 2)

    def test_sighup_reload(self):
        with Collector(base(rate=1000)) as c:
            s0 = c.stat()
            # a bad file is refused and the old config keeps running
            c.write_config("receivers: {loadgen: {targets: nope}}\n")
            c.sighup()
            c.wait_log("reload refused")
            self.assertTrue(c.alive())
            self.assertEqual(http_get(f"http://127.0.0.1:{c.ports['health']}/")[0], 200)
            # a good new config (different pipeline shape) is applied
            shape = base(rate=2000).replace("processors: [batch]", "processors: []")
            shape = shape.replace("processors:\n  batch:\n    send_batch_size: 8192\n    timeout: 200ms\n", "")
            c.write_config(shape)
            c.sighup()
            c.wait_log("reload applied")
            s1 = wait_until(lambda: (lambda s: s if s["generation"] > s0["generation"] else None)(c.stat()),
                            what="a new generation")
            self.assertEqual(s1["pid"], s0["pid"])
            names = [b["id"] for b in s1["stats"]["processors"]]
            self.assertNotIn("processor:batch@metrics#0", names)
            wait_until(lambda: http_get(f"http://127.0.0.1:{c.ports['health']}/")[0] == 200, what="healthy")
            before = c.counter("exporter:nop", "points")
            wait_until(lambda: c.counter("exporter:nop", "points") > before, what="data flowing after reload")
        self.assertEqual(c.returncode, 0)

    def test_health_and_dbi_stat(self):
        with Collector(base()) as c:
            status, body = http_get(f"http://127.0.0.1:{c.ports['health']}/")
            self.assertEqual(status, 200)
            doc = json.loads(body)
            self.assertEqual(doc["status"], "ok")
            self.assertEqual(doc["pipelines"]["metrics"]["status"], "ok")
            s = c.stat(interval="500ms")
            self.assertEqual(s["state"], "running")
            self.assertTrue(s["alive"])
            self.assertEqual(s["pid"], c.proc.pid)
            ring = [r for r in s["rings"] if r["producer"].startswith("rcv:loadgen")][0]
            self.assertEqual(ring["capacity"], 4096)
            self.assertGreater(ring["in_per_s"], 1000)
            rec = {b["id"]: b for b in s["stats"]["receivers"]}["receiver:loadgen"]
            self.assertGreater(rec["counters"]["emitted"]["per_s"], 1000)
            self.assertIn("proc#0", [t["name"] for t in s["threads"]])

    def test_stalled_pipeline_is_unhealthy(self):
        # The debug exporter writes to a pipe nobody reads: once the pipe is full its thread
        # blocks, the pipeline stalls, and the health check must say so.
        cfg = base(rate=20000).replace("exporters:\n  nop:", "exporters:\n  nop:\n  debug:\n    verbosity: normal")
        cfg = cfg.replace("exporters: [nop]", "exporters: [nop, debug]")
        r, w = os.pipe()
        try:
            with Collector(cfg, stdout=w) as c:
                url = f"http://127.0.0.1:{c.ports['health']}/"
                status, body = wait_until(lambda: (lambda x: x if x[0] == 503 else None)(http_get(url)),
                                          timeout=30, what="503 stalled")
                doc = json.loads(body)
                self.assertEqual(doc["status"], "stalled")
                self.assertIn("debug", doc["pipelines"]["metrics"]["reason"])
                # drain the pipe: the exporter resumes and health recovers
                os.set_blocking(r, False)

                def drain():
                    try:
                        while os.read(r, 1 << 20):
                            pass
                    except BlockingIOError:
                        pass
                    return True
                wait_until(lambda: drain() and http_get(url)[0] == 200, timeout=30, what="healthy again")
                # keep reading while it shuts down so the drain can finish
                c.proc.send_signal(15)
                wait_until(lambda: drain() and not c.alive(), timeout=60, what="exit")
                self.assertEqual(c.stop(), 0)
        finally:
            os.close(r)
            os.close(w)

    def test_second_instance_refused(self):
        with Collector(base()) as c:
            cfg2 = c.config_text.replace(f"127.0.0.1:{c.ports['health']}", f"127.0.0.1:{free_port()}")
            path = c.config_path + ".2"
            with open(path, "w") as f:
                f.write(cfg2)
            r = subprocess.run([os.path.join(BIN, "dbi-collector"), "--config", path],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("another dbi-collector", r.stderr)
            self.assertTrue(c.alive())


if __name__ == "__main__":
    unittest.main(verbosity=2)
