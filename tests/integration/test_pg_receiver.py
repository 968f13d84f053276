#!/usr/bin/python3
"""test_pg_receiver.py - the postgresql receiver against real PostgreSQL 15 clusters, through the
real dbi-collector binary and its debug exporter (format: json):

- every metric (OTel default and optional, dbi's own) is exported with the right unit, type,
  value type, point attributes and resource attributes;
- under a pgbench workload, then with the workload stopped, every exported counter of the
  workload's database and tables equals what a direct SQL query reads (exactly when the value did
  not move between the reads before and after the scrape; otherwise within those reads), sizes
  within 2 %;
- databases are discovered (and excluded); a table under ACCESS EXCLUSIVE lock is skipped without
  blocking the scrape; pg_stat_statements missing turns one group off with one log line; an
  unprivileged role gets everything it may read; the receiver reconnects after a restart;
  SIGHUP and the targets file add and remove targets without a restart;
- the statements group's per-statement calls are exact interval deltas: their sum is the
  executions after the baseline scrape, across pg_stat_statements_reset() and entry evictions
  (pg_stat_statements.max = 100), never negative, never counted twice.
"""

import json
import os
import pwd
import socket
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.dont_write_bytecode = True

from pgcluster import PgCluster, TempDir, wait_until  # noqa: E402
from dbicollector import Collector, binary_dir, receiver_config  # noqa: E402

SERVER, DB, TABLE, INDEX = "server", "db", "table", "index"
RES_KEYS = {
    SERVER: set(),
    DB: {"postgresql.database.name"},
    TABLE: {"postgresql.database.name", "postgresql.schema.name", "postgresql.table.name"},
    INDEX: {"postgresql.database.name", "postgresql.schema.name", "postgresql.table.name", "postgresql.index.name"},
}
BASE_RES = {"server.address", "server.port", "service.instance.id"}

# name: (unit, type, monotonic, double, point attribute keys, resource level, enabled by default)
# The OTel postgresqlreceiver's metrics (its metadata), then dbi's (docs/postgresql-metrics.md).
EXPECTED = {
    "postgresql.backends": ("1", "sum", False, False, set(), DB, True),
    "postgresql.bgwriter.buffers.allocated": ("{buffers}", "sum", True, False, set(), SERVER, True),
    "postgresql.bgwriter.buffers.writes": ("{buffers}", "sum", True, False, {"source"}, SERVER, True),
    "postgresql.bgwriter.checkpoint.count": ("{checkpoints}", "sum", True, False, {"type"}, SERVER, True),
    "postgresql.bgwriter.duration": ("ms", "sum", True, True, {"type"}, SERVER, True),
    "postgresql.bgwriter.maxwritten": ("1", "sum", True, False, set(), SERVER, True),
    "postgresql.blocks_read": ("1", "sum", True, False, {"source"}, TABLE, True),
    "postgresql.commits": ("1", "sum", True, False, set(), DB, True),
    "postgresql.rollbacks": ("1", "sum", True, False, set(), DB, True),
    "postgresql.connection.max": ("{connections}", "gauge", False, False, set(), SERVER, True),
    "postgresql.database.count": ("{databases}", "sum", False, False, set(), SERVER, True),
    "postgresql.db_size": ("By", "sum", False, False, set(), DB, True),
    "postgresql.index.scans": ("{scans}", "sum", True, False, set(), INDEX, True),
    "postgresql.index.size": ("By", "gauge", False, False, set(), INDEX, True),
    "postgresql.operations": ("1", "sum", True, False, {"operation"}, TABLE, True),
    "postgresql.rows": ("1", "sum", False, False, {"state"}, TABLE, True),
    "postgresql.table.count": ("{table}", "sum", False, False, set(), DB, True),
    "postgresql.table.size": ("By", "sum", False, False, set(), TABLE, True),
    "postgresql.table.vacuum.count": ("{vacuum}", "sum", True, False, set(), TABLE, True),
    "postgresql.wal.age": ("s", "gauge", False, False, set(), SERVER, True),
    "postgresql.blks_hit": ("{blks_hit}", "sum", True, False, set(), DB, False),
    "postgresql.blks_read": ("{blks_read}", "sum", True, False, set(), DB, False),
    "postgresql.deadlocks": ("{deadlock}", "sum", True, False, set(), DB, False),
    "postgresql.temp_files": ("{temp_file}", "sum", True, False, set(), DB, False),
    "postgresql.temp.io": ("By", "sum", True, False, set(), DB, False),
    "postgresql.tup_deleted": ("{tup_deleted}", "sum", True, False, set(), DB, False),
    "postgresql.tup_fetched": ("{tup_fetched}", "sum", True, False, set(), DB, False),
    "postgresql.tup_inserted": ("{tup_inserted}", "sum", True, False, set(), DB, False),
    "postgresql.tup_returned": ("{tup_returned}", "sum", True, False, set(), DB, False),
    "postgresql.tup_updated": ("{tup_updated}", "sum", True, False, set(), DB, False),
    "postgresql.database.locks": ("{lock}", "gauge", False, False, {"relation", "mode", "lock_type"}, DB, False),
    "postgresql.function.calls": ("{call}", "sum", True, False, {"function"}, DB, False),
    "postgresql.query.conflicts": ("{query}", "sum", True, False, {"postgresql.conflict.type"}, DB, False),
    "postgresql.query.execution.time": ("s", "sum", True, True, set(), DB, False),
    "postgresql.sequential_scans": ("{sequential_scan}", "sum", True, False, set(), TABLE, False),
    # dbi's own
    "postgresql.database.xid_age": ("{transaction}", "gauge", False, False, set(), DB, True),
    "postgresql.database.multixact_age": ("{multixact}", "gauge", False, False, set(), DB, True),
    "postgresql.table.autovacuum.count": ("{vacuum}", "sum", True, False, set(), TABLE, True),
    "postgresql.table.analyze.count": ("{analyze}", "sum", True, False, set(), TABLE, True),
    "postgresql.table.autoanalyze.count": ("{analyze}", "sum", True, False, set(), TABLE, True),
    "postgresql.index.tuples.read": ("{tuple}", "sum", True, False, set(), INDEX, False),
    "postgresql.index.tuples.fetched": ("{tuple}", "sum", True, False, set(), INDEX, False),
    "postgresql.function.duration": ("ms", "sum", True, True, {"function", "type"}, DB, False),
    "postgresql.locks": ("{lock}", "gauge", False, False, {"mode", "lock_type", "granted"}, SERVER, True),
    "postgresql.activity.sessions": ("{session}", "gauge", False, False,
                                     {"database", "state", "wait_event_type", "wait_event", "backend_type"}, SERVER,
                                     True),
    "postgresql.activity.blocked": ("{session}", "gauge", False, False, set(), SERVER, True),
    "postgresql.activity.oldest_transaction.age": ("s", "gauge", False, True, set(), SERVER, True),
    "postgresql.activity.oldest_xmin.age": ("{transaction}", "gauge", False, False, set(), SERVER, True),
    "postgresql.connection.count": ("{connections}", "gauge", False, False, set(), SERVER, True),
    "postgresql.connection.usage": ("1", "gauge", False, True, set(), SERVER, True),
    "postgresql.replication_slot.retained_wal": ("By", "gauge", False, False, {"slot_name", "slot_type"}, SERVER,
                                                 True),
    "postgresql.replication_slot.active": ("1", "gauge", False, False, {"slot_name", "slot_type"}, SERVER, True),
    "postgresql.replication_slot.wal_status": ("1", "gauge", False, False, {"slot_name", "wal_status"}, SERVER, True),
    "postgresql.wal.bytes": ("By", "sum", True, False, set(), SERVER, True),
    "postgresql.wal.records": ("{record}", "sum", True, False, set(), SERVER, True),
    "postgresql.wal.full_page_images": ("{image}", "sum", True, False, set(), SERVER, True),
    "postgresql.wal.buffers_full": ("{event}", "sum", True, False, set(), SERVER, True),
    "postgresql.archiver.archived": ("{file}", "sum", True, False, set(), SERVER, True),
    "postgresql.archiver.failed": ("{file}", "sum", True, False, set(), SERVER, True),
    "dbi.postgresql.up": ("1", "gauge", False, False, set(), SERVER, True),
    "dbi.postgresql.scrape.duration": ("s", "gauge", False, True, set(), SERVER, True),
    "dbi.postgresql.group.enabled": ("1", "gauge", False, False, {"group"}, SERVER, True),
}
# Need a streaming standby (pg_stat_replication rows with replay positions): ReplicationTest.
NEEDS_STANDBY = {
    "postgresql.replication.data_delay": ("By", "gauge", False, False, {"replication_client"}, SERVER, True),
    "postgresql.wal.lag": ("s", "gauge", False, False, {"operation", "replication_client"}, SERVER, True),
    "postgresql.wal.delay": ("s", "gauge", False, True, {"operation", "replication_client"}, SERVER, False),
}

