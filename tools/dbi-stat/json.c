/*
 * json.c — dbi-stat's machine view (--json): one JSON object per sample. Rates are
 * per second over the interval between the two samples, null when there is no earlier
 * sample of the same region (first sample, --interval 0, after a restart or reload).
 * Ages and durations are in milliseconds/seconds as named. Keep this shape stable;
 * scripts parse it. It is documented in README.md too:
 *
 * {
 *   "instance": "dbi.main", "segment": "/dev/shm/dbi.main",
 *   "collector_version": "0.1.0", "pid": 1234, "alive": true,
 *   "state": "starting|running|reloading|stopping|stopped",
 *   "page_mode": "normal|thp|hugetlb",
 *   "start_time": "2026-11-27T09:00:00.000Z", "uptime_s": 12.5, "heartbeat_age_ms": 40,
 *   "segment_size": 67108864, "segment_used": 3355443, "generation": 0, "regions": 14,
 *   "sample_time": "2026-11-27T09:00:12.500Z", "interval_s": 1.0 | null,
 *   "rings": [ { "name", "producer", "consumer", "capacity", "slot_size", "depth", "fill_pct",
 *                "in_total", "out_total", "in_per_s", "out_per_s", "full_events", "full_per_s" } ],
 *   "byte_rings": [ { "name", "producer", "consumer", "size", "used", "fill_pct",
 *                     "records_in", "records_out", "in_per_s", "out_per_s", "full_events" } ],
 *   "stats": { "receivers": [B], "processors": [B], "exporters": [B], "extensions": [B],
 *              "threads": [B], "runtime": [B] },
 *      where B = { "id", "type", "region", "updated_age_ms",
 *                  "counters": { "<name>": { "type": "counter", "value": N, "per_s": x | null }
 *                                "<name>": { "type": "gauge", "value": N } } }
 *   "circuits": [ { "receiver", "region", "target", "state": "closed|open|half_open",
 *                   "override": "none|force_open|force_closed" (requested), "override_active" (applied),
 *                   "reset_pending", "failures", "successes", "denied", "transitions",
 *                   "window_failures", "window_calls", "backoff_s",
 *                   "next_probe_in_s" | null (open and not forced), "last_change_age_s" | null } ],
 *   "threads": [ { "name", "region", "role", "tid", "cpu" (-1: not pinned), "numa_node",
 *                  "heartbeat_age_ms" | null, "busy_pct" | null, "cpu_pct" | null, "allocated_bytes" } ],
 *   "other_regions": [ { "name", "kind", "size", "owner" } ]
 * }
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dbi/clock.h"
#include "dbistat.h"

struct jw {
	FILE *f;
	int pretty;
	int depth;
	int first; /* nothing written yet at this depth */
};

static void jw_indent(struct jw *w)
{
	if (!w->pretty)
		return;
	fputc('\n', w->f);
	for (int i = 0; i < w->depth; i++)
		fputs("  ", w->f);
}

static void jw_string(struct jw *w, const char *s, size_t max)
{
	fputc('"', w->f);
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(w->f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fputs("?", w->f); /* names from another process: keep the output valid UTF-8 */
		else
			fputc(c, w->f);
	}
	fputc('"', w->f);
}

/* Comma, newline and the key (if any) before a value. */
static void jw_key(struct jw *w, const char *key)
{
	if (!w->first)
		fputc(',', w->f);
	w->first = 0;
	if (w->depth > 0)
		jw_indent(w);
	if (key) {
		jw_string(w, key, SIZE_MAX);
		fputs(w->pretty ? ": " : ":", w->f);
	}
}

static void jw_open(struct jw *w, const char *key, char c)
{
	jw_key(w, key);
	fputc(c, w->f);
	w->depth++;
	w->first = 1;
}

static void jw_close(struct jw *w, char c)
{
	w->depth--;
	if (!w->first)
		jw_indent(w);
	fputc(c, w->f);
	w->first = 0;
}

static void jw_str(struct jw *w, const char *key, const char *v, size_t max)
{
	jw_key(w, key);
	jw_string(w, v, max);
}

static void jw_u64(struct jw *w, const char *key, uint64_t v)
{
	jw_key(w, key);
	fprintf(w->f, "%llu", (unsigned long long)v);
}

