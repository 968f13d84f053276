"""otlptest.py — helpers for the otlp receiver's integration tests (python3 stdlib only).

- A protobuf wire encoder/decoder small enough to read: the tests build OTLP requests
  field by field from the .proto numbers, independently of dbi's generated C code.
- Collector: run the real dbi-collector with a config, on free ports, read its counters
  with dbi-stat, stop it (SIGTERM) and check it exited 0.
- request(): one HTTP request with http.client, returning (status, headers, body).
"""
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

BIN = os.environ.get("DBI_BINARY_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SRC = os.environ.get("DBI_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))

# ---- protobuf wire format ----


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def f_varint(num, v):
    return varint(num << 3 | 0) + varint(v)


def f_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(num << 3 | 2) + varint(len(b)) + b


def f_fixed64(num, v):
    return varint(num << 3 | 1) + struct.pack("<Q", v)


def f_double(num, v):
    return varint(num << 3 | 1) + struct.pack("<d", v)


def any_value(v):
    """AnyValue for a python value: str, bool, int, float, bytes, list, dict."""
    if isinstance(v, bool):
        return f_varint(2, int(v))
    if isinstance(v, str):
        return f_bytes(1, v)
    if isinstance(v, int):
        return f_varint(3, v)
    if isinstance(v, float):
        return f_double(4, v)
    if isinstance(v, bytes):
        return f_bytes(7, v)
    if isinstance(v, list):
        return f_bytes(5, b"".join(f_bytes(1, any_value(x)) for x in v))
    if isinstance(v, dict):
        return f_bytes(6, b"".join(f_bytes(1, key_value(k, x)) for k, x in v.items()))
    raise TypeError(v)


def key_value(k, v):
    return f_bytes(1, k) + f_bytes(2, any_value(v))


def attrs(num, d):
    return b"".join(f_bytes(num, key_value(k, v)) for k, v in (d or {}).items())


def number_point(value, t_ns, attributes=None, start_ns=0, flags=0):
    b = attrs(7, attributes) + f_fixed64(2, start_ns) + f_fixed64(3, t_ns)
    if isinstance(value, float):
        b += f_double(4, value)
    elif value is not None:
        b += varint(6 << 3 | 1) + struct.pack("<q", value)
    if flags:
        b += f_varint(8, flags)
    return b


def metric(name, points, kind="gauge", unit="", description="", monotonic=False, temporality=2):
    b = f_bytes(1, name) + f_bytes(2, description) + f_bytes(3, unit)
    dps = b"".join(f_bytes(1, p) for p in points)
    if kind == "gauge":
        return b + f_bytes(5, dps)
    if kind == "sum":
        return b + f_bytes(7, dps + f_varint(2, temporality) + f_varint(3, int(monotonic)))
    if kind == "histogram":
        return b + f_bytes(9, dps + f_varint(2, temporality))
    raise ValueError(kind)


def hist_point(t_ns, count, total, bounds, counts, attributes=None):
    b = attrs(9, attributes) + f_fixed64(3, t_ns) + f_fixed64(4, count) + f_double(5, total)
    b += f_bytes(6, b"".join(struct.pack("<Q", c) for c in counts))
    b += f_bytes(7, b"".join(struct.pack("<d", x) for x in bounds))
    return b


def metrics_request(metrics, resource=None, scope=("test-scope", "1.0")):
    """ExportMetricsServiceRequest with one resource and one scope."""
    sc = f_bytes(1, scope[0]) + f_bytes(2, scope[1])
    sm = f_bytes(1, sc) + b"".join(f_bytes(2, m) for m in metrics)
    rm = f_bytes(1, attrs(1, resource)) + f_bytes(2, sm)
    return f_bytes(1, rm)


def gauge_request(n, resource=None, name="test.gauge", t_ns=None, attr_base=0, value=1.5):
    """n gauge points, each its own series (attribute i)."""
    t_ns = t_ns or time.time_ns()
    pts = [number_point(value, t_ns, {"i": attr_base + i}) for i in range(n)]
    return metrics_request([metric(name, pts)], resource or {"service.name": "otlptest"})


