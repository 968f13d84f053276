/*
 * runtime_loops.c — the main loops of the runtime's threads.
 *
 * A processor thread takes a burst from each input chan in turn, splits it by signal,
 * and runs it through every pipeline chain the source feeds; the chain's end copies the
 * batch into each exporter's chan followed by a batch marker. An exporter thread
 * gathers points and records up to a marker and hands them to the exporter's consume.
 * Idle threads sleep on an event count with a timeout at the nearest processor/exporter
 * deadline, so an idle collector costs no CPU.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifdef DBI_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "dbi/clock.h"
#include "dbi/log.h"
#include "runtime_int.h"

#define IDLE_TIMEOUT_NS (100ULL * DBI_NSEC_PER_MSEC)
#define PUBLISH_NS (20ULL * DBI_NSEC_PER_MSEC)

/* ---- arenas and batches ---- */

int dbi_arena_init(struct dbi_arena *a, size_t cap)
{
	a->base = malloc(cap);
	a->cap = a->base ? cap : 0;
	a->used = 0;
	a->exhausted = 0;
	return a->base ? DBI_OK : DBI_ERR;
}

void dbi_arena_free(struct dbi_arena *a)
{
	free(a->base);
	a->base = NULL;
	a->cap = a->used = 0;
}

void *dbi_arena_alloc(struct dbi_arena *a, size_t len)
{
	size_t need = DBI_ALIGN_UP(len, 8);
	if (!a || a->cap - a->used < need) {
		if (a)
			a->exhausted++;
		return NULL;
	}
	void *p = a->base + a->used;
	a->used += need;
	return p;
}

int dbi_batch_alloc(struct dbi_batch *b, unsigned signal, uint32_t pts_cap, uint32_t recs_cap)
{
	memset(b, 0, sizeof(*b));
	b->signal = signal;
	b->pts = calloc(pts_cap ? pts_cap : 1, sizeof(*b->pts));
	b->recs = calloc(recs_cap ? recs_cap : 1, sizeof(*b->recs));
	if (!b->pts || !b->recs) {
		dbi_batch_free(b);
		return DBI_ERR;
	}
	b->pts_cap = pts_cap;
	b->recs_cap = recs_cap;
	return DBI_OK;
}

void dbi_batch_free(struct dbi_batch *b)
{
	free(b->pts);
	free(b->recs);
	b->pts = NULL;
	b->recs = NULL;
	b->pts_cap = b->recs_cap = 0;
}

/* ---- thread bookkeeping ---- */

