/*
 * otlp_json.c — OTLP/JSON <-> protobuf-c messages, driven by message descriptors.
 *
 * One codec serves every OTLP message because it never names a message type: it walks
 * ProtobufCMessageDescriptor/ProtobufCFieldDescriptor tables, reading and writing the
 * C structs protobuf-c generates through the offsets those tables record. The only
 * OTLP-specific knowledge is the spec's deviation from proto3 JSON: bytes fields named
 * trace_id, span_id and parent_span_id are hex, not base64.
 *
 * Decoding parses with json-c (strict, UTF-8 validated, depth-limited), then fills a
 * message allocated exactly as protobuf_c_message_unpack() would, so the caller frees
 * it with protobuf_c_message_free_unpacked(). Every sub-allocation is linked into the
 * tree before it is filled, so on error freeing the root releases everything.
 *
 * Encoding writes into a growable buffer directly rather than building a json-c tree:
 * it is on the debug exporter's and JSON exporter's path and a tree would triple the
 * allocations.
 */
#include "dbi/otlp_json.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define MEMBER(msg, off, type) ((type *)(void *)((char *)(msg) + (off)))
#define CMEMBER(msg, off, type) ((const type *)(const void *)((const char *)(msg) + (off)))

/* Size of one element of a repeated field in protobuf-c's C representation. */
static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int32_t);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return sizeof(uint32_t);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return sizeof(int64_t);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

/* OTLP writes trace and span ids as hex: returns the id's byte length, 0 for other fields. */
static size_t id_bytes(const ProtobufCFieldDescriptor *fd)
{
	if (fd->type != PROTOBUF_C_TYPE_BYTES)
		return 0;
	if (strcmp(fd->name, "trace_id") == 0)
		return 16;
	if (strcmp(fd->name, "span_id") == 0 || strcmp(fd->name, "parent_span_id") == 0)
		return 8;
	return 0;
}

/* Does key spell field name in proto3 JSON form (underscores dropped, next letter upper)? */
static bool camel_eq(const char *name, const char *key)
{
	bool up = false;

	for (; *name; name++) {
		char c = *name;

		if (c == '_') {
			up = true;
			continue;
		}
		if (up && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		up = false;
		if (*key++ != c)
			return false;
	}
	return *key == '\0';
}

/* camelCase first: it is what OTLP senders write, and one-word names match either way. */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d, const char *key)
{
	unsigned i;

	for (i = 0; i < d->n_fields; i++)
		if (camel_eq(d->fields[i].name, key))
			return &d->fields[i];
	return protobuf_c_message_descriptor_get_field_by_name(d, key);
}

/* ------------------------------------------------------------------ decoding */

struct jdec {
	struct dbi_errbuf *err;
	size_t plen;
	char path[512]; /* where we are, e.g. resourceSpans[0].scopeSpans[2].spans[1] */
};

static int jd_fail(struct jdec *jd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int jd_fail(struct jdec *jd, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	if (!jd->err)
		return DBI_ERR;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (jd->plen)
		dbi_err_set(jd->err, "%s: %s", jd->path, msg);
	else
		dbi_err_set(jd->err, "%s", msg);
	return DBI_ERR;
}

/* Appends ".key" or "[i]" to the path; returns the length to restore afterwards. */
static size_t path_push(struct jdec *jd, const char *key, size_t index)
{
	size_t old = jd->plen, room = sizeof(jd->path) - old;
	int n;

	if (key)
		n = snprintf(jd->path + old, room, "%s%s", old ? "." : "", key);
	else
		n = snprintf(jd->path + old, room, "[%zu]", index);
	if (n > 0)
		jd->plen = DBI_MIN(old + (size_t)n, sizeof(jd->path) - 1);
	return old;
}

static void path_pop(struct jdec *jd, size_t old)
{
	jd->plen = old;
	jd->path[old] = '\0';
}

static const char *jtype(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "boolean";
	case json_type_int:
	case json_type_double:
		return "number";
	case json_type_object:
		return "object";
	case json_type_array:
		return "array";
	case json_type_string:
		return "string";
	}
	return "?";
}

