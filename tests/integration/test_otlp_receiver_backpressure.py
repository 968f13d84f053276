#!/usr/bin/python3
"""Backpressure: when the pipeline is full the otlp receiver refuses whole requests with
429 + Retry-After (HTTP) and RESOURCE_EXHAUSTED + google.rpc.RetryInfo (gRPC), accepts
again once there is room, and loses nothing it accepted; under the memory limiter's
hard limit it answers 503 / UNAVAILABLE.

The slow exporter is real: the debug exporter writes to a pipe this test does not read
until it has seen the refusals, so the exporter blocks in write(2), its ring fills, the
processor blocks handing over, and the tiny receiver ring (runtime.rings.points: 1024)
fills behind it."""
import base64
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import otlptest as ot  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_otlp_receiver_grpc import METRICS, grpc_calls, install  # noqa: E402


class Backpressure(unittest.TestCase):
    def test_full_pipeline_429_then_recovers_nothing_lost(self):
        install()
        cfg = ot.config(extra="    retry_after: 2s\n    backpressure_wait: 20ms",
                        runtime="  rings: {{points: 1024, bytes: 65536}}")
        c = ot.Collector(cfg, stdout=subprocess.PIPE)
        self.addCleanup(c.proc.stdout.close)
        try:
            accepted = refused = 0
            first_refusal = None
            for i in range(400):
                st, h, body = ot.request(c.http_port, "/v1/metrics", ot.gauge_request(200, attr_base=i * 200))
                if st == 200:
                    self.assertEqual(ot.partial_success(body), (0, ""))
                    accepted += 200
                    continue
                self.assertEqual(st, 429, body)
                self.assertEqual(h.get("retry-after"), "2")
                code, msg = ot.rpc_status(body)
                self.assertEqual(code, 8)
                self.assertIn("pipeline full", msg)
                refused += 1
                first_refusal = first_refusal or i
                if refused >= 3:
                    break
            self.assertGreaterEqual(refused, 3, "the pipeline never filled up")
            r = grpc_calls(c.grpc_port, [{"method": METRICS, "body": ot.gauge_request(10, attr_base=10 ** 6)}])
            self.assertEqual(r[0]["code"], 8, r)
            status = ot.decode(base64.b64decode(r[0]["status_details_b64"]))
            anyf = ot.decode(status[3][0])
            self.assertEqual(anyf[1][0], b"type.googleapis.com/google.rpc.RetryInfo")
            delay = ot.decode(ot.decode(anyf[2][0])[1][0])
            self.assertEqual(delay[1][0], 2)  # seconds

            # let the exporter write again; the receiver must accept again
            drained = []
            t = threading.Thread(target=lambda: drained.append(c.proc.stdout.read()))
            t.start()
            ok_again = False
            deadline = time.time() + 30
            j = 0
            while time.time() < deadline and not ok_again:
                st, _, _ = ot.request(c.http_port, "/v1/metrics", ot.gauge_request(50, attr_base=2 * 10 ** 6 + j))
                j += 50
                if st == 200:
                    accepted += 50
                    ok_again = True
                else:
                    self.assertEqual(st, 429)
                    time.sleep(0.1)
            self.assertTrue(ok_again)
            s = c.stats()
            self.assertEqual(s["accepted.points"], accepted)
            self.assertGreaterEqual(s["requests.http.refused_full"], 3)
            self.assertEqual(s["requests.grpc.refused_full"], 1)
            self.assertGreaterEqual(s["refused.points"], 3 * 200)
            self.assertEqual(c.stop(), 0, c.stderr())
            t.join()
            printed = sum(1 for line in drained[0].decode().splitlines() if line.startswith("test.gauge{"))
            self.assertEqual(printed, accepted, "every accepted point reaches the exporter")
        finally:
            c.kill()

    def test_memory_limit_503(self):
        install()
        cfg = ot.config().replace("exporters:\n", "processors:\n  memory_limiter: {{check_interval: 50ms, limit_mib: 1}}\nexporters:\n", 1)
        cfg = cfg.replace("metrics: {{receivers: [otlp], exporters", "metrics: {{receivers: [otlp], processors: [memory_limiter], exporters")
        with ot.Collector(cfg) as c:
            time.sleep(0.5)
            st, h, body = ot.request(c.http_port, "/v1/metrics", ot.gauge_request(1))
            self.assertEqual(st, 503)
            self.assertEqual(h.get("retry-after"), "1")
            self.assertEqual(ot.rpc_status(body)[0], 14)
            r = grpc_calls(c.grpc_port, [{"method": METRICS, "body": ot.gauge_request(1)}])
            self.assertEqual(r[0]["code"], 14, r)
            self.assertIn("memory limit", r[0]["details"])
            self.assertEqual(c.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
