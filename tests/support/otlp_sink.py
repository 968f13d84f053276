#!/usr/bin/python3
"""otlp_sink.py - an OTLP/HTTP receiver for tests, independent of dbi's own code.

It accepts POST /v1/metrics, /v1/logs and /v1/traces (protobuf or JSON; gzip, zstd or
identity bodies), decodes every body with its own protobuf wire-format decoder (written
here from the OTLP .proto files: no generated code, no dbi library), records what it got,
and answers like an OTLP endpoint would -- or, when told to, like a failing one:

    sink = Sink()                       # 127.0.0.1, a free port; sink.url is the base URL
    sink.fail(503, seconds=10)          # 503 for the next 10 s (Retry-After optional)
    sink.fail(429, count=2, retry_after="2")   # the next two requests
    sink.fail(401, count=None)          # until cleared: sink.clear_faults()
    sink.max_body = 20000               # 413 for bodies (as sent, compressed) over 20000 bytes
    sink.partial_reject = (3, "bad points")    # 200 with partial_success
    sink.down()/sink.up()               # stop/start listening on the same port
    sink.points()                       # every data point accepted, flattened
    sink.requests                       # every request: status, sizes, headers, decoded items

zstd bodies are decompressed with the zstd command-line tool (Debian package zstd).
Standard library only. Run it alone to watch what an exporter sends:
    python3 otlp_sink.py --port 4318 [--fail 503 --seconds 30]
"""

import gzip
import http.server
import json
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

# ---- protobuf wire format ----

VARINT, I64, LEN, I32 = 0, 1, 2, 5


class DecodeError(Exception):
    pass


def _varint(buf, i):
    v = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise DecodeError("truncated varint")
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def fields(buf):
    """Yield (field number, wire type, value) for each field of a message."""
    i, n = 0, len(buf)
    while i < n:
        tag, i = _varint(buf, i)
        num, wt = tag >> 3, tag & 7
        if num == 0:
            raise DecodeError("field 0")
        if wt == VARINT:
            v, i = _varint(buf, i)
        elif wt == I64:
            if i + 8 > n:
                raise DecodeError("truncated fixed64")
            v = buf[i:i + 8]
            i += 8
        elif wt == I32:
            if i + 4 > n:
                raise DecodeError("truncated fixed32")
            v = buf[i:i + 4]
            i += 4
        elif wt == LEN:
            ln, i = _varint(buf, i)
            if i + ln > n:
                raise DecodeError("truncated bytes")
            v = buf[i:i + ln]
            i += ln
        else:
            raise DecodeError("wire type %d" % wt)
        yield num, wt, v


