#!/usr/bin/python3
"""test_otlphttp_persistent.py - the otlphttp exporter's persistent queue with the real
dbi-collector: the endpoint accepts for a while, then goes down (connection refused);
the collector keeps queueing to disk and is killed with SIGKILL; the endpoint comes back
and a new collector on the same queue directory delivers everything that was queued --
and nothing the endpoint had already acknowledged is sent a second time. A second case
stops the collector with SIGTERM while the endpoint is down: the queue survives a clean
restart just the same. A third shows the disk bound: over max_bytes the oldest requests
are dropped and counted, and what remains is delivered.
"""

import os
import shutil
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.dont_write_bytecode = True

from collector import Collector  # noqa: E402
from otlp_sink import Sink  # noqa: E402
from otlphttp_testlib import counter, counters, eventually, loadgen_key  # noqa: E402

SENDER = "exporter:otlphttp:sender"
MAIN = "exporter:otlphttp"


def config(sink_url, qdir, points, rate, batch=500, max_bytes="1GiB", compression="gzip"):
    return """
receivers:
  loadgen: {targets: 5, series_per_target: 40, rate: %d, max_points: %d}
processors:
  batch: {send_batch_size: %d, timeout: 100ms}
exporters:
  otlphttp:
    endpoint: %s
    compression: %s
    retry_on_failure: {initial_interval: 200ms, max_interval: 1s, max_elapsed_time: 0}
    circuit_breaker: {failure_threshold: 3, open_duration: 500ms, max_open_duration: 1s}
    sending_queue: {storage: file, directory: %s, max_bytes: %s, num_consumers: 4}
service:
  pipelines:
    metrics: {receivers: [loadgen], processors: [batch], exporters: [otlphttp]}
runtime:
  shm: {name: "{shm}"}
""" % (rate, points, batch, sink_url, compression, qdir, max_bytes)


def point_key(p):
    # loadgen restarts its values at 1 in a new process: the timestamp tells the runs apart
    return loadgen_key(p, with_time=True)


class Persistent(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dbi-pq-")
        self.qdir = os.path.join(self.tmp, "queue")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def outage_then_restart(self, tag, how):
        sink = Sink()
        url = sink.url
        total = 12000
        # 2000 points/s for 6 s; the endpoint goes away after the first ~3000 points
        a = Collector(config(url, self.qdir, total, 2000))
        b = None
        try:
            self.assertTrue(eventually(lambda: len(sink.points()) >= 3000, timeout=60), a.log()[-2000:])
            sink.down()
            acked_before = {point_key(p) for p in sink.points()}
            self.assertTrue(eventually(lambda: counter(a, MAIN, "items") >= total, timeout=60),
                            "loadgen did not finish:\n" + a.log()[-2000:])
            self.assertTrue(eventually(lambda: counter(a, SENDER, "failures.connection") >= 3, timeout=30))
            time.sleep(1.0)  # every queued request is on disk (written before consume returns)
            st = counters(a, MAIN)
            self.assertEqual(st["dropped.queue_io"], 0)
            self.assertGreater(st["queue.disk_bytes"], 0)
            if how == "kill":
                a.kill()
            else:
                self.assertEqual(a.stop(), 0)
            self.assertTrue(any(f.endswith(".seg") for f in os.listdir(self.qdir)))
            received_while_down = len(sink.points())

            sink.up()  # same port
            # a new process; its own loadgen adds just one point of its own
            b = Collector(config(url, self.qdir, 1, 100))
            self.assertTrue(eventually(lambda: len(sink.points()) >= total + 1, timeout=90),
                            "%d of %d\n%s" % (len(sink.points()), total + 1, b.log()[-3000:]))
            time.sleep(1.5)  # a duplicate would arrive now
            sb = counters(b, MAIN)
            self.assertEqual(b.stop(), 0)
            blog = b.log()
        finally:
            a.stop()
            if b:
                b.stop()
            sink.close()
        pts = sink.points()
        keys = [point_key(p) for p in pts]
        self.assertEqual(len(keys), len(set(keys)), "a point was delivered twice")
        self.assertEqual(len(pts), total + 1)
        self.assertEqual(received_while_down, len(acked_before))
        # every series got every value of run A exactly once
        run_a = {}
        for p in pts:
            run_a.setdefault((p["resource"]["service.instance.id"], p["attrs"]["series"]), []).append(p["value"])
        for vals in run_a.values():
            vals.sort()
        self.assertEqual(sum(len(v) for v in run_a.values()), total + 1)
        self.assertIn("persistent queue reopened", blog)
        self.assertEqual(sb["queue.corrupt"], 0)
        return sb

    def test_kill9_while_down(self):
        self.outage_then_restart("k9", "kill")

    def test_sigterm_while_down(self):
        self.outage_then_restart("term", "term")

    def test_disk_bound_drops_oldest(self):
        sink = Sink()
        url = sink.url
        sink.down()
        # 20 uncompressed requests of ~90 kB: a 1 MiB cap must drop the oldest
        a = Collector(config(url, self.qdir, 40000, 10000, batch=2000, max_bytes="1MiB",
                             compression="none"))
        try:
            self.assertTrue(eventually(lambda: counter(a, MAIN, "items") >= 40000, timeout=60), a.log()[-2000:])
            time.sleep(1)
            m = counters(a, MAIN)
            self.assertLessEqual(m["queue.disk_bytes"], 1 << 20)
            sink.up()
            dropped = m["dropped.queue_oldest"]
            self.assertTrue(eventually(lambda: len(sink.points()) + counter(a, MAIN, "dropped.queue_oldest")
                                       >= 40000, timeout=60), a.log()[-2000:])
            time.sleep(1)
            m = counters(a, MAIN)
            a.stop()
        finally:
            a.stop()
            sink.close()
        self.assertGreater(dropped, 0)
        self.assertEqual(len(sink.points()) + m["dropped.queue_oldest"], 40000)
        keys = [point_key(p) for p in sink.points()]
        self.assertEqual(len(keys), len(set(keys)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
