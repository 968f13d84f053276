/*
 * runtime.c — building, starting, stopping and reloading the running collector from a
 * config (see runtime.h). Layout of what gets built:
 *
 *   receiver r, thread i  ──chan(r.i → s)──▶  processor thread s  ──chan(s → e)──▶  exporter e
 *
 * Every chan, stats block and thread record lives in the shared segment so dbi-stat
 * sees all of it. Processor instances are created per (pipeline, processor thread), so
 * stateful processors never share state between threads.
 */
#include <assert.h>
#include <errno.h>
#include <numa.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dbi/clock.h"
#include "dbi/log.h"
#include "dbi/proc.h"
#include "dbi/telemetry.h"
#include "runtime_int.h"

static const struct dbi_stat_def thread_stat_defs[] = {
        [TS_POINTS_IN] = {"points_in", DBI_STAT_COUNTER, "points taken in by this thread"},
        [TS_RECORDS_IN] = {"records_in", DBI_STAT_COUNTER, "byte records taken in"},
        [TS_POINTS_OUT] = {"points_out", DBI_STAT_COUNTER, "points handed on"},
        [TS_RECORDS_OUT] = {"records_out", DBI_STAT_COUNTER, "byte records handed on"},
        [TS_BATCHES] = {"batches", DBI_STAT_COUNTER, "batches handed on"},
        [TS_RING_FULL] = {"ring_full", DBI_STAT_COUNTER, "times the next ring was full (backpressure)"},
        [TS_DROP_EXPORTER_FULL] = {"dropped.exporter_full", DBI_STAT_COUNTER, "dropped: exporter ring full"},
        [TS_DROP_SHUTDOWN] = {"dropped.shutdown_timeout", DBI_STAT_COUNTER, "dropped: shutdown deadline"},
        [TS_DROP_TOO_LARGE] = {"dropped.too_large", DBI_STAT_COUNTER, "dropped: record larger than a ring allows"},
        [TS_WAKEUPS] = {"wakeups", DBI_STAT_COUNTER, "sleeps ended by data or timeout"},
        [TS_COUNT] = {NULL, 0, NULL},
};

enum {
	RS_UPTIME,
	RS_RSS,
	RS_SERIES,
	RS_SERIES_LIMIT,
	RS_REGISTRY_BYTES,
	RS_PRESSURE,
	RS_RELOADS,
	RS_RELOAD_FAIL,
	RS_SHM_FREE,
	RS_COUNT
};
static const struct dbi_stat_def runtime_stat_defs[] = {
        [RS_UPTIME] = {"uptime_seconds", DBI_STAT_GAUGE, "seconds since start"},
        [RS_RSS] = {"rss_bytes", DBI_STAT_GAUGE, "resident set size"},
        [RS_SERIES] = {"series", DBI_STAT_GAUGE, "series in the registry"},
        [RS_SERIES_LIMIT] = {"dropped.series_limit", DBI_STAT_COUNTER, "new series refused: runtime.max_series"},
        [RS_REGISTRY_BYTES] = {"registry_bytes", DBI_STAT_GAUGE, "memory held by interned names/attributes"},
        [RS_PRESSURE] = {"memory_pressure", DBI_STAT_GAUGE, "0 none, 1 soft limit, 2 hard limit"},
        [RS_RELOADS] = {"reloads", DBI_STAT_COUNTER, "config reloads applied"},
        [RS_RELOAD_FAIL] = {"reload_failures", DBI_STAT_COUNTER, "config reloads refused"},
        [RS_SHM_FREE] = {"shm_free_bytes", DBI_STAT_GAUGE, "unallocated bytes in the shared segment"},
        [RS_COUNT] = {NULL, 0, NULL},
};
const struct dbi_stat_def *const dbi_rt_thread_stat_defs = thread_stat_defs;
const struct dbi_stat_def *const dbi_rt_runtime_stat_defs = runtime_stat_defs;

/* ---- CPU placement ---- */

static void cpus_init(struct dbi_runtime *rt)
{
	const struct dbi_conf_runtime *r = &rt->cfg_in->runtime;
	cpu_set_t set;
	rt->ncpus = 0;
	if (r->cpus.n) {
		/* "0-3" or "5": the config loader has checked the syntax */
		for (size_t i = 0; i < r->cpus.n; i++) {
			char *end;
			unsigned long a = strtoul(r->cpus.v[i], &end, 10), b = a;
			if (*end == '-')
				b = strtoul(end + 1, NULL, 10);
			for (unsigned long c = a; c <= b && rt->ncpus < DBI_ARRAY_LEN(rt->cpus); c++)
				rt->cpus[rt->ncpus++] = (int)c;
		}
	} else if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		for (int c = 0; c < CPU_SETSIZE && rt->ncpus < DBI_ARRAY_LEN(rt->cpus); c++)
			if (CPU_ISSET(c, &set))
				rt->cpus[rt->ncpus++] = c;
	}
	rt->next_cpu = 0;
	rt->numa_nodes = (numa_available() >= 0) ? numa_max_node() + 1 : 1;
}

/*
 * pin: auto pins one thread per CPU only when there are enough CPUs. With more busy
 * threads than CPUs, fixed placement puts two hot threads on one core while another
 * idles (measured: ms-level latency tails), so the scheduler places them instead.
 */
static void decide_pinning(struct dbi_runtime *rt, unsigned nthreads)
{
	if (rt->cfg_in->runtime.pin == DBI_PIN_NONE || rt->ncpus == 0) {
		rt->ncpus = 0;
		return;
	}
	if (nthreads > rt->ncpus) {
		DBI_LOGI("runtime", "not pinning threads: more pipeline threads than CPUs", "threads=%u cpus=%u",
		         nthreads, rt->ncpus);
		rt->ncpus = 0;
	}
}

/* Round-robin over the allowed CPUs; processors are placed first so they spread. */
static void place(struct dbi_runtime *rt, struct thread_base *tb)
{
	tb->cpu = -1;
	tb->numa_node = 0;
	if (rt->cfg_in->runtime.pin == DBI_PIN_NONE || rt->ncpus == 0)
		return;
	tb->cpu = rt->cpus[rt->next_cpu++ % rt->ncpus];
	if (rt->numa_nodes > 1) {
		int node = numa_node_of_cpu(tb->cpu);
		tb->numa_node = node < 0 ? 0 : node;
	}
}

/* With several NUMA nodes, move a ring's pages to its consumer's node. */
static void ring_to_node(struct dbi_runtime *rt, void *mem, size_t len, int node)
{
	if (rt->numa_nodes > 1 && node >= 0)
		numa_tonode_memory(mem, len, node);
}

