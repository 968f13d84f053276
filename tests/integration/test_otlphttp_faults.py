#!/usr/bin/python3
"""test_otlphttp_faults.py - the real dbi-collector's otlphttp exporter against an endpoint
that misbehaves on purpose (tests/support/otlp_sink.py): a 10-second 503 window loses
nothing (points counted in and out, circuit breaker opens and closes); 429 and 503 with
Retry-After (seconds and HTTP date) hold sending back at least that long; 413 splits
requests until they fit and drops (counted) a single point that never fits; 401 is not
retried, counted as dropped.unauthorized and logged once with the server's message and
without the api key. Timing is checked loosely, never against tight bounds.
"""

import email.utils
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.dont_write_bytecode = True

from collector import Collector  # noqa: E402
from otlp_sink import Sink, status_pb  # noqa: E402
from otlphttp_testlib import counter, counters, eventually, loadgen_key  # noqa: E402

SECRET = "secret-api-key-do-not-log-42"
SENDER = "exporter:otlphttp:sender"
MAIN = "exporter:otlphttp"


def config(sink_url, points, rate=20000, batch=500, targets=4, series=25, exporter="",
           retry="{initial_interval: 200ms, max_interval: 1s, max_elapsed_time: 120s}"):
    return """
receivers:
  loadgen: {targets: %d, series_per_target: %d, rate: %d, max_points: %d}
processors:
  batch: {send_batch_size: %d, timeout: 100ms}
exporters:
  otlphttp:
    endpoint: %s
    headers: {api-key: %s}
    retry_on_failure: %s
    circuit_breaker: {failure_threshold: 3, open_duration: 500ms, max_open_duration: 2s}
%s
service:
  pipelines:
    metrics: {receivers: [loadgen], processors: [batch], exporters: [otlphttp]}
runtime:
  shm: {name: "{shm}"}
""" % (targets, series, rate, points, batch, sink_url, SECRET, retry, exporter)


def unique_points(test, sink, expected):
    pts = sink.points()
    keys = {loadgen_key(p) for p in pts}
    test.assertEqual(len(keys), len(pts))
    test.assertEqual(len(pts), expected)


