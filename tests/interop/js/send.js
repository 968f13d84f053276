// send.js — the official OpenTelemetry JS SDK sends known metrics, logs and spans to an
// OTLP receiver, over one protocol: http-proto (OTLP/HTTP protobuf), http-json (OTLP/HTTP
// JSON) or grpc (OTLP/gRPC). Used by tests/integration/test_otlp_receiver_interop.py,
// which checks that dbi received exactly this, and test_otlp_export_interop.py, which
// checks that dbi passed it on intact (to otlp_peer.js).
//
//   node send.js --protocol http-proto|http-json|grpc --http-port N --grpc-port N --run-id ID
//                [--token T] [--long-attrs]
//
// The log record is emitted inside the span, so it carries the span's ids. --long-attrs
// adds an attribute with a 300-character key and one with a 5000-character value to the
// span and the log record (for New Relic's attribute limits).
//
// Prints one JSON line: {"protocol":..., "results":{"metrics":0,"logs":0,"traces":0},
// "span":{"traceId":..., "spanId":...}} with the SDK's ExportResultCode per signal
// (0 = success); exits 1 if any failed.
'use strict';

const { SeverityNumber, context, trace } = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { MeterProvider, PeriodicExportingMetricReader, AggregationTemporality } = require('@opentelemetry/sdk-metrics');
const { LoggerProvider, SimpleLogRecordProcessor } = require('@opentelemetry/sdk-logs');
const { TracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace');

function arg(name, def) {
	const i = process.argv.indexOf('--' + name);
	return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const protocol = arg('protocol', 'http-proto');
const httpPort = arg('http-port', '4318');
const grpcPort = arg('grpc-port', '4317');
const runId = arg('run-id', 'run');
const token = arg('token', '');
const longAttrs = process.argv.includes('--long-attrs')
	? { ['k'.repeat(300)]: 'long key', 'long.value': 'x'.repeat(5000) } : {};
const headers = token ? { Authorization: 'Bearer ' + token } : {};

function exporters() {
	const base = `http://127.0.0.1:${httpPort}`;
	if (protocol === 'grpc') {
		const grpc = require('@grpc/grpc-js');
		const md = new grpc.Metadata();
		if (token)
			md.set('authorization', 'Bearer ' + token);
		const opts = { url: `http://127.0.0.1:${grpcPort}`, credentials: grpc.credentials.createInsecure(),
			metadata: md };
		return {
			metrics: new (require('@opentelemetry/exporter-metrics-otlp-grpc').OTLPMetricExporter)(
				{ ...opts, temporalityPreference: AggregationTemporality.CUMULATIVE }),
			logs: new (require('@opentelemetry/exporter-logs-otlp-grpc').OTLPLogExporter)(opts),
			traces: new (require('@opentelemetry/exporter-trace-otlp-grpc').OTLPTraceExporter)(opts),
		};
	}
	const pkg = protocol === 'http-json' ? 'http' : 'proto';
	return {
		metrics: new (require(`@opentelemetry/exporter-metrics-otlp-${pkg}`).OTLPMetricExporter)(
			{ url: base + '/v1/metrics', headers, temporalityPreference: AggregationTemporality.CUMULATIVE }),
		logs: new (require(`@opentelemetry/exporter-logs-otlp-${pkg}`).OTLPLogExporter)(
			{ url: base + '/v1/logs', headers }),
		traces: new (require(`@opentelemetry/exporter-trace-otlp-${pkg}`).OTLPTraceExporter)(
			{ url: base + '/v1/traces', headers }),
	};
}

// Remember what each export reported, so the test knows the receiver's answer too.
const results = {};
function watch(name, exporter) {
	const orig = exporter.export.bind(exporter);
	exporter.export = (items, cb) => orig(items, (res) => {
		if (results[name] === undefined || res.code !== 0)
			results[name] = res.code;
		if (res.error)
			results[name + '_error'] = String(res.error.message || res.error);
		cb(res);
	});
	return exporter;
}

async function main() {
	const ex = exporters();
	const resource = resourceFromAttributes({
		'service.name': 'dbi-interop',
		'test.run': runId,
		'test.protocol': protocol,
		'host.cores': 2,
	});

	const reader = new PeriodicExportingMetricReader({ exporter: watch('metrics', ex.metrics),
		exportIntervalMillis: 3600000 });
	const meters = new MeterProvider({ resource, readers: [reader] });
	const meter = meters.getMeter('dbi-interop-meter', '1.2.3');
	const requests = meter.createCounter('interop.requests', { unit: '{request}', description: 'requests seen' });
	requests.add(5, { route: '/a', code: 200 });
	requests.add(3, { route: '/b', code: 500, retried: true });
	const queue = meter.createUpDownCounter('interop.queue', { unit: '{item}' });
	queue.add(10, { queue: 'main' });
	queue.add(-4, { queue: 'main' });
	const latency = meter.createHistogram('interop.latency', { unit: 'ms' });
	for (const v of [5, 15, 150])
		latency.record(v, { route: '/a' });
	const temp = meter.createGauge('interop.temperature', { unit: 'Cel' });
	temp.record(21.5, { room: 'lab', floor: 3 });
	await meters.forceFlush();
	await meters.shutdown();

	const tracers = new TracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor({ exporter: watch("traces", ex.traces) })] });
	const tracer = tracers.getTracer('dbi-interop-tracer', '7.8.9');
	const span = tracer.startSpan('interop-span', { attributes: { 'span.attr': 'x', count: 3, ...longAttrs } });
	span.addEvent('halfway', { step: 1 });

	const loggers = new LoggerProvider({ resource, processors: [new SimpleLogRecordProcessor({ exporter: watch("logs", ex.logs) })] });
	const logger = loggers.getLogger('dbi-interop-logger', '4.5.6');
	logger.emit({ severityNumber: SeverityNumber.WARN, severityText: 'WARN', body: `interop log ${runId}`,
		attributes: { 'log.kind': 'test', n: 7, ...longAttrs }, context: trace.setSpan(context.active(), span) });
	await loggers.forceFlush();
	await loggers.shutdown();

	span.end();
	await tracers.forceFlush();
	await tracers.shutdown();

	const ok = ['metrics', 'logs', 'traces'].every((s) => results[s] === 0);
	const { traceId, spanId } = span.spanContext();
	console.log(JSON.stringify({ protocol, results, span: { traceId, spanId } }));
	process.exitCode = ok ? 0 : 1;
}

main().catch((e) => {
	console.error(e);
	process.exitCode = 2;
});
