#!/usr/bin/python3
"""OTLP/HTTP receiver, raw protocol: status codes, bodies and counters of the real
dbi-collector for good, partial, malformed, oversized, compressed, bomb-shaped and
unauthenticated requests; a bad client does not disturb a good one."""
import gzip
import json
import os
import socket
import sys
import threading
import time
import unittest
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import otlptest as ot  # noqa: E402

PB = "application/x-protobuf"


class HttpReceiver(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = ot.Collector(ot.config())

    @classmethod
    def tearDownClass(cls):
        rc = cls.c.stop()
        err = cls.c.stderr()
        cls.c.kill()  # removes what is left
        assert rc == 0, "collector exit %s\n%s" % (rc, err)

    def post(self, body, path="/v1/metrics", ctype=PB, **kw):
        return ot.request(self.c.http_port, path, body, ctype=ctype, **kw)

    def test_protobuf_ok(self):
        before = self.c.stats()["accepted.points"]
        st, h, body = self.post(ot.gauge_request(3, attr_base=100))
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], PB)
        self.assertEqual(ot.partial_success(body), (0, ""))
        self.assertGreaterEqual(self.c.wait_stat("accepted.points", lambda v: v >= before + 3), before + 3)

    def test_json_ok_and_partial_success(self):
        doc = {
            "resourceMetrics": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]},
                    "scopeMetrics": [
                        {
                            "metrics": [
                                {"name": "j.ok", "gauge": {"dataPoints": [{"asDouble": 2.5, "timeUnixNano": "1"}]}},
                                {"name": "j.novalue", "gauge": {"dataPoints": [{"timeUnixNano": "1"}]}},
                            ]
                        }
                    ],
                }
            ]
        }
        st, h, body = self.post(json.dumps(doc).encode(), ctype="application/json; charset=utf-8")
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "application/json")
        resp = json.loads(body)
        self.assertEqual(resp["partialSuccess"]["rejectedDataPoints"], "1")
        self.assertIn("no value", resp["partialSuccess"]["errorMessage"])
        self.assertGreaterEqual(self.c.wait_stat("dropped.invalid", lambda v: v >= 1), 1)

    def test_protobuf_partial_success(self):
        t = 1700000000000000000
        req = ot.metrics_request(
            [
                ot.metric("p.ok", [ot.number_point(7, t, {"k": "v"})], kind="sum", monotonic=True),
                ot.metric("p.bad", [ot.number_point(None, t)]),
                ot.metric("p.hist", [ot.hist_point(t, 3, 6.0, [1.0, 2.0], [1, 1])], kind="histogram"),
            ]
        )
        st, _, body = self.post(req)
        self.assertEqual(st, 200)
        rejected, msg = ot.partial_success(body)
        self.assertEqual(rejected, 2)
        self.assertIn("2 of 3 data points rejected: 2 invalid", msg)
        self.assertIn("no value", msg)

    def test_bad_protobuf_400_and_good_client_unaffected(self):
        good = []

        def good_client():
            for i in range(30):
                st, _, _ = self.post(ot.gauge_request(2, attr_base=1000 + 2 * i))
                good.append(st)

        t = threading.Thread(target=good_client)
        t.start()
        for _ in range(30):
            st, h, body = self.post(b"\x0a\xff\xff\xff\xff\x0f garbage")
            self.assertEqual(st, 400)
            code, msg = ot.rpc_status(body)
            self.assertEqual(code, 3)
            self.assertIn("cannot decode the metrics request as protobuf", msg)
        st, h, body = self.post(b'{"resourceMetrics": [{"scopeMetrics": 5}]}', ctype="application/json")
        self.assertEqual(st, 400)
        err = json.loads(body)
        self.assertEqual(err["code"], 3)
        self.assertIn("scopeMetrics", err["message"])
        t.join()
        self.assertEqual(good, [200] * 30)
        self.assertGreaterEqual(self.c.wait_stat("requests.http.bad_request", lambda v: v >= 31), 31)

    def test_routing_and_media_type_errors(self):
        self.assertEqual(self.post(b"", path="/v1/nothing")[0], 404)
        self.assertEqual(ot.request(self.c.http_port, "/v1/metrics", method="GET", ctype=None)[0], 405)
        st, _, body = self.post(b"x", ctype="text/plain")
        self.assertEqual(st, 415)
        self.assertIn("Content-Type", ot.rpc_status(body)[1])
        st, _, body = self.post(b"x", headers={"Content-Encoding": "br"})
        self.assertEqual(st, 415)
        self.assertIn("Content-Encoding", ot.rpc_status(body)[1])

    def raw(self, head, chunks):
        """Send head, then chunks until the server stops taking them; return its answer."""
        s = socket.create_connection(("127.0.0.1", self.c.http_port), timeout=30)
        s.sendall(head)
        try:
            for ch in chunks:
                s.sendall(ch)
        except OSError:
            pass  # the server answered and closed before the body ended: expected
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                more = s.recv(65536)
                if not more:
                    break
                data += more
        except OSError:
            pass
        s.close()
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None

    def test_oversize_413(self):
        # Content-Length says too much: answered from the headers, body never read
        st = self.raw(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                      b"Content-Length: 4194305\r\n\r\n", [])
        self.assertEqual(st, 413)
        # chunked: no Content-Length, refused once the body passes the limit
        chunk = b"10000\r\n" + b"\x00" * 65536 + b"\r\n"
        st = self.raw(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n", [chunk] * 80 + [b"0\r\n\r\n"])
        self.assertEqual(st, 413)
        self.assertGreaterEqual(self.c.wait_stat("requests.http.too_large", lambda v: v >= 2), 2)
        self.assertEqual(self.post(ot.gauge_request(1, attr_base=7000))[0], 200)

    def test_gzip_and_deflate(self):
        for enc, comp in (("gzip", gzip.compress), ("deflate", zlib.compress)):
            st, _, body = self.post(comp(ot.gauge_request(4, attr_base=5000)), headers={"Content-Encoding": enc})
            self.assertEqual(st, 200, enc)
            self.assertEqual(ot.partial_success(body), (0, ""))
        st, _, body = self.post(b"\x1f\x8b\x08\x00garbage", headers={"Content-Encoding": "gzip"})
        self.assertEqual(st, 400)
        self.assertIn("corrupt", ot.rpc_status(body)[1])

    def test_decompression_bomb(self):
        before = self.c.stats()["decompression_refused"]
        bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024))  # ~64 KiB on the wire
        self.assertLess(len(bomb), 200000)
        st, _, body = self.post(bomb, headers={"Content-Encoding": "gzip"})
        self.assertEqual(st, 413)
        self.assertIn("decompressed body larger", ot.rpc_status(body)[1])
        # under the size limit but expanding ~1000x: the ratio guard
        st, _, body = self.post(gzip.compress(b"\x00" * (3 * 1024 * 1024)), headers={"Content-Encoding": "gzip"})
        self.assertEqual(st, 413)
        self.assertIn("decompression bomb", ot.rpc_status(body)[1])
        self.assertEqual(self.c.wait_stat("decompression_refused", lambda v: v >= before + 2), before + 2)
        self.assertEqual(self.post(ot.gauge_request(1, attr_base=9000))[0], 200)