# Schema: message -> {field: (name, type, repeated)}. Types are scalar names or message names.
S, R = False, True
SCHEMA = {
    "AnyValue": {1: ("string_value", "string", S), 2: ("bool_value", "bool", S), 3: ("int_value", "int64", S),
                 4: ("double_value", "double", S), 5: ("array_value", "ArrayValue", S),
                 6: ("kvlist_value", "KeyValueList", S), 7: ("bytes_value", "bytes", S)},
    "ArrayValue": {1: ("values", "AnyValue", R)},
    "KeyValueList": {1: ("values", "KeyValue", R)},
    "KeyValue": {1: ("key", "string", S), 2: ("value", "AnyValue", S)},
    "InstrumentationScope": {1: ("name", "string", S), 2: ("version", "string", S),
                             3: ("attributes", "KeyValue", R), 4: ("dropped_attributes_count", "uint64", S)},
    "Resource": {1: ("attributes", "KeyValue", R), 2: ("dropped_attributes_count", "uint64", S)},
    "ExportMetricsServiceRequest": {1: ("resource_metrics", "ResourceMetrics", R)},
    "ResourceMetrics": {1: ("resource", "Resource", S), 2: ("scope_metrics", "ScopeMetrics", R),
                        3: ("schema_url", "string", S)},
    "ScopeMetrics": {1: ("scope", "InstrumentationScope", S), 2: ("metrics", "Metric", R),
                     3: ("schema_url", "string", S)},
    "Metric": {1: ("name", "string", S), 2: ("description", "string", S), 3: ("unit", "string", S),
               5: ("gauge", "Gauge", S), 7: ("sum", "Sum", S), 9: ("histogram", "Histogram", S),
               10: ("exponential_histogram", "ExponentialHistogram", S), 11: ("summary", "Summary", S),
               12: ("metadata", "KeyValue", R)},
    "Gauge": {1: ("data_points", "NumberDataPoint", R)},
    "Sum": {1: ("data_points", "NumberDataPoint", R), 2: ("aggregation_temporality", "uint64", S),
            3: ("is_monotonic", "bool", S)},
    "Histogram": {1: ("data_points", "HistogramDataPoint", R), 2: ("aggregation_temporality", "uint64", S)},
    "ExponentialHistogram": {1: ("data_points", "ExponentialHistogramDataPoint", R),
                             2: ("aggregation_temporality", "uint64", S)},
    "Summary": {1: ("data_points", "SummaryDataPoint", R)},
    "NumberDataPoint": {7: ("attributes", "KeyValue", R), 2: ("start_time_unix_nano", "fixed64", S),
                        3: ("time_unix_nano", "fixed64", S), 4: ("as_double", "double", S),
                        6: ("as_int", "sfixed64", S), 5: ("exemplars", "bytes", R), 8: ("flags", "uint64", S)},
    "HistogramDataPoint": {9: ("attributes", "KeyValue", R), 2: ("start_time_unix_nano", "fixed64", S),
                           3: ("time_unix_nano", "fixed64", S), 4: ("count", "fixed64", S), 5: ("sum", "double", S),
                           6: ("bucket_counts", "fixed64", R), 7: ("explicit_bounds", "double", R),
                           8: ("exemplars", "bytes", R), 10: ("flags", "uint64", S), 11: ("min", "double", S),
                           12: ("max", "double", S)},
    "ExponentialHistogramDataPoint": {1: ("attributes", "KeyValue", R), 2: ("start_time_unix_nano", "fixed64", S),
                                      3: ("time_unix_nano", "fixed64", S), 4: ("count", "fixed64", S),
                                      5: ("sum", "double", S), 6: ("scale", "sint64", S),
                                      7: ("zero_count", "fixed64", S), 8: ("positive", "bytes", S),
                                      9: ("negative", "bytes", S), 10: ("flags", "uint64", S),
                                      11: ("exemplars", "bytes", R), 12: ("min", "double", S),
                                      13: ("max", "double", S), 14: ("zero_threshold", "double", S)},
    "SummaryDataPoint": {7: ("attributes", "KeyValue", R), 2: ("start_time_unix_nano", "fixed64", S),
                         3: ("time_unix_nano", "fixed64", S), 4: ("count", "fixed64", S), 5: ("sum", "double", S),
                         6: ("quantile_values", "bytes", R), 8: ("flags", "uint64", S)},
    "ExportLogsServiceRequest": {1: ("resource_logs", "ResourceLogs", R)},
    "ResourceLogs": {1: ("resource", "Resource", S), 2: ("scope_logs", "ScopeLogs", R), 3: ("schema_url", "string", S)},
    "ScopeLogs": {1: ("scope", "InstrumentationScope", S), 2: ("log_records", "LogRecord", R),
                  3: ("schema_url", "string", S)},
    "LogRecord": {1: ("time_unix_nano", "fixed64", S), 11: ("observed_time_unix_nano", "fixed64", S),
                  2: ("severity_number", "uint64", S), 3: ("severity_text", "string", S), 5: ("body", "AnyValue", S),
                  6: ("attributes", "KeyValue", R), 7: ("dropped_attributes_count", "uint64", S),
                  8: ("flags", "fixed32", S), 9: ("trace_id", "bytes", S), 10: ("span_id", "bytes", S),
                  12: ("event_name", "string", S)},
    "ExportTraceServiceRequest": {1: ("resource_spans", "ResourceSpans", R)},
    "ResourceSpans": {1: ("resource", "Resource", S), 2: ("scope_spans", "ScopeSpans", R),
                      3: ("schema_url", "string", S)},
    "ScopeSpans": {1: ("scope", "InstrumentationScope", S), 2: ("spans", "Span", R), 3: ("schema_url", "string", S)},
    "Span": {1: ("trace_id", "bytes", S), 2: ("span_id", "bytes", S), 3: ("trace_state", "string", S),
             4: ("parent_span_id", "bytes", S), 16: ("flags", "fixed32", S), 5: ("name", "string", S),
             6: ("kind", "uint64", S), 7: ("start_time_unix_nano", "fixed64", S),
             8: ("end_time_unix_nano", "fixed64", S), 9: ("attributes", "KeyValue", R),
             10: ("dropped_attributes_count", "uint64", S), 11: ("events", "bytes", R),
             12: ("dropped_events_count", "uint64", S), 13: ("links", "bytes", R),
             14: ("dropped_links_count", "uint64", S), 15: ("status", "bytes", S)},
}

