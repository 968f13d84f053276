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
 *
 * How a receiver uses it (the PostgreSQL receiver; see also docs/internals.md):
 *
 *   config     embed `struct dbi_circuit_conf circuit;` in the receiver's config struct and
 *              DBI_CIRCUIT_CONF_KEYS("circuit_breaker.", offsetof(struct my_cfg, circuit))
 *              in its key map; call dbi_circuit_conf_check() from its validate callback.
 *   shm_bytes  add dbi_circuit_table_shm_bytes(number of targets).
 *   create     dbi_circuit_state_path(rt, inst->id, ...) for the state file, then
 *              dbi_circuit_table_create(&t, rt, inst->id, ntargets, &cfg->circuit, path, err),
 *              dbi_circuit_table_load(t, now) and dbi_circuit_get(t, "host:port") per target
 *              (cold path: remember the pointer).
 *   per scrape d = dbi_circuit_allow(c, now):
 *                DENY  skip the target (no connection attempt, no series this interval);
 *                PROBE run the reduced query set (e.g. SELECT 1 + the cheap instance stats);
 *                ALLOW run the full scrape;
 *              then dbi_circuit_record(c, result, duration_ns, now, errmsg) exactly once for
 *              every scrape that ran: DBI_CIRCUIT_OK, FAIL (query/protocol error, lost
 *              connection), TIMEOUT (statement_timeout, connect timeout) or REFUSED (ECONNREFUSED,
 *              host unreachable, "the database system is starting up/shutting down").
 *              duration_ns is the scrape's wall time: over slow_call an OK counts as a TIMEOUT.
 *              Close the target's connection when a decision is DENY.
 *   each loop  dbi_circuit_table_sync(t, now): writes the state file if a circuit changed
 *              state (rare: only after transitions); emit dbi_circuit_points() per target
 *              every collection interval, also while the circuit is open.
 *   stop       dbi_circuit_table_save(t, now); destroy: dbi_circuit_table_destroy(t).
 *
 * `now` is always wall-clock ns (dbi_wall_ns()): probe times are saved to the state file
 * and must mean the same after a restart. Passing it in keeps every rule testable with an
 * injected clock. A clock that jumps backwards never leaves a circuit open longer than its
 * current backoff.
 */
#ifndef DBI_CIRCUIT_H
#define DBI_CIRCUIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbi/common.h"
#include "dbi/config.h"
#include "dbi/log.h"

struct dbi_runtime;
struct dbi_registry;
struct dbi_point;

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

const char *dbi_circuit_state_name(enum dbi_circuit_state s);       /* closed, open, half_open */
const char *dbi_circuit_override_name(enum dbi_circuit_override o); /* none, force_open, force_closed */
const char *dbi_circuit_decision_name(enum dbi_circuit_decision d); /* deny, probe, allow */
const char *dbi_circuit_result_name(enum dbi_circuit_result r);     /* ok, fail, timeout, refused */

/*
 * Settings. The integer and duration fields have the config loader's types (int64_t,
 * uint64_t ns) so the struct can be filled by a config map directly.
 *
 * The window rules count calls, one per scrape: at a 10 s collection_interval the default
 * 30 s failure_window holds 3 calls, so there only refusals and timeouts open a circuit;
 * make failure_window cover failure_threshold (and min_requests) intervals for the count
 * (and ratio) rule to apply. The window keeps the last DBI_CIRCUIT_WINDOW calls.
 */
struct dbi_circuit_conf {
	bool enabled;                /* false: always ALLOW, still count */
	int64_t failure_threshold;   /* 5 failures ... */
	uint64_t failure_window_ns;  /* ... within 30 s open the circuit; also the ratio rule's window */
	double error_ratio;          /* 0.5: this share of failures in the window opens it ... */
	int64_t min_requests;        /* 10 ... once the window holds this many calls */
	uint64_t open_initial_ns;    /* 60 s before the first probe */
	uint64_t open_max_ns;        /* 5 min */
	double backoff_multiplier;   /* 2 */
	int64_t half_open_successes; /* 3 */
	uint64_t slow_call_ns;       /* 5 s: a call slower than this is a timeout; 0 = off */
	bool open_on_timeout;        /* true: a timeout opens at once; false: it is one failure */
};
void dbi_circuit_conf_defaults(struct dbi_circuit_conf *c);
/* Cross-key checks (open_duration <= max_open_duration, ...); where prefixes messages. */
int dbi_circuit_conf_check(const struct dbi_circuit_conf *c, const char *where, struct dbi_errbuf *err);

#define DBI_CIRCUIT_WINDOW 64 /* recent results kept for the window rules */

/*
 * The config keys, for embedding in a receiver's map: prefix is a string literal ending
 * in '.' ("circuit_breaker.") or "", base the offset of the struct dbi_circuit_conf in the
 * receiver's config struct. Also usable inside a DBI_CT_LIST element map (per target).
 */
