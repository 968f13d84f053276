#!/usr/bin/python3
"""test_cumulativetodelta.py - the real dbi-collector running loadgen -> cumulativetodelta ->
debug, with two loadgen threads and two processor threads (so series are routed to
different processor instances). loadgen's series are monotonic cumulative counters that
grow by one per emission and started before the processor, so with initial_value auto every
series must come out as delta 1 per emission after its first, each delta starting where the
series' previous one ended, under a descriptor that says delta. The debug exporter's output
is parsed at verbosity normal and detailed; the processor's counters are read with dbi-stat.
A run that excludes the metric must pass the cumulative values through unchanged.
"""

import os
import re
import sys
import unittest
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.dont_write_bytecode = True  # keep the source tree clean

from collector import BIN, Collector, wait_until  # noqa: E402

TARGETS = 3
SERIES_PER_TARGET = 4
NSERIES = TARGETS * SERIES_PER_TARGET
LOADGEN_THREADS = 2
EMISSIONS = 50  # per series
MAX_POINTS = NSERIES * EMISSIONS // LOADGEN_THREADS  # per loadgen thread
TOTAL = NSERIES * EMISSIONS

CONFIG = """
receivers:
  loadgen: {{targets: {targets}, series_per_target: {spt}, rate: 3000, max_points: {maxp}, threads: {lthreads}}}
processors:
  cumulativetodelta: {c2d}
exporters:
  debug: {{verbosity: {verbosity}}}
service:
  pipelines:
    metrics: {{receivers: [loadgen], processors: [cumulativetodelta], exporters: [debug]}}
runtime:
  shm: {{name: "{{shm}}"}}
  threads: {{processors: 2}}
"""


def counters(snapshot, group, type_):
    """Sum each counter over every block of one component type (one per processor thread)."""
    out = defaultdict(int)
    for blk in snapshot["stats"].get(group, []):
        if blk["type"] == type_:
            for k, v in blk["counters"].items():
                out[k] += v["value"]
    return out


class CumulativeToDelta(unittest.TestCase):
    def run_collector(self, verbosity, c2d="{}", want_out=TOTAL - NSERIES):
        """Run until the debug exporter has written want_out points; returns (stdout, c2d counters)."""
        config = CONFIG.format(targets=TARGETS, spt=SERIES_PER_TARGET, maxp=MAX_POINTS, lthreads=LOADGEN_THREADS,
                               c2d=c2d, verbosity=verbosity)
        with Collector(config) as col:
            def delivered():
                snap = col.stat()
                emitted = counters(snap, "receivers", "loadgen")["emitted"]
                written = counters(snap, "exporters", "debug")["points"]
                return snap if emitted == TOTAL and written >= want_out else None

            snap = wait_until(delivered, timeout=60, what="%d points at the debug exporter" % want_out)
            c2d_counters = counters(snap, "processors", "cumulativetodelta")
            # one instance per processor thread, each with its share of the series
            shards = [b for b in snap["stats"]["processors"] if b["type"] == "cumulativetodelta"]
            self.assertEqual(len(shards), 2)
            if c2d_counters["series_tracked"]:
                for b in shards:
                    self.assertGreater(b["counters"]["series_tracked"]["value"], 0, b["id"])
        self.assertEqual(col.returncode, 0, col.log())
        return col.output(), c2d_counters

    def check_counters(self, c):
        self.assertEqual(c["converted"], TOTAL - NSERIES, c)
        self.assertEqual(c["dropped.initial"], NSERIES, c)  # loadgen's streams began before the processor
        for k in ("dropped.reset", "dropped.stale_start", "dropped.out_of_order", "dropped.arena_full",
                  "unconverted", "passed_through", "series_expired"):
            self.assertEqual(c[k], 0, k)
        self.assertEqual(c["series_tracked"], NSERIES)

    def test_normal(self):
        text, c = self.run_collector("normal")
        self.check_counters(c)
        lines = re.findall(r"^loadgen\.counter\{series=(\d+)\} (\S+)$", text, re.M)
        self.assertEqual(len(lines), TOTAL - NSERIES, text[-2000:])
        per_attr = defaultdict(int)
        for series, value in lines:
            self.assertEqual(value, "1")
            per_attr[int(series)] += 1
        # normal verbosity shows point attributes only: each appears once per target
        self.assertEqual(dict(per_attr), {s: TARGETS * (EMISSIONS - 1) for s in range(SERIES_PER_TARGET)})

    def test_detailed(self):
        text, c = self.run_collector("detailed")
        self.check_counters(c)
        block = re.compile(r"^metric loadgen\.counter \((.*), unit 1\) value (\S+)\n"
                           r"  attributes: \{([^}]*)\}\n"
                           r"  resource: \{([^}]*)\}\n"
                           r"  time (\S+) start (\S+)\n"
                           r"  temporality: (\S+)$", re.M)
        blocks = block.findall(text)
        self.assertEqual(len(blocks), TOTAL - NSERIES, text[-2000:])
        last_time = {}
        per_series = defaultdict(int)
        chained = 0
        for kind, value, attrs, resource, t, start, temporality in blocks:
            self.assertEqual(kind, "sum(monotonic)")
            self.assertEqual(temporality, "delta")
            self.assertEqual(value, "1")
            self.assertLessEqual(start, t)
            key = (resource, attrs)
            if key in last_time:
                # each delta starts where the previous one of its series ended (ms resolution)
                self.assertEqual(start, last_time[key], key)
                chained += 1
            last_time[key] = t
            per_series[key] += 1
        self.assertEqual(len(per_series), NSERIES)
        self.assertTrue(all(n == EMISSIONS - 1 for n in per_series.values()), per_series)
        self.assertEqual(chained, TOTAL - 2 * NSERIES)

    def test_excluded_passes_cumulative(self):
        text, c = self.run_collector("detailed", c2d="{exclude: {metrics: ['^loadgen\\.'], match_type: regexp}}",
                                     want_out=TOTAL)
        self.assertEqual(c["passed_through"], TOTAL, c)
        self.assertEqual(c["converted"], 0)
        self.assertEqual(c["series_tracked"], 0)
        found = re.findall(r"^metric loadgen\.counter \((.*), unit 1\) value (\d+)\n  attributes: \{([^}]*)\}\n"
                           r"  resource: \{([^}]*)\}\n  time .*\n  temporality: (\S+)$", text, re.M)
        self.assertEqual(len(found), TOTAL)
        values = defaultdict(list)
        for kind, value, attrs, resource, temporality in found:
            self.assertEqual(kind, "sum(monotonic)")
            self.assertEqual(temporality, "cumulative")
            values[(resource, attrs)].append(int(value))
        self.assertEqual(len(values), NSERIES)
        for v in values.values():
            self.assertEqual(v, list(range(1, EMISSIONS + 1)))


if __name__ == "__main__":
    if not os.access(os.path.join(BIN, "dbi-collector"), os.X_OK):
        sys.exit("no dbi-collector in %s (set DBI_BINARY_DIR)" % BIN)
    unittest.main(verbosity=2)
