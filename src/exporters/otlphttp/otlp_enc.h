/*
 * otlp_enc.h — batches to OTLP export requests (protobuf), by hand, for the otlphttp
 * exporter's hot path; and the wire-level surgery the exporter needs on requests it
 * has already encoded (count the items, cut out a range of them).
 *
 * Metrics: points and histogram/exp-histogram/summary records are grouped by resource,
 * then scope, then metric (registry ids) into one ExportMetricsServiceRequest. Logs and
 * spans, which travel as OTLP LogRecord/Span bytes, are grouped by resource and scope
 * into ExportLogsServiceRequest / ExportTraceServiceRequest, their bytes copied through.
 *
 * The encoder keeps caches keyed by registry ids (series -> metric group, the encoded
 * attributes of each attribute set, resources, scopes, metric headers) so a point costs
 * a few array lookups and a short copy. The caches grow when a new id appears (the cold
 * path); an encode that meets only known ids does not allocate, except to grow its
 * output buffer or per-batch arrays past their high-water mark.
 *
 * Optional limits (the New Relic profile) are applied while the caches are filled:
 * attribute keys and string values are truncated (on a UTF-8 boundary), arrays and
 * maps capped, attributes past the per-item cap dropped. What was cut is counted in
 * dbi_otlp_enc_stats, per item sent.
 *
 * Not thread-safe: one encoder per thread. The registry may grow concurrently.
 */
#ifndef DBI_OTLPHTTP_OTLP_ENC_H
#define DBI_OTLPHTTP_OTLP_ENC_H

#include <stddef.h>
#include <stdint.h>

#include "dbi/component.h"
#include "dbi/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A growable byte buffer. */
struct dbi_obuf {
	uint8_t *data;
	size_t len, cap;
};
int dbi_obuf_reserve(struct dbi_obuf *b, size_t cap); /* DBI_OK or DBI_ERR (out of memory) */
void dbi_obuf_free(struct dbi_obuf *b);

/* Attribute limits; 0 = no limit. */
struct dbi_otlp_limits {
	uint32_t max_key_len;   /* bytes; keys are truncated */
	uint32_t max_value_len; /* bytes of a string value; truncated */
	uint32_t max_array_len; /* entries of an array or map value; the rest dropped */
	uint32_t max_attrs;     /* attributes per point/record/resource; the rest dropped */
};

/* New Relic's documented limits (255 / 4095 chars, 64 entries, ~100 attributes). */
#define DBI_NR_LIMITS_INIT                                                                                             \
	{                                                                                                              \
		255, 4095, 64, 100                                                                                     \
	}

enum dbi_otlp_host_attrs {
	DBI_OTLP_HOST_NEVER = 0,
	DBI_OTLP_HOST_AUTO,   /* only to resources that describe this machine (see otlp_enc.c) */
	DBI_OTLP_HOST_ALWAYS, /* to every resource lacking them */
};

struct dbi_otlp_enc_opts {
	const struct dbi_otlp_limits *limits; /* NULL: none */
	/* String attributes added to every resource that lacks the key (e.g. instrumentation.provider). */
	const struct dbi_attr *res_extra;
	size_t nres_extra;
	/* host.name / host.id of this machine, added per host_mode; NULL = unknown. */
	const char *host_name, *host_id;
	int host_mode; /* enum dbi_otlp_host_attrs */
};

/* What the encoder did, cumulative; the caller reads and may reset it. */
struct dbi_otlp_enc_stats {
	uint64_t points;  /* number data points, histogram, exp-histogram and summary points encoded */
	uint64_t records; /* log records and spans encoded */
	uint64_t invalid; /* items dropped: unknown series, kind mismatch, malformed record */
	uint64_t keys_truncated, values_truncated, arrays_truncated, attrs_dropped; /* per item sent */
};

struct dbi_otlp_enc;

struct dbi_otlp_enc *dbi_otlp_enc_create(struct dbi_registry *reg, const struct dbi_otlp_enc_opts *o);
void dbi_otlp_enc_destroy(struct dbi_otlp_enc *e);
const struct dbi_otlp_enc_stats *dbi_otlp_enc_stats(const struct dbi_otlp_enc *e);

/*
 * Encode a batch of one signal into out (replacing its contents) as an Export*Service-
 * Request. *nitems is the number of items (data points, log records, spans) written;
 * 0 with DBI_OK means nothing valid was in the batch (out->len is 0). DBI_ERR: out of
 * memory.
 */
int dbi_otlp_enc_batch(struct dbi_otlp_enc *e, const struct dbi_batch *b, struct dbi_obuf *out, uint32_t *nitems);

/* Same, from separate arrays (benchmarks, tests). */
int dbi_otlp_enc_metrics(struct dbi_otlp_enc *e, const struct dbi_point *pts, uint32_t npts,
                         const struct dbi_rec_hdr *const *recs, uint32_t nrecs, struct dbi_obuf *out, uint32_t *nitems);
int dbi_otlp_enc_records(struct dbi_otlp_enc *e, unsigned signal, const struct dbi_rec_hdr *const *recs, uint32_t nrecs,
                         struct dbi_obuf *out, uint32_t *nitems);

/* ---- wire-level operations on encoded requests (any valid OTLP, not only ours) ---- */

/*
 * Items in an Export*ServiceRequest of the signal: data points (metrics), log records,
 * spans. DBI_ERR if the bytes are not a well-formed request of that shape.
 */
int dbi_otlp_count_items(unsigned signal, const uint8_t *req, size_t len, uint32_t *nitems);

/*
 * Write into out a request holding items [lo, hi) of req (in request order), with their
 * resource, scope and metric fields repeated as needed and empty containers left out.
 * Splitting a request at k into [0,k) and [k,n) loses and duplicates nothing.
 */
int dbi_otlp_extract(unsigned signal, const uint8_t *req, size_t len, uint32_t lo, uint32_t hi, struct dbi_obuf *out);

#ifdef __cplusplus
}
#endif

#endif
