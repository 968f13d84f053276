/*
 * otlp_body.c — what the otlp receiver does with request bodies and what it sends back.
 *
 * Compressed bodies are inflated in a loop that stops the moment the output would pass
 * the configured message size, so a decompression bomb costs at most that much memory
 * and the CPU to produce it; a ratio guard refuses bodies that expand absurdly even
 * below the size limit. Responses are the OTLP Export*ServiceResponse messages (with
 * partial_success when items were rejected) and google.rpc.Status for errors, in the
 * encoding of the request: protobuf or OTLP/JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ZLIB_CONST
#include <zlib.h>
#ifdef DBI_HAVE_ZSTD
#include <zstd.h>
#endif

#include "dbi/otlp_json.h"
#include "dbi/otlp_pb.h"
#include "otlp_int.h"

#define RATIO_FLOOR (1u << 20) /* the ratio guard applies past this much output */

enum otlp_encoding otlp_encoding_parse(const char *s)
{
	if (!s || !*s || strcasecmp(s, "identity") == 0)
		return OTLP_ENC_IDENTITY;
	if (strcasecmp(s, "gzip") == 0 || strcasecmp(s, "x-gzip") == 0)
		return OTLP_ENC_GZIP;
	if (strcasecmp(s, "deflate") == 0)
		return OTLP_ENC_DEFLATE;
#ifdef DBI_HAVE_ZSTD
	if (strcasecmp(s, "zstd") == 0)
		return OTLP_ENC_ZSTD;
#endif
	return OTLP_ENC_UNKNOWN;
}

/* Grow *buf to hold at least need bytes, never beyond limit + 1 (to see the overflow). */
static int grow(uint8_t **buf, size_t *cap, size_t need, size_t limit)
{
	size_t ncap = *cap ? *cap : 64 * 1024;
	if (need <= *cap)
		return DBI_OK;
	while (ncap < need)
		ncap *= 2;
	if (ncap > limit + 1)
		ncap = limit + 1;
	if (ncap < need)
		return DBI_ERR;
	uint8_t *nb = realloc(*buf, ncap);
	if (!nb)
		return DBI_ERR;
	*buf = nb;
	*cap = ncap;
	return DBI_OK;
}

static int over_ratio(size_t out, size_t in, unsigned max_ratio)
{
	return max_ratio && out > RATIO_FLOOR && out / (in ? in : 1) > max_ratio;
}

static int inflate_body(int window_bits, const uint8_t *in, size_t inlen, size_t max_out, unsigned max_ratio,
                        uint8_t **out, size_t *outlen, char *why, size_t whylen)
{
	z_stream z;
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0;
	int rc = OTLP_BODY_CORRUPT, zr = Z_OK;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, window_bits) != Z_OK) {
		snprintf(why, whylen, "cannot start the decompressor");
		return OTLP_BODY_CORRUPT;
	}
	z.next_in = in;
	z.avail_in = (uInt)inlen;
	for (;;) {
		if (len == cap && grow(&buf, &cap, len + 1, max_out) != DBI_OK) {
			if (len > max_out || cap == max_out + 1)
				goto too_large;
			snprintf(why, whylen, "out of memory");
			goto fail;
		}
		z.next_out = buf + len;
		z.avail_out = (uInt)(cap - len);
		zr = inflate(&z, Z_NO_FLUSH);
		len = cap - z.avail_out;
		if (len > max_out)
			goto too_large;
		if (over_ratio(len, inlen, max_ratio)) {
			snprintf(why, whylen, "body expands more than %u times: refused as a decompression bomb",
			         max_ratio);
			rc = OTLP_BODY_BOMB;
			goto fail;
		}
		if (zr == Z_STREAM_END) {
			if (z.avail_in == 0)
				break;
			/* concatenated gzip members are one body */
			if (inflateReset(&z) != Z_OK)
				goto corrupt;
			continue;
		}
		if (zr == Z_BUF_ERROR && z.avail_in == 0)
			goto corrupt; /* truncated */
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			goto corrupt;
	}
	inflateEnd(&z);
	*out = buf;
	*outlen = len;
	return OTLP_BODY_OK;
too_large:
	snprintf(why, whylen, "decompressed body larger than %zu bytes", max_out);
	rc = OTLP_BODY_TOO_LARGE;
	goto fail;
corrupt:
	snprintf(why, whylen, "compressed body is corrupt or truncated (%s)", z.msg ? z.msg : "zlib error");
	rc = OTLP_BODY_CORRUPT;
fail:
	inflateEnd(&z);
	free(buf);
	return rc;
}