static void jw_i64(struct jw *w, const char *key, int64_t v)
{
	jw_key(w, key);
	fprintf(w->f, "%lld", (long long)v);
}

static void jw_num(struct jw *w, const char *key, double v)
{
	jw_key(w, key);
	if (isnan(v) || isinf(v))
		fputs("null", w->f);
	else
		fprintf(w->f, "%.3f", v);
}

static void jw_bool(struct jw *w, const char *key, int v)
{
	jw_key(w, key);
	fputs(v ? "true" : "false", w->f);
}

static double pct(double part, double whole)
{
	return whole > 0 ? 100.0 * part / whole : 0;
}

static const char *role_name(uint32_t role)
{
	static const char *const n[] = {"runtime", "receiver", "processor", "exporter", "extension"};
	return role < sizeof(n) / sizeof(n[0]) ? n[role] : "?";
}

static void rings(struct jw *w, const struct st_view *v, double dt)
{
	const struct st_sample *c = v->cur;
	jw_open(w, "rings", '[');
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		if (r->d.kind != DBI_REGION_RING || !r->valid)
			continue;
		const struct st_region *p = st_match(v->prev, c, i);
		const struct st_ring *g = &r->u.ring;
		uint64_t depth = DBI_MIN(g->head - g->tail, g->capacity);
		jw_open(w, NULL, '{');
		jw_str(w, "name", r->d.name, sizeof(r->d.name));
		jw_str(w, "producer", r->d.owner, sizeof(r->d.owner));
		jw_str(w, "consumer", r->d.peer, sizeof(r->d.peer));
		jw_u64(w, "capacity", g->capacity);
		jw_u64(w, "slot_size", g->slot_size);
		jw_u64(w, "depth", depth);
		jw_num(w, "fill_pct", pct((double)depth, (double)g->capacity));
		jw_u64(w, "in_total", g->head);
		jw_u64(w, "out_total", g->tail);
		jw_num(w, "in_per_s", p ? st_rate(g->head, p->u.ring.head, dt) : NAN);
		jw_num(w, "out_per_s", p ? st_rate(g->tail, p->u.ring.tail, dt) : NAN);
		jw_u64(w, "full_events", g->full_events);
		jw_num(w, "full_per_s", p ? st_rate(g->full_events, p->u.ring.full_events, dt) : NAN);
		jw_close(w, '}');
	}
	jw_close(w, ']');
}

static void brings(struct jw *w, const struct st_view *v, double dt)
{
	const struct st_sample *c = v->cur;
	jw_open(w, "byte_rings", '[');
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		if (r->d.kind != DBI_REGION_BRING || !r->valid)
			continue;
		const struct st_region *p = st_match(v->prev, c, i);
		const struct st_bring *g = &r->u.bring;
		uint64_t used = DBI_MIN(g->head - g->tail, g->size);
		jw_open(w, NULL, '{');
		jw_str(w, "name", r->d.name, sizeof(r->d.name));
		jw_str(w, "producer", r->d.owner, sizeof(r->d.owner));
		jw_str(w, "consumer", r->d.peer, sizeof(r->d.peer));
		jw_u64(w, "size", g->size);
		jw_u64(w, "used", used);
		jw_num(w, "fill_pct", pct((double)used, (double)g->size));
		jw_u64(w, "records_in", g->records_in);
		jw_u64(w, "records_out", g->records_out);
		jw_num(w, "in_per_s", p ? st_rate(g->records_in, p->u.bring.records_in, dt) : NAN);
		jw_num(w, "out_per_s", p ? st_rate(g->records_out, p->u.bring.records_out, dt) : NAN);
		jw_u64(w, "full_events", g->full_events);
		jw_close(w, '}');
	}
	jw_close(w, ']');
}

