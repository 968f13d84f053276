/*
 * telemetry.c — the collector's own metrics as a Prometheus text page (telemetry.h),
 * built from the shared-memory segment so it shows exactly what dbi-stat shows:
 *
 *   stats blocks   dbi_component_<counter>{component,kind,type[,thread,pipeline]},
 *                  dbi_thread_<counter>{thread}, dbi_runtime_<counter>; every
 *                  "dropped.<reason>" counter becomes <prefix>_dropped_total{reason};
 *                  counters get _total; *_ns values are converted to *_seconds
 *   rings          dbi_ring_* and dbi_byte_ring_* {ring,producer,consumer}
 *   threads        dbi_thread_cpu_seconds_total, _busy_seconds_total,
 *                  _heartbeat_age_seconds, _allocated_bytes_total {thread,kind}
 *   process        dbi_process_* (RSS, CPU, start time, uptime), dbi_build_info
 *
 * Samples are gathered per family first (a family's samples must be contiguous in the
 * text format), then written. It runs on the HTTP server's thread when scraped and
 * reads only snapshots: stats through their seqlock, ring indexes as single words.
 */
#include "dbi/telemetry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/circuit.h"
#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/http.h"
#include "dbi/log.h"
#include "dbi/proc.h"
#include "dbi/promtext.h"
#include "dbi/ring.h"
#include "dbi/shm.h"
#include "dbi/stats.h"
#include "runtime_int.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define FAM_NAME 112

struct tfam {
	char name[FAM_NAME];
	bool counter;
	char help[192];
	uint32_t first, last; /* sample list, indexes + 1 */
};

struct tsample {
	uint32_t next;
	uint32_t loff, llen; /* label text in page->labels */
	bool is_double;
	double d;
	uint64_t u;
};

struct tpage {
	struct tfam *fams;
	uint32_t nfams, fams_cap;
	struct tsample *smp;
	uint32_t nsmp, smp_cap;
	struct dbi_tbuf labels; /* label text of every sample */
	struct dbi_tbuf lb;     /* the sample being built */
	bool oom;
};

struct dbi_telemetry {
	struct dbi_shm *shm;
	struct dbi_http *http;
	struct dbi_endpoint ep;
};

static struct tfam *family(struct tpage *pg, const char *name, bool counter, const char *help)
{
	for (uint32_t i = 0; i < pg->nfams; i++)
		if (strcmp(pg->fams[i].name, name) == 0)
			return pg->fams[i].counter == counter ? &pg->fams[i] : NULL;
	if (pg->nfams == pg->fams_cap) {
		uint32_t cap = pg->fams_cap ? pg->fams_cap * 2 : 64;
		struct tfam *f = realloc(pg->fams, cap * sizeof(*f));
		if (!f) {
			pg->oom = true;
			return NULL;
		}
		pg->fams = f;
		pg->fams_cap = cap;
	}
	struct tfam *f = &pg->fams[pg->nfams++];
	memset(f, 0, sizeof(*f));
	dbi_strlcpy(f->name, name, sizeof(f->name));
	dbi_strlcpy(f->help, help && help[0] ? help : "dbi counter (see docs/self-telemetry.md)", sizeof(f->help));
	f->counter = counter;
	return f;
}

/* Label helpers: build the current sample's labels in pg->lb. */
static void lab(struct tpage *pg, const char *name, const char *val, size_t max)
{
	size_t n = strnlen(val, max);
	if (!n)
		return;
	if (pg->lb.len)
		dbi_tbuf_putc(&pg->lb, ',');
	dbi_tbuf_puts(&pg->lb, name);
	dbi_tbuf_put(&pg->lb, "=\"", 2);
	dbi_tbuf_label_value(&pg->lb, val, n);
	dbi_tbuf_putc(&pg->lb, '"');
}

static void add(struct tpage *pg, const char *name, bool counter, const char *help, bool is_double, double d,
                uint64_t u)
{
	struct tfam *f = family(pg, name, counter, help);
	if (!f) {
		pg->lb.len = 0;
		return;
	}
	if (pg->nsmp == pg->smp_cap) {
		uint32_t cap = pg->smp_cap ? pg->smp_cap * 2 : 256;
		struct tsample *s = realloc(pg->smp, cap * sizeof(*s));
		if (!s) {
			pg->oom = true;
			pg->lb.len = 0;
			return;
		}
		pg->smp = s;
		pg->smp_cap = cap;
	}
	struct tsample *s = &pg->smp[pg->nsmp++];
	s->next = 0;
	s->loff = (uint32_t)pg->labels.len;
	dbi_tbuf_put(&pg->labels, pg->lb.p, pg->lb.len);
	s->llen = (uint32_t)(pg->labels.len - s->loff);
	s->is_double = is_double;
	s->d = d;
	s->u = u;
	if (f->last)
		pg->smp[f->last - 1].next = pg->nsmp;
	else
		f->first = pg->nsmp;
	f->last = pg->nsmp;
	pg->lb.len = 0;
}

