// otlp_peer.js — an OTLP/HTTP receiver that decodes with code independent of dbi: the
// protobuf definitions the OpenTelemetry JS SDK generated from opentelemetry-proto
// (@opentelemetry/otlp-transformer 0.214.0's protobufjs root, installed as
// `otlp-transformer-pbjs`), gzip through Node's zlib, zstd through `zstddec` (libzstd as
// WebAssembly). Used by tests/integration/test_otlp_export_interop.py.
// 0.214.0 is the last otlp-transformer whose generated root decodes all three signals (later
// ones hand-write their encoders and generate response decoders only); it only supplies the
// definitions, next to the 0.301 SDK that send.js uses.
//
//   node otlp_peer.js --out FILE [--port N] [--status CODE] [--retry-after S]
//
// Accepts POST /v1/metrics, /v1/logs, /v1/traces: application/x-protobuf or
// application/json (OTLP/JSON), Content-Encoding gzip, zstd or none. Prints
// {"port": N} on stdout once listening. For every request it appends one JSON line to
// FILE *before* answering:
//   {seq, path, signal, headers, encoding: "proto"|"json", content_encoding, wire_bytes,
//    body_bytes, status, error, request, reencoded_bytes, json_unknown_fields}
// `request` is the decoded Export*ServiceRequest rendered as OTLP/JSON (int64 as strings,
// enums by name, ids in hex, other bytes in base64, oneofs named: "data": "sum",
// "value": "asInt"); `reencoded_bytes` is the length the JS encoder gives the decoded
// message (equal to body_bytes when nothing on the wire was unknown to it);
// `json_unknown_fields` lists OTLP/JSON keys the schema does not have.
//
// Answers 200 with an Export*ServiceResponse (protobuf or JSON, like the request), or
// the status set by --status / POST /control {"status": 503, "retry_after": 5,
// "partial_rejected": 3, "partial_message": "..."} with a google.rpc.Status body.
'use strict';

const http = require('http');
const fs = require('fs');
const zlib = require('zlib');
const root = require('otlp-transformer-pbjs/build/src/generated/root');
const { Writer } = require('protobufjs/minimal');

const MAX_BODY = 64 << 20;
const C = root.opentelemetry.proto.collector;
const SIGNALS = {
	'/v1/metrics': { name: 'metrics', req: C.metrics.v1.ExportMetricsServiceRequest,
		resp: C.metrics.v1.ExportMetricsServiceResponse, rejected: 'rejectedDataPoints' },
	'/v1/logs': { name: 'logs', req: C.logs.v1.ExportLogsServiceRequest,
		resp: C.logs.v1.ExportLogsServiceResponse, rejected: 'rejectedLogRecords' },
	'/v1/traces': { name: 'traces', req: C.trace.v1.ExportTraceServiceRequest,
		resp: C.trace.v1.ExportTraceServiceResponse, rejected: 'rejectedSpans' },
};
const ID_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId']);
const GRPC_CODE = { 400: 3, 401: 16, 403: 7, 404: 5, 408: 4, 413: 8, 429: 8, 500: 13, 502: 14, 503: 14, 504: 4 };

function arg(name, def) {
	const i = process.argv.indexOf('--' + name);
	return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const out = fs.openSync(arg('out', '/dev/stdout'), 'a');
const answer = { status: Number(arg('status', 200)), retry_after: arg('retry-after', null),
	partial_rejected: 0, partial_message: '' };
let seq = 0;
let zstd = null; // zstddec is an ES module: loaded in main()

class BadRequest extends Error {
	constructor(status, message) { super(message); this.status = status; }
}

// A zstd frame's Frame_Content_Size (RFC 8878 §3.1.1.1), or null when it has none.
function zstdContentSize(b) {
	if (b.length < 6 || b.readUInt32LE(0) !== 0xFD2FB528)
		throw new BadRequest(400, 'zstd: not a zstd frame');
	const fhd = b[4], single = (fhd >> 5) & 1;
	const fcsSize = [single, 2, 4, 8][fhd >> 6];
	const at = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3];
	if (b.length < at + fcsSize)
		throw new BadRequest(400, 'zstd: truncated frame header');
	if (fcsSize === 0)
		return null;
	const n = fcsSize === 1 ? b[at] : fcsSize === 2 ? b.readUInt16LE(at) + 256
		: fcsSize === 4 ? b.readUInt32LE(at) : Number(b.readBigUInt64LE(at));
	if (n > MAX_BODY)
		throw new BadRequest(413, 'zstd: content size over ' + MAX_BODY);
	return n;
}

