/*
 * wait.h — an event count over a futex, for consumer threads that sleep when their
 * rings are empty. The consumer announces itself, re-checks its rings, then sleeps;
 * a producer that published calls dbi_wait_notify, which costs one fence and one load
 * unless someone is actually asleep. No lost wake-ups: either the consumer's re-check
 * sees the new data or the producer sees the waiter.
 */
#ifndef DBI_WAIT_H
#define DBI_WAIT_H

#include <stdatomic.h>
#include <stdint.h>

struct dbi_wait {
	_Alignas(64) _Atomic uint32_t seq;
	_Atomic uint32_t waiters;
};

void dbi_wait_init(struct dbi_wait *w);
/* Step 1: returns the ticket to pass to dbi_wait_sleep; re-check for work after it. */
uint32_t dbi_wait_prepare(struct dbi_wait *w);
/* Step 2a: work appeared during the re-check. */
void dbi_wait_cancel(struct dbi_wait *w);
/* Step 2b: sleep until notified or timeout_ns passes. */
void dbi_wait_sleep(struct dbi_wait *w, uint32_t ticket, uint64_t timeout_ns);
/* Wake every sleeper unconditionally (stop requests). */
void dbi_wait_wake(struct dbi_wait *w);
/* Producer side, after publishing. */
static inline void dbi_wait_notify(struct dbi_wait *w)
{
#ifdef DBI_TSAN
	/* TSan does not model fences; a seq_cst read-modify-write orders the same way */
	if (atomic_fetch_add_explicit(&w->waiters, 0, memory_order_seq_cst))
		dbi_wait_wake(w);
#else
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&w->waiters, memory_order_relaxed))
		dbi_wait_wake(w);
#endif
}

#endif