#ifdef DBI_HAVE_ZSTD
static int zstd_body(const uint8_t *in, size_t inlen, size_t max_out, unsigned max_ratio, uint8_t **out, size_t *outlen,
                     char *why, size_t whylen)
{
	ZSTD_DCtx *z = ZSTD_createDCtx();
	ZSTD_inBuffer ib = {in, inlen, 0};
	uint8_t *buf = NULL;
	size_t cap = 0, len = 0, zr = 1;
	int rc = OTLP_BODY_CORRUPT;

	if (!z) {
		snprintf(why, whylen, "out of memory");
		return OTLP_BODY_CORRUPT;
	}
	/* bound the decoder's window memory whatever the frame header claims */
	ZSTD_DCtx_setParameter(z, ZSTD_d_windowLogMax, 23);
	while (ib.pos < ib.size || zr != 0) {
		if (len == cap && grow(&buf, &cap, len + 1, max_out) != DBI_OK) {
			if (cap == max_out + 1)
				goto too_large;
			snprintf(why, whylen, "out of memory");
			goto fail;
		}
		ZSTD_outBuffer ob = {buf, cap, len};
		size_t before = ib.pos;
		zr = ZSTD_decompressStream(z, &ob, &ib);
		if (ZSTD_isError(zr)) {
			snprintf(why, whylen, "zstd body is corrupt (%s)", ZSTD_getErrorName(zr));
			goto fail;
		}
		len = ob.pos;
		if (len > max_out)
			goto too_large;
		if (over_ratio(len, inlen, max_ratio)) {
			snprintf(why, whylen, "body expands more than %u times: refused as a decompression bomb",
			         max_ratio);
			rc = OTLP_BODY_BOMB;
			goto fail;
		}
		if (ib.pos == ib.size && zr != 0 && ob.pos < ob.size && before == ib.pos) {
			snprintf(why, whylen, "zstd body is truncated");
			goto fail;
		}
	}
	ZSTD_freeDCtx(z);
	*out = buf;
	*outlen = len;
	return OTLP_BODY_OK;
too_large:
	snprintf(why, whylen, "decompressed body larger than %zu bytes", max_out);
	rc = OTLP_BODY_TOO_LARGE;
fail:
	ZSTD_freeDCtx(z);
	free(buf);
	return rc;
}
#endif

int otlp_decompress(enum otlp_encoding enc, const uint8_t *in, size_t inlen, size_t max_out, unsigned max_ratio,
                    uint8_t **out, size_t *outlen, char *why, size_t whylen)
{
	int rc;
	*out = NULL;
	*outlen = 0;
	switch (enc) {
	case OTLP_ENC_IDENTITY:
		if (inlen > max_out) {
			snprintf(why, whylen, "body larger than %zu bytes", max_out);
			return OTLP_BODY_TOO_LARGE;
		}
		*out = malloc(inlen ? inlen : 1);
		if (!*out) {
			snprintf(why, whylen, "out of memory");
			return OTLP_BODY_CORRUPT;
		}
		if (inlen)
			memcpy(*out, in, inlen);
		*outlen = inlen;
		return OTLP_BODY_OK;
	case OTLP_ENC_GZIP:
		return inflate_body(15 + 16, in, inlen, max_out, max_ratio, out, outlen, why, whylen);
	case OTLP_ENC_DEFLATE:
		/* HTTP "deflate" is zlib-wrapped; some clients send raw deflate */
		rc = inflate_body(15, in, inlen, max_out, max_ratio, out, outlen, why, whylen);
		if (rc == OTLP_BODY_CORRUPT)
			rc = inflate_body(-15, in, inlen, max_out, max_ratio, out, outlen, why, whylen);
		return rc;
#ifdef DBI_HAVE_ZSTD
	case OTLP_ENC_ZSTD:
		return zstd_body(in, inlen, max_out, max_ratio, out, outlen, why, whylen);
#endif
	default:
		snprintf(why, whylen, "unsupported encoding");
		return OTLP_BODY_CORRUPT;
	}
}

const ProtobufCMessageDescriptor *otlp_request_desc(enum otlp_signal sig)
{
	switch (sig) {
	case OTLP_METRICS:
		return &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor;
	case OTLP_LOGS:
		return &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor;
	default:
		return &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
	}
}

int otlp_unpack(enum otlp_signal sig, int json, const uint8_t *buf, size_t len, ProtobufCMessage **out,
                struct dbi_errbuf *err)
{
	const ProtobufCMessageDescriptor *d = otlp_request_desc(sig);
	if (json)
		return dbi_otlp_json_decode(d, (const char *)buf, len, out, err);
	return dbi_otlp_pb_unpack(d, buf, len, out, err);
}

static int finish(const ProtobufCMessage *m, int json, uint8_t **out, size_t *len)
{
	if (json) {
		char *s;
		if (dbi_otlp_json_encode(m, &s, len) != DBI_OK)
			return DBI_ERR;
		*out = (uint8_t *)s;
		return DBI_OK;
	}
	*len = protobuf_c_message_get_packed_size(m);
	*out = malloc(*len ? *len : 1);
	if (!*out)
		return DBI_ERR;
	protobuf_c_message_pack(m, *out);
	return DBI_OK;
}

