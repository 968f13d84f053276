/*
 * text.c — dbi-stat's human view: a header about the collector and segment, then one
 * table per kind of region (rings, byte rings, circuit breakers, threads) and the
 * counter blocks grouped by component kind. Counters get a per-second rate from the previous sample; gauges
 * are shown as values. Big numbers are abbreviated (K/M/G, KiB/MiB/GiB).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dbi/clock.h"
#include "dbistat.h"

#define MIN_NAMEW 20

static const char *fmt_count(uint64_t v, char *buf, size_t len)
{
	if (v < 100000)
		snprintf(buf, len, "%llu", (unsigned long long)v);
	else if (v < 100000000ULL)
		snprintf(buf, len, "%.1fK", (double)v / 1e3);
	else if (v < 100000000000ULL)
		snprintf(buf, len, "%.1fM", (double)v / 1e6);
	else
		snprintf(buf, len, "%.1fG", (double)v / 1e9);
	return buf;
}

static const char *fmt_rate(double r, char *buf, size_t len)
{
	if (isnan(r))
		snprintf(buf, len, "-");
	else if (r < 1000)
		snprintf(buf, len, "%.1f", r);
	else if (r < 1e6)
		snprintf(buf, len, "%.1fK", r / 1e3);
	else if (r < 1e9)
		snprintf(buf, len, "%.2fM", r / 1e6);
	else
		snprintf(buf, len, "%.2fG", r / 1e9);
	return buf;
}

static const char *fmt_bytes(uint64_t v, char *buf, size_t len)
{
	if (v < 1024)
		snprintf(buf, len, "%llu B", (unsigned long long)v);
	else if (v < (1ULL << 20))
		snprintf(buf, len, "%.1f KiB", (double)v / 1024);
	else if (v < (1ULL << 30))
		snprintf(buf, len, "%.1f MiB", (double)v / (1 << 20));
	else
		snprintf(buf, len, "%.1f GiB", (double)v / (1ULL << 30));
	return buf;
}

static const char *fmt_age(uint64_t ns, char *buf, size_t len)
{
	uint64_t s = ns / DBI_NSEC_PER_SEC;
	if (ns < DBI_NSEC_PER_MSEC)
		snprintf(buf, len, "<1ms");
	else if (ns < DBI_NSEC_PER_SEC)
		snprintf(buf, len, "%llums", (unsigned long long)(ns / DBI_NSEC_PER_MSEC));
	else if (s < 60)
		snprintf(buf, len, "%.1fs", (double)ns / 1e9);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%lluh%02llum", (unsigned long long)(s / 3600), (unsigned long long)(s / 60 % 60));
	else
		snprintf(buf, len, "%llud%02lluh", (unsigned long long)(s / 86400),
		         (unsigned long long)(s / 3600 % 24));
	return buf;
}

static uint64_t age(uint64_t now, uint64_t then)
{
	return then && now > then ? now - then : 0;
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

static double dt_of(const struct st_view *v)
{
	return v->prev ? (double)(v->cur->mono_ns - v->prev->mono_ns) / 1e9 : 0;
}

/* Column widths that fit the longest name of a table, so nothing is cut or misaligned. */
static int name_width(const struct st_sample *c, uint32_t kind)
{
	size_t w = MIN_NAMEW;
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		const char *n =
		        kind == DBI_REGION_THREAD && r->valid && r->u.thread.name[0] ? r->u.thread.name : r->d.name;
		if (kind == 0 || r->d.kind == kind)
			w = DBI_MAX(w, strnlen(n, DBI_SHM_REGION_NAME));
	}
	return (int)w;
}

static int link_width(const struct st_sample *c, uint32_t kind)
{
	size_t w = 20;
	for (uint32_t i = 0; i < c->n; i++)
		if (c->r[i].d.kind == kind)
			w = DBI_MAX(w, strnlen(c->r[i].d.owner, DBI_SHM_REGION_NAME) +
			                       strnlen(c->r[i].d.peer, DBI_SHM_REGION_NAME) + 4);
	return (int)w;
}

