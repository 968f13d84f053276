/*
 * circuit.h — per-target circuit breakers (seed story 6): a failing database is isolated
 * so it costs neither the collector nor the other targets, and is probed back gently.
 *
 *   closed ──(5 failures in 30 s, or ≥50 % errors over the window with enough requests,
 *            or connection refused, or a timeout)──▶ open
 *   open ──(probe time reached: 60 s, then exponential backoff up to 5 min)──▶ half-open
 *   half-open ──(3 successes; the first probes run a reduced query set)──▶ closed
 *   half-open ──(any failure)──▶ open (backoff grows)
 *
 * The states live in a shared-memory region (dbi-stat shows them) and are saved to a
 * state file so a restart does not hammer a database that was down. One writer per
 * circuit (the scraper thread that owns the target); reads are lock-free; manual
 * overrides (force open, force closed, reset) come from the admin HTTP endpoint through
 * an atomic field the owner applies on its next decision.
 */
#ifndef DBI_CIRCUIT_H
#define DBI_CIRCUIT_H

#include <stdatomic.h>
#include <stdint.h>

#include "dbi/common.h"

enum dbi_circuit_state { DBI_CIRCUIT_CLOSED = 0, DBI_CIRCUIT_OPEN = 1, DBI_CIRCUIT_HALF_OPEN = 2 };
enum dbi_circuit_override { DBI_CIRCUIT_NO_OVERRIDE = 0, DBI_CIRCUIT_FORCE_OPEN, DBI_CIRCUIT_FORCE_CLOSED };

/* What the owner may do now. */
enum dbi_circuit_decision {
	DBI_CIRCUIT_DENY = 0,  /* open: do not touch the database */
	DBI_CIRCUIT_PROBE = 1, /* half-open ramp: run the reduced query set */
	DBI_CIRCUIT_ALLOW = 2, /* closed (or ramp complete): full scrape */
};

enum dbi_circuit_result {
	DBI_CIRCUIT_OK = 0,
	DBI_CIRCUIT_FAIL,    /* query or protocol error */
	DBI_CIRCUIT_TIMEOUT, /* statement over the slow-call limit, connect timeout */
	DBI_CIRCUIT_REFUSED, /* connection refused / host unreachable: opens at once */
};

struct dbi_circuit_conf {
	uint32_t failure_threshold;   /* 5 */
	uint64_t failure_window_ns;   /* 30 s */
	double error_ratio;           /* 0.5 */
	uint32_t min_requests;        /* 10: ratio rule needs this many in the window */
	uint64_t open_initial_ns;     /* 60 s before the first probe */
	uint64_t open_max_ns;         /* 5 min */
	double backoff_multiplier;    /* 2 */
	uint32_t half_open_successes; /* 3 */
	uint64_t slow_call_ns;        /* 5 s: a call slower than this is a timeout failure */
};
void dbi_circuit_conf_defaults(struct dbi_circuit_conf *c);

#define DBI_CIRCUIT_WINDOW 64 /* recent results kept for the window rules */

/* One circuit, in shared memory. */
struct dbi_circuit {
	char target[96];                     /* "host:port" (what service.instance.id says) */
	_Atomic uint32_t state;              /* enum dbi_circuit_state */
	_Atomic uint32_t override;           /* enum dbi_circuit_override, written by admin */
	_Atomic uint32_t reset_req;          /* admin asked for a reset */
	uint32_t half_open_ok;               /* successes so far in half-open */
	_Atomic uint64_t open_until_wall_ns; /* next probe time when open */
	uint64_t backoff_ns;                 /* current open interval */
	_Atomic uint64_t last_change_wall_ns;
	_Atomic uint64_t transitions;
	_Atomic uint64_t failures;  /* total */
	_Atomic uint64_t successes; /* total */
	_Atomic uint64_t denied;    /* scrapes skipped while open */
	/* window: timestamps and outcomes of the last DBI_CIRCUIT_WINDOW calls */
	uint64_t win_time[DBI_CIRCUIT_WINDOW];
	uint8_t win_fail[DBI_CIRCUIT_WINDOW];
	uint32_t win_head;
	char last_error[160];
};

/* A table of circuits (one per target) in a shm region, found by name for admin/dbi-stat. */
struct dbi_circuit_table;

#endif