#define DBI_CIRCUIT_CONF_KEY_(prefix, base, field, nm, ty, dflt, lo, hi, text)                                         \
	{                                                                                                              \
		.name = prefix nm, .type = (ty), .offset = (base) + offsetof(struct dbi_circuit_conf, field),          \
		.def = (dflt), .min = (lo), .max = (hi), .doc = (text)                                                 \
	}
#define DBI_CIRCUIT_CONF_KEYS(prefix, base)                                                                            \
	DBI_CIRCUIT_CONF_KEY_(prefix, base, enabled, "enabled", DBI_CT_BOOL, "true", 0, 0,                             \
	                      "circuit breaker on; false: always scrape (results are still counted)"),                 \
	        DBI_CIRCUIT_CONF_KEY_(prefix, base, failure_threshold, "failure_threshold", DBI_CT_INT, "5", 1,        \
	                              DBI_CIRCUIT_WINDOW, "failures within failure_window that open the circuit"),     \
	        DBI_CIRCUIT_CONF_KEY_(prefix, base, failure_window_ns, "failure_window", DBI_CT_DURATION, "30s",       \
	                              0.001, 86400, "sliding window of the failure count and error ratio rules"),      \
	        DBI_CIRCUIT_CONF_KEY_(prefix, base, error_ratio, "error_ratio", DBI_CT_DOUBLE, "0.5", 0.01, 1,         \
	                              "share of failed calls in the window that opens the circuit"),                   \
	        DBI_CIRCUIT_CONF_KEY_(prefix, base, min_requests, "min_requests", DBI_CT_INT, "10", 1,                 \
	                              DBI_CIRCUIT_WINDOW, "calls the window must hold before error_ratio applies"),    \
	        DBI_CIRCUIT_CONF_KEY_(prefix, base, open_initial_ns, "open_duration", DBI_CT_DURATION, "60s", 0.001,   \
	                              86400, "time open before the first probe"),                                      \
	        DBI_CIRCUIT_CONF_KEY_(prefix, base, open_max_ns, "max_open_duration", DBI_CT_DURATION, "5m", 0.001,    \
	                              86400, "longest time open between probes (backoff cap)"),                        \
	        DBI_CIRCUIT_CONF_KEY_(prefix, base, backoff_multiplier, "backoff_multiplier", DBI_CT_DOUBLE, "2", 1,   \
	                              100, "open time grows by this factor after each failed probe"),                  \
	        DBI_CIRCUIT_CONF_KEY_(prefix, base, half_open_successes, "half_open_successes", DBI_CT_INT, "3", 1,    \
	                              100, "successful calls in half-open that close the circuit"),                    \
	        DBI_CIRCUIT_CONF_KEY_(prefix, base, slow_call_ns, "slow_call", DBI_CT_DURATION, "5s", 0, 3600,         \
	                              "a call slower than this counts as a timeout; 0 = no limit"),                    \
	        DBI_CIRCUIT_CONF_KEY_(prefix, base, open_on_timeout, "open_on_timeout", DBI_CT_BOOL, "true", 0, 0,     \
	                              "a timeout opens the circuit at once (false: it counts as one failure)")
/* The same keys without prefix, relative to struct dbi_circuit_conf; DBI_CONF_END terminated. */
extern const struct dbi_conf_key dbi_circuit_conf_keys[];

#define DBI_CIRCUIT_TARGET_MAX 96
#define DBI_CIRCUIT_ERROR_MAX 160
#define DBI_CIRCUIT_REASON_MAX 96

/*
 * One circuit, in shared memory, cache-line aligned so owners on different threads never
 * share a line. Three parts: published fields (the owner writes them under seq, a
 * seqlock; read them with dbi_circuit_snapshot), requests (atomics any thread may set;
 * the owner applies them on its next dbi_circuit_allow), and the owner's private state.
 */
struct dbi_circuit {
	/* ---- published ---- */
	_Atomic uint64_t seq;                /* odd while the owner updates */
	char target[DBI_CIRCUIT_TARGET_MAX]; /* "host:port" (service.instance.id); set before publication */
	_Atomic uint32_t state;              /* enum dbi_circuit_state */
	_Atomic uint32_t override_active;    /* the override the owner has applied */
	_Atomic uint64_t open_until_wall_ns; /* next probe time when open (ignored while forced open) */
	_Atomic uint64_t backoff_ns;         /* current open interval */
	_Atomic uint64_t last_change_wall_ns;
	_Atomic uint64_t created_wall_ns; /* start time of the cumulative counters */
	_Atomic uint64_t transitions;
	_Atomic uint64_t failures;        /* total */
	_Atomic uint64_t successes;       /* total */
	_Atomic uint64_t denied;          /* scrapes skipped while open */
	_Atomic uint64_t probes;          /* PROBE decisions */
	_Atomic uint32_t half_open_ok;    /* successes so far in half-open */
	_Atomic uint32_t window_calls;    /* calls in the failure window at the last record */
	_Atomic uint32_t window_failures; /* failures among them */
	_Atomic uint32_t pad0;
	_Atomic uint64_t last_error_wall_ns;
	char last_error[DBI_CIRCUIT_ERROR_MAX];   /* scrubbed of secrets */
	char last_reason[DBI_CIRCUIT_REASON_MAX]; /* why the last transition happened */

