/*
 * pgss_sink.h — a collecting sink for the statements module (src/receivers/postgresql/
 * statements.h) in tests and benchmarks: it keeps every point and byte record the module
 * emits, like the runtime's rctx would pass them on, and answers questions about them by
 * metric name and attribute value through the real series registry.
 */
#ifndef DBI_PGSS_SINK_H
#define DBI_PGSS_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbi/record.h"
#include "dbi/registry.h"
#include "../../src/receivers/postgresql/statements.h"

struct dbi_test_rec {
	uint8_t *buf; /* starts with struct dbi_rec_hdr */
	uint32_t type, len;
};

struct dbi_test_sink {
	struct dbi_pgss_sink sink;
	struct dbi_registry *reg;
	struct dbi_point *pts;
	size_t npts, pts_cap;
	struct dbi_test_rec *recs;
	size_t nrecs, recs_cap;
	bool full;   /* answer as a full pipeline would */
	bool counts; /* count only, keep nothing (benchmarks) */
	uint64_t counted_points, counted_records;
	uint8_t scratch[65536];
};

void dbi_test_sink_init(struct dbi_test_sink *t, struct dbi_registry *reg);
void dbi_test_sink_clear(struct dbi_test_sink *t);
void dbi_test_sink_free(struct dbi_test_sink *t);

/* Name of the metric of a point. */
const char *dbi_test_sink_metric(const struct dbi_test_sink *t, const struct dbi_point *p);
/* A string attribute of a point's series into out; false when absent. */
bool dbi_test_sink_attr(const struct dbi_test_sink *t, uint32_t series, const char *key, char *out, size_t len);
/*
 * Sum of the values of points of metric whose attribute key equals value (key NULL: every
 * point; value NULL: points without that attribute). *n (may be NULL) gets how many.
 */
double dbi_test_sink_sum(const struct dbi_test_sink *t, const char *metric, const char *key, const char *value,
                         size_t *n);
/* Smallest value of the points of a metric (to check nothing is negative). */
double dbi_test_sink_min(const struct dbi_test_sink *t, const char *metric);

#endif