void dbi_rt_thread_enter(struct thread_base *tb)
{
	char nm[16];
	dbi_strlcpy(nm, tb->name, sizeof(nm));
	pthread_setname_np(pthread_self(), nm);
	if (tb->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(tb->cpu, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
			DBI_LOGW("runtime", "cannot pin thread", "thread=%s cpu=%d", tb->name, tb->cpu);
	}
	if (tb->shm) {
		tb->shm->tid = (int32_t)syscall(SYS_gettid);
		tb->shm->cpu = tb->cpu;
		tb->shm->numa_node = tb->numa_node;
		tb->shm->role = tb->role;
	}
#ifdef DBI_HAVE_JEMALLOC
	{
		uint64_t *p = NULL;
		size_t sz = sizeof(p);
		if (mallctl("thread.allocatedp", &p, &sz, NULL, 0) == 0)
			tb->allocatedp = p;
	}
#endif
	tb->busy_start_ns = dbi_mono_ns();
}

void dbi_rt_thread_beat(struct thread_base *tb, int force_publish)
{
	uint64_t now = dbi_mono_ns();
	if (!force_publish && now - tb->last_publish_ns < PUBLISH_NS)
		return;
	tb->last_publish_ns = now;
	if (tb->shm) {
		struct timespec ts;
		atomic_store_explicit(&tb->shm->heartbeat_mono_ns, now, memory_order_relaxed);
		if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
			atomic_store_explicit(&tb->shm->cpu_ns,
			                      (uint64_t)ts.tv_sec * DBI_NSEC_PER_SEC + (uint64_t)ts.tv_nsec,
			                      memory_order_relaxed);
		if (tb->allocatedp)
			atomic_store_explicit(&tb->shm->allocated_bytes, *tb->allocatedp, memory_order_relaxed);
	}
	if (tb->ts.blk)
		dbi_stats_publish(&tb->ts);
}

static inline void busy_add(struct thread_base *tb, uint64_t ns)
{
	if (tb->shm)
		atomic_fetch_add_explicit(&tb->shm->busy_ns, ns, memory_order_relaxed);
}

static int past_deadline(struct dbi_runtime *rt)
{
	uint64_t d = atomic_load_explicit(&rt->deadline, memory_order_relaxed);
	return d && dbi_mono_ns() >= d;
}

/* ---- receiver threads ---- */

static void chan_close(struct chan *c)
{
	dbi_ring_publish(c->pts);
	dbi_bring_publish(c->recs);
	atomic_store_explicit(&c->closed, 1, memory_order_release);
	dbi_wait_notify(c->consumer);
}

void *dbi_rt_receiver_main(void *arg)
{
	struct dbi_rctx *c = arg;
	dbi_rt_thread_enter(&c->tb);
	c->rc = c->ci->inst.desc->run(c->ci->state, c);
	if (c->rc != DBI_OK && !atomic_load(&c->tb.rt->stop_receivers))
		DBI_LOGE("runtime", "receiver stopped with an error", "receiver=%s thread=%u", c->ci->id, c->index);
	dbi_rctx_flush(c);
	for (unsigned s = 0; s < c->nshards; s++)
		chan_close(c->out[s]);
	dbi_stats_publish(&c->stats);
	dbi_rt_thread_beat(&c->tb, 1);
	return NULL;
}

/* ---- delivery to exporters (end of a chain) ---- */

/*
 * The exporter's chan is full: publish what is staged, wake the exporter, back off
 * briefly. Returns -1 once the shutdown deadline has passed (caller drops and counts).
 */
static int wait_for_room(struct ptd *pt, struct chan *c)
{
	dbi_ring_publish(c->pts);
	dbi_bring_publish(c->recs);
	dbi_wait_notify(c->consumer);
	pt->tb.ts.local[TS_RING_FULL]++;
	if (past_deadline(pt->tb.rt))
		return -1;
	dbi_sleep_ns(20000);
	dbi_rt_thread_beat(&pt->tb, 0);
	return 0;
}

static void deliver_one(struct ptd *pt, struct chan *c, struct dbi_batch *b)
{
	uint32_t done = 0;
	while (done < b->npts) {
		done += dbi_ring_stage(c->pts, b->pts + done, b->npts - done, sizeof(struct dbi_point));
		if (done < b->npts && wait_for_room(pt, c) < 0) {
			pt->tb.ts.local[TS_DROP_SHUTDOWN] += b->npts - done;
			break;
		}
	}
	pt->tb.ts.local[TS_POINTS_OUT] += done;
	for (uint32_t i = 0; i < b->nrecs; i++) {
		const struct dbi_rec_hdr *h = b->recs[i];
		void *dst;
		if (h->len > dbi_bring_max_record(c->recs)) {
			pt->tb.ts.local[TS_DROP_TOO_LARGE]++;
			continue;
		}
		while ((dst = dbi_bring_reserve(c->recs, h->len)) == NULL) {
			if (wait_for_room(pt, c) < 0)
				break;
		}
		if (!dst) {
			pt->tb.ts.local[TS_DROP_SHUTDOWN] += b->nrecs - i;
			break;
		}
		memcpy(dst, h, h->len);
		pt->tb.ts.local[TS_RECORDS_OUT]++;
	}
	/* batch boundary: records are published before the marker that ends them */
	struct dbi_point mark = {.kind = DBI_PK_MARK, .flags = (uint16_t)b->signal};
	while (dbi_ring_stage(c->pts, &mark, 1, sizeof(mark)) == 0) {
		if (wait_for_room(pt, c) < 0)
			break;
	}
	dbi_bring_publish(c->recs);
	dbi_ring_publish(c->pts);
	dbi_wait_notify(c->consumer);
}

int dbi_next(struct dbi_next *next, struct dbi_batch *b)
{
	struct pl_shard *ps = next->ps;
	if (b->npts == 0 && b->nrecs == 0)
		return DBI_OK;
	if (dbi_unlikely(next->fn != NULL))
		return next->fn(next->arg, b);
	if (next->stage < ps->nprocs) {
		struct comp_inst *ci = ps->procs[next->stage];
		struct dbi_next nn = {.ps = ps, .stage = next->stage + 1};
		return ci->inst.desc->consume(ci->state, b, &nn);
	}
	ps->pt->tb.ts.local[TS_BATCHES]++;
	for (unsigned i = 0; i < ps->nouts; i++)
		deliver_one(ps->pt, ps->outs[i], b);
	return DBI_OK;
}

struct dbi_next *dbi_next_func_create(int (*fn)(void *arg, struct dbi_batch *b), void *arg)
{
	struct dbi_next *n = calloc(1, sizeof(*n));
	if (n) {
		n->fn = fn;
		n->arg = arg;
	}
	return n;
}

void dbi_next_func_destroy(struct dbi_next *n)
{
	free(n);
}

/* ---- processor threads ---- */

static void run_chain(struct pl_shard *ps, struct dbi_batch *b)
{
	struct dbi_next n = {.ps = ps, .stage = 0};
	dbi_next(&n, b);
}

/* Run a batch through every pipeline its source feeds for its signal. */
static void dispatch(struct ptd *pt, unsigned source, struct dbi_batch *b)
{
	const struct route *r = &pt->routes[source][dbi_sig_index(b->signal)];
	if (b->npts == 0 && b->nrecs == 0)
		return;
	if (r->n == 0) {
		/*
		 * e.g. the PostgreSQL receiver's query samples (logs) when the receiver is only
		 * in a metrics pipeline: counted, and the runtime warned about it at start
		 */
		pt->tb.ts.local[TS_DROP_NO_PIPELINE] += b->npts + b->nrecs;
		return;
	}
	for (unsigned i = 0; i < r->n; i++) {
		struct dbi_batch *use = b;
		if (i + 1 < r->n) {
			/* every pipeline but the last gets a copy: chains modify points in place */
			struct dbi_batch *cp = &pt->copy;
			memcpy(cp->pts, b->pts, b->npts * sizeof(*b->pts));
			memcpy(cp->recs, b->recs, b->nrecs * sizeof(*b->recs));
			cp->npts = b->npts;
			cp->nrecs = b->nrecs;
			cp->signal = b->signal;
			cp->arena = b->arena;
			use = cp;
		}
		run_chain(&pt->pls[r->pls[i]], use);
	}
}

/* One turn over one input chan: returns the number of items taken. */
static unsigned drain_chan(struct ptd *pt, struct chan *c)
{
	struct dbi_batch *m = &pt->work[0], *l = &pt->work[1], *t = &pt->work[2];
	void *first;
	unsigned taken = 0, n;
	uint32_t len;

	m->npts = m->nrecs = l->nrecs = t->nrecs = 0;
	/* points: up to two contiguous spans (the ring may wrap) */
	while (m->npts < RT_BURST &&
	       (n = dbi_ring_peek(c->pts, &first, RT_BURST - m->npts, sizeof(struct dbi_point))) > 0) {
		memcpy(m->pts + m->npts, first, n * sizeof(struct dbi_point));
		dbi_ring_consume(c->pts, n);
		m->npts += n;
	}
	pt->tb.ts.local[TS_POINTS_IN] += m->npts;
	taken += m->npts;

	const struct dbi_rec_hdr *h;
	while (m->nrecs + l->nrecs + t->nrecs < RT_REC_BURST && (h = dbi_bring_peek(c->recs, &len)) != NULL) {
		struct dbi_batch *dst = &pt->work[dbi_sig_index(dbi_rec_signal(h->type))];
		if (len < sizeof(*h) || h->len > len) {
			pt->tb.ts.local[TS_DROP_TOO_LARGE]++; /* malformed: cannot happen with our producers */
			continue;
		}
		dst->recs[dst->nrecs++] = h;
	}
	pt->tb.ts.local[TS_RECORDS_IN] += m->nrecs + l->nrecs + t->nrecs;
	taken += m->nrecs + l->nrecs + t->nrecs;
	if (taken) {
		dbi_arena_reset(&pt->arena);
		dispatch(pt, c->source, m);
		dispatch(pt, c->source, l);
		dispatch(pt, c->source, t);
		dbi_bring_release(c->recs);
	}
	return taken;
}

static uint64_t run_ticks(struct ptd *pt, uint64_t now)
{
	uint64_t next = 0;
	for (unsigned p = 0; p < pt->npls; p++) {
		struct pl_shard *ps = &pt->pls[p];
		for (unsigned i = 0; i < ps->nprocs; i++) {
			struct comp_inst *ci = ps->procs[i];
			if (!ci->inst.desc->tick)
				continue;
			if (ci->deadline == 0 || ci->deadline <= now) {
				struct dbi_next nn = {.ps = ps, .stage = i + 1};
				dbi_arena_reset(&pt->arena);
				ci->deadline = ci->inst.desc->tick(ci->state, now, &nn);
			}
			if (ci->deadline && (next == 0 || ci->deadline < next))
				next = ci->deadline;
		}
	}
	return next;
}

static int inputs_done(struct chan **in, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct chan *c = in[i];
		if (!atomic_load_explicit(&c->closed, memory_order_acquire))
			return 0;
		if (dbi_ring_depth(c->pts) || dbi_bring_used(c->recs))
			return 0;
	}
	return 1;
}

