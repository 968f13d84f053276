/*
 * prometheus.c — the `prometheus` exporter (OTel Collector prometheusexporter's config
 * and names): a pull endpoint that serves the metrics reaching it as Prometheus text
 * 0.0.4, or OpenMetrics 1.0 when the scraper's Accept header prefers it, gzipped when
 * the scraper accepts gzip.
 *
 * The page is rendered off the scrape path. The exporter thread folds batches into its
 * series store (prom_store.c) and renders into a spare page buffer at most every
 * render_interval while someone scrapes, or at once when a scrape finds the page older
 * than both render_interval and the last update (the scrape waits for that render, up
 * to a bound). A page is published by storing one pointer; a scrape takes a reference
 * and sends the page straight from its buffer, so a slow client never holds up a
 * render and a render never waits for a client: the exporter renders into a buffer no
 * scrape holds (PROM_PAGES of them; when every one is held, it skips and counts it).
 * A gzip copy is made once per page, by the renderer when scrapers ask for gzip, else
 * by the first gzip scrape of that page.
 *
 * Reference protocol, lock-free: a scrape loads the published pointer, increments that
 * page's count, and re-checks the pointer; if it moved, it drops the count and retries.
 * The renderer reuses a page only if it is not the published one and its count is 0.
 * Both sides use sequentially consistent atomics, so either the renderer sees the
 * scrape's count or the scrape sees the pointer move; pages are freed only at destroy,
 * after the HTTP server has stopped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dbi/clock.h"
#include "dbi/http.h"
#include "dbi/log.h"
#include "prom_int.h"

#define INTEREST_NS (600ULL * DBI_NSEC_PER_SEC)   /* a scraper counts as present this long */
#define POLL_NS (20ULL * DBI_NSEC_PER_MSEC)       /* tick while a scraper is present */
#define IDLE_TICK_NS (100ULL * DBI_NSEC_PER_MSEC) /* tick otherwise */
#define SCRAPE_WAIT_NS (2ULL * DBI_NSEC_PER_SEC)  /* longest a scrape waits for a render */

static const struct dbi_conf_key prom_keys[] = {
        {.name = "endpoint",
         .type = DBI_CT_ENDPOINT,
         .offset = offsetof(struct prom_cfg, endpoint),
         .def = "127.0.0.1:8889",
         .doc = "address to serve /metrics on"},
        {.name = "namespace",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct prom_cfg, namespace_),
         .def = "db_intelligence",
         .doc = "prefix of every metric name (\"\" for none)"},
        {.name = "const_labels",
         .type = DBI_CT_STRMAP,
         .offset = offsetof(struct prom_cfg, const_labels),
         .doc = "labels added to every series"},
        {.name = "resource_to_telemetry_conversion.enabled",
         .type = DBI_CT_BOOL,
         .offset = offsetof(struct prom_cfg, resource_to_telemetry),
         .def = "false",
         .doc = "copy resource attributes onto every series as labels (they are always in target_info)"},
        {.name = "metric_expiration",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct prom_cfg, metric_expiration),
         .def = "5m",
         .doc = "a series not updated for this long leaves the page (0 = never)"},
        {.name = "send_timestamps",
         .type = DBI_CT_BOOL,
         .offset = offsetof(struct prom_cfg, send_timestamps),
         .def = "false",
         .doc = "write each sample's timestamp"},
        {.name = "add_metric_suffixes",
         .type = DBI_CT_BOOL,
         .offset = offsetof(struct prom_cfg, add_metric_suffixes),
         .def = "true",
         .doc = "unit suffixes, _total on counters, _ratio on unit-1 gauges"},
        {.name = "enable_open_metrics",
         .type = DBI_CT_BOOL,
         .offset = offsetof(struct prom_cfg, enable_open_metrics),
         .def = "true",
         .doc = "answer OpenMetrics when the scraper prefers it (false: always text 0.0.4)"},
        {.name = "render_interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct prom_cfg, render_interval),
         .def = "1s",
         .doc = "dbi: re-render the page at most this often while scraped; a scrape sees data at most this old",
         .min = 0.001,
         .max = 3600},
        DBI_CONF_END,
};

