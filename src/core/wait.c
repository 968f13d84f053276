/*
 * wait.c — futex-backed event count (see wait.h).
 */
#include "dbi/wait.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void dbi_wait_init(struct dbi_wait *w)
{
	atomic_store(&w->seq, 0);
	atomic_store(&w->waiters, 0);
}

uint32_t dbi_wait_prepare(struct dbi_wait *w)
{
	uint32_t t = atomic_load_explicit(&w->seq, memory_order_acquire);
	/* seq_cst RMW: a full barrier before the caller re-checks its rings */
	atomic_fetch_add_explicit(&w->waiters, 1, memory_order_seq_cst);
	return t;
}

void dbi_wait_cancel(struct dbi_wait *w)
{
	atomic_fetch_sub_explicit(&w->waiters, 1, memory_order_relaxed);
}

void dbi_wait_sleep(struct dbi_wait *w, uint32_t ticket, uint64_t timeout_ns)
{
	struct timespec ts = {(time_t)(timeout_ns / 1000000000ULL), (long)(timeout_ns % 1000000000ULL)};
	syscall(SYS_futex, (uint32_t *)&w->seq, FUTEX_WAIT_PRIVATE, ticket, &ts, NULL, 0);
	atomic_fetch_sub_explicit(&w->waiters, 1, memory_order_relaxed);
}

void dbi_wait_wake(struct dbi_wait *w)
{
	atomic_fetch_add_explicit(&w->seq, 1, memory_order_release);
	syscall(SYS_futex, (uint32_t *)&w->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
