/*
 * batch.c — the `batch` processor (OTel semantics): gathers points and records and
 * passes them on when `send_batch_size` is reached or `timeout` has passed since the
 * first item was held; `send_batch_max_size` caps what is passed on at once (0 = no
 * cap). Buffers are sized at create, so steady state allocates nothing. Records are
 * copied into the processor's own arena, because a batch's records live only as long as
 * the call that delivered them.
 */
#include <stdlib.h>
#include <string.h>

#include "dbi/clock.h"
#include "dbi/component.h"

struct batch_cfg {
	int64_t send_batch_size;
	uint64_t timeout;
	int64_t send_batch_max_size;
	uint64_t max_record_bytes;
};

static const struct dbi_conf_key batch_keys[] = {
        {.name = "send_batch_size",
         .type = DBI_CT_INT,
         .offset = offsetof(struct batch_cfg, send_batch_size),
         .def = "8192",
         .doc = "pass a batch on once it holds this many items",
         .min = 1,
         .max = 10000000},
        {.name = "timeout",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct batch_cfg, timeout),
         .def = "200ms",
         .doc = "pass a batch on this long after its first item arrived, whatever its size"},
        {.name = "send_batch_max_size",
         .type = DBI_CT_INT,
         .offset = offsetof(struct batch_cfg, send_batch_max_size),
         .def = "0",
         .doc = "largest batch passed on at once (0 = no limit)",
         .min = 0,
         .max = 10000000},
        {.name = "max_record_bytes",
         .type = DBI_CT_SIZE,
         .offset = offsetof(struct batch_cfg, max_record_bytes),
         .def = "8MiB",
         .doc = "bytes of logs/spans/histograms held before passing a batch on"},
        DBI_CONF_END,
};

enum { B_SIZE_TRIGGER, B_TIMEOUT_TRIGGER, B_POINTS, B_RECORDS, B_HELD, B_NSTATS };
static const struct dbi_stat_def batch_stats[] = {
        [B_SIZE_TRIGGER] = {"batch_send_size", DBI_STAT_COUNTER, "batches passed on because they were full"},
        [B_TIMEOUT_TRIGGER] = {"batch_timeout", DBI_STAT_COUNTER, "batches passed on because of the timeout"},
        [B_POINTS] = {"points", DBI_STAT_COUNTER, "points passed on"},
        [B_RECORDS] = {"records", DBI_STAT_COUNTER, "records passed on"},
        [B_HELD] = {"held", DBI_STAT_GAUGE, "items held right now"},
        [B_NSTATS] = {NULL, 0, NULL},
};

struct batch {
	const struct batch_cfg *cfg;
	struct dbi_stats *st;
	struct dbi_batch buf; /* held items */
	struct dbi_arena arena;
	struct dbi_batch out; /* view passed downstream */
	uint64_t first_ns;    /* when the oldest held item arrived; 0 = empty */
	uint32_t max_out;
};

static int batch_validate(const void *c, const char *id, struct dbi_errbuf *err)
{
	const struct batch_cfg *cfg = c;
	if (cfg->send_batch_max_size && cfg->send_batch_max_size < cfg->send_batch_size) {
		dbi_err_add(err, "%s: send_batch_max_size (%lld) must be 0 or >= send_batch_size (%lld)", id,
		            (long long)cfg->send_batch_max_size, (long long)cfg->send_batch_size);
		return DBI_ERR;
	}
	return DBI_OK;
}

static int batch_create(const struct dbi_inst *inst, void **state, struct dbi_errbuf *err)
{
	const struct batch_cfg *cfg = inst->cfg;
	struct batch *b = calloc(1, sizeof(*b));
	/* room for a full batch plus one more burst from upstream */
	uint32_t cap = (uint32_t)cfg->send_batch_size + 4096;
	if (!b || dbi_batch_alloc(&b->buf, 0, cap, cap) != DBI_OK ||
	    dbi_arena_init(&b->arena, cfg->max_record_bytes) != DBI_OK) {
		if (b) {
			dbi_batch_free(&b->buf);
			free(b);
		}
		dbi_err_add(err, "%s: out of memory for a %u item batch", inst->id, cap);
		return DBI_ERR;
	}
	b->cfg = cfg;
	b->st = inst->stats;
	b->max_out = cfg->send_batch_max_size ? (uint32_t)cfg->send_batch_max_size : UINT32_MAX;
	*state = b;
	return DBI_OK;
}

