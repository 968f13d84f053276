/*
 * prom_int.h — the `prometheus` exporter's private structures, shared by its files:
 *
 *   prom_name.c    OTel → Prometheus naming: metric names with unit and type suffixes,
 *                  label sets (job/instance, scope, const labels, attributes)
 *   prom_store.c   the series store: one slot per registry series id, fed from
 *                  batches on the exporter thread (delta → cumulative, expiry)
 *   prom_render.c  the page: text 0.0.4 and OpenMetrics 1.0, gzip
 *   prometheus.c   the component: config, pages published to scrapes, HTTP
 *
 * Threads: everything in the store belongs to the exporter thread. The HTTP thread sees
 * only published pages (reference counted) and the atomics in struct prom marked so.
 * Unit tests and the benchmark include this header to reach the store and the renderer.
 */
#ifndef DBI_PROM_INT_H
#define DBI_PROM_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/promtext.h"
#include "dbi/registry.h"

#define PROM_NAME_MAX 512 /* a metric or label name after conversion */
#define PROM_PAGES 8      /* page buffers: one published, the rest for renders and slow scrapes */
#define PROM_FMT_TEXT 0   /* text/plain; version=0.0.4 */
#define PROM_FMT_OM 1     /* application/openmetrics-text; version=1.0.0 */
#define PROM_NFMT 2
#define PROM_FMT_BIT(f) (1u << (f))

struct prom_cfg {
	struct dbi_endpoint endpoint;
	char *namespace_;
	struct dbi_strmap const_labels;
	bool resource_to_telemetry;
	uint64_t metric_expiration;
	bool send_timestamps;
	bool add_metric_suffixes;
	bool enable_open_metrics;
	uint64_t render_interval;
};

extern const struct dbi_component dbi_exporter_prometheus;

/* Prometheus metric types. */
enum prom_type { PT_GAUGE = 1, PT_COUNTER, PT_HISTOGRAM, PT_SUMMARY };

/* Why a metric or series is refused: each is a dropped.* counter. */
enum prom_reject {
	PR_NONE = 0,
	PR_EXPHIST,        /* exponential histograms: no text-format representation */
	PR_DELTA_NONMONO,  /* delta non-monotonic sums: the spec says drop */
	PR_TYPE_CONFLICT,  /* two metrics map to one name with different types */
	PR_INVALID_NAME,   /* nothing left of the name after sanitising */
	PR_DUPLICATE,      /* another series already has the same name and labels */
	PR_UNKNOWN_SERIES, /* series id not in the registry */
	PR_KIND_MISMATCH,  /* a point for a histogram metric, a histogram for a gauge, ... */
	PR_OUT_OF_ORDER,   /* delta older than what was accumulated */
	PR_BAD_RECORD,     /* malformed summary bytes */
	PR_NO_MEMORY,      /* allocation failed on a new series */
	PR_NREASONS
};

/* Stats indexes (prometheus.c declares the names). */
enum {
	PS_SERIES,
	PS_FAMILIES,
	PS_POINTS,
	PS_SCRAPES,
	PS_SCRAPES_GZIP,
	PS_SCRAPES_OM,
	PS_SCRAPE_WAITS,
	PS_RENDERS,
	PS_RENDER_NS,
	PS_RENDER_LAST_NS,
	PS_PAGE_BYTES,
	PS_PAGE_GZIP_BYTES,
	PS_EXPIRED,
	PS_STALE,
	PS_RENDER_SKIPPED,
	PS_DROP_FIRST, /* PS_DROP_FIRST + (reason - 1) */
	PS_NSTATS = PS_DROP_FIRST + PR_NREASONS - 1
};

struct prom_family {
	char *name;    /* text format: TYPE/HELP name; for counters the name with _total */
	char *om_name; /* OpenMetrics family name (counters without _total) */
	char *unit;    /* OpenMetrics UNIT, or NULL when the name does not end with it */
	char *help;    /* description, raw */
	uint8_t type;  /* enum prom_type */
	uint32_t head; /* first live series id, 0 = none */
	uint32_t tail; /* last: new series go at the end, so the page keeps arrival order */
	uint32_t nseries;
};

