"""jspeer.py - run tests/interop/js/otlp_peer.js, an OTLP/HTTP receiver that decodes with the
OpenTelemetry JS SDK's protobuf definitions (independent of dbi's C code and of otlp_sink.py),
and read what it decoded.

    with JsPeer() as peer:                  # installs the pinned npm kit once, starts node
        ... send to peer.url (http://127.0.0.1:PORT) ...
        peer.control(status=503, retry_after=2)   # what it answers from now on
    peer.records()                          # one dict per request, see otlp_peer.js
    metric_points(recs), log_records(recs), spans(recs)   # flattened, attributes as dicts

Standard library only.
"""
import base64
import http.client
import json
import os
import select
import shutil
import subprocess
import tempfile
import unittest

SRC = os.environ.get("DBI_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
KIT = os.path.join(SRC, "tests", "interop", "js")


def install_kit():
    """npm ci of the pinned kit (a no-op when node_modules matches the lock, so it works
    offline once installed). Without node or npm the calling test is skipped, saying so."""
    missing = [p for p in ("node", "npm") if shutil.which(p) is None]
    if missing:
        raise unittest.SkipTest("%s not found: the JS interop peer needs Node.js and npm "
                                "(scripts/bootstrap.sh installs them)" % " and ".join(missing))
    subprocess.run([os.path.join(KIT, "install.sh")], check=True, timeout=600)


class JsPeer:
    def __init__(self, status=None, retry_after=None):
        install_kit()
        self.tmp = tempfile.mkdtemp(prefix="dbi-jspeer-")
        self.out = os.path.join(self.tmp, "decoded.jsonl")
        self.err_path = os.path.join(self.tmp, "peer.err")
        args = ["node", os.path.join(KIT, "otlp_peer.js"), "--out", self.out]
        if status is not None:
            args += ["--status", str(status)]
        if retry_after is not None:
            args += ["--retry-after", str(retry_after)]
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._err)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.close()
            raise RuntimeError("otlp_peer.js did not start: " + self.stderr())
        self.port = json.loads(line)["port"]
        self.url = "http://127.0.0.1:%d" % self.port

    def control(self, **answer):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("POST", "/control", json.dumps(answer), {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        c.close()
        if r.status != 204:
            raise RuntimeError("control: %d" % r.status)

    def records(self):
        try:
            with open(self.out) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._err.close()

    def remove(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---- the peer's OTLP/JSON rendering, flattened ----


def plain(v):
    """An AnyValue as rendered by the peer ({"stringValue": "x", "value": "stringValue"}) as Python."""
    if not v or "value" not in v:
        return None
    kind = v["value"]
    x = v[kind]
    if kind == "intValue":
        return int(x)
    if kind == "doubleValue":
        return float(x)
    if kind == "arrayValue":
        return [plain(e) for e in x.get("values", [])]
    if kind == "kvlistValue":
        return attrs(x.get("values", []))
    if kind == "bytesValue":
        return base64.b64decode(x)
    return x  # stringValue, boolValue


def attrs(kvs):
    return {kv["key"]: plain(kv.get("value")) for kv in kvs or []}


def _scoped(records, signal, res_key, scope_key, items_key):
    for r in records:
        if r.get("signal") != signal or not r.get("request"):
            continue
        for rx in r["request"].get(res_key, []):
            res = rx.get("resource", {})
            for sx in rx.get(scope_key, []):
                yield r, res, sx.get("scope", {}), sx.get(items_key, [])


def metric_points(records):
    """Every data point: dict(resource, scope, name, unit, type, temporality, monotonic, attrs,
    start, time, value, point (as decoded), request (its record's seq))."""
    out = []
    for r, res, scope, metrics in _scoped(records, "metrics", "resourceMetrics", "scopeMetrics", "metrics"):
        resource = attrs(res.get("attributes"))
        for m in metrics:
            kind = m.get("data")
            data = m.get(kind, {})
            for p in data.get("dataPoints", []):
                value = None
                if "value" in p:
                    value = int(p["asInt"]) if p["value"] == "asInt" else float(p["asDouble"])
                out.append({
                    "resource": resource, "scope": scope.get("name", ""), "name": m["name"],
                    "unit": m.get("unit", ""), "type": kind,
                    "temporality": data.get("aggregationTemporality", "AGGREGATION_TEMPORALITY_UNSPECIFIED"),
                    "monotonic": data.get("isMonotonic", False), "attrs": attrs(p.get("attributes")),
                    "start": int(p.get("startTimeUnixNano", 0)), "time": int(p.get("timeUnixNano", 0)),
                    "value": value, "value_type": p.get("value"), "point": p, "request": r["seq"]})
    return out


def log_records(records):
    out = []
    for r, res, scope, logs in _scoped(records, "logs", "resourceLogs", "scopeLogs", "logRecords"):
        for lr in logs:
            out.append({"resource": attrs(res.get("attributes")), "scope": scope.get("name", ""),
                        "scope_version": scope.get("version", ""), "attrs": attrs(lr.get("attributes")),
                        "body": plain(lr.get("body")), "record": lr, "request": r["seq"]})
    return out


def spans(records):
    out = []
    for r, res, scope, sps in _scoped(records, "traces", "resourceSpans", "scopeSpans", "spans"):
        for sp in sps:
            out.append({"resource": attrs(res.get("attributes")), "scope": scope.get("name", ""),
                        "scope_version": scope.get("version", ""), "attrs": attrs(sp.get("attributes")),
                        "span": sp, "request": r["seq"]})
    return out
