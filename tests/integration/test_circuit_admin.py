#!/usr/bin/python3
"""test_circuit_admin.py - circuit breakers in the real dbi-collector, without a database.

The loadgen receiver's test-only `circuit_test` option gives each simulated target a circuit
breaker that one call per interval drives; a target listed in `fail_file` fails its calls
(connection refused). Against that, this test checks: circuits opening and probing back to
closed, the admin API on the health_check extension (list, one circuit, force open, force
closed, auto, reset, and its 400/403/404/405/409 answers), dbi-stat's CIRCUITS view in text
and JSON, the dbi.circuit.* metrics, the state file across a restart (an open circuit stays
open, a forced one stays forced, a target no longer configured is dropped), a corrupt state
file (warned about, ignored), and the config check that keeps the admin API on loopback.

Nothing here waits for a fixed time: every step polls until its condition holds, with a
generous limit. The end-to-end test against real PostgreSQL (a stopped cluster's circuit
opens and its series stop) belongs to the PostgreSQL receiver's tests.
"""

import http.client
import json
import os
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.dont_write_bytecode = True  # keep the source tree clean

from collector import BIN, Collector  # noqa: E402

LONG = 60.0  # limit for conditions that need a few collector intervals

CONFIG = """
receivers:
  loadgen:
    targets: {targets}
    series_per_target: 1
    rate: 20
    circuit_test:
      enabled: true
      interval: 50ms
      fail_file: {dir}/fail
      circuit_breaker: {{open_duration: 1h, max_open_duration: 2h}}
  loadgen/fast:
    targets: 1
    series_per_target: 1
    rate: 20
    circuit_test:
      enabled: true
      interval: 50ms
      fail_file: {dir}/fail_fast
      circuit_breaker: {{open_duration: 200ms, max_open_duration: 400ms, half_open_successes: 3}}
exporters:
  debug: {{verbosity: normal}}
extensions:
  health_check:
    endpoint: 127.0.0.1:{{port:health}}
    admin: {{enabled: true, endpoint: "{admin_host}:{{port:admin}}"}}
service:
  extensions: [health_check]
  pipelines:
    metrics: {{receivers: [loadgen, loadgen/fast], exporters: [debug]}}
runtime:
  shm: {{name: {{shm}}}}
  state_dir: {dir}/state
  threads: {{pin: none}}
"""


def config(work, targets=3, admin_host="127.0.0.1"):
    return CONFIG.format(targets=targets, dir=work, admin_host=admin_host)


def poll(pred, timeout=LONG, interval=0.05):
    """pred() until true or timeout; returns its last value (no exception: callers report)."""
    import time
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


class Admin:
    """The admin API and dbi-stat of one collector."""

    def __init__(self, col):
        self.col = col

    def request(self, method, path, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.col.ports["admin"], timeout=10)
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            body = r.read().decode()
        finally:
            c.close()
        try:
            doc = json.loads(body)
        except ValueError:
            raise AssertionError("not JSON (%d): %r" % (r.status, body))
        return r.status, doc

    def circuits(self):
        st, doc = self.request("GET", "/admin/circuits")
        assert st == 200, (st, doc)
        return {(c["receiver"], c["target"]): c for c in doc["circuits"]}

    def circuit(self, target, owner="loadgen"):
        return self.circuits().get((owner, target))

    def stat_text(self):
        r = subprocess.run([os.path.join(BIN, "dbi-stat"), "-n", self.col.shm, "--once", "--interval", "0"],
                           capture_output=True, text=True, timeout=LONG)
        assert r.returncode == 0, r.stderr
        return r.stdout