static void add_u(struct tpage *pg, const char *name, bool counter, const char *help, uint64_t v)
{
	add(pg, name, counter, help, false, 0, v);
}

static void add_d(struct tpage *pg, const char *name, bool counter, const char *help, double v)
{
	add(pg, name, counter, help, true, v, 0);
}

static const char *stat_help(const struct dbi_stats_block *b, const char *stat)
{
	static const enum dbi_comp_kind kinds[] = {[DBI_SK_RECEIVER] = DBI_RECEIVER,
	                                           [DBI_SK_PROCESSOR] = DBI_PROCESSOR,
	                                           [DBI_SK_EXPORTER] = DBI_EXPORTER,
	                                           [DBI_SK_EXTENSION] = DBI_EXTENSION};
	const struct dbi_stat_def *defs = NULL;
	if (b->kind == DBI_SK_THREAD)
		defs = dbi_rt_thread_stat_defs;
	else if (b->kind == DBI_SK_RUNTIME)
		defs = dbi_rt_runtime_stat_defs;
	else if (b->kind >= DBI_SK_RECEIVER && b->kind <= DBI_SK_EXTENSION) {
		const struct dbi_component *c = dbi_component_find(b->type, kinds[b->kind]);
		defs = c ? c->stats : NULL;
	}
	for (size_t i = 0; defs && defs[i].name; i++)
		if (strcmp(defs[i].name, stat) == 0)
			return defs[i].help;
	return NULL;
}

/* Labels of a component block from its id: "processor:batch@metrics#0", "receiver:lg#1". */
static void component_labels(struct tpage *pg, const struct dbi_stats_block *b)
{
	static const char *const kinds[] = {[DBI_SK_RECEIVER] = "receiver",
	                                    [DBI_SK_PROCESSOR] = "processor",
	                                    [DBI_SK_EXPORTER] = "exporter",
	                                    [DBI_SK_EXTENSION] = "extension"};
	char id[DBI_STATS_ID], thread[DBI_STATS_ID + 8] = "";
	const char *colon = strchr(b->id, ':');
	dbi_strlcpy(id, colon ? colon + 1 : b->id, sizeof(id));
	const char *pipeline = "";
	char *hash = strrchr(id, '#');
	if (b->kind == DBI_SK_PROCESSOR) {
		char *at = strchr(id, '@');
		if (at) {
			*at = '\0';
			pipeline = at + 1;
		}
		if (hash) {
			*hash = '\0';
			snprintf(thread, sizeof(thread), "proc#%s", hash + 1);
		}
	} else if (b->kind == DBI_SK_RECEIVER && hash) {
		snprintf(thread, sizeof(thread), "rcv:%s", id);
		*hash = '\0';
	} else if (b->kind == DBI_SK_EXPORTER) {
		snprintf(thread, sizeof(thread), "exp:%s", id);
	}
	lab(pg, "component", id, sizeof(id));
	lab(pg, "kind", kinds[b->kind], 16);
	lab(pg, "type", b->type, sizeof(b->type));
	lab(pg, "pipeline", pipeline, DBI_STATS_ID);
	lab(pg, "thread", thread, sizeof(thread));
}

static void stats_block(struct tpage *pg, const struct dbi_stats_block *b)
{
	const char *prefix;
	if (b->kind >= DBI_SK_RECEIVER && b->kind <= DBI_SK_EXTENSION)
		prefix = "dbi_component";
	else if (b->kind == DBI_SK_THREAD)
		prefix = "dbi_thread";
	else if (b->kind == DBI_SK_RUNTIME)
		prefix = "dbi_runtime";
	else
		return;
	for (uint32_t i = 0; i < b->n && i < DBI_STATS_MAX; i++) {
		const char *stat = b->names[i];
		bool counter = b->types[i] == DBI_STAT_COUNTER;
		char base[DBI_STAT_NAME + 16], name[FAM_NAME];
		const char *help = stat_help(b, stat);
		const char *reason = NULL;
		if (strncmp(stat, "dropped.", 8) == 0) {
			reason = stat + 8;
			snprintf(base, sizeof(base), "dropped");
			help = "data dropped, by reason";
		} else {
			dbi_prom_sanitize(stat, strnlen(stat, DBI_STAT_NAME), base, sizeof(base), true);
		}
		size_t bl = strlen(base);
		bool ns = bl > 3 && strcmp(base + bl - 3, "_ns") == 0;
		if (ns)
			snprintf(base + bl - 3, sizeof(base) - (bl - 3), "_seconds");
		bl = strlen(base);
		bool has_total = bl >= 6 && strcmp(base + bl - 6, "_total") == 0;
		snprintf(name, sizeof(name), "%s_%s%s", prefix, base, counter && !has_total ? "_total" : "");
		if (b->kind == DBI_SK_THREAD) {
			const char *t = strchr(b->id, ':');
			lab(pg, "thread", t ? t + 1 : b->id, sizeof(b->id));
		} else if (b->kind != DBI_SK_RUNTIME) {
			component_labels(pg, b);
		}
		if (reason)
			lab(pg, "reason", reason, DBI_STAT_NAME);
		if (ns)
			add_d(pg, name, counter, help, (double)b->v[i] / 1e9);
		else
			add_u(pg, name, counter, help, b->v[i]);
	}
}

