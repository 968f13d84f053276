/*
 * otlp_pb.h — safe unpacking of OTLP protobuf payloads from the outside world.
 *
 * protobuf-c's unpacker recurses once per nested message with no limit, so a few
 * megabytes of nested AnyValue/KeyValueList from a hostile client would exhaust the
 * stack. dbi_otlp_pb_unpack() first walks the wire format (iteratively within a
 * message, recursing only into fields the descriptor says are messages) and rejects
 * payloads nested deeper than DBI_OTLP_MAX_DEPTH before protobuf-c sees them.
 */
#ifndef DBI_OTLP_PB_H
#define DBI_OTLP_PB_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "dbi/common.h"

/*
 * Deepest message nesting accepted anywhere (the request itself is level 1). Real
 * OTLP needs ~5 levels plus 3 per nested map inside an attribute value; 64 leaves
 * room for about 19 levels of nested maps.
 */
#define DBI_OTLP_MAX_DEPTH 64

/*
 * Check that buf is well-formed protobuf wire format for message type d (tags,
 * lengths, wire types) and that message nesting stays within max_depth. Unknown
 * fields are skipped, not descended into. DBI_OK or DBI_ERR with err set.
 */
int dbi_otlp_pb_check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, unsigned max_depth,
                      struct dbi_errbuf *err);

/*
 * dbi_otlp_pb_check() with DBI_OTLP_MAX_DEPTH, then protobuf_c_message_unpack() with
 * the default allocator. On DBI_OK *out is the message; free it with
 * protobuf_c_message_free_unpacked(*out, NULL).
 */
int dbi_otlp_pb_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, ProtobufCMessage **out,
                       struct dbi_errbuf *err);

#endif
