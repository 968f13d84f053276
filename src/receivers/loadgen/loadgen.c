/*
 * loadgen.c — the `loadgen` receiver: a simulated fleet of `targets` servers with
 * `series_per_target` series each, emitted at a fixed `rate` (points/s; 0 = as fast as
 * the pipeline takes them). It drives benchmarks, soak tests and the demo. Every point
 * carries a per-thread sequence number so tests can count what went in and what came
 * out; each series is a cumulative counter that grows by one per emission, so a
 * downstream delta conversion can be checked too.
 *
 * `circuit_test` (testing only) gives every simulated target a circuit breaker, as the
 * PostgreSQL receiver does, so the admin API, dbi-stat, the state file and the
 * dbi.circuit.* metrics can be tested against the real collector without a database:
 * every `interval` each target makes one call, which fails when the target is listed in
 * `fail_file` (re-read every interval). The points stream is not affected.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/circuit.h"
#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/log.h"
#include "dbi/registry.h"
#include "dbi/stats.h"
#include "dbi/runtime.h"

struct loadgen_cfg {
	int64_t targets;
	int64_t series_per_target;
	int64_t rate;
	int64_t max_points;
	int64_t threads;
	int on_full; /* wait|drop */
	uint64_t burst_interval;
	char *metric_name;
	/* circuit_test: testing only */
	bool ct_enabled;
	uint64_t ct_interval;
	char *ct_fail_file;
	int ct_fail_result; /* enum dbi_circuit_result - 1 */
	struct dbi_circuit_conf ct_breaker;
};

enum { LG_ON_FULL_WAIT = 0, LG_ON_FULL_DROP = 1 };

static const struct dbi_conf_key loadgen_keys[] = {
        {.name = "targets",
         .type = DBI_CT_INT,
         .offset = offsetof(struct loadgen_cfg, targets),
         .def = "10",
         .doc = "simulated servers (one resource each)",
         .min = 1,
         .max = 1000000},
        {.name = "series_per_target",
         .type = DBI_CT_INT,
         .offset = offsetof(struct loadgen_cfg, series_per_target),
         .def = "100",
         .doc = "series per simulated server",
         .min = 1,
         .max = 1000000},
        {.name = "rate",
         .type = DBI_CT_INT,
         .offset = offsetof(struct loadgen_cfg, rate),
         .def = "10000",
         .doc = "points per second over all threads; 0 = as fast as the pipeline accepts",
         .min = 0,
         .max = 1e10},
        {.name = "max_points",
         .type = DBI_CT_INT,
         .offset = offsetof(struct loadgen_cfg, max_points),
         .def = "0",
         .doc = "stop after emitting this many points (per thread); 0 = never",
         .min = 0,
         .max = 1e15},
        {.name = "threads",
         .type = DBI_CT_INT,
         .offset = offsetof(struct loadgen_cfg, threads),
         .def = "1",
         .doc = "producer threads",
         .min = 1,
         .max = 64},
        {.name = "on_full",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct loadgen_cfg, on_full),
         .def = "wait",
         .choices = "wait|drop",
         .doc = "when the pipeline is full: wait for room, or drop and count"},
        {.name = "burst_interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct loadgen_cfg, burst_interval),
         .def = "1ms",
         .doc = "pacing granularity at a fixed rate"},
        {.name = "metric_name",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct loadgen_cfg, metric_name),
         .def = "loadgen.counter",
         .doc = "name of the emitted metric"},
        {.name = "circuit_test.enabled",
         .type = DBI_CT_BOOL,
         .offset = offsetof(struct loadgen_cfg, ct_enabled),
         .def = "false",
         .doc = "testing only: a circuit breaker per simulated target, driven by circuit_test.fail_file"},
        {.name = "circuit_test.interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct loadgen_cfg, ct_interval),
         .def = "100ms",
         .min = 0.001,
         .max = 3600,
         .doc = "testing only: one simulated scrape per target this often"},
        {.name = "circuit_test.fail_file",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct loadgen_cfg, ct_fail_file),
         .def = "",
         .doc = "testing only: targets (host:port, one a line) whose scrapes fail; re-read every interval"},
        {.name = "circuit_test.fail_result",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct loadgen_cfg, ct_fail_result),
         .def = "refused",
         .choices = "fail|timeout|refused",
         .doc = "testing only: how a listed target's scrapes fail"},
        DBI_CIRCUIT_CONF_KEYS("circuit_test.circuit_breaker.", offsetof(struct loadgen_cfg, ct_breaker)),
        DBI_CONF_END,
};