static const struct dbi_stat_def prom_stats[] = {
        [PS_SERIES] = {"series", DBI_STAT_GAUGE, "series on the page"},
        [PS_FAMILIES] = {"families", DBI_STAT_GAUGE, "metric families known"},
        [PS_POINTS] = {"points", DBI_STAT_COUNTER, "points, histograms and summaries applied"},
        [PS_SCRAPES] = {"scrapes", DBI_STAT_COUNTER, "scrapes answered"},
        [PS_SCRAPES_GZIP] = {"scrapes_gzip", DBI_STAT_COUNTER, "scrapes answered gzipped"},
        [PS_SCRAPES_OM] = {"scrapes_openmetrics", DBI_STAT_COUNTER, "scrapes answered in OpenMetrics"},
        [PS_SCRAPE_WAITS] = {"scrape_waits", DBI_STAT_COUNTER, "scrapes that waited for a fresh render"},
        [PS_RENDERS] = {"renders", DBI_STAT_COUNTER, "pages rendered"},
        [PS_RENDER_NS] = {"render_ns", DBI_STAT_COUNTER, "time spent rendering pages"},
        [PS_RENDER_LAST_NS] = {"render_last_ns", DBI_STAT_GAUGE, "duration of the last render"},
        [PS_PAGE_BYTES] = {"page_bytes", DBI_STAT_GAUGE, "size of the last page"},
        [PS_PAGE_GZIP_BYTES] = {"page_gzip_bytes", DBI_STAT_GAUGE, "size of the last page gzipped by the renderer"},
        [PS_EXPIRED] = {"expired", DBI_STAT_COUNTER, "series removed after metric_expiration"},
        [PS_STALE] = {"stale", DBI_STAT_COUNTER, "series removed by a no-recorded-value point"},
        [PS_RENDER_SKIPPED] = {"render_skipped", DBI_STAT_COUNTER,
                               "renders skipped: every page buffer held by scrapes"},
        [PS_DROP_FIRST + PR_EXPHIST - 1] = {"dropped.exponential_histogram", DBI_STAT_COUNTER,
                                            "dropped: exponential histograms have no text form"},
        [PS_DROP_FIRST + PR_DELTA_NONMONO - 1] = {"dropped.delta_non_monotonic", DBI_STAT_COUNTER,
                                                  "dropped: delta non-monotonic sum (spec)"},
        [PS_DROP_FIRST + PR_TYPE_CONFLICT - 1] = {"dropped.type_conflict", DBI_STAT_COUNTER,
                                                  "dropped: name taken by a metric of another type"},
        [PS_DROP_FIRST + PR_INVALID_NAME - 1] = {"dropped.invalid_name", DBI_STAT_COUNTER,
                                                 "dropped: no valid metric name left"},
        [PS_DROP_FIRST + PR_DUPLICATE - 1] = {"dropped.duplicate_series", DBI_STAT_COUNTER,
                                              "dropped: same name and labels as another series"},
        [PS_DROP_FIRST + PR_UNKNOWN_SERIES - 1] = {"dropped.unknown_series", DBI_STAT_COUNTER,
                                                   "dropped: series id not in the registry"},
        [PS_DROP_FIRST + PR_KIND_MISMATCH - 1] = {"dropped.kind_mismatch", DBI_STAT_COUNTER,
                                                  "dropped: data of another kind than its metric"},
        [PS_DROP_FIRST + PR_OUT_OF_ORDER - 1] = {"dropped.out_of_order", DBI_STAT_COUNTER,
                                                 "dropped: delta older than what was accumulated"},
        [PS_DROP_FIRST + PR_BAD_RECORD - 1] = {"dropped.bad_record", DBI_STAT_COUNTER,
                                               "dropped: malformed histogram or summary"},
        [PS_DROP_FIRST + PR_NO_MEMORY - 1] = {"dropped.no_memory", DBI_STAT_COUNTER,
                                              "dropped: allocation failed for a new series"},
        [PS_NSTATS] = {NULL, 0, NULL},
};

static const char *const content_types[PROM_NFMT] = {
        [PROM_FMT_TEXT] = "text/plain; version=0.0.4; charset=utf-8",
        [PROM_FMT_OM] = "application/openmetrics-text; version=1.0.0; charset=utf-8",
};

static int reserved_label(const char *k)
{
	static const char *const names[] = {"job",      "instance",        "le",
	                                    "quantile", "otel_scope_name", "otel_scope_version"};
	for (size_t i = 0; i < DBI_ARRAY_LEN(names); i++)
		if (strcmp(k, names[i]) == 0)
			return 1;
	return 0;
}