/* Histogram and summary state of one series (cumulative). */
struct prom_dist {
	uint32_t n;    /* histogram: bounds; summary: quantiles */
	uint32_t cap;  /* allocated entries */
	double *keys;  /* bounds or quantiles */
	double *vals;  /* summary: quantile values */
	uint64_t *cum; /* histogram: cumulative counts, n + 1 (the last is +Inf) */
	uint64_t count;
	double sum;
	bool has_sum;
	char *le[PROM_NFMT]; /* label values per key, NUL separated, per format */
	uint32_t le_len[PROM_NFMT];
};

enum prom_slot_state { SS_FREE = 0, SS_LIVE, SS_REJECTED };

/* One slot per registry series id (dense array, grown on the exporter thread). */
struct prom_series {
	uint64_t seen;     /* mono ns of the last update: expiry */
	uint64_t start_ns; /* cumulative start, OTel ns (0 unknown) */
	uint64_t time_ns;  /* time of the last point, OTel ns */
	union {
		double d;
		int64_t i;
	} v;
	char *labels;           /* cached label text without braces: a="x",b="y" */
	struct prom_dist *dist; /* histograms and summaries */
	uint32_t next, prev;    /* family list (series ids; 0 = none) */
	uint32_t family;        /* family index + 1 */
	uint32_t labels_len;
	uint32_t resource; /* resource attrset id (target_info) */
	uint8_t state;     /* enum prom_slot_state */
	uint8_t reject;    /* enum prom_reject while SS_REJECTED */
	uint8_t is_double;
	uint8_t delta; /* delta temporality: accumulate */
};

/* A resource with live series: source of one target_info line. */
struct prom_res {
	uint32_t live; /* live series with this resource */
	uint32_t slot; /* index in the active list + 1 while live */
	char *labels;  /* target_info label text, built on first use */
	uint32_t labels_len;
	uint64_t key; /* hash of job and instance: one target_info per pair */
};

/* Open-addressing map: 64-bit key hash → 32-bit value (0 = empty). */
struct prom_map {
	uint64_t *keys;
	uint32_t *vals;
	uint32_t cap, n; /* cap: power of two */
};

/* A rendered page: one per format present, with its gzip copy made once on demand. */
struct prom_page {
	_Atomic uint32_t refs; /* scrapes holding the page */
	uint64_t gen;
	uint64_t rendered; /* mono ns */
	uint64_t covers;   /* store version (prom.updated) the page shows */
	unsigned fmts;     /* PROM_FMT_BIT of what was rendered */
	struct dbi_tbuf body[PROM_NFMT];
	struct dbi_tbuf gz[PROM_NFMT];
	_Atomic int gz_state[PROM_NFMT]; /* 0 none, 1 being made, 2 ready */
};

struct prom {
	const struct prom_cfg *cfg;
	const struct dbi_inst *inst;
	struct dbi_registry *reg;
	struct dbi_stats *st;
	char ns[PROM_NAME_MAX];

	/* ---- exporter thread ---- */
	struct prom_series *series;
	uint32_t series_cap;
	uint32_t *metric_fam; /* metric id → family index + 1; or PROM_FAM_REJECT | reason */
	uint32_t metric_cap;
	struct prom_family *fams;
	uint32_t nfams, fams_cap;
	struct prom_map fam_by_name;
	struct prom_map by_labels; /* hash(family, labels) → series id */
	struct prom_res *res;      /* by attrset id */
	uint32_t res_cap;
	uint32_t *res_active; /* attrset ids with live series */
	uint32_t nres_active, res_active_cap;
	struct dbi_tbuf const_text; /* const_labels rendered: a="x",b="y" */
	char **const_names;         /* sanitised const label names */
	size_t nconst;
	uint64_t live;
	uint64_t updated; /* store version: mono ns of the last change */
	uint64_t next_sweep;
	uint64_t last_render; /* mono ns */
	uint64_t gen;
	struct dbi_tbuf scratch; /* label building */
	struct prom_lbuild *lb;  /* label building work space (prom_name.c) */
	struct prom_map ti_seen; /* per render: job/instance pairs written */
	uint8_t *pb_arena;       /* summary decoding */
	size_t pb_arena_used, pb_arena_cap;
	void *gz; /* the renderer's deflate stream */