/* ---- building ---- */

static int stats_block(struct dbi_runtime *rt, struct dbi_stats *st, int kind, const char *id, const char *type,
                       const struct dbi_stat_def *defs)
{
	static const struct dbi_stat_def none[] = {{NULL, 0, NULL}};
	char region[DBI_SHM_REGION_NAME];
	snprintf(region, sizeof(region), "stats:%s", id);
	struct dbi_stats_block *blk =
	        dbi_shm_alloc(rt->shm, DBI_REGION_STATS, region, sizeof(struct dbi_stats_block), id, "");
	if (!blk)
		return DBI_ERR;
	return dbi_stats_init(st, blk, (enum dbi_stats_kind)kind, id, type, defs ? defs : none);
}

int dbi_runtime_stats_block(struct dbi_runtime *rt, struct dbi_stats *st, int kind, const char *id, const char *type,
                            const struct dbi_stat_def *defs)
{
	return stats_block(rt, st, kind, id, type, defs);
}

void *dbi_runtime_shm_blob(struct dbi_runtime *rt, const char *name, uint64_t size, const char *owner)
{
	return dbi_shm_alloc(rt->shm, DBI_REGION_BLOB, name, size, owner, "");
}

static int thread_region(struct dbi_runtime *rt, struct thread_base *tb, unsigned role)
{
	char region[DBI_SHM_REGION_NAME], id[DBI_STATS_ID];
	tb->rt = rt;
	tb->role = role;
	snprintf(region, sizeof(region), "thread:%s", tb->name);
	tb->shm = dbi_shm_alloc(rt->shm, DBI_REGION_THREAD, region, sizeof(struct dbi_shm_thread), tb->name, "");
	if (!tb->shm)
		return DBI_ERR;
	dbi_strlcpy(tb->shm->name, tb->name, sizeof(tb->shm->name));
	tb->shm->cpu = tb->cpu;
	snprintf(id, sizeof(id), "thread:%s", tb->name);
	return stats_block(rt, &tb->ts, DBI_SK_THREAD, id, "thread", thread_stat_defs);
}

static struct chan *chan_new(struct dbi_runtime *rt, const char *from, const char *to, struct dbi_wait *consumer,
                             int consumer_node)
{
	const struct dbi_conf_runtime *r = &rt->cfg_in->runtime;
	char name[DBI_SHM_REGION_NAME];
	struct chan *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	uint64_t cap = (uint64_t)r->ring_points;
	snprintf(name, sizeof(name), "ring:%s>%s", from, to);
	c->pts = dbi_shm_alloc(rt->shm, DBI_REGION_RING, name, dbi_ring_memsize(cap, sizeof(struct dbi_point)), from,
	                       to);
	snprintf(name, sizeof(name), "bring:%s>%s", from, to);
	c->recs = dbi_shm_alloc(rt->shm, DBI_REGION_BRING, name, dbi_bring_memsize(r->ring_bytes), from, to);
	if (!c->pts || !c->recs)
		goto fail;
	snprintf(name, sizeof(name), "%s>%s", from, to);
	if (dbi_ring_init(c->pts, name, cap, sizeof(struct dbi_point)) != DBI_OK ||
	    dbi_bring_init(c->recs, name, r->ring_bytes) != DBI_OK)
		goto fail;
	ring_to_node(rt, c->pts, dbi_ring_memsize(cap, sizeof(struct dbi_point)), consumer_node);
	ring_to_node(rt, c->recs, dbi_bring_memsize(r->ring_bytes), consumer_node);
	c->consumer = consumer;
	return c;
fail:
	free(c);
	return NULL;
}

static int inst_create(struct dbi_runtime *rt, struct comp_inst *ci, const struct dbi_conf_component *cc,
                       const char *pipeline, unsigned shard, struct dbi_errbuf *err)
{
	static const int kinds[] = {0, DBI_SK_RECEIVER, DBI_SK_PROCESSOR, DBI_SK_EXPORTER, DBI_SK_EXTENSION};
	const struct dbi_component *d = cc->desc;
	ci->cc = cc;
	if (d->kind == DBI_PROCESSOR)
		snprintf(ci->id, sizeof(ci->id), "%s@%s#%u", cc->id, pipeline, shard);
	else
		snprintf(ci->id, sizeof(ci->id), "%s", cc->id);
	char sid[DBI_STATS_ID];
	snprintf(sid, sizeof(sid), "%s:%s", dbi_comp_kind_name(d->kind), ci->id);
	if (stats_block(rt, &ci->stats, kinds[d->kind], sid, d->type, d->stats) != DBI_OK) {
		dbi_err_add(err, "%s: shared memory segment too small for its counters", cc->id);
		return DBI_ERR;
	}
	ci->inst.id = ci->id;
	ci->inst.desc = d;
	ci->inst.cfg = cc->cfg;
	ci->inst.rt = rt;
	ci->inst.reg = rt->reg;
	ci->inst.stats = &ci->stats;
	ci->inst.pipeline = pipeline;
	ci->inst.shard = shard;
	ci->inst.nshards = rt->nshards;
	if (d->create && d->create(&ci->inst, &ci->state, err) != DBI_OK) {
		if (err->count == 0)
			dbi_err_add(err, "%s: cannot create", cc->id);
		return DBI_ERR;
	}
	ci->inst.desc = d;
	return DBI_OK;
}

static void inst_destroy(struct comp_inst *ci)
{
	if (ci->cc && ci->cc->desc->destroy && ci->state)
		ci->cc->desc->destroy(ci->state);
	ci->state = NULL;
}

static uint64_t shm_size_for(const struct dbi_config *cfg, unsigned nrthreads, unsigned nshards, unsigned nexp,
                             unsigned ninst)
{
	const struct dbi_conf_runtime *r = &cfg->runtime;
	uint64_t chans = (uint64_t)nrthreads * nshards + (uint64_t)nshards * nexp;
	uint64_t per_chan = dbi_ring_memsize((uint64_t)r->ring_points, sizeof(struct dbi_point)) +
	                    dbi_bring_memsize(r->ring_bytes) + 2 * DBI_CACHELINE;
	uint64_t nthreads = nrthreads + nshards + nexp + 1;
	uint64_t blocks = ninst + nthreads + 8;
	uint64_t size = 4 * 1024 * 1024 + chans * per_chan +
	                blocks * (sizeof(struct dbi_stats_block) + sizeof(struct dbi_shm_thread) + 256);
	for (size_t i = 0; i < cfg->ncomponents; i++) {
		const struct dbi_conf_component *cc = &cfg->components[i];
		if (cc->desc->shm_bytes)
			size += cc->desc->shm_bytes(cc->cfg);
	}
	return size + size / 4;
}

