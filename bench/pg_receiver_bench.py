#!/usr/bin/python3
"""pg_receiver_bench.py - what the postgresql receiver costs, measured on real PostgreSQL 15
clusters (the test harness's throwaway clusters) with the real dbi-collector and the nop exporter.

    bench/pg_receiver_bench.py --targets 100 --seconds 60
    bench/pg_receiver_bench.py --targets 1 --dbs 4 --seconds 60      # per-database groups too
    bench/pg_receiver_bench.py --targets 1000 --rings-points 4096 --rings-bytes 64KiB

Prints one JSON object:
  cpu_us_per_target_scrape  collector user+system CPU time / target scrapes in the window
  db_ms_per_target_scrape   backend time (total_exec_time + total_plan_time) of the collector's own
                            statements in pg_stat_statements (the collector connects as its own role,
                            dbi_bench, so its rows are exactly its own) / target scrapes
  statements_per_target_scrape, scrapes, rss_kib / rss_anon_kib / rss_shmem_kib (VmRSS split)
  drops                     points dropped anywhere since the start (full rings, overruns, limits)
Targets are loopback addresses of clusters that listen on up to 60 addresses each.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))
sys.dont_write_bytecode = True

from pgcluster import PgCluster  # noqa: E402
from dbicollector import binary_dir  # noqa: E402

PER_CLUSTER = 60


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem_kib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def scrapes(shm):
    r = subprocess.run([os.path.join(binary_dir(), "dbi-stat"), "-n", shm, "--once", "--json"],
                       stdout=subprocess.PIPE, text=True, check=True)
    js = json.loads(r.stdout)
    st = js["stats"]["receivers"]
    tot = {}
    for b in js["stats"].get("runtime", []):
        for k in ("series", "registry_bytes"):
            if k in b.get("counters", {}):
                tot[k] = b["counters"][k]["value"]
    for b in st:
        if b["type"] == "postgresql":
            for k, v in b["counters"].items():
                tot[k] = tot.get(k, 0) + v["value"]
    # every point dropped anywhere (full rings included): small rings must not lose data
    tot["drops"] = sum(v["value"] for sec in ("receivers", "threads", "runtime") for b in js["stats"].get(sec, [])
                       for k, v in b.get("counters", {}).items() if k.startswith("dropped.") or k == "ring_full")
    return tot


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--dbs", type=int, default=0, help="extra databases per cluster (with pgbench tables)")
    ap.add_argument("--interval", default="10s")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--scrapers", type=int, default=1)
    ap.add_argument("--rings-points", type=int, default=0)
    ap.add_argument("--rings-bytes", default="")
    ap.add_argument("--wrap", default="", help="command prefix for the collector (e.g. 'heaptrack -o F')")
    ap.add_argument("--statements", choices=("on", "off"), default="on", help="the statements group")
    a = ap.parse_args()

    nclusters = (a.targets + PER_CLUSTER - 1) // PER_CLUSTER
    clusters, targets = [], []
    try:
        for c in range(nclusters):
            n = min(PER_CLUSTER, a.targets - c * PER_CLUSTER)
            addrs = ["127.%d.%d.%d" % (1 + c // 250, c % 250, i) for i in range(2, 2 + n)]
            pg = PgCluster(listen=addrs, settings={"max_connections": str(n * (2 + a.dbs) + 20)}).start()
            clusters.append(pg)
            pg.sql("postgres", "CREATE ROLE dbi_bench LOGIN")
            pg.sql("postgres", "GRANT pg_monitor TO dbi_bench")
            for d in range(a.dbs):
                pg.sql("postgres", "CREATE DATABASE bench%d" % d)
                pg.pgbench_init("bench%d" % d, scale=1)
            targets += ["%s:%d" % (x, pg.port) for x in addrs]
        shm = "dbi.pgbench%d" % os.getpid()
        rings = ""
        if a.rings_points or a.rings_bytes:
            rings = "  rings: {%s}\n" % ", ".join(
                x for x in ("points: %d" % a.rings_points if a.rings_points else "",
                            "bytes: %s" % a.rings_bytes if a.rings_bytes else "") if x)
        cfg = ("receivers:\n  postgresql:\n    username: dbi_bench\n    collection_interval: %s\n"
               "    databases: [%s]\n%s    targets:\n" % (a.interval, '"*"' if a.dbs else "postgres",
                                               "    groups: {statements: false}\n"
                                               if a.statements == "off" else "") +
               "".join("      - {endpoint: '%s'}\n" % t for t in targets) +
               "exporters:\n  nop:\nservice:\n  pipelines:\n    metrics: {receivers: [postgresql], exporters: [nop]}\n"
               "runtime:\n  shm: {name: %s}\n  threads: {scrapers: %d}\n%s" % (shm, a.scrapers, rings))
        path = "/tmp/%s.yaml" % shm
        with open(path, "w") as f:
            f.write(cfg)
        # its own process group: a --wrap wrapper does not pass SIGTERM on to the collector
        coll = subprocess.Popen(a.wrap.split() + [os.path.join(binary_dir(), "dbi-collector"), "--config", path],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            interval_s = float(a.interval.rstrip("s"))
            time.sleep(2 * interval_s + 3)
            for pg in clusters:
                pg.sql("postgres", "SELECT pg_stat_statements_reset()")
            c0, s0 = proc_cpu_s(coll.pid), scrapes(shm)
            time.sleep(a.seconds)
            c1, s1 = proc_cpu_s(coll.pid), scrapes(shm)
            mem = proc_mem_kib(coll.pid)
            time.sleep(1.5)  # backends flush their statement counters
            db_ms, calls = 0.0, 0
            for pg in clusters:
                r = pg.rows("postgres", "SELECT coalesce(sum(total_exec_time + total_plan_time), 0), "
                                        "coalesce(sum(calls), 0) FROM pg_stat_statements "
                                        "WHERE userid = 'dbi_bench'::regrole")
                db_ms += float(r[0][0])
                calls += int(r[0][1])
        finally:
            os.killpg(coll.pid, signal.SIGTERM)
            coll.wait(timeout=60)
            os.unlink(path)
        n = s1["scrapes"] - s0["scrapes"]
        print(json.dumps({
            "targets": a.targets, "dbs_per_target": 1 + a.dbs, "interval": a.interval, "window_s": a.seconds,
            "scrapes": n, "failures": s1["scrape_failures"] - s0["scrape_failures"],
            "overruns": s1["dropped.scrape_overrun"] - s0["dropped.scrape_overrun"],
            "drops": s1["drops"],  # since the start, warm-up included: rings full, overruns, limits
            "cpu_us_per_target_scrape": round((c1 - c0) / max(n, 1) * 1e6, 1),
            "db_ms_per_target_scrape": round(db_ms / max(n, 1), 3),
            "statements_per_target_scrape": round(calls / max(n, 1), 1),
            "points_per_target_scrape": round((s1["points"] - s0["points"]) / max(n, 1), 1),
            "rss_kib": mem.get("VmRSS"), "rss_anon_kib": mem.get("RssAnon"), "rss_file_kib": mem.get("RssFile"),
            "rss_shmem_kib": mem.get("RssShmem"), "hwm_kib": mem.get("VmHWM"),
            "statements_group": a.statements, "series": s1.get("series"),
            "registry_kib": (s1.get("registry_bytes") or 0) // 1024,
        }, indent=1))
    finally:
        for pg in clusters:
            pg.stop()


if __name__ == "__main__":
    main()