class HttpAuthAndLimits(unittest.TestCase):
    def test_bearer_token_and_series_limit(self):
        cfg = ot.config(extra="    auth: {{bearer_token: s3cret}}", runtime="  max_series: 10")
        with ot.Collector(cfg) as c:
            req = ot.gauge_request(1, attr_base=1)
            st, h, body = ot.request(c.http_port, "/v1/metrics", req)
            self.assertEqual(st, 401)
            self.assertEqual(h.get("www-authenticate"), "Bearer")
            self.assertEqual(ot.rpc_status(body)[0], 16)
            self.assertEqual(ot.request(c.http_port, "/v1/metrics", req, headers={"Authorization": "Bearer nope"})[0], 401)
            auth = {"Authorization": "Bearer s3cret"}
            self.assertEqual(ot.request(c.http_port, "/v1/metrics", req, headers=auth)[0], 200)
            # 25 new series, 9 slots left: 16 refused, reported and counted
            st, _, body = ot.request(c.http_port, "/v1/metrics", ot.gauge_request(25, attr_base=100), headers=auth)
            self.assertEqual(st, 200)
            rejected, msg = ot.partial_success(body)
            self.assertEqual(rejected, 16)
            self.assertIn("series limit", msg)
            self.assertEqual(c.wait_stat("dropped.series_limit", lambda v: v >= 16), 16)
            # known series still flow
            st, _, body = ot.request(c.http_port, "/v1/metrics", ot.gauge_request(9, attr_base=100), headers=auth)
            self.assertEqual((st, ot.partial_success(body)[0]), (200, 0))
            self.assertNotIn("s3cret", c.stderr())
            self.assertEqual(c.stop(), 0)

    def test_connection_limits(self):
        cfg = ot.config(extra="    protocols: {{grpc: {{endpoint: 127.0.0.1:{grpc}, max_connections: 2, "
                              "max_connection_idle: 1s}}, http: {{endpoint: 127.0.0.1:{http}, max_connections: 2}}}}")
        cfg = cfg.replace("    protocols: {{grpc: {{endpoint: 127.0.0.1:{grpc}}}, http: {{endpoint: 127.0.0.1:{http}}}}}\n", "", 1)
        with ot.Collector(cfg) as c:
            for port in (c.http_port, c.grpc_port):
                idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
                time.sleep(0.3)
                extra = socket.create_connection(("127.0.0.1", port), timeout=5)
                if port == c.http_port:
                    extra.sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                try:
                    got = extra.recv(100)
                except OSError:
                    got = b""
                self.assertEqual(got, b"", "connection over the limit must be closed")
                extra.close()
                for s in idle:
                    s.close()
                time.sleep(0.3)
            self.assertEqual(ot.request(c.http_port, "/v1/metrics", ot.gauge_request(1))[0], 200)
            # an idle gRPC connection is told GOAWAY (frame type 7) and closed
            s = socket.create_connection(("127.0.0.1", c.grpc_port), timeout=10)
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            t0, data = time.time(), b""
            while True:
                more = s.recv(4096)
                if not more:
                    break
                data += more
            s.close()
            self.assertGreaterEqual(time.time() - t0, 0.9)
            frames, i = [], 0
            while i + 9 <= len(data):
                n = int.from_bytes(data[i : i + 3], "big")
                frames.append(data[i + 3])
                i += 9 + n
            self.assertIn(7, frames)
            self.assertEqual(c.stop(), 0)

    def test_signal_without_pipeline_is_404(self):
        cfg = ot.config().replace("    logs: {{receivers: [otlp], exporters: [debug]}}\n", "")
        with ot.Collector(cfg) as c:
            self.assertEqual(ot.request(c.http_port, "/v1/logs", b"")[0], 404)
            self.assertEqual(ot.request(c.http_port, "/v1/traces", b"")[0], 200)
            self.assertEqual(c.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
