/*
 * fuzz_otlphttp_wire.c — libFuzzer target for the otlphttp exporter's wire-level code,
 * which sees bytes it did not write: requests read back from the persistent queue (and
 * cut after a 413), and log records / spans passed through from receivers (rewritten
 * under the New Relic limits). The first byte picks the signal, the rest is the payload.
 *
 * Properties: never crash; when a request counts n items, cutting it at any k gives two
 * well-formed requests of k and n - k items; a record the encoder accepts produces a
 * request that counts exactly one item and that protobuf-c unpacks whenever it unpacks
 * the record itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/exporters/otlphttp/otlp_enc.h"
#include "dbi/otlp_pb.h"
#include "dbi/registry.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dbi_registry *reg;
static struct dbi_otlp_enc *enc_plain, *enc_nr;
static uint32_t res_id, scope_id;

static void setup(void)
{
	static struct dbi_otlp_limits lim = DBI_NR_LIMITS_INIT;
	reg = dbi_registry_create(100);
	struct dbi_attr a = {.key = "service.name", .type = DBI_AT_STR, .v.s = "fuzz"};
	res_id = dbi_attrs_intern(reg, &a, 1);
	scope_id = dbi_scope_intern(reg, "fuzz", "1");
	struct dbi_otlp_enc_opts o = {.limits = &lim};
	enc_plain = dbi_otlp_enc_create(reg, NULL);
	enc_nr = dbi_otlp_enc_create(reg, &o);
	if (!reg || !enc_plain || !enc_nr)
		abort();
}

static void cut(unsigned signal, const uint8_t *p, size_t n, struct dbi_obuf *a, struct dbi_obuf *b)
{
	uint32_t items, ca = 0, cb = 0;
	if (dbi_otlp_count_items(signal, p, n, &items) != DBI_OK)
		return;
	uint32_t k = items / 2 + (n & 1);
	if (k > items)
		k = items;
	if (dbi_otlp_extract(signal, p, n, 0, k, a) != DBI_OK || dbi_otlp_extract(signal, p, n, k, items, b) != DBI_OK)
		abort(); /* a request that counts must cut */
	if ((a->len && dbi_otlp_count_items(signal, a->data, a->len, &ca) != DBI_OK) ||
	    (b->len && dbi_otlp_count_items(signal, b->data, b->len, &cb) != DBI_OK))
		abort();
	if (ca != k || cb != items - k)
		abort();
}

static void record(unsigned signal, const uint8_t *p, size_t n, struct dbi_obuf *out)
{
	struct dbi_otlp_rec *r = malloc(sizeof(*r) + n);
	if (!r)
		return;
	memset(r, 0, sizeof(*r));
	r->h.type = signal == DBI_SIG_LOGS ? DBI_REC_LOG : DBI_REC_SPAN;
	r->h.len = (uint32_t)(sizeof(*r) + n);
	r->resource = res_id;
	r->scope = scope_id;
	r->pb_len = (uint32_t)n;
	if (n)
		memcpy(r + 1, p, n);
	const ProtobufCMessageDescriptor *d = signal == DBI_SIG_LOGS
	                                              ? &opentelemetry__proto__logs__v1__log_record__descriptor
	                                              : &opentelemetry__proto__trace__v1__span__descriptor;
	ProtobufCMessage *m = NULL;
	int valid = dbi_otlp_pb_unpack(d, p, n, &m, NULL) == DBI_OK;
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	const struct dbi_rec_hdr *recs[1] = {&r->h};
	struct dbi_otlp_enc *encs[2] = {enc_plain, enc_nr};
	for (int i = 0; i < 2; i++) {
		uint32_t items = 0, c = 0;
		if (dbi_otlp_enc_records(encs[i], signal, recs, 1, out, &items) != DBI_OK)
			abort();
		if (!items)
			continue;
		if (dbi_otlp_count_items(signal, out->data, out->len, &c) != DBI_OK || c != 1)
			abort();
		if (valid) {
			const ProtobufCMessageDescriptor *rd =
			        signal == DBI_SIG_LOGS
			                ? &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor
			                : &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
			if (dbi_otlp_pb_unpack(rd, out->data, out->len, &m, NULL) != DBI_OK)
				abort();
			protobuf_c_message_free_unpacked(m, NULL);
		}
	}
	free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dbi_obuf a, b;
	if (!reg)
		setup();
	if (size < 1)
		return 0;
	unsigned signal = data[0] % 3 == 0 ? DBI_SIG_METRICS : data[0] % 3 == 1 ? DBI_SIG_LOGS : DBI_SIG_TRACES;
	cut(signal, data + 1, size - 1, &a, &b);
	if (signal != DBI_SIG_METRICS && size - 1 < (1u << 20))
		record(signal, data + 1, size - 1, &a);
	return 0;
}