static int inputs_ready(struct chan **in, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (dbi_ring_depth(in[i]->pts) || dbi_bring_used(in[i]->recs))
			return 1;
	return 0;
}

static void publish_components(struct ptd *pt)
{
	for (unsigned p = 0; p < pt->npls; p++)
		for (unsigned i = 0; i < pt->pls[p].nprocs; i++)
			dbi_stats_publish(&pt->pls[p].procs[i]->stats);
}

void *dbi_rt_processor_main(void *arg)
{
	struct ptd *pt = arg;
	struct dbi_runtime *rt = pt->tb.rt;
	uint64_t next_tick = 0, last_pub = 0;

	dbi_rt_thread_enter(&pt->tb);
	for (;;) {
		uint64_t t0 = dbi_mono_ns();
		unsigned work = 0;
		for (unsigned i = 0; i < pt->nin; i++)
			work += drain_chan(pt, pt->in[i]);
		uint64_t now = dbi_mono_ns();
		if (next_tick == 0 || now >= next_tick || work == 0)
			next_tick = run_ticks(pt, now);
		if (work) {
			busy_add(&pt->tb, dbi_mono_ns() - t0);
			if (now - last_pub >= PUBLISH_NS) {
				publish_components(pt);
				last_pub = now;
			}
			dbi_rt_thread_beat(&pt->tb, 0);
			continue;
		}
		if (atomic_load_explicit(&rt->stopping, memory_order_acquire) && inputs_done(pt->in, pt->nin))
			break;
		publish_components(pt);
		dbi_rt_thread_beat(&pt->tb, 0);
		/* sleep until data, the next tick, or the idle heartbeat */
		uint64_t timeout = IDLE_TIMEOUT_NS;
		now = dbi_mono_ns();
		if (next_tick && next_tick > now && next_tick - now < timeout)
			timeout = next_tick - now;
		else if (next_tick && next_tick <= now)
			continue;
		uint32_t ticket = dbi_wait_prepare(&pt->wait);
		if (inputs_ready(pt->in, pt->nin) || atomic_load(&rt->stopping)) {
			dbi_wait_cancel(&pt->wait);
			if (!inputs_ready(pt->in, pt->nin))
				dbi_sleep_ns(DBI_MIN(timeout, 1000000ULL)); /* draining: poll briefly */
			continue;
		}
		dbi_wait_sleep(&pt->wait, ticket, timeout);
		pt->tb.ts.local[TS_WAKEUPS]++;
	}

	/* Inputs are drained: flush every chain front to back, then close our outputs. */
	uint64_t deadline = atomic_load(&rt->deadline);
	for (unsigned p = 0; p < pt->npls; p++) {
		struct pl_shard *ps = &pt->pls[p];
		for (unsigned i = 0; i < ps->nprocs; i++) {
			struct comp_inst *ci = ps->procs[i];
			if (ci->inst.desc->flush) {
				struct dbi_next nn = {.ps = ps, .stage = i + 1};
				dbi_arena_reset(&pt->arena);
				ci->inst.desc->flush(ci->state, &nn, deadline);
			}
		}
	}
	for (unsigned p = 0; p < pt->npls; p++)
		for (unsigned o = 0; o < pt->pls[p].nouts; o++)
			chan_close(pt->pls[p].outs[o]);
	publish_components(pt);
	dbi_rt_thread_beat(&pt->tb, 1);
	return NULL;
}

