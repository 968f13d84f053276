/*
 * record.h — what flows through the pipeline.
 *
 * Metric points are fixed 48-byte records carried by slot rings; their names, units
 * and attributes live once in the series registry (registry.h) and a point carries
 * only the series id. Everything of variable length — histograms, logs, spans — is a
 * byte record in a byte ring: a small fixed header followed by its payload. Logs and
 * spans carry their OTLP protobuf encoding (LogRecord / Span message bytes) so that
 * OTLP in → OTLP out is lossless and the exporter only concatenates.
 */
#ifndef DBI_RECORD_H
#define DBI_RECORD_H

#include <assert.h>
#include <stdint.h>

#include "dbi/common.h"

/* Signals, as bits so a component can declare several. */
enum dbi_signal { DBI_SIG_METRICS = 1, DBI_SIG_LOGS = 2, DBI_SIG_TRACES = 4 };
const char *dbi_signal_name(unsigned sig);

/* Point kinds (the metric's kind is in its descriptor; the point repeats it for speed). */
enum dbi_point_kind {
	DBI_PK_GAUGE = 1,
	DBI_PK_SUM = 2,
	DBI_PK_MARK = 15, /* batch boundary marker, not data */
};

/* Point flags. */
#define DBI_PF_DOUBLE 0x0001  /* v.d holds the value, else v.i */
#define DBI_PF_NOVALUE 0x0002 /* OTLP "no recorded value" (staleness marker) */

struct dbi_point {
	uint64_t time_ns;  /* observation time, Unix epoch ns */
	uint64_t start_ns; /* start of the cumulative/delta interval; 0 for gauges */
	union {
		int64_t i;
		double d;
	} v;
	uint64_t seq;       /* producer sequence number: end-to-end loss accounting */
	uint64_t ingest_ns; /* monotonic ns when the producer enqueued it: latency */
	uint32_t series;    /* series id in the registry */
	uint16_t flags;     /* DBI_PF_* */
	uint8_t source;     /* receiver slot on the producing thread */
	uint8_t kind;       /* enum dbi_point_kind */
};
static_assert(sizeof(struct dbi_point) == 48, "dbi_point must stay 48 bytes");

static inline double dbi_point_value(const struct dbi_point *p)
{
	return (p->flags & DBI_PF_DOUBLE) ? p->v.d : (double)p->v.i;
}

/* Byte record types. */
enum dbi_rec_type {
	DBI_REC_HIST = 1,    /* explicit-bucket histogram point: struct dbi_hist_rec + arrays */
	DBI_REC_EXPHIST = 2, /* exponential histogram point: struct dbi_exphist_rec (+ OTLP bytes) */
	DBI_REC_SUMMARY = 3, /* summary point: struct dbi_summary_rec + quantiles */
	DBI_REC_LOG = 4,     /* struct dbi_otlp_rec + OTLP LogRecord bytes */
	DBI_REC_SPAN = 5,    /* struct dbi_otlp_rec + OTLP Span bytes */
};

/* Common header of every byte record: which receiver slot it came from. */
struct dbi_rec_hdr {
	uint32_t type; /* enum dbi_rec_type */
	uint32_t len;  /* total bytes including this header */
	uint64_t seq;  /* producer sequence number */
	uint64_t ingest_ns;
	uint8_t source;
	uint8_t pad[7];
};

/*
 * Explicit-bucket histogram: followed by double bounds[nbounds] then
 * uint64_t counts[nbounds + 1].
 */
struct dbi_hist_rec {
	struct dbi_rec_hdr h;
	uint64_t time_ns, start_ns;
	uint64_t count;
	double sum, min, max;
	uint32_t series;
	uint16_t flags; /* DBI_HF_* */
	uint16_t nbounds;
};
#define DBI_HF_HAS_SUM 0x1
#define DBI_HF_HAS_MINMAX 0x2
#define DBI_HF_NOVALUE 0x4

static inline double *dbi_hist_bounds(struct dbi_hist_rec *r)
{
	return (double *)(void *)(r + 1);
}
static inline uint64_t *dbi_hist_counts(struct dbi_hist_rec *r)
{
	return (uint64_t *)(void *)(dbi_hist_bounds(r) + r->nbounds);
}
static inline size_t dbi_hist_rec_size(unsigned nbounds)
{
	return sizeof(struct dbi_hist_rec) + nbounds * sizeof(double) + (nbounds + 1) * sizeof(uint64_t);
}

/*
 * Exponential histograms and summaries are carried as their OTLP data-point message
 * bytes (ExponentialHistogramDataPoint / SummaryDataPoint) with the series id: they are
 * passed through, converted only where an exporter needs it.
 */
struct dbi_otlp_point_rec {
	struct dbi_rec_hdr h;
	uint32_t series;
	uint32_t pb_len; /* protobuf bytes follow */
};

/* A log record or span: the OTLP message bytes plus what routing and processors need. */
struct dbi_otlp_rec {
	struct dbi_rec_hdr h;
	uint64_t time_ns;     /* log time / span start */
	uint32_t resource;    /* resource id in the registry */
	uint32_t scope;       /* scope id in the registry */
	uint8_t trace_id[16]; /* zero when absent */
	uint32_t pb_len;      /* protobuf bytes follow */
	uint32_t pad;
};

static inline const uint8_t *dbi_otlp_rec_pb(const struct dbi_otlp_rec *r)
{
	return (const uint8_t *)(r + 1);
}

#endif