FIXED = {"fixed64": ("<Q", 8), "sfixed64": ("<q", 8), "double": ("<d", 8), "fixed32": ("<I", 4)}


def _scalar(typ, wt, v):
    if typ in FIXED:
        fmt, size = FIXED[typ]
        if wt != (I64 if size == 8 else I32):
            raise DecodeError("wire type %d for %s" % (wt, typ))
        return struct.unpack(fmt, v)[0]
    if typ in ("string", "bytes"):
        if wt != LEN:
            raise DecodeError("wire type %d for %s" % (wt, typ))
        return v.decode("utf-8") if typ == "string" else bytes(v)
    if wt != VARINT:
        raise DecodeError("wire type %d for %s" % (wt, typ))
    if typ == "bool":
        return v != 0
    if typ == "int64":
        return v - (1 << 64) if v >= 1 << 63 else v
    if typ == "sint64":
        return (v >> 1) ^ -(v & 1)
    return v


def decode(msg, buf):
    """Decode buf as message type msg into a dict; unknown fields go to '_unknown'."""
    schema = SCHEMA[msg]
    out = {}
    for num, wt, v in fields(buf):
        if num not in schema:
            out.setdefault("_unknown", []).append(num)
            continue
        name, typ, rep = schema[num]
        if typ in SCHEMA:
            if wt != LEN:
                raise DecodeError("wire type %d for message %s" % (wt, typ))
            val = decode(typ, v)
        elif rep and wt == LEN and typ in FIXED:  # packed
            fmt, size = FIXED[typ]
            if len(v) % size:
                raise DecodeError("packed %s length %d" % (typ, len(v)))
            vals = [struct.unpack(fmt, v[k:k + size])[0] for k in range(0, len(v), size)]
            out.setdefault(name, []).extend(vals)
            continue
        else:
            val = _scalar(typ, wt, v)
        if rep:
            out.setdefault(name, []).append(val)
        else:
            out[name] = val
    return out


def any_value(v):
    """AnyValue dict (protobuf or JSON shape) -> Python value."""
    if v is None:
        return None
    for k in ("string_value", "stringValue"):
        if k in v:
            return v[k]
    for k in ("int_value", "intValue"):
        if k in v:
            return int(v[k])
    for k in ("double_value", "doubleValue", "bool_value", "boolValue"):
        if k in v:
            return v[k]
    for k in ("array_value", "arrayValue"):
        if k in v:
            return [any_value(x) for x in v[k].get("values", [])]
    for k in ("kvlist_value", "kvlistValue"):
        if k in v:
            return {kv["key"]: any_value(kv.get("value")) for kv in v[k].get("values", [])}
    return None


def attrs(lst):
    return {kv["key"]: any_value(kv.get("value")) for kv in (lst or [])}


def _g(d, snake, camel=None, default=None):
    if snake in d:
        return d[snake]
    if camel and camel in d:
        return d[camel]
    return default


def metric_points(req):
    """Flatten a decoded ExportMetricsServiceRequest (protobuf or JSON dict) into point dicts."""
    out = []
    for rm in _g(req, "resource_metrics", "resourceMetrics", []):
        res = attrs(_g(rm.get("resource", {}), "attributes", None, []))
        for sm in _g(rm, "scope_metrics", "scopeMetrics", []):
            scope = sm.get("scope", {}).get("name", "")
            for m in sm.get("metrics", []):
                for kind in ("gauge", "sum", "histogram", "exponential_histogram", "exponentialHistogram", "summary"):
                    if kind not in m:
                        continue
                    data = m[kind]
                    temp = int(_g(data, "aggregation_temporality", "aggregationTemporality", 0))
                    mono = bool(_g(data, "is_monotonic", "isMonotonic", False))
                    for dp in _g(data, "data_points", "dataPoints", []):
                        if "as_int" in dp or "asInt" in dp:
                            val = int(_g(dp, "as_int", "asInt"))
                        elif "as_double" in dp or "asDouble" in dp:
                            val = float(_g(dp, "as_double", "asDouble"))
                        else:
                            val = None
                        out.append({"resource": res, "scope": scope, "metric": m.get("name"),
                                    "unit": m.get("unit", ""), "kind": kind, "temporality": temp,
                                    "monotonic": mono, "attrs": attrs(dp.get("attributes")), "value": val,
                                    "time": int(_g(dp, "time_unix_nano", "timeUnixNano", 0)),
                                    "start": int(_g(dp, "start_time_unix_nano", "startTimeUnixNano", 0)),
                                    "flags": int(dp.get("flags", 0))})
    return out