/* A short, printable excerpt of untrusted text for error messages. */
static const char *excerpt(const char *s, char *buf, size_t size)
{
	size_t i;

	for (i = 0; s[i] && i + 4 < size; i++) {
		buf[i] = s[i];
		if (s[i] < 0x20 || s[i] >= 0x7f)
			buf[i] = '?';
	}
	if (s[i]) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/* Strict decimal integer: optional '-', digits, nothing else. */
static int parse_dec(const char *s, bool *neg, uint64_t *mag)
{
	uint64_t v = 0;

	*neg = (*s == '-');
	if (*neg)
		s++;
	if (!*s)
		return DBI_ERR;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return DBI_ERR;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return DBI_ERR;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*mag = v;
	return DBI_OK;
}

/* A JSON number or string as a signed integer within [lo, hi]. */
static int jd_int(struct jdec *jd, struct json_object *v, int64_t lo, int64_t hi, int64_t *out)
{
	char ex[48];
	int64_t x;

	switch (json_object_get_type(v)) {
	case json_type_int:
		x = json_object_get_int64(v);
		if (x == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
			return jd_fail(jd, "integer out of range");
		break;
	case json_type_double: {
		double d = json_object_get_double(v);

		if (!isfinite(d) || d != floor(d))
			return jd_fail(jd, "expected integer, got non-integral number");
		if (d < -9223372036854775808.0 || d >= 9223372036854775808.0)
			return jd_fail(jd, "integer out of range");
		x = (int64_t)d;
		break;
	}
	case json_type_string: {
		const char *s = json_object_get_string(v);
		bool neg;
		uint64_t mag;

		if (parse_dec(s, &neg, &mag) != DBI_OK)
			return jd_fail(jd, "expected integer, got string \"%s\"", excerpt(s, ex, sizeof(ex)));
		if (neg ? mag > (uint64_t)INT64_MAX + 1 : mag > (uint64_t)INT64_MAX)
			return jd_fail(jd, "integer out of range");
		x = neg ? (int64_t)(0 - mag) : (int64_t)mag;
		break;
	}
	default:
		return jd_fail(jd, "expected integer, got %s", jtype(v));
	}
	if (x < lo || x > hi)
		return jd_fail(jd, "integer %" PRId64 " out of range", x);
	*out = x;
	return DBI_OK;
}

/* A JSON number or string as an unsigned integer up to hi. */
static int jd_uint(struct jdec *jd, struct json_object *v, uint64_t hi, uint64_t *out)
{
	char ex[48];
	uint64_t u;

	switch (json_object_get_type(v)) {
	case json_type_int: {
		int64_t x = json_object_get_int64(v);

		if (x < 0)
			return jd_fail(jd, "expected non-negative integer, got %" PRId64, x);
		u = x == INT64_MAX ? json_object_get_uint64(v) : (uint64_t)x;
		break;
	}
	case json_type_double: {
		double d = json_object_get_double(v);

		if (!isfinite(d) || d != floor(d))
			return jd_fail(jd, "expected integer, got non-integral number");
		if (d < 0 || d >= 18446744073709551616.0)
			return jd_fail(jd, "integer out of range");
		u = (uint64_t)d;
		break;
	}
	case json_type_string: {
		const char *s = json_object_get_string(v);
		bool neg;

		if (parse_dec(s, &neg, &u) != DBI_OK || (neg && u))
			return jd_fail(jd, "expected non-negative integer, got string \"%s\"",
			               excerpt(s, ex, sizeof(ex)));
		break;
	}
	default:
		return jd_fail(jd, "expected integer, got %s", jtype(v));
	}
	if (u > hi)
		return jd_fail(jd, "integer %" PRIu64 " out of range", u);
	*out = u;
	return DBI_OK;
}

static int jd_double(struct jdec *jd, struct json_object *v, double *out)
{
	char ex[48];

	switch (json_object_get_type(v)) {
	case json_type_int:
	case json_type_double:
		*out = json_object_get_double(v);
		if (isinf(*out)) /* a literal like 1e999: JSON numbers cannot spell infinity */
			return jd_fail(jd, "number out of range");
		return DBI_OK;
	case json_type_string: {
		const char *s = json_object_get_string(v), *p;
		char *end;
		double d;

		if (strcmp(s, "NaN") == 0) {
			*out = NAN;
			return DBI_OK;
		}
		if (strcmp(s, "Infinity") == 0) {
			*out = INFINITY;
			return DBI_OK;
		}
		if (strcmp(s, "-Infinity") == 0) {
			*out = -INFINITY;
			return DBI_OK;
		}
		/* plain decimal only: strtod would also take "inf", hex floats, spaces */
		for (p = s; *p; p++)
			if (!strchr("0123456789+-.eE", *p))
				break;
		if (!*s || *p)
			goto bad;
		d = strtod(s, &end);
		if (*end)
			goto bad;
		if (isinf(d))
			return jd_fail(jd, "number out of range");
		*out = d;
		return DBI_OK;
	bad:
		return jd_fail(jd, "expected number, got string \"%s\"", excerpt(s, ex, sizeof(ex)));
	}
	default:
		return jd_fail(jd, "expected number, got %s", jtype(v));
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

static int jd_bytes(struct jdec *jd, const ProtobufCFieldDescriptor *fd, struct json_object *v,
                    ProtobufCBinaryData *out)
{
	size_t want = id_bytes(fd), n, i, o = 0, pad = 0;
	const char *s;
	uint8_t *buf;

	if (!json_object_is_type(v, json_type_string))
		return jd_fail(jd, "expected %s string, got %s", want ? "hex" : "base64", jtype(v));
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (n == 0)
		return DBI_OK; /* empty: an absent id */
	if (want) {
		if (n != 2 * want)
			return jd_fail(jd, "expected %zu hex digits for a %zu-byte id, got %zu characters", 2 * want,
			               want, n);
		buf = malloc(want);
		if (!buf)
			return jd_fail(jd, "out of memory");
		for (i = 0; i < want; i++) {
			int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

			if (hi < 0 || lo < 0) {
				free(buf);
				return jd_fail(jd, "invalid hex digit at position %zu", hi < 0 ? 2 * i : 2 * i + 1);
			}
			buf[i] = (uint8_t)(hi << 4 | lo);
		}
		out->data = buf;
		out->len = want;
		return DBI_OK;
	} else {
		uint32_t acc = 0;
		unsigned bits = 0;

		while (n > 0 && s[n - 1] == '=' && pad < 2) {
			n--;
			pad++;
		}
		if (n % 4 == 1 || (pad && (n + pad) % 4 != 0))
			return jd_fail(jd, "invalid base64 length");
		buf = malloc(n / 4 * 3 + 3);
		if (!buf)
			return jd_fail(jd, "out of memory");
		for (i = 0; i < n; i++) {
			int b = b64val(s[i]);

			if (b < 0) {
				free(buf);
				return jd_fail(jd, "invalid base64 character at position %zu", i);
			}
			acc = ((acc << 6) | (uint32_t)b) & 0xffffff;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				buf[o++] = (uint8_t)(acc >> bits);
			}
		}
		if (o == 0) {
			free(buf);
			return DBI_OK;
		}
		out->data = buf;
		out->len = o;
		return DBI_OK;
	}
}

static int jd_message(struct jdec *jd, const ProtobufCMessageDescriptor *d, struct json_object *obj,
                      ProtobufCMessage *m, unsigned depth);

/* Allocates and links a sub-message into *slot, then fills it. */
static int jd_submessage(struct jdec *jd, const ProtobufCMessageDescriptor *d, struct json_object *v,
                         ProtobufCMessage **slot, unsigned depth)
{
	ProtobufCMessage *m;

	if (!json_object_is_type(v, json_type_object))
		return jd_fail(jd, "expected object, got %s", jtype(v));
	if (depth > DBI_OTLP_MAX_DEPTH)
		return jd_fail(jd, "messages nested deeper than %d levels", DBI_OTLP_MAX_DEPTH);
	m = malloc(d->sizeof_message);
	if (!m)
		return jd_fail(jd, "out of memory");
	protobuf_c_message_init(d, m);
	*slot = m;
	return jd_message(jd, d, v, m, depth);
}

/* Decodes one value of field fd (a singular field, or one element of a repeated one) into slot. */
static int jd_value(struct jdec *jd, const ProtobufCFieldDescriptor *fd, struct json_object *v, void *slot,
                    unsigned depth)
{
	int64_t i = 0;
	uint64_t u = 0;
	double d = 0;

	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		if (jd_int(jd, v, INT32_MIN, INT32_MAX, &i) != DBI_OK)
			return DBI_ERR;
		*(int32_t *)slot = (int32_t)i;
		return DBI_OK;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		if (jd_uint(jd, v, UINT32_MAX, &u) != DBI_OK)
			return DBI_ERR;
		*(uint32_t *)slot = (uint32_t)u;
		return DBI_OK;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		if (jd_int(jd, v, INT64_MIN, INT64_MAX, &i) != DBI_OK)
			return DBI_ERR;
		*(int64_t *)slot = i;
		return DBI_OK;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		if (jd_uint(jd, v, UINT64_MAX, &u) != DBI_OK)
			return DBI_ERR;
		*(uint64_t *)slot = u;
		return DBI_OK;
	case PROTOBUF_C_TYPE_FLOAT:
		if (jd_double(jd, v, &d) != DBI_OK)
			return DBI_ERR;
		if (isfinite(d) && fabs(d) > 3.4028234663852886e38)
			return jd_fail(jd, "number out of range for float");
		*(float *)slot = (float)d;
		return DBI_OK;
	case PROTOBUF_C_TYPE_DOUBLE:
		return jd_double(jd, v, (double *)slot);
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return jd_fail(jd, "expected boolean, got %s", jtype(v));
		*(protobuf_c_boolean *)slot = json_object_get_boolean(v) ? 1 : 0;
		return DBI_OK;
	case PROTOBUF_C_TYPE_ENUM:
		if (json_object_is_type(v, json_type_string)) {
			const ProtobufCEnumDescriptor *ed = fd->descriptor;
			const char *s = json_object_get_string(v);
			const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
			char ex[48];

			if (!ev)
				return jd_fail(jd, "unknown %s value \"%s\"", ed->short_name,
				               excerpt(s, ex, sizeof(ex)));
			*(int *)slot = ev->value;
			return DBI_OK;
		}
		if (jd_int(jd, v, INT32_MIN, INT32_MAX, &i) != DBI_OK)
			return DBI_ERR;
		*(int *)slot = (int)i;
		return DBI_OK;
	case PROTOBUF_C_TYPE_STRING: {
		char *s;

		if (!json_object_is_type(v, json_type_string))
			return jd_fail(jd, "expected string, got %s", jtype(v));
		s = strdup(json_object_get_string(v));
		if (!s)
			return jd_fail(jd, "out of memory");
		*(char **)slot = s;
		return DBI_OK;
	}
	case PROTOBUF_C_TYPE_BYTES:
		return jd_bytes(jd, fd, v, slot);
	case PROTOBUF_C_TYPE_MESSAGE:
		return jd_submessage(jd, fd->descriptor, v, slot, depth + 1);
	}
	return jd_fail(jd, "unsupported field type %d", (int)fd->type);
}

static int jd_repeated(struct jdec *jd, const ProtobufCFieldDescriptor *fd, struct json_object *v, ProtobufCMessage *m,
                       unsigned depth)
{
	size_t n, i, esz = elem_size(fd->type);
	char *arr;

	if (!json_object_is_type(v, json_type_array))
		return jd_fail(jd, "expected array, got %s", jtype(v));
	n = json_object_array_length(v);
	if (n == 0)
		return DBI_OK;
	arr = calloc(n, esz);
	if (!arr)
		return jd_fail(jd, "out of memory");
	/* linked before filling: zeroed elements are safe for free_unpacked on error */
	*MEMBER(m, fd->offset, void *) = arr;
	*MEMBER(m, fd->quantifier_offset, size_t) = n;
	for (i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		size_t old = path_push(jd, NULL, i);

		if (!e) {
			jd_fail(jd, "null in a list");
			return DBI_ERR;
		}
		if (jd_value(jd, fd, e, arr + i * esz, depth) != DBI_OK)
			return DBI_ERR;
		path_pop(jd, old);
	}
	return DBI_OK;
}

static int jd_field(struct jdec *jd, const ProtobufCFieldDescriptor *fd, struct json_object *v, ProtobufCMessage *m,
                    unsigned depth)
{
	if (fd->label == PROTOBUF_C_LABEL_REPEATED)
		return jd_repeated(jd, fd, v, m, depth);
	if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t *which = MEMBER(m, fd->quantifier_offset, uint32_t);

		if (*which && *which != fd->id) {
			const ProtobufCFieldDescriptor *other =
			        protobuf_c_message_descriptor_get_field(m->descriptor, *which);

			return jd_fail(jd, "only one of a oneof may be set, but %s is set too",
			               other ? other->name : "another member");
		}
		/* set first: a sub-message linked below must be visible to free_unpacked */
		*which = fd->id;
	} else if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->type != PROTOBUF_C_TYPE_STRING &&
	           fd->type != PROTOBUF_C_TYPE_MESSAGE) {
		*MEMBER(m, fd->quantifier_offset, protobuf_c_boolean) = 1;
	}
	return jd_value(jd, fd, v, MEMBER(m, fd->offset, char), depth);
}

