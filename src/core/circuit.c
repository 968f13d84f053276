/*
 * circuit.c — per-target circuit breakers (see circuit.h): the state machine, the shm
 * table the circuits live in, the state file, the process-wide registry the admin
 * endpoint walks, and the per-target metrics.
 *
 * Concurrency: each circuit has one writer, the owner (the scraper thread of its target).
 * Everything others may read is published under the circuit's seqlock with release
 * stores and read with acquire loads (the scheme of stats.c, which ThreadSanitizer can
 * check). Other threads only ever store into the two request words (override, reset);
 * the owner applies them at its next allow(), so no state is ever written by two
 * threads. Adding circuits, settings changes and saving take a table mutex: cold paths.
 */
#include "dbi/circuit.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/clock.h"
#include "dbi/log.h"
#include "dbi/record.h"
#include "dbi/registry.h"
#include "dbi/stats.h" /* before runtime.h, which uses its types */
#include "dbi/runtime.h"
#include "dbi/shm.h"
#include "dbi/statedir.h"

#define STATE_FILE_MAX (64u << 20)
#define STATE_FILE_VERSION 1
#define SAVE_RETRY_NS (10 * DBI_NSEC_PER_SEC)
#define OWNER_MAX 64

/* A circuit as the state file had it, waiting for dbi_circuit_get to add its target. */
struct saved_circuit {
	char target[DBI_CIRCUIT_TARGET_MAX];
	uint32_t state, override;
	uint64_t open_until, backoff, changed, error_time;
	char reason[DBI_CIRCUIT_REASON_MAX];
	char error[DBI_CIRCUIT_ERROR_MAX];
};

struct dbi_circuit_table {
	struct dbi_circuit_region *r;
	int heap; /* region in process memory (no runtime) */
	char owner[OWNER_MAX];
	char *state_path;          /* NULL: no state file */
	pthread_mutex_t lock;      /* adding circuits, conf, saved */
	pthread_mutex_t save_lock; /* one writer of the state file at a time */
	struct dbi_circuit_conf conf;
	_Atomic uint64_t conf_gen;
	_Atomic uint32_t dirty; /* a circuit changed state since the last save */
	uint64_t save_retry_at; /* after a failed save (under save_lock) */
	uint64_t loaded_at;     /* `now` of the last load: bounds restored probe times */
	struct saved_circuit *saved;
	size_t nsaved;
	struct dbi_circuit_table *next; /* registry */
};

/* ---- names ---- */

const char *dbi_circuit_state_name(enum dbi_circuit_state s)
{
	static const char *const n[] = {"closed", "open", "half_open"};
	return (unsigned)s < DBI_ARRAY_LEN(n) ? n[s] : "?";
}

const char *dbi_circuit_override_name(enum dbi_circuit_override o)
{
	static const char *const n[] = {"none", "force_open", "force_closed"};
	return (unsigned)o < DBI_ARRAY_LEN(n) ? n[o] : "?";
}

const char *dbi_circuit_decision_name(enum dbi_circuit_decision d)
{
	static const char *const n[] = {"deny", "probe", "allow"};
	return (unsigned)d < DBI_ARRAY_LEN(n) ? n[d] : "?";
}

const char *dbi_circuit_result_name(enum dbi_circuit_result r)
{
	static const char *const n[] = {"ok", "fail", "timeout", "refused"};
	return (unsigned)r < DBI_ARRAY_LEN(n) ? n[r] : "?";
}

static int name_index(const char *const *names, unsigned n, const char *s)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

/* ---- settings ---- */

const struct dbi_conf_key dbi_circuit_conf_keys[] = {
        DBI_CIRCUIT_CONF_KEYS("", 0),
        DBI_CONF_END,
};

void dbi_circuit_conf_defaults(struct dbi_circuit_conf *c)
{
	memset(c, 0, sizeof(*c));
	/* the defaults are the map's: one place says what they are */
	if (dbi_conf_defaults(dbi_circuit_conf_keys, c, NULL) != DBI_OK)
		abort(); /* a broken default is a build error, caught by the unit test */
}

int dbi_circuit_conf_check(const struct dbi_circuit_conf *c, const char *where, struct dbi_errbuf *err)
{
	int rc = DBI_OK;
	char a[32], b[32];
	if (c->open_initial_ns > c->open_max_ns) {
		dbi_err_add(err, "%s: open_duration (%s) must not exceed max_open_duration (%s)", where,
		            dbi_fmt_duration(c->open_initial_ns, a, sizeof(a)),
		            dbi_fmt_duration(c->open_max_ns, b, sizeof(b)));
		rc = DBI_ERR;
	}
	if (c->failure_threshold < 1 || c->failure_threshold > DBI_CIRCUIT_WINDOW || c->min_requests < 1 ||
	    c->min_requests > DBI_CIRCUIT_WINDOW) {
		dbi_err_add(err, "%s: failure_threshold and min_requests must be between 1 and %d", where,
		            DBI_CIRCUIT_WINDOW);
		rc = DBI_ERR;
	}
	if (c->half_open_successes < 1 || !(c->backoff_multiplier >= 1) || !(c->error_ratio > 0) ||
	    c->error_ratio > 1 || c->failure_window_ns == 0 || c->open_initial_ns == 0) {
		dbi_err_add(err,
		            "%s: half_open_successes >= 1, backoff_multiplier >= 1, 0 < error_ratio <= 1 and "
		            "non-zero failure_window and open_duration are required",
		            where);
		rc = DBI_ERR;
	}
	return rc;
}

/* ---- registry of tables ---- */

static pthread_mutex_t g_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dbi_circuit_table *g_reg_head;

static void registry_add(struct dbi_circuit_table *t)
{
	pthread_mutex_lock(&g_reg_lock);
	struct dbi_circuit_table **p = &g_reg_head;
	while (*p)
		p = &(*p)->next;
	*p = t;
	pthread_mutex_unlock(&g_reg_lock);
}

