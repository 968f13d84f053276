/*
 * otlp_json.h — the OTLP/JSON encoding, converted to and from protobuf-c messages.
 *
 * OTLP/HTTP carries either protobuf or JSON. The JSON is proto3's JSON mapping with
 * OTLP's amendments: trace and span ids are hex strings (not base64), enums are
 * integers, 64-bit integers are decimal strings. The codec works from protobuf-c
 * descriptors alone, so one implementation serves every OTLP request and response
 * message (Export{Metrics,Logs,Trace}Service{Request,Response}, or any part of them).
 *
 * Decoding is lenient where the spec allows senders latitude: field names in
 * lowerCamelCase or their original snake_case; enums as integers or value names;
 * 64-bit integers as numbers or strings; doubles as numbers, numeric strings, or
 * "NaN"/"Infinity"/"-Infinity"; bytes as standard or URL-safe base64 with or without
 * padding; null as "field absent"; unknown fields ignored. It is strict where
 * accepting would lose data: wrong JSON types, out-of-range numbers, ids that are not
 * 16 (trace) or 8 (span) bytes of hex, two members of one oneof, and malformed JSON
 * are errors, each naming the path, e.g.
 *   resourceMetrics[0].scopeMetrics[1].metrics[2].sum.dataPoints[0].asInt:
 *   expected integer, got object
 * protobuf-c strings are NUL-terminated: a JSON string containing \u0000 is kept up
 * to that character.
 *
 * Encoding writes camelCase names, omits fields at their default value (oneof members
 * and proto3-optional values are written whenever set), writes 64-bit integers as
 * strings, enums as integers, ids as lowercase hex, other bytes as padded base64,
 * doubles in the shortest form that reads back exactly, and replaces invalid UTF-8
 * in strings with U+FFFD so the output is always valid JSON.
 */
#ifndef DBI_OTLP_JSON_H
#define DBI_OTLP_JSON_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "dbi/common.h"
#include "dbi/otlp_pb.h"

/* Largest JSON document decoded. Peak memory is ~25x the input (json-c tree + message). */
#define DBI_OTLP_JSON_MAX_INPUT (32u << 20)

/* JSON nesting allowed: what DBI_OTLP_MAX_DEPTH messages need (object + array each). */
#define DBI_OTLP_JSON_MAX_DEPTH (2 * DBI_OTLP_MAX_DEPTH + 2)

/* dbi_otlp_json_encode_ex() flags. */
#define DBI_OTLP_JSON_PRETTY 0x1 /* newlines and two-space indentation, for humans */

/*
 * Decode len bytes of OTLP/JSON into a new message of type d. On DBI_OK *out owns the
 * message, allocated like protobuf_c_message_unpack() would: free it with
 * protobuf_c_message_free_unpacked(*out, NULL). On DBI_ERR *out is NULL and err says
 * where and why (err may be NULL).
 */
int dbi_otlp_json_decode(const ProtobufCMessageDescriptor *d, const char *json, size_t len, ProtobufCMessage **out,
                         struct dbi_errbuf *err);

/*
 * Encode m as compact OTLP/JSON. On DBI_OK *out is a malloc'd, NUL-terminated string
 * the caller frees with free(), and *len its length without the NUL. DBI_ERR on
 * allocation failure or messages nested deeper than DBI_OTLP_MAX_DEPTH.
 */
int dbi_otlp_json_encode(const ProtobufCMessage *m, char **out, size_t *len);

/* dbi_otlp_json_encode() with DBI_OTLP_JSON_* flags. */
int dbi_otlp_json_encode_ex(const ProtobufCMessage *m, unsigned flags, char **out, size_t *len);

#endif
