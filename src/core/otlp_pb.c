/*
 * otlp_pb.c — bounded-depth unpacking of OTLP protobuf payloads.
 *
 * protobuf-c unpacks nested messages recursively without a depth limit; a payload of
 * a few MB nesting AnyValue -> KeyValueList -> KeyValue -> AnyValue ... overflows the
 * stack of whichever thread unpacks it. This pre-pass walks the wire format once,
 * descending only into fields that the descriptor declares as messages, and rejects
 * nesting beyond a limit before protobuf-c is asked to build anything. Its cost is a
 * linear scan over bytes that protobuf-c reads again anyway.
 */
#include "dbi/otlp_pb.h"

#include <string.h>

/* Reads a base-128 varint of at most 10 bytes; returns bytes used, 0 if malformed. */
static size_t pb_varint(const uint8_t *p, size_t len, uint64_t *v)
{
	uint64_t r = 0;
	size_t i;

	for (i = 0; i < len && i < 10; i++) {
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = r;
			return i + 1;
		}
	}
	return 0;
}

static int pb_scan(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, unsigned depth,
                   unsigned max_depth, size_t base, struct dbi_errbuf *err)
{
	size_t off = 0;

	if (depth > max_depth) {
		if (err)
			dbi_err_set(err, "protobuf: messages nested deeper than %u levels (at byte %zu)", max_depth,
			            base);
		return DBI_ERR;
	}
	while (off < len) {
		uint64_t tag, v;
		size_t n = pb_varint(p + off, len - off, &tag);
		uint32_t num;

		if (n == 0 || tag > UINT32_MAX || (tag >> 3) == 0)
			goto malformed;
		off += n;
		num = (uint32_t)(tag >> 3);
		switch (tag & 7) {
		case PROTOBUF_C_WIRE_TYPE_VARINT:
			n = pb_varint(p + off, len - off, &v);
			if (n == 0)
				goto malformed;
			off += n;
			break;
		case PROTOBUF_C_WIRE_TYPE_64BIT:
			if (len - off < 8)
				goto malformed;
			off += 8;
			break;
		case PROTOBUF_C_WIRE_TYPE_32BIT:
			if (len - off < 4)
				goto malformed;
			off += 4;
			break;
		case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED: {
			const ProtobufCFieldDescriptor *fd;

			n = pb_varint(p + off, len - off, &v);
			if (n == 0 || v > len - off - n)
				goto malformed;
			off += n;
			fd = d ? protobuf_c_message_descriptor_get_field(d, num) : NULL;
			if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE &&
			    pb_scan(fd->descriptor, p + off, (size_t)v, depth + 1, max_depth, base + off, err) !=
			            DBI_OK)
				return DBI_ERR;
			off += (size_t)v;
			break;
		}
		default:
			/* groups (wire types 3, 4) are proto2 relics protobuf-c rejects too */
			goto malformed;
		}
	}
	return DBI_OK;

malformed:
	if (err)
		dbi_err_set(err, "protobuf: malformed %s at byte %zu", d ? d->name : "message", base + off);
	return DBI_ERR;
}

int dbi_otlp_pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, unsigned max_depth,
                      struct dbi_errbuf *err)
{
	if (len && !buf) {
		if (err)
			dbi_err_set(err, "protobuf: no buffer");
		return DBI_ERR;
	}
	return pb_scan(d, buf, len, 1, max_depth, 0, err);
}

int dbi_otlp_pb_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, ProtobufCMessage **out,
                       struct dbi_errbuf *err)
{
	static const uint8_t empty[1];
	ProtobufCMessage *m;

	*out = NULL;
	if (!buf && len == 0)
		buf = empty;
	if (dbi_otlp_pb_check(d, buf, len, DBI_OTLP_MAX_DEPTH, err) != DBI_OK)
		return DBI_ERR;
	m = protobuf_c_message_unpack(d, NULL, len, buf);
	if (!m) {
		if (err)
			dbi_err_set(err, "protobuf: %s does not unpack (bad field type or encoding)", d->name);
		return DBI_ERR;
	}
	*out = m;
	return DBI_OK;
}
