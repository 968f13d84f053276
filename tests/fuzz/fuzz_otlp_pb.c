/*
 * fuzz_otlp_pb.c — libFuzzer target for OTLP protobuf payloads: the bounded unpacker
 * (depth pre-check, then protobuf-c) for metrics, logs and trace export requests,
 * followed by our JSON encoder, as the debug exporter would run it on received data.
 * The encoder's output must be valid JSON that our decoder accepts, except where the
 * protobuf carried an id of the wrong length, which OTLP/JSON cannot express.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "dbi/otlp_json.h"
#include "dbi/otlp_pb.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = NULL, *back = NULL;
	struct json_tokener *tok;
	struct json_object *parsed;
	struct dbi_errbuf err;
	size_t jlen;
	char *json;

	if (dbi_otlp_pb_unpack(d, data, size, &m, &err) != DBI_OK)
		return;
	if (dbi_otlp_json_encode_ex(m, DBI_OTLP_JSON_PRETTY, &json, &jlen) != DBI_OK)
		abort();
	free(json);
	if (dbi_otlp_json_encode(m, &json, &jlen) != DBI_OK)
		abort();
	/* valid JSON, valid UTF-8, within the decoder's depth limit */
	tok = json_tokener_new_ex(DBI_OTLP_JSON_MAX_DEPTH);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	parsed = json_tokener_parse_ex(tok, json, (int)jlen);
	if (!parsed || json_tokener_get_parse_end(tok) != jlen)
		abort();
	json_object_put(parsed);
	json_tokener_free(tok);
	if (dbi_otlp_json_decode(d, json, jlen, &back, &err) == DBI_OK)
		protobuf_c_message_free_unpacked(back, NULL);
	else if (!strstr(err.msg, "hex digits"))
		abort();
	free(json);
	protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(&opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor, data, size);
	check(&opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor, data, size);
	check(&opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor, data, size);
	return 0;
}
