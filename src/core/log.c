/*
 * log.c — the collector's own log (see log.h): logfmt lines, levels, per-call-site rate
 * limiting, secret scrubbing. Each line is written with one write(2) so lines from
 * different threads never interleave.
 */
#include "dbi/log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dbi/clock.h"
#include "dbi/common.h"

#define LOG_WINDOW_NS (10ULL * DBI_NSEC_PER_SEC)

static _Atomic int g_level = DBI_LOG_INFO;
static FILE *g_stream;
static _Atomic uint32_t g_rate = 10;
static pthread_mutex_t g_site_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void dbi_log_set_level(enum dbi_log_level lvl)
{
	atomic_store(&g_level, (int)lvl);
}

enum dbi_log_level dbi_log_get_level(void)
{
	return (enum dbi_log_level)atomic_load_explicit(&g_level, memory_order_relaxed);
}

int dbi_log_parse_level(const char *s, enum dbi_log_level *out)
{
	for (size_t i = 0; i < DBI_ARRAY_LEN(level_names); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum dbi_log_level)i;
			return DBI_OK;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = DBI_LOG_WARN;
		return DBI_OK;
	}
	return DBI_ERR;
}

void dbi_log_set_stream(FILE *f)
{
	g_stream = f;
}

void dbi_log_set_rate(uint32_t per_window)
{
	atomic_store(&g_rate, per_window);
}

/* Keys whose values are secrets wherever they appear as key=value or key: value. */
static const char *const secret_keys[] = {"password",      "passwd", "api-key", "api_key",     "apikey",
                                          "authorization", "token",  "secret",  "license_key", "sslpassword"};

static int is_value_end(char c)
{
	return c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '&' || c == ',' || c == ';' || c == '}' ||
	       c == '"';
}

const char *dbi_log_scrub(const char *s, char *buf, size_t len)
{
	const char *start = s; /* a key can only begin at the start or after a non-alnum */
	size_t o = 0;
	if (len == 0)
		return buf;
	while (*s && o + 1 < len) {
		/* scheme://user:password@host -> scheme://user:***@host */
		if (s[0] == ':' && s[1] == '/' && s[2] == '/') {
			const char *auth = s + 3, *at = NULL, *colon = NULL;
			for (const char *q = auth; *q && !is_value_end(*q) && *q != '/'; q++) {
				if (*q == '@') {
					at = q;
					break;
				}
				if (*q == ':' && !colon)
					colon = q;
			}
			if (at && colon) {
				size_t keep = (size_t)(colon - s) + 1;
				for (size_t i = 0; i < keep && o + 1 < len; i++)
					buf[o++] = s[i];
				for (const char *m = "***"; *m && o + 1 < len; m++)
					buf[o++] = *m;
				s = at;
				continue;
			}
		}
		int matched = 0;
		if (s == start || !isalnum((unsigned char)s[-1])) {
			for (size_t k = 0; k < DBI_ARRAY_LEN(secret_keys); k++) {
				size_t kl = strlen(secret_keys[k]);
				if (strncasecmp(s, secret_keys[k], kl) != 0)
					continue;
				const char *v = s + kl;
				while (*v == ' ' || *v == '"' || *v == '\'')
					v++;
				if (*v != '=' && *v != ':')
					continue;
				v++;
				while (*v == ' ')
					v++;
				/* copy key and separator, mask value */
				for (const char *q = s; q < v && o + 1 < len; q++)
					buf[o++] = *q;
				char quote = (*v == '\'' || *v == '"') ? *v : 0;
				if (quote)
					v++;
				/* "Bearer xyz": keep the scheme word */
				if (strncasecmp(v, "bearer ", 7) == 0) {
					for (int i = 0; i < 7 && o + 1 < len; i++)
						buf[o++] = v[i];
					v += 7;
				}
				while (*v && (quote ? *v != quote : !is_value_end(*v)))
					v++;
				if (quote && *v == quote)
					v++;
				for (const char *m = "***"; *m && o + 1 < len; m++)
					buf[o++] = *m;
				s = v;
				matched = 1;
				break;
			}
		}
		if (!matched)
			buf[o++] = *s++;
	}
	buf[o] = '\0';
	return buf;
}

/* Returns 0 to drop the line; else 1, with *suppressed set to lines dropped before it. */
static int site_admit(struct dbi_log_site *site, uint32_t *suppressed)
{
	uint32_t rate = atomic_load_explicit(&g_rate, memory_order_relaxed);
	*suppressed = 0;
	if (!site || rate == 0)
		return 1;
	uint64_t now = dbi_mono_ns();
	int ok;
	pthread_mutex_lock(&g_site_lock);
	if (now - site->window_start_ns >= LOG_WINDOW_NS || site->window_start_ns == 0) {
		*suppressed = site->suppressed;
		site->suppressed = 0;
		site->in_window = 0;
		site->window_start_ns = now;
	}
	ok = site->in_window < rate;
	if (ok)
		site->in_window++;
	else
		site->suppressed++;
	pthread_mutex_unlock(&g_site_lock);
	return ok;
}

void dbi_log_emit(struct dbi_log_site *site, enum dbi_log_level lvl, const char *comp, const char *msg,
                  const char *fields_fmt, ...)
{
	uint32_t suppressed;
	if (!site_admit(site, &suppressed))
		return;

	char fields[1024] = "";
	if (fields_fmt && *fields_fmt) {
		va_list ap;
		va_start(ap, fields_fmt);
		vsnprintf(fields, sizeof(fields), fields_fmt, ap);
		va_end(ap);
	}
	char ts[40], raw[2048], line[2600];
	dbi_fmt_time(dbi_wall_ns(), ts, sizeof(ts));

	/* Quote the message logfmt style: escape " and \ and newlines. */
	char qmsg[700];
	size_t q = 0;
	for (const char *p = msg ? msg : ""; *p && q + 3 < sizeof(qmsg); p++) {
		if (*p == '"' || *p == '\\') {
			qmsg[q++] = '\\';
			qmsg[q++] = *p;
		} else if (*p == '\n') {
			qmsg[q++] = '\\';
			qmsg[q++] = 'n';
		} else {
			qmsg[q++] = *p;
		}
	}
	qmsg[q] = '\0';

	int n = snprintf(raw, sizeof(raw), "ts=%s level=%s comp=%s msg=\"%s\"%s%s", ts,
	                 level_names[lvl < DBI_LOG_OFF ? lvl : DBI_LOG_ERROR], comp ? comp : "dbi", qmsg,
	                 fields[0] ? " " : "", fields);
	if (suppressed && n > 0 && (size_t)n < sizeof(raw))
		snprintf(raw + n, sizeof(raw) - (size_t)n, " suppressed=%u", suppressed);
	/* one event, one line: newlines inside fields (multi-line error lists) become \n */
	char flat[2400] = {0};
	size_t fo = 0;
	for (const char *p = raw; *p && fo + 3 < sizeof(flat); p++) {
		if (*p == '\n') {
			flat[fo++] = '\\';
			flat[fo++] = 'n';
		} else {
			flat[fo++] = *p;
		}
	}
	flat[fo] = '\0';
	dbi_log_scrub(flat, line, sizeof(line) - 1);
	size_t l = strlen(line);
	line[l++] = '\n';
	FILE *f = g_stream ? g_stream : stderr;
	fflush(f);
	ssize_t w = write(fileno(f), line, l);
	(void)w;
}