// zstddec's one-shot ZSTD_decompress into a buffer of the frame's size (or MAX_BODY when
// the frame does not say). It reports no errors itself: a libzstd error comes back as a
// short (empty) result, so the size is checked.
function unzstd(wire) {
	const n = zstdContentSize(wire);
	const body = Buffer.from(zstd.decode(wire, n === null ? MAX_BODY : n));
	if (n === null ? body.length === 0 : body.length !== n)
		throw new BadRequest(400, `zstd: corrupt frame (decoded ${body.length} bytes, expected ${n === null ? 'some' : n})`);
	return body;
}

function decompress(enc, wire) {
	try {
		if (enc === '' || enc === 'identity')
			return wire;
		if (enc === 'gzip')
			return zlib.gunzipSync(wire, { maxOutputLength: MAX_BODY });
		if (enc === 'zstd')
			return unzstd(wire);
	} catch (e) {
		throw e instanceof BadRequest ? e : new BadRequest(400, `${enc}: ${e.message}`);
	}
	throw new BadRequest(415, 'unsupported Content-Encoding: ' + enc);
}

// OTLP/JSON carries trace and span ids in hex; protobufjs' fromObject reads bytes as base64.
function idsFromHex(v, path) {
	if (Array.isArray(v))
		return v.map((x, i) => idsFromHex(x, `${path}[${i}]`));
	if (v === null || typeof v !== 'object')
		return v;
	const o = {};
	for (const [k, x] of Object.entries(v)) {
		if (ID_FIELDS.has(k) && typeof x === 'string') {
			if (!/^([0-9a-fA-F]{2})*$/.test(x))
				throw new BadRequest(400, `${path}.${k}: not hex: ${x}`);
			o[k] = Buffer.from(x, 'hex');
		} else {
			o[k] = idsFromHex(x, `${path}.${k}`);
		}
	}
	return o;
}

function idsToHex(v) {
	if (Array.isArray(v))
		return v.forEach(idsToHex);
	if (v === null || typeof v !== 'object')
		return;
	for (const [k, x] of Object.entries(v)) {
		if (ID_FIELDS.has(k) && typeof x === 'string')
			v[k] = Buffer.from(x, 'base64').toString('hex');
		else
			idsToHex(x);
	}
}

// Keys of the JSON body that the decoded message (rendered with every field) lacks.
function unknownKeys(json, known, path, acc) {
	if (Array.isArray(json)) {
		json.forEach((x, i) => unknownKeys(x, Array.isArray(known) ? known[i] : undefined, `${path}[${i}]`, acc));
	} else if (json !== null && typeof json === 'object') {
		for (const [k, x] of Object.entries(json)) {
			if (known === null || typeof known !== 'object' || !(k in known))
				acc.push(`${path}.${k}`);
			else
				unknownKeys(x, known[k], `${path}.${k}`, acc);
		}
	}
	return acc;
}

function decode(sig, json, body, rec) {
	let msg;
	if (json) {
		let obj;
		try {
			obj = JSON.parse(body.toString('utf8'));
			msg = sig.req.fromObject(idsFromHex(obj, ''));
		} catch (e) {
			throw e instanceof BadRequest ? e : new BadRequest(400, 'json: ' + e.message);
		}
		const all = sig.req.toObject(msg, { defaults: true, longs: String, bytes: String });
		rec.json_unknown_fields = unknownKeys(obj, all, '', []);
	} else {
		try {
			msg = sig.req.decode(body);
		} catch (e) {
			throw new BadRequest(400, 'protobuf: ' + e.message);
		}
	}
	rec.reencoded_bytes = sig.req.encode(msg).finish().length;
	rec.request = sig.req.toObject(msg, { longs: String, enums: String, bytes: String, oneofs: true });
	idsToHex(rec.request);
}