static int prom_validate(const void *cfgp, const char *id, struct dbi_errbuf *err)
{
	const struct prom_cfg *cfg = cfgp;
	int rc = DBI_OK;
	for (size_t i = 0; i < cfg->const_labels.n; i++) {
		const char *k = cfg->const_labels.k[i];
		char san[PROM_NAME_MAX];
		dbi_prom_sanitize(k, strlen(k), san, sizeof(san), false);
		if (!k[0] || strcmp(san, k) != 0 || (k[0] == '_' && k[1] == '_')) {
			dbi_err_add(err,
			            "%s: const_labels: \"%s\" is not a valid Prometheus label name "
			            "([a-zA-Z_][a-zA-Z0-9_]*, "
			            "not starting with __)",
			            id, k);
			rc = DBI_ERR;
		} else if (reserved_label(k)) {
			dbi_err_add(err, "%s: const_labels: \"%s\" is set by the exporter itself", id, k);
			rc = DBI_ERR;
		}
	}
	return rc;
}

/* ---- pages ---- */

static struct prom_page *page_acquire(struct prom *p)
{
	for (;;) {
		struct prom_page *pg = atomic_load(&p->cur);
		if (!pg)
			return NULL;
		atomic_fetch_add(&pg->refs, 1);
		if (atomic_load(&p->cur) == pg)
			return pg;
		atomic_fetch_sub(&pg->refs, 1);
	}
}

static void page_release(void *cls)
{
	struct prom_page *pg = cls;
	atomic_fetch_sub(&pg->refs, 1);
}

static void page_free(struct prom_page *pg)
{
	for (int f = 0; f < PROM_NFMT; f++) {
		dbi_tbuf_free(&pg->body[f]);
		dbi_tbuf_free(&pg->gz[f]);
	}
	free(pg);
}

/* A page no scrape holds and that is not published; NULL when all are held. */
static struct prom_page *spare_page(struct prom *p)
{
	struct prom_page *cur = atomic_load(&p->cur);
	for (unsigned i = 0; i < p->npool; i++)
		if (p->pool[i] != cur && atomic_load(&p->pool[i]->refs) == 0)
			return p->pool[i];
	if (p->npool == PROM_PAGES)
		return NULL;
	struct prom_page *pg = calloc(1, sizeof(*pg));
	if (pg)
		p->pool[p->npool++] = pg;
	return pg;
}

int prom_render_publish(struct prom *p, unsigned fmts, uint64_t now)
{
	struct prom_page *pg = spare_page(p);
	if (!pg) {
		dbi_stats_add(p->st, PS_RENDER_SKIPPED, 1);
		return DBI_AGAIN;
	}
	uint64_t t0 = dbi_mono_ns();
	for (int f = 0; f < PROM_NFMT; f++)
		atomic_store(&pg->gz_state[f], 0);
	int rc = prom_render(p, pg, fmts);
	if (atomic_load(&p->want_gz_until) > now) {
		for (int f = 0; f < PROM_NFMT; f++) {
			if (!(pg->fmts & PROM_FMT_BIT(f)) || prom_gzip(&pg->body[f], &pg->gz[f], &p->gz) != DBI_OK)
				continue;
			atomic_store(&pg->gz_state[f], 2);
			dbi_stats_set(p->st, PS_PAGE_GZIP_BYTES, pg->gz[f].len);
		}
	}
	uint64_t took = dbi_mono_ns() - t0;
	dbi_stats_add(p->st, PS_RENDERS, 1);
	dbi_stats_add(p->st, PS_RENDER_NS, took);
	dbi_stats_set(p->st, PS_RENDER_LAST_NS, took);
	if (!pg->fmts) {
		DBI_LOGE(p->inst->id, "cannot render the page: out of memory", "series=%llu",
		         (unsigned long long)p->live);
		return DBI_ERR;
	}
	dbi_stats_set(p->st, PS_PAGE_BYTES, pg->body[pg->fmts & PROM_FMT_BIT(PROM_FMT_TEXT) ? 0 : 1].len);
	pg->gen = ++p->gen;
	pg->rendered = now;
	pg->covers = p->updated;
	atomic_store(&p->cur, pg);
	p->last_render = now;
	return rc;
}

const char *prom_page_text(struct prom *p, int fmt, size_t *len)
{
	struct prom_page *pg = atomic_load(&p->cur);
	if (!pg || !(pg->fmts & PROM_FMT_BIT(fmt)))
		return NULL;
	*len = pg->body[fmt].len;
	return pg->body[fmt].p ? pg->body[fmt].p : "";
}

unsigned prom_port(const struct prom *p)
{
	return p->http ? dbi_http_port(p->http) : 0;
}

