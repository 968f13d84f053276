/*
 * fuzz_otlp_receiver.c — libFuzzer target for the otlp receiver's request path after
 * the socket: the first input byte picks the signal, the encoding (protobuf or JSON)
 * and the compression; the rest is the body. It goes through the bounded decompressor,
 * the unpacker and otlp_emit() into a sink that checks every record it is given (sizes
 * consistent, histogram arrays inside the record, OTLP bytes that unpack again) and
 * that fills up now and then, with a registry whose series limit is small enough to be
 * hit. Then the response or status is encoded as the front ends would.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/receivers/otlp/otlp_int.h"
#include "dbi/otlp_pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dbi_registry *reg;
static struct otlp_dec *dec;
static uint8_t recbuf[1 << 20];

struct fsink {
	unsigned budget, taken;
};

static int f_point(void *cls, struct dbi_point *p, uint64_t route)
{
	struct fsink *s = cls;
	(void)route;
	if (!dbi_series_get(reg, p->series))
		abort();
	return s->taken++ < s->budget ? DBI_OK : DBI_AGAIN;
}

static void *f_reserve(void *cls, uint32_t type, uint32_t len, uint64_t route)
{
	struct fsink *s = cls;
	(void)route;
	if (len > sizeof(recbuf) || len < sizeof(struct dbi_rec_hdr) || s->taken >= s->budget)
		return NULL;
	memset(recbuf, 0xa5, len);
	struct dbi_rec_hdr *h = (struct dbi_rec_hdr *)recbuf;
	h->type = type;
	h->len = len;
	return h;
}

static void f_commit(void *cls, void *rec)
{
	struct fsink *s = cls;
	const struct dbi_rec_hdr *h = rec;
	ProtobufCMessage *m = NULL;
	s->taken++;
	switch (h->type) {
	case DBI_REC_HIST: {
		const struct dbi_hist_rec *r = rec;
		if (dbi_hist_rec_size(r->nbounds) != h->len || !dbi_series_get(reg, r->series))
			abort();
		break;
	}
	case DBI_REC_EXPHIST:
	case DBI_REC_SUMMARY: {
		const struct dbi_otlp_point_rec *r = rec;
		if (sizeof(*r) + r->pb_len != h->len ||
		    dbi_otlp_pb_unpack(
		            h->type == DBI_REC_EXPHIST
		                    ? &opentelemetry__proto__metrics__v1__exponential_histogram_data_point__descriptor
		                    : &opentelemetry__proto__metrics__v1__summary_data_point__descriptor,
		            (const uint8_t *)(r + 1), r->pb_len, &m, NULL) != DBI_OK)
			abort();
		break;
	}
	case DBI_REC_LOG:
	case DBI_REC_SPAN: {
		const struct dbi_otlp_rec *r = rec;
		if (sizeof(*r) + r->pb_len != h->len || !dbi_attrs_get(reg, r->resource) ||
		    !dbi_scope_get(reg, r->scope) ||
		    dbi_otlp_pb_unpack(h->type == DBI_REC_LOG ? &opentelemetry__proto__logs__v1__log_record__descriptor
		                                              : &opentelemetry__proto__trace__v1__span__descriptor,
		                       dbi_otlp_rec_pb(r), r->pb_len, &m, NULL) != DBI_OK)
			abort();
		break;
	}
	default:
		abort();
	}
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum otlp_encoding encs[] = {OTLP_ENC_IDENTITY, OTLP_ENC_GZIP, OTLP_ENC_DEFLATE, OTLP_ENC_ZSTD};
	ProtobufCMessage *msg = NULL;
	struct dbi_errbuf err;
	struct otlp_result res;
	uint8_t *plain = NULL, *out = NULL;
	size_t plain_len, out_len;
	char why[256];

	if (!reg) {
		reg = dbi_registry_create(5000);
		dec = otlp_dec_create(reg);
	}
	if (size < 1)
		return 0;
	enum otlp_signal sig = (enum otlp_signal)(data[0] % 3);
	int json = (data[0] >> 2) & 1;
	enum otlp_encoding enc = encs[(data[0] >> 3) & 3];
	struct fsink fs = {.budget = (data[0] & 0x80) ? 3 : 1u << 30};
	struct otlp_sink sink = {
	        .cls = &fs, .point = f_point, .reserve = f_reserve, .commit = f_commit, .max_record = 1 << 16};

	if (otlp_decompress(enc, data + 1, size - 1, 1u << 20, 200, &plain, &plain_len, why, sizeof(why)) !=
	    OTLP_BODY_OK) {
		if (otlp_status(json, GRPC_INVALID_ARGUMENT, why, 0, &out, &out_len) == DBI_OK)
			free(out);
		return 0;
	}
	if (otlp_unpack(sig, json, plain, plain_len, &msg, &err) == DBI_OK) {
		struct otlp_need need;
		otlp_count(sig, msg, &need);
		otlp_emit(dec, sig, msg, &sink, &res);
		if (res.items != need.items || res.accepted + otlp_result_rejected(&res) != res.items)
			abort();
		if (otlp_response(sig, json, &res, &out, &out_len) == DBI_OK)
			free(out);
		protobuf_c_message_free_unpacked(msg, NULL);
	}
	free(plain);
	return 0;
}