static void ring_labels(struct tpage *pg, const struct dbi_shm_region *r)
{
	const char *n = strchr(r->name, ':');
	lab(pg, "ring", n ? n + 1 : r->name, sizeof(r->name));
	lab(pg, "producer", r->owner, sizeof(r->owner));
	lab(pg, "consumer", r->peer, sizeof(r->peer));
}

static void ring(struct tpage *pg, const struct dbi_shm_region *reg, const void *p)
{
	const struct dbi_ring *r = p;
	if (reg->size < sizeof(*r) || LOAD(&r->magic) != DBI_RING_MAGIC)
		return;
	uint64_t cap = LOAD(&r->capacity);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	ring_labels(pg, reg);
	add_u(pg, "dbi_ring_capacity", false, "slots in the point ring", cap);
	ring_labels(pg, reg);
	add_u(pg, "dbi_ring_depth", false, "points waiting in the ring", DBI_MIN(head - tail, cap));
	ring_labels(pg, reg);
	add_u(pg, "dbi_ring_enqueued_total", true, "points put into the ring", head);
	ring_labels(pg, reg);
	add_u(pg, "dbi_ring_dequeued_total", true, "points taken out of the ring", tail);
	ring_labels(pg, reg);
	add_u(pg, "dbi_ring_full_total", true, "times the producer found the ring full", LOAD(&r->full_events));
}

static void bring(struct tpage *pg, const struct dbi_shm_region *reg, const void *p)
{
	const struct dbi_bring *r = p;
	if (reg->size < sizeof(*r) || LOAD(&r->magic) != DBI_BRING_MAGIC)
		return;
	uint64_t size = LOAD(&r->size);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	ring_labels(pg, reg);
	add_u(pg, "dbi_byte_ring_capacity_bytes", false, "size of the record ring", size);
	ring_labels(pg, reg);
	add_u(pg, "dbi_byte_ring_used_bytes", false, "bytes of records waiting in the ring",
	      DBI_MIN(head - tail, size));
	ring_labels(pg, reg);
	add_u(pg, "dbi_byte_ring_enqueued_total", true, "records put into the ring", LOAD(&r->records));
	ring_labels(pg, reg);
	add_u(pg, "dbi_byte_ring_dequeued_total", true, "records taken out of the ring", LOAD(&r->consumed_records));
	ring_labels(pg, reg);
	add_u(pg, "dbi_byte_ring_full_total", true, "times the producer found the ring full", LOAD(&r->full_events));
}

/* Per-target circuit breakers (PostgreSQL receiver), from their shm tables. */
static void circuits(struct tpage *pg, const struct dbi_shm_region *reg, const void *p)
{
	int n = dbi_circuit_region_count(p, reg->size);
	const struct dbi_circuit_region *cr = p;
	for (int i = 0; i < n; i++) {
		struct dbi_circuit_view v;
		if (dbi_circuit_snapshot(dbi_circuit_region_at(p, (uint32_t)i), &v) != DBI_OK)
			continue;
		static const struct {
			const char *name;
			bool counter;
			const char *help;
		} m[] = {
		        {"dbi_circuit_state", false, "circuit breaker state: 0 closed, 1 open, 2 half-open"},
		        {"dbi_circuit_transitions_total", true, "circuit state changes"},
		        {"dbi_circuit_failures_total", true, "failed calls (scrapes) seen by the circuit"},
		        {"dbi_circuit_successes_total", true, "successful calls seen by the circuit"},
		        {"dbi_circuit_denied_total", true, "scrapes skipped because the circuit was open"},
		};
		uint64_t val[] = {(uint64_t)v.state, v.transitions, v.failures, v.successes, v.denied};
		for (size_t k = 0; k < DBI_ARRAY_LEN(m); k++) {
			lab(pg, "owner", cr->owner, sizeof(cr->owner));
			lab(pg, "target", v.target, sizeof(v.target));
			add_u(pg, m[k].name, m[k].counter, m[k].help, val[k]);
		}
	}
}