enum { LG_EMITTED, LG_DROP_FULL, LG_WAITS, LG_BACKOFF, LG_NSTATS };
static const struct dbi_stat_def loadgen_stats[] = {
        [LG_EMITTED] = {"emitted", DBI_STAT_COUNTER, "points emitted into the pipeline"},
        [LG_DROP_FULL] = {"dropped.ring_full", DBI_STAT_COUNTER, "points dropped: pipeline full (on_full: drop)"},
        [LG_WAITS] = {"backpressure_waits", DBI_STAT_COUNTER, "waits for room in the pipeline"},
        [LG_BACKOFF] = {"memory_backoffs", DBI_STAT_COUNTER, "pauses because the memory limiter asked"},
        [LG_NSTATS] = {NULL, 0, NULL},
};

struct loadgen {
	const struct loadgen_cfg *cfg;
	uint32_t *series; /* targets * series_per_target */
	uint64_t *routes; /* routing hash per series */
	uint64_t nseries;
	uint64_t start_wall;
	/* circuit_test */
	struct dbi_circuit_table *circuits;
	struct dbi_circuit **circuit; /* per target */
	struct dbi_circuit_series *cseries;
};

static int loadgen_validate(const void *cfg, const char *id, struct dbi_errbuf *err)
{
	const struct loadgen_cfg *c = cfg;
	char where[128];
	if (!c->ct_enabled)
		return DBI_OK;
	snprintf(where, sizeof(where), "%s: circuit_test.circuit_breaker", id);
	if (c->targets > 100000) {
		dbi_err_add(err, "%s: circuit_test supports at most 100000 targets", id);
		return DBI_ERR;
	}
	return dbi_circuit_conf_check(&c->ct_breaker, where, err);
}

static uint64_t loadgen_shm_bytes(const void *cfg)
{
	const struct loadgen_cfg *c = cfg;
	return c->ct_enabled ? dbi_circuit_table_shm_bytes((uint32_t)c->targets) : 0;
}

static void target_name(int64_t t, char *buf, size_t len)
{
	snprintf(buf, len, "loadgen-%lld:5432", (long long)t);
}

/* circuit_test: the table, its state file, a circuit and three series per target. */
static int circuits_create(struct loadgen *lg, const struct dbi_inst *inst, const uint32_t *resources, uint32_t scope,
                           struct dbi_errbuf *err)
{
	const struct loadgen_cfg *cfg = lg->cfg;
	char path[PATH_MAX], name[64];
	if (dbi_circuit_state_path(inst->rt, inst->id, path, sizeof(path), err) != DBI_OK)
		return DBI_ERR;
	if (dbi_circuit_table_create(&lg->circuits, inst->rt, inst->id, (uint32_t)cfg->targets, &cfg->ct_breaker, path,
	                             err) != DBI_OK)
		return DBI_ERR;
	lg->circuit = calloc((size_t)cfg->targets, sizeof(*lg->circuit));
	lg->cseries = calloc((size_t)cfg->targets, sizeof(*lg->cseries));
	if (!lg->circuit || !lg->cseries) {
		dbi_err_add(err, "%s: out of memory", inst->id);
		return DBI_ERR;
	}
	for (int64_t t = 0; t < cfg->targets; t++) {
		target_name(t, name, sizeof(name));
		lg->circuit[t] = dbi_circuit_get(lg->circuits, name);
		if (!lg->circuit[t] ||
		    dbi_circuit_series_intern(inst->reg, resources[t], scope, name, &lg->cseries[t]) != DBI_OK) {
			dbi_err_add(err, "%s: cannot set up the circuit of %s", inst->id, name);
			return DBI_ERR;
		}
	}
	/* after the gets: saved states go to their circuits, stale entries stay out */
	dbi_circuit_table_load(lg->circuits, dbi_wall_ns());
	return DBI_OK;
}

static void circuits_free(struct loadgen *lg)
{
	dbi_circuit_table_destroy(lg->circuits);
	free(lg->circuit);
	free(lg->cseries);
}

/* Is target listed in the fail file? The file is small: read it whole each interval. */
static int read_fail_file(const char *path, char *buf, size_t len)
{
	buf[0] = '\0';
	if (!path || !*path)
		return 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf + 1, 1, len - 3, f);
	fclose(f);
	buf[0] = '\n'; /* every name is found as "\nname\n" */
	buf[n + 1] = '\n';
	buf[n + 2] = '\0';
	return 1;
}