static unsigned receiver_threads(const struct dbi_conf_component *cc, const struct dbi_config *cfg)
{
	unsigned n = cc->desc->threads ? cc->desc->threads(cc->cfg, cfg) : 1;
	return n ? n : 1;
}

static void teardown(struct dbi_runtime *rt);

/* Build everything for rt->cfg_in inside the (already created) segment. */
static int build(struct dbi_runtime *rt, struct dbi_errbuf *err)
{
	const struct dbi_config *cfg = rt->cfg_in;
	unsigned nrec = 0, nexp = 0, next = 0;
	rt->nshards = (unsigned)cfg->runtime.processors;
	assert(rt->nshards >= 1); /* the config loader enforces runtime.threads.processors >= 1 */
	cpus_init(rt);

	if (stats_block(rt, &rt->rstats, DBI_SK_RUNTIME, "runtime", "runtime", runtime_stat_defs) != DBI_OK)
		goto nospace;
	rt->main_thread =
	        dbi_shm_alloc(rt->shm, DBI_REGION_THREAD, "thread:main", sizeof(struct dbi_shm_thread), "main", "");
	if (rt->main_thread) {
		dbi_strlcpy(rt->main_thread->name, "main", sizeof(rt->main_thread->name));
		rt->main_thread->cpu = -1;
	}

	for (size_t i = 0; i < cfg->ncomponents; i++) {
		const struct dbi_conf_component *cc = &cfg->components[i];
		nrec += cc->desc->kind == DBI_RECEIVER;
		nexp += cc->desc->kind == DBI_EXPORTER;
		next += cc->desc->kind == DBI_EXTENSION;
	}
	if (nrec > RT_MAX_SOURCES) {
		dbi_err_add(err, "%s: at most %d receivers are supported", cfg->path, RT_MAX_SOURCES);
		return DBI_ERR;
	}
	rt->receivers = calloc(nrec ? nrec : 1, sizeof(*rt->receivers));
	rt->exporters = calloc(nexp ? nexp : 1, sizeof(*rt->exporters));
	rt->extensions = calloc(next ? next : 1, sizeof(*rt->extensions));
	rt->pthreads = calloc(rt->nshards, sizeof(*rt->pthreads));
	rt->ethreads = calloc(nexp ? nexp : 1, sizeof(*rt->ethreads));
	if (!rt->receivers || !rt->exporters || !rt->extensions || !rt->pthreads || !rt->ethreads)
		goto nomem;

	/* Extensions and exporters: one instance each. */
	for (size_t i = 0; i < cfg->ncomponents; i++) {
		const struct dbi_conf_component *cc = &cfg->components[i];
		if (cc->desc->kind == DBI_EXTENSION) {
			if (inst_create(rt, &rt->extensions[rt->nextensions++], cc, "", 0, err) != DBI_OK)
				return DBI_ERR;
		} else if (cc->desc->kind == DBI_EXPORTER) {
			if (inst_create(rt, &rt->exporters[rt->nexporters++], cc, "", 0, err) != DBI_OK)
				return DBI_ERR;
		} else if (cc->desc->kind == DBI_RECEIVER) {
			struct comp_inst *ci = &rt->receivers[rt->nreceivers];
			ci->inst.source = rt->nreceivers++;
			unsigned src = ci->inst.source;
			if (inst_create(rt, ci, cc, "", 0, err) != DBI_OK)
				return DBI_ERR;
			ci->inst.source = src;
			rt->nrthreads += receiver_threads(cc, cfg);
		}
	}

	{
		unsigned nrt = 0;
		for (size_t i = 0; i < cfg->ncomponents; i++)
			if (cfg->components[i].desc->kind == DBI_RECEIVER)
				nrt += receiver_threads(&cfg->components[i], cfg);
		decide_pinning(rt, rt->nshards + nexp + nrt);
	}
	/* Threads: processors first so they get the first CPUs, then exporters, receivers. */
	for (unsigned s = 0; s < rt->nshards; s++) {
		struct ptd *pt = &rt->pthreads[s];
		snprintf(pt->tb.name, sizeof(pt->tb.name), "proc#%u", s);
		place(rt, &pt->tb);
		pt->shard = s;
		dbi_wait_init(&pt->wait);
		if (thread_region(rt, &pt->tb, DBI_PROCESSOR) != DBI_OK)
			goto nospace;
		for (int k = 0; k < 3; k++)
			if (dbi_batch_alloc(&pt->work[k],
			                    k == 0   ? DBI_SIG_METRICS
			                    : k == 1 ? DBI_SIG_LOGS
			                             : DBI_SIG_TRACES,
			                    RT_BURST, RT_REC_BURST) != DBI_OK)
				goto nomem;
		if (dbi_batch_alloc(&pt->copy, DBI_SIG_METRICS, RT_BURST, RT_REC_BURST) != DBI_OK ||
		    dbi_arena_init(&pt->arena, 1u << 20) != DBI_OK)
			goto nomem;
		for (int k = 0; k < 3; k++)
			pt->work[k].arena = &pt->arena;
	}
	for (unsigned e = 0; e < rt->nexporters; e++) {
		struct etd *et = &rt->ethreads[e];
		et->ci = &rt->exporters[e];
		snprintf(et->tb.name, sizeof(et->tb.name), "exp:%s", et->ci->id);
		place(rt, &et->tb);
		dbi_wait_init(&et->wait);
		if (thread_region(rt, &et->tb, DBI_EXPORTER) != DBI_OK)
			goto nospace;
		for (int k = 0; k < 3; k++)
			if (dbi_batch_alloc(&et->b[k],
			                    k == 0   ? DBI_SIG_METRICS
			                    : k == 1 ? DBI_SIG_LOGS
			                             : DBI_SIG_TRACES,
			                    8192, 4096) != DBI_OK)
				goto nomem;
		if (dbi_arena_init(&et->arena, 1u << 16) != DBI_OK)
			goto nomem;
		et->in = calloc(rt->nshards, sizeof(*et->in));
		if (!et->in)
			goto nomem;
	}
	rt->rthreads = calloc(rt->nrthreads ? rt->nrthreads : 1, sizeof(*rt->rthreads));
	if (!rt->rthreads)
		goto nomem;
	/* each processor thread takes input from every receiver thread */
	for (unsigned s = 0; s < rt->nshards; s++) {
		rt->pthreads[s].in = calloc(rt->nrthreads ? rt->nrthreads : 1, sizeof(*rt->pthreads[s].in));
		if (!rt->pthreads[s].in)
			goto nomem;
	}
	for (unsigned r = 0, t = 0; r < rt->nreceivers; r++) {
		struct comp_inst *ci = &rt->receivers[r];
		unsigned n = receiver_threads(ci->cc, cfg);
		for (unsigned i = 0; i < n; i++, t++) {
			struct dbi_rctx *c = &rt->rthreads[t];
			c->ci = ci;
			c->index = i;
			c->nthreads = n;
			c->nshards = rt->nshards;
			c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (c->wake_fd < 0)
				goto nomem;
			snprintf(c->tb.name, sizeof(c->tb.name), "rcv:%s#%u", ci->id, i);
			place(rt, &c->tb);
			if (thread_region(rt, &c->tb, DBI_RECEIVER) != DBI_OK)
				goto nospace;
			if (n == 1) {
				c->stats = ci->stats; /* shares the instance block */
			} else {
				char sid[DBI_STATS_ID];
				snprintf(sid, sizeof(sid), "receiver:%s#%u", ci->id, i);
				if (stats_block(rt, &c->stats, DBI_SK_RECEIVER, sid, ci->cc->desc->type,
				                ci->cc->desc->stats) != DBI_OK)
					goto nospace;
			}
			c->out = calloc(rt->nshards, sizeof(*c->out));
			if (!c->out)
				goto nomem;
			for (unsigned s = 0; s < rt->nshards; s++) {
				struct ptd *pt = &rt->pthreads[s];
				c->out[s] = chan_new(rt, c->tb.name, pt->tb.name, &pt->wait, pt->tb.numa_node);
				if (!c->out[s])
					goto nospace;
				c->out[s]->source = ci->inst.source;
				pt->in[pt->nin++] = c->out[s];
			}
		}
	}
	/* Processor → exporter chans: one per (processor thread, exporter). */
	struct chan **echan = calloc((size_t)DBI_MAX(1u, rt->nshards) * DBI_MAX(1u, rt->nexporters), sizeof(*echan));
	if (!echan)
		goto nomem;
	for (unsigned s = 0; s < rt->nshards; s++) {
		for (unsigned e = 0; e < rt->nexporters; e++) {
			struct etd *et = &rt->ethreads[e];
			struct chan *c =
			        chan_new(rt, rt->pthreads[s].tb.name, et->tb.name, &et->wait, et->tb.numa_node);
			if (!c) {
				free(echan);
				goto nospace;
			}
			echan[s * rt->nexporters + e] = c;
			et->in[et->nin++] = c;
		}
	}
	/* Pipelines: a chain of processor instances per (pipeline, processor thread). */
	for (unsigned s = 0; s < rt->nshards; s++) {
		struct ptd *pt = &rt->pthreads[s];
		pt->pls = calloc(cfg->npipelines ? cfg->npipelines : 1, sizeof(*pt->pls));
		if (!pt->pls) {
			free(echan);
			goto nomem;
		}
		for (size_t p = 0; p < cfg->npipelines; p++) {
			const struct dbi_conf_pipeline *pl = &cfg->pipelines[p];
			struct pl_shard *ps = &pt->pls[pt->npls];
			ps->pl = pl;
			ps->pt = pt;
			ps->procs = calloc(pl->nprocessors ? pl->nprocessors : 1, sizeof(*ps->procs));
			ps->outs = calloc(pl->nexporters, sizeof(*ps->outs));
			if (!ps->procs || !ps->outs) {
				free(echan);
				goto nomem;
			}
			pt->npls++;
			for (size_t k = 0; k < pl->nprocessors; k++) {
				struct comp_inst *ci = calloc(1, sizeof(*ci));
				if (!ci) {
					free(echan);
					goto nomem;
				}
				ps->procs[ps->nprocs++] = ci;
				if (inst_create(rt, ci, &cfg->components[pl->processors[k]], pl->id, s, err) !=
				    DBI_OK) {
					free(echan);
					return DBI_ERR;
				}
			}
			for (size_t k = 0; k < pl->nexporters; k++) {
				const struct dbi_conf_component *ec = &cfg->components[pl->exporters[k]];
				for (unsigned e = 0; e < rt->nexporters; e++)
					if (rt->exporters[e].cc == ec)
						ps->outs[ps->nouts++] = echan[s * rt->nexporters + e];
			}
			unsigned si = dbi_sig_index(pl->signal);
			for (size_t k = 0; k < pl->nreceivers; k++) {
				const struct dbi_conf_component *rc = &cfg->components[pl->receivers[k]];
				for (unsigned r = 0; r < rt->nreceivers; r++) {
					struct route *ro = &pt->routes[rt->receivers[r].inst.source][si];
					if (rt->receivers[r].cc == rc && ro->n < DBI_ARRAY_LEN(ro->pls))
						ro->pls[ro->n++] = pt->npls - 1;
				}
			}
		}
	}
	free(echan);
	/* Say once which signals a receiver could emit that no pipeline of it carries. */
	for (unsigned r = 0; r < rt->nreceivers; r++) {
		const struct comp_inst *ci = &rt->receivers[r];
		for (unsigned si = 0; si < 3; si++) {
			unsigned sig = 1u << si;
			if ((ci->cc->desc->signals & sig) && rt->pthreads[0].routes[ci->inst.source][si].n == 0)
				DBI_LOGI("runtime",
				         "receiver is in no pipeline of this signal: what it emits of it is dropped "
				         "and counted (dropped.no_pipeline)",
				         "receiver=%s signal=%s", ci->id, dbi_signal_name(sig));
		}
	}
	return DBI_OK;
nospace:
	dbi_err_add(err, "shared memory segment %s is too small (%llu bytes free); raise runtime.shm.size",
	            dbi_shm_path(rt->shm), (unsigned long long)dbi_shm_free_bytes(rt->shm));
	return DBI_ERR;
nomem:
	dbi_err_add(err, "out of memory building the pipelines");
	return DBI_ERR;
}