static void registry_remove(struct dbi_circuit_table *t)
{
	pthread_mutex_lock(&g_reg_lock);
	for (struct dbi_circuit_table **p = &g_reg_head; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	pthread_mutex_unlock(&g_reg_lock);
}

int dbi_circuit_foreach(dbi_circuit_visit_fn fn, void *arg)
{
	int rc = 0;
	pthread_mutex_lock(&g_reg_lock);
	for (struct dbi_circuit_table *t = g_reg_head; t && !rc; t = t->next) {
		uint32_t n = atomic_load_explicit(&t->r->count, memory_order_acquire);
		for (uint32_t i = 0; i < n && !rc; i++)
			rc = fn(arg, t, &t->r->c[i]);
	}
	pthread_mutex_unlock(&g_reg_lock);
	return rc;
}

/* ---- publishing (owner side of the seqlock) ---- */

#define PUT(c, f, v) atomic_store_explicit(&(c)->f, (v), memory_order_release)
#define GET(c, f) atomic_load_explicit(&(c)->f, memory_order_relaxed)
#define BUMP(c, f) PUT(c, f, GET(c, f) + 1)

/* Odd count: readers overlapping what follows retry (later release stores keep it first). */
static void pub_begin(struct dbi_circuit *c)
{
	uint64_t q = atomic_load_explicit(&c->seq, memory_order_relaxed);
	atomic_store_explicit(&c->seq, q + 1, memory_order_relaxed);
}

static void pub_end(struct dbi_circuit *c)
{
	uint64_t q = atomic_load_explicit(&c->seq, memory_order_relaxed);
	atomic_store_explicit(&c->seq, q + 1, memory_order_release);
}

/* Strings readers may copy at any time: byte stores up to the terminator. */
static void pub_str(char *dst, size_t cap, const char *src)
{
	size_t i = 0;
	for (; i + 1 < cap && src[i]; i++)
		__atomic_store_n(&dst[i], src[i], __ATOMIC_RELEASE);
	__atomic_store_n(&dst[i], '\0', __ATOMIC_RELEASE);
}

static void read_str(char *dst, const char *src, size_t cap)
{
	size_t i = 0;
	for (; i + 1 < cap; i++) {
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_ACQUIRE);
		if (!dst[i])
			break;
	}
	dst[i] = '\0';
}

/* ---- the state machine (owner only) ---- */

static uint32_t probes_needed(const struct dbi_circuit *c)
{
	/* the first half of the required successes run the reduced set; a full scrape closes it */
	return (uint32_t)(c->conf.half_open_successes + 1) / 2;
}

static void window_clear(struct dbi_circuit *c)
{
	c->win_head = 0;
	c->win_n = 0;
	PUT(c, window_calls, 0);
	PUT(c, window_failures, 0);
}

/* Add a call and count the window: calls newer than failure_window (or from a clock gone back). */
static void window_push(struct dbi_circuit *c, uint64_t now, int fail)
{
	uint32_t calls = 0, fails = 0;
	c->win_time[c->win_head] = now;
	c->win_fail[c->win_head] = (uint8_t)fail;
	c->win_head = (c->win_head + 1) % DBI_CIRCUIT_WINDOW;
	if (c->win_n < DBI_CIRCUIT_WINDOW)
		c->win_n++;
	for (uint32_t i = 0; i < c->win_n; i++) {
		uint64_t t = c->win_time[i];
		if (t >= now || now - t < c->conf.failure_window_ns) {
			calls++;
			fails += c->win_fail[i];
		}
	}
	PUT(c, window_calls, calls);
	PUT(c, window_failures, fails);
}

/* A duration for people: "1m", "90s", "6.250s", "12.5ms". */
static const char *human_dur(uint64_t ns, char *buf, size_t len)
{
	if (ns % DBI_NSEC_PER_SEC == 0)
		return dbi_fmt_duration(ns, buf, len);
	if (ns >= DBI_NSEC_PER_SEC)
		snprintf(buf, len, "%.3fs", (double)ns / 1e9);
	else
		snprintf(buf, len, "%.1fms", (double)ns / 1e6);
	return buf;
}

/* A log field value without the characters that would break a logfmt line. */
static const char *log_safe(const char *s, char *buf, size_t len)
{
	size_t o = 0;
	for (; *s && o + 1 < len; s++)
		buf[o++] = *s == '"' ? '\'' : (unsigned char)*s < 0x20 ? ' ' : *s;
	buf[o] = '\0';
	return buf;
}

/*
 * Log through the circuit's own rate limiter: a mass outage logs every target's transition,
 * while one flapping target cannot flood the log.
 */
#define CIRCUIT_LOG(c, lvl, msg, ...)                                                                                  \
	do {                                                                                                           \
		if ((lvl) >= dbi_log_get_level())                                                                      \
			dbi_log_emit(&(c)->log_site, (lvl), "circuit", (msg), __VA_ARGS__);                            \
	} while (0)

/*
 * The lines of a state change are formatted inside the seqlock's write section and written
 * after it: a slow or blocked stderr must never keep readers spinning. Per thread, as the
 * owners are; at most a reset, an override and two transitions happen in one call.
 */
#define LOGQ_MAX 4
static _Thread_local struct {
	unsigned n;
	struct {
		enum dbi_log_level lvl;
		const char *msg;
		char fields[400];
	} e[LOGQ_MAX];
} t_logq;

static void logq_add(enum dbi_log_level lvl, const char *msg, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void logq_add(enum dbi_log_level lvl, const char *msg, const char *fmt, ...)
{
	if (t_logq.n >= LOGQ_MAX || lvl < dbi_log_get_level())
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t_logq.e[t_logq.n].fields, sizeof(t_logq.e[0].fields), fmt, ap);
	va_end(ap);
	t_logq.e[t_logq.n].lvl = lvl;
	t_logq.e[t_logq.n].msg = msg;
	t_logq.n++;
}

static void logq_flush(struct dbi_circuit *c)
{
	for (unsigned i = 0; i < t_logq.n; i++)
		CIRCUIT_LOG(c, t_logq.e[i].lvl, t_logq.e[i].msg, "%s", t_logq.e[i].fields);
	t_logq.n = 0;
}

/* Inside pub_begin/pub_end. The caller has set backoff_ns for an opening. */
static void transition(struct dbi_circuit *c, enum dbi_circuit_state to, uint64_t now, const char *reason)
{
	enum dbi_circuit_state from = (enum dbi_circuit_state)GET(c, state);
	char rs[DBI_CIRCUIT_REASON_MAX], d[32];
	PUT(c, state, (uint32_t)to);
	BUMP(c, transitions);
	PUT(c, last_change_wall_ns, now);
	pub_str(c->last_reason, sizeof(c->last_reason), reason);
	PUT(c, half_open_ok, 0);
	if (to == DBI_CIRCUIT_OPEN) {
		PUT(c, open_until_wall_ns, now + GET(c, backoff_ns));
	} else if (to == DBI_CIRCUIT_CLOSED) {
		/* closing forgives: the next opening starts over at open_duration */
		PUT(c, backoff_ns, c->conf.open_initial_ns);
		PUT(c, open_until_wall_ns, 0);
		window_clear(c);
	}
	atomic_store_explicit(&c->table->dirty, 1, memory_order_release);
	if (to == DBI_CIRCUIT_OPEN)
		logq_add(DBI_LOG_WARN, "circuit opened",
		         "receiver=%s target=%s from=%s to=%s reason=\"%s\" next_probe_in=%s", c->table->owner,
		         c->target, dbi_circuit_state_name(from), dbi_circuit_state_name(to),
		         log_safe(reason, rs, sizeof(rs)),
		         GET(c, override_active) == DBI_CIRCUIT_FORCE_OPEN
		                 ? "never(forced)"
		                 : human_dur(GET(c, backoff_ns), d, sizeof(d)));
	else
		logq_add(DBI_LOG_INFO, "circuit state change", "receiver=%s target=%s from=%s to=%s reason=\"%s\"",
		         c->table->owner, c->target, dbi_circuit_state_name(from), dbi_circuit_state_name(to),
		         log_safe(reason, rs, sizeof(rs)));
}