int otlp_response(enum otlp_signal sig, int json, const struct otlp_result *r, uint8_t **out, size_t *len)
{
	int64_t rejected = (int64_t)otlp_result_rejected(r);
	char msg[sizeof(r->msg)];
	memcpy(msg, r->msg, sizeof(msg));
	if (sig == OTLP_METRICS) {
		Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse resp =
		        OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_RESPONSE__INIT;
		Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsPartialSuccess ps =
		        OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_PARTIAL_SUCCESS__INIT;
		ps.rejected_data_points = rejected;
		ps.error_message = msg;
		if (rejected)
			resp.partial_success = &ps;
		return finish(&resp.base, json, out, len);
	}
	if (sig == OTLP_LOGS) {
		Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceResponse resp =
		        OPENTELEMETRY__PROTO__COLLECTOR__LOGS__V1__EXPORT_LOGS_SERVICE_RESPONSE__INIT;
		Opentelemetry__Proto__Collector__Logs__V1__ExportLogsPartialSuccess ps =
		        OPENTELEMETRY__PROTO__COLLECTOR__LOGS__V1__EXPORT_LOGS_PARTIAL_SUCCESS__INIT;
		ps.rejected_log_records = rejected;
		ps.error_message = msg;
		if (rejected)
			resp.partial_success = &ps;
		return finish(&resp.base, json, out, len);
	}
	Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse resp =
	        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
	Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
	        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
	ps.rejected_spans = rejected;
	ps.error_message = msg;
	if (rejected)
		resp.partial_success = &ps;
	return finish(&resp.base, json, out, len);
}

/* ---- google.rpc.Status, encoded by hand (three fields; no generated code needed) ---- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static size_t put_bytes(uint8_t *p, unsigned field, const void *data, size_t len)
{
	size_t n = put_varint(p, (uint64_t)field << 3 | 2);
	n += put_varint(p + n, len);
	memcpy(p + n, data, len);
	return n + len;
}

static const char retry_info_type[] = "type.googleapis.com/google.rpc.RetryInfo";

static int status_pb(int code, const char *msg, uint64_t retry_ns, uint8_t **out, size_t *len)
{
	size_t mlen = strlen(msg), n = 0;
	uint8_t *p = malloc(mlen + 128);
	if (!p)
		return DBI_ERR;
	if (code) {
		n += put_varint(p + n, 1 << 3 | 0);
		n += put_varint(p + n, (uint64_t)code);
	}
	if (mlen)
		n += put_bytes(p + n, 2, msg, mlen);
	if (retry_ns) {
		uint8_t dur[24], ri[32], any[96];
		size_t dn = 0, rn, an;
		uint64_t secs = retry_ns / DBI_NSEC_PER_SEC, nanos = retry_ns % DBI_NSEC_PER_SEC;
		if (secs) {
			dur[dn++] = 1 << 3 | 0;
			dn += put_varint(dur + dn, secs);
		}
		if (nanos) {
			dur[dn++] = 2 << 3 | 0;
			dn += put_varint(dur + dn, nanos);
		}
		rn = put_bytes(ri, 1, dur, dn);
		an = put_bytes(any, 1, retry_info_type, sizeof(retry_info_type) - 1);
		an += put_bytes(any + an, 2, ri, rn);
		n += put_bytes(p + n, 3, any, an);
	}
	*out = p;
	*len = n;
	return DBI_OK;
}

static int status_json(int code, const char *msg, uint64_t retry_ns, uint8_t **out, size_t *len)
{
	size_t mlen = strlen(msg), o = 0, cap = mlen * 6 + 256;
	char *p = malloc(cap);
	if (!p)
		return DBI_ERR;
	o += (size_t)snprintf(p, cap, "{\"code\":%d,\"message\":\"", code);
	for (const unsigned char *s = (const unsigned char *)msg; *s; s++) {
		if (*s == '"' || *s == '\\')
			o += (size_t)snprintf(p + o, cap - o, "\\%c", *s);
		else if (*s < 0x20)
			o += (size_t)snprintf(p + o, cap - o, "\\u%04x", *s);
		else
			p[o++] = (char)*s;
	}
	if (retry_ns)
		o += (size_t)snprintf(p + o, cap - o,
		                      "\",\"details\":[{\"@type\":\"%s\",\"retryDelay\":\"%llu.%09llus\"}]}",
		                      retry_info_type, (unsigned long long)(retry_ns / DBI_NSEC_PER_SEC),
		                      (unsigned long long)(retry_ns % DBI_NSEC_PER_SEC));
	else
		o += (size_t)snprintf(p + o, cap - o, "\"}");
	*out = (uint8_t *)p;
	*len = o;
	return DBI_OK;
}

int otlp_status(int json, int code, const char *msg, uint64_t retry_delay_ns, uint8_t **out, size_t *len)
{
	return json ? status_json(code, msg, retry_delay_ns, out, len) : status_pb(code, msg, retry_delay_ns, out, len);
}