SETTINGS = {"autovacuum": "off", "archive_mode": "on", "archive_command": "true", "checkpoint_timeout": "1h"}


def all_metrics_on():
    lines = "    metrics:\n"
    for name, spec in list(EXPECTED.items()) + list(NEEDS_STANDBY.items()):
        if not spec[6]:
            lines += "      %s: {enabled: true}\n" % name
    return lines


def base(pg, extra="", interval="1s"):
    return ("    endpoint: 127.0.0.1:%d\n    username: postgres\n    collection_interval: %s\n"
            "    initial_delay: 0s\n    jitter: 0\n    reconnect: {initial_interval: 200ms, max_interval: 1s}\n"
            "    circuit_breaker: {open_duration: 1s, max_open_duration: 2s}\n"
            % (pg.port, interval)) + extra


def res_of(p):
    return p["resource"]


def hold(test, pg, db, sql, seconds=60):
    """A psql session that runs sql in a transaction and keeps it open (killed at the test's
    cleanup); returns the process."""
    p = subprocess.Popen([os.path.join(pg.bindir, "psql"), "-X", "-q", "-d", pg.conninfo(db), "-c",
                          "BEGIN; %s; SELECT pg_sleep(%d); COMMIT;" % (sql, seconds)],
                         env=pg.client_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    test.addCleanup(lambda: (p.kill(), p.wait()))
    return p


def receiver_counters(shm):
    """The postgresql receivers' counters (dbi-stat --once --json), summed over their threads."""
    r = subprocess.run([os.path.join(binary_dir(), "dbi-stat"), "-n", shm, "--once", "--json"],
                       stdout=subprocess.PIPE, text=True, check=True)
    tot = {}
    for b in json.loads(r.stdout)["stats"]["receivers"]:
        if b["type"] == "postgresql":
            for k, v in b["counters"].items():
                tot[k] = tot.get(k, 0) + v["value"]
    return tot


def around_scrape(test, c, metric, direct):
    """direct() before, a scrape begun after that read (the time of its metric points; all of
    them have arrived once the next scrape reports up), direct() again: (before, time, after)."""
    before = direct()
    t1 = time.time_ns()
    first = c.wait_for(lambda p: p["metric"] == metric and p["time"] > t1, timeout=20)
    test.assertIsNotNone(first, c.log())
    scrape_time = first["time"]
    c.wait_for(lambda p: p["metric"] == "dbi.postgresql.up" and p["time"] > scrape_time, timeout=20)
    return before, scrape_time, direct()


def wait_scrapes(test, c, n=2, timeout=15):
    """Wait until n more scrapes have finished (so one began after this call)."""
    def is_scrape(p):
        return p.get("metric") == "dbi.postgresql.scrape.duration"
    have = len([p for p in c.points() if is_scrape(p)])
    got = c.wait_count(is_scrape, have + n, timeout=timeout)
    test.assertGreaterEqual(len(got), have + n, "scrapes stopped; log:\n" + c.log()[-3000:])


class ReceiverTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = PgCluster(settings=SETTINGS).start()
        pg = cls.pg
        for db in ("app", "bench", "other"):
            pg.sql("postgres", "CREATE DATABASE %s" % db)
        pg.sql("app", "CREATE TABLE items (id int PRIMARY KEY, v text); "
                      "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 5000) g; "
                      "CREATE TABLE locked (id int PRIMARY KEY); INSERT INTO locked VALUES (1); "
                      "CREATE FUNCTION bump(i int) RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN i + 1; END$$; "
                      "SELECT bump(1); SELECT bump(2); SELECT count(*) FROM items WHERE id < 10")
        pg.sql("postgres", "SELECT pg_create_physical_replication_slot('dbi_slot', true)")
        pg.sql("postgres", "CREATE TABLE walgen AS SELECT g FROM generate_series(1, 1000) g; SELECT pg_switch_wal()")
        pg.pgbench_init("bench", scale=1)

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()

    def test_catalog(self):
        pg = self.pg
        hold(self, pg, "app", "LOCK TABLE items IN SHARE MODE")
        wait_until(lambda: pg.sql("postgres", "SELECT count(*) FROM pg_locks WHERE mode = 'ShareLock' AND "
                                              "locktype = 'relation'") != "0", timeout=10)
        with Collector(receiver_config(base(pg, all_metrics_on()))) as c:
            names = set(EXPECTED)
            end = time.time() + 40
            while time.time() < end and not names <= {p["metric"] for p in c.points()}:
                time.sleep(0.2)
            pts = c.points()
            self.assertTrue(c.alive(), c.log())
        seen = {}
        for p in pts:
            seen.setdefault(p["metric"], []).append(p)
        missing = sorted(names - set(seen))
        self.assertEqual(missing, [], "metrics not exported")
        for name, (unit, typ, mono, dbl, attrs, level, _) in EXPECTED.items():
            for p in seen[name]:
                self.assertEqual(p["unit"], unit, name)
                self.assertEqual(p["type"], typ, name)
                self.assertEqual(p["monotonic"], mono, name)
                self.assertEqual(p["double"], dbl, name)
                self.assertEqual(set(p["attributes"]), attrs, name)
                self.assertEqual(set(p["resource"]), BASE_RES | RES_KEYS[level], name)
                self.assertEqual(p["resource"]["service.instance.id"], "127.0.0.1:%d" % pg.port)
                self.assertEqual(p["resource"]["server.port"], pg.port)
                if typ == "sum":
                    self.assertGreater(p["start"], 0, name)
                    self.assertLessEqual(p["start"], p["time"], name)
                else:
                    self.assertEqual(p["start"], 0, name)
        for name in NEEDS_STANDBY:
            self.assertNotIn(name, seen, "no standby, yet %s was exported" % name)
        # attribute values are the documented enumerations
        enums = {("postgresql.blocks_read", "source"): {"heap_read", "heap_hit", "idx_read", "idx_hit", "toast_read",
                                                        "toast_hit", "tidx_read", "tidx_hit"},
                 ("postgresql.operations", "operation"): {"ins", "upd", "del", "hot_upd"},
                 ("postgresql.rows", "state"): {"dead", "live"},
                 ("postgresql.bgwriter.buffers.writes", "source"): {"backend", "backend_fsync", "checkpoints",
                                                                    "bgwriter"},
                 ("postgresql.bgwriter.checkpoint.count", "type"): {"requested", "scheduled"},
                 ("postgresql.bgwriter.duration", "type"): {"sync", "write"},
                 ("postgresql.query.conflicts", "postgresql.conflict.type"): {"tablespace", "lock", "snapshot",
                                                                              "bufferpin", "deadlock"}}
        for (name, key), values in enums.items():
            self.assertEqual({p["attributes"][key] for p in seen[name]}, values, name)
        # every non-template database is discovered, with its tables
        dbs = {p["resource"]["postgresql.database.name"] for p in seen["postgresql.commits"]}
        self.assertEqual(dbs, {"postgres", "app", "bench", "other"})
        tables = {(p["resource"]["postgresql.database.name"], p["resource"]["postgresql.table.name"])
                  for p in seen["postgresql.table.size"]}
        self.assertIn(("app", "items"), tables)
        self.assertIn(("bench", "pgbench_accounts"), tables)
        self.assertIn(("postgres", "walgen"), tables)
        fn = [p for p in seen["postgresql.function.calls"] if p["attributes"]["function"] == "public.bump"]
        self.assertTrue(fn and fn[-1]["value"] == 2, fn[-1:] if fn else "no public.bump")
        self.assertTrue(any(p["attributes"] == {"relation": "items", "mode": "ShareLock", "lock_type": "relation"}
                            for p in seen["postgresql.database.locks"]))
        self.assertTrue(any(p["attributes"]["slot_name"] == "dbi_slot" and p["value"] > 0
                            for p in seen["postgresql.replication_slot.retained_wal"]))
        self.assertEqual(seen["postgresql.connection.max"][-1]["value"], 200)
        self.assertEqual(seen["postgresql.database.count"][-1]["value"], 4)
        self.assertTrue(all(p["value"] == 1 for p in seen["dbi.postgresql.up"]))
        self.assertNotIn("level=warn", c.log())
        # our own statements are what pg_stat_statements attributes to application_name's sessions:
        # one transaction per database per scrape, never a reconnect per scrape
        conns = pg.sql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbi-collector'")
        self.assertEqual(conns, "0")  # closed at exit

    def test_exact_under_pgbench(self):
        pg = self.pg
        cfg = base(pg, "    databases: [bench]\n    metrics:\n" + "".join(
            "      %s: {enabled: true}\n" % m for m in ("postgresql.blks_hit", "postgresql.blks_read",
                                                      "postgresql.tup_returned", "postgresql.tup_fetched",
                                                      "postgresql.tup_inserted", "postgresql.tup_updated",
                                                      "postgresql.tup_deleted", "postgresql.sequential_scans")))
        with Collector(receiver_config(cfg)) as c:
            bench = pg.pgbench_start("bench", clients=4, jobs=2, seconds=4)
            self.assertEqual(bench.wait(timeout=120), 0)
            self.assertTrue(c.wait_for(lambda p: p["metric"] == "postgresql.commits", timeout=20))
            time.sleep(1.5)  # the workload's backends have exited and flushed their counters
            db_cols = {"postgresql.commits": "xact_commit", "postgresql.rollbacks": "xact_rollback",
                       "postgresql.blks_hit": "blks_hit", "postgresql.blks_read": "blks_read",
                       "postgresql.tup_returned": "tup_returned", "postgresql.tup_fetched": "tup_fetched",
                       "postgresql.tup_inserted": "tup_inserted", "postgresql.tup_updated": "tup_updated",
                       "postgresql.tup_deleted": "tup_deleted"}
            tab_cols = {("postgresql.rows", "live"): "n_live_tup", ("postgresql.rows", "dead"): "n_dead_tup",
                        ("postgresql.operations", "ins"): "n_tup_ins", ("postgresql.operations", "upd"): "n_tup_upd",
                        ("postgresql.operations", "del"): "n_tup_del",
                        ("postgresql.operations", "hot_upd"): "n_tup_hot_upd",
                        ("postgresql.sequential_scans", None): "seq_scan",
                        ("postgresql.table.vacuum.count", None): "vacuum_count"}

            def direct():
                d = pg.rows("postgres", "SELECT %s, pg_database_size('bench') FROM pg_stat_database "
                                        "WHERE datname = 'bench'" % ", ".join(db_cols.values()))[0]
                out = {k: int(v) for k, v in zip(db_cols, d)}
                out["postgresql.db_size"] = int(d[-1])
                for row in pg.rows("bench", "SELECT s.relname, %s, pg_relation_size(s.relid), "
                                            "io.heap_blks_read, io.heap_blks_hit FROM pg_stat_user_tables s "
                                            "JOIN pg_statio_user_tables io USING (relid)"
                                   % ", ".join("s." + c for c in tab_cols.values())):
                    for k, v in zip(tab_cols, row[1:]):
                        out[(row[0],) + k] = int(v)
                    out[(row[0], "postgresql.table.size", None)] = int(row[len(tab_cols) + 1])
                    out[(row[0], "postgresql.blocks_read", "heap_read")] = int(row[len(tab_cols) + 2])
                    out[(row[0], "postgresql.blocks_read", "heap_hit")] = int(row[len(tab_cols) + 3])
                return out

            before, scrape_time, after = around_scrape(self, c, "postgresql.table.size", direct)
        got = {}
        for p in c.points():
            if p["time"] != scrape_time:
                continue
            r = p["resource"]
            if r.get("postgresql.database.name") != "bench":
                continue
            a = p["attributes"]
            key = a.get("state") or a.get("operation") or a.get("source")
            if "postgresql.table.name" in r:
                got[(r["postgresql.table.name"], p["metric"], key)] = p["value"]
            else:
                got[p["metric"]] = p["value"]
        exact = 0
        for k, v1 in before.items():
            self.assertIn(k, got, "not exported: %s" % (k,))
            x, v2 = got[k], after[k]
            name = k if isinstance(k, str) else k[1]
            if name in ("postgresql.db_size", "postgresql.table.size"):
                self.assertLessEqual(abs(x - v1), 0.02 * v1, k)
                continue
            if v1 == v2:
                self.assertEqual(x, v1, k)
                exact += 1
            else:  # moved by our own sessions between the reads: the scrape read in between
                self.assertTrue(v1 <= x <= v2, "%s: %s not in [%s, %s]" % (k, x, v1, v2))
        self.assertGreater(exact, 30)
        # the workload really ran through what we compared
        self.assertGreater(before[("pgbench_accounts", "postgresql.operations", "upd")], 100)

    def test_locked_table_skipped(self):
        pg = self.pg
        with Collector(receiver_config(base(pg, "    databases: [app]\n"))) as c:
            self.assertTrue(c.wait_for(lambda p: p["metric"] == "postgresql.table.size" and
                                       p["resource"]["postgresql.table.name"] == "locked", timeout=20), c.log())
            hold(self, self.pg, "app", "LOCK TABLE locked IN ACCESS EXCLUSIVE MODE", seconds=30)
            self.assertTrue(wait_until(self._ael_held, timeout=10))
            t0 = time.time_ns()
            ups = c.wait_count(lambda p: p["metric"] == "dbi.postgresql.up" and p["time"] > t0, 4, timeout=20)
            self.assertEqual([p["value"] for p in ups[:4]], [1, 1, 1, 1])
            durs = [p["value"] for p in c.points() if p["metric"] == "dbi.postgresql.scrape.duration" and
                    p["time"] > t0]
            self.assertTrue(durs and max(durs) < 0.9, durs)  # never waited on the lock (lock_timeout is 1 s)
            later = [p for p in c.points() if p["time"] > ups[0]["time"] and p["metric"] == "postgresql.table.size"]
            names = {p["resource"]["postgresql.table.name"] for p in later}
            self.assertIn("items", names)
            self.assertNotIn("locked", names)
            rows = [p for p in c.points() if p["time"] > ups[0]["time"] and p["metric"] == "postgresql.rows"]
            self.assertIn("locked", {p["resource"]["postgresql.table.name"] for p in rows})
            self.assertNotIn("lock wait gave up", c.log())

    def _ael_held(self):
        return self.pg.sql("app", "SELECT count(*) FROM pg_locks WHERE granted AND mode = 'AccessExclusiveLock' "
                                  "AND locktype = 'relation' AND relation = (SELECT oid FROM pg_class WHERE "
                                  "relname = 'locked')") != "0"

    def test_exclude_databases(self):
        pg = self.pg
        with Collector(receiver_config(base(pg, "    exclude_databases: [oth*, bench]\n"))) as c:
            self.assertTrue(c.wait_count(lambda p: p["metric"] == "dbi.postgresql.up", 2, timeout=20))
            dbs = {p["resource"].get("postgresql.database.name") for p in c.points()}
        self.assertEqual(dbs, {None, "postgres", "app"})


class CircuitTest(unittest.TestCase):
    def test_stopped_server_opens_then_closes(self):
        """Stop one server: its circuit opens at once (connection refused), its series stop while the
        other keeps its interval; start it: half-open (reduced query set), then closed again."""
        with PgCluster() as a, PgCluster() as b:
            body = ("    username: postgres\n    collection_interval: 1s\n    initial_delay: 0s\n    jitter: 0\n"
                    "    databases: [postgres]\n    reconnect: {initial_interval: 200ms, max_interval: 1s}\n"
                    "    circuit_breaker: {open_duration: 5s, max_open_duration: 10s, half_open_successes: 2}\n"
                    "    targets:\n      - {endpoint: '127.0.0.1:%d'}\n      - {endpoint: '127.0.0.1:%d'}\n"
                    % (a.port, b.port))
            ia, ib = "127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port

            def state_of(p, inst):
                return (p["metric"] == "dbi.circuit.state" and p["resource"]["service.instance.id"] == inst)

            with Collector(receiver_config(body)) as c:
                self.assertTrue(c.wait_for(lambda p: p["metric"] == "postgresql.commits" and
                                           p["resource"]["service.instance.id"] == ia, timeout=20))
                a.stop_server()
                opened = c.wait_for(lambda p: state_of(p, ia) and p["value"] == 1, timeout=20)
                self.assertIsNotNone(opened, c.log())
                # A window inside open_duration (5 s): no connection, no SQL, no series but the
                # circuit's. The state is reported at each scheduled scrape, so the transition came
                # between the last "closed" report and t0; open_duration counts from it.
                t0 = opened["time"]
                tc = max(p["time"] for p in c.points() if state_of(p, ia) and p["value"] == 0 and p["time"] < t0)
                t1 = tc + 4_800_000_000
                self.assertGreater(t1 - t0, 2_500_000_000)
                time.sleep(max(0.0, (t1 - time.time_ns()) / 1e9) + 0.2)
                during = [p for p in c.points() if t0 < p["time"] < t1 and p["resource"]["service.instance.id"] == ia]
                self.assertEqual({p["metric"] for p in during} - {"dbi.circuit.state", "dbi.circuit.transitions",
                                                                  "dbi.circuit.failures"}, set())
                b_ups = [p for p in c.points() if p["metric"] == "dbi.postgresql.up" and t0 < p["time"] < t1 and
                         p["resource"]["service.instance.id"] == ib]
                self.assertGreaterEqual(len(b_ups), 2)
                self.assertEqual({p["value"] for p in b_ups}, {1})
                a.start_server()
                t2 = time.time_ns()
                half = c.wait_for(lambda p: state_of(p, ia) and p["value"] == 2 and p["time"] > t2, timeout=30)
                self.assertIsNotNone(half, c.log())
                closed = c.wait_for(lambda p: state_of(p, ia) and p["value"] == 0 and p["time"] > half["time"],
                                    timeout=30)
                self.assertIsNotNone(closed, c.log())
                back = c.wait_for(lambda p: p["metric"] == "postgresql.commits" and p["time"] > closed["time"] and
                                  p["resource"]["service.instance.id"] == ia, timeout=20)
                self.assertIsNotNone(back)
                # the first probe ran the reduced query set: server-level numbers, no per-database ones
                first = min(p["time"] for p in c.points() if p["metric"] == "dbi.postgresql.up" and
                            p["time"] >= half["time"] and p["resource"]["service.instance.id"] == ia)
                probes = [p for p in c.points() if p["time"] == first and p["resource"]["service.instance.id"] == ia]
                self.assertIn("postgresql.connection.max", {p["metric"] for p in probes})
                self.assertNotIn("postgresql.commits", {p["metric"] for p in probes})
                tr = [p for p in c.points() if p["metric"] == "dbi.circuit.transitions" and
                      p["resource"]["service.instance.id"] == ia]
                self.assertGreaterEqual(tr[-1]["value"], 3)  # closed→open→half-open→closed


class StatementsTest(unittest.TestCase):
    def test_statements_group(self):
        """The statements group (statements.c) runs in the scrape's pipeline: per-statement metrics
        on the metrics pipeline, query samples on a logs pipeline."""
        with PgCluster() as pg:
            pg.sql("postgres", "CREATE TABLE s (id int); SELECT count(*) FROM s WHERE id = 42")
            cfg = receiver_config(base(pg, "    databases: [postgres]\n")).replace(
                "    metrics: {receivers: [postgresql], exporters: [debug]}\n",
                "    metrics: {receivers: [postgresql], exporters: [debug]}\n"
                "    logs: {receivers: [postgresql], exporters: [debug]}\n")
            with Collector(cfg) as c:
                calls = c.wait_for(lambda p: p.get("metric") == "postgresql.statement.calls", timeout=20)
                sample = c.wait_for(lambda p: p.get("record") == "log", timeout=20)
                on = c.wait_for(lambda p: p.get("metric") == "dbi.postgresql.group.enabled" and
                                p["attributes"]["group"] == "statements", timeout=10)

                # the receiver's own counters (dbi-stat, self-telemetry): reads, changed-only
                # reads once the keys are known (PG 15), scrape time
                def counters():
                    return receiver_counters("dbi.t%d" % os.getpid())
                self.assertTrue(wait_until(lambda: counters().get("statements_reads_changed_only", 0) >= 1,
                                           timeout=20), "no changed-only statements read: %r" % counters())
                st = counters()
        self.assertGreater(st["statements_reads"], st["statements_reads_changed_only"])  # the first is full
        self.assertGreater(st["statements_rows"], 0)
        self.assertGreater(st["scrape_time_ns"], 0)
        self.assertGreaterEqual(st["scrapes"], st["statements_reads"])
        # idle sessions handed their libpq buffer pages back (pg_pqbuf.c), and the scrapes after
        # that (the changed-only reads above need a previous one) still read what they should
        self.assertGreater(st["idle_buffer_bytes_released"], 0)
        self.assertIsNotNone(calls, c.log())
        self.assertEqual(calls["type"], "sum")
        self.assertIsNotNone(sample)
        self.assertEqual(sample["resource"]["service.instance.id"], "127.0.0.1:%d" % pg.port)
        self.assertEqual(on["value"], 1)

    # --- interval deltas end to end: exact counts, a reset, evictions ------------------------------
    #
    # The contract of statements.c: a statement's exported postgresql.statement.calls points are
    # deltas over the interval since the previous scrape; the first scrape is a baseline (not
    # exported); nothing is ever negative and nothing is counted twice. While an entry lives in
    # pg_stat_statements without being evicted, the deltas telescope: their sum is exactly the
    # executions after the baseline. A reset (pg_stat_statements_info.stats_reset moves) makes the
    # current counters the delta. What can be lost: an entry's activity between its last scrape and
    # its eviction or reset, and an entry evicted and re-created within one interval (an
    # undercount, never an overcount).

    TRACKED = "SELECT count(*) FROM s WHERE id = 42"
    TRACKED_NORM = "SELECT count(*) FROM s WHERE id = $1"
    CALLS = "postgresql.statement.calls"

    @staticmethod
    def run_n(pg, lines):
        """Run the statements (a list, one per line) in one psql session: each is sent on its own,
        so pg_stat_statements counts each as one top-level execution."""
        pg.psql("-q", "-v", "ON_ERROR_STOP=1", input="".join(q + ";\n" for q in lines))

    @staticmethod
    def queryid(pg, normalized):
        rows = pg.rows("postgres", "SELECT queryid FROM pg_stat_statements WHERE toplevel AND query = '%s' AND "
                                   "dbid = (SELECT oid FROM pg_database WHERE datname = 'postgres')" % normalized)
        assert len(rows) == 1, rows
        return rows[0][0]

    @staticmethod
    def pgss_calls(pg, qid):
        """calls of the statement in pg_stat_statements now (0: no entry)."""
        v = pg.sql("postgres", "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE toplevel AND "
                               "queryid = %s" % qid)
        return int(v)

    @staticmethod
    def pgss_dealloc(pg):
        return int(pg.sql("postgres", "SELECT dealloc FROM pg_stat_statements_info"))

    def of(self, pts, qid):
        return [p for p in pts if p.get("metric") == self.CALLS and p["attributes"].get("postgresql.queryid") == qid
                and p["attributes"].get("postgresql.statement.toplevel") is True]

    def exported(self, c, qid, start=0):
        return sum(p["value"] for p in self.of(c.points()[start:], qid))

    def wait_scrapes(self, c, n=2, timeout=15):
        wait_scrapes(self, c, n, timeout)

    def settle(self, c, qid, at_least, start=0, timeout=15):
        """Wait until the exported calls reach at_least (or time runs out), then two more scrapes,
        so whatever would come late or twice has come; returns the exported sum."""
        end = time.time() + timeout
        while time.time() < end and self.exported(c, qid, start) < at_least:
            time.sleep(0.1)
        self.wait_scrapes(c, 2)
        return self.exported(c, qid, start)

    def check_shapes(self, pts, qid):
        """Nothing negative anywhere in the group's output; the statement's calls are int delta sums
        with one point per scrape over disjoint intervals (start = the previous scrape)."""
        for p in pts:
            m = p.get("metric", "")
            if not m.startswith(("postgresql.statement.", "postgresql.query.")):
                continue
            if p["type"] == "histogram":
                self.assertGreaterEqual(min(p["counts"]), 0, p)
                self.assertEqual(sum(p["counts"]), p["count"], p)
                self.assertGreaterEqual(p["sum"], 0, p)
            elif p["value"] is not None:
                self.assertGreaterEqual(p["value"], 0, p)
        mine = sorted(self.of(pts, qid), key=lambda p: p["time"])
        prev = 0
        for p in mine:
            self.assertEqual((p["unit"], p["type"], p["monotonic"], p["double"]), ("{call}", "sum", True, False), p)
            self.assertGreater(p["start"], 0, p)
            self.assertLess(p["start"], p["time"], p)
            self.assertGreaterEqual(p["start"], prev, "overlapping intervals: %r" % mine)
            prev = p["time"]
        return mine

    def stmt_config(self, pg):
        return receiver_config(base(pg, "    databases: [postgres]\n"))

    def test_statement_deltas_exact_across_reset(self):
        """postgresql.statement.calls of a statement, summed over the exported points, is exactly
        the executions after the baseline scrape: in batches a few intervals apart, across a
        pg_stat_statements_reset() followed by more executions than before it, and (within the
        one batch that the contract may lose) across a reset inside an interval.

        Two statements: a plain query, and pg_sleep, whose times we choose: after the reset its
        min falls and its max rises while every counter grows, so only stats_reset can tell the
        collector that the entry was re-created."""
        sleeper_norm = "SELECT pg_sleep($1)"

        def sleeps(n, secs=0.002):
            # always a numeric constant: pg_sleep(0), an integer, would be another queryid
            return ["SELECT pg_sleep(%.4f)" % secs] * n

        with PgCluster() as pg:
            pg.sql("postgres", "CREATE TABLE s (id int)")
            # before the collector: the baseline, never exported
            self.run_n(pg, [self.TRACKED] * 5 + sleeps(5))
            qa, qb = self.queryid(pg, self.TRACKED_NORM), self.queryid(pg, sleeper_norm)
            with Collector(self.stmt_config(pg)) as c:
                # a statement point means a scrape after the baseline: from here on, all counts
                self.assertIsNotNone(c.wait_for(lambda p: p.get("metric") == self.CALLS, timeout=20), c.log())
                self.assertEqual((self.exported(c, qa), self.exported(c, qb)), (0, 0))

                # 1. batches a few intervals apart: exact
                self.run_n(pg, [self.TRACKED] * 40 + sleeps(40))
                self.settle(c, qb, 40)
                self.assertEqual((self.exported(c, qa), self.exported(c, qb)), (40, 40))
                self.run_n(pg, [self.TRACKED] * 25 + sleeps(25))
                self.settle(c, qb, 65)
                self.assertEqual((self.exported(c, qa), self.exported(c, qb)), (65, 65))

                # 2. a reset, then more executions than each entry had before it (70): a missed
                # reset would export 200 - 70, a reset counted twice more than 200. The sleeper's
                # min falls (0 s) and max rises (50 ms vs ~2 ms): only stats_reset reveals it.
                pg.sql("postgres", "SELECT pg_stat_statements_reset()")
                self.run_n(pg, [self.TRACKED] * 200 + sleeps(1, 0) + sleeps(198, 0.001) + sleeps(1, 0.05))
                self.settle(c, qb, 265)
                self.assertEqual((self.exported(c, qa), self.exported(c, qb)), (265, 265))

                # 3. executions, a reset and executions without waiting: the 10 before the reset
                # are counted only if a scrape read them before the reset; the 15 after it always
                self.run_n(pg, [self.TRACKED] * 10 + sleeps(10))
                pg.sql("postgres", "SELECT pg_stat_statements_reset()")
                self.run_n(pg, [self.TRACKED] * 15 + sleeps(15))
                self.settle(c, qb, 265 + 15)
                totals = (self.exported(c, qa), self.exported(c, qb))
                pts = c.points()
        for qid, total in zip((qa, qb), totals):
            self.assertGreaterEqual(total, 265 + 15, c.log()[-3000:])
            self.assertLessEqual(total, 265 + 10 + 15)
            mine = self.check_shapes(pts, qid)
            fps = {p["attributes"].get("db.query.fingerprint") for p in mine}
            self.assertEqual(len(fps), 1, fps)  # one statement, one fingerprint, before and after resets
            # OIDs resolved to names (a names query that sent empty arrays once left them as OIDs)
            self.assertEqual({(p["attributes"].get("postgresql.database.name"),
                               p["attributes"].get("postgresql.user.name")) for p in mine}, {("postgres", "postgres")})
            self.assertRegex(fps.pop() or "", "^[0-9a-f]{16}$")

    def test_statement_deltas_under_eviction(self):
        """With pg_stat_statements.max = 100 and rounds of 150 distinct statements, entries are
        evicted every round. A busy statement runs through the churn: its exported calls never
        exceed its executions after the baseline, and are exact when pg_stat_statements shows its
        entry was never evicted. A victim runs once per round, after the churn that evicts it and
        a scrape that sees it gone: each comes back as a new entry, counted whole, exactly once.
        Nothing is negative; postgresql.statement.deallocations follows pg_stat_statements_info."""
        cols = 150
        rounds, busy_per_round, tail = 3, 50, 30
        victim = "SELECT count(*) FROM s WHERE id > 7 AND id < 9"
        with PgCluster(settings={"pg_stat_statements.max": "100"}) as pg:
            pg.sql("postgres", "CREATE TABLE s (id int); CREATE TABLE w (%s)" %
                   ", ".join("c%d int" % i for i in range(1, cols + 1)))
            self.run_n(pg, [self.TRACKED] * 20 + [victim])  # the baseline
            qid = self.queryid(pg, self.TRACKED_NORM)
            vid = self.queryid(pg, "SELECT count(*) FROM s WHERE id > $1 AND id < $2")
            d_pre = self.pgss_dealloc(pg)
            evicted = sure = 0
            with Collector(self.stmt_config(pg)) as c:
                self.assertIsNotNone(c.wait_for(lambda p: p.get("metric") == self.CALLS, timeout=20), c.log())
                d_first = self.pgss_dealloc(pg)  # >= dealloc at the baseline scrape
                for _ in range(rounds):
                    script = []
                    for k in range(1, cols + 1):
                        script.append("SELECT c%d FROM w" % k)  # another column: another queryid
                        if k % 3 == 0:
                            script.append(self.TRACKED)
                    self.run_n(pg, script)
                    # run once since its creation, the victim is among the least used entries
                    gone = self.pgss_calls(pg, vid) == 0
                    self.wait_scrapes(c, 2)  # a whole scrape after the churn: it sees what is gone
                    still = self.pgss_calls(pg, vid) > 0
                    self.run_n(pg, [victim])
                    self.wait_scrapes(c, 2)  # a whole scrape reads it before the next churn
                    # The contract makes this execution count exactly once if a scrape saw the
                    # entry gone before it (gone) or the entry was never gone before it (still),
                    # and the entry lived until a whole scrape read it (present now: nothing
                    # runs it again). pg may evict at any time: only count what it proves.
                    evicted += gone
                    sure += (gone or still) and self.pgss_calls(pg, vid) > 0
                churn_end = len(c.points())
                d_churn = self.pgss_dealloc(pg)
                busy_calls_churn = self.pgss_calls(pg, qid)
                # then the busy statement alone: whatever the churn did, it continues exactly
                self.run_n(pg, [self.TRACKED] * tail)
                tail_sum = self.settle(c, qid, tail, start=churn_end)
                busy_calls_end = self.pgss_calls(pg, qid)
                pts = c.points()
            d_end = self.pgss_dealloc(pg)
        log = c.log()[-3000:]
        busy_exec = rounds * busy_per_round + tail
        busy_sum = sum(p["value"] for p in self.check_shapes(pts, qid))
        victim_sum = sum(p["value"] for p in self.check_shapes(pts, vid))
        dealloc = [p for p in pts if p.get("metric") == "postgresql.statement.deallocations"]
        dsum = sum(p["value"] for p in dealloc)
        state = dict(busy_sum=busy_sum, busy_exec=busy_exec, tail_sum=tail_sum, busy_calls_end=busy_calls_end,
                     victim_sum=victim_sum, evicted=evicted, sure=sure, dealloc_exported=dsum,
                     dealloc_pg=(d_pre, d_first, d_churn, d_end))

        # evictions happened while the collector ran, and it exported them, within what pg reports
        self.assertGreater(d_churn, d_first, state)
        self.assertGreater(dsum, 0, state)
        self.assertGreaterEqual(dsum, d_churn - d_first, state)
        self.assertLessEqual(dsum, d_end - d_pre, state)
        tracked = [p["value"] for p in pts if p.get("metric") == "postgresql.statement.tracked"]
        self.assertTrue(tracked and max(tracked) <= 100, tracked)

        # the victim: evicted by the churn (so re-created: the path ran), each execution at most
        # once, and exactly once where pg proves that the contract covers it (in practice: all)
        self.assertGreaterEqual(evicted, 1, state)
        self.assertLessEqual(victim_sum, rounds, state)
        self.assertGreaterEqual(victim_sum, sure, state)
        # the busy statement: nothing counted twice, the baseline not at all
        self.assertLessEqual(busy_sum, busy_exec, state)
        # its entry was never evicted (pg still counts every execution): then its deltas telescope
        # and the sum is exact, through the churn and after it
        if busy_calls_end == 20 + busy_exec:
            self.assertEqual(busy_calls_churn, 20 + rounds * busy_per_round)
            self.assertEqual(busy_sum, busy_exec, state)
            self.assertEqual(tail_sum, tail, state)
        else:  # evicted after all (pg's choice, not ours): only the bound above holds
            print("note: the busy statement was evicted too: %r" % state)


class PrivilegeTest(unittest.TestCase):
    def test_no_pg_stat_statements(self):
        with PgCluster() as pg:
            pg.sql("postgres", "DROP EXTENSION pg_stat_statements")
            cfg = base(pg, "    metrics: {postgresql.query.execution.time: {enabled: true}}\n")
            with Collector(receiver_config(cfg)) as c:
                ups = c.wait_count(lambda p: p["metric"] == "dbi.postgresql.up", 3, timeout=20)
                self.assertEqual([p["value"] for p in ups], [1] * len(ups))
                qt = c.wait_for(lambda p: p["metric"] == "dbi.postgresql.group.enabled" and
                                p["attributes"]["group"] == "query_time", timeout=10)
                self.assertEqual(qt["value"], 0)
                pts = c.points()
                log = c.log()
        self.assertNotIn("postgresql.query.execution.time", {p["metric"] for p in pts})
        self.assertIn("postgresql.commits", {p["metric"] for p in pts})
        self.assertIn("postgresql.table.count", {p["metric"] for p in pts})
        # one line per group that needs it (query_time, statements), once
        self.assertEqual(log.count("extension pg_stat_statements is not installed"), 2, log)

    def test_unprivileged_role(self):
        with PgCluster() as pg:
            for q in ("CREATE ROLE mon LOGIN", "CREATE DATABASE secret", "CREATE DATABASE app",
                      "REVOKE CONNECT ON DATABASE secret FROM PUBLIC",
                      "REVOKE EXECUTE ON FUNCTION pg_stat_statements(boolean) FROM PUBLIC"):
                pg.sql("postgres", q)
            pg.sql("app", "CREATE TABLE t AS SELECT 1 AS x")
            cfg = base(pg, "    metrics: {postgresql.query.execution.time: {enabled: true}}\n").replace(
                "username: postgres", "username: mon")
            with Collector(receiver_config(cfg)) as c:
                ups = c.wait_count(lambda p: p["metric"] == "dbi.postgresql.up", 3, timeout=30)
                qt = c.wait_for(lambda p: p["metric"] == "dbi.postgresql.group.enabled" and
                                p["attributes"]["group"] == "query_time" and p["value"] == 0, timeout=10)
                pts = c.points()
                log = c.log()
        self.assertTrue(qt, log)
        self.assertIn("GRANT pg_monitor", log)
        # once per group that reads pg_stat_statements (query_time, statements)
        self.assertEqual(log.count("metric group off: permission denied"), 2, log)
        self.assertIn("group=query_time", log)
        self.assertIn("group=statements", log)
        # everything else goes on, from the first interval on (the pipeline is re-run without the group)
        first = min(p["time"] for p in pts if p["metric"] == "postgresql.table.size")
        self.assertEqual(first, min(p["time"] for p in pts if p["metric"] == "postgresql.commits"))
        by = {}
        for p in pts:
            by.setdefault(p["metric"], set()).add(p["resource"].get("postgresql.database.name"))
        self.assertIn("secret", by["postgresql.commits"])      # pg_stat_database is readable
        self.assertNotIn("secret", by["postgresql.db_size"])    # pg_database_size needs CONNECT
        self.assertIn("app", by["postgresql.db_size"])
        self.assertIn("app", by["postgresql.table.size"])
        self.assertNotIn("secret", by.get("postgresql.table.count", set()))
        self.assertIn("postgresql.bgwriter.buffers.allocated", by)
        self.assertEqual({p["value"] for p in ups}, {1})
        self.assertNotIn("cannot connect", log)  # secret is never tried: no CONNECT privilege


class LifecycleTest(unittest.TestCase):
    def test_reconnect_after_restart(self):
        """A clean restart keeps PostgreSQL's counters (saved at shutdown): the receiver comes back on
        its own, one session again, and the cumulative series go on with the same start time (a
        new one would tell a delta converter the counters restarted, and it would count the whole
        value again)."""
        def commits(c, after=0):
            return [p for p in c.points() if p["metric"] == "postgresql.commits" and p["time"] > after
                    and p["resource"]["postgresql.database.name"] == "postgres"]
        with PgCluster() as pg:
            # PostgreSQL before 15 sets a database's stats_reset when its stats entry is first
            # written (the collector flushes every 500 ms): let that happen before the first scrape
            pg.sql("postgres", "SELECT 1")
            time.sleep(1.2)
            with Collector(receiver_config(base(pg))) as c:
                self.assertTrue(c.wait_for(lambda p: p["metric"] == "postgresql.commits", timeout=20))
                before = commits(c)[-1]
                pg.restart()
                t0 = time.time_ns()
                back = c.wait_for(lambda p: p["metric"] == "postgresql.commits" and p["time"] > t0, timeout=30)
                self.assertIsNotNone(back, c.log())
                start_after = pg.sql("postgres", "SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1e9)"
                                                 "::bigint")
                ups = [p for p in c.points() if p["metric"] == "dbi.postgresql.up" and p["time"] > back["time"]]
                self.assertTrue(c.wait_for(lambda p: p["metric"] == "dbi.postgresql.up" and p["value"] == 1 and
                                           p["time"] > back["time"], timeout=10))
                # one session again (not one per scrape): count our backends
                n = pg.sql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                       "'dbi-collector'")
                del ups
                after = commits(c, t0)
        self.assertGreater(int(start_after), before["start"])  # the server did restart
        self.assertTrue(after)
        for p in after:
            self.assertEqual(p["start"], before["start"])  # the same cumulative series
            self.assertGreaterEqual(p["value"], before["value"])  # counters kept
        self.assertLessEqual(int(n), 2)

    def test_unix_socket(self):
        with PgCluster() as pg:
            body = ("    endpoint: %s:%d\n    transport: unix\n    username: postgres\n    collection_interval: 1s\n"
                    "    initial_delay: 0s\n    jitter: 0\n" % (pg.host, pg.port))
            with Collector(receiver_config(body)) as c:
                p = c.wait_for(lambda p: p["metric"] == "postgresql.commits", timeout=20)
                n = pg.sql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                       "'dbi-collector' AND client_addr IS NULL AND backend_type = 'client backend'")
        self.assertIsNotNone(p)
        self.assertEqual(p["resource"]["service.instance.id"], "%s:%d" % (pg.host, pg.port))
        self.assertEqual(p["resource"]["server.address"], pg.host)
        self.assertGreaterEqual(int(n), 1)

    def test_password_sources(self):
        """scram-sha-256 over TCP: the password from the config, PGPASSWORD or PGPASSFILE; a wrong one
        fails the target without the password ever appearing in the collector's log."""
        pw = "s3cret-Pw'x"
        with PgCluster(auth="scram-sha-256", password=pw) as pg, TempDir() as td:
            passfile = os.path.join(td.path, "pgpass")
            with open(passfile, "w") as f:
                f.write("127.0.0.1:%d:*:postgres:%s\n" % (pg.port, pw.replace("\\", "\\\\").replace(":", "\\:")))
            os.chmod(passfile, 0o600)
            quoted = "'%s'" % pw.replace("'", "''")
            cases = [({}, "    password: %s\n" % quoted), ({"PGPASSWORD": pw}, ""), ({"PGPASSFILE": passfile}, "")]
            for env, extra in cases:
                env = dict(env)
                env.setdefault("PGPASSWORD", "")
                with Collector(receiver_config(base(pg, extra + "    databases: [postgres]\n")), env=env) as c:
                    up = c.wait_for(lambda p: p["metric"] == "dbi.postgresql.up", timeout=20)
                    log = c.log()
                self.assertEqual(up and up["value"], 1, (env, log))
                self.assertNotIn(pw, log)
            with Collector(receiver_config(base(pg, "    password: wrong-%s\n" % "Zq9") ),
                           env={"PGPASSWORD": ""}) as c:
                up = c.wait_for(lambda p: p["metric"] == "dbi.postgresql.up", timeout=20)
                log = c.log()
            self.assertEqual(up["value"], 0)
            self.assertIn("password authentication failed", log)
            self.assertNotIn("wrong-Zq9", log)

    def test_sighup_and_targets_file(self):
        with PgCluster() as a, PgCluster() as b:
            tf = os.path.join(a.dir, "..", "targets-%d.yaml" % os.getpid())
            tf = os.path.abspath(tf)
            self.addCleanup(lambda: os.path.exists(tf) and os.unlink(tf))
            with open(tf, "w") as f:
                f.write("[]\n")
            common = ("    username: postgres\n    collection_interval: 500ms\n    initial_delay: 0s\n"
                      "    jitter: 0\n    databases: [postgres]\n    targets_file: %s\n" % tf)

            def targets(*pgs):
                return "    targets:\n" + "".join("      - {endpoint: 127.0.0.1:%d, labels: {who: x%d}}\n"
                                                  % (p.port, p.port) for p in pgs)

            def inst(p):
                return "127.0.0.1:%d" % p.port

            with Collector(receiver_config(common + targets(a))) as c:
                pid = c.proc.pid
                self.assertTrue(c.wait_for(lambda p: p["resource"]["service.instance.id"] == inst(a), timeout=20))
                c.reload(receiver_config(common + targets(a, b)))
                p = c.wait_for(lambda p: p["resource"]["service.instance.id"] == inst(b), timeout=20)
                self.assertIsNotNone(p, c.log())
                self.assertEqual(p["resource"]["who"], "x%d" % b.port)
                c.reload(receiver_config(common + targets(b)))
                self.assertTrue(wait_until(lambda: "reconfigured" in c.log(), timeout=10), c.log())
                self.assertTrue(wait_until(lambda: a.sql("postgres", "SELECT count(*) FROM pg_stat_activity "
                                                                     "WHERE application_name = 'dbi-collector'")
                                           == "0", timeout=10))
                t0 = time.time_ns()
                time.sleep(1.5)
                recent = {q["resource"]["service.instance.id"] for q in c.points() if q["time"] > t0}
                self.assertEqual(recent, {inst(b)})
                # the targets file adds a, without a signal
                with open(tf + ".new", "w") as f:
                    f.write("- endpoint: 127.0.0.1:%d\n  labels: {from: file}\n" % a.port)
                os.replace(tf + ".new", tf)
                q = c.wait_for(lambda p: p["resource"]["service.instance.id"] == inst(a), timeout=20,
                               start=len(c.points()))
                self.assertIsNotNone(q, c.log())
                self.assertEqual(q["resource"]["from"], "file")
                # a broken file keeps the previous targets
                with open(tf, "w") as f:
                    f.write("- endpoint: [\n")
                time.sleep(2)
                t1 = time.time_ns()
                time.sleep(1.2)
                recent = {q["resource"]["service.instance.id"] for q in c.points() if q["time"] > t1}
                self.assertEqual(recent, {inst(a), inst(b)})
                self.assertEqual(c.proc.pid, pid)
                self.assertIn("targets file not applied", c.log())