static void header(FILE *f, const struct st_view *v)
{
	const struct st_sample *c = v->cur;
	char a[32], b[32], t[40], u[32];
	dbi_fmt_time(c->wall_ns, t, sizeof(t));
	fprintf(f, "dbi-stat  instance %s  segment %s  %s\n", c->instance, c->path, t);
	fprintf(f, "collector %s  pid %d  up %s  state %s  pages %s  heartbeat %s ago%s\n", c->collector_version,
	        c->pid, fmt_age(age(c->wall_ns, c->start_wall_ns), a, sizeof(a)),
	        dbi_run_state_name((enum dbi_run_state)c->state), dbi_page_mode_name((enum dbi_page_mode)c->page_mode),
	        fmt_age(age(c->wall_ns, c->heartbeat_wall_ns), b, sizeof(b)),
	        c->alive ? "" : "  (COLLECTOR NOT RUNNING: stale segment)");
	fprintf(f, "segment %s, %s used (%.1f%%)  regions %u  generation %llu", fmt_bytes(c->size, a, sizeof(a)),
	        fmt_bytes(c->used, u, sizeof(u)), pct((double)c->used, (double)c->size), c->n,
	        (unsigned long long)c->generation);
	if (v->prev)
		fprintf(f, "  rates over %.2fs", dt_of(v));
	fputc('\n', f);
	if (c->dir_unstable)
		fprintf(f, "! the region directory kept changing while being read (reload in progress)\n");
	if (v->notice)
		fprintf(f, "! %s\n", v->notice);
}

static void rings(FILE *f, const struct st_view *v)
{
	const struct st_sample *c = v->cur;
	double dt = dt_of(v);
	char nm[64], ow[64], pe[64], n1[32], n2[32], r1[32], r2[32], r3[32];
	int shown = 0, nw = name_width(c, DBI_REGION_RING), lw = link_width(c, DBI_REGION_RING);
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		if (r->d.kind != DBI_REGION_RING || !r->valid)
			continue;
		if (!shown++)
			fprintf(f, "\n%-*s %-*s %9s %9s %6s %9s %9s %9s %8s\n", nw + 2, "RINGS", lw,
			        "producer -> consumer", "capacity", "depth", "fill", "in/s", "out/s", "full", "full/s");
		const struct st_region *p = st_match(v->prev, c, i);
		const struct st_ring *g = &r->u.ring;
		uint64_t depth = DBI_MIN(g->head - g->tail, g->capacity);
		char pc[140];
		snprintf(pc, sizeof(pc), "%s -> %s", st_clean(r->d.owner, sizeof(r->d.owner), ow, sizeof(ow)),
		         st_clean(r->d.peer, sizeof(r->d.peer), pe, sizeof(pe)));
		fprintf(f, "  %-*s %-*s %9s %9s %5.1f%% %9s %9s %9llu %8s\n", nw,
		        st_clean(r->d.name, sizeof(r->d.name), nm, sizeof(nm)), lw, pc,
		        fmt_count(g->capacity, n1, sizeof(n1)), fmt_count(depth, n2, sizeof(n2)),
		        pct((double)depth, (double)g->capacity),
		        fmt_rate(p ? st_rate(g->head, p->u.ring.head, dt) : NAN, r1, sizeof(r1)),
		        fmt_rate(p ? st_rate(g->tail, p->u.ring.tail, dt) : NAN, r2, sizeof(r2)),
		        (unsigned long long)g->full_events,
		        fmt_rate(p ? st_rate(g->full_events, p->u.ring.full_events, dt) : NAN, r3, sizeof(r3)));
	}
}

static void brings(FILE *f, const struct st_view *v)
{
	const struct st_sample *c = v->cur;
	double dt = dt_of(v);
	char nm[64], ow[64], pe[64], n1[32], n2[32], r1[32], r2[32];
	int shown = 0, nw = name_width(c, DBI_REGION_BRING), lw = link_width(c, DBI_REGION_BRING);
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		if (r->d.kind != DBI_REGION_BRING || !r->valid)
			continue;
		if (!shown++)
			fprintf(f, "\n%-*s %-*s %10s %10s %6s %9s %9s %9s\n", nw + 2, "BYTE RINGS", lw,
			        "producer -> consumer", "size", "used", "fill", "rec in/s", "rec out/s", "full");
		const struct st_region *p = st_match(v->prev, c, i);
		const struct st_bring *g = &r->u.bring;
		uint64_t used = DBI_MIN(g->head - g->tail, g->size);
		char pc[140];
		snprintf(pc, sizeof(pc), "%s -> %s", st_clean(r->d.owner, sizeof(r->d.owner), ow, sizeof(ow)),
		         st_clean(r->d.peer, sizeof(r->d.peer), pe, sizeof(pe)));
		fprintf(f, "  %-*s %-*s %10s %10s %5.1f%% %9s %9s %9llu\n", nw,
		        st_clean(r->d.name, sizeof(r->d.name), nm, sizeof(nm)), lw, pc,
		        fmt_bytes(g->size, n1, sizeof(n1)), fmt_bytes(used, n2, sizeof(n2)),
		        pct((double)used, (double)g->size),
		        fmt_rate(p ? st_rate(g->records_in, p->u.bring.records_in, dt) : NAN, r1, sizeof(r1)),
		        fmt_rate(p ? st_rate(g->records_out, p->u.bring.records_out, dt) : NAN, r2, sizeof(r2)),
		        (unsigned long long)g->full_events);
	}
}

