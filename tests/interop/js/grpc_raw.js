// grpc_raw.js — raw unary gRPC calls with @grpc/grpc-js (an independent HTTP/2 + gRPC
// implementation), for tests of dbi's OTLP/gRPC server that the OTLP exporters cannot
// make: arbitrary bytes, unknown methods, missing tokens, gzip-compressed messages.
//
//   node grpc_raw.js PORT < calls.json
//
// calls.json: [{"method": "/pkg.Service/Export", "body_b64": "...", "token": "...",
//               "gzip": true}, ...]
// Prints a JSON array: [{"code": 0, "details": "...", "response_b64": "...",
//                        "status_details_b64": "..."}, ...] in the same order.
'use strict';

const grpc = require('@grpc/grpc-js');

const port = process.argv[2];
const calls = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const target = `127.0.0.1:${port}`;
const plain = new grpc.Client(target, grpc.credentials.createInsecure(),
	{ 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
const gzipped = new grpc.Client(target, grpc.credentials.createInsecure(),
	{ 'grpc.default_compression_algorithm': 2, 'grpc.max_send_message_length': -1 });

function call(c) {
	return new Promise((resolve) => {
		const md = new grpc.Metadata();
		if (c.token)
			md.set('authorization', 'Bearer ' + c.token);
		const client = c.gzip ? gzipped : plain;
		client.makeUnaryRequest(c.method, (b) => b, (b) => b, Buffer.from(c.body_b64 || '', 'base64'), md,
			{ deadline: Date.now() + 20000 }, (err, resp) => {
				if (!err)
					return resolve({ code: 0, details: '', response_b64: resp.toString('base64') });
				const det = err.metadata && err.metadata.get('grpc-status-details-bin');
				resolve({ code: err.code, details: err.details,
					status_details_b64: det && det.length ? Buffer.from(det[0]).toString('base64') : '' });
			});
	});
}

(async () => {
	const out = [];
	for (const c of calls)
		out.push(await call(c));
	console.log(JSON.stringify(out));
	plain.close();
	gzipped.close();
})();