def record_items(req, signal):
    """Log records or spans of a decoded logs/traces request, with their resource attributes."""
    out = []
    rkey, skey, ikey = (("resource_logs", "scope_logs", "log_records") if signal == "logs"
                        else ("resource_spans", "scope_spans", "spans"))
    for rl in req.get(rkey, []):
        res = attrs(rl.get("resource", {}).get("attributes"))
        for sl in rl.get(skey, []):
            for it in sl.get(ikey, []):
                out.append({"resource": res, "scope": sl.get("scope", {}).get("name", ""), "item": it})
    return out


REQ_TYPES = {"/v1/metrics": "ExportMetricsServiceRequest", "/v1/logs": "ExportLogsServiceRequest",
             "/v1/traces": "ExportTraceServiceRequest"}


def decompress(body, encoding):
    if encoding in (None, "", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "zstd":
        p = subprocess.run(["zstd", "-d", "-c", "-q"], input=body, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           check=False)
        if p.returncode != 0:
            raise DecodeError("zstd: " + p.stderr.decode(errors="replace"))
        return p.stdout
    raise DecodeError("unknown Content-Encoding " + encoding)


def _put_varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def partial_success_pb(rejected, message):
    inner = b"\x08" + _put_varint(rejected)
    m = message.encode()
    inner += b"\x12" + _put_varint(len(m)) + m
    return b"\x0a" + _put_varint(len(inner)) + inner


def status_pb(message):
    """google.rpc.Status {code = 1; message = 2} with the message only."""
    m = message.encode()
    return b"\x12" + _put_varint(len(m)) + m


class Request:
    def __init__(self, path, headers, wire_len):
        self.time = time.monotonic()
        self.path = path
        self.headers = headers
        self.wire_len = wire_len
        self.raw_len = None
        self.status = None
        self.decoded = None
        self.items = 0
        self.error = None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 (http.server naming)
        self.server.sink._handle(self)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *a, **kw):
        self.conns = set()
        self.conns_lock = threading.Lock()
        super().__init__(*a, **kw)

    def process_request(self, request, client_address):
        with self.conns_lock:
            self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def drop_connections(self):
        """Cut every open (keep-alive) connection, as a dying server would."""
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Sink:
    def __init__(self, port=0, host="127.0.0.1", tls=None):
        """tls: (certfile, keyfile) to serve HTTPS."""
        self.host = host
        self.tls = tls
        self.lock = threading.Lock()
        self.requests = []
        self._faults = []  # [status, until_monotonic or None, count or None, retry_after, body]
        self.max_body = None
        self.partial_reject = None
        self.delay = 0.0
        self._server = None
        self._closing = False
        self._active = 0
        self.port = port
        self.up()

    # ---- control ----
    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    def up(self):
        if self._server:
            return
        with self.lock:
            self._closing = False
        srv = _Server((self.host, self.port), _Handler)
        srv.sink = self
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        self.port = srv.server_address[1]
        self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def down(self):
        """Stop listening (connections are refused) but keep what was recorded.

        Requests being answered are answered first; then open connections are cut, so every
        request is either fully answered (and counted) or not processed at all.
        """
        if not self._server:
            return
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            self._closing = True
        end = time.monotonic() + 10
        while time.monotonic() < end:
            with self.lock:
                if self._active == 0:
                    break
            time.sleep(0.01)
        self._server.drop_connections()
        self._server = None

    def close(self):
        self.down()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def fail(self, status, seconds=None, count=None, retry_after=None, body=b""):
        """Answer status for `seconds` seconds or the next `count` requests (neither: until cleared)."""
        with self.lock:
            until = time.monotonic() + seconds if seconds is not None else None
            self._faults.append([status, until, count, retry_after, body])

    def clear_faults(self):
        with self.lock:
            self._faults = []

    # ---- results ----
    def accepted(self, path=None):
        with self.lock:
            return [r for r in self.requests if r.status == 200 and (path is None or r.path == path)]

    def points(self):
        out = []
        for r in self.accepted("/v1/metrics"):
            out.extend(metric_points(r.decoded))
        return out

    def records(self, signal):
        out = []
        for r in self.accepted("/v1/" + signal):
            out.extend(record_items(r.decoded, signal))
        return out

    def statuses(self):
        with self.lock:
            return [r.status for r in self.requests]

    # ---- serving ----
    def _fault_for(self, wire_len):
        now = time.monotonic()
        with self.lock:
            for f in list(self._faults):
                status, until, count, retry_after, body = f
                if until is not None and now >= until:
                    self._faults.remove(f)
                    continue
                if count is not None:
                    if count <= 0:
                        self._faults.remove(f)
                        continue
                    f[2] -= 1
                return status, retry_after, body
            if self.max_body is not None and wire_len > self.max_body:
                return 413, None, status_pb("request body too large")
        return None

    def _reply(self, h, status, body=b"", ctype="application/x-protobuf", retry_after=None, req=None):
        """Answer; a request whose answer cannot be written was not acknowledged (status -1)."""
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            if retry_after is not None:
                h.send_header("Retry-After", str(retry_after))
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
        except OSError:
            h.close_connection = True
            if req is not None:
                req.status = -1

    def _handle(self, h):
        with self.lock:
            if self._closing:
                h.close_connection = True  # going down: no answer, as a dying server
                return
            self._active += 1
        try:
            self._serve(h)
        finally:
            with self.lock:
                self._active -= 1

    def _serve(self, h):
        n = int(h.headers.get("Content-Length", "0"))
        body = h.rfile.read(n) if n else b""
        if self.delay:
            time.sleep(self.delay)
        hdrs = {k.lower(): v for k, v in h.headers.items()}
        req = Request(h.path, hdrs, len(body))
        with self.lock:
            self.requests.append(req)
        if h.path not in REQ_TYPES:
            req.status = 404
            self._reply(h, 404, b"404 page not found", "text/plain")
            return
        fault = self._fault_for(len(body))
        if fault:
            req.status = fault[0]
            self._reply(h, fault[0], fault[2], "application/x-protobuf" if fault[2] else "text/plain", fault[1])
            return
        try:
            raw = decompress(body, hdrs.get("content-encoding"))
            req.raw_len = len(raw)
            if "json" in hdrs.get("content-type", ""):
                req.decoded = json.loads(raw)
            else:
                req.decoded = decode(REQ_TYPES[h.path], raw)
        except (DecodeError, OSError, ValueError, EOFError) as e:
            req.error = str(e)
            req.status = 400
            self._reply(h, 400, status_pb("cannot decode: %s" % e))
            return
        if h.path == "/v1/metrics":
            req.items = len(metric_points(req.decoded))
        else:
            req.items = len(record_items(req.decoded, h.path[4:]))
        req.status = 200
        resp = b""
        if self.partial_reject:
            resp = partial_success_pb(*self.partial_reject)
        if "json" in hdrs.get("content-type", ""):
            js = {}
            if self.partial_reject:
                key = {"/v1/metrics": "rejectedDataPoints", "/v1/logs": "rejectedLogRecords",
                       "/v1/traces": "rejectedSpans"}[h.path]
                js = {"partialSuccess": {key: str(self.partial_reject[0]), "errorMessage": self.partial_reject[1]}}
            self._reply(h, 200, json.dumps(js).encode(), "application/json", req=req)
        else:
            self._reply(h, 200, resp, req=req)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    import argparse
    ap = argparse.ArgumentParser(description="OTLP/HTTP test sink: prints one JSON line per request")
    ap.add_argument("--port", type=int, default=4318)
    ap.add_argument("--fail", type=int, help="answer this status")
    ap.add_argument("--seconds", type=float, help="... for this long")
    ap.add_argument("--max-body", type=int, help="413 above this many bytes")
    a = ap.parse_args()
    sink = Sink(port=a.port)
    if a.fail:
        sink.fail(a.fail, seconds=a.seconds)
    sink.max_body = a.max_body
    print("listening on", sink.url, file=sys.stderr)
    seen = 0
    try:
        while True:
            time.sleep(0.2)
            with sink.lock:
                new = sink.requests[seen:]
                seen = len(sink.requests)
            for r in new:
                print(json.dumps({"path": r.path, "status": r.status, "wire_bytes": r.wire_len,
                                  "raw_bytes": r.raw_len, "items": r.items, "error": r.error,
                                  "encoding": r.headers.get("content-encoding")}), flush=True)
    except KeyboardInterrupt:
        sink.close()


if __name__ == "__main__":
    main()
