/*
 * fuzz_otlp_json.c — libFuzzer target for the OTLP/JSON decoder, which sees whatever
 * an OTLP/HTTP client posts. Each input is decoded as a metrics, logs and trace export
 * request. Whatever decodes must survive encode -> decode unchanged: the packed
 * protobuf of the second decode must equal that of the first.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/otlp_json.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	buf = malloc(*len ? *len : 1);
	if (!buf || protobuf_c_message_pack(m, buf) != *len)
		abort();
	return buf;
}

static void check(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = NULL, *back = NULL;
	struct dbi_errbuf err;
	uint8_t *a, *b;
	size_t alen, blen, jlen;
	char *json;

	if (dbi_otlp_json_decode(d, (const char *)data, size, &m, &err) != DBI_OK) {
		if (m)
			abort(); /* an error leaves nothing behind */
		return;
	}
	if (dbi_otlp_json_encode(m, &json, &jlen) != DBI_OK)
		abort();
	if (dbi_otlp_json_decode(d, json, jlen, &back, &err) != DBI_OK)
		abort(); /* our own output must always decode */
	a = pack(m, &alen);
	b = pack(back, &blen);
	if (alen != blen || memcmp(a, b, alen) != 0)
		abort();
	free(a);
	free(b);
	free(json);
	protobuf_c_message_free_unpacked(back, NULL);
	protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(&opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor, data, size);
	check(&opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor, data, size);
	check(&opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor, data, size);
	return 0;
}