static void threads(FILE *f, const struct st_view *v)
{
	const struct st_sample *c = v->cur;
	double dt = dt_of(v);
	char nm[64], a[32], b[32], cpu[16];
	int shown = 0, nw = name_width(c, DBI_REGION_THREAD);
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		if (r->d.kind != DBI_REGION_THREAD || !r->valid)
			continue;
		if (!shown++)
			fprintf(f, "\n%-*s %-10s %8s %4s %10s %7s %7s %12s\n", nw + 2, "THREADS", "role", "tid", "cpu",
			        "heartbeat", "busy%", "cpu%", "allocated");
		const struct st_region *p = st_match(v->prev, c, i);
		const struct st_thread *t = &r->u.thread;
		double busy = p ? st_rate(t->busy_ns, p->u.thread.busy_ns, dt) / 1e7 : NAN;
		double cpup = p ? st_rate(t->cpu_ns, p->u.thread.cpu_ns, dt) / 1e7 : NAN;
		if (t->cpu >= 0)
			snprintf(cpu, sizeof(cpu), "%d", t->cpu);
		else
			snprintf(cpu, sizeof(cpu), "-");
		fprintf(f, "  %-*s %-10s %8d %4s %10s ", nw,
		        st_clean(t->name[0] ? t->name : r->d.name, sizeof(r->d.name), nm, sizeof(nm)),
		        role_name(t->role), t->tid, cpu,
		        t->heartbeat_mono_ns ? fmt_age(age(c->mono_ns, t->heartbeat_mono_ns), a, sizeof(a)) : "never");
		if (isnan(busy))
			fprintf(f, "%7s ", "-");
		else
			fprintf(f, "%7.1f ", busy);
		if (isnan(cpup))
			fprintf(f, "%7s ", "-");
		else
			fprintf(f, "%7.1f ", cpup);
		fprintf(f, "%12s\n", fmt_bytes(t->allocated_bytes, b, sizeof(b)));
	}
}

static void stats_group(FILE *f, const struct st_view *v, uint32_t kind, const char *title)
{
	const struct st_sample *c = v->cur;
	double dt = dt_of(v);
	char id[96], ty[40], nm[48], a[32], r1[32];
	int shown = 0;
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		const struct dbi_stats_block *b = &r->u.stats;
		if (r->d.kind != DBI_REGION_STATS || !r->valid || b->kind != kind)
			continue;
		if (!shown++)
			fprintf(f, "\n%s\n", title);
		const struct st_region *p = st_match(v->prev, c, i);
		fprintf(f, "  %s (%s)  updated %s ago\n", st_clean(b->id, sizeof(b->id), id, sizeof(id)),
		        st_clean(b->type, sizeof(b->type), ty, sizeof(ty)),
		        fmt_age(age(c->wall_ns, b->updated_ns), a, sizeof(a)));
		for (uint32_t k = 0; k < b->n; k++) {
			st_clean(b->names[k], sizeof(b->names[k]), nm, sizeof(nm));
			if (b->types[k] == DBI_STAT_GAUGE) {
				fprintf(f, "    %-36s %16llu  (gauge)\n", nm, (unsigned long long)b->v[k]);
				continue;
			}
			double rate = p && k < p->u.stats.n ? st_rate(b->v[k], p->u.stats.v[k], dt) : NAN;
			fprintf(f, "    %-36s %16llu  %10s/s\n", nm, (unsigned long long)b->v[k],
			        fmt_rate(rate, r1, sizeof(r1)));
		}
	}
}