static void open_circuit(struct dbi_circuit *c, uint64_t now, const char *reason)
{
	transition(c, DBI_CIRCUIT_OPEN, now, reason);
}

/* Pick up new settings from the table (rare: a reload changed them). */
static void refresh_conf(struct dbi_circuit *c)
{
	struct dbi_circuit_table *t = c->table;
	pthread_mutex_lock(&t->lock);
	c->conf = t->conf;
	c->conf_gen = atomic_load_explicit(&t->conf_gen, memory_order_relaxed);
	pthread_mutex_unlock(&t->lock);
	pub_begin(c);
	uint64_t b = GET(c, backoff_ns);
	b = DBI_MAX(b, c->conf.open_initial_ns);
	b = DBI_MIN(b, c->conf.open_max_ns);
	PUT(c, backoff_ns, b);
	pub_end(c);
}

/* Apply what the admin endpoint asked for: a reset first, then the override. */
static void apply_requests(struct dbi_circuit *c, uint64_t now)
{
	pub_begin(c);
	if (atomic_exchange_explicit(&c->reset_req, 0, memory_order_acq_rel)) {
		/* dbi_circuit_reset cleared the requested override before asking */
		PUT(c, override_active, DBI_CIRCUIT_NO_OVERRIDE);
		if (GET(c, state) != DBI_CIRCUIT_CLOSED)
			transition(c, DBI_CIRCUIT_CLOSED, now, "reset by admin");
		PUT(c, backoff_ns, c->conf.open_initial_ns);
		PUT(c, open_until_wall_ns, 0);
		PUT(c, half_open_ok, 0);
		window_clear(c);
		atomic_store_explicit(&c->table->dirty, 1, memory_order_release);
		logq_add(DBI_LOG_INFO, "circuit reset", "receiver=%s target=%s", c->table->owner, c->target);
	}
	uint32_t want = atomic_load_explicit(&c->override, memory_order_acquire);
	if (want > DBI_CIRCUIT_FORCE_CLOSED)
		want = DBI_CIRCUIT_NO_OVERRIDE;
	if (want != GET(c, override_active)) {
		PUT(c, override_active, want);
		if (want == DBI_CIRCUIT_FORCE_OPEN && GET(c, state) != DBI_CIRCUIT_OPEN)
			open_circuit(c, now, "forced open by admin");
		else if (want == DBI_CIRCUIT_FORCE_CLOSED && GET(c, state) != DBI_CIRCUIT_CLOSED)
			transition(c, DBI_CIRCUIT_CLOSED, now, "forced closed by admin");
		atomic_store_explicit(&c->table->dirty, 1, memory_order_release);
		logq_add(DBI_LOG_INFO, "circuit override applied", "receiver=%s target=%s override=%s", c->table->owner,
		         c->target, dbi_circuit_override_name((enum dbi_circuit_override)want));
	}
	pub_end(c);
}

static enum dbi_circuit_decision decide(struct dbi_circuit *c, uint64_t now)
{
	if (dbi_unlikely(atomic_load_explicit(&c->table->conf_gen, memory_order_acquire) != c->conf_gen))
		refresh_conf(c);
	if (dbi_unlikely(atomic_load_explicit(&c->override, memory_order_relaxed) != GET(c, override_active) ||
	                 atomic_load_explicit(&c->reset_req, memory_order_relaxed)))
		apply_requests(c, now);

	uint32_t ov = GET(c, override_active);
	uint32_t st = GET(c, state);
	if (ov == DBI_CIRCUIT_FORCE_CLOSED || (ov == DBI_CIRCUIT_NO_OVERRIDE && st == DBI_CIRCUIT_CLOSED))
		return DBI_CIRCUIT_ALLOW;
	if (ov == DBI_CIRCUIT_NO_OVERRIDE && !c->conf.enabled) {
		if (st != DBI_CIRCUIT_CLOSED) {
			pub_begin(c);
			transition(c, DBI_CIRCUIT_CLOSED, now, "circuit breaker disabled");
			pub_end(c);
		}
		return DBI_CIRCUIT_ALLOW;
	}
	if (ov == DBI_CIRCUIT_FORCE_OPEN) {
		pub_begin(c);
		BUMP(c, denied);
		pub_end(c);
		return DBI_CIRCUIT_DENY;
	}
	if (st == DBI_CIRCUIT_OPEN) {
		uint64_t until = GET(c, open_until_wall_ns), backoff = GET(c, backoff_ns);
		pub_begin(c);
		if (until > now + backoff) {
			/* the clock went back: never wait longer than one backoff from now */
			until = now + backoff;
			PUT(c, open_until_wall_ns, until);
		}
		if (now < until) {
			BUMP(c, denied);
			pub_end(c);
			return DBI_CIRCUIT_DENY;
		}
		char reason[DBI_CIRCUIT_REASON_MAX], d[32];
		snprintf(reason, sizeof(reason), "probe time reached after %s open", human_dur(backoff, d, sizeof(d)));
		transition(c, DBI_CIRCUIT_HALF_OPEN, now, reason);
		pub_end(c);
	}
	/* half-open: ramp up */
	if (GET(c, half_open_ok) < probes_needed(c)) {
		pub_begin(c);
		BUMP(c, probes);
		pub_end(c);
		return DBI_CIRCUIT_PROBE;
	}
	return DBI_CIRCUIT_ALLOW;
}

enum dbi_circuit_decision dbi_circuit_allow(struct dbi_circuit *c, uint64_t now)
{
	enum dbi_circuit_decision d = decide(c, now);
	if (dbi_unlikely(t_logq.n))
		logq_flush(c);
	return d;
}