static int jd_message(struct jdec *jd, const ProtobufCMessageDescriptor *d, struct json_object *obj,
                      ProtobufCMessage *m, unsigned depth)
{
	struct json_object_iterator it, end;
	uint64_t seen[4] = {0};

	if (!json_object_is_type(obj, json_type_object))
		return jd_fail(jd, "expected object, got %s", jtype(obj));
	if (d->n_fields > 64 * DBI_ARRAY_LEN(seen))
		return jd_fail(jd, "%s has too many fields for this codec", d->name);
	it = json_object_iter_begin(obj);
	end = json_object_iter_end(obj);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *key = json_object_iter_peek_name(&it);
		struct json_object *v = json_object_iter_peek_value(&it);
		const ProtobufCFieldDescriptor *fd = find_field(d, key);
		size_t idx, old;
		int rc;

		if (!fd)
			continue; /* unknown fields are ignored, as proto3 JSON parsers may */
		idx = (size_t)(fd - d->fields);
		if (seen[idx / 64] & (1ULL << (idx % 64)))
			return jd_fail(jd, "field %s given twice (camelCase and snake_case spellings)", fd->name);
		seen[idx / 64] |= 1ULL << (idx % 64);
		if (!v)
			continue; /* null means absent */
		old = path_push(jd, key, 0);
		rc = jd_field(jd, fd, v, m, depth);
		if (rc != DBI_OK)
			return rc;
		path_pop(jd, old);
	}
	return DBI_OK;
}

