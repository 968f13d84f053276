/*
 * runtime_rctx.c — what a receiver thread calls to put data into the pipeline (see
 * component.h): points and byte records staged into the rings of the processor thread
 * their route hash picks, published in bursts, with backpressure reported to the
 * receiver rather than hidden.
 */
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "dbi/clock.h"
#include "runtime_int.h"

bool dbi_rctx_stopping(const struct dbi_rctx *c)
{
	return atomic_load_explicit(&c->tb.rt->stop_receivers, memory_order_relaxed) != 0;
}

int dbi_rctx_wake_fd(const struct dbi_rctx *c)
{
	return c->wake_fd;
}

unsigned dbi_rctx_thread(const struct dbi_rctx *c)
{
	return c->index;
}

unsigned dbi_rctx_nthreads(const struct dbi_rctx *c)
{
	return c->nthreads;
}

struct dbi_stats *dbi_rctx_stats(struct dbi_rctx *c)
{
	return &c->stats;
}

int dbi_rctx_pressure(const struct dbi_rctx *c)
{
	return atomic_load_explicit(&c->tb.rt->pressure, memory_order_relaxed);
}

static inline unsigned pick_shard(const struct dbi_rctx *c, uint64_t route_hash)
{
	if (c->nshards == 1)
		return 0;
	return (unsigned)(((__uint128_t)route_hash * c->nshards) >> 64);
}

static inline uint64_t cached_now(struct dbi_rctx *c)
{
	if (c->now_uses++ >= 64 || c->now == 0) {
		c->now = dbi_mono_ns();
		c->now_uses = 0;
	}
	return c->now;
}

static void publish_all(struct dbi_rctx *c)
{
	for (unsigned s = 0; s < c->nshards; s++) {
		struct chan *ch = c->out[s];
		dbi_bring_publish(ch->recs);
		dbi_ring_publish(ch->pts);
		dbi_wait_notify(ch->consumer);
	}
	c->staged = 0;
	c->now = 0;
}

int dbi_rctx_emit_point(struct dbi_rctx *c, struct dbi_point *p, uint64_t route_hash)
{
	struct chan *ch = c->out[pick_shard(c, route_hash)];
	struct dbi_point *slot = dbi_ring_reserve(ch->pts, sizeof(*slot));
	if (dbi_unlikely(!slot)) {
		publish_all(c);
		c->tb.ts.local[TS_RING_FULL]++;
		return DBI_AGAIN;
	}
	p->seq = ++c->seq;
	p->ingest_ns = cached_now(c);
	p->source = (uint8_t)c->ci->inst.source;
	*slot = *p;
	c->tb.ts.local[TS_POINTS_IN]++;
	if (++c->staged >= RT_PUBLISH_EVERY)
		publish_all(c);
	return DBI_OK;
}

void *dbi_rctx_reserve_record(struct dbi_rctx *c, uint32_t type, uint32_t len, uint64_t route_hash)
{
	struct chan *ch = c->out[pick_shard(c, route_hash)];
	if (len < sizeof(struct dbi_rec_hdr) || len > dbi_bring_max_record(ch->recs))
		return NULL;
	struct dbi_rec_hdr *h = dbi_bring_reserve(ch->recs, len);
	if (!h) {
		publish_all(c);
		c->tb.ts.local[TS_RING_FULL]++;
		return NULL;
	}
	memset(h, 0, sizeof(*h));
	h->type = type;
	h->len = len;
	h->seq = ++c->seq;
	h->ingest_ns = cached_now(c);
	h->source = (uint8_t)c->ci->inst.source;
	return h;
}

void dbi_rctx_commit_record(struct dbi_rctx *c, void *rec)
{
	(void)rec;
	c->tb.ts.local[TS_RECORDS_IN]++;
	if (++c->staged >= RT_PUBLISH_EVERY)
		publish_all(c);
}

void dbi_rctx_flush(struct dbi_rctx *c)
{
	publish_all(c);
	dbi_stats_publish(&c->stats);
	dbi_rt_thread_beat(&c->tb, 0);
}

int dbi_rctx_wait_space(struct dbi_rctx *c, uint64_t timeout_ns)
{
	uint64_t end = dbi_mono_ns() + timeout_ns, sleep_ns = 5000;
	publish_all(c);
	for (;;) {
		int ok = 1;
		for (unsigned s = 0; s < c->nshards && ok; s++) {
			struct chan *ch = c->out[s];
			if (ch->pts->capacity - dbi_ring_depth(ch->pts) < ch->pts->capacity / 4 ||
			    ch->recs->size - dbi_bring_used(ch->recs) < ch->recs->size / 4)
				ok = 0;
		}
		if (ok)
			return DBI_OK;
		if (dbi_rctx_stopping(c) && atomic_load(&c->tb.rt->deadline) &&
		    dbi_mono_ns() >= atomic_load(&c->tb.rt->deadline))
			return DBI_DONE;
		if (dbi_mono_ns() >= end)
			return DBI_AGAIN;
		dbi_sleep_ns(sleep_ns);
		if (sleep_ns < DBI_NSEC_PER_MSEC)
			sleep_ns *= 2;
		dbi_rt_thread_beat(&c->tb, 0);
	}
}

int dbi_rctx_sleep_until(struct dbi_rctx *c, uint64_t deadline)
{
	publish_all(c);
	dbi_stats_publish(&c->stats);
	for (;;) {
		if (dbi_rctx_stopping(c))
			return DBI_DONE;
		uint64_t now = dbi_mono_ns();
		if (now >= deadline)
			return DBI_OK;
		uint64_t step = DBI_MIN(deadline - now, 100ULL * DBI_NSEC_PER_MSEC);
		/* the wake fd turns readable on stop; poll it with the step as timeout */
		struct pollfd pfd = {.fd = c->wake_fd, .events = POLLIN};
		poll(&pfd, 1, (int)((step + DBI_NSEC_PER_MSEC - 1) / DBI_NSEC_PER_MSEC));
		dbi_rt_thread_beat(&c->tb, 0);
	}
}
