#!/usr/bin/python3
"""dbi_process.py - run the real dbi-collector from a Python test.

    with Collector(config_yaml, name="otlp-503") as c:   # writes the config, starts the binary
        c.wait_for(lambda: c.counter("exporter:otlphttp", "points.sent") >= 1000, timeout=60)
        c.stats()            # dbi-stat --once --json --interval 0, parsed
        c.stop()             # SIGTERM, wait; c.returncode
        c.kill9()            # SIGKILL
        c.log()              # what it wrote to stderr

The config should set runtime.shm.name to something unique per test; `Collector.shm_name(tag)`
makes one. Binaries come from $DBI_BINARY_DIR (set by ctest). Standard library only.
"""

import json
import os
import signal
import subprocess
import tempfile
import time


def binary_dir():
    d = os.environ.get("DBI_BINARY_DIR")
    if not d:
        here = os.path.dirname(os.path.abspath(__file__))
        d = os.path.join(here, "..", "..", "build")
    return d


class Collector:
    def __init__(self, config, name="test", extra_args=(), env=None, workdir=None):
        self.name = name
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="dbi-%s-" % name)
        self.config_path = os.path.join(self.dir, "config.yaml")
        with open(self.config_path, "w") as f:
            f.write(config)
        self.log_path = os.path.join(self.dir, "collector.log")
        self.extra_args = list(extra_args)
        self.env = dict(os.environ)
        if env:
            self.env.update(env)
        self.proc = None
        self.returncode = None
        self.start()

    @staticmethod
    def shm_name(tag):
        return "dbi.test.%s.%d" % (tag, os.getpid())

    def start(self):
        exe = os.path.join(binary_dir(), "dbi-collector")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([exe, "--config", self.config_path] + self.extra_args, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=self.env)
        self.returncode = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=60):
        if not self.alive():
            self.returncode = self.proc.returncode if self.proc else None
            return self.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            raise
        finally:
            self._log.close()
        return self.returncode

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.returncode = self.proc.wait()
            self._log.close()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stats(self, shm=None):
        exe = os.path.join(binary_dir(), "dbi-stat")
        shm = shm or self._shm_from_config()
        p = subprocess.run([exe, "-n", shm, "--once", "--json", "--interval", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=False)
        if p.returncode != 0:
            return None
        return json.loads(p.stdout)

    def counter(self, block_id, name, default=0):
        """A counter of the stats block whose id is block_id (e.g. "exporter:otlphttp/nr:sender")."""
        st = self.stats()
        if not st:
            return default
        for group in st.get("stats", {}).values():
            for blk in group:
                if blk.get("id") == block_id:
                    c = blk.get("counters", {}).get(name)
                    return c["value"] if c else default
        return default

    def counters(self, block_id):
        st = self.stats()
        if not st:
            return {}
        for group in st.get("stats", {}).values():
            for blk in group:
                if blk.get("id") == block_id:
                    return {k: v["value"] for k, v in blk.get("counters", {}).items()}
        return {}

    def _shm_from_config(self):
        with open(self.config_path) as f:
            for line in f:
                s = line.strip()
                if s.startswith("shm:") and "name:" in s:
                    return s.split("name:")[1].split(",")[0].strip(" }")
                if s.startswith("name:"):
                    return s.split(":", 1)[1].strip()
        return "dbi.main"

    def wait_for(self, pred, timeout=60, interval=0.2):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            if not self.alive():
                return bool(pred())
            time.sleep(interval)
        return bool(pred())

    def close(self):
        if self.alive():
            try:
                self.stop(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        if not self._log.closed:
            self._log.close()
        if self._own_dir:
            subprocess.run(["rm", "-rf", self.dir], check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
