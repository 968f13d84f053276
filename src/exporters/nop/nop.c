/*
 * nop.c — the `nop` exporter: a sink that only counts. It is the null end of
 * benchmarks and drain tests: points and records in, a sum of producer sequence numbers
 * (so a test can tell lost and duplicated points apart from a plain count), and the
 * latency from the producer's enqueue to this hand-off as a log-linear histogram with
 * p50/p99/max published as gauges.
 */
#include <stdlib.h>
#include <string.h>

#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/log.h"

enum { N_POINTS, N_RECORDS, N_BATCHES, N_SEQ_SUM, N_P50, N_P99, N_MAX, N_NSTATS };
static const struct dbi_stat_def nop_stats[] = {
        [N_POINTS] = {"points", DBI_STAT_COUNTER, "points received"},
        [N_RECORDS] = {"records", DBI_STAT_COUNTER, "byte records received"},
        [N_BATCHES] = {"batches", DBI_STAT_COUNTER, "batches received"},
        [N_SEQ_SUM] = {"seq_sum", DBI_STAT_COUNTER, "sum of producer sequence numbers (mod 2^64)"},
        [N_P50] = {"latency_p50_ns", DBI_STAT_GAUGE, "median enqueue-to-exporter latency"},
        [N_P99] = {"latency_p99_ns", DBI_STAT_GAUGE, "99th percentile enqueue-to-exporter latency"},
        [N_MAX] = {"latency_max_ns", DBI_STAT_GAUGE, "largest enqueue-to-exporter latency"},
        [N_NSTATS] = {NULL, 0, NULL},
};

struct nop_cfg {
	uint64_t latency_warmup;
};

static const struct dbi_conf_key nop_keys[] = {
        {.name = "latency_warmup",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct nop_cfg, latency_warmup),
         .def = "0s",
         .doc = "leave latencies out of the quantiles for this long after the first batch (benchmarks)"},
        DBI_CONF_END,
};

/* Log-linear buckets: 8 sub-buckets per power of two, from 1 ns to ~2^40 ns. */
#define SUB 8
#define NB (41 * SUB)

struct nop {
	struct dbi_stats *st;
	uint64_t warmup_ns, first_ns;
	uint64_t hist[NB];
	uint64_t count, max;
	uint64_t last_pub;
};

static unsigned bucket_of(uint64_t v)
{
	if (v < SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned sub = (unsigned)((v >> (msb - 3)) & (SUB - 1));
	unsigned b = (msb - 2) * SUB + sub;
	return b < NB ? b : NB - 1;
}

static uint64_t bucket_upper(unsigned b)
{
	if (b < SUB)
		return b;
	unsigned msb = b / SUB + 2, sub = b % SUB;
	return ((uint64_t)(SUB + sub + 1) << (msb - 3)) - 1;
}

static uint64_t quantile(const struct nop *n, double q)
{
	uint64_t want = (uint64_t)((double)n->count * q), seen = 0;
	for (unsigned b = 0; b < NB; b++) {
		seen += n->hist[b];
		if (seen > want)
			return bucket_upper(b);
	}
	return n->max;
}

static int nop_create(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err)
{
	struct nop *n = calloc(1, sizeof(*n));
	if (!n) {
		dbi_err_add(err, "%s: out of memory", inst->id);
		return DBI_ERR;
	}
	n->st = inst->stats;
	n->warmup_ns = ((const struct nop_cfg *)inst->cfg)->latency_warmup;
	*state = n;
	return DBI_OK;
}

static void nop_destroy(void *state)
{
	free(state);
}

static void publish_quantiles(struct nop *n)
{
	if (!n->count)
		return;
	dbi_stats_set(n->st, N_P50, quantile(n, 0.50));
	dbi_stats_set(n->st, N_P99, quantile(n, 0.99));
	dbi_stats_set(n->st, N_MAX, n->max);
}

static int nop_consume(void *state, struct dbi_batch *b, struct dbi_next *next)
{
	struct nop *n = state;
	uint64_t now = dbi_mono_ns(), seqs = 0;
	(void)next;
	if (n->first_ns == 0)
		n->first_ns = now;
	int measure = now - n->first_ns >= n->warmup_ns;
	for (uint32_t i = 0; i < b->npts && !measure; i++)
		seqs += b->pts[i].seq;
	for (uint32_t i = 0; i < b->npts && measure; i++) {
		const struct dbi_point *p = &b->pts[i];
		uint64_t lat = now > p->ingest_ns ? now - p->ingest_ns : 0;
		n->hist[bucket_of(lat)]++;
		if (lat > n->max)
			n->max = lat;
		seqs += p->seq;
	}
	for (uint32_t i = 0; i < b->nrecs; i++)
		seqs += b->recs[i]->seq;
	if (measure)
		n->count += b->npts;
	dbi_stats_add(n->st, N_POINTS, b->npts);
	dbi_stats_add(n->st, N_RECORDS, b->nrecs);
	dbi_stats_add(n->st, N_BATCHES, 1);
	dbi_stats_add(n->st, N_SEQ_SUM, seqs);
	if (now - n->last_pub > 100 * DBI_NSEC_PER_MSEC) {
		publish_quantiles(n);
		n->last_pub = now;
	}
	return DBI_OK;
}

/* On drain, say what arrived: drain tests compare it with what the receivers emitted. */
static int nop_flush(void *state, struct dbi_next *next, uint64_t deadline)
{
	struct nop *n = state;
	(void)next;
	(void)deadline;
	publish_quantiles(n);
	DBI_LOGI("nop", "drained", "points=%llu records=%llu seq_sum=%llu",
	         (unsigned long long)dbi_stats_get(n->st, N_POINTS),
	         (unsigned long long)dbi_stats_get(n->st, N_RECORDS),
	         (unsigned long long)dbi_stats_get(n->st, N_SEQ_SUM));
	return DBI_OK;
}

const struct dbi_component dbi_exporter_nop = {
        .type = "nop",
        .kind = DBI_EXPORTER,
        .signals = DBI_SIG_METRICS | DBI_SIG_LOGS | DBI_SIG_TRACES,
        .doc = "discards everything, counting it and measuring pipeline latency (benchmarks, tests)",
        .keys = nop_keys,
        .conf_size = sizeof(struct nop_cfg),
        .stats = nop_stats,
        .create = nop_create,
        .destroy = nop_destroy,
        .consume = nop_consume,
        .flush = nop_flush,
};