static void record(struct dbi_circuit *c, enum dbi_circuit_result r, uint64_t duration_ns, uint64_t now,
                   const char *errmsg)
{
	char slow[96], msg[DBI_CIRCUIT_ERROR_MAX], scrubbed[DBI_CIRCUIT_ERROR_MAX], reason[DBI_CIRCUIT_REASON_MAX];
	char d1[32], d2[32];

	if (dbi_unlikely(atomic_load_explicit(&c->table->conf_gen, memory_order_acquire) != c->conf_gen))
		refresh_conf(c);
	if ((unsigned)r > DBI_CIRCUIT_REFUSED)
		r = DBI_CIRCUIT_FAIL;
	if (r == DBI_CIRCUIT_OK && c->conf.slow_call_ns && duration_ns > c->conf.slow_call_ns) {
		snprintf(slow, sizeof(slow), "call took %s (slow_call %s)", human_dur(duration_ns, d1, sizeof(d1)),
		         human_dur(c->conf.slow_call_ns, d2, sizeof(d2)));
		r = DBI_CIRCUIT_TIMEOUT;
		errmsg = slow;
	}
	int fail = r != DBI_CIRCUIT_OK;
	if (fail) {
		snprintf(msg, sizeof(msg), "%s: %s", dbi_circuit_result_name(r), errmsg && *errmsg ? errmsg : "-");
		dbi_log_scrub(msg, scrubbed, sizeof(scrubbed));
	}

	pub_begin(c);
	if (fail) {
		BUMP(c, failures);
		pub_str(c->last_error, sizeof(c->last_error), scrubbed);
		PUT(c, last_error_wall_ns, now);
	} else {
		BUMP(c, successes);
	}
	window_push(c, now, fail);
	if (GET(c, override_active) != DBI_CIRCUIT_NO_OVERRIDE || !c->conf.enabled)
		goto done; /* forced: results are counted, the state is the admin's */

	switch ((enum dbi_circuit_state)GET(c, state)) {
	case DBI_CIRCUIT_CLOSED: {
		if (!fail)
			break;
		uint32_t calls = GET(c, window_calls), fails = GET(c, window_failures);
		reason[0] = '\0';
		if (r == DBI_CIRCUIT_REFUSED)
			snprintf(reason, sizeof(reason), "connection refused");
		else if (r == DBI_CIRCUIT_TIMEOUT && c->conf.open_on_timeout)
			snprintf(reason, sizeof(reason), "timeout");
		else if (fails >= (uint64_t)c->conf.failure_threshold)
			snprintf(reason, sizeof(reason), "%u failures within %s", fails,
			         human_dur(c->conf.failure_window_ns, d1, sizeof(d1)));
		else if (calls >= (uint64_t)c->conf.min_requests &&
		         (double)fails >= c->conf.error_ratio * (double)calls - 1e-9)
			snprintf(reason, sizeof(reason), "%u of %u calls failed within %s", fails, calls,
			         human_dur(c->conf.failure_window_ns, d1, sizeof(d1)));
		if (reason[0])
			open_circuit(c, now, reason);
		break;
	}
	case DBI_CIRCUIT_HALF_OPEN:
		if (fail) {
			/* each failed probe waits longer, up to max_open_duration */
			double next = (double)GET(c, backoff_ns) * c->conf.backoff_multiplier;
			uint64_t b = next >= (double)c->conf.open_max_ns ? c->conf.open_max_ns : (uint64_t)next;
			PUT(c, backoff_ns, DBI_MAX(b, c->conf.open_initial_ns));
			snprintf(reason, sizeof(reason), "half-open call failed (%s)", dbi_circuit_result_name(r));
			open_circuit(c, now, reason);
		} else {
			uint32_t ok = GET(c, half_open_ok) + 1;
			PUT(c, half_open_ok, ok);
			if (ok >= (uint64_t)c->conf.half_open_successes) {
				snprintf(reason, sizeof(reason), "%u successful calls in half-open", ok);
				transition(c, DBI_CIRCUIT_CLOSED, now, reason);
			}
		}
		break;
	case DBI_CIRCUIT_OPEN:
		break; /* a call allowed before the circuit opened: counted only */
	}
done:
	pub_end(c);
}

void dbi_circuit_record(struct dbi_circuit *c, enum dbi_circuit_result r, uint64_t duration_ns, uint64_t now,
                        const char *errmsg)
{
	record(c, r, duration_ns, now, errmsg);
	if (dbi_unlikely(t_logq.n))
		logq_flush(c);
}

void dbi_circuit_override(struct dbi_circuit *c, enum dbi_circuit_override o)
{
	if ((unsigned)o > DBI_CIRCUIT_FORCE_CLOSED)
		return;
	atomic_store_explicit(&c->override, (uint32_t)o, memory_order_release);
}

void dbi_circuit_reset(struct dbi_circuit *c)
{
	/* in this order: an override requested after the reset survives it */
	atomic_store_explicit(&c->override, DBI_CIRCUIT_NO_OVERRIDE, memory_order_release);
	atomic_store_explicit(&c->reset_req, 1, memory_order_release);
}

/* ---- readers ---- */

#define LD(c, f) atomic_load_explicit(&(c)->f, memory_order_acquire)

