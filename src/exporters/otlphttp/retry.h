/*
 * retry.h — when to send again: the exponential backoff schedule (OpenTelemetry's
 * retry_on_failure: initial interval, multiplier, randomization, max interval, max
 * elapsed time), Retry-After parsing (delta-seconds or an HTTP date), what an HTTP
 * status means for a request, and the exporter-side circuit breaker. Pure functions
 * and small state machines, so the schedule is unit-tested without a network.
 */
#ifndef DBI_OTLPHTTP_RETRY_H
#define DBI_OTLPHTTP_RETRY_H

#include <stdint.h>
#include <time.h>

#include "dbi/common.h"

struct dbi_retry_cfg {
	uint64_t initial_ns, max_ns, max_elapsed_ns; /* max_elapsed 0 = retry forever */
	double randomization;                        /* 0.5: each wait is in [0.5, 1.5] x the interval */
	double multiplier;
};

struct dbi_retry_backoff {
	uint64_t interval_ns; /* the next wait before randomization */
	uint64_t start_ns;    /* first attempt (monotonic) */
};

void dbi_retry_backoff_start(struct dbi_retry_backoff *b, const struct dbi_retry_cfg *c, uint64_t now);
/*
 * The wait before the next attempt, given a uniform r in [0, 1). Returns 0 when the
 * next attempt would come after start + max_elapsed: give up.
 */
uint64_t dbi_retry_backoff_next(struct dbi_retry_backoff *b, const struct dbi_retry_cfg *c, uint64_t now, double r);

/*
 * A Retry-After value: delta-seconds ("120") or an HTTP date (IMF-fixdate, RFC 850,
 * asctime), relative to now_wall (Unix seconds). A date in the past is a zero wait.
 * Waits are capped at DBI_RETRY_AFTER_MAX_S. DBI_ERR if it is neither.
 */
#define DBI_RETRY_AFTER_MAX_S 3600
int dbi_retry_after_parse(const char *v, time_t now_wall, uint64_t *wait_ns);

enum dbi_retry_outcome {
	DBI_RETRY_OK = 0,    /* 2xx */
	DBI_RETRY_RETRY,     /* connection error, 408, 429, 5xx except 501/505 */
	DBI_RETRY_TOO_LARGE, /* 413: split and resend */
	DBI_RETRY_PERMANENT, /* any other status: drop, counted */
};
/* Classify an HTTP status (0 = no response: connection error, timeout, TLS failure). */
enum dbi_retry_outcome dbi_retry_classify(long status);
/* Whether this status counts as a failure of the endpoint (for the circuit breaker). */
int dbi_retry_endpoint_failed(long status);

/* ---- circuit breaker ---- */

enum dbi_breaker_state { DBI_BREAKER_CLOSED = 0, DBI_BREAKER_OPEN = 1, DBI_BREAKER_HALF_OPEN = 2 };

struct dbi_breaker_cfg {
	int enabled;
	uint32_t threshold;   /* consecutive failures that open it */
	uint64_t open_ns;     /* first cool-down */
	uint64_t max_open_ns; /* cool-down doubles per failed probe up to this */
};

struct dbi_breaker {
	int state;
	uint32_t failures; /* consecutive */
	uint64_t cooldown_ns;
	uint64_t open_until; /* monotonic ns */
	int probing;         /* half-open: the probe is in flight */
	uint64_t opened;     /* times it opened */
};

void dbi_breaker_init(struct dbi_breaker *c, const struct dbi_breaker_cfg *cfg);
/* May a request start now? In half-open state exactly one (the probe) may. */
int dbi_breaker_allow(struct dbi_breaker *c, const struct dbi_breaker_cfg *cfg, uint64_t now);
/* A request finished; failed = the endpoint failed it (dbi_retry_endpoint_failed). */
void dbi_breaker_result(struct dbi_breaker *c, const struct dbi_breaker_cfg *cfg, uint64_t now, int failed);

#endif
