/*
 * pbwire.h — the protobuf wire format, by hand, for the OTLP exporter's hot path.
 *
 * The encoder computes every nested length before it writes, so writing is a run of
 * stores into a buffer already big enough: no back-patching, no memmove, no checks per
 * byte. These helpers are that run's vocabulary (varints, tags, fixed64, length-
 * delimited fields) plus a bounds-checked reader used to walk bytes that came from
 * elsewhere (passed-through data points, logs and spans, queued requests).
 */
#ifndef DBI_OTLPHTTP_PBWIRE_H
#define DBI_OTLPHTTP_PBWIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pbwire.h writes fixed64 with memcpy: little-endian hosts only"
#endif

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

#define PB_TAG(field, wt) ((uint32_t)(((field) << 3) | (wt)))

static inline size_t pb_varint_len(uint64_t v)
{
	/* 1 + floor(log2(v) / 7), with v = 0 taking one byte */
	return (size_t)((64 - __builtin_clzll(v | 1) + 6) / 7);
}

static inline uint8_t *pb_put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static inline uint8_t *pb_put_fixed64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
	return p + 8;
}

static inline uint8_t *pb_put_double(uint8_t *p, double d)
{
	memcpy(p, &d, 8);
	return p + 8;
}

/* Size of a length-delimited field with a one-byte tag holding n bytes. */
static inline size_t pb_len_field(size_t n)
{
	return 1 + pb_varint_len(n) + n;
}

/* Tag (one byte: fields 1..15) and length of a length-delimited field. */
static inline uint8_t *pb_put_len_hdr(uint8_t *p, uint8_t tag, size_t n)
{
	*p++ = tag;
	return pb_put_varint(p, n);
}

static inline uint8_t *pb_put_bytes(uint8_t *p, uint8_t tag, const void *b, size_t n)
{
	p = pb_put_len_hdr(p, tag, n);
	if (n)
		memcpy(p, b, n);
	return p + n;
}

/* ---- reading ---- */

struct pb_field {
	uint32_t num;
	uint32_t wt;
	uint64_t v;                 /* VARINT, I64, I32 value */
	const uint8_t *data;        /* LEN: payload */
	size_t len;                 /* LEN: payload length */
	const uint8_t *start, *end; /* the whole field, tag included */
};

/* Varint at *pp below end; 0 on success (advancing *pp), -1 if truncated or over 10 bytes. */
static inline int pb_get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
	const uint8_t *p = *pp;
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 70; shift += 7) {
		if (p >= end)
			return -1;
		uint8_t b = *p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*pp = p;
			*out = v;
			return 0;
		}
	}
	return -1;
}

/*
 * Next field of a message in [*pp, end). 1 = got one (advances *pp), 0 = end of the
 * message, -1 = malformed (bad tag, wire type, truncated payload).
 */
static inline int pb_next(const uint8_t **pp, const uint8_t *end, struct pb_field *f)
{
	const uint8_t *p = *pp;
	uint64_t tag;
	if (p >= end)
		return 0;
	f->start = p;
	if (pb_get_varint(&p, end, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
		return -1;
	f->num = (uint32_t)(tag >> 3);
	f->wt = (uint32_t)(tag & 7);
	f->data = NULL;
	f->len = 0;
	switch (f->wt) {
	case PB_VARINT:
		if (pb_get_varint(&p, end, &f->v) != 0)
			return -1;
		break;
	case PB_I64:
		if (end - p < 8)
			return -1;
		memcpy(&f->v, p, 8);
		p += 8;
		break;
	case PB_I32: {
		uint32_t v32;
		if (end - p < 4)
			return -1;
		memcpy(&v32, p, 4);
		f->v = v32;
		p += 4;
		break;
	}
	case PB_LEN: {
		uint64_t n;
		if (pb_get_varint(&p, end, &n) != 0 || n > (uint64_t)(end - p))
			return -1;
		f->data = p;
		f->len = (size_t)n;
		p += n;
		break;
	}
	default:
		return -1; /* groups (3, 4) are not used by OTLP */
	}
	f->end = p;
	*pp = p;
	return 1;
}

/* 0 if [p, p+len) is a well-formed message at the top level, -1 otherwise. */
static inline int pb_check_shallow(const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;
	struct pb_field f;
	int rc;
	while ((rc = pb_next(&p, end, &f)) == 1)
		;
	return rc;
}

#endif
