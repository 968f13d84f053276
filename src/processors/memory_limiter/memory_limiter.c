/*
 * memory_limiter.c — the `memory_limiter` processor. Every `check_interval` it reads
 * the process's resident memory and compares it with a hard limit (`limit_mib`, or
 * `limit_percentage` of the machine's or cgroup's memory) and a soft limit (hard minus
 * the spike allowance). Above soft, receivers are told to back off (skip optional work,
 * answer OTLP clients 429/503); above hard, they refuse new data, and jemalloc is asked
 * to return freed memory to the system. The limit is enforced where data enters: this
 * processor never drops data the pipeline has already accepted, it passes it on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef DBI_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/log.h"
#include "dbi/proc.h"
#include "dbi/runtime.h"

struct ml_cfg {
	uint64_t check_interval;
	int64_t limit_mib;
	double limit_percentage;
	int64_t spike_limit_mib;
	double spike_limit_percentage;
};

static const struct dbi_conf_key ml_keys[] = {
        {.name = "check_interval",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct ml_cfg, check_interval),
         .def = "1s",
         .doc = "how often memory is measured"},
        {.name = "limit_mib",
         .type = DBI_CT_INT,
         .offset = offsetof(struct ml_cfg, limit_mib),
         .def = "0",
         .doc = "hard limit in MiB of resident memory (0: use limit_percentage)",
         .min = 0,
         .max = 1 << 30},
        {.name = "limit_percentage",
         .type = DBI_CT_PERCENT,
         .offset = offsetof(struct ml_cfg, limit_percentage),
         .def = "0",
         .doc = "hard limit as % of total memory (cgroup limit when set)"},
        {.name = "spike_limit_mib",
         .type = DBI_CT_INT,
         .offset = offsetof(struct ml_cfg, spike_limit_mib),
         .def = "0",
         .doc = "soft limit = hard - spike (0: use spike_limit_percentage)",
         .min = 0,
         .max = 1 << 30},
        {.name = "spike_limit_percentage",
         .type = DBI_CT_PERCENT,
         .offset = offsetof(struct ml_cfg, spike_limit_percentage),
         .def = "20",
         .doc = "spike allowance as % of the hard limit"},
        DBI_CONF_END,
};

enum { ML_RSS, ML_SOFT, ML_HARD, ML_PRESSURE, ML_SOFT_EVENTS, ML_HARD_EVENTS, ML_PURGES, ML_NSTATS };
static const struct dbi_stat_def ml_stats[] = {
        [ML_RSS] = {"rss_bytes", DBI_STAT_GAUGE, "resident memory at the last check"},
        [ML_SOFT] = {"soft_limit_bytes", DBI_STAT_GAUGE, "receivers back off above this"},
        [ML_HARD] = {"hard_limit_bytes", DBI_STAT_GAUGE, "receivers refuse data above this"},
        [ML_PRESSURE] = {"pressure", DBI_STAT_GAUGE, "0 none, 1 soft, 2 hard"},
        [ML_SOFT_EVENTS] = {"soft_limit_crossed", DBI_STAT_COUNTER, "times memory rose above the soft limit"},
        [ML_HARD_EVENTS] = {"hard_limit_crossed", DBI_STAT_COUNTER, "times memory rose above the hard limit"},
        [ML_PURGES] = {"purges", DBI_STAT_COUNTER, "times jemalloc was asked to return memory"},
        [ML_NSTATS] = {NULL, 0, NULL},
};

struct ml {
	const struct ml_cfg *cfg;
	const struct dbi_inst *inst;
	struct dbi_runtime *rt;
	struct dbi_stats *st;
	uint64_t hard, soft;
	int level;
	int active; /* only the instance on processor thread 0 measures */
};

static int ml_validate(const void *c, const char *id, struct dbi_errbuf *err)
{
	const struct ml_cfg *cfg = c;
	if (cfg->limit_mib == 0 && cfg->limit_percentage == 0) {
		dbi_err_add(err, "%s: set limit_mib or limit_percentage", id);
		return DBI_ERR;
	}
	if (cfg->limit_mib && cfg->spike_limit_mib >= cfg->limit_mib) {
		dbi_err_add(err, "%s: spike_limit_mib (%lld) must be below limit_mib (%lld)", id,
		            (long long)cfg->spike_limit_mib, (long long)cfg->limit_mib);
		return DBI_ERR;
	}
	if (cfg->check_interval < DBI_NSEC_PER_MSEC * 10) {
		dbi_err_add(err, "%s: check_interval must be at least 10ms", id);
		return DBI_ERR;
	}
	return DBI_OK;
}