int dbi_otlp_json_decode(const ProtobufCMessageDescriptor *d, const char *json, size_t len, ProtobufCMessage **out,
                         struct dbi_errbuf *err)
{
	struct jdec jd = {.err = err};
	struct json_tokener *tok = NULL;
	struct json_object *root = NULL;
	ProtobufCMessage *m = NULL;
	int rc = DBI_ERR;
	size_t end;

	assert(d && d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
	*out = NULL;
	if (len > DBI_OTLP_JSON_MAX_INPUT) {
		jd_fail(&jd, "JSON document of %zu bytes exceeds the %u-byte limit", len, DBI_OTLP_JSON_MAX_INPUT);
		goto cleanup;
	}
	if (len && !json) {
		jd_fail(&jd, "no input");
		goto cleanup;
	}
	tok = json_tokener_new_ex(DBI_OTLP_JSON_MAX_DEPTH);
	if (!tok) {
		jd_fail(&jd, "out of memory");
		goto cleanup;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = len ? json_tokener_parse_ex(tok, json, (int)len) : NULL;
	if (!root) {
		enum json_tokener_error e = len ? json_tokener_get_error(tok) : json_tokener_continue;
		size_t at = len ? json_tokener_get_parse_end(tok) : 0;

		if (e == json_tokener_continue && len) {
			/* a bare literal ("null", "12") is complete only once json-c sees the end */
			root = json_tokener_parse_ex(tok, "", 1);
			if (root || json_tokener_get_error(tok) == json_tokener_success) {
				jd_fail(&jd, "expected a JSON object for %s, got %s", d->short_name,
				        root ? jtype(root) : "null");
				goto cleanup;
			}
		}
		if (e == json_tokener_continue)
			jd_fail(&jd, "invalid JSON: unexpected end of input after %zu bytes", len);
		else
			jd_fail(&jd, "invalid JSON at byte %zu: %s", at, json_tokener_error_desc(e));
		goto cleanup;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++) {
		if (!strchr(" \t\r\n", json[end]) || json[end] == '\0') {
			jd_fail(&jd, "invalid JSON: trailing data at byte %zu", end);
			goto cleanup;
		}
	}
	if (!json_object_is_type(root, json_type_object)) {
		jd_fail(&jd, "expected a JSON object for %s, got %s", d->short_name, jtype(root));
		goto cleanup;
	}
	m = malloc(d->sizeof_message);
	if (!m) {
		jd_fail(&jd, "out of memory");
		goto cleanup;
	}
	protobuf_c_message_init(d, m);
	if (jd_message(&jd, d, root, m, 1) != DBI_OK)
		goto cleanup;
	*out = m;
	m = NULL;
	rc = DBI_OK;
cleanup:
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	if (root)
		json_object_put(root);
	if (tok)
		json_tokener_free(tok);
	return rc;
}

/* ------------------------------------------------------------------ encoding */

struct jenc {
	char *p;
	size_t len, cap;
	unsigned flags;
	unsigned level; /* indentation level when pretty-printing */
	bool oom;
};

static bool je_reserve(struct jenc *je, size_t n)
{
	size_t cap;
	char *p;

	if (je->oom)
		return false;
	if (je->cap - je->len > n)
		return true;
	cap = je->cap ? je->cap : 4096;
	while (cap - je->len <= n) {
		if (cap > SIZE_MAX / 2) {
			je->oom = true;
			return false;
		}
		cap *= 2;
	}
	p = realloc(je->p, cap);
	if (!p) {
		je->oom = true;
		return false;
	}
	je->p = p;
	je->cap = cap;
	return true;
}

static void je_put(struct jenc *je, const void *s, size_t n)
{
	if (!je_reserve(je, n))
		return;
	memcpy(je->p + je->len, s, n);
	je->len += n;
}

static void je_puts(struct jenc *je, const char *s)
{
	je_put(je, s, strlen(s));
}

static void je_c(struct jenc *je, char c)
{
	if (!je_reserve(je, 1))
		return;
	je->p[je->len++] = c;
}

static void je_newline(struct jenc *je)
{
	unsigned i;

	if (!(je->flags & DBI_OTLP_JSON_PRETTY))
		return;
	je_c(je, '\n');
	for (i = 0; i < je->level; i++)
		je_put(je, "  ", 2);
}

/* Separator before the next member/element of the object or array being written. */
static void je_next(struct jenc *je, bool *first)
{
	if (!*first)
		je_c(je, ',');
	*first = false;
	je_newline(je);
}

static void je_open(struct jenc *je, char c)
{
	je_c(je, c);
	je->level++;
}

static void je_close(struct jenc *je, char c, bool empty)
{
	je->level--;
	if (!empty)
		je_newline(je);
	je_c(je, c);
}

/* Length of the valid UTF-8 sequence at p (RFC 3629), 0 if invalid. p is NUL-terminated. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char c = p[0];

	if (c >= 0xc2 && c <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;

		return (p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80) ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;

		return (p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80) ? 4 : 0;
	}
	return 0;
}

static void je_str(struct jenc *je, const char *str)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(str ? str : "");

	je_c(je, '"');
	while (*p) {
		const unsigned char *run = p;
		size_t n;

		while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		if (p > run) {
			je_put(je, run, (size_t)(p - run));
			continue;
		}
		switch (*p) {
		case '"':
			je_puts(je, "\\\"");
			break;
		case '\\':
			je_puts(je, "\\\\");
			break;
		case '\n':
			je_puts(je, "\\n");
			break;
		case '\r':
			je_puts(je, "\\r");
			break;
		case '\t':
			je_puts(je, "\\t");
			break;
		case '\b':
			je_puts(je, "\\b");
			break;
		case '\f':
			je_puts(je, "\\f");
			break;
		default:
			if (*p < 0x20) {
				char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};

				je_put(je, esc, sizeof(esc));
				break;
			}
			n = utf8_len(p);
			if (n == 0) {
				je_puts(je, "\\ufffd"); /* invalid UTF-8: JSON must stay valid */
				break;
			}
			je_put(je, p, n);
			p += n;
			continue;
		}
		p++;
	}
	je_c(je, '"');
}