/* ---- HTTP ---- */

/* q value of one media-range or coding parameter list ("; q=0.5"), 1 when absent. */
static double qvalue(const char *params, const char *end)
{
	for (const char *s = params; s && s < end; s++) {
		if (*s != ';')
			continue;
		s++;
		while (s < end && (*s == ' ' || *s == '\t'))
			s++;
		if (s + 1 < end && (s[0] == 'q' || s[0] == 'Q') && s[1] == '=')
			return strtod(s + 2, NULL);
	}
	return 1.0;
}

static bool param_is(const char *params, const char *end, const char *name, const char *want)
{
	size_t nl = strlen(name);
	for (const char *s = params; s && s < end; s++) {
		if (*s != ';')
			continue;
		s++;
		while (s < end && (*s == ' ' || *s == '\t'))
			s++;
		if ((size_t)(end - s) > nl && strncasecmp(s, name, nl) == 0 && s[nl] == '=') {
			const char *v = s + nl + 1, *ve = v;
			while (ve < end && *ve != ';' && *ve != ' ')
				ve++;
			return (size_t)(ve - v) == strlen(want) && strncmp(v, want, (size_t)(ve - v)) == 0;
		}
	}
	return true; /* absent: any version is fine */
}

/* Content negotiation: the format with the higher q; OpenMetrics wins ties. */
static int negotiate(const char *accept)
{
	double q_om = -1, q_text = -1;
	for (const char *s = accept; s && *s;) {
		const char *e = strchr(s, ',');
		if (!e)
			e = s + strlen(s);
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		const char *pe = memchr(s, ';', (size_t)(e - s));
		size_t tl = (size_t)((pe ? pe : e) - s);
		while (tl && (s[tl - 1] == ' ' || s[tl - 1] == '\t'))
			tl--;
		double q = qvalue(pe, e);
		if (tl == 28 && strncasecmp(s, "application/openmetrics-text", 28) == 0) {
			if (param_is(pe, e, "version", "1.0.0") || param_is(pe, e, "version", "0.0.1"))
				q_om = DBI_MAX(q_om, q);
		} else if (tl == 10 && strncasecmp(s, "text/plain", 10) == 0) {
			if (param_is(pe, e, "version", "0.0.4"))
				q_text = DBI_MAX(q_text, q);
		} else if ((tl == 3 && strncmp(s, "*/*", 3) == 0) || (tl == 6 && strncasecmp(s, "text/*", 6) == 0)) {
			q_text = DBI_MAX(q_text, q);
		}
		s = *e ? e + 1 : e;
	}
	return q_om > 0 && q_om >= q_text ? PROM_FMT_OM : PROM_FMT_TEXT;
}

static bool accepts_gzip(const char *ae)
{
	for (const char *s = ae; s && *s;) {
		const char *e = strchr(s, ',');
		if (!e)
			e = s + strlen(s);
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		const char *pe = memchr(s, ';', (size_t)(e - s));
		size_t tl = (size_t)((pe ? pe : e) - s);
		while (tl && (s[tl - 1] == ' ' || s[tl - 1] == '\t'))
			tl--;
		if (tl == 4 && strncasecmp(s, "gzip", 4) == 0)
			return qvalue(pe, e) > 0;
		s = *e ? e + 1 : e;
	}
	return false;
}

static bool usable(struct prom *p, const struct prom_page *pg, int fmt, uint64_t now)
{
	if (!pg || !(pg->fmts & PROM_FMT_BIT(fmt)))
		return false;
	return pg->covers >= atomic_load(&p->updated_pub) || now - pg->rendered < p->cfg->render_interval;
}

/* Ask the exporter thread for a render and wait (bounded) for it; returns the page to use. */
static struct prom_page *wait_render(struct prom *p, struct prom_page *pg, int fmt)
{
	uint64_t old = pg ? pg->gen : 0, deadline = dbi_mono_ns() + SCRAPE_WAIT_NS;
	atomic_fetch_or(&p->render_req, PROM_FMT_BIT(fmt));
	atomic_fetch_add(&p->n_waits, 1);
	while (dbi_mono_ns() < deadline) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
		struct prom_page *np = page_acquire(p);
		if (np && np->gen != old && (np->fmts & PROM_FMT_BIT(fmt))) {
			if (pg)
				page_release(pg);
			return np;
		}
		if (np)
			page_release(np);
	}
	return pg;
}