int dbi_circuit_snapshot(const struct dbi_circuit *c, struct dbi_circuit_view *o)
{
	for (unsigned t = 0; t < DBI_SEQ_TRIES; t++) {
		dbi_seq_backoff(t);
		uint64_t s1 = atomic_load_explicit(&c->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		o->state = (enum dbi_circuit_state)LD(c, state);
		o->override_active = (enum dbi_circuit_override)LD(c, override_active);
		o->open_until_wall_ns = LD(c, open_until_wall_ns);
		o->backoff_ns = LD(c, backoff_ns);
		o->last_change_wall_ns = LD(c, last_change_wall_ns);
		o->created_wall_ns = LD(c, created_wall_ns);
		o->transitions = LD(c, transitions);
		o->failures = LD(c, failures);
		o->successes = LD(c, successes);
		o->denied = LD(c, denied);
		o->probes = LD(c, probes);
		o->half_open_ok = LD(c, half_open_ok);
		o->window_calls = LD(c, window_calls);
		o->window_failures = LD(c, window_failures);
		o->last_error_wall_ns = LD(c, last_error_wall_ns);
		read_str(o->last_error, c->last_error, sizeof(o->last_error));
		read_str(o->last_reason, c->last_reason, sizeof(o->last_reason));
		if (atomic_load_explicit(&c->seq, memory_order_relaxed) != s1)
			continue;
		/* set before the circuit was published; never changes */
		memcpy(o->target, c->target, sizeof(o->target));
		o->target[sizeof(o->target) - 1] = '\0';
		uint32_t ov = LD(c, override);
		o->override = ov <= DBI_CIRCUIT_FORCE_CLOSED ? (enum dbi_circuit_override)ov : DBI_CIRCUIT_NO_OVERRIDE;
		o->reset_pending = LD(c, reset_req) != 0;
		if ((unsigned)o->state > DBI_CIRCUIT_HALF_OPEN)
			o->state = DBI_CIRCUIT_OPEN; /* another process's bytes: never index out of range */
		if ((unsigned)o->override_active > DBI_CIRCUIT_FORCE_CLOSED)
			o->override_active = DBI_CIRCUIT_NO_OVERRIDE;
		return DBI_OK;
	}
	return DBI_AGAIN;
}

enum dbi_circuit_state dbi_circuit_view_effective(const struct dbi_circuit_view *v)
{
	if (v->override == DBI_CIRCUIT_FORCE_OPEN)
		return DBI_CIRCUIT_OPEN;
	if (v->override == DBI_CIRCUIT_FORCE_CLOSED || v->reset_pending)
		return DBI_CIRCUIT_CLOSED;
	return v->state;
}

const char *dbi_circuit_table_owner(const struct dbi_circuit_table *t)
{
	return t->owner;
}

uint32_t dbi_circuit_table_count(const struct dbi_circuit_table *t)
{
	return atomic_load_explicit(&t->r->count, memory_order_acquire);
}

struct dbi_circuit *dbi_circuit_at(struct dbi_circuit_table *t, uint32_t i)
{
	return i < dbi_circuit_table_count(t) ? &t->r->c[i] : NULL;
}

int dbi_circuit_region_count(const void *region, uint64_t size)
{
	const struct dbi_circuit_region *r = region;
	if (!r || size < sizeof(*r) || __atomic_load_n(&r->magic, __ATOMIC_ACQUIRE) != DBI_CIRCUIT_MAGIC)
		return -1;
	if (r->layout != DBI_CIRCUIT_LAYOUT || r->circuit_size != sizeof(struct dbi_circuit))
		return -1;
	if (r->capacity > (size - sizeof(*r)) / sizeof(struct dbi_circuit))
		return -1;
	uint32_t n = atomic_load_explicit(&r->count, memory_order_acquire);
	return n <= r->capacity ? (int)n : -1;
}

const struct dbi_circuit *dbi_circuit_region_at(const void *region, uint32_t i)
{
	return &((const struct dbi_circuit_region *)region)->c[i];
}

/* ---- tables ---- */

uint64_t dbi_circuit_table_shm_bytes(uint32_t capacity)
{
	return sizeof(struct dbi_circuit_region) + (uint64_t)capacity * sizeof(struct dbi_circuit);
}

int dbi_circuit_table_create(struct dbi_circuit_table **out, struct dbi_runtime *rt, const char *owner_id,
                             uint32_t capacity, const struct dbi_circuit_conf *conf, const char *state_path,
                             struct dbi_errbuf *err)
{
	struct dbi_circuit_table *t = NULL;
	uint64_t size = dbi_circuit_table_shm_bytes(capacity);

	*out = NULL;
	if (!owner_id || !*owner_id || strlen(owner_id) >= OWNER_MAX) {
		dbi_err_add(err, "circuit table: owner id must be 1 to %d characters", OWNER_MAX - 1);
		return DBI_ERR;
	}
	if (capacity == 0 || capacity > (1u << 20)) {
		dbi_err_add(err, "%s: circuit table capacity %u is out of range [1, %u]", owner_id, capacity, 1u << 20);
		return DBI_ERR;
	}
	if (conf && dbi_circuit_conf_check(conf, owner_id, err) != DBI_OK)
		return DBI_ERR;
	t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	dbi_strlcpy(t->owner, owner_id, sizeof(t->owner));
	if (conf)
		t->conf = *conf;
	else
		dbi_circuit_conf_defaults(&t->conf);
	if (state_path && !(t->state_path = strdup(state_path)))
		goto nomem;
	if (rt) {
		char name[DBI_SHM_REGION_NAME];
		snprintf(name, sizeof(name), "circuit:%s", owner_id);
		t->r = dbi_shm_alloc(dbi_runtime_shm(rt), DBI_REGION_CIRCUIT, name, size, owner_id, "");
		if (!t->r) {
			dbi_err_add(err, "%s: shared memory segment too small for %u circuits (raise runtime.shm.size)",
			            owner_id, capacity);
			goto fail;
		}
	} else {
		t->r = aligned_alloc(DBI_CACHELINE, DBI_ALIGN_UP(size, DBI_CACHELINE));
		if (!t->r)
			goto nomem;
		memset(t->r, 0, size);
		t->heap = 1;
	}
	t->r->layout = DBI_CIRCUIT_LAYOUT;
	t->r->circuit_size = sizeof(struct dbi_circuit);
	t->r->capacity = capacity;
	atomic_store_explicit(&t->r->count, 0, memory_order_relaxed);
	dbi_strlcpy(t->r->owner, owner_id, sizeof(t->r->owner));
	/* last: a reader that sees the magic sees the header */
	__atomic_store_n(&t->r->magic, DBI_CIRCUIT_MAGIC, __ATOMIC_RELEASE);
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->save_lock, NULL);
	atomic_store(&t->conf_gen, 1);
	registry_add(t);
	*out = t;
	return DBI_OK;
nomem:
	dbi_err_add(err, "%s: out of memory for the circuit table", owner_id);
fail:
	if (t) {
		free(t->state_path);
		if (t->heap)
			free(t->r);
	}
	free(t);
	return DBI_ERR;
}

void dbi_circuit_table_destroy(struct dbi_circuit_table *t)
{
	if (!t)
		return;
	registry_remove(t);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->save_lock);
	free(t->saved);
	free(t->state_path);
	if (t->heap)
		free(t->r);
	free(t);
}

void dbi_circuit_table_set_conf(struct dbi_circuit_table *t, const struct dbi_circuit_conf *conf)
{
	pthread_mutex_lock(&t->lock);
	t->conf = *conf;
	atomic_fetch_add_explicit(&t->conf_gen, 1, memory_order_release);
	pthread_mutex_unlock(&t->lock);
}