static void teardown(struct dbi_runtime *rt)
{
	for (unsigned s = 0; s < rt->nshards && rt->pthreads; s++) {
		struct ptd *pt = &rt->pthreads[s];
		for (unsigned p = 0; p < pt->npls; p++) {
			struct pl_shard *ps = &pt->pls[p];
			for (unsigned i = 0; i < ps->nprocs; i++) {
				inst_destroy(ps->procs[i]);
				free(ps->procs[i]);
			}
			free(ps->procs);
			free(ps->outs);
		}
		free(pt->pls);
		free(pt->in);
		for (int k = 0; k < 3; k++)
			dbi_batch_free(&pt->work[k]);
		dbi_batch_free(&pt->copy);
		dbi_arena_free(&pt->arena);
	}
	for (unsigned t = 0; t < rt->nrthreads && rt->rthreads; t++) {
		struct dbi_rctx *c = &rt->rthreads[t];
		for (unsigned s = 0; s < rt->nshards && c->out; s++)
			free(c->out[s]);
		free(c->out);
		if (c->wake_fd > 0)
			close(c->wake_fd);
	}
	for (unsigned e = 0; e < rt->nexporters && rt->ethreads; e++) {
		struct etd *et = &rt->ethreads[e];
		for (unsigned i = 0; i < et->nin; i++)
			free(et->in[i]);
		free(et->in);
		for (int k = 0; k < 3; k++)
			dbi_batch_free(&et->b[k]);
		dbi_arena_free(&et->arena);
	}
	for (unsigned r = 0; r < rt->nreceivers; r++)
		inst_destroy(&rt->receivers[r]);
	for (unsigned e = 0; e < rt->nexporters; e++)
		inst_destroy(&rt->exporters[e]);
	for (unsigned x = 0; x < rt->nextensions; x++)
		inst_destroy(&rt->extensions[x]);
	free(rt->receivers);
	free(rt->exporters);
	free(rt->extensions);
	free(rt->pthreads);
	free(rt->ethreads);
	free(rt->rthreads);
	rt->receivers = rt->exporters = rt->extensions = NULL;
	rt->pthreads = NULL;
	rt->ethreads = NULL;
	rt->rthreads = NULL;
	rt->nreceivers = rt->nexporters = rt->nextensions = rt->nrthreads = rt->nshards = 0;
}