static int prom_handle(void *cls, const struct dbi_http_request *req, struct dbi_http_response *r)
{
	struct prom *p = cls;
	if (strcmp(req->url, "/metrics") != 0) {
		r->status = 404;
		r->body = "not found: metrics are at /metrics\n";
		r->body_len = strlen(r->body);
		return DBI_OK;
	}
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		r->status = 405;
		r->body = "method not allowed\n";
		r->body_len = strlen(r->body);
		r->extra_header[0] = "Allow";
		r->extra_header[1] = "GET, HEAD";
		return DBI_OK;
	}
	int fmt = p->cfg->enable_open_metrics ? negotiate(dbi_http_header(req, "Accept")) : PROM_FMT_TEXT;
	bool gz = accepts_gzip(dbi_http_header(req, "Accept-Encoding"));
	uint64_t now = dbi_mono_ns();
	atomic_store(&p->want_until[fmt], now + INTEREST_NS);
	if (gz)
		atomic_store(&p->want_gz_until, now + INTEREST_NS);

	struct prom_page *pg = page_acquire(p);
	if (!usable(p, pg, fmt, now))
		pg = wait_render(p, pg, fmt);
	if (pg && !(pg->fmts & PROM_FMT_BIT(fmt)))
		fmt = pg->fmts & PROM_FMT_BIT(PROM_FMT_TEXT) ? PROM_FMT_TEXT : PROM_FMT_OM;
	if (!pg || !(pg->fmts & PROM_FMT_BIT(fmt))) {
		if (pg)
			page_release(pg);
		r->status = 503;
		r->body = "no page rendered yet\n";
		r->body_len = strlen(r->body);
		r->extra_header[0] = "Retry-After";
		r->extra_header[1] = "1";
		return DBI_OK;
	}
	atomic_fetch_add(&p->n_scrapes, 1);
	if (fmt == PROM_FMT_OM)
		atomic_fetch_add(&p->n_scrapes_om, 1);
	r->status = 200;
	r->content_type = content_types[fmt];
	r->body = pg->body[fmt].p ? pg->body[fmt].p : "";
	r->body_len = pg->body[fmt].len;
	if (gz) {
		int expect = 0;
		/* the first gzip scrape of a page the renderer did not compress does it, once */
		if (atomic_compare_exchange_strong(&pg->gz_state[fmt], &expect, 1))
			atomic_store(&pg->gz_state[fmt],
			             prom_gzip(&pg->body[fmt], &pg->gz[fmt], NULL) == DBI_OK ? 2 : 0);
		if (atomic_load(&pg->gz_state[fmt]) == 2) {
			r->body = pg->gz[fmt].p;
			r->body_len = pg->gz[fmt].len;
			r->content_encoding = "gzip";
			atomic_fetch_add(&p->n_scrapes_gz, 1);
		}
	}
	r->release = page_release;
	r->release_cls = pg;
	return DBI_OK;
}

/* ---- component ---- */

static void prom_free(struct prom *p)
{
	if (!p)
		return;
	dbi_http_stop(p->http);
	prom_store_free(p);
	prom_gzip_free(p->gz);
	for (unsigned i = 0; i < p->npool; i++)
		page_free(p->pool[i]);
	for (size_t i = 0; i < p->nconst; i++)
		free(p->const_names[i]);
	free(p->const_names);
	dbi_tbuf_free(&p->const_text);
	free(p);
}

static int prom_create(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err)
{
	const struct prom_cfg *cfg = inst->cfg;
	struct prom *p = calloc(1, sizeof(*p));
	if (!p)
		goto nomem;
	p->cfg = cfg;
	p->inst = inst;
	p->reg = inst->reg;
	p->st = inst->stats;
	const char *ns = cfg->namespace_ ? cfg->namespace_ : "";
	dbi_prom_sanitize(ns, strlen(ns), p->ns, sizeof(p->ns), true);
	if (cfg->const_labels.n) {
		p->const_names = calloc(cfg->const_labels.n, sizeof(char *));
		if (!p->const_names)
			goto nomem;
	}
	for (size_t i = 0; i < cfg->const_labels.n; i++) {
		const char *k = cfg->const_labels.k[i], *v = cfg->const_labels.v[i] ? cfg->const_labels.v[i] : "";
		char san[PROM_NAME_MAX];
		size_t n = dbi_prom_sanitize(k, strlen(k), san, sizeof(san), false);
		if (!(p->const_names[p->nconst++] = strdup(san)))
			goto nomem;
		if (p->const_text.len)
			dbi_tbuf_putc(&p->const_text, ',');
		dbi_tbuf_put(&p->const_text, san, n);
		dbi_tbuf_put(&p->const_text, "=\"", 2);
		dbi_tbuf_label_value(&p->const_text, v, strlen(v));
		dbi_tbuf_putc(&p->const_text, '"');
	}
	if (p->const_text.oom || prom_store_init(p) != DBI_OK)
		goto nomem;
	*state = p;
	return DBI_OK;
nomem:
	prom_free(p);
	dbi_err_add(err, "%s: out of memory", inst->id);
	return DBI_ERR;
}

