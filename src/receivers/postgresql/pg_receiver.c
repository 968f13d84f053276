/*
 * pg_receiver.c — the `postgresql` receiver component: scrapes 1..N PostgreSQL servers
 * (12 to 17) with every metric of the OpenTelemetry Collector's postgresqlreceiver plus
 * dbi's own (docs/postgresql-metrics.md), over persistent pipelined sessions.
 *
 * This file is the component's face: create interns the metric descriptors and builds
 * the first target set; run hands each runtime scraper thread to the engine
 * (pg_engine.c); reconfigure (SIGHUP) and the targets file publish a new target set with
 * one atomic pointer swap that each scraper thread picks up between scrapes (RCU style:
 * an old set is freed once every thread has moved past it), so targets come and go
 * without restarting the pipeline.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dbi/clock.h"
#include "dbi/log.h"
#include "dbi/stats.h"
#include "dbi/runtime.h"

#include "pg_int.h"
#include "pg_pqbuf.h"

const struct dbi_stat_def dbi_pg_stats[] = {
        [PGS_SCRAPES] = {"scrapes", DBI_STAT_COUNTER, "target scrapes completed"},
        [PGS_SCRAPE_FAIL] = {"scrape_failures", DBI_STAT_COUNTER, "target scrapes that failed or were slow"},
        [PGS_SCRAPE_NS] = {"scrape_time_ns", DBI_STAT_COUNTER,
                           "wall time of target scrapes (divided by scrapes: the mean)"},
        [PGS_CONNECTS] = {"connects", DBI_STAT_COUNTER, "connection attempts"},
        [PGS_CONNECT_FAIL] = {"connect_failures", DBI_STAT_COUNTER, "connection attempts that failed"},
        [PGS_QUERIES] = {"statements", DBI_STAT_COUNTER, "statements sent (pipelined)"},
        [PGS_POINTS] = {"points", DBI_STAT_COUNTER, "points emitted"},
        [PGS_DROP_RING_FULL] = {"dropped.ring_full", DBI_STAT_COUNTER, "points dropped: pipeline full"},
        [PGS_DROP_OVERRUN] = {"dropped.scrape_overrun", DBI_STAT_COUNTER,
                              "intervals skipped: the previous scrape was still running"},
        [PGS_DROP_SERIES_LIMIT] = {"dropped.series_limit", DBI_STAT_COUNTER,
                                   "points dropped: runtime.max_series reached"},
        [PGS_DROP_CIRCUIT] = {"dropped.circuit_open", DBI_STAT_COUNTER, "scrapes skipped: circuit open"},
        [PGS_DROP_BACKOFF] = {"dropped.reconnect_backoff", DBI_STAT_COUNTER,
                              "scrapes (or database scrapes) skipped: waiting to reconnect"},
        [PGS_GROUP_ERRORS] = {"group_errors", DBI_STAT_COUNTER, "statements of a metric group that failed"},
        [PGS_LOCKED_SKIPPED] = {"relations_not_sized", DBI_STAT_COUNTER,
                                "tables/indexes not sized: AccessExclusiveLock held"},
        [PGS_TARGETS] = {"targets", DBI_STAT_GAUGE, "targets owned by this thread"},
        [PGS_SESSIONS] = {"sessions", DBI_STAT_GAUGE, "open PostgreSQL sessions"},
        [PGS_TSET_SWAPS] = {"target_set_swaps", DBI_STAT_COUNTER, "target sets picked up (start, reloads)"},
        [PGS_STMT_READS] = {"statements_reads", DBI_STAT_COUNTER, "pg_stat_statements counters reads"},
        [PGS_STMT_READS_CHANGED] = {"statements_reads_changed_only", DBI_STAT_COUNTER,
                                    "pg_stat_statements reads that returned only the statements that ran"},
        [PGS_STMT_ROWS] = {"statements_rows", DBI_STAT_COUNTER, "pg_stat_statements rows read"},
        [PGS_PQBUF_RELEASED] = {"idle_buffer_bytes_released", DBI_STAT_COUNTER,
                                "bytes of idle sessions' libpq buffers handed back to the kernel"},
        [PGS_NSTATS] = {NULL, 0, NULL},
};

void dbi_pg_apply_enablement(struct dbi_pg *pg, const struct pg_cfg *cfg)
{
	uint64_t on[(PGM_COUNT + 63) / 64] = {0};
	uint32_t groups = 1u << PG_G_SERVER;

	for (int m = 0; m < PGM_COUNT; m++) {
		bool e = dbi_pg_metrics[m].def_on;
		for (size_t i = 0; i < cfg->metrics.n; i++) {
			const struct pg_metric_conf *mc = (const struct pg_metric_conf *)cfg->metrics.items + i;
			if (strcmp(mc->name, dbi_pg_metrics[m].name) == 0)
				e = mc->enabled;
		}
		if (e)
			on[m / 64] |= 1ULL << (m % 64);
		int g = dbi_pg_metrics[m].group;
		if (e && (g == PG_G_SERVER || cfg->groups[g]))
			groups |= 1u << g;
	}
	/* the statements group has its metrics in its own module (statements.c) */
	if (cfg->groups[PG_G_STATEMENTS])
		groups |= 1u << PG_G_STATEMENTS;
	for (size_t i = 0; i < DBI_ARRAY_LEN(on); i++)
		atomic_store_explicit(&pg->metric_on[i], on[i], memory_order_relaxed);
	atomic_store_explicit(&pg->group_on, groups, memory_order_relaxed);
}

