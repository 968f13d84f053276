#!/usr/bin/python3
"""test_pg_receiver_fleet.py - the postgresql receiver at fleet scale and over TLS, against real
PostgreSQL 15 clusters through the real dbi-collector:

- fleet: one collector (2 scraper threads) scrapes 103 targets - two clusters listening on 50
  loopback addresses each (each address a distinct server.address / service.instance.id; a
  PostgreSQL server listens on at most 63) plus three separate clusters - and every target is
  scraped in every interval;
- a hung server (accepts TCP, never answers) and a dead one (refuses) never delay a healthy
  target: it is scraped every interval while they time out / back off;
- TLS: sslmode verify-full against a server certificate signed by a CA made for the test; a
  collector given a different CA refuses the server.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.dont_write_bytecode = True

from pgcluster import PgCluster, TempDir, make_certs  # noqa: E402
from dbicollector import Collector, binary_dir, receiver_config  # noqa: E402


def sanitized():
    """Sanitizer builds run several times slower: give the fleet a longer interval there."""
    out = subprocess.run([os.path.join(binary_dir(), "dbi-collector"), "--version"], stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    return "asan" in out or "tsan" in out


INTERVAL = 8.0 if sanitized() else 2.0


class FleetTest(unittest.TestCase):
    def test_103_targets_every_interval(self):
        a1 = ["127.0.0.%d" % i for i in range(2, 52)]
        a2 = ["127.0.0.%d" % i for i in range(52, 102)]
        with PgCluster(listen=a1) as big, PgCluster(listen=a2) as big2, PgCluster() as c1, PgCluster() as c2, \
                PgCluster() as c3:
            targets = (["%s:%d" % (a, big.port) for a in a1] + ["%s:%d" % (a, big2.port) for a in a2] +
                       ["127.0.0.1:%d" % c.port for c in (c1, c2, c3)])
            body = ("    username: postgres\n    collection_interval: %gs\n    initial_delay: 0s\n"
                    "    databases: [postgres]\n    targets:\n" % INTERVAL +
                    "".join("      - {endpoint: '%s'}\n" % t for t in targets))
            cfg = receiver_config(body, runtime_extra="  threads: {scrapers: 2}\n")
            with Collector(cfg) as c:
                time.sleep(2 * INTERVAL + 1)  # connected, past the first (jittered) round
                t0 = time.time_ns()
                n = 4
                time.sleep(n * INTERVAL + INTERVAL + 1)  # one scrape of every target after t1, too
                t1 = t0 + int(n * INTERVAL * 1e9)
                pts = c.points()
                self.assertTrue(c.alive(), c.log())
                log = c.log()
                conns = [int(b.sql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE "
                                               "application_name = 'dbi-collector'", host=b.tcp_host))
                         for b in (big, big2)]
        # every interval of every target has its scrape: from a scrape before t0 to one after t1,
        # no two consecutive scrapes of a target are more than one interval (plus slack) apart
        ups = {}
        for p in pts:
            if p["metric"] == "dbi.postgresql.up":
                ups.setdefault(p["resource"]["service.instance.id"], []).append((p["time"], p["value"]))
        self.assertEqual(sorted(ups), sorted(targets))
        slack = int(0.5 * INTERVAL * 1e9)
        for t in targets:
            times = [ts for ts, v in ups[t]]
            self.assertEqual({v for ts, v in ups[t] if t0 <= ts < t1}, {1}, t)
            self.assertTrue(any(ts < t0 for ts in times) and any(ts >= t1 for ts in times), t)
            seen = [ts for ts in times if t0 - INTERVAL * 1e9 - slack <= ts <= t1 + INTERVAL * 1e9 + slack]
            gaps = [b - a for a, b in zip(seen, seen[1:])]
            self.assertLessEqual(max(gaps), int(INTERVAL * 1e9) + slack, t)
            self.assertGreaterEqual(len([ts for ts in times if t0 <= ts < t1]), n - 1, t)
        # every target's own numbers arrived too, under its own resource
        commits = {p["resource"]["service.instance.id"] for p in pts
                   if p["metric"] == "postgresql.commits" and t0 <= p["time"] < t1}
        self.assertEqual(commits, set(targets))
        # jitter spreads the fleet over the interval: no thundering herd in one millisecond
        first_round = sorted(min(p["time"] for p in pts if p["metric"] == "dbi.postgresql.up" and
                                 p["resource"]["service.instance.id"] == t and p["time"] >= t0) for t in targets)
        self.assertGreater(first_round[-1] - first_round[0], 0.6 * INTERVAL * 1e9)
        per_ms = {}
        for ts in first_round:
            per_ms[ts // 10**6] = per_ms.get(ts // 10**6, 0) + 1
        self.assertLessEqual(max(per_ms.values()), 5, per_ms)
        # one persistent session per target (the maintenance database is the only one scraped)
        self.assertEqual(conns, [50, 50])
        self.assertNotIn("level=warn", log)


class HungTargetTest(unittest.TestCase):
    def test_hung_and_dead_targets_do_not_delay_others(self):
        hung = socket.socket()
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        hung_id = "127.0.0.1:%d" % hung.getsockname()[1]
        held = []
        stop = threading.Event()

        def accept():  # take connections and never say a word
            hung.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(hung.accept()[0])
                except OSError:
                    pass
        th = threading.Thread(target=accept, daemon=True)
        th.start()
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        dead_port = dead.getsockname()[1]
        dead.close()  # nothing listens there: connection refused
        try:
            with PgCluster() as pg:
                body = ("    username: postgres\n    collection_interval: 1s\n    initial_delay: 0s\n"
                        "    jitter: 0\n    connect_timeout: 3s\n    databases: [postgres]\n    targets:\n"
                        "      - {endpoint: '%s'}\n      - {endpoint: '127.0.0.1:%d'}\n"
                        "      - {endpoint: '127.0.0.1:%d'}\n" % (hung_id, dead_port, pg.port))
                with Collector(receiver_config(body)) as c:
                    time.sleep(1.5)
                    t0 = time.time_ns()
                    time.sleep(8)
                    t1 = t0 + 8 * 10**9
                    pts = c.points()
                    log = c.log()
                    st = json.loads(subprocess.run([os.path.join(binary_dir(), "dbi-stat"), "-n",
                                                    "dbi.t%d" % os.getpid(), "--once", "--json"],
                                                   stdout=subprocess.PIPE, text=True, check=True).stdout)
        finally:
            stop.set()
            th.join()
            for s in held:
                s.close()
            hung.close()
        good = "127.0.0.1:%d" % pg.port
        ups = [(p["time"], p["value"]) for p in pts if p["metric"] == "dbi.postgresql.up" and
               p["resource"]["service.instance.id"] == good and t0 <= p["time"] < t1]
        self.assertEqual({v for _, v in ups}, {1})
        self.assertGreaterEqual(len(ups), 7)  # 8 intervals; a scrape may sit on the window's edge
        gaps = [b[0] - a[0] for a, b in zip(ups, ups[1:])]
        self.assertLess(max(gaps), 1.5e9)  # the healthy target never waited for the others
        durs = [p["value"] for p in pts if p["metric"] == "dbi.postgresql.scrape.duration" and
                p["resource"]["service.instance.id"] == good and t0 <= p["time"] < t1]
        self.assertLess(max(durs), 0.5)
        bad = {p["resource"]["service.instance.id"]: p["value"] for p in pts if p["metric"] == "dbi.postgresql.up"
               and p["resource"]["service.instance.id"] != good}
        self.assertEqual(bad, {hung_id: 0, "127.0.0.1:%d" % dead_port: 0})
        self.assertIn("connect timeout", log)
        # the hung target's scrapes overran their intervals: skipped and counted, not queued
        ctr = [b["counters"] for b in st["stats"]["receivers"] if b["type"] == "postgresql"][0]
        self.assertGreater(ctr["dropped.scrape_overrun"]["value"], 0)
        # and both bad servers' circuits opened: no more connection attempts for open_duration
        self.assertGreater(ctr["dropped.circuit_open"]["value"], 0)
        self.assertIn("Connection refused", log)


class TlsTest(unittest.TestCase):
    def test_verify_full(self):
        with TempDir() as certs, TempDir() as other:
            make_certs(certs.path, san="DNS:localhost,IP:127.0.0.1")
            make_certs(other.path, san="DNS:localhost,IP:127.0.0.1")
            with PgCluster(ssl_dir=certs.path, hba=["hostnossl all all 0.0.0.0/0 reject"]) as pg:
                body = ("    endpoint: localhost:%d\n    username: postgres\n    collection_interval: 1s\n"
                        "    initial_delay: 0s\n    jitter: 0\n    databases: [postgres]\n"
                        "    tls: {ca_file: %s}\n" % (pg.port, os.path.join(certs.path, "ca.crt")))
                with Collector(receiver_config(body)) as c:
                    up = c.wait_for(lambda p: p["metric"] == "dbi.postgresql.up" and p["value"] == 1, timeout=20)
                    self.assertIsNotNone(up, c.log())
                    self.assertEqual(up["resource"]["service.instance.id"], "localhost:%d" % pg.port)
                    ssl = pg.sql("postgres", "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a "
                                             "USING (pid) WHERE a.application_name = 'dbi-collector'")
                    self.assertEqual(ssl, "t")
                # a CA that did not sign the server's certificate: refused, never scraped
                bad = body.replace(certs.path, other.path)
                with Collector(receiver_config(bad)) as c:
                    down = c.wait_for(lambda p: p["metric"] == "dbi.postgresql.up", timeout=20)
                    time.sleep(1)
                    pts = c.points()
                    log = c.log()
                self.assertIsNotNone(down)
                self.assertEqual({p["metric"] for p in pts}, {"dbi.postgresql.up", "dbi.postgresql.scrape.duration",
                                                              "dbi.circuit.state", "dbi.circuit.transitions",
                                                              "dbi.circuit.failures"})
                self.assertEqual({p["value"] for p in pts if p["metric"] == "dbi.postgresql.up"}, {0})
                self.assertIn("certificate verify failed", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
