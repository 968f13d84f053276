"""collector.py — run the real dbi-collector binary in integration tests.

    from collector import Collector, free_port
    with Collector(yaml_text) as c:        # starts, waits for "started"
        c.stat()                            # dbi-stat --once --json of its segment
        c.counter("receiver:loadgen", "emitted")
        c.sighup(); c.wait_log("reload applied")
    # leaving the block sends SIGTERM and waits; c.returncode, c.log() stay readable

The config may use {shm} (a unique shm instance name is filled in) and {port:NAME}
placeholders (each NAME becomes a free TCP port, see c.ports[NAME]).
"""
import atexit
import json
import os
import shutil
import re
import signal
import socket
import subprocess
import tempfile
import time

# Temp dirs hold each collector's config and log; tests read them after the collector
# stopped, so they go when the test process exits (keep them with DBI_KEEP_TMP=1).
_TMPDIRS = []
# Shared-memory segments of the collectors started here: a collector killed with -9 leaves its
# segment behind on purpose (the next start detects it as stale), so the test process removes
# them when it exits, after every collector it started is gone.
_SHMS = []


@atexit.register
def _cleanup_tmpdirs():
    for name in _SHMS:
        try:
            os.unlink(os.path.join("/dev/shm", name))
        except OSError:
            pass
    if os.environ.get("DBI_KEEP_TMP"):
        return
    for d in _TMPDIRS:
        shutil.rmtree(d, ignore_errors=True)


BIN = os.environ.get("DBI_BINARY_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout=20.0, interval=0.1, what="condition"):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - report the last failure below
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Collector:
    def __init__(self, config, name=None, args=(), env=None, stdout=None, start=True, wait_started=True):
        self.tmp = tempfile.mkdtemp(prefix="dbi-test-")
        _TMPDIRS.append(self.tmp)
        os.chmod(self.tmp, 0o755)
        self.shm = name or f"dbi.test.{os.getpid()}.{int(time.time() * 1000) % 100000}"
        _SHMS.append(self.shm)
        self.ports = {}

        def port_for(m):
            key = m.group(1)
            if key not in self.ports:
                self.ports[key] = free_port()
            return str(self.ports[key])

        text = config.replace("{shm}", self.shm)
        text = re.sub(r"\{port:([A-Za-z0-9_]+)\}", port_for, text)
        self.config_text = text
        self.config_path = os.path.join(self.tmp, "config.yaml")
        with open(self.config_path, "w") as f:
            f.write(text)
        self.log_path = os.path.join(self.tmp, "collector.log")
        self.out_path = os.path.join(self.tmp, "collector.out")
        self.args = list(args)
        # state files (circuits, queues) go to the test's temp dir unless the config says otherwise
        self.env = dict(os.environ, DBI_STATE_DIR=os.path.join(self.tmp, "state"), **(env or {}))
        self.stdout = stdout
        self.proc = None
        self.returncode = None
        if start:
            self.start(wait_started)

    # -- process control --
    def start(self, wait_started=True):
        with open(self.log_path, "ab") as log:
            if self.stdout is not None:
                self.proc = subprocess.Popen([os.path.join(BIN, "dbi-collector"), "--config", self.config_path]
                                             + self.args, stdout=self.stdout, stderr=log, env=self.env)
            else:
                with open(self.out_path, "ab") as out:
                    self.proc = subprocess.Popen([os.path.join(BIN, "dbi-collector"), "--config", self.config_path]
                                                 + self.args, stdout=out, stderr=log, env=self.env)
        if wait_started:
            self.wait_log("msg=\"started\"", timeout=30)
        return self

    def write_config(self, text):
        text = text.replace("{shm}", self.shm)
        text = re.sub(r"\{port:([A-Za-z0-9_]+)\}", lambda m: str(self.ports.setdefault(m.group(1), free_port())), text)
        with open(self.config_path + ".new", "w") as f:
            f.write(text)
        os.replace(self.config_path + ".new", self.config_path)

    def sighup(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("dbi-collector did not exit within %ss after %s" % (timeout, sig))
        if self.proc:
            self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.returncode = self.proc.returncode

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            if self.proc and self.proc.poll() is None:
                self.kill()
        return False

    # -- observation --
    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def output(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, needle, timeout=20):
        def check():
            if self.proc and self.proc.poll() is not None and needle not in self.log():
                raise AssertionError("dbi-collector exited (%s) before logging %r:\n%s"
                                     % (self.proc.returncode, needle, self.log()))
            return needle in self.log()
        try:
            return wait_until(check, timeout=timeout, what=f"log line {needle!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- log ---\n{self.log()}") from None

    def log_fields(self, msg):
        """Parse the logfmt fields of the last line with msg="...msg..."."""
        for line in reversed(self.log().splitlines()):
            if f'msg="{msg}"' in line:
                return dict(re.findall(r'(\w[\w.]*)=("[^"]*"|\S+)', line))
        return None

    def stat(self, interval="0"):
        r = subprocess.run([os.path.join(BIN, "dbi-stat"), "-n", self.shm, "--once", "--json", "--interval", interval],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"dbi-stat failed ({r.returncode}): {r.stderr}")
        return json.loads(r.stdout)

    def counter(self, block, name, snapshot=None):
        s = snapshot or self.stat()
        for b in [b for group in s.get("stats", {}).values() for b in group]:
            if b.get("id") == block:
                c = b.get("counters", {})
                if name in c:
                    v = c[name]
                    return v["value"] if isinstance(v, dict) else v
        raise KeyError(f"{block}/{name} not in dbi-stat output")