class Faults(unittest.TestCase):
    def test_503_window_nothing_lost(self):
        sink = Sink()
        sink.fail(503, seconds=10)
        # 2000 points/s for 10 s: everything produced during the window waits in the queue
        c = Collector(config(sink.url, points=20000, rate=2000))
        try:
            self.assertTrue(eventually(lambda: counter(c, SENDER, "circuit.opens") >= 1, timeout=30),
                            "circuit never opened:\n" + c.log()[-2000:])
            ok = eventually(lambda: len(sink.points()) >= 20000, timeout=90)
            self.assertTrue(ok, "%d points arrived\n%s" % (len(sink.points()), c.log()[-3000:]))
            time.sleep(1)  # anything sent twice would arrive now
            s = counters(c, SENDER)
            m = counters(c, MAIN)
            self.assertEqual(c.stop(), 0)
        finally:
            c.stop()
            sink.close()
        unique_points(self, sink, 20000)
        self.assertIn(503, sink.statuses())
        self.assertEqual(s["points.sent"], 20000)
        self.assertGreaterEqual(s["failures.5xx"], 3)
        self.assertGreater(s["retries"], 0)
        self.assertEqual(s["circuit.state"], 0)
        self.assertEqual(sum(v for k, v in s.items() if k.startswith("dropped.")), 0)
        self.assertEqual(sum(v for k, v in m.items() if k.startswith("dropped.")), 0)
        # the breaker kept the failing endpoint from being hammered: with 10 consumers
        # retrying every 0.2-1 s for 10 s there would be well over 100 failed requests
        fails = sink.statuses().count(503)
        self.assertLess(fails, 80, "circuit breaker did not hold back: %d failed requests" % fails)

    def retry_after_gap(self, status, retry_after, min_gap):
        sink = Sink()
        sink.fail(status, count=1, retry_after=retry_after)
        # one batch, then nothing: the only other request is the retry
        c = Collector(config(sink.url, points=500, batch=500,
                             retry="{initial_interval: 50ms, max_interval: 100ms}"))
        try:
            self.assertTrue(eventually(lambda: len(sink.points()) >= 500, timeout=60), c.log()[-2000:])
            throttled = counter(c, SENDER, "throttled")
            c.stop()
        finally:
            c.stop()
            sink.close()
        reqs = sink.requests
        self.assertEqual(reqs[0].status, status)
        self.assertEqual(reqs[1].status, 200)
        gap = reqs[1].time - reqs[0].time
        # the backoff alone would retry within ~0.1 s; the server asked for more
        self.assertGreaterEqual(gap, min_gap, "retried after %.2f s" % gap)
        self.assertEqual(throttled, 1)
        unique_points(self, sink, 500)

    def test_429_retry_after_seconds(self):
        self.retry_after_gap(429, "2", 1.8)

    def test_503_retry_after_http_date(self):
        when = email.utils.formatdate(time.time() + 3, usegmt=True)
        self.retry_after_gap(503, when, 1.0)  # HTTP dates have 1 s resolution

    def test_413_splits(self):
        sink = Sink()
        sink.max_body = 2500  # a batch of 1000 points is ~7 kB gzipped
        c = Collector(config(sink.url, points=5000, batch=1000, targets=10, series=100))
        try:
            self.assertTrue(eventually(lambda: len(sink.points()) >= 5000, timeout=60), c.log()[-2000:])
            s = counters(c, SENDER)
            c.stop()
        finally:
            c.stop()
            sink.close()
        unique_points(self, sink, 5000)
        self.assertIn(413, sink.statuses())
        self.assertGreater(s["splits"], 0)
        self.assertEqual(s["dropped.too_large"], 0)
        self.assertTrue(all(r.wire_len <= 2500 for r in sink.accepted()))

    def test_413_splits_json(self):
        # the same with OTLP/JSON bodies: a queued JSON request is cut as protobuf and re-encoded
        sink = Sink()
        sink.max_body = 3000
        c = Collector(config(sink.url, points=3000, batch=1000, targets=10, series=100,
                             exporter="    encoding: json"))
        try:
            self.assertTrue(eventually(lambda: len(sink.points()) >= 3000, timeout=60), c.log()[-2000:])
            s = counters(c, SENDER)
            c.stop()
        finally:
            c.stop()
            sink.close()
        unique_points(self, sink, 3000)
        self.assertGreater(s["splits"], 0)
        self.assertTrue(all(r.headers.get("content-type") == "application/json" for r in sink.accepted()))

    def test_413_single_point_dropped(self):
        sink = Sink()
        sink.max_body = 10  # nothing fits, not even one point
        c = Collector(config(sink.url, points=20, batch=20))
        try:
            self.assertTrue(eventually(lambda: counter(c, SENDER, "dropped.too_large") >= 20, timeout=60),
                            c.log()[-2000:])
            time.sleep(0.5)
            s = counters(c, SENDER)
            self.assertEqual(c.stop(), 0)
            log = c.log()
        finally:
            c.stop()
            sink.close()
        self.assertEqual(s["dropped.too_large"], 20)
        self.assertEqual(len(sink.points()), 0)
        # 1 + 2 + 4 + 8 + 16 + (4 more to reach single points of 20): every cut was tried once
        self.assertEqual(sink.statuses().count(413), s["requests"])
        self.assertIn("single item is too large", log)

    def test_401_not_retried(self):
        sink = Sink()
        sink.fail(401, body=status_pb("invalid license key for account 1234"))
        c = Collector(config(sink.url, points=5000, batch=1000))
        try:
            self.assertTrue(eventually(lambda: counter(c, SENDER, "dropped.unauthorized") >= 5000, timeout=60),
                            c.log()[-2000:])
            time.sleep(1.5)  # a retry would show up now
            s = counters(c, SENDER)
            self.assertEqual(c.stop(), 0)
            log = c.log()
        finally:
            c.stop()
            sink.close()
        self.assertEqual(s["dropped.unauthorized"], 5000)
        self.assertEqual(s["retries"], 0)
        self.assertEqual(len(sink.requests), s["requests"])
        self.assertEqual(len(sink.requests), 5)  # one per batch, none twice
        self.assertEqual(s["circuit.opens"], 0)  # a 401 is an answer, not a dead endpoint
        self.assertTrue(all(r.headers.get("api-key") == SECRET for r in sink.requests))
        self.assertIn("status=401", log)
        self.assertIn("invalid license key for account 1234", log)
        self.assertEqual(log.count("status=401"), 1)  # one clear line, not one per request
        self.assertNotIn(SECRET, log)

    def test_connection_refused_then_up(self):
        sink = Sink()
        url = sink.url
        sink.down()
        c = Collector(config(url, points=3000, rate=3000, batch=500))
        try:
            self.assertTrue(eventually(lambda: counter(c, SENDER, "failures.connection") >= 3, timeout=30))
            sink.up()
            self.assertTrue(eventually(lambda: len(sink.points()) >= 3000, timeout=60), c.log()[-2000:])
            s = counters(c, SENDER)
            c.stop()
        finally:
            c.stop()
            sink.close()
        unique_points(self, sink, 3000)
        self.assertEqual(s["points.sent"], 3000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