/* Give a circuit what the state file said. Before the circuit's owner runs. */
static void apply_saved(struct dbi_circuit_table *t, struct dbi_circuit *c, const struct saved_circuit *s)
{
	uint64_t now = t->loaded_at;
	uint64_t b = DBI_MIN(DBI_MAX(s->backoff, c->conf.open_initial_ns), c->conf.open_max_ns);
	pub_begin(c);
	PUT(c, backoff_ns, b);
	PUT(c, state, s->state);
	PUT(c, half_open_ok, 0);
	/* stays open until its probe time, but no longer than one backoff from now */
	PUT(c, open_until_wall_ns, s->state == DBI_CIRCUIT_OPEN ? DBI_MIN(s->open_until, now + b) : 0);
	PUT(c, last_change_wall_ns, s->changed);
	PUT(c, last_error_wall_ns, s->error_time);
	pub_str(c->last_reason, sizeof(c->last_reason), s->reason);
	pub_str(c->last_error, sizeof(c->last_error), s->error);
	PUT(c, override_active, s->override);
	atomic_store_explicit(&c->override, s->override, memory_order_release);
	pub_end(c);
	if (s->state != DBI_CIRCUIT_CLOSED || s->override != DBI_CIRCUIT_NO_OVERRIDE) {
		char d[32];
		uint64_t until = GET(c, open_until_wall_ns);
		CIRCUIT_LOG(c, DBI_LOG_INFO, "circuit state restored",
		            "receiver=%s target=%s state=%s override=%s next_probe_in=%s", t->owner, c->target,
		            dbi_circuit_state_name((enum dbi_circuit_state)s->state),
		            dbi_circuit_override_name((enum dbi_circuit_override)s->override),
		            s->state != DBI_CIRCUIT_OPEN ? "-"
		                                         : human_dur(until > now ? until - now : 0, d, sizeof(d)));
	}
}

static struct dbi_circuit *find_locked(struct dbi_circuit_table *t, const char *target)
{
	uint32_t n = atomic_load_explicit(&t->r->count, memory_order_relaxed);
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(t->r->c[i].target, target) == 0)
			return &t->r->c[i];
	return NULL;
}

struct dbi_circuit *dbi_circuit_find(struct dbi_circuit_table *t, const char *target)
{
	pthread_mutex_lock(&t->lock);
	struct dbi_circuit *c = find_locked(t, target);
	pthread_mutex_unlock(&t->lock);
	return c;
}

struct dbi_circuit *dbi_circuit_get(struct dbi_circuit_table *t, const char *target)
{
	size_t len = target ? strlen(target) : 0;
	if (len == 0 || len >= DBI_CIRCUIT_TARGET_MAX) {
		DBI_LOGW("circuit", "target name empty or too long for a circuit", "receiver=%s len=%zu", t->owner,
		         len);
		return NULL;
	}
	pthread_mutex_lock(&t->lock);
	struct dbi_circuit *c = find_locked(t, target);
	if (c)
		goto out;
	uint32_t n = atomic_load_explicit(&t->r->count, memory_order_relaxed);
	if (n >= t->r->capacity) {
		DBI_LOGW("circuit", "circuit table full: target runs without a circuit breaker",
		         "receiver=%s target=%s capacity=%u", t->owner, target, t->r->capacity);
		goto out;
	}
	c = &t->r->c[n];
	memset(c, 0, sizeof(*c));
	memcpy(c->target, target, len + 1);
	c->index = n;
	c->table = t;
	c->conf = t->conf;
	c->conf_gen = atomic_load_explicit(&t->conf_gen, memory_order_relaxed);
	PUT(c, backoff_ns, c->conf.open_initial_ns);
	PUT(c, created_wall_ns, dbi_wall_ns()); /* the counters' start time, not a rule input */
	for (size_t i = 0; i < t->nsaved; i++) {
		if (strcmp(t->saved[i].target, target) == 0) {
			apply_saved(t, c, &t->saved[i]);
			t->saved[i] = t->saved[--t->nsaved];
			break;
		}
	}
	atomic_store_explicit(&t->r->count, n + 1, memory_order_release);
out:
	pthread_mutex_unlock(&t->lock);
	return c;
}

/* ---- the state file ----
 *
 *   dbi-circuits 1
 *   owner <owner>
 *   saved <wall ns>
 *   c <target> <state> <override> <open_until> <backoff> <changed> <error_time> <reason> <error>
 *   ...
 *   end <circuits> <hash of everything before this line, hex>
 *
 * Strings are percent-encoded (no spaces or control bytes), "-" is the empty string. Any
 * deviation rejects the whole file: better to start fresh than from half a state.
 */