static void batch_destroy(void *state)
{
	struct batch *b = state;
	dbi_batch_free(&b->buf);
	dbi_arena_free(&b->arena);
	free(b);
}

/* Pass on everything held, in slices of at most send_batch_max_size. */
static void send_held(struct batch *b, struct dbi_next *next)
{
	uint32_t po = 0, ro = 0;
	while (po < b->buf.npts || ro < b->buf.nrecs) {
		struct dbi_batch *o = &b->out;
		o->signal = b->buf.signal;
		o->arena = b->buf.arena;
		o->pts = b->buf.pts + po;
		o->npts = DBI_MIN(b->buf.npts - po, b->max_out);
		o->pts_cap = o->npts;
		uint32_t room = b->max_out - o->npts;
		o->recs = b->buf.recs + ro;
		o->nrecs = DBI_MIN(b->buf.nrecs - ro, room);
		o->recs_cap = o->nrecs;
		po += o->npts;
		ro += o->nrecs;
		dbi_stats_add(b->st, B_POINTS, o->npts);
		dbi_stats_add(b->st, B_RECORDS, o->nrecs);
		dbi_next(next, o);
	}
	b->buf.npts = b->buf.nrecs = 0;
	dbi_arena_reset(&b->arena);
	b->first_ns = 0;
	dbi_stats_set(b->st, B_HELD, 0);
}

static int batch_consume(void *state, struct dbi_batch *in, struct dbi_next *next)
{
	struct batch *b = state;
	uint32_t pi = 0, ri = 0;
	b->buf.signal = in->signal;
	while (pi < in->npts || ri < in->nrecs) {
		if (b->first_ns == 0)
			b->first_ns = dbi_mono_ns();
		uint32_t n = DBI_MIN(in->npts - pi, b->buf.pts_cap - b->buf.npts);
		memcpy(b->buf.pts + b->buf.npts, in->pts + pi, n * sizeof(*in->pts));
		b->buf.npts += n;
		pi += n;
		while (ri < in->nrecs && b->buf.nrecs < b->buf.recs_cap) {
			const struct dbi_rec_hdr *h = in->recs[ri];
			void *copy = dbi_arena_alloc(&b->arena, h->len);
			if (!copy) {
				if (b->buf.nrecs == 0) {
					/* larger than the whole arena: pass it straight through */
					struct dbi_batch one = {.signal = in->signal,
					                        .recs = &in->recs[ri],
					                        .nrecs = 1,
					                        .recs_cap = 1,
					                        .arena = in->arena};
					dbi_next(next, &one);
					ri++;
					continue;
				}
				break;
			}
			memcpy(copy, h, h->len);
			b->buf.recs[b->buf.nrecs++] = copy;
			ri++;
		}
		uint32_t held = b->buf.npts + b->buf.nrecs;
		int full = b->buf.npts == b->buf.pts_cap || b->buf.nrecs == b->buf.recs_cap ||
		           (ri < in->nrecs && b->buf.nrecs > 0);
		if (held >= (uint32_t)b->cfg->send_batch_size || full) {
			dbi_stats_add(b->st, B_SIZE_TRIGGER, 1);
			send_held(b, next);
		}
	}
	dbi_stats_set(b->st, B_HELD, b->buf.npts + b->buf.nrecs);
	return DBI_OK;
}

static uint64_t batch_tick(void *state, uint64_t now, struct dbi_next *next)
{
	struct batch *b = state;
	if (b->first_ns == 0)
		return now + b->cfg->timeout; /* idle: look again one timeout from now */
	if (now - b->first_ns >= b->cfg->timeout) {
		dbi_stats_add(b->st, B_TIMEOUT_TRIGGER, 1);
		send_held(b, next);
		return now + b->cfg->timeout;
	}
	return b->first_ns + b->cfg->timeout;
}

static int batch_flush(void *state, struct dbi_next *next, uint64_t deadline)
{
	(void)deadline;
	send_held(state, next);
	return DBI_OK;
}

const struct dbi_component dbi_processor_batch = {
        .type = "batch",
        .kind = DBI_PROCESSOR,
        .signals = DBI_SIG_METRICS | DBI_SIG_LOGS | DBI_SIG_TRACES,
        .doc = "groups items into batches by size and time before export",
        .keys = batch_keys,
        .conf_size = sizeof(struct batch_cfg),
        .stats = batch_stats,
        .validate = batch_validate,
        .create = batch_create,
        .destroy = batch_destroy,
        .consume = batch_consume,
        .tick = batch_tick,
        .flush = batch_flush,
};