int dbi_runtime_create(struct dbi_runtime **out, const struct dbi_config *cfg, const struct dbi_runtime_opts *o,
                       struct dbi_errbuf *err)
{
	struct dbi_runtime *rt = calloc(1, sizeof(*rt));
	unsigned nrth = 0, nexp = 0, ninst = 0;
	if (!rt) {
		dbi_err_add(err, "out of memory");
		return DBI_ERR;
	}
	rt->cfg_in = cfg;
	dbi_strlcpy(rt->version, o && o->version ? o->version : "", sizeof(rt->version));
	for (size_t i = 0; i < cfg->ncomponents; i++) {
		const struct dbi_conf_component *cc = &cfg->components[i];
		if (cc->desc->kind == DBI_RECEIVER)
			nrth += receiver_threads(cc, cfg);
		nexp += cc->desc->kind == DBI_EXPORTER;
		ninst += cc->desc->kind == DBI_PROCESSOR ? (unsigned)cfg->runtime.processors * 4 : nrth + 1;
	}
	struct dbi_shm_opts so = {
	        .name = cfg->runtime.shm_name,
	        .dir = cfg->runtime.shm_dir && *cfg->runtime.shm_dir ? cfg->runtime.shm_dir : NULL,
	        .hugepages = cfg->runtime.hugepages,
	        .size = cfg->runtime.shm_size ? cfg->runtime.shm_size
	                                      : shm_size_for(cfg, nrth, (unsigned)cfg->runtime.processors, nexp, ninst),
	        .version = rt->version,
	};
	if (dbi_shm_create(&rt->shm, &so, err) != DBI_OK)
		goto fail;
	rt->reg = dbi_registry_create((uint32_t)cfg->runtime.max_series);
	if (!rt->reg) {
		dbi_err_add(err, "cannot create the series registry");
		goto fail;
	}
	if (build(rt, err) != DBI_OK)
		goto fail;
	rt->start_mono = dbi_mono_ns();
	*out = rt;
	return DBI_OK;
fail:
	dbi_runtime_destroy(rt);
	return DBI_ERR;
}

static int start_threads(struct dbi_runtime *rt, struct dbi_errbuf *err)
{
	atomic_store(&rt->stop_receivers, 0);
	atomic_store(&rt->stopping, 0);
	atomic_store(&rt->deadline, 0);
	for (unsigned x = 0; x < rt->nextensions; x++) {
		struct comp_inst *ci = &rt->extensions[x];
		if (ci->cc->desc->start && ci->cc->desc->start(ci->state, err) != DBI_OK)
			return DBI_ERR;
	}
	for (unsigned e = 0; e < rt->nexporters; e++) {
		struct comp_inst *ci = &rt->exporters[e];
		if (ci->cc->desc->start && ci->cc->desc->start(ci->state, err) != DBI_OK)
			return DBI_ERR;
	}
	for (unsigned r = 0; r < rt->nreceivers; r++) {
		struct comp_inst *ci = &rt->receivers[r];
		if (ci->cc->desc->start && ci->cc->desc->start(ci->state, err) != DBI_OK)
			return DBI_ERR;
	}
	for (unsigned e = 0; e < rt->nexporters; e++) {
		struct etd *et = &rt->ethreads[e];
		if (pthread_create(&et->tb.tid, NULL, dbi_rt_exporter_main, et) != 0)
			goto fail;
		et->tb.started = 1;
	}
	for (unsigned s = 0; s < rt->nshards; s++) {
		struct ptd *pt = &rt->pthreads[s];
		if (pthread_create(&pt->tb.tid, NULL, dbi_rt_processor_main, pt) != 0)
			goto fail;
		pt->tb.started = 1;
	}
	for (unsigned t = 0; t < rt->nrthreads; t++) {
		struct dbi_rctx *c = &rt->rthreads[t];
		if (pthread_create(&c->tb.tid, NULL, dbi_rt_receiver_main, c) != 0)
			goto fail;
		c->tb.started = 1;
	}
	atomic_store(&rt->running, 1);
	dbi_shm_set_state(rt->shm, DBI_RUN_RUNNING);
	return DBI_OK;
fail:
	dbi_err_add(err, "cannot start threads: %s", strerror(errno));
	return DBI_ERR;
}

/*
 * Start, move or stop the self-telemetry endpoint to match the config. It lives from
 * start to destroy, across reloads (which stop and restart the pipelines) and through
 * the final drain. A port that cannot be bound is logged, not fatal: the collector's
 * own metrics are not worth losing the data path for.
 */