static const char *const state_names[] = {"closed", "open", "half_open"};
static const char *const override_names[] = {"none", "force_open", "force_closed"};
#define STATE_HASH_SEED 0x6369726375697473ULL

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	for (int tries = 0; tries < 2 && !b->oom; tries++) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if (b->p && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = DBI_MAX(b->cap * 2, b->len + (size_t)n + 4096);
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

static const char *enc(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	if (!*s)
		return "-";
	for (; *s && o + 4 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= 0x20 || ch >= 0x7f || ch == '%' || (ch == '-' && o == 0 && !s[1])) {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
	return out;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

static int dec(const char *s, char *out, size_t len)
{
	size_t o = 0;
	if (strcmp(s, "-") == 0) {
		out[0] = '\0';
		return DBI_OK;
	}
	for (; *s; s++) {
		char ch = *s;
		if (ch == '%') {
			int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return DBI_ERR;
			ch = (char)(hi * 16 + lo);
			s += 2;
		}
		if (o + 1 >= len)
			return DBI_ERR;
		out[o++] = ch;
	}
	out[o] = '\0';
	return DBI_OK;
}

int dbi_circuit_table_save(struct dbi_circuit_table *t, uint64_t now)
{
	struct buf b = {0};
	struct dbi_errbuf err;
	char e1[3 * DBI_CIRCUIT_TARGET_MAX + 4], e2[3 * DBI_CIRCUIT_REASON_MAX + 4], e3[3 * DBI_CIRCUIT_ERROR_MAX + 4];
	char eo[3 * OWNER_MAX + 4];
	int rc = DBI_OK;

	if (!t->state_path)
		return DBI_OK;
	pthread_mutex_lock(&t->save_lock);
	atomic_store_explicit(&t->dirty, 0, memory_order_relaxed);
	uint32_t n = dbi_circuit_table_count(t);
	buf_printf(&b, "dbi-circuits %d\nowner %s\nsaved %" PRIu64 "\n", STATE_FILE_VERSION,
	           enc(t->owner, eo, sizeof(eo)), now);
	for (uint32_t i = 0; i < n; i++) {
		struct dbi_circuit_view v;
		if (dbi_circuit_snapshot(&t->r->c[i], &v) != DBI_OK) {
			rc = DBI_AGAIN; /* an owner kept writing: try again at the next sync */
			goto cleanup;
		}
		/* the requested override is what the operator meant, applied or not yet */
		buf_printf(&b, "c %s %s %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s %s\n",
		           enc(v.target, e1, sizeof(e1)), state_names[v.state], override_names[v.override],
		           v.open_until_wall_ns, v.backoff_ns, v.last_change_wall_ns, v.last_error_wall_ns,
		           enc(v.last_reason, e2, sizeof(e2)), enc(v.last_error, e3, sizeof(e3)));
	}
	if (b.oom) {
		rc = DBI_ERR;
		DBI_LOGW("circuit", "cannot save circuit states: out of memory", "receiver=%s", t->owner);
		goto cleanup;
	}
	uint64_t h = dbi_hash64(b.p, b.len, STATE_HASH_SEED);
	buf_printf(&b, "end %u %016" PRIx64 "\n", n, h);
	dbi_err_clear(&err);
	if (b.oom || dbi_state_write(t->state_path, b.p, b.len, &err) != DBI_OK) {
		rc = DBI_ERR;
		DBI_LOGW("circuit", "cannot save circuit states", "receiver=%s error=\"%s\"", t->owner,
		         b.oom ? "out of memory" : err.msg);
	}
cleanup:
	if (rc != DBI_OK) {
		atomic_store_explicit(&t->dirty, 1, memory_order_relaxed);
		t->save_retry_at = now + SAVE_RETRY_NS;
	} else {
		t->save_retry_at = 0;
	}
	pthread_mutex_unlock(&t->save_lock);
	free(b.p);
	return rc;
}

int dbi_circuit_table_sync(struct dbi_circuit_table *t, uint64_t now)
{
	if (!atomic_load_explicit(&t->dirty, memory_order_acquire) || !t->state_path)
		return DBI_OK;
	/* another thread is saving: it or the next sync writes our change */
	if (pthread_mutex_trylock(&t->save_lock) != 0)
		return DBI_AGAIN;
	uint64_t retry = t->save_retry_at;
	pthread_mutex_unlock(&t->save_lock);
	if (retry && now < retry)
		return DBI_AGAIN; /* the disk refused recently: don't retry every loop */
	return dbi_circuit_table_save(t, now);
}

/* Split a line into at most max space-separated fields; returns how many. */
static int split(char *line, char **f, int max)
{
	int n = 0;
	char *save = NULL;
	for (char *p = strtok_r(line, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
		if (n == max)
			return max + 1;
		f[n++] = p;
	}
	return n;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	if (*s < '0' || *s > '9')
		return DBI_ERR;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || *end)
		return DBI_ERR;
	*v = x;
	return DBI_OK;
}

/* Parse the whole file into entries; on error, why says where. */
static int parse_state(struct dbi_circuit_table *t, char *data, size_t len, struct saved_circuit **out, size_t *nout,
                       char *why, size_t whylen)
{
	struct saved_circuit *v = NULL;
	size_t n = 0, cap = 0;
	char *f[12], owner[OWNER_MAX];
	int lineno = 0;
	uint64_t count, hash;

	*out = NULL;
	*nout = 0;
	if (strncmp(data, "dbi-circuits ", 13) != 0) {
		snprintf(why, whylen, "not a dbi circuit state file");
		return DBI_ERR;
	}
	if (memchr(data, '\0', len)) {
		snprintf(why, whylen, "contains NUL bytes");
		return DBI_ERR;
	}
	char *end_line = NULL, *p = data;
	/* the end line: the last one, and the hash covers everything before it */
	if (len < 2 || data[len - 1] != '\n') {
		snprintf(why, whylen, "truncated (no final newline)");
		return DBI_ERR;
	}
	for (char *q = data + len - 2; q >= data; q--) {
		if (*q == '\n') {
			end_line = q + 1;
			break;
		}
	}
	if (!end_line || strncmp(end_line, "end ", 4) != 0) {
		snprintf(why, whylen, "truncated (no end line)");
		return DBI_ERR;
	}
	data[len - 1] = '\0';
	if (split(end_line, f, 3) != 3 || parse_u64(f[1], &count) != DBI_OK || strlen(f[2]) != 16) {
		snprintf(why, whylen, "malformed end line");
		return DBI_ERR;
	}
	hash = strtoull(f[2], NULL, 16);
	if (dbi_hash64(data, (size_t)(end_line - data), STATE_HASH_SEED) != hash) {
		snprintf(why, whylen, "checksum mismatch (damaged or edited)");
		return DBI_ERR;
	}
	end_line[-1] = '\0';

	for (char *line = p, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		int nf = split(line, f, 10);
		if (lineno == 1) {
			if (nf != 2 || strcmp(f[0], "dbi-circuits") != 0) {
				snprintf(why, whylen, "not a dbi circuit state file");
				goto bad;
			}
			if (strcmp(f[1], "1") != 0) {
				snprintf(why, whylen,
				         "written in format version %.20s, this collector reads version %d", f[1],
				         STATE_FILE_VERSION);
				goto bad;
			}
			continue;
		}
		if (lineno == 2) {
			if (nf != 2 || strcmp(f[0], "owner") != 0 || dec(f[1], owner, sizeof(owner)) != DBI_OK) {
				snprintf(why, whylen, "line 2: malformed owner line");
				goto bad;
			}
			if (strcmp(owner, t->owner) != 0) {
				snprintf(why, whylen, "it belongs to receiver '%s', not '%s'", owner, t->owner);
				goto bad;
			}
			continue;
		}
		if (lineno == 3) {
			uint64_t saved;
			if (nf != 2 || strcmp(f[0], "saved") != 0 || parse_u64(f[1], &saved) != DBI_OK) {
				snprintf(why, whylen, "line 3: malformed saved line");
				goto bad;
			}
			continue;
		}
		struct saved_circuit s;
		int st, ov;
		memset(&s, 0, sizeof(s));
		if (nf != 10 || strcmp(f[0], "c") != 0 || dec(f[1], s.target, sizeof(s.target)) != DBI_OK ||
		    !s.target[0] || (st = name_index(state_names, 3, f[2])) < 0 ||
		    (ov = name_index(override_names, 3, f[3])) < 0 || parse_u64(f[4], &s.open_until) != DBI_OK ||
		    parse_u64(f[5], &s.backoff) != DBI_OK || parse_u64(f[6], &s.changed) != DBI_OK ||
		    parse_u64(f[7], &s.error_time) != DBI_OK || dec(f[8], s.reason, sizeof(s.reason)) != DBI_OK ||
		    dec(f[9], s.error, sizeof(s.error)) != DBI_OK) {
			snprintf(why, whylen, "line %d: malformed circuit entry", lineno);
			goto bad;
		}
		s.state = (uint32_t)st;
		s.override = (uint32_t)ov;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(v[i].target, s.target) == 0) {
				snprintf(why, whylen, "line %d: target %s appears twice", lineno, s.target);
				goto bad;
			}
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct saved_circuit *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				snprintf(why, whylen, "out of memory");
				goto bad;
			}
			v = nv;
		}
		v[n++] = s;
	}
	if (lineno < 3) {
		snprintf(why, whylen, lineno == 0 ? "empty" : "truncated header");
		goto bad;
	}
	if (count != n) {
		snprintf(why, whylen, "end line says %" PRIu64 " circuits, the file has %zu", count, n);
		goto bad;
	}
	*out = v;
	*nout = n;
	return DBI_OK;
bad:
	free(v);
	return DBI_ERR;
}