static void thread_labels(struct tpage *pg, const char *name, uint32_t role)
{
	static const char *const roles[] = {"runtime", "receiver", "processor", "exporter", "extension"};
	lab(pg, "thread", name, 48);
	lab(pg, "kind", role < DBI_ARRAY_LEN(roles) ? roles[role] : "other", 16);
}

static void thread(struct tpage *pg, const struct dbi_shm_region *reg, const void *p, uint64_t now)
{
	const struct dbi_shm_thread *t = p;
	char name[48];
	if (reg->size < sizeof(*t))
		return;
	for (size_t i = 0; i < sizeof(name); i++)
		name[i] = LOAD(&t->name[i]);
	name[sizeof(name) - 1] = '\0';
	uint32_t role = LOAD(&t->role);
	uint64_t hb = atomic_load_explicit(&t->heartbeat_mono_ns, memory_order_relaxed);
	thread_labels(pg, name, role);
	add_d(pg, "dbi_thread_cpu_seconds_total", true, "CPU time of the thread",
	      (double)atomic_load_explicit(&t->cpu_ns, memory_order_relaxed) / 1e9);
	thread_labels(pg, name, role);
	add_d(pg, "dbi_thread_busy_seconds_total", true, "time the thread spent working rather than waiting",
	      (double)atomic_load_explicit(&t->busy_ns, memory_order_relaxed) / 1e9);
	if (hb) {
		thread_labels(pg, name, role);
		add_d(pg, "dbi_thread_heartbeat_age_seconds", false, "time since the thread's loop last went round",
		      now > hb ? (double)(now - hb) / 1e9 : 0.0);
	}
	thread_labels(pg, name, role);
	add_u(pg, "dbi_thread_allocated_bytes_total", true, "bytes the thread has allocated (jemalloc)",
	      atomic_load_explicit(&t->allocated_bytes, memory_order_relaxed));
}

static void process(struct tpage *pg, const struct dbi_shm_header *h)
{
	char version[sizeof(h->collector_version)];
	memcpy(version, h->collector_version, sizeof(version));
	version[sizeof(version) - 1] = '\0';
	lab(pg, "version", version, sizeof(version));
	add_u(pg, "dbi_build_info", false, "the collector's version", 1);
	add_u(pg, "dbi_process_resident_memory_bytes", false, "resident set size", dbi_proc_rss_bytes());
	add_d(pg, "dbi_process_cpu_seconds_total", true, "user and system CPU time of the collector",
	      (double)dbi_proc_cpu_ns() / 1e9);
	uint64_t start = h->start_wall_ns, now = dbi_wall_ns();
	add_d(pg, "dbi_process_start_time_seconds", false, "when the collector started, Unix time",
	      (double)start / 1e9);
	add_d(pg, "dbi_process_uptime_seconds", false, "seconds since the collector started",
	      now > start ? (double)(now - start) / 1e9 : 0.0);
}

static void write_page(struct tpage *pg, struct dbi_tbuf *out)
{
	char num[DBI_PROM_NUM_MAX];
	for (uint32_t i = 0; i < pg->nfams; i++) {
		const struct tfam *f = &pg->fams[i];
		dbi_tbuf_puts(out, "# HELP ");
		dbi_tbuf_puts(out, f->name);
		dbi_tbuf_putc(out, ' ');
		dbi_tbuf_help(out, f->help, strlen(f->help), false);
		dbi_tbuf_puts(out, "\n# TYPE ");
		dbi_tbuf_puts(out, f->name);
		dbi_tbuf_puts(out, f->counter ? " counter\n" : " gauge\n");
		for (uint32_t k = f->first; k; k = pg->smp[k - 1].next) {
			const struct tsample *s = &pg->smp[k - 1];
			dbi_tbuf_puts(out, f->name);
			if (s->llen) {
				dbi_tbuf_putc(out, '{');
				dbi_tbuf_put(out, pg->labels.p + s->loff, s->llen);
				dbi_tbuf_putc(out, '}');
			}
			dbi_tbuf_putc(out, ' ');
			dbi_tbuf_put(out, num,
			             s->is_double ? dbi_prom_fmt_double(s->d, num) : dbi_prom_fmt_uint(s->u, num));
			dbi_tbuf_putc(out, '\n');
		}
	}
}