class ReplicationTest(unittest.TestCase):
    def test_standby(self):
        """A real streaming standby: replication.data_delay, wal.lag and wal.delay per operation."""
        with PgCluster() as pg, TempDir() as td:
            sdir = os.path.join(td.path, "standby")
            pre = []
            if os.getuid() == 0:
                pw = pwd.getpwnam("postgres")
                os.chown(td.path, pw.pw_uid, pw.pw_gid)
                pre = ["runuser", "-u", "postgres", "--"]
            with socket.socket() as so:
                so.bind(("127.0.0.1", 0))
                sport = so.getsockname()[1]
            env = pg.client_env()
            basebackup = os.path.join(pg.bindir, "pg_basebackup")
            out = subprocess.run([basebackup, "--version"], stdout=subprocess.PIPE, text=True, check=True).stdout
            client_major = int(out.split()[-1].split(".")[0])
            server_major = int(pg.sql("postgres", "SHOW server_version_num")) // 10000
            # written here, not by -R: 15's pg_basebackup writes options (channel_binding) that an
            # older server's libpq rejects
            recovery = "primary_conninfo = 'host=%s port=%d user=postgres'\n" % (pg.host, pg.port)
            if server_major <= client_major:
                subprocess.run(pre + [basebackup, "-D", sdir, "-R", "-X", "stream", "-h", pg.host, "-p",
                                      str(pg.port), "-U", "postgres"], env=env, check=True, stdout=subprocess.DEVNULL)
            else:
                # pg_basebackup refuses servers newer than itself (the harness's client programs are
                # 15's): a copy of the cleanly stopped primary starts as its standby instead
                pg.stop_server()
                subprocess.run(pre + ["cp", "-a", pg.data, sdir], check=True)
                pg.start_server()
                open(os.path.join(sdir, "standby.signal"), "w").close()
            with open(os.path.join(sdir, "postgresql.auto.conf"), "a") as f:
                f.write("port = %d\nunix_socket_directories = '%s'\nlisten_addresses = ''\n"
                        "hot_standby = on\n%s" % (sport, sdir, recovery))
            ctl = os.path.join(pg.bindir, "pg_ctl")
            subprocess.run(pre + [ctl, "-D", sdir, "-l", os.path.join(td.path, "standby.log"), "-w", "start"],
                           env=env, check=True, stdout=subprocess.DEVNULL)
            try:
                streaming = wait_until(lambda: pg.sql("postgres", "SELECT count(*) FROM pg_stat_replication "
                                                                  "WHERE replay_lsn IS NOT NULL") == "1", timeout=30)
                if not streaming:
                    with open(os.path.join(td.path, "standby.log")) as f:
                        self.fail("the standby does not stream; its log:\n" + f.read()[-3000:])
                pg.pgbench_init("postgres", scale=1)
                bench = pg.pgbench_start("postgres", clients=2, seconds=20)
                cfg = base(pg, "    databases: [postgres]\n    metrics: {postgresql.wal.delay: {enabled: true}}\n")
                with Collector(receiver_config(cfg)) as c:
                    want = {("postgresql.wal.lag", op) for op in ("write", "flush", "replay")}
                    want |= {("postgresql.wal.delay", op) for op in ("write", "flush", "replay")}
                    want.add(("postgresql.replication.data_delay", None))

                    def have():
                        return {(p["metric"], p["attributes"].get("operation")) for p in c.points()}
                    self.assertTrue(wait_until(lambda: want <= have(), timeout=30), want - have())
                    pts = [p for p in c.points() if p["metric"] in NEEDS_STANDBY]
                bench.kill()
            finally:
                subprocess.run(pre + [ctl, "-D", sdir, "-m", "immediate", "stop"], env=env, check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for p in pts:
            unit, typ, mono, dbl, attrs, level, _ = NEEDS_STANDBY[p["metric"]]
            self.assertEqual((p["unit"], p["type"], p["monotonic"], p["double"]), (unit, typ, mono, dbl), p)
            self.assertEqual(set(p["attributes"]), attrs, p)
            self.assertEqual(set(p["resource"]), BASE_RES, p)
            self.assertEqual(p["attributes"]["replication_client"], "unix")  # the standby came over the socket
            self.assertGreaterEqual(p["value"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