def decode(buf):
    """Protobuf wire → {field: [values]} (varints as int, length-delimited as bytes)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 1:
            v, i = buf[i : i + 8], i + 8
        elif wt == 2:
            n, i = _read_varint(buf, i)
            v, i = buf[i : i + n], i + n
        elif wt == 5:
            v, i = buf[i : i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def _read_varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def partial_success(body):
    """(rejected, message) from an Export*ServiceResponse, or (0, "") when absent."""
    f = decode(body)
    if 1 not in f:
        return 0, ""
    ps = decode(f[1][0])
    return ps.get(1, [0])[0], ps.get(2, [b""])[0].decode()


def rpc_status(body):
    """(code, message) of a google.rpc.Status."""
    f = decode(body)
    return f.get(1, [0])[0], f.get(2, [b""])[0].decode()


# ---- processes and sockets ----


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(port, path, body=b"", ctype="application/x-protobuf", method="POST", headers=None, timeout=30,
            encode_chunked=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": ctype} if ctype else {}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h, encode_chunked=encode_chunked)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


class Collector:
    """The real dbi-collector on free ports. {http} and {grpc} in the YAML get the ports,
    {shm} a unique instance name."""

    def __init__(self, yaml_text, stdout=None):
        self.dir = tempfile.mkdtemp(prefix="dbi-otlptest-")
        self.http_port, self.grpc_port = free_port(), free_port()
        self.shm = "dbi.otlptest.%d.%d" % (os.getpid(), time.monotonic_ns() % 1000000)
        self.cfg = os.path.join(self.dir, "config.yaml")
        with open(self.cfg, "w") as f:
            f.write(yaml_text.format(http=self.http_port, grpc=self.grpc_port, shm=self.shm))
        self.out_path = os.path.join(self.dir, "stdout.txt")
        self.err_path = os.path.join(self.dir, "stderr.txt")
        self._out = stdout if stdout is not None else open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "dbi-collector"), "--config", self.cfg], stdout=self._out, stderr=self._err
        )
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("collector exited early:\n" + self.stderr())
            try:
                socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("collector did not listen:\n" + self.stderr())

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stats(self, component="receiver:otlp"):
        out = subprocess.run(
            [os.path.join(BIN, "dbi-stat"), "-n", self.shm, "--once", "--json"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        d = json.loads(out)
        for group in d["stats"].values():
            for blk in group:
                if blk["id"] == component:
                    return {k: v["value"] for k, v in blk["counters"].items()}
        raise KeyError(component)

    def wait_stat(self, name, pred, timeout=10):
        deadline = time.time() + timeout
        while True:
            v = self.stats().get(name)
            if pred(v) or time.time() > deadline:
                return v
            time.sleep(0.1)

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self._err.close()
        if self._out is not subprocess.PIPE and hasattr(self._out, "close"):
            self._out.close()
        return rc

    def kill(self):
        """Make sure nothing is left: the process, its segment (SIGKILL skips the
        collector's own cleanup), the temp dir."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.unlink(os.path.join("/dev/shm", self.shm))
        except OSError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False


BASE_CONFIG = """
receivers:
  otlp:
    protocols: {{grpc: {{endpoint: 127.0.0.1:{grpc}}}, http: {{endpoint: 127.0.0.1:{http}}}}}
%(extra)s
exporters:
  debug: {{verbosity: %(verbosity)s}}
service:
  pipelines:
    metrics: {{receivers: [otlp], exporters: [debug]}}
    logs: {{receivers: [otlp], exporters: [debug]}}
    traces: {{receivers: [otlp], exporters: [debug]}}
runtime:
  shm: {{name: "{shm}"}}
%(runtime)s
"""


def config(extra="", verbosity="normal", runtime=""):
    """BASE_CONFIG with lines added under receivers.otlp (indented 4) and runtime (2)."""
    return BASE_CONFIG % {"extra": extra, "verbosity": verbosity, "runtime": runtime}