/* ---- exporter threads ---- */

static void export_batches(struct etd *et)
{
	struct comp_inst *ci = et->ci;
	for (int s = 0; s < 3; s++) {
		struct dbi_batch *b = &et->b[s];
		if (b->npts == 0 && b->nrecs == 0)
			continue;
		et->tb.ts.local[TS_POINTS_OUT] += b->npts;
		et->tb.ts.local[TS_RECORDS_OUT] += b->nrecs;
		et->tb.ts.local[TS_BATCHES]++;
		b->arena = &et->arena;
		ci->inst.desc->consume(ci->state, b, NULL);
		b->npts = b->nrecs = 0;
	}
	dbi_arena_reset(&et->arena);
}

/* Gather from one chan up to a marker or until the batch is full. */
static unsigned exporter_drain(struct etd *et, struct chan *c)
{
	unsigned taken = 0;
	struct dbi_batch *m = &et->b[0];
	int marked = 0;
	for (;;) {
		void *first;
		unsigned n = dbi_ring_peek(c->pts, &first, m->pts_cap - m->npts, sizeof(struct dbi_point));
		if (n == 0)
			break;
		struct dbi_point *p = first;
		unsigned i;
		for (i = 0; i < n; i++) {
			if (dbi_unlikely(p[i].kind == DBI_PK_MARK)) {
				marked = 1;
				break;
			}
		}
		memcpy(m->pts + m->npts, p, i * sizeof(*p));
		m->npts += i;
		taken += i;
		dbi_ring_consume(c->pts, i + (unsigned)marked);
		if (marked || m->npts == m->pts_cap)
			break;
	}
	et->tb.ts.local[TS_POINTS_IN] += taken;
	/* records published before the marker are all visible now */
	const struct dbi_rec_hdr *h;
	uint32_t len;
	unsigned nrec = 0;
	while ((h = dbi_bring_peek(c->recs, &len)) != NULL) {
		struct dbi_batch *dst = &et->b[dbi_sig_index(dbi_rec_signal(h->type))];
		dst->recs[dst->nrecs++] = h;
		nrec++;
		if (dst->nrecs == dst->recs_cap)
			break;
	}
	et->tb.ts.local[TS_RECORDS_IN] += nrec;
	taken += nrec;
	if (taken || marked) {
		export_batches(et);
		dbi_bring_release(c->recs);
	}
	return taken + (unsigned)marked;
}