static void stats(struct jw *w, const struct st_view *v, double dt)
{
	const struct st_sample *c = v->cur;
	jw_open(w, "stats", '{');
	for (uint32_t kind = DBI_SK_RECEIVER; kind <= DBI_SK_RUNTIME; kind++) {
		jw_open(w, dbi_stats_kind_name((enum dbi_stats_kind)kind), '[');
		for (uint32_t i = 0; i < c->n; i++) {
			const struct st_region *r = &c->r[i];
			const struct dbi_stats_block *b = &r->u.stats;
			if (r->d.kind != DBI_REGION_STATS || !r->valid || b->kind != kind)
				continue;
			const struct st_region *p = st_match(v->prev, c, i);
			jw_open(w, NULL, '{');
			jw_str(w, "id", b->id, sizeof(b->id));
			jw_str(w, "type", b->type, sizeof(b->type));
			jw_str(w, "region", r->d.name, sizeof(r->d.name));
			jw_u64(w, "updated_age_ms",
			       b->updated_ns && c->wall_ns > b->updated_ns ? (c->wall_ns - b->updated_ns) / 1000000
			                                                   : 0);
			jw_open(w, "counters", '{');
			for (uint32_t k = 0; k < b->n; k++) {
				char name[DBI_STAT_NAME];
				st_clean(b->names[k], sizeof(b->names[k]), name, sizeof(name));
				jw_open(w, name, '{');
				if (b->types[k] == DBI_STAT_GAUGE) {
					jw_str(w, "type", "gauge", SIZE_MAX);
					jw_u64(w, "value", b->v[k]);
				} else {
					jw_str(w, "type", "counter", SIZE_MAX);
					jw_u64(w, "value", b->v[k]);
					jw_num(w, "per_s",
					       p && k < p->u.stats.n ? st_rate(b->v[k], p->u.stats.v[k], dt) : NAN);
				}
				jw_close(w, '}');
			}
			jw_close(w, '}');
			jw_close(w, '}');
		}
		jw_close(w, ']');
	}
	jw_close(w, '}');
}

static void threads(struct jw *w, const struct st_view *v, double dt)
{
	const struct st_sample *c = v->cur;
	jw_open(w, "threads", '[');
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		if (r->d.kind != DBI_REGION_THREAD || !r->valid)
			continue;
		const struct st_region *p = st_match(v->prev, c, i);
		const struct st_thread *t = &r->u.thread;
		jw_open(w, NULL, '{');
		jw_str(w, "name", t->name[0] ? t->name : r->d.name, sizeof(t->name));
		jw_str(w, "region", r->d.name, sizeof(r->d.name));
		jw_str(w, "role", role_name(t->role), SIZE_MAX);
		jw_i64(w, "tid", t->tid);
		jw_i64(w, "cpu", t->cpu);
		jw_i64(w, "numa_node", t->numa_node);
		jw_num(w, "heartbeat_age_ms",
		       t->heartbeat_mono_ns
		               ? (c->mono_ns > t->heartbeat_mono_ns ? (double)(c->mono_ns - t->heartbeat_mono_ns) / 1e6
		                                                    : 0)
		               : NAN);
		jw_num(w, "busy_pct", p ? st_rate(t->busy_ns, p->u.thread.busy_ns, dt) / 1e7 : NAN);
		jw_num(w, "cpu_pct", p ? st_rate(t->cpu_ns, p->u.thread.cpu_ns, dt) / 1e7 : NAN);
		jw_u64(w, "allocated_bytes", t->allocated_bytes);
		jw_close(w, '}');
	}
	jw_close(w, ']');
}

static void circuits(struct jw *w, const struct st_view *v)
{
	const struct st_sample *c = v->cur;
	jw_open(w, "circuits", '[');
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		if (r->d.kind != DBI_REGION_CIRCUIT || !r->valid)
			continue;
		for (uint32_t k = 0; k < r->ncirc; k++) {
			const struct dbi_circuit_view *cv = &r->circ[k];
			int probing = cv->state == DBI_CIRCUIT_OPEN && cv->override_active != DBI_CIRCUIT_FORCE_OPEN;
			jw_open(w, NULL, '{');
			jw_str(w, "receiver", r->circ_owner, sizeof(r->circ_owner));
			jw_str(w, "region", r->d.name, sizeof(r->d.name));
			jw_str(w, "target", cv->target, sizeof(cv->target));
			jw_str(w, "state", dbi_circuit_state_name(cv->state), SIZE_MAX);
			jw_str(w, "override", dbi_circuit_override_name(cv->override), SIZE_MAX);
			jw_str(w, "override_active", dbi_circuit_override_name(cv->override_active), SIZE_MAX);
			jw_bool(w, "reset_pending", cv->reset_pending);
			jw_u64(w, "failures", cv->failures);
			jw_u64(w, "successes", cv->successes);
			jw_u64(w, "denied", cv->denied);
			jw_u64(w, "transitions", cv->transitions);
			jw_u64(w, "window_failures", cv->window_failures);
			jw_u64(w, "window_calls", cv->window_calls);
			jw_num(w, "backoff_s", (double)cv->backoff_ns / 1e9);
			jw_num(w, "next_probe_in_s",
			       !probing ? NAN
			       : cv->open_until_wall_ns > c->wall_ns
			               ? (double)(cv->open_until_wall_ns - c->wall_ns) / 1e9
			               : 0.0);
			jw_num(w, "last_change_age_s",
			       cv->last_change_wall_ns && c->wall_ns > cv->last_change_wall_ns
			               ? (double)(c->wall_ns - cv->last_change_wall_ns) / 1e9
			               : NAN);
			jw_close(w, '}');
		}
	}
	jw_close(w, ']');
}