int dbi_circuit_table_load(struct dbi_circuit_table *t, uint64_t now)
{
	struct dbi_errbuf err;
	char *data = NULL, why[256];
	size_t len = 0, n = 0;
	struct saved_circuit *v = NULL;

	if (!t->state_path)
		return DBI_OK;
	dbi_err_clear(&err);
	int rc = dbi_state_read(t->state_path, STATE_FILE_MAX, &data, &len, &err);
	if (rc == DBI_DONE)
		return DBI_OK; /* first start */
	if (rc != DBI_OK) {
		DBI_LOGW("circuit", "ignoring circuit state file: circuits start closed", "receiver=%s error=\"%s\"",
		         t->owner, err.msg);
		return DBI_ERR;
	}
	why[0] = '\0';
	if (parse_state(t, data, len, &v, &n, why, sizeof(why)) != DBI_OK) {
		char safe[300];
		DBI_LOGW("circuit", "ignoring circuit state file: circuits start closed",
		         "receiver=%s file=%s error=\"%s\"", t->owner, t->state_path,
		         log_safe(why, safe, sizeof(safe)));
		free(data);
		return DBI_ERR;
	}
	free(data);

	pthread_mutex_lock(&t->lock);
	t->loaded_at = now;
	free(t->saved);
	t->saved = NULL;
	t->nsaved = 0;
	size_t keep = 0;
	for (size_t i = 0; i < n; i++) {
		struct dbi_circuit *c = find_locked(t, v[i].target);
		if (c)
			apply_saved(t, c, &v[i]);
		else
			v[keep++] = v[i]; /* for a target added later; dropped at the next save otherwise */
	}
	t->saved = v;
	t->nsaved = keep;
	pthread_mutex_unlock(&t->lock);
	DBI_LOGI("circuit", "circuit states loaded", "receiver=%s file=%s entries=%zu", t->owner, t->state_path, n);
	return DBI_OK;
}

int dbi_circuit_state_path(struct dbi_runtime *rt, const char *owner_id, char *out, size_t len, struct dbi_errbuf *err)
{
	const struct dbi_config *cfg = dbi_runtime_config(rt);
	char dir[4096], owner[OWNER_MAX];
	size_t i = 0;
	if (dbi_state_dir(cfg->runtime.state_dir, dir, sizeof(dir), err) != DBI_OK)
		return DBI_ERR;
	/* "postgresql/east" -> "postgresql_east": one file name, no subdirectory */
	for (; owner_id[i] && i + 1 < sizeof(owner); i++) {
		char ch = owner_id[i];
		int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		         ch == '-' || ch == '_' || (ch == '.' && i > 0);
		owner[i] = ok ? ch : '_';
	}
	owner[i] = '\0';
	if ((size_t)snprintf(out, len, "%s/%s.circuits.%s", dir, cfg->runtime.shm_name, owner) >= len) {
		dbi_err_add(err, "%s: state file path too long", owner_id);
		return DBI_ERR;
	}
	return DBI_OK;
}

/* ---- metrics ---- */

int dbi_circuit_series_intern(struct dbi_registry *reg, uint32_t resource, uint32_t scope, const char *target,
                              struct dbi_circuit_series *out)
{
	static const struct dbi_metric_def defs[3] = {
	        {.name = DBI_CIRCUIT_METRIC_STATE,
	         .unit = "1",
	         .description = "circuit breaker state of the target: 0 closed, 1 open, 2 half-open",
	         .kind = DBI_MK_GAUGE},
	        {.name = DBI_CIRCUIT_METRIC_TRANSITIONS,
	         .unit = "{transition}",
	         .description = "circuit breaker state changes of the target",
	         .kind = DBI_MK_SUM,
	         .monotonic = 1,
	         .temporality = DBI_TEMP_CUMULATIVE},
	        {.name = DBI_CIRCUIT_METRIC_FAILURES,
	         .unit = "{failure}",
	         .description = "failed or timed-out scrapes of the target",
	         .kind = DBI_MK_SUM,
	         .monotonic = 1,
	         .temporality = DBI_TEMP_CUMULATIVE},
	};
	struct dbi_attr a = {.key = DBI_CIRCUIT_ATTR_TARGET, .type = DBI_AT_STR, .v.s = target};
	uint32_t attrs = dbi_attrs_intern(reg, &a, 1);
	if (!attrs)
		return DBI_ERR;
	for (int i = 0; i < 3; i++) {
		uint32_t m = dbi_metric_intern(reg, &defs[i]);
		uint32_t s = m ? dbi_series_intern(reg, m, resource, scope, attrs) : 0;
		if (!s)
			return DBI_ERR;
		out->series[i] = s;
		out->route[i] = dbi_series_get(reg, s)->hash;
	}
	return DBI_OK;
}

unsigned dbi_circuit_points(const struct dbi_circuit *c, const struct dbi_circuit_series *s, uint64_t now,
                            struct dbi_point *out)
{
	struct dbi_circuit_view v;
	if (dbi_circuit_snapshot(c, &v) != DBI_OK)
		return 0;
	memset(out, 0, 3 * sizeof(*out));
	out[0].kind = DBI_PK_GAUGE;
	out[0].v.i = (int64_t)v.state;
	out[1].kind = DBI_PK_SUM;
	out[1].v.i = (int64_t)v.transitions;
	out[2].kind = DBI_PK_SUM;
	out[2].v.i = (int64_t)v.failures;
	for (int i = 0; i < 3; i++) {
		out[i].time_ns = now;
		out[i].start_ns = i ? v.created_wall_ns : 0;
		out[i].series = s->series[i];
	}
	return 3;
}
