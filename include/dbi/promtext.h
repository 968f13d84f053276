/*
 * promtext.h — the pieces of the Prometheus text exposition format (0.0.4) and
 * OpenMetrics 1.0 text that both Prometheus endpoints need: the `prometheus` exporter
 * and the collector's self-telemetry. A growable text buffer, name sanitising,
 * escaping of label values and HELP text (with invalid UTF-8 repaired, because a
 * scraper rejects the whole page over one bad byte), and number rendering that
 * Prometheus and OpenMetrics parsers read back exactly.
 */
#ifndef DBI_PROMTEXT_H
#define DBI_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dbi/common.h"

/* A growable output buffer. Allocation failure sets oom and makes later writes no-ops. */
struct dbi_tbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

int dbi_tbuf_grow(struct dbi_tbuf *b, size_t more);
void dbi_tbuf_free(struct dbi_tbuf *b);

static inline int dbi_tbuf_room(struct dbi_tbuf *b, size_t more)
{
	if (dbi_likely(b->cap - b->len >= more))
		return DBI_OK;
	return dbi_tbuf_grow(b, more);
}

static inline void dbi_tbuf_put(struct dbi_tbuf *b, const char *s, size_t n)
{
	if (n == 0 || dbi_tbuf_room(b, n) != DBI_OK)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static inline void dbi_tbuf_puts(struct dbi_tbuf *b, const char *s)
{
	dbi_tbuf_put(b, s, strlen(s));
}

static inline void dbi_tbuf_putc(struct dbi_tbuf *b, char c)
{
	if (dbi_tbuf_room(b, 1) != DBI_OK)
		return;
	b->p[b->len++] = c;
}

/* Label value: \ " and newline escaped, invalid UTF-8 replaced by U+FFFD. */
void dbi_tbuf_label_value(struct dbi_tbuf *b, const char *s, size_t n);
/*
 * HELP text: \ and newline escaped (text 0.0.4 defines no other escape); with om also "
 * (OpenMetrics escaped-string). Invalid UTF-8 replaced by U+FFFD.
 */
void dbi_tbuf_help(struct dbi_tbuf *b, const char *s, size_t n, bool om);

/*
 * Sanitise a metric name (metric = true: [a-zA-Z_:][a-zA-Z0-9_:]*) or a label name
 * ([a-zA-Z_][a-zA-Z0-9_]*): every other byte becomes '_', runs of '_' collapse to one
 * (which also keeps labels out of the reserved "__" namespace), and a leading digit
 * gets a '_' in front. Writes at most cap-1 bytes plus a NUL; returns the length.
 */
size_t dbi_prom_sanitize(const char *in, size_t n, char *out, size_t cap, bool metric);

/* Decimal integers; out holds at least 21 bytes. Return the length (no NUL written). */
size_t dbi_prom_fmt_int(int64_t v, char *out);
size_t dbi_prom_fmt_uint(uint64_t v, char *out);

#define DBI_PROM_NUM_MAX 40 /* room for any number these functions write, plus a NUL */

/*
 * A sample value: NaN, +Inf, -Inf; integral values below 2^53 as integers; otherwise
 * the shorter of %.15g and %.17g that reads back as the same double. NUL-terminated.
 */
size_t dbi_prom_fmt_double(double v, char *out);

/*
 * A "le" or "quantile" label value: the shortest decimal that reads back exactly, laid
 * out like Go's %g (exponent form below 1e-4 and from 1e+06 up), which is what
 * client_golang writes; with om, ".0" is appended when there is neither a point nor an
 * exponent, per OpenMetrics' canonical numbers (1.0, 0.5, 1e+06, +Inf).
 */
size_t dbi_prom_fmt_canonical(double v, bool om, char *out);

#endif