static void telemetry_apply(struct dbi_runtime *rt)
{
	const struct dbi_conf_service *svc = &rt->cfg_in->service;
	const struct dbi_endpoint *ep = &svc->metrics_address;
	if (rt->telemetry) {
		const struct dbi_endpoint *cur = dbi_telemetry_endpoint(rt->telemetry);
		if (svc->metrics_enabled && cur->port == ep->port && strcmp(cur->host, ep->host) == 0)
			return;
		dbi_telemetry_stop(rt->telemetry);
		rt->telemetry = NULL;
	}
	if (!svc->metrics_enabled)
		return;
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	if (dbi_telemetry_start(&rt->telemetry, rt->shm, ep, &err) != DBI_OK)
		DBI_LOGE("runtime", "self-telemetry endpoint not started", "error=\"%s\"", err.msg);
}

int dbi_runtime_start(struct dbi_runtime *rt, struct dbi_errbuf *err)
{
	dbi_shm_set_state(rt->shm, DBI_RUN_STARTING);
	if (start_threads(rt, err) != DBI_OK) {
		dbi_runtime_stop(rt, 2 * DBI_NSEC_PER_SEC);
		return DBI_ERR;
	}
	telemetry_apply(rt);
	return DBI_OK;
}

static int join_until(struct thread_base *tb, uint64_t deadline_mono)
{
	if (!tb->started)
		return DBI_OK;
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		int rc = pthread_timedjoin_np(tb->tid, NULL, &ts);
		if (rc == 0) {
			tb->started = 0;
			return DBI_OK;
		}
		if (dbi_mono_ns() >= deadline_mono)
			return DBI_AGAIN;
	}
}

