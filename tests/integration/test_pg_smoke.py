#!/usr/bin/python3
"""test_pg_smoke.py - smoke test of the Python throwaway-PostgreSQL harness
(tests/support/pgcluster.py over scripts/pg-cluster.sh): a real PostgreSQL 15 starts, answers
psql over the unix socket and TCP (also on 127.0.0.2 and 127.0.0.3, and over verify-full TLS
with certificate auth), has pg_stat_statements and auto_explain, takes pgbench load, restarts,
and is removed without leftovers, also when the owning process gets SIGTERM or SIGKILL.
"""

import os
import signal
import subprocess
import sys
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPORT = os.path.join(HERE, "..", "support")
sys.path.insert(0, SUPPORT)
sys.dont_write_bytecode = True  # keep the source tree clean

from pgcluster import PgCluster, PgError, TempDir, make_certs, pids_alive, procs_in_dir, wait_until  # noqa: E402


class PgSmoke(unittest.TestCase):
    def assert_gone(self, path, pids):
        self.assertFalse(os.path.exists(path), path)
        wait_until(lambda: not pids_alive(pids), timeout=5)
        self.assertEqual(pids_alive(pids), [])
        self.assertEqual(procs_in_dir(path), [])

    def test_basic(self):
        with PgCluster() as pg:
            d, pids = pg.dir, pg.server_pids()
            self.assertGreaterEqual(len(pids), 2)
            self.assertEqual(pg.host, pg.dir)
            self.assertEqual(pg.user, "postgres")
            self.assertTrue(os.path.isfile(pg.log))
            for k in ("PGHOST", "PGPORT", "PGDATA", "PGUSER", "DBI_PG_LOG", "DBI_PG_DIR"):
                self.assertIn(k, pg.env)
            # unix socket, then TCP
            self.assertEqual(pg.sql("postgres", "SELECT inet_server_addr() IS NULL"), "t")
            self.assertEqual(pg.sql("postgres", "SELECT host(inet_server_addr())", host="127.0.0.1"), "127.0.0.1")
            libs = pg.sql("postgres", "SHOW shared_preload_libraries")
            self.assertIn("pg_stat_statements", libs)
            self.assertIn("auto_explain", libs)
            self.assertEqual(pg.sql("postgres", "SHOW auto_explain.log_format"), "json")
            self.assertEqual(pg.sql("postgres", "SHOW pg_stat_statements.track"), "all")
            self.assertEqual(pg.sql("postgres", "SHOW track_functions"), "all")
            self.assertEqual(pg.sql("postgres", "SHOW fsync"), "off")
            self.assertGreaterEqual(int(pg.sql("postgres", "SELECT count(*) FROM pg_stat_statements")), 0)
            # the extension is also in template1, so new databases have it
            pg.sql("postgres", "CREATE DATABASE app")
            self.assertEqual(pg.sql("app", "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"),
                             "1")
            rows = pg.rows("postgres", "SELECT 1, 'a|b', NULL UNION ALL SELECT 2, 'c', 'd' ORDER BY 1")
            self.assertEqual(rows, [("1", "a|b", ""), ("2", "c", "d")])
            with self.assertRaises(PgError):
                pg.sql("postgres", "SELECT * FROM no_such_table")

            # pgbench: synchronous in the app db, background in postgres
            out = pg.pgbench("app", clients=2, seconds=1)
            self.assertIn("number of failed transactions: 0", out)
            bench = pg.pgbench_start("postgres", clients=4, jobs=2, seconds=2)
            self.assertEqual(bench.wait(timeout=120), 0)
            n = int(pg.sql("postgres", "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                                       "WHERE query LIKE 'UPDATE pgbench_accounts%'"))
            self.assertGreater(n, 10)
            # a background run can also be cut short
            bench = pg.pgbench_start("postgres", clients=2, seconds=60)
            bench.kill()
            self.assertIsNotNone(bench.returncode)

            pg.sql("postgres", "SELECT pg_sleep(0.15)")
            self.assertTrue(wait_until(lambda: '"Query Text": "SELECT pg_sleep(0.15)"' in pg.log_text()))
        self.assertIsNone(pg.dir)
        self.assert_gone(d, pids)

    def test_restart(self):
        with PgCluster(settings={"work_mem": "8MB"}) as pg:
            self.assertEqual(pg.sql("postgres", "SHOW work_mem"), "8MB")
            pg.sql("postgres", "CREATE TABLE t AS SELECT 42 AS x")
            port = pg.port
            pg.stop_server()
            with self.assertRaises(PgError):
                pg.sql("postgres", "SELECT 1")
            pg.start_server()
            self.assertEqual(pg.port, port)
            self.assertEqual(pg.sql("postgres", "SELECT x FROM t"), "42")
            pg.restart()
            self.assertEqual(pg.sql("postgres", "SELECT x FROM t", host="127.0.0.1"), "42")
            d, pids = pg.dir, pg.server_pids()
        self.assert_gone(d, pids)

    def test_listen_many(self):
        with PgCluster(listen=["127.0.0.2", "127.0.0.3"]) as pg:
            self.assertEqual(pg.listen, ["127.0.0.2", "127.0.0.3"])
            self.assertEqual(pg.tcp_host, "127.0.0.2")
            for addr in pg.listen:
                self.assertEqual(pg.sql("postgres", "SELECT host(inet_server_addr())", host=addr), addr)
            with self.assertRaises(PgError):
                pg.sql("postgres", "SELECT 1", host="127.0.0.1")

    def test_ssl_and_password(self):
        with TempDir() as certs:
            make_certs(certs.path, cn="dbi_cert", san="DNS:localhost,IP:127.0.0.1")
            ca = os.path.join(certs.path, "ca.crt")
            hba = ["hostssl all dbi_cert 127.0.0.0/8 cert"]
            with PgCluster(ssl_dir=certs.path, hba=hba, auth="scram-sha-256", password="s3cret'x") as pg:
                pg.sql("postgres", "CREATE ROLE dbi_cert LOGIN")
                self.assertEqual(pg.sql("postgres", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                                        host="localhost", sslmode="verify-full", sslrootcert=ca), "t")
                ci = pg.conninfo("postgres", "127.0.0.1", user="dbi_cert", sslmode="verify-full", sslrootcert=ca,
                                 sslcert=os.path.join(certs.path, "client.crt"),
                                 sslkey=os.path.join(certs.path, "client.key"))
                self.assertEqual(pg.sql("postgres", "SELECT current_user", conninfo=ci), "dbi_cert")
                # scram over TCP: the right password works, a wrong one does not
                bad = pg.conninfo("postgres", "127.0.0.1", password="wrong")
                with self.assertRaises(PgError):
                    pg.sql("postgres", "SELECT 1", conninfo=bad)
                self.assertEqual(pg.sql("postgres", "SELECT 1", host="127.0.0.1"), "1")
            path = certs.path
        self.assertFalse(os.path.exists(path))

    def test_script_sweep(self):
        """pg-cluster.sh sweep removes clusters of dead owners and dead owner-less ones only."""
        script = os.path.join(SUPPORT, "..", "..", "scripts", "pg-cluster.sh")

        def run(*args):
            return subprocess.run([script] + list(args), stdout=subprocess.PIPE, text=True, check=True).stdout

        with TempDir() as root:
            dead_owner, stopped, running = (os.path.join(root.path, n) for n in ("a", "b", "c"))
            os.mkdir(dead_owner)  # an existing empty DIR is fine
            for d in (dead_owner, stopped, running):
                self.assertIn("export PGPORT=", run("start", d))
            pids = []
            for d in (dead_owner, running):
                with open(os.path.join(d, "data", "postmaster.pid")) as f:
                    pids.append(int(f.readline()))
            p = subprocess.Popen(["true"])  # a PID that is certainly dead
            p.wait()
            with open(os.path.join(dead_owner, ".dbi-owner"), "w") as f:
                f.write("%d 1\n" % p.pid)
            run("stop-server", stopped)
            with open(os.path.join(stopped, ".dbi-pgcluster"), "w") as f:
                f.write("0\n")  # started long ago
            with self.assertRaises(subprocess.CalledProcessError):
                run("start", running)  # not empty: refused
            run("sweep", root.path)
            self.assertFalse(os.path.exists(dead_owner))
            self.assertFalse(os.path.exists(stopped))
            self.assertTrue(os.path.isdir(running))
            self.assertEqual(pids_alive(pids), [pids[1]])
            self.assertEqual(run("status", running).strip(), "running")
            run("stop", running)
            run("stop", running)  # idempotent
            self.assertFalse(os.path.exists(running))
            self.assertEqual(pids_alive(pids), [])

    def _child_cluster(self, sig):
        """A child process starts a cluster, reports it, and is then killed with sig."""
        code = textwrap.dedent("""
            import sys, time
            sys.path.insert(0, %r)
            from pgcluster import PgCluster
            pg = PgCluster().start()
            print(pg.dir, *pg.server_pids(), flush=True)
            time.sleep(600)
        """ % SUPPORT)
        child = subprocess.Popen([sys.executable, "-B", "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            words = child.stdout.readline().split()
            self.assertGreaterEqual(len(words), 3, words)
            d, pids = words[0], [int(w) for w in words[1:]]
            self.assertTrue(os.path.isdir(d))
            child.send_signal(sig)
            self.assertEqual(child.wait(timeout=60), -sig)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        return d, pids

    def test_cleanup_on_sigterm(self):
        d, pids = self._child_cluster(signal.SIGTERM)
        self.assert_gone(d, pids)  # removed before the child died

    def test_cleanup_on_sigkill(self):
        d, pids = self._child_cluster(signal.SIGKILL)
        self.assertTrue(wait_until(lambda: not os.path.exists(d), timeout=20), d)
        self.assert_gone(d, pids)


if __name__ == "__main__":
    unittest.main(verbosity=2)
