"""otlphttp_testlib.py - small helpers shared by the otlphttp exporter's integration tests
(tests/integration/test_otlphttp_*.py): counters of a stats block from dbi-stat, a
polling wait that returns a boolean, and loadgen point identities.
"""
import time


def counters(c, block):
    """Every counter of the stats block `block` of a running collector.Collector, as a dict."""
    try:
        s = c.stat()
    except AssertionError:
        return {}
    for b in [b for group in s.get("stats", {}).values() for b in group]:
        if b.get("id") == block:
            return {k: (v["value"] if isinstance(v, dict) else v) for k, v in b.get("counters", {}).items()}
    return {}


def counter(c, block, name, default=0):
    return counters(c, block).get(name, default)


def eventually(pred, timeout=60, interval=0.2):
    """Poll pred until it is true or timeout seconds pass; the last value of pred."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


def loadgen_key(p, with_time=False):
    """A loadgen point's identity: its server, series and value (values grow by one per series)."""
    k = (p["resource"]["service.instance.id"], p["attrs"]["series"], p["value"])
    return k + (p["time"],) if with_time else k
