#!/usr/bin/python3
"""OTLP/gRPC receiver, raw calls through @grpc/grpc-js (tests/interop/js/grpc_raw.js):
status codes and messages for good, partial, malformed, oversized, gzip-compressed,
unknown-method and unauthenticated calls, and a good client unaffected by a bad one."""
import base64
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import otlptest as ot  # noqa: E402

JS = os.path.join(ot.SRC, "tests", "interop", "js")
METRICS = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def install():
    subprocess.run([os.path.join(JS, "install.sh")], check=True, timeout=600)


def grpc_calls(port, calls):
    for c in calls:
        c["body_b64"] = base64.b64encode(c.pop("body", b"")).decode()
    out = subprocess.run(
        ["node", os.path.join(JS, "grpc_raw.js"), str(port)],
        input=json.dumps(calls).encode(),
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout
    return json.loads(out)


def log_request(body_text, trace_id=b"\x01" * 16):
    lr = ot.f_fixed64(1, 1700000000000000000) + ot.f_bytes(5, ot.any_value(body_text)) + ot.f_bytes(9, trace_id)
    sl = ot.f_bytes(2, lr)
    rl = ot.f_bytes(1, ot.attrs(1, {"service.name": "grpc-test"})) + ot.f_bytes(2, sl)
    return ot.f_bytes(1, rl)


def span_request(name, trace_id=b"\x02" * 16, span_id=b"\x03" * 8):
    sp = ot.f_bytes(1, trace_id) + ot.f_bytes(2, span_id) + ot.f_bytes(5, name) + ot.f_fixed64(7, 1) + ot.f_fixed64(8, 2)
    ss = ot.f_bytes(2, sp)
    rs = ot.f_bytes(1, ot.attrs(1, {"service.name": "grpc-test"})) + ot.f_bytes(2, ss)
    return ot.f_bytes(1, rs)


class GrpcReceiver(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        install()

    def test_calls(self):
        cfg = ot.config(extra="    auth: {{bearer_token: tok}}", verbosity="detailed")
        with ot.Collector(cfg) as c:
            calls = [
                {"method": METRICS, "body": ot.gauge_request(3), "token": "tok"},
                {"method": METRICS, "body": ot.gauge_request(3, attr_base=10), "token": "tok", "gzip": True},
                {"method": LOGS, "body": log_request("hello over grpc"), "token": "tok"},
                {"method": TRACES, "body": span_request("grpc-span"), "token": "tok"},
                {"method": TRACES, "body": span_request("short-id", trace_id=b"\x02" * 3), "token": "tok"},
                {"method": METRICS, "body": b"\x0a\xff\xff\xff\xff\x0f junk", "token": "tok"},
                {"method": METRICS, "body": ot.gauge_request(1), "token": "wrong"},
                {"method": METRICS, "body": ot.gauge_request(1)},
                {"method": "/opentelemetry.proto.collector.profiles.v1.ProfilesService/Export", "token": "tok"},
                {"method": METRICS, "body": b"\x00" * (5 * 1024 * 1024), "token": "tok"},
                {"method": METRICS, "body": ot.gauge_request(2, attr_base=20), "token": "tok"},
            ]
            r = grpc_calls(c.grpc_port, calls)
            self.assertEqual([x["code"] for x in r], [0, 0, 0, 0, 0, 3, 16, 16, 12, 8, 0], r)
            self.assertEqual(ot.partial_success(base64.b64decode(r[0]["response_b64"])), (0, ""))
            rejected, msg = ot.partial_success(base64.b64decode(r[4]["response_b64"]))
            self.assertEqual(rejected, 1)
            self.assertIn("trace id of 3", msg)
            self.assertIn("cannot decode the metrics request as protobuf", r[5]["details"])
            self.assertIn("unknown method", r[8]["details"])
            self.assertIn("max_recv_msg_size_mib", r[9]["details"])
            self.assertEqual(c.wait_stat("accepted.points", lambda v: v >= 8), 8)
            s = c.stats()
            self.assertEqual(s["accepted.logs"], 1)
            self.assertEqual(s["accepted.spans"], 1)
            self.assertEqual(s["requests.grpc.ok"], 5)
            self.assertEqual(s["requests.grpc.partial"], 1)
            self.assertEqual(s["requests.grpc.invalid_argument"], 1)
            self.assertEqual(s["requests.grpc.unauthenticated"], 2)
            self.assertEqual(s["requests.grpc.unimplemented"], 1)
            self.assertEqual(s["requests.grpc.too_large"], 1)
            self.assertEqual(c.stop(), 0)
            out = c.stdout()
            self.assertIn('"body":{"stringValue":"hello over grpc"}', out)
            self.assertIn('"name":"grpc-span"', out)

    def test_gzip_bomb_over_grpc(self):
        # grpc-js gzips 6 MiB of zeros into a few KiB: the server must stop inflating
        # at the limit (or at the ratio guard), answer RESOURCE_EXHAUSTED, and go on
        with ot.Collector(ot.config()) as c:
            r = grpc_calls(
                c.grpc_port,
                [
                    {"method": METRICS, "body": b"\x00" * (6 * 1024 * 1024), "gzip": True},
                    {"method": METRICS, "body": ot.gauge_request(1)},
                ],
            )
            self.assertEqual([x["code"] for x in r], [8, 0], r)
            self.assertIn("decompress", r[0]["details"])
            self.assertEqual(c.wait_stat("decompression_refused", lambda v: v >= 1), 1)
            self.assertEqual(c.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