class CircuitAdmin(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="dbi-circuit-")
        self.addCleanup(tmp.cleanup)
        self.work = tmp.name
        self.fail_file = os.path.join(self.work, "fail")
        self.fail_fast = os.path.join(self.work, "fail_fast")
        self.state_dir = os.path.join(self.work, "state")

    def state_file(self, col, owner):
        return os.path.join(self.state_dir, "%s.circuits.%s" % (col.shm, owner.replace("/", "_")))

    def wait_circuit(self, api, target, pred, owner="loadgen", what=""):
        last = {}

        def check():
            c = api.circuit(target, owner)
            last["c"] = c
            return c is not None and pred(c)
        if not poll(check):
            self.fail("circuit %s/%s never became %s; last: %s\nlog:\n%s" %
                      (owner, target, what, json.dumps(last.get("c"), indent=1), api.col.log()[-3000:]))
        return last["c"]

    def stop(self, col):
        self.assertEqual(col.stop(), 0, col.log()[-3000:])

    def restart(self, col):
        """Start again; the log keeps the earlier runs, so wait for one more "started"."""
        n = col.log().count('msg="started"')
        col.start(wait_started=False)
        if not poll(lambda: not col.alive() or col.log().count('msg="started"') > n):
            self.fail("collector did not start again:\n" + col.log()[-3000:])
        self.assertTrue(col.alive(), col.log()[-3000:])

    def test_admin_stat_metrics_restart(self):
        write(self.fail_file, "loadgen-0:5432\n")
        write(self.fail_fast, "")
        col = Collector(config(self.work))
        self.addCleanup(col.kill)
        api = Admin(col)
        wait = self.wait_circuit

        # --- refused opens at once; the others stay closed and keep being called
        c0 = wait(api, "loadgen-0:5432", lambda c: c["state"] == "open", what="open")
        self.assertEqual(c0["last_reason"], "connection refused")
        self.assertEqual(c0["last_error"], "refused: loadgen circuit_test: target listed in fail_file")
        self.assertGreater(c0["next_probe_in_s"], 3000)
        self.assertEqual(c0["override"], "none")
        wait(api, "loadgen-1:5432", lambda c: c["successes"] >= 3, what="called")
        all_ = api.circuits()
        self.assertEqual(sorted(all_), [("loadgen", "loadgen-0:5432"), ("loadgen", "loadgen-1:5432"),
                                        ("loadgen", "loadgen-2:5432"), ("loadgen/fast", "loadgen-0:5432")])
        self.assertTrue(all(c["state"] == "closed" for k, c in all_.items() if k != ("loadgen", "loadgen-0:5432")))
        self.assertIn('target=loadgen-0:5432 from=closed to=open reason="connection refused"', col.log())

        # --- one circuit by target; the same target in two receivers needs ?receiver=
        st, doc = api.request("GET", "/admin/circuits/loadgen-0:5432")
        self.assertEqual(st, 409, doc)
        self.assertIn("loadgen, loadgen/fast", doc["error"])
        st, doc = api.request("GET", "/admin/circuits/loadgen-0:5432?receiver=loadgen")
        self.assertEqual((st, doc["state"]), (200, "open"))
        st, doc = api.request("GET", "/admin/circuits/loadgen-2%3A5432")  # percent-encoded
        self.assertEqual((st, doc["target"]), (200, "loadgen-2:5432"))
        st, doc = api.request("GET", "/admin/circuits?receiver=loadgen/fast")
        self.assertEqual([c["target"] for c in doc["circuits"]], ["loadgen-0:5432"])

        # --- errors
        self.assertEqual(api.request("POST", "/admin/circuits/nope:5432/open")[0], 404)
        self.assertEqual(api.request("GET", "/admin/circuits/nope:5432")[0], 404)
        st, doc = api.request("POST", "/admin/circuits/loadgen-1:5432/explode")
        self.assertEqual(st, 400)
        self.assertIn("unknown action", doc["error"])
        self.assertEqual(api.request("POST", "/admin/circuits/loadgen-1:5432")[0], 400)
        self.assertEqual(api.request("PUT", "/admin/circuits/loadgen-1:5432/open")[0], 405)
        self.assertEqual(api.request("POST", "/admin/circuits")[0], 405)
        self.assertEqual(api.request("GET", "/admin/other")[0], 404)
        st, doc = api.request("POST", "/admin/circuits/loadgen-1:5432/open", {"Origin": "http://evil.example"})
        self.assertEqual(st, 403)
        st, doc = api.request("GET", "/admin/circuits", {"Host": "evil.example:%d" % col.ports["admin"]})
        self.assertEqual(st, 403)
        self.assertEqual(api.circuit("loadgen-1:5432")["override"], "none")  # nothing changed

        # --- force open: answered at once as requested, applied by the scraper
        st, doc = api.request("POST", "/admin/circuits/loadgen-1:5432/open")
        self.assertEqual(st, 200, doc)
        self.assertEqual((doc["override"], doc["effective_state"]), ("force_open", "open"))
        c1 = wait(api, "loadgen-1:5432", lambda c: c["state"] == "open" and not c["override_pending"],
                  what="forced open")
        self.assertEqual(c1["last_reason"], "forced open by admin")
        self.assertIsNone(c1["next_probe"])  # forced: no probe
        denied = c1["denied"]
        wait(api, "loadgen-1:5432", lambda c: c["denied"] >= denied + 3, what="denying")

        # --- dbi-stat shows the same, text and JSON
        doc = col.stat()
        circ = {(c["receiver"], c["target"]): c for c in doc["circuits"]}
        self.assertEqual(len(circ), 4)
        s0, s1 = circ[("loadgen", "loadgen-0:5432")], circ[("loadgen", "loadgen-1:5432")]
        self.assertEqual((s0["state"], s0["override"]), ("open", "none"))
        self.assertGreater(s0["next_probe_in_s"], 3000)
        self.assertGreaterEqual(s0["failures"], 1)
        self.assertEqual((s1["state"], s1["override"], s1["override_active"]), ("open", "force_open", "force_open"))
        self.assertIsNone(s1["next_probe_in_s"])
        self.assertEqual(circ[("loadgen", "loadgen-2:5432")]["state"], "closed")
        self.assertFalse(any(o["kind"] == "circuit" for o in doc["other_regions"]))
        text = api.stat_text()
        self.assertIn("CIRCUITS", text)
        lines = {" ".join(ln.split()[:2]): ln for ln in text.splitlines() if ln.startswith("  loadgen-")}
        self.assertRegex(lines["loadgen-0:5432 loadgen"], r" open +none +\d+ +\d+  \d+m\d+s")
        self.assertIn("force_open", lines["loadgen-1:5432 loadgen"])
        self.assertIn("never (forced)", lines["loadgen-1:5432 loadgen"])

        # --- force closed: it keeps failing and stays closed
        st, doc = api.request("POST", "/admin/circuits/loadgen-0:5432/close?receiver=loadgen")
        self.assertEqual((st, doc["effective_state"]), (200, "closed"))
        c0 = wait(api, "loadgen-0:5432", lambda c: c["state"] == "closed", what="forced closed")
        wait(api, "loadgen-0:5432", lambda c: c["failures"] >= c0["failures"] + 5 and c["state"] == "closed",
             what="failing while forced closed")
        # --- auto: the rules decide again, and the next refusal opens it
        st, doc = api.request("POST", "/admin/circuits/loadgen-0:5432/auto?receiver=loadgen")
        self.assertEqual((st, doc["override"]), (200, "none"))
        c0 = wait(api, "loadgen-0:5432", lambda c: c["state"] == "open" and c["override"] == "none",
                  what="open again")
        # --- reset: closed with a fresh window, then refused again -> open
        transitions = c0["transitions"]
        st, doc = api.request("POST", "/admin/circuits/loadgen-0:5432/reset?receiver=loadgen")
        self.assertEqual(st, 200)
        self.assertEqual(doc["effective_state"], "closed")
        wait(api, "loadgen-0:5432", lambda c: c["transitions"] >= transitions + 2 and c["state"] == "open",
             what="reset and reopened")
        self.assertIn('reason="reset by admin"', col.log())

        # --- a target that recovers: open -> half-open (probes) -> closed, in the fast receiver
        write(self.fail_fast, "loadgen-0:5432\n")
        wait(api, "loadgen-0:5432", lambda c: c["state"] == "open", owner="loadgen/fast", what="open")
        wait(api, "loadgen-0:5432", lambda c: c["transitions"] >= 3, owner="loadgen/fast", what="probed, reopened")
        write(self.fail_fast, "")
        cf = wait(api, "loadgen-0:5432", lambda c: c["state"] == "closed", owner="loadgen/fast",
                  what="closed after recovering")
        self.assertEqual(cf["last_reason"], "3 successful calls in half-open")
        self.assertGreaterEqual(cf["probes"], 2)
        self.assertIn("target=loadgen-0:5432 from=half_open to=closed", col.log())

        # --- metrics: every target's three series reach the exporter
        def metrics_seen():
            out = col.output()
            return all('%s{target="%s"}' % (m, t) in out
                       for m in ("dbi.circuit.state", "dbi.circuit.transitions", "dbi.circuit.failures")
                       for t in ("loadgen-0:5432", "loadgen-1:5432", "loadgen-2:5432"))
        self.assertTrue(poll(metrics_seen), col.output()[-2000:])
        self.assertIn('dbi.circuit.state{target="loadgen-1:5432"} 1', col.output())

        # --- restart: the state file keeps open circuits open and forced ones forced
        before = api.circuits()
        self.stop(col)
        path = self.state_file(col, "loadgen")
        self.assertTrue(os.path.isfile(path), os.listdir(self.state_dir))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.state_dir).st_mode), 0o700)
        self.assertTrue(os.path.isfile(self.state_file(col, "loadgen/fast")))
        self.assertIn("c loadgen-2:5432 closed none", read(path))

        # loadgen-2 is no longer configured, and nothing fails any more
        write(self.fail_file, "")
        col.write_config(config(self.work, targets=2))
        self.restart(col)
        after = api.circuits()
        a0, a1 = after[("loadgen", "loadgen-0:5432")], after[("loadgen", "loadgen-1:5432")]
        b0 = before[("loadgen", "loadgen-0:5432")]
        self.assertEqual(a0["state"], "open")  # until its probe time, an hour away
        self.assertEqual(a0["next_probe"], b0["next_probe"])
        self.assertEqual(a0["last_reason"], "connection refused")
        self.assertEqual((a1["state"], a1["override"]), ("open", "force_open"))
        self.assertNotIn(("loadgen", "loadgen-2:5432"), after)
        self.assertIn('msg="circuit state restored" receiver=loadgen target=loadgen-0:5432 state=open', col.log())
        # still open a while later although its calls would now succeed
        denied = a0["denied"]
        wait(api, "loadgen-0:5432", lambda c: c["denied"] >= denied + 3 and c["state"] == "open",
             what="still open after the restart")

        # --- a reload that rebuilds the pipelines keeps the states too (saved at stop, loaded at create)
        col.write_config(config(self.work, targets=2).replace("rate: 20", "rate: 25"))
        col.sighup()
        col.wait_log("reload applied")
        self.assertIn("draining pipelines to rebuild them", col.log())
        after = api.circuits()
        self.assertEqual(after[("loadgen", "loadgen-0:5432")]["state"], "open")
        self.assertEqual(after[("loadgen", "loadgen-0:5432")]["next_probe"], b0["next_probe"])
        self.assertEqual(after[("loadgen", "loadgen-1:5432")]["override"], "force_open")
        self.stop(col)
        self.assertNotIn("loadgen-2:5432", read(path))  # the stale entry is gone

        # --- a corrupt state file is reported and ignored
        write(path, "dbi-circuits 1\nowner loadgen\ngarbage\n")
        self.restart(col)
        after = api.circuits()
        self.assertTrue(all(c["state"] == "closed" and c["override"] == "none"
                            for (o, t), c in after.items() if o == "loadgen"), after)
        self.assertIn("ignoring circuit state file", col.log())
        self.stop(col)

    def test_admin_must_be_loopback(self):
        for host, ok in (("0.0.0.0", False), ("192.0.2.1", False), ("localhost", True), ("127.0.0.2", True),
                         ("[::1]", True)):
            path = os.path.join(self.work, "validate.yaml")
            write(path, config(self.work, admin_host=host).replace("{port:health}", "13133")
                  .replace("{port:admin}", "13134").replace("{shm}", "dbi.validate"))
            r = subprocess.run([os.path.join(BIN, "dbi-collector"), "validate", "--config", path],
                               capture_output=True, text=True, timeout=LONG)
            if ok:
                self.assertEqual(r.returncode, 0, (host, r.stdout + r.stderr))
            else:
                self.assertNotEqual(r.returncode, 0, host)
                self.assertIn("admin.endpoint must be a loopback address", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