	/* ---- shared with the HTTP thread ---- */
	struct prom_page *pool[PROM_PAGES];
	unsigned npool;
	_Atomic(struct prom_page *) cur;
	_Atomic uint64_t updated_pub;
	_Atomic unsigned render_req;
	_Atomic uint64_t want_until[PROM_NFMT];
	_Atomic uint64_t want_gz_until;
	_Atomic uint64_t n_scrapes, n_scrapes_gz, n_scrapes_om, n_waits;
	struct dbi_http *http;
};

#define PROM_FAM_REJECT 0x80000000u

/* prom_name.c */
int prom_lbuild_init(struct prom *p);
void prom_lbuild_free(struct prom *p);
/*
 * Names of the Prometheus family for an OTel metric: text (TYPE and sample name), the
 * OpenMetrics family name and its UNIT ("" if none). ns is the sanitised namespace
 * ("" for none). Returns DBI_ERR when nothing valid is left of the name.
 */
int prom_family_names(const char *ns, const char *name, const char *unit, int type, bool suffixes, char *text, char *om,
                      char *om_unit);
/* The unit suffix words for an OTel unit: "By/s" → "bytes_per_second"; "{packet}" → "". */
void prom_unit_words(const char *unit, char *out, size_t cap);
/* Build the label text of a series into s->scratch; returns DBI_OK / DBI_ERR (no memory). */
int prom_series_labels(struct prom *p, const struct dbi_series *ser, int type);
/* The target_info label text of a resource into p->scratch; *key gets the job/instance hash. */
int prom_resource_labels(struct prom *p, uint32_t resource, uint64_t *key);
/* Attribute value as label text (strings as they are, others per the OTel attribute rules). */
void prom_attr_value(struct dbi_tbuf *b, const struct dbi_attr *a);

/* prom_store.c */
uint32_t prom_map_get(const struct prom_map *m, uint64_t key); /* 0 = absent */
int prom_map_put(struct prom_map *m, uint64_t key, uint32_t val);
void prom_map_del(struct prom_map *m, uint64_t key);
void prom_map_clear(struct prom_map *m);
int prom_store_init(struct prom *p);
void prom_store_free(struct prom *p);
void prom_apply_point(struct prom *p, const struct dbi_point *pt, uint64_t now);
void prom_apply_record(struct prom *p, const struct dbi_rec_hdr *h, uint64_t now);
/* Remove series not updated since now - metric_expiration; returns how many. */
uint64_t prom_sweep(struct prom *p, uint64_t now);
void prom_drop(struct prom *p, int reason, uint64_t n);

/* prom_render.c */
/* Render the formats in fmts into page (its buffers are reused). DBI_ERR: out of memory. */
int prom_render(struct prom *p, struct prom_page *page, unsigned fmts);
/*
 * gzip src into dst (its buffer reused). keep: the caller's reusable stream (set up on
 * first use, free with prom_gzip_free), or NULL for a one-off stream.
 */
int prom_gzip(const struct dbi_tbuf *src, struct dbi_tbuf *dst, void **keep);
void prom_gzip_free(void *keep);

/* prometheus.c: for tests and the benchmark (exporter-thread context). */
/* Render now into a fresh page and publish it; DBI_OK or DBI_ERR. */
int prom_render_publish(struct prom *p, unsigned fmts, uint64_t now);
/* The published page's text for a format, or NULL (tests: no reference taken). */
const char *prom_page_text(struct prom *p, int fmt, size_t *len);
unsigned prom_port(const struct prom *p);

#endif