/* Field name in proto3 JSON form: underscores dropped, the letter after one upper-cased. */
static void je_key(struct jenc *je, const char *name)
{
	bool up = false;

	je_c(je, '"');
	for (; *name; name++) {
		char c = *name;

		if (c == '_') {
			up = true;
			continue;
		}
		if (up && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		up = false;
		je_c(je, c);
	}
	je_c(je, '"');
	je_c(je, ':');
	if (je->flags & DBI_OTLP_JSON_PRETTY)
		je_c(je, ' ');
}

static void je_fmt(struct jenc *je, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void je_fmt(struct jenc *je, const char *fmt, ...)
{
	char buf[48];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		je_put(je, buf, DBI_MIN((size_t)n, sizeof(buf) - 1));
}

/* Shortest %g form that reads back to the same value; specials as the spec's strings. */
static void je_double(struct jenc *je, double d, bool is_float)
{
	char buf[40];
	int prec;

	if (isnan(d)) {
		je_puts(je, "\"NaN\"");
		return;
	}
	if (isinf(d)) {
		je_puts(je, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
		return;
	}
	if (d == 0 && signbit(d)) {
		je_puts(je, "-0.0"); /* "-0" would parse back as integer zero */
		return;
	}
	for (prec = is_float ? 6 : 15; prec < (is_float ? 9 : 17); prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (is_float ? (float)strtod(buf, NULL) == (float)d : strtod(buf, NULL) == d)
			break;
	}
	snprintf(buf, sizeof(buf), "%.*g", prec, d);
	je_puts(je, buf);
}

static void je_bytes(struct jenc *je, const ProtobufCBinaryData *b, bool as_hex)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char hex[] = "0123456789abcdef";
	const uint8_t *s = b->data;
	size_t i, n = s ? b->len : 0;

	je_c(je, '"');
	if (as_hex) {
		for (i = 0; i < n; i++) {
			char h[2] = {hex[s[i] >> 4], hex[s[i] & 15]};

			je_put(je, h, 2);
		}
	} else {
		for (i = 0; i + 2 < n; i += 3) {
			uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
			char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63], b64[v & 63]};

			je_put(je, q, 4);
		}
		if (n - i == 1) {
			uint32_t v = (uint32_t)s[i] << 16;
			char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], '=', '='};

			je_put(je, q, 4);
		} else if (n - i == 2) {
			uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
			char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63], '='};

			je_put(je, q, 4);
		}
	}
	je_c(je, '"');
}