static void prom_destroy(void *state)
{
	prom_free(state);
}

static int prom_start(void *state, struct dbi_errbuf *err)
{
	struct prom *p = state;
	return dbi_http_start(&p->http, p->inst->id, &p->cfg->endpoint, 0, prom_handle, p, err);
}

static void prom_stop(void *state)
{
	struct prom *p = state;
	dbi_http_stop(p->http);
	p->http = NULL;
}

static int prom_consume(void *state, struct dbi_batch *b, struct dbi_next *next)
{
	struct prom *p = state;
	uint64_t now = dbi_mono_ns();
	(void)next;
	for (uint32_t i = 0; i < b->npts; i++)
		prom_apply_point(p, &b->pts[i], now);
	for (uint32_t i = 0; i < b->nrecs; i++)
		prom_apply_record(p, b->recs[i], now);
	atomic_store_explicit(&p->updated_pub, p->updated, memory_order_relaxed);
	return DBI_OK;
}

static uint64_t sweep_every(const struct prom_cfg *cfg)
{
	uint64_t e = cfg->metric_expiration / 10;
	return DBI_MIN(DBI_MAX(e, 100 * DBI_NSEC_PER_MSEC), 5 * DBI_NSEC_PER_SEC);
}

static uint64_t prom_tick(void *state, uint64_t now, struct dbi_next *next)
{
	struct prom *p = state;
	(void)next;
	dbi_stats_set(p->st, PS_SCRAPES, atomic_load_explicit(&p->n_scrapes, memory_order_relaxed));
	dbi_stats_set(p->st, PS_SCRAPES_GZIP, atomic_load_explicit(&p->n_scrapes_gz, memory_order_relaxed));
	dbi_stats_set(p->st, PS_SCRAPES_OM, atomic_load_explicit(&p->n_scrapes_om, memory_order_relaxed));
	dbi_stats_set(p->st, PS_SCRAPE_WAITS, atomic_load_explicit(&p->n_waits, memory_order_relaxed));

	if (p->cfg->metric_expiration && now >= p->next_sweep) {
		prom_sweep(p, now);
		p->next_sweep = now + sweep_every(p->cfg);
	}
	unsigned want = 0;
	for (int f = 0; f < PROM_NFMT; f++)
		if (atomic_load(&p->want_until[f]) > now)
			want |= PROM_FMT_BIT(f);
	unsigned req = atomic_exchange(&p->render_req, 0);
	const struct prom_page *cur = atomic_load(&p->cur);
	bool dirty = !cur || p->updated > cur->covers;
	uint64_t due = p->last_render + p->cfg->render_interval;
	if (req || (want && dirty && now >= due)) {
		prom_render_publish(p, want | req, now);
		dirty = false;
		due = now + p->cfg->render_interval;
	}
	atomic_store_explicit(&p->updated_pub, p->updated, memory_order_relaxed);

	uint64_t next_tick = now + (want ? POLL_NS : IDLE_TICK_NS);
	if (want && dirty)
		next_tick = DBI_MIN(next_tick, DBI_MAX(due, now + 1));
	if (p->cfg->metric_expiration)
		next_tick = DBI_MIN(next_tick, p->next_sweep);
	return next_tick;
}

const struct dbi_component dbi_exporter_prometheus = {
        .type = "prometheus",
        .kind = DBI_EXPORTER,
        .signals = DBI_SIG_METRICS,
        .doc = "Prometheus pull endpoint: text 0.0.4 or OpenMetrics, gzip, OTel naming, target_info",
        .keys = prom_keys,
        .conf_size = sizeof(struct prom_cfg),
        .stats = prom_stats,
        .validate = prom_validate,
        .create = prom_create,
        .destroy = prom_destroy,
        .start = prom_start,
        .stop = prom_stop,
        .consume = prom_consume,
        .tick = prom_tick,
};
