/*
 * registry.h — the series registry: metric descriptors, attribute sets, scopes and
 * series interned once and named by 32-bit ids, so hot paths carry ids and never
 * strings. Lookups by content go through liburcu RCU hash tables (cds_lfht; for series, which
 * are most of it, a leaner open-addressing index of ids, see registry.c) and take
 * no lock; lookups by id index a chunked table and take nothing at all. Interned
 * objects are immutable and live as long as the registry: a pointer obtained from a
 * *_get() call stays valid. A series limit bounds memory against cardinality
 * explosions; intern calls past it return 0 and the caller counts a drop.
 */
#ifndef DBI_REGISTRY_H
#define DBI_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "dbi/common.h"

struct dbi_registry;

/* Attribute value types. ANYPB holds an OTLP AnyValue message (arrays, kvlists). */
enum dbi_attr_type { DBI_AT_STR = 1, DBI_AT_INT, DBI_AT_DOUBLE, DBI_AT_BOOL, DBI_AT_BYTES, DBI_AT_ANYPB };

struct dbi_attr {
	const char *key;
	uint32_t klen; /* 0: strlen(key) */
	uint8_t type;  /* enum dbi_attr_type */
	uint32_t vlen; /* STR/BYTES/ANYPB length; 0 with STR: strlen(v.s) */
	union {
		const char *s;
		int64_t i;
		double d;
		int b;
	} v;
};

/* An interned attribute set: entries sorted by key, in a canonical encoding. */
struct dbi_attrset {
	uint32_t id;
	uint32_t n;   /* number of attributes */
	uint32_t len; /* bytes in enc */
	uint64_t hash;
	const uint8_t *enc;
};

/* Walk an attribute set (or any canonical encoding); strings are not NUL-terminated. */
struct dbi_attr_iter {
	const uint8_t *p, *end;
};
void dbi_attrs_iter_init(struct dbi_attr_iter *it, const uint8_t *enc, size_t len);
int dbi_attrs_next(struct dbi_attr_iter *it, struct dbi_attr *out); /* 1 = got one, 0 = end */

/*
 * Canonical encoding of n attributes into buf (sorted by key, duplicates: last wins).
 * Returns bytes written, or 0 when buf is too small or n exceeds DBI_ATTRS_MAX.
 */
#define DBI_ATTRS_MAX 128
size_t dbi_attrs_encode(uint8_t *buf, size_t cap, const struct dbi_attr *attrs, size_t n);
/* Render an attribute set as `k="v", n=3` into buf (truncated to fit); returns buf. */
const char *dbi_attrs_format(const uint8_t *enc, size_t len, char *buf, size_t cap);
/* Find key in an encoding; 1 if found. */
int dbi_attrs_find(const uint8_t *enc, size_t len, const char *key, struct dbi_attr *out);

enum dbi_metric_kind {
	DBI_MK_GAUGE = 1,
	DBI_MK_SUM = 2,
	DBI_MK_HISTOGRAM = 3,
	DBI_MK_EXPHISTOGRAM = 4,
	DBI_MK_SUMMARY = 5,
};
/* Same numbers as OTLP's AggregationTemporality. */
enum dbi_temporality { DBI_TEMP_UNSPECIFIED = 0, DBI_TEMP_DELTA = 1, DBI_TEMP_CUMULATIVE = 2 };

struct dbi_metric_def {
	const char *name;
	const char *unit;
	const char *description;
	uint8_t kind;        /* enum dbi_metric_kind */
	uint8_t monotonic;   /* sums only */
	uint8_t temporality; /* sums and histograms */
	uint8_t is_double;   /* value type of number points (informational) */
};

struct dbi_metric {
	uint32_t id;
	uint8_t kind, monotonic, temporality, is_double;
	const char *name, *unit, *description;
	uint64_t hash;
};

struct dbi_scope {
	uint32_t id;
	const char *name, *version;
	uint64_t hash;
};

/* A series; its id is the one it was interned under (not stored: ids name slots). */
struct dbi_series {
	uint32_t metric;   /* metric descriptor id */
	uint32_t resource; /* attribute set id of the resource */
	uint32_t scope;    /* scope id */
	uint32_t attrs;    /* attribute set id of the point attributes */
	uint64_t hash;     /* stable routing hash (content-based, same across runs) */
};

struct dbi_registry_stats {
	uint64_t metrics, attrsets, scopes, series;
	uint64_t series_limit_hits;
	uint64_t bytes; /* memory held by interned objects */
};

struct dbi_registry *dbi_registry_create(uint32_t max_series);
void dbi_registry_destroy(struct dbi_registry *reg);

/*
 * Intern functions return the object's id (>= 1), or 0 when the input is invalid or a
 * limit is reached. Attribute set id 0 is never returned for a valid set: the empty
 * set has its own id.
 */
uint32_t dbi_attrs_intern(struct dbi_registry *reg, const struct dbi_attr *attrs, size_t n);
uint32_t dbi_attrs_intern_enc(struct dbi_registry *reg, const uint8_t *enc, size_t len);
/*
 * The id of an already interned attribute set, or 0: never inserts. Receivers use it
 * once the series limit is reached, so refused data cannot grow the registry.
 */
uint32_t dbi_attrs_lookup_enc(struct dbi_registry *reg, const uint8_t *enc, size_t len);
/* 1 when no new series can be interned (runtime.max_series reached). */
int dbi_registry_series_full(const struct dbi_registry *reg);
uint32_t dbi_metric_intern(struct dbi_registry *reg, const struct dbi_metric_def *def);
uint32_t dbi_scope_intern(struct dbi_registry *reg, const char *name, const char *version);
uint32_t dbi_series_intern(struct dbi_registry *reg, uint32_t metric, uint32_t resource, uint32_t scope,
                           uint32_t attrs);

const struct dbi_attrset *dbi_attrs_get(const struct dbi_registry *reg, uint32_t id);
const struct dbi_metric *dbi_metric_get(const struct dbi_registry *reg, uint32_t id);
const struct dbi_scope *dbi_scope_get(const struct dbi_registry *reg, uint32_t id);
const struct dbi_series *dbi_series_get(const struct dbi_registry *reg, uint32_t id);

/* Highest series id handed out so far (ids are dense from 1). */
uint32_t dbi_series_max_id(const struct dbi_registry *reg);
void dbi_registry_get_stats(const struct dbi_registry *reg, struct dbi_registry_stats *out);

#endif