int dbi_runtime_stop(struct dbi_runtime *rt, uint64_t timeout_ns)
{
	int rc = DBI_OK;
	uint64_t deadline = dbi_mono_ns() + timeout_ns;
	/* threads give up on blocked hand-offs at the deadline; joins get a short grace */
	uint64_t hard = deadline + 2 * DBI_NSEC_PER_SEC;

	dbi_shm_set_state(rt->shm, DBI_RUN_STOPPING);
	atomic_store(&rt->deadline, deadline);
	atomic_store(&rt->stop_receivers, 1);
	for (unsigned t = 0; t < rt->nrthreads; t++) {
		uint64_t one = 1;
		if (write(rt->rthreads[t].wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			DBI_LOGW("runtime", "cannot wake receiver", "thread=%s", rt->rthreads[t].tb.name);
	}
	for (unsigned t = 0; t < rt->nrthreads; t++) {
		if (join_until(&rt->rthreads[t].tb, hard) != DBI_OK) {
			DBI_LOGE("runtime", "receiver thread did not stop in time", "thread=%s",
			         rt->rthreads[t].tb.name);
			rc = DBI_AGAIN;
		}
	}
	atomic_store_explicit(&rt->stopping, 1, memory_order_release);
	for (unsigned s = 0; s < rt->nshards; s++)
		dbi_wait_wake(&rt->pthreads[s].wait);
	for (unsigned s = 0; s < rt->nshards; s++) {
		if (join_until(&rt->pthreads[s].tb, hard) != DBI_OK) {
			DBI_LOGE("runtime", "processor thread did not stop in time", "thread=%s",
			         rt->pthreads[s].tb.name);
			rc = DBI_AGAIN;
		}
	}
	for (unsigned e = 0; e < rt->nexporters; e++)
		dbi_wait_wake(&rt->ethreads[e].wait);
	for (unsigned e = 0; e < rt->nexporters; e++) {
		if (join_until(&rt->ethreads[e].tb, hard) != DBI_OK) {
			DBI_LOGE("runtime", "exporter thread did not stop in time", "thread=%s",
			         rt->ethreads[e].tb.name);
			rc = DBI_AGAIN;
		}
	}
	if (rc != DBI_OK)
		return rc; /* threads still run: components cannot be stopped safely */
	for (unsigned r = 0; r < rt->nreceivers; r++)
		if (rt->receivers[r].cc->desc->stop)
			rt->receivers[r].cc->desc->stop(rt->receivers[r].state);
	for (unsigned e = 0; e < rt->nexporters; e++)
		if (rt->exporters[e].cc->desc->stop)
			rt->exporters[e].cc->desc->stop(rt->exporters[e].state);
	for (unsigned x = 0; x < rt->nextensions; x++)
		if (rt->extensions[x].cc->desc->stop)
			rt->extensions[x].cc->desc->stop(rt->extensions[x].state);
	atomic_store(&rt->running, 0);
	struct dbi_runtime_totals t;
	dbi_runtime_totals(rt, &t);
	if (dbi_mono_ns() > deadline || t.dropped) {
		DBI_LOGW("runtime", "stopped", "points_in=%llu points_out=%llu dropped=%llu",
		         (unsigned long long)t.points_in, (unsigned long long)t.points_out,
		         (unsigned long long)t.dropped);
		if (dbi_mono_ns() > deadline)
			rc = DBI_AGAIN;
	}
	dbi_shm_set_state(rt->shm, DBI_RUN_STOPPED);
	return rc;
}

void dbi_runtime_destroy(struct dbi_runtime *rt)
{
	if (!rt)
		return;
	if (atomic_load(&rt->running))
		dbi_runtime_stop(rt, 5 * DBI_NSEC_PER_SEC);
	dbi_telemetry_stop(rt->telemetry);
	rt->telemetry = NULL;
	teardown(rt);
	dbi_registry_destroy(rt->reg);
	if (rt->shm)
		dbi_shm_destroy(rt->shm);
	free(rt);
}

/* Structure equal (same components, types, pipelines, runtime) → in-place reload possible. */
static int same_structure(const struct dbi_config *a, const struct dbi_config *b)
{
	if (a->ncomponents != b->ncomponents || a->npipelines != b->npipelines)
		return 0;
	if (a->runtime.processors != b->runtime.processors || a->runtime.scrapers != b->runtime.scrapers ||
	    a->runtime.ring_points != b->runtime.ring_points || a->runtime.ring_bytes != b->runtime.ring_bytes ||
	    strcmp(a->runtime.shm_name, b->runtime.shm_name) != 0 || a->runtime.hugepages != b->runtime.hugepages)
		return 0;
	for (size_t i = 0; i < a->ncomponents; i++)
		if (strcmp(a->components[i].id, b->components[i].id) != 0 ||
		    a->components[i].desc != b->components[i].desc)
			return 0;
	for (size_t p = 0; p < a->npipelines; p++) {
		const struct dbi_conf_pipeline *x = &a->pipelines[p], *y = &b->pipelines[p];
		if (strcmp(x->id, y->id) != 0 || x->nreceivers != y->nreceivers || x->nprocessors != y->nprocessors ||
		    x->nexporters != y->nexporters)
			return 0;
		if (memcmp(x->receivers, y->receivers, x->nreceivers * sizeof(int)) ||
		    (x->nprocessors && memcmp(x->processors, y->processors, x->nprocessors * sizeof(int))) ||
		    memcmp(x->exporters, y->exporters, x->nexporters * sizeof(int)))
			return 0;
	}
	return 1;
}

/* Every changed component supports reconfigure → apply in place. */
static int reload_in_place(struct dbi_runtime *rt, const struct dbi_config *cfg, struct dbi_errbuf *err, int *done)
{
	const struct dbi_config *old = rt->cfg_in;
	*done = 0;
	if (!same_structure(old, cfg))
		return DBI_OK;
	for (size_t i = 0; i < cfg->ncomponents; i++)
		if (old->components[i].hash != cfg->components[i].hash && !cfg->components[i].desc->reconfigure)
			return DBI_OK;
	/* apply to every instance of each changed component */
	for (size_t i = 0; i < cfg->ncomponents; i++) {
		const struct dbi_conf_component *oc = &old->components[i], *nc = &cfg->components[i];
		if (oc->hash == nc->hash)
			continue;
		const struct dbi_component *d = nc->desc;
		struct comp_inst *list[256];
		unsigned n = 0;
		for (unsigned r = 0; r < rt->nreceivers; r++)
			if (rt->receivers[r].cc == oc)
				list[n++] = &rt->receivers[r];
		for (unsigned e = 0; e < rt->nexporters; e++)
			if (rt->exporters[e].cc == oc)
				list[n++] = &rt->exporters[e];
		for (unsigned x = 0; x < rt->nextensions; x++)
			if (rt->extensions[x].cc == oc)
				list[n++] = &rt->extensions[x];
		for (unsigned s = 0; s < rt->nshards; s++)
			for (unsigned p = 0; p < rt->pthreads[s].npls; p++)
				for (unsigned k = 0; k < rt->pthreads[s].pls[p].nprocs && n < DBI_ARRAY_LEN(list); k++)
					if (rt->pthreads[s].pls[p].procs[k]->cc == oc)
						list[n++] = rt->pthreads[s].pls[p].procs[k];
		for (unsigned k = 0; k < n; k++) {
			if (d->reconfigure(list[k]->state, nc->cfg, err) != DBI_OK)
				return DBI_ERR;
			list[k]->inst.cfg = nc->cfg;
		}
		DBI_LOGI("runtime", "component reconfigured in place", "component=%s", nc->id);
	}
	/* every instance now points at the new config's copy (the changed ones were only reconfigured above) */
	for (unsigned r = 0; r < rt->nreceivers; r++)
		rt->receivers[r].cc = &cfg->components[rt->receivers[r].cc - old->components];
	for (unsigned e = 0; e < rt->nexporters; e++)
		rt->exporters[e].cc = &cfg->components[rt->exporters[e].cc - old->components];
	for (unsigned x = 0; x < rt->nextensions; x++)
		rt->extensions[x].cc = &cfg->components[rt->extensions[x].cc - old->components];
	for (unsigned s = 0; s < rt->nshards; s++)
		for (unsigned p = 0; p < rt->pthreads[s].npls; p++) {
			struct pl_shard *ps = &rt->pthreads[s].pls[p];
			ps->pl = &cfg->pipelines[ps->pl - old->pipelines];
			for (unsigned k = 0; k < ps->nprocs; k++)
				ps->procs[k]->cc = &cfg->components[ps->procs[k]->cc - old->components];
		}
	*done = 1;
	return DBI_OK;
}

int dbi_runtime_reload(struct dbi_runtime *rt, const struct dbi_config *cfg, struct dbi_errbuf *err)
{
	int done = 0;
	if (reload_in_place(rt, cfg, err, &done) != DBI_OK) {
		rt->rstats.local[RS_RELOAD_FAIL]++;
		return DBI_ERR;
	}
	if (done) {
		rt->cfg_in = cfg;
		rt->rstats.local[RS_RELOADS]++;
		telemetry_apply(rt);
		return DBI_OK;
	}
	/*
	 * Structural change: drain the running pipelines completely, then rebuild in the
	 * same segment. If the new pipelines cannot be built, rebuild the old ones.
	 */
	if (strcmp(rt->cfg_in->runtime.shm_name, cfg->runtime.shm_name) != 0) {
		dbi_err_add(err, "runtime.shm.name cannot change on reload (restart the collector)");
		rt->rstats.local[RS_RELOAD_FAIL]++;
		return DBI_ERR;
	}
	DBI_LOGI("runtime", "reload: draining pipelines to rebuild them", "");
	dbi_shm_set_state(rt->shm, DBI_RUN_RELOADING);
	uint64_t reloads = rt->rstats.local[RS_RELOADS], fails = rt->rstats.local[RS_RELOAD_FAIL];
	if (dbi_runtime_stop(rt, rt->cfg_in->service.shutdown_timeout) != DBI_OK) {
		dbi_err_add(err, "reload: the running pipelines did not drain in time");
		return DBI_ERR;
	}
	const struct dbi_config *old = rt->cfg_in;
	teardown(rt);
	dbi_shm_reset(rt->shm);
	rt->cfg_in = cfg;
	if (build(rt, err) == DBI_OK && start_threads(rt, err) == DBI_OK) {
		rt->rstats.local[RS_RELOADS] = reloads + 1;
		rt->rstats.local[RS_RELOAD_FAIL] = fails;
		telemetry_apply(rt);
		return DBI_OK;
	}
	DBI_LOGE("runtime", "reload: new pipelines failed to start; restoring the previous config", "");
	dbi_runtime_stop(rt, 2 * DBI_NSEC_PER_SEC);
	teardown(rt);
	dbi_shm_reset(rt->shm);
	rt->cfg_in = old;
	struct dbi_errbuf e2;
	dbi_err_clear(&e2);
	if (build(rt, &e2) != DBI_OK || start_threads(rt, &e2) != DBI_OK)
		DBI_LOGE("runtime", "cannot restore the previous config", "error=\"%s\"", e2.msg);
	rt->rstats.local[RS_RELOADS] = reloads;
	rt->rstats.local[RS_RELOAD_FAIL] = fails + 1;
	return DBI_ERR;
}

/* ---- accessors, health, housekeeping ---- */

struct dbi_registry *dbi_runtime_registry(struct dbi_runtime *rt)
{
	return rt->reg;
}

struct dbi_shm *dbi_runtime_shm(struct dbi_runtime *rt)
{
	return rt->shm;
}

const struct dbi_config *dbi_runtime_config(struct dbi_runtime *rt)
{
	return rt->cfg_in;
}

void dbi_runtime_set_pressure(struct dbi_runtime *rt, int level)
{
	atomic_store_explicit(&rt->pressure, level, memory_order_relaxed);
}

int dbi_runtime_pressure(const struct dbi_runtime *rt)
{
	return atomic_load_explicit(&rt->pressure, memory_order_relaxed);
}

const char *dbi_health_name(enum dbi_health h)
{
	static const char *const n[] = {"starting", "ok", "stalled", "stopping"};
	return h <= DBI_HEALTH_STOPPING ? n[h] : "?";
}

static int stale(const struct thread_base *tb, uint64_t now, uint64_t stall_ns)
{
	if (!tb->shm)
		return 0;
	uint64_t hb = atomic_load_explicit(&tb->shm->heartbeat_mono_ns, memory_order_relaxed);
	return hb && now > hb && now - hb > stall_ns;
}

size_t dbi_runtime_health(struct dbi_runtime *rt, uint64_t stall_ns, struct dbi_pipeline_health *out, size_t max,
                          enum dbi_health *overall)
{
	const struct dbi_config *cfg = rt->cfg_in;
	struct dbi_shm_header *h = dbi_shm_header(rt->shm);
	uint32_t st = atomic_load(&h->state);
	uint64_t now = dbi_mono_ns();
	enum dbi_health all = DBI_HEALTH_OK;
	if (st == DBI_RUN_STARTING || st == DBI_RUN_RELOADING)
		all = DBI_HEALTH_STARTING;
	else if (st == DBI_RUN_STOPPING || st == DBI_RUN_STOPPED)
		all = DBI_HEALTH_STOPPING;
	for (size_t p = 0; p < cfg->npipelines && p < max; p++) {
		const struct dbi_conf_pipeline *pl = &cfg->pipelines[p];
		struct dbi_pipeline_health *ph = &out[p];
		dbi_strlcpy(ph->id, pl->id, sizeof(ph->id));
		ph->state = all;
		ph->reason[0] = '\0';
		if (all != DBI_HEALTH_OK)
			continue;
		for (unsigned s = 0; s < rt->nshards && ph->state == DBI_HEALTH_OK; s++)
			if (stale(&rt->pthreads[s].tb, now, stall_ns)) {
				ph->state = DBI_HEALTH_STALLED;
				snprintf(ph->reason, sizeof(ph->reason), "processor thread %s is not making progress",
				         rt->pthreads[s].tb.name);
			}
		for (size_t k = 0; k < pl->nexporters && ph->state == DBI_HEALTH_OK; k++)
			for (unsigned e = 0; e < rt->nexporters; e++)
				if (rt->exporters[e].cc == &cfg->components[pl->exporters[k]] &&
				    stale(&rt->ethreads[e].tb, now, stall_ns)) {
					ph->state = DBI_HEALTH_STALLED;
					snprintf(ph->reason, sizeof(ph->reason), "exporter %s is not making progress",
					         rt->exporters[e].id);
				}
		for (size_t k = 0; k < pl->nreceivers && ph->state == DBI_HEALTH_OK; k++)
			for (unsigned t = 0; t < rt->nrthreads; t++) {
				struct dbi_rctx *c = &rt->rthreads[t];
				if (c->ci->cc != &cfg->components[pl->receivers[k]])
					continue;
				if (stale(&c->tb, now, stall_ns)) {
					ph->state = DBI_HEALTH_STALLED;
					snprintf(ph->reason, sizeof(ph->reason),
					         "receiver %s thread %u is not making progress", c->ci->id, c->index);
				}
			}
	}
	enum dbi_health worst = all;
	for (size_t p = 0; p < cfg->npipelines && p < max; p++)
		if (out[p].state == DBI_HEALTH_STALLED)
			worst = DBI_HEALTH_STALLED;
	if (overall)
		*overall = worst;
	return cfg->npipelines;
}

static uint64_t sum_counter(const struct dbi_stats *s, unsigned idx)
{
	return s->blk ? __atomic_load_n(&s->blk->v[idx], __ATOMIC_RELAXED) : 0;
}

void dbi_runtime_totals(struct dbi_runtime *rt, struct dbi_runtime_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < rt->nrthreads; i++) {
		t->points_in += sum_counter(&rt->rthreads[i].tb.ts, TS_POINTS_IN);
		t->records_in += sum_counter(&rt->rthreads[i].tb.ts, TS_RECORDS_IN);
	}
	for (unsigned e = 0; e < rt->nexporters; e++) {
		t->points_out += sum_counter(&rt->ethreads[e].tb.ts, TS_POINTS_OUT);
		t->records_out += sum_counter(&rt->ethreads[e].tb.ts, TS_RECORDS_OUT);
	}
	for (unsigned s = 0; s < rt->nshards; s++) {
		const struct dbi_stats *ts = &rt->pthreads[s].tb.ts;
		t->dropped += sum_counter(ts, TS_DROP_EXPORTER_FULL) + sum_counter(ts, TS_DROP_SHUTDOWN) +
		              sum_counter(ts, TS_DROP_TOO_LARGE) + sum_counter(ts, TS_DROP_NO_PIPELINE);
	}
}

void dbi_runtime_housekeeping(struct dbi_runtime *rt)
{
	struct dbi_registry_stats rs;
	dbi_shm_heartbeat(rt->shm);
	if (rt->main_thread)
		atomic_store(&rt->main_thread->heartbeat_mono_ns, dbi_mono_ns());
	dbi_registry_get_stats(rt->reg, &rs);
	rt->rstats.local[RS_UPTIME] = (dbi_mono_ns() - rt->start_mono) / DBI_NSEC_PER_SEC;
	rt->rstats.local[RS_RSS] = dbi_proc_rss_bytes();
	rt->rstats.local[RS_SERIES] = rs.series;
	rt->rstats.local[RS_SERIES_LIMIT] = rs.series_limit_hits;
	rt->rstats.local[RS_REGISTRY_BYTES] = rs.bytes;
	rt->rstats.local[RS_PRESSURE] = (uint64_t)dbi_runtime_pressure(rt);
	rt->rstats.local[RS_SHM_FREE] = dbi_shm_free_bytes(rt->shm);
	dbi_stats_publish(&rt->rstats);
}