function reply(res, status, json, sig, message) {
	const headers = { 'Content-Type': json ? 'application/json' : 'application/x-protobuf' };
	let body;
	if (status >= 200 && status < 300) {
		const ps = answer.partial_rejected || answer.partial_message
			? { partialSuccess: { [sig.rejected]: answer.partial_rejected, errorMessage: answer.partial_message } } : {};
		const m = sig.resp.fromObject(ps);
		body = json ? JSON.stringify(sig.resp.toObject(m, { longs: String })) : sig.resp.encode(m).finish();
	} else {
		// google.rpc.Status {int32 code = 1; string message = 2;}, as OTLP/HTTP says
		const code = GRPC_CODE[status] || 2;
		body = json ? JSON.stringify({ code, message })
			: Writer.create().uint32(8).int32(code).uint32(18).string(message).finish();
		if (answer.retry_after !== null && (status === 429 || status === 503))
			headers['Retry-After'] = String(answer.retry_after);
	}
	res.writeHead(status, headers);
	res.end(Buffer.from(body));
}

function handle(req, wire, res) {
	if (req.url === '/control' && req.method === 'POST') {
		try {
			Object.assign(answer, JSON.parse(wire.toString('utf8') || '{}'));
			res.writeHead(204);
		} catch (e) {
			res.writeHead(400);
		}
		return res.end();
	}
	const sig = SIGNALS[req.url];
	const ctype = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
	const json = ctype === 'application/json';
	const enc = (req.headers['content-encoding'] || '').trim().toLowerCase();
	const rec = { seq: ++seq, path: req.url, signal: sig ? sig.name : null, headers: req.headers,
		encoding: json ? 'json' : 'proto', content_encoding: enc, wire_bytes: wire.length, body_bytes: null,
		status: answer.status, error: null };
	try {
		if (!sig)
			throw new BadRequest(404, 'no such path: ' + req.url);
		if (req.method !== 'POST')
			throw new BadRequest(405, 'POST only');
		if (!json && ctype !== 'application/x-protobuf')
			throw new BadRequest(415, 'unsupported Content-Type: ' + ctype);
		const body = decompress(enc, wire);
		rec.body_bytes = body.length;
		decode(sig, json, body, rec);
	} catch (e) {
		if (!(e instanceof BadRequest))
			throw e;
		rec.status = e.status;
		rec.error = e.message;
	}
	fs.writeSync(out, JSON.stringify(rec) + '\n');
	reply(res, rec.status, json, sig || SIGNALS['/v1/metrics'], rec.error || `answering ${rec.status} as told`);
}

async function main() {
	const { ZSTDDecoder } = await import('zstddec');
	zstd = new ZSTDDecoder();
	await zstd.init();
	const server = http.createServer((req, res) => {
		const chunks = [];
		let size = 0;
		req.on('data', (c) => {
			size += c.length;
			if (size <= MAX_BODY)
				chunks.push(c);
		});
		req.on('end', () => {
			if (size > MAX_BODY) {
				res.writeHead(413);
				return res.end();
			}
			handle(req, Buffer.concat(chunks), res);
		});
	});
	server.keepAliveTimeout = 60000;
	const stop = () => {
		server.close(() => process.exit(0));
		server.closeAllConnections();
	};
	process.on('SIGTERM', stop);
	process.on('SIGINT', stop);
	server.listen(Number(arg('port', 0)), '127.0.0.1', () => {
		process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
	});
}

main().catch((e) => {
	console.error(e);
	process.exit(2);
});