/* Free retired sets that no thread runs any more. Caller holds pub_lock. */
static void reap(struct dbi_pg *pg)
{
	uint64_t min = UINT64_MAX;
	for (unsigned i = 0; i < pg->nthreads; i++)
		min = DBI_MIN(min, atomic_load_explicit(&pg->seen_gen[i], memory_order_acquire));
	struct pg_tset **pp = &pg->retired;
	while (*pp) {
		struct pg_tset *ts = *pp;
		/* a set is replaced by gen+1 or later; once every thread runs a newer one it is free */
		if (min != UINT64_MAX && min > ts->gen) {
			*pp = ts->next_retired;
			dbi_pg_tset_free(ts);
			continue;
		}
		pp = &ts->next_retired;
	}
}

void dbi_pg_publish(struct dbi_pg *pg, struct pg_tset *ts)
{
	struct pg_tset *old;
	ts->gen = ++pg->gen;
	old = atomic_exchange_explicit(&pg->tset, ts, memory_order_acq_rel);
	if (old) {
		old->next_retired = pg->retired;
		pg->retired = old;
	}
	reap(pg);
}

static uint64_t file_sig(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return 1; /* missing: a signature of its own */
	uint64_t v[4] = {(uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec, (uint64_t)st.st_size,
	                 (uint64_t)st.st_ino};
	return dbi_hash64(v, sizeof(v), 0x7466);
}

/* Read the targets file into pg->file_targets. Caller holds pub_lock. */
static int load_targets_file(struct dbi_pg *pg, const char *path, struct dbi_errbuf *err)
{
	struct dbi_list l = {0};
	pg->file_sig = file_sig(path);
	if (dbi_conf_load_list_file(path, dbi_pg_target_keys, sizeof(struct pg_target_conf), &l, err) != DBI_OK)
		return DBI_ERR;
	dbi_conf_list_release(dbi_pg_target_keys, sizeof(struct pg_target_conf), &pg->file_targets);
	pg->file_targets = l;
	return DBI_OK;
}

int dbi_pg_check_targets_file(struct dbi_pg *pg)
{
	const struct pg_cfg *cfg = atomic_load_explicit(&pg->cfg, memory_order_acquire);
	struct dbi_errbuf err;
	int rc = DBI_OK;

	if (!cfg->targets_file)
		return DBI_OK;
	pthread_mutex_lock(&pg->pub_lock);
	cfg = atomic_load_explicit(&pg->cfg, memory_order_acquire);
	if (cfg->targets_file && file_sig(cfg->targets_file) != pg->file_sig) {
		dbi_err_clear(&err);
		if (load_targets_file(pg, cfg->targets_file, &err) != DBI_OK) {
			DBI_LOGE(PG_COMP, "targets file not applied; the previous targets keep running",
			         "file=%s error=\"%.300s\"", cfg->targets_file, err.msg);
			rc = DBI_ERR;
		} else {
			struct pg_tset *ts = dbi_pg_tset_build(cfg, &pg->file_targets, &err);
			if (ts) {
				DBI_LOGI(PG_COMP, "targets file applied", "file=%s targets=%zu", cfg->targets_file,
				         ts->n);
				dbi_pg_publish(pg, ts);
			} else {
				DBI_LOGE(PG_COMP, "targets file not applied; the previous targets keep running",
				         "file=%s error=\"%.300s\"", cfg->targets_file, err.msg);
				rc = DBI_ERR;
			}
		}
	} else {
		reap(pg);
	}
	pthread_mutex_unlock(&pg->pub_lock);
	return rc;
}

static void pg_destroy(void *state)
{
	struct dbi_pg *pg = state;
	if (!pg)
		return;
	dbi_pg_tset_free(atomic_load(&pg->tset));
	while (pg->retired) {
		struct pg_tset *n = pg->retired->next_retired;
		dbi_pg_tset_free(pg->retired);
		pg->retired = n;
	}
	dbi_conf_list_release(dbi_pg_target_keys, sizeof(struct pg_target_conf), &pg->file_targets);
	if (pg->circuits)
		dbi_circuit_table_destroy(pg->circuits);
	pthread_mutex_destroy(&pg->pub_lock);
	free(pg->seen_gen);
	free(pg);
}

static unsigned pg_threads(const void *cfg, const struct dbi_config *all)
{
	(void)cfg;
	return all && all->runtime.scrapers > 0 ? (unsigned)all->runtime.scrapers : 1;
}

/* Circuits for every target the config names now, plus room for reloads and the targets file. */
static uint32_t circuit_capacity(const struct pg_cfg *cfg)
{
	return (uint32_t)(2 * cfg->targets.n + (cfg->targets_file ? 1024 : 0) + 64);
}

static uint64_t pg_shm_bytes(const void *cfg)
{
	return dbi_circuit_table_shm_bytes(circuit_capacity(cfg));
}

static int circuits_create(struct dbi_pg *pg, const struct pg_cfg *cfg, struct dbi_errbuf *err)
{
	char path[1024];
	const char *state = NULL;
	uint32_t cap = DBI_MAX(circuit_capacity(cfg), (uint32_t)(2 * pg->file_targets.n + 64));

	if (pg->inst->rt && dbi_circuit_state_path(pg->inst->rt, pg->inst->id, path, sizeof(path), err) == DBI_OK)
		state = path;
	else
		dbi_err_clear(err); /* no state directory: circuits still work, they just start closed */
	if (dbi_circuit_table_create(&pg->circuits, pg->inst->rt, pg->inst->id, cap, &cfg->circuit, state, err) !=
	    DBI_OK)
		return DBI_ERR;
	dbi_circuit_table_load(pg->circuits, dbi_wall_ns());
	return DBI_OK;
}

static void pg_stop(void *state)
{
	struct dbi_pg *pg = state;
	if (pg->circuits)
		dbi_circuit_table_save(pg->circuits, dbi_wall_ns());
}

static int pg_create(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err)
{
	const struct pg_cfg *cfg = inst->cfg;
	char why[96];
	struct dbi_pg *pg = calloc(1, sizeof(*pg));
	struct pg_tset *ts;

	if (!pg) {
		dbi_err_add(err, "%s: out of memory", inst->id);
		return DBI_ERR;
	}
	pthread_mutex_init(&pg->pub_lock, NULL);
	pg->inst = inst;
	pg->reg = inst->reg;
	pg->start_wall = dbi_wall_ns();
	atomic_init(&pg->cfg, cfg);
	pg->nthreads = pg_threads(cfg, inst->rt ? dbi_runtime_config(inst->rt) : NULL);
	pg->seen_gen = calloc(pg->nthreads, sizeof(*pg->seen_gen));
	if (!pg->seen_gen)
		goto oom;
	pg->scope = dbi_scope_intern(pg->reg, "dbi/receiver/postgresql", "0.1.0");
	pg->empty_attrs = dbi_attrs_intern(pg->reg, NULL, 0);
	for (int m = 0; m < PGM_COUNT; m++) {
		const struct pg_metric_info *mi = &dbi_pg_metrics[m];
		struct dbi_metric_def md = {.name = mi->name,
		                            .unit = mi->unit,
		                            .description = mi->desc,
		                            .kind = mi->kind,
		                            .monotonic = mi->monotonic,
		                            .temporality = mi->kind == DBI_MK_SUM ? DBI_TEMP_CUMULATIVE : 0,
		                            .is_double = mi->is_double};
		pg->metric_id[m] = dbi_metric_intern(pg->reg, &md);
		if (!pg->metric_id[m]) {
			dbi_err_add(err, "%s: cannot intern metric %s", inst->id, mi->name);
			goto fail;
		}
	}
	if (!pg->scope || !pg->empty_attrs) {
		dbi_err_add(err, "%s: cannot intern the scope", inst->id);
		goto fail;
	}
	dbi_pg_apply_enablement(pg, cfg);
	if (cfg->targets_file && load_targets_file(pg, cfg->targets_file, err) != DBI_OK)
		goto fail;
	if (circuits_create(pg, cfg, err) != DBI_OK)
		goto fail;
	ts = dbi_pg_tset_build(cfg, &pg->file_targets, err);
	if (!ts)
		goto fail;
	dbi_pg_publish(pg, ts);
	DBI_LOGI(PG_COMP, "receiver ready", "id=%s targets=%zu threads=%u", inst->id, ts->n, pg->nthreads);
	if (!dbi_pg_pqbuf_init(why, sizeof(why)))
		DBI_LOGI(PG_COMP, "idle sessions keep their libpq buffers (about 32 KiB each)", "reason=\"%s\"", why);
	*state = pg;
	return DBI_OK;
oom:
	dbi_err_add(err, "%s: out of memory", inst->id);
fail:
	pg_destroy(pg);
	return DBI_ERR;
}

static int pg_run(void *state, struct dbi_rctx *rctx)
{
	return dbi_pg_run(state, rctx);
}

static int pg_reconfigure(void *state, const void *newcfg, struct dbi_errbuf *err)
{
	struct dbi_pg *pg = state;
	const struct pg_cfg *cfg = newcfg;
	struct pg_tset *ts;
	int rc = DBI_ERR;

	pthread_mutex_lock(&pg->pub_lock);
	const struct pg_cfg *old = atomic_load(&pg->cfg);
	if (cfg->targets_file &&
	    (!old->targets_file || strcmp(old->targets_file, cfg->targets_file) != 0 ||
	     file_sig(cfg->targets_file) != pg->file_sig) &&
	    load_targets_file(pg, cfg->targets_file, err) != DBI_OK)
		goto out;
	ts = dbi_pg_tset_build(cfg, cfg->targets_file ? &pg->file_targets : NULL, err);
	if (!ts)
		goto out;
	/* threads read the config between scrapes; the old one stays valid (main keeps it) */
	atomic_store_explicit(&pg->cfg, cfg, memory_order_release);
	dbi_pg_apply_enablement(pg, cfg);
	if (pg->circuits)
		dbi_circuit_table_set_conf(pg->circuits, &cfg->circuit);
	dbi_pg_publish(pg, ts);
	DBI_LOGI(PG_COMP, "reconfigured", "id=%s targets=%zu", pg->inst->id, ts->n);
	rc = DBI_OK;
out:
	pthread_mutex_unlock(&pg->pub_lock);
	return rc;
}

const struct dbi_component dbi_receiver_postgresql = {
        .type = "postgresql",
        .kind = DBI_RECEIVER,
        /* logs: the statements group's query samples (put the receiver in a logs pipeline too) */
        .signals = DBI_SIG_METRICS | DBI_SIG_LOGS,
        .doc = "scrapes PostgreSQL 12-17 servers: OTel postgresqlreceiver metrics and more, pipelined, many "
               "targets per thread",
        .keys = dbi_pg_keys,
        .conf_size = sizeof(struct pg_cfg),
        .stats = dbi_pg_stats,
        .validate = dbi_pg_validate,
        .create = pg_create,
        .destroy = pg_destroy,
        .threads = pg_threads,
        .run = pg_run,
        .reconfigure = pg_reconfigure,
        .stop = pg_stop,
        .shm_bytes = pg_shm_bytes,
};
