"""dbicollector.py - run the real dbi-collector binary for integration tests and read what
its debug exporter writes with `format: json` (one JSON object per exported point).

    with Collector(config_yaml) as c:
        c.wait_for(lambda p: p["metric"] == "postgresql.commits", timeout=20)
        pts = c.points()            # everything so far, in order
        c.reload(new_yaml)          # rewrite the config file and send SIGHUP
        c.log()                     # the collector's own log (stderr)
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time


def binary_dir():
    return os.environ.get("DBI_BINARY_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                            "build")


class Collector:
    def __init__(self, config, env=None):
        self.config = config
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self._pts = []
        self._lock = threading.Lock()
        self.tmp = tempfile.mkdtemp(prefix="dbi-coll-")
        self.cfg_path = os.path.join(self.tmp, "config.yaml")
        self.err_path = os.path.join(self.tmp, "collector.log")
        self.bad_lines = 0
        self._log_text = None

    def __enter__(self):
        return self.start()

    def __exit__(self, etype, *exc):
        rc = self.stop()
        if etype is None and rc != 0:
            raise AssertionError("dbi-collector exited %s; its log:\n%s" % (rc, self.log()[-4000:]))

    def start(self):
        self._log_text = None
        if not os.path.isdir(self.tmp):
            os.makedirs(self.tmp)
        with open(self.cfg_path, "w") as f:
            f.write(self.config)
        self._err = open(self.err_path, "w")
        self.proc = subprocess.Popen([os.path.join(binary_dir(), "dbi-collector"), "--config", self.cfg_path],
                                     stdout=subprocess.PIPE, stderr=self._err, env=self.env, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                p = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            with self._lock:
                self._pts.append(p)

    def stop(self):
        rc = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        elif self.proc:
            rc = self.proc.returncode
        if self.proc:
            self._reader.join(timeout=10)
            self.proc.stdout.close()
            self._err.close()
            with open(self.err_path) as f:
                self._log_text = f.read()
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.proc = None
        return rc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def points(self):
        with self._lock:
            return list(self._pts)

    def log(self):
        if self._log_text is not None:
            return self._log_text
        with open(self.err_path) as f:
            return f.read()

    def reload(self, config):
        self.config = config
        tmp = self.cfg_path + ".new"
        with open(tmp, "w") as f:
            f.write(config)
        os.replace(tmp, self.cfg_path)
        self.proc.send_signal(signal.SIGHUP)

    def wait_for(self, pred, timeout=30, start=0):
        """Wait until a point (index >= start) satisfies pred; return it (or None on timeout)."""
        end = time.time() + timeout
        i = start
        while time.time() < end:
            pts = self.points()
            for p in pts[i:]:
                if pred(p):
                    return p
            i = len(pts)
            if not self.alive():
                return None
            time.sleep(0.05)
        return None

    def wait_count(self, pred, n, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            got = [p for p in self.points() if pred(p)]
            if len(got) >= n:
                return got
            time.sleep(0.1)
        return [p for p in self.points() if pred(p)]


def receiver_config(body, exporter_extra="", shm=None, runtime_extra=""):
    """A whole collector config: the postgresql receiver `body` (indented mapping lines) to debug/json."""
    shm = shm or "dbi.t%d" % os.getpid()
    # a collector killed with -9 leaves its segment (on purpose: the next start finds it stale)
    atexit.register(lambda: os.path.exists("/dev/shm/" + shm) and os.unlink("/dev/shm/" + shm))
    # circuit state files go to a directory of this test run, never a shared one
    state = tempfile.mkdtemp(prefix="dbi-state-")
    atexit.register(shutil.rmtree, state, True)
    return ("receivers:\n  postgresql:\n" + body +
            "exporters:\n  debug: {format: json%s}\n" % exporter_extra +
            "service:\n  pipelines:\n    metrics: {receivers: [postgresql], exporters: [debug]}\n" +
            "runtime:\n  shm: {name: %s}\n  state_dir: %s\n" % (shm, state) + runtime_extra)