/* One simulated scrape of each of this thread's targets, then their circuit metrics. */
static void circuits_tick(struct loadgen *lg, struct dbi_rctx *c, unsigned me, unsigned nthr)
{
	const struct loadgen_cfg *cfg = lg->cfg;
	char failing[8192], name[64], needle[80];
	uint64_t now = dbi_wall_ns();
	read_fail_file(cfg->ct_fail_file, failing, sizeof(failing));
	for (int64_t t = me; t < cfg->targets; t += nthr) {
		struct dbi_circuit *ci = lg->circuit[t];
		if (dbi_circuit_allow(ci, now) != DBI_CIRCUIT_DENY) {
			target_name(t, name, sizeof(name));
			snprintf(needle, sizeof(needle), "\n%s\n", name);
			if (strstr(failing, needle))
				dbi_circuit_record(ci, (enum dbi_circuit_result)(cfg->ct_fail_result + 1),
				                   DBI_NSEC_PER_MSEC, now,
				                   "loadgen circuit_test: target listed in fail_file");
			else
				dbi_circuit_record(ci, DBI_CIRCUIT_OK, DBI_NSEC_PER_MSEC, now, NULL);
		}
		struct dbi_point p[3];
		unsigned n = dbi_circuit_points(ci, &lg->cseries[t], now, p);
		for (unsigned i = 0; i < n; i++)
			dbi_rctx_emit_point(c, &p[i], lg->cseries[t].route[i]); /* full: skipped, test only */
	}
	dbi_rctx_flush(c);
	dbi_circuit_table_sync(lg->circuits, now);
}

static int loadgen_create(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err)
{
	const struct loadgen_cfg *cfg = inst->cfg;
	uint32_t *resources = NULL; /* circuit_test: the resource of each target */
	struct loadgen *lg = calloc(1, sizeof(*lg));
	if (!lg)
		goto nomem;
	lg->cfg = cfg;
	lg->nseries = (uint64_t)cfg->targets * (uint64_t)cfg->series_per_target;
	if (lg->nseries > 50000000) {
		dbi_err_add(err, "%s: targets x series_per_target = %llu is more than 50M series", inst->id,
		            (unsigned long long)lg->nseries);
		free(lg);
		return DBI_ERR;
	}
	lg->series = malloc(lg->nseries * sizeof(*lg->series));
	lg->routes = malloc(lg->nseries * sizeof(*lg->routes));
	if (!lg->series || !lg->routes)
		goto nomem;
	lg->start_wall = dbi_wall_ns();

	const char *name = cfg->metric_name && *cfg->metric_name ? cfg->metric_name : "loadgen.counter";
	struct dbi_metric_def md = {.name = name,
	                            .unit = "1",
	                            .description = "synthetic monotonic counter",
	                            .kind = DBI_MK_SUM,
	                            .monotonic = 1,
	                            .temporality = DBI_TEMP_CUMULATIVE};
	uint32_t metric = dbi_metric_intern(inst->reg, &md);
	uint32_t scope = dbi_scope_intern(inst->reg, "dbi/loadgen", "1");
	resources = cfg->ct_enabled ? calloc((size_t)cfg->targets, sizeof(uint32_t)) : NULL;
	if (cfg->ct_enabled && !resources)
		goto nomem;
	for (int64_t t = 0; t < cfg->targets; t++) {
		char host[64], inst_id[80];
		snprintf(host, sizeof(host), "loadgen-%lld", (long long)t);
		snprintf(inst_id, sizeof(inst_id), "%s:5432", host);
		struct dbi_attr ra[] = {
		        {.key = "server.address", .type = DBI_AT_STR, .v.s = host},
		        {.key = "server.port", .type = DBI_AT_INT, .v.i = 5432},
		        {.key = "service.instance.id", .type = DBI_AT_STR, .v.s = inst_id},
		        {.key = "service.name", .type = DBI_AT_STR, .v.s = "loadgen"},
		};
		uint32_t res = dbi_attrs_intern(inst->reg, ra, DBI_ARRAY_LEN(ra));
		if (resources)
			resources[t] = res;
		for (int64_t s = 0; s < cfg->series_per_target; s++) {
			struct dbi_attr pa = {.key = "series", .type = DBI_AT_INT, .v.i = s};
			uint32_t attrs = dbi_attrs_intern(inst->reg, &pa, 1);
			uint64_t i = (uint64_t)t * (uint64_t)cfg->series_per_target + (uint64_t)s;
			lg->series[i] = dbi_series_intern(inst->reg, metric, res, scope, attrs);
			if (!metric || !res || !attrs || !lg->series[i]) {
				dbi_err_add(err, "%s: cannot intern series (runtime.max_series too low?)", inst->id);
				goto fail;
			}
			lg->routes[i] = dbi_series_get(inst->reg, lg->series[i])->hash;
		}
	}
	if (cfg->ct_enabled && circuits_create(lg, inst, resources, scope, err) != DBI_OK)
		goto fail;
	free(resources);
	*state = lg;
	return DBI_OK;
nomem:
	dbi_err_add(err, "%s: out of memory", inst->id);
fail:
	if (lg) {
		circuits_free(lg);
		free(lg->series);
		free(lg->routes);
	}
	free(resources);
	free(lg);
	return DBI_ERR;
}

/* Main thread, after the receiver threads have stopped: the circuits' final state. */
static void loadgen_stop(void *state)
{
	struct loadgen *lg = state;
	if (lg->circuits)
		dbi_circuit_table_save(lg->circuits, dbi_wall_ns());
}