	/* ---- requests (admin endpoint, any thread) ---- */
	_Atomic uint32_t override;  /* enum dbi_circuit_override, applied on the owner's next allow */
	_Atomic uint32_t reset_req; /* reset asked for */

	/* ---- owner-private (process-local; other processes never read it) ---- */
	uint64_t win_time[DBI_CIRCUIT_WINDOW]; /* timestamps and outcomes of the last calls */
	uint8_t win_fail[DBI_CIRCUIT_WINDOW];
	uint32_t win_head, win_n;
	uint32_t index;
	uint64_t conf_gen;
	struct dbi_circuit_conf conf;
	struct dbi_circuit_table *table;
	struct dbi_log_site log_site; /* transitions are rate-limited per circuit, not per call site */
} __attribute__((aligned(DBI_CACHELINE)));

/* A table of circuits (one per target) in a shm region, found by name for admin/dbi-stat. */
struct dbi_circuit_table;

/* ---- owner side ---- */

/* Shared-memory bytes a table of capacity circuits takes (for a component's shm_bytes). */
uint64_t dbi_circuit_table_shm_bytes(uint32_t capacity);

/*
 * Create a table for owner_id (the receiver's id, e.g. "postgresql/east") in a region
 * "circuit:<owner_id>" of the runtime's segment (rt NULL: in process memory, for tests
 * and tools), and register it for the admin endpoint. state_path: the state file, or
 * NULL for none. Call on the main thread (component create).
 */
int dbi_circuit_table_create(struct dbi_circuit_table **out, struct dbi_runtime *rt, const char *owner_id,
                             uint32_t capacity, const struct dbi_circuit_conf *conf, const char *state_path,
                             struct dbi_errbuf *err);
/* Unregister (waits for an admin request in progress) and free. Does not save. */
void dbi_circuit_table_destroy(struct dbi_circuit_table *t);
/*
 * New settings (reconfigure): each circuit picks them up on its next allow. The backoff
 * in progress is clamped to the new bounds.
 */
void dbi_circuit_table_set_conf(struct dbi_circuit_table *t, const struct dbi_circuit_conf *conf);

/*
 * Find the circuit for target, or add it (closed, or as the state file said). Cold path;
 * thread-safe. NULL when the table is full (logged) or target is empty or too long.
 */
struct dbi_circuit *dbi_circuit_get(struct dbi_circuit_table *t, const char *target);
/* Find without adding; NULL if absent. */
struct dbi_circuit *dbi_circuit_find(struct dbi_circuit_table *t, const char *target);

/* Owner only: may it scrape now? Applies pending overrides/resets first. */
enum dbi_circuit_decision dbi_circuit_allow(struct dbi_circuit *c, uint64_t now);
/* Owner only: the outcome of a scrape that allow() let through. errmsg may be NULL. */
void dbi_circuit_record(struct dbi_circuit *c, enum dbi_circuit_result r, uint64_t duration_ns, uint64_t now,
                        const char *errmsg);

/*
 * Any thread (admin endpoint): request an override, or a reset (closed, fresh window and
 * backoff, override cleared). They take effect on the owner's next dbi_circuit_allow();
 * until then dbi_circuit_snapshot shows them as pending.
 */
void dbi_circuit_override(struct dbi_circuit *c, enum dbi_circuit_override o);
void dbi_circuit_reset(struct dbi_circuit *c);

/* ---- persistence ---- */

/*
 * Write the state file now: every circuit's state, probe time, backoff, override and last
 * error, to a temporary file, fsync, rename over the old one. Any thread. DBI_OK when
 * there is no state file.
 */
int dbi_circuit_table_save(struct dbi_circuit_table *t, uint64_t now);
/* Save if a circuit changed state since the last save; cheap otherwise (one atomic load). */
int dbi_circuit_table_sync(struct dbi_circuit_table *t, uint64_t now);
/*
 * Read the state file: circuits that exist get their saved state now, the others when
 * dbi_circuit_get adds them; entries never asked for (targets no longer configured) are
 * dropped at the next save. An open circuit stays open until its saved probe time (at
 * most max_open_duration from now). A missing file is DBI_OK; a corrupt or foreign one is
 * ignored with a warning and returns DBI_ERR (the table starts fresh either way).
 */