static int je_message(struct jenc *je, const ProtobufCMessage *m, unsigned depth);

static int je_value(struct jenc *je, const ProtobufCFieldDescriptor *fd, const void *slot, unsigned depth)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		je_fmt(je, "%" PRId32, *(const int32_t *)slot);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		je_fmt(je, "%d", *(const int *)slot);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		je_fmt(je, "%" PRIu32, *(const uint32_t *)slot);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		je_fmt(je, "\"%" PRId64 "\"", *(const int64_t *)slot);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		je_fmt(je, "\"%" PRIu64 "\"", *(const uint64_t *)slot);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		je_double(je, *(const float *)slot, true);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		je_double(je, *(const double *)slot, false);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		je_puts(je, *(const protobuf_c_boolean *)slot ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_STRING:
		je_str(je, *(char *const *)slot);
		break;
	case PROTOBUF_C_TYPE_BYTES:
		je_bytes(je, slot, id_bytes(fd) != 0);
		break;
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)slot;

		if (!sub) {
			je_puts(je, "{}");
			break;
		}
		return je_message(je, sub, depth + 1);
	}
	}
	return DBI_OK;
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Whether field fd of m is written: set oneof members, non-empty lists, non-default values. */
static bool field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
	const void *slot = CMEMBER(m, fd->offset, char);

	if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *CMEMBER(m, fd->quantifier_offset, uint32_t) == fd->id;
	if (fd->label == PROTOBUF_C_LABEL_REPEATED)
		return *CMEMBER(m, fd->quantifier_offset, size_t) > 0;
	if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(const void *const *)slot != NULL;
	if (fd->label == PROTOBUF_C_LABEL_REQUIRED)
		return true;
	if (fd->label == PROTOBUF_C_LABEL_OPTIONAL) {
		if (fd->type == PROTOBUF_C_TYPE_STRING)
			return *(char *const *)slot != NULL && *(char *const *)slot != fd->default_value;
		return *CMEMBER(m, fd->quantifier_offset, protobuf_c_boolean) != 0;
	}
	/* proto3 implicit presence: written unless the default (zero, empty) */
	switch (fd->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)slot;

		return s && *s;
	}
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)slot)->len > 0;
	default:
		/* bitwise, so -0.0 (not the default) is kept */
		return !all_zero(slot, elem_size(fd->type));
	}
}