static void tpage_free(struct tpage *pg)
{
	free(pg->fams);
	free(pg->smp);
	dbi_tbuf_free(&pg->labels);
	dbi_tbuf_free(&pg->lb);
}

int dbi_telemetry_render(struct dbi_shm *shm, char **out, size_t *len)
{
	struct dbi_shm_region *dir = malloc(DBI_SHM_MAX_REGIONS * sizeof(*dir));
	int rc = DBI_AGAIN;
	*out = NULL;
	*len = 0;
	if (!dir)
		return DBI_ERR;
	for (int attempt = 0; attempt < 3 && rc == DBI_AGAIN; attempt++) {
		struct tpage pg = {0};
		struct dbi_tbuf page = {0};
		uint32_t n;
		uint64_t gen;
		if (dbi_shm_regions_snapshot(shm, dir, DBI_SHM_MAX_REGIONS, &n, &gen) != DBI_OK)
			continue;
		uint64_t now = dbi_mono_ns();
		process(&pg, dbi_shm_header(shm));
		for (uint32_t i = 0; i < n; i++) {
			const void *p = dbi_shm_region_ptr(shm, &dir[i]);
			if (!p)
				continue;
			switch (dir[i].kind) {
			case DBI_REGION_STATS: {
				struct dbi_stats_block b;
				if (dir[i].size >= sizeof(b) && dbi_stats_snapshot(p, &b) == DBI_OK)
					stats_block(&pg, &b);
				break;
			}
			case DBI_REGION_RING:
				ring(&pg, &dir[i], p);
				break;
			case DBI_REGION_BRING:
				bring(&pg, &dir[i], p);
				break;
			case DBI_REGION_THREAD:
				thread(&pg, &dir[i], p, now);
				break;
			case DBI_REGION_CIRCUIT:
				circuits(&pg, &dir[i], p);
				break;
			default:
				break;
			}
		}
		write_page(&pg, &page);
		dbi_tbuf_putc(&page, '\0'); /* a C string; the NUL is not part of the body */
		page.len -= !page.oom;
		bool oom = pg.oom || pg.labels.oom || pg.lb.oom || page.oom;
		tpage_free(&pg);
		const struct dbi_shm_header *h = dbi_shm_header(shm);
		if (oom) {
			dbi_tbuf_free(&page);
			rc = DBI_ERR;
		} else if (atomic_load_explicit(&h->generation, memory_order_acquire) != gen) {
			dbi_tbuf_free(&page); /* a reload moved regions under us: read again */
		} else {
			*out = page.p ? page.p : calloc(1, 1);
			*len = page.len;
			rc = *out ? DBI_OK : DBI_ERR;
		}
	}
	free(dir);
	return rc;
}

static int handle(void *cls, const struct dbi_http_request *req, struct dbi_http_response *r)
{
	struct dbi_telemetry *t = cls;
	char *page;
	size_t len;
	if (strcmp(req->url, "/metrics") != 0) {
		r->status = 404;
		r->body = "not found: metrics are at /metrics\n";
		r->body_len = strlen(r->body);
		return DBI_OK;
	}
	int rc = dbi_telemetry_render(t->shm, &page, &len);
	if (rc != DBI_OK) {
		r->status = 503;
		r->body = rc == DBI_AGAIN ? "reloading, try again\n" : "out of memory\n";
		r->body_len = strlen(r->body);
		return DBI_OK;
	}
	r->status = 200;
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	r->body = page;
	r->body_len = len;
	r->free_body = 1;
	return DBI_OK;
}

int dbi_telemetry_start(struct dbi_telemetry **out, struct dbi_shm *shm, const struct dbi_endpoint *ep,
                        struct dbi_errbuf *err)
{
	struct dbi_telemetry *t = calloc(1, sizeof(*t));
	if (!t) {
		dbi_err_add(err, "self-telemetry: out of memory");
		return DBI_ERR;
	}
	t->shm = shm;
	t->ep = *ep;
	if (dbi_http_start(&t->http, "service.telemetry.metrics", ep, 0, handle, t, err) != DBI_OK) {
		free(t);
		return DBI_ERR;
	}
	*out = t;
	return DBI_OK;
}

void dbi_telemetry_stop(struct dbi_telemetry *t)
{
	if (!t)
		return;
	dbi_http_stop(t->http);
	free(t);
}

const struct dbi_endpoint *dbi_telemetry_endpoint(const struct dbi_telemetry *t)
{
	return &t->ep;
}

unsigned dbi_telemetry_port(const struct dbi_telemetry *t)
{
	return dbi_http_port(t->http);
}