static void loadgen_destroy(void *state)
{
	struct loadgen *lg = state;
	circuits_free(lg);
	free(lg->series);
	free(lg->routes);
	free(lg);
}

static unsigned loadgen_threads(const void *cfg, const struct dbi_config *all)
{
	(void)all;
	return (unsigned)((const struct loadgen_cfg *)cfg)->threads;
}

static int loadgen_run(void *state, struct dbi_rctx *c)
{
	struct loadgen *lg = state;
	const struct loadgen_cfg *cfg = lg->cfg;
	struct dbi_stats *st = dbi_rctx_stats(c);
	unsigned me = dbi_rctx_thread(c), nthr = dbi_rctx_nthreads(c);
	/* thread i owns series i, i+n, i+2n, ...: each series has one producer */
	uint64_t idx = me, emitted = 0;
	uint64_t rate = (uint64_t)cfg->rate / nthr;
	uint64_t max = (uint64_t)cfg->max_points;
	uint64_t t0 = dbi_mono_ns();
	uint64_t burst = cfg->burst_interval ? cfg->burst_interval : DBI_NSEC_PER_MSEC;
	uint64_t *values = calloc(lg->nseries / nthr + 1, sizeof(uint64_t));
	uint64_t next_circuits = 0;
	if (!values)
		return DBI_ERR;
	if (lg->nseries <= me) {
		free(values);
		return DBI_OK; /* more threads than series */
	}

	while (!dbi_rctx_stopping(c) && (max == 0 || emitted < max)) {
		if (dbi_rctx_pressure(c) > 0) {
			dbi_stats_add(st, LG_BACKOFF, 1);
			if (dbi_rctx_sleep_until(c, dbi_mono_ns() + 100 * DBI_NSEC_PER_MSEC) == DBI_DONE)
				break;
			continue;
		}
		uint64_t now = dbi_mono_ns();
		if (lg->circuits && now >= next_circuits) {
			circuits_tick(lg, c, me, nthr);
			next_circuits = now + cfg->ct_interval;
		}
		/*
		 * Pace in whole bursts: what is due at the last burst boundary goes out at once,
		 * then the thread sleeps to the next boundary. Emitting whatever trickled due
		 * since the last loop would wake the processor thread for a handful of points.
		 */
		uint64_t elapsed = now - t0, boundary = elapsed - elapsed % burst;
		uint64_t due = rate ? (uint64_t)((__uint128_t)boundary * rate / DBI_NSEC_PER_SEC) : emitted + 4096;
		if (max && due > max)
			due = max;
		if (due <= emitted) {
			if (dbi_rctx_sleep_until(c, t0 + boundary + burst) == DBI_DONE)
				break;
			continue;
		}
		uint64_t wall = dbi_wall_ns();
		while (emitted < due) {
			struct dbi_point p = {
			        .time_ns = wall,
			        .start_ns = lg->start_wall,
			        .series = lg->series[idx],
			        .kind = DBI_PK_SUM,
			};
			uint64_t slot = idx / nthr;
			p.v.i = (int64_t)(values[slot] + 1);
			if (dbi_rctx_emit_point(c, &p, lg->routes[idx]) != DBI_OK) {
				if (cfg->on_full == LG_ON_FULL_DROP) {
					dbi_stats_add(st, LG_DROP_FULL, 1);
				} else {
					dbi_stats_add(st, LG_WAITS, 1);
					int w = dbi_rctx_wait_space(c, 100 * DBI_NSEC_PER_MSEC);
					if (w == DBI_DONE)
						goto out;
					if (dbi_rctx_stopping(c) && w != DBI_OK)
						goto out;
					continue; /* retry the same point */
				}
			} else {
				values[slot]++;
				dbi_stats_add(st, LG_EMITTED, 1);
			}
			emitted++;
			idx += nthr;
			if (idx >= lg->nseries)
				idx = me;
		}
		dbi_rctx_flush(c);
	}
out:
	dbi_rctx_flush(c);
	free(values);
	return DBI_OK;
}

const struct dbi_component dbi_receiver_loadgen = {
        .type = "loadgen",
        .kind = DBI_RECEIVER,
        .signals = DBI_SIG_METRICS,
        .doc = "synthetic fleet: targets x series_per_target counters at a fixed rate (benchmarks, demo)",
        .keys = loadgen_keys,
        .conf_size = sizeof(struct loadgen_cfg),
        .stats = loadgen_stats,
        .validate = loadgen_validate,
        .create = loadgen_create,
        .destroy = loadgen_destroy,
        .stop = loadgen_stop,
        .shm_bytes = loadgen_shm_bytes,
        .threads = loadgen_threads,
        .run = loadgen_run,
};
