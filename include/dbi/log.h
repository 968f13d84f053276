/*
 * log.h — the collector's own log: one logfmt line per event
 * (ts=... level=... comp=... msg="..." key=value ...), levels, per-call-site rate
 * limiting so a flapping target cannot flood the log, and secret scrubbing: values of
 * keys that look like secrets, and passwords inside DSNs/URLs, are never printed.
 */
#ifndef DBI_LOG_H
#define DBI_LOG_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

enum dbi_log_level { DBI_LOG_DEBUG = 0, DBI_LOG_INFO, DBI_LOG_WARN, DBI_LOG_ERROR, DBI_LOG_OFF };

/* Per call-site rate limiter state; DBI_LOG* macros declare one statically. */
struct dbi_log_site {
	uint64_t window_start_ns;
	uint32_t in_window;
	uint32_t suppressed;
};

void dbi_log_set_level(enum dbi_log_level lvl);
enum dbi_log_level dbi_log_get_level(void);
int dbi_log_parse_level(const char *s, enum dbi_log_level *out);
void dbi_log_set_stream(FILE *f); /* default stderr */
/* Allow this many lines per call site per 10 s window (default 10; 0 = unlimited). */
void dbi_log_set_rate(uint32_t per_window);

/*
 * Log one event. comp names the component or module; fmt formats the message, which
 * is quoted. Structured fields go after the message as " key=value" pairs using
 * dbi_logkv(): "msg" then fields. Example:
 *   DBI_LOGI("postgresql", "circuit opened", "target=%s failures=%d", id, n);
 * The field string is appended verbatim after scrubbing secrets.
 */
void dbi_log_emit(struct dbi_log_site *site, enum dbi_log_level lvl, const char *comp, const char *msg,
                  const char *fields_fmt, ...) __attribute__((format(printf, 5, 6)));

#define DBI_LOG_(lvl, comp, msg, ...)                                                                                  \
	do {                                                                                                           \
		static struct dbi_log_site dbi_log_site_;                                                              \
		if ((lvl) >= dbi_log_get_level())                                                                      \
			dbi_log_emit(&dbi_log_site_, (lvl), (comp), (msg), __VA_ARGS__);                               \
	} while (0)

#define DBI_LOGD(comp, msg, ...) DBI_LOG_(DBI_LOG_DEBUG, comp, msg, __VA_ARGS__)
#define DBI_LOGI(comp, msg, ...) DBI_LOG_(DBI_LOG_INFO, comp, msg, __VA_ARGS__)
#define DBI_LOGW(comp, msg, ...) DBI_LOG_(DBI_LOG_WARN, comp, msg, __VA_ARGS__)
#define DBI_LOGE(comp, msg, ...) DBI_LOG_(DBI_LOG_ERROR, comp, msg, __VA_ARGS__)

/*
 * Copy s into buf with secrets replaced by "***": password=... in libpq DSNs,
 * user:password@ in URLs, and values after api-key/authorization/token keys.
 */
const char *dbi_log_scrub(const char *s, char *buf, size_t len);

#endif