/* Every circuit of every receiver: state, override, failures, transitions, time to the next probe. */
static void circuits(FILE *f, const struct st_view *v)
{
	const struct st_sample *c = v->cur;
	char a[32], ov[48];
	int shown = 0, tw = MIN_NAMEW, ow = 10;
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		if (r->d.kind != DBI_REGION_CIRCUIT || !r->valid)
			continue;
		ow = DBI_MAX(ow, (int)strlen(r->circ_owner));
		for (uint32_t k = 0; k < r->ncirc; k++)
			tw = DBI_MAX(tw, (int)strlen(r->circ[k].target));
	}
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		if (r->d.kind != DBI_REGION_CIRCUIT || !r->valid)
			continue;
		for (uint32_t k = 0; k < r->ncirc; k++) {
			const struct dbi_circuit_view *cv = &r->circ[k];
			if (!shown++)
				fprintf(f, "\n%-*s %-*s %-9s %-22s %9s %11s  %s\n", tw + 2, "CIRCUITS", ow, "receiver",
				        "state", "override", "failures", "transitions", "next probe in");
			/* an override the scraper has not applied yet is marked pending */
			snprintf(ov, sizeof(ov), "%s%s", dbi_circuit_override_name(cv->override),
			         cv->override != cv->override_active || cv->reset_pending ? " (pending)" : "");
			const char *probe = "-";
			if (cv->state == DBI_CIRCUIT_OPEN && cv->override_active == DBI_CIRCUIT_FORCE_OPEN)
				probe = "never (forced)";
			else if (cv->state == DBI_CIRCUIT_OPEN)
				probe = cv->open_until_wall_ns > c->wall_ns
				                ? fmt_age(cv->open_until_wall_ns - c->wall_ns, a, sizeof(a))
				                : "due";
			fprintf(f, "  %-*s %-*s %-9s %-22s %9llu %11llu  %s\n", tw, cv->target, ow, r->circ_owner,
			        dbi_circuit_state_name(cv->state), ov, (unsigned long long)cv->failures,
			        (unsigned long long)cv->transitions, probe);
		}
	}
}

static void others(FILE *f, const struct st_view *v)
{
	const struct st_sample *c = v->cur;
	char nm[64], ow[64], a[32];
	int shown = 0, nw = name_width(c, 0);
	for (uint32_t i = 0; i < c->n; i++) {
		const struct st_region *r = &c->r[i];
		uint32_t k = r->d.kind;
		int known = k == DBI_REGION_RING || k == DBI_REGION_BRING || k == DBI_REGION_THREAD ||
		            k == DBI_REGION_CIRCUIT;
		int stats_ok = k == DBI_REGION_STATS && r->valid && r->u.stats.kind >= DBI_SK_RECEIVER &&
		               r->u.stats.kind <= DBI_SK_RUNTIME;
		if ((known && r->valid) || stats_ok)
			continue;
		if (!shown++)
			fprintf(f, "\n%-*s %-10s %12s  %s\n", nw + 2, "OTHER REGIONS", "kind", "size", "owner");
		/* contents are never shown: blobs may hold anything */
		fprintf(f, "  %-*s %-10s %12s  %s%s\n", nw, st_clean(r->d.name, sizeof(r->d.name), nm, sizeof(nm)),
		        dbi_region_kind_name((enum dbi_region_kind)k), fmt_bytes(r->d.size, a, sizeof(a)),
		        st_clean(r->d.owner, sizeof(r->d.owner), ow, sizeof(ow)),
		        known || k == DBI_REGION_STATS ? "  (unreadable)" : "");
	}
}

void st_render_text(FILE *f, const struct st_view *v)
{
	header(f, v);
	rings(f, v);
	brings(f, v);
	for (uint32_t k = DBI_SK_RECEIVER; k <= DBI_SK_RUNTIME; k++) {
		char title[32];
		const char *n = dbi_stats_kind_name((enum dbi_stats_kind)k);
		size_t i = 0;
		for (; n[i] && i + 1 < sizeof(title); i++)
			title[i] = (char)(n[i] >= 'a' && n[i] <= 'z' ? n[i] - 'a' + 'A' : n[i]);
		title[i] = '\0';
		if (k == DBI_SK_THREAD)
			snprintf(title, sizeof(title), "THREAD COUNTERS");
		stats_group(f, v, k, title);
	}
	circuits(f, v);
	threads(f, v);
	others(f, v);
}