int dbi_circuit_table_load(struct dbi_circuit_table *t, uint64_t now);
/*
 * The default state file of an owner: <runtime.state_dir>/<shm name>.circuits.<owner>,
 * creating the state directory (0700) when needed; see dbi_state_dir in statedir.h.
 */
int dbi_circuit_state_path(struct dbi_runtime *rt, const char *owner_id, char *out, size_t len, struct dbi_errbuf *err);

/* ---- readers (admin endpoint, dbi-stat, metrics) ---- */

struct dbi_circuit_view {
	char target[DBI_CIRCUIT_TARGET_MAX];
	enum dbi_circuit_state state;
	enum dbi_circuit_override override;        /* requested */
	enum dbi_circuit_override override_active; /* applied by the owner */
	bool reset_pending;
	uint64_t open_until_wall_ns, backoff_ns, last_change_wall_ns, created_wall_ns, last_error_wall_ns;
	uint64_t transitions, failures, successes, denied, probes;
	uint32_t half_open_ok, window_calls, window_failures;
	char last_error[DBI_CIRCUIT_ERROR_MAX];
	char last_reason[DBI_CIRCUIT_REASON_MAX];
};
/* A consistent copy (retries while the owner writes); DBI_AGAIN if it never got one. */
int dbi_circuit_snapshot(const struct dbi_circuit *c, struct dbi_circuit_view *out);
/* The state the owner will be in after applying pending requests (what an admin asked for). */
enum dbi_circuit_state dbi_circuit_view_effective(const struct dbi_circuit_view *v);

const char *dbi_circuit_table_owner(const struct dbi_circuit_table *t);
uint32_t dbi_circuit_table_count(const struct dbi_circuit_table *t);
struct dbi_circuit *dbi_circuit_at(struct dbi_circuit_table *t, uint32_t i);

/*
 * Process-global registry of tables (the admin endpoint's view). fn runs for every
 * circuit of every table, in table creation order, with the registry locked (tables
 * cannot be destroyed meanwhile); a nonzero return stops the walk and is returned.
 */
typedef int (*dbi_circuit_visit_fn)(void *arg, struct dbi_circuit_table *t, struct dbi_circuit *c);
int dbi_circuit_foreach(dbi_circuit_visit_fn fn, void *arg);

/*
 * The shm region as another process sees it (dbi-stat): check a mapped region and get
 * the number of published circuits (-1: not a circuit table of this layout), then read
 * each with dbi_circuit_snapshot(dbi_circuit_region_at(...)).
 */
#define DBI_CIRCUIT_MAGIC 0x4442494349524331ULL /* "DBICIRC1" */
#define DBI_CIRCUIT_LAYOUT 1
struct dbi_circuit_region {
	uint64_t magic;
	uint32_t layout;       /* DBI_CIRCUIT_LAYOUT */
	uint32_t circuit_size; /* sizeof(struct dbi_circuit) */
	uint32_t capacity;
	_Atomic uint32_t count; /* circuits published (release after each is set up) */
	char owner[64];
	struct dbi_circuit c[]; /* cache-line aligned by its type */
};
int dbi_circuit_region_count(const void *region, uint64_t size);
const struct dbi_circuit *dbi_circuit_region_at(const void *region, uint32_t i);

/* ---- metrics: the receiver exports these per target every collection interval ---- */

#define DBI_CIRCUIT_METRIC_STATE "dbi.circuit.state"             /* gauge: 0 closed, 1 open, 2 half-open */
#define DBI_CIRCUIT_METRIC_TRANSITIONS "dbi.circuit.transitions" /* sum, monotonic, cumulative */
#define DBI_CIRCUIT_METRIC_FAILURES "dbi.circuit.failures"       /* sum, monotonic, cumulative */
#define DBI_CIRCUIT_ATTR_TARGET "target"                         /* point attribute: "host:port" */

struct dbi_circuit_series {
	uint32_t series[3]; /* state, transitions, failures */
	uint64_t route[3];  /* routing hashes for dbi_rctx_emit_point */
};
/*
 * Intern the three series of one target under the target's resource and the receiver's
 * scope (cold path). DBI_ERR when the registry refuses (series limit).
 */
int dbi_circuit_series_intern(struct dbi_registry *reg, uint32_t resource, uint32_t scope, const char *target,
                              struct dbi_circuit_series *out);
/* Fill out[0..2] for now (wall ns); emit out[i] with route[i]. Returns 3 (0: no snapshot). */
unsigned dbi_circuit_points(const struct dbi_circuit *c, const struct dbi_circuit_series *s, uint64_t now,
                            struct dbi_point *out);

#endif