static void compute_limits(struct ml *m)
{
	const struct ml_cfg *cfg = m->cfg;
	m->hard = cfg->limit_mib ? (uint64_t)cfg->limit_mib << 20
	                         : (uint64_t)((double)dbi_proc_total_memory() * cfg->limit_percentage / 100.0);
	uint64_t spike = cfg->spike_limit_mib ? (uint64_t)cfg->spike_limit_mib << 20
	                                      : (uint64_t)((double)m->hard * cfg->spike_limit_percentage / 100.0);
	m->soft = spike < m->hard ? m->hard - spike : 0;
	dbi_stats_set(m->st, ML_SOFT, m->soft);
	dbi_stats_set(m->st, ML_HARD, m->hard);
}

static int ml_create(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err)
{
	struct ml *m = calloc(1, sizeof(*m));
	if (!m) {
		dbi_err_add(err, "%s: out of memory", inst->id);
		return DBI_ERR;
	}
	m->cfg = inst->cfg;
	m->inst = inst;
	m->rt = inst->rt;
	m->st = inst->stats;
	m->active = inst->shard == 0;
	compute_limits(m);
	*state = m;
	return DBI_OK;
}

static void ml_destroy(void *state)
{
	struct ml *m = state;
	if (m->active && m->rt)
		dbi_runtime_set_pressure(m->rt, 0);
	free(m);
}

static void purge(struct ml *m)
{
#ifdef DBI_HAVE_JEMALLOC
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "arena.%u.purge", (unsigned)MALLCTL_ARENAS_ALL);
	if (mallctl(cmd, NULL, NULL, NULL, 0) == 0)
		dbi_stats_add(m->st, ML_PURGES, 1);
#else
	(void)m;
#endif
}

static uint64_t ml_tick(void *state, uint64_t now, struct dbi_next *next)
{
	struct ml *m = state;
	(void)next;
	if (!m->active)
		return 0;
	uint64_t rss = dbi_proc_rss_bytes();
	int level = rss >= m->hard ? 2 : rss >= m->soft ? 1 : 0;
	dbi_stats_set(m->st, ML_RSS, rss);
	if (level == 2) {
		purge(m);
		rss = dbi_proc_rss_bytes();
		level = rss >= m->hard ? 2 : rss >= m->soft ? 1 : 0;
	}
	if (level != m->level) {
		if (level > m->level)
			dbi_stats_add(m->st, level == 2 ? ML_HARD_EVENTS : ML_SOFT_EVENTS, 1);
		DBI_LOGW("memory_limiter",
		         level ? "memory above limit: receivers back off" : "memory back under limits",
		         "rss_mib=%llu soft_mib=%llu hard_mib=%llu level=%d", (unsigned long long)(rss >> 20),
		         (unsigned long long)(m->soft >> 20), (unsigned long long)(m->hard >> 20), level);
		m->level = level;
		dbi_runtime_set_pressure(m->rt, level);
	}
	dbi_stats_set(m->st, ML_PRESSURE, (uint64_t)level);
	return now + m->cfg->check_interval;
}

static int ml_consume(void *state, struct dbi_batch *b, struct dbi_next *next)
{
	(void)state;
	return dbi_next(next, b);
}

const struct dbi_component dbi_processor_memory_limiter = {
        .type = "memory_limiter",
        .kind = DBI_PROCESSOR,
        .signals = DBI_SIG_METRICS | DBI_SIG_LOGS | DBI_SIG_TRACES,
        .doc = "keeps resident memory under a limit by making receivers back off or refuse",
        .keys = ml_keys,
        .conf_size = sizeof(struct ml_cfg),
        .stats = ml_stats,
        .validate = ml_validate,
        .create = ml_create,
        .destroy = ml_destroy,
        .consume = ml_consume,
        .tick = ml_tick,
};