static int je_message(struct jenc *je, const ProtobufCMessage *m, unsigned depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	bool first = true;
	unsigned f;

	if (depth > DBI_OTLP_MAX_DEPTH)
		return DBI_ERR;
	je_open(je, '{');
	for (f = 0; f < d->n_fields; f++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[f];

		if (!field_present(m, fd))
			continue;
		je_next(je, &first);
		je_key(je, fd->name);
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *CMEMBER(m, fd->quantifier_offset, size_t), i, esz = elem_size(fd->type);
			const char *arr = *CMEMBER(m, fd->offset, char *);
			bool efirst = true;

			je_open(je, '[');
			for (i = 0; i < n; i++) {
				je_next(je, &efirst);
				if (je_value(je, fd, arr + i * esz, depth) != DBI_OK)
					return DBI_ERR;
			}
			je_close(je, ']', efirst);
		} else if (je_value(je, fd, CMEMBER(m, fd->offset, char), depth) != DBI_OK) {
			return DBI_ERR;
		}
		if (je->oom)
			return DBI_ERR;
	}
	je_close(je, '}', first);
	return je->oom ? DBI_ERR : DBI_OK;
}

int dbi_otlp_json_encode_ex(const ProtobufCMessage *m, unsigned flags, char **out, size_t *len)
{
	struct jenc je = {.flags = flags};

	assert(m && m->descriptor && m->descriptor->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
	*out = NULL;
	if (len)
		*len = 0;
	if (je_message(&je, m, 1) != DBI_OK || !je_reserve(&je, 1))
		goto fail;
	je.p[je.len] = '\0';
	*out = je.p;
	if (len)
		*len = je.len;
	return DBI_OK;
fail:
	free(je.p);
	return DBI_ERR;
}

int dbi_otlp_json_encode(const ProtobufCMessage *m, char **out, size_t *len)
{
	return dbi_otlp_json_encode_ex(m, 0, out, len);
}