static void others(struct jw *w, const struct st_view *v)
{
	const struct st_sample *c = v->cur;
	jw_open(w, "other_regions", '[');
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		uint32_t k = r->d.kind;
		int known = k == DBI_REGION_RING || k == DBI_REGION_BRING || k == DBI_REGION_THREAD ||
		            k == DBI_REGION_CIRCUIT;
		int stats_ok = k == DBI_REGION_STATS && r->valid && r->u.stats.kind >= DBI_SK_RECEIVER &&
		               r->u.stats.kind <= DBI_SK_RUNTIME;
		if ((known && r->valid) || stats_ok)
			continue;
		/* name, kind, size and owner only: a blob's bytes are never printed */
		jw_open(w, NULL, '{');
		jw_str(w, "name", r->d.name, sizeof(r->d.name));
		jw_str(w, "kind", dbi_region_kind_name((enum dbi_region_kind)k), SIZE_MAX);
		jw_u64(w, "size", r->d.size);
		jw_str(w, "owner", r->d.owner, sizeof(r->d.owner));
		jw_close(w, '}');
	}
	jw_close(w, ']');
}

void st_render_json(FILE *f, const struct st_view *v, int pretty)
{
	const struct st_sample *c = v->cur;
	struct jw w = {.f = f, .pretty = pretty, .first = 1};
	double dt = v->prev ? (double)(c->mono_ns - v->prev->mono_ns) / 1e9 : 0;
	char t[40];

	jw_open(&w, NULL, '{');
	jw_str(&w, "instance", c->instance, sizeof(c->instance));
	jw_str(&w, "segment", c->path, sizeof(c->path));
	jw_str(&w, "collector_version", c->collector_version, sizeof(c->collector_version));
	jw_i64(&w, "pid", c->pid);
	jw_bool(&w, "alive", c->alive);
	jw_str(&w, "state", dbi_run_state_name((enum dbi_run_state)c->state), SIZE_MAX);
	jw_str(&w, "page_mode", dbi_page_mode_name((enum dbi_page_mode)c->page_mode), SIZE_MAX);
	jw_str(&w, "start_time", dbi_fmt_time(c->start_wall_ns, t, sizeof(t)), sizeof(t));
	jw_num(&w, "uptime_s", c->wall_ns > c->start_wall_ns ? (double)(c->wall_ns - c->start_wall_ns) / 1e9 : 0);
	jw_u64(&w, "heartbeat_age_ms",
	       c->wall_ns > c->heartbeat_wall_ns ? (c->wall_ns - c->heartbeat_wall_ns) / 1000000 : 0);
	jw_u64(&w, "segment_size", c->size);
	jw_u64(&w, "segment_used", c->used);
	jw_u64(&w, "generation", c->generation);
	jw_u64(&w, "regions", c->n);
	jw_str(&w, "sample_time", dbi_fmt_time(c->wall_ns, t, sizeof(t)), sizeof(t));
	jw_num(&w, "interval_s", v->prev ? dt : NAN);
	if (v->notice)
		jw_str(&w, "notice", v->notice, SIZE_MAX);
	rings(&w, v, dt);
	brings(&w, v, dt);
	stats(&w, v, dt);
	circuits(&w, v);
	threads(&w, v, dt);
	others(&w, v);
	jw_close(&w, '}');
	fputc('\n', f);
}