void *dbi_rt_exporter_main(void *arg)
{
	struct etd *et = arg;
	struct dbi_runtime *rt = et->tb.rt;
	struct comp_inst *ci = et->ci;
	uint64_t next_tick = 0;

	dbi_rt_thread_enter(&et->tb);
	for (;;) {
		uint64_t t0 = dbi_mono_ns();
		unsigned work = 0;
		for (unsigned i = 0; i < et->nin; i++)
			work += exporter_drain(et, et->in[i]);
		uint64_t now = dbi_mono_ns();
		if (ci->inst.desc->tick && (next_tick == 0 || now >= next_tick))
			next_tick = ci->inst.desc->tick(ci->state, now, NULL);
		if (work) {
			busy_add(&et->tb, dbi_mono_ns() - t0);
			dbi_stats_publish(&ci->stats);
			dbi_rt_thread_beat(&et->tb, 0);
			continue;
		}
		if (atomic_load_explicit(&rt->stopping, memory_order_acquire) && inputs_done(et->in, et->nin))
			break;
		dbi_stats_publish(&ci->stats);
		dbi_rt_thread_beat(&et->tb, 0);
		uint64_t timeout = IDLE_TIMEOUT_NS;
		now = dbi_mono_ns();
		if (next_tick && next_tick <= now)
			continue;
		if (next_tick && next_tick - now < timeout)
			timeout = next_tick - now;
		uint32_t ticket = dbi_wait_prepare(&et->wait);
		if (inputs_ready(et->in, et->nin) || atomic_load(&rt->stopping)) {
			dbi_wait_cancel(&et->wait);
			if (!inputs_ready(et->in, et->nin))
				dbi_sleep_ns(DBI_MIN(timeout, 1000000ULL));
			continue;
		}
		dbi_wait_sleep(&et->wait, ticket, timeout);
		et->tb.ts.local[TS_WAKEUPS]++;
	}
	if (ci->inst.desc->flush)
		ci->inst.desc->flush(ci->state, NULL, atomic_load(&rt->deadline));
	dbi_stats_publish(&ci->stats);
	dbi_rt_thread_beat(&et->tb, 1);
	return NULL;
}
