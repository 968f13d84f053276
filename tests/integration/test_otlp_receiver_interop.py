#!/usr/bin/python3
"""Interop: the official OpenTelemetry JS SDK (tests/interop/js/send.js, pinned versions)
sends a counter, an up-down counter, a histogram, a gauge, a log record and a span over
OTLP/HTTP protobuf, OTLP/HTTP JSON and OTLP/gRPC (with a bearer token) to the real
dbi-collector, whose debug exporter (detailed) shows what arrived: values, attributes,
resources, log bodies and span contents must all be intact."""
import json
import os
import re
import subprocess
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import otlptest as ot  # noqa: E402

JS = os.path.join(ot.SRC, "tests", "interop", "js")
PROTOCOLS = ("http-proto", "http-json", "grpc")


def blocks(text):
    """Debug-exporter detailed output → list of (first line, following indented lines)."""
    out = []
    for line in text.splitlines():
        if line.startswith("  ") and out:
            out[-1][1].append(line.strip())
        else:
            out.append((line, []))
    return out


class JsSdkInterop(unittest.TestCase):
    def test_js_sdk_all_protocols(self):
        subprocess.run([os.path.join(JS, "install.sh")], check=True, timeout=600)
        run = uuid.uuid4().hex[:12]
        cfg = ot.config(extra="    auth: {{bearer_token: interop-token}}", verbosity="detailed")
        with ot.Collector(cfg) as c:
            for proto in PROTOCOLS:
                p = subprocess.run(
                    ["node", os.path.join(JS, "send.js"), "--protocol", proto, "--http-port", str(c.http_port),
                     "--grpc-port", str(c.grpc_port), "--run-id", run, "--token", "interop-token"],
                    capture_output=True, timeout=120,
                )
                self.assertEqual(p.returncode, 0, "%s: %s %s" % (proto, p.stdout, p.stderr))
                res = json.loads(p.stdout.decode().strip().splitlines()[-1])
                self.assertEqual(res["results"], {"metrics": 0, "logs": 0, "traces": 0}, proto)
            self.assertEqual(c.stop(), 0, c.stderr())
            text = c.stdout()
        bl = blocks(text)
        for proto in PROTOCOLS:
            res = 'resource: {host.cores=2, service.name="dbi-interop", test.protocol="%s", test.run="%s"}' % (proto, run)
            with self.subTest(protocol=proto):
                def has_point(head, attrs):
                    return any(h == head and "attributes: {%s}" % attrs in body and res in body for h, body in bl)

                self.assertTrue(has_point("metric interop.requests (sum(monotonic), unit {request}) value 5",
                                          'code=200, route="/a"'), proto)
                self.assertTrue(has_point("metric interop.requests (sum(monotonic), unit {request}) value 3",
                                          'code=500, retried=true, route="/b"'), proto)
                self.assertTrue(has_point("metric interop.queue (sum, unit {item}) value 6", 'queue="main"'), proto)
                self.assertTrue(has_point("metric interop.temperature (gauge, unit Cel) value 21.5",
                                          'floor=3, room="lab"'), proto)
                hist = [h for h, body in bl if h.startswith('interop.latency{route="/a"} histogram') and res in body]
                self.assertTrue(hist, proto)
                self.assertIn("count=3 sum=170 buckets=[<=0:0 <=5:1 <=10:0 <=25:1", hist[0])
                self.assertIn("<=250:1", hist[0])
                logs = [b for h, b in bl if h.startswith("log at ") and res[len("resource: "):] in h]
                self.assertEqual(len(logs), 1, proto)
                lj = json.loads(logs[0][0][len("otlp: "):])
                self.assertEqual(lj["body"], {"stringValue": "interop log " + run})
                self.assertEqual(lj["severityNumber"], 13)
                self.assertEqual(lj["severityText"], "WARN")
                self.assertIn({"key": "n", "value": {"intValue": "7"}}, lj["attributes"])
                self.assertIn({"key": "log.kind", "value": {"stringValue": "test"}}, lj["attributes"])
                spans = [b for h, b in bl if h.startswith("span at ") and res[len("resource: "):] in h]
                self.assertEqual(len(spans), 1, proto)
                sj = json.loads(spans[0][0][len("otlp: "):])
                self.assertEqual(sj["name"], "interop-span")
                self.assertTrue(re.fullmatch("[0-9a-f]{32}", sj["traceId"]))
                self.assertIn({"key": "span.attr", "value": {"stringValue": "x"}}, sj["attributes"])
                self.assertEqual(sj["events"][0]["name"], "halfway")


if __name__ == "__main__":
    unittest.main(verbosity=2)
