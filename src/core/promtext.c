/*
 * promtext.c — shared writing rules of the Prometheus text formats (see promtext.h):
 * buffer growth, escaping with UTF-8 repair, name sanitising and number rendering.
 * Escaping scans for the few bytes that need work and copies the runs between them,
 * because label values are most of a page and nearly all of them are plain ASCII.
 */
#include "dbi/promtext.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int dbi_tbuf_grow(struct dbi_tbuf *b, size_t more)
{
	if (b->oom)
		return DBI_ERR;
	if (b->cap - b->len >= more)
		return DBI_OK;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < more) {
		if (cap > SIZE_MAX / 2) {
			b->oom = true;
			return DBI_ERR;
		}
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return DBI_ERR;
	}
	b->p = p;
	b->cap = cap;
	return DBI_OK;
}

void dbi_tbuf_free(struct dbi_tbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* Length of the valid UTF-8 sequence starting at s (n bytes left), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f)) /* overlong; surrogates */
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f)) /* overlong; > U+10FFFF */
			return 0;
		return 4;
	}
	return 0;
}

static void escape(struct dbi_tbuf *b, const char *str, size_t n, bool quote)
{
	static const char repl[] = "\xef\xbf\xbd"; /* U+FFFD */
	const unsigned char *s = (const unsigned char *)str;
	size_t run = 0, i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (dbi_likely(c < 0x80 && c != '\\' && c != '\n' && !(quote && c == '"'))) {
			i++;
			continue;
		}
		dbi_tbuf_put(b, str + run, i - run);
		if (c < 0x80) {
			dbi_tbuf_putc(b, '\\');
			dbi_tbuf_putc(b, c == '\n' ? 'n' : (char)c);
			i++;
		} else {
			size_t k = utf8_seq(s + i, n - i);
			if (k) {
				dbi_tbuf_put(b, str + i, k);
				i += k;
			} else {
				dbi_tbuf_put(b, repl, 3);
				i++;
			}
		}
		run = i;
	}
	dbi_tbuf_put(b, str + run, n - run);
}

void dbi_tbuf_label_value(struct dbi_tbuf *b, const char *s, size_t n)
{
	escape(b, s, n, true);
}

void dbi_tbuf_help(struct dbi_tbuf *b, const char *s, size_t n, bool om)
{
	escape(b, s, n, om);
}

size_t dbi_prom_sanitize(const char *in, size_t n, char *out, size_t cap, bool metric)
{
	size_t o = 0;
	if (cap == 0)
		return 0;
	if (n && in[0] >= '0' && in[0] <= '9' && o + 1 < cap)
		out[o++] = '_';
	for (size_t i = 0; i < n && o + 1 < cap; i++) {
		char c = in[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		          (metric && c == ':');
		if (!ok)
			c = '_';
		if (c == '_' && o && out[o - 1] == '_')
			continue;
		out[o++] = c;
	}
	out[o] = '\0';
	return o;
}

size_t dbi_prom_fmt_uint(uint64_t v, char *out)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

size_t dbi_prom_fmt_int(int64_t v, char *out)
{
	if (v >= 0)
		return dbi_prom_fmt_uint((uint64_t)v, out);
	out[0] = '-';
	/* -(v+1)+1 avoids overflow on INT64_MIN */
	return 1 + dbi_prom_fmt_uint((uint64_t)(-(v + 1)) + 1, out + 1);
}

static size_t special(double v, char *out)
{
	const char *s = isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
	size_t n = strlen(s);
	memcpy(out, s, n + 1);
	return n;
}

size_t dbi_prom_fmt_double(double v, char *out)
{
	if (!isfinite(v))
		return special(v, out);
	if (v == trunc(v) && fabs(v) < 9007199254740992.0) {
		size_t n = dbi_prom_fmt_int((int64_t)v, out);
		out[n] = '\0';
		return n;
	}
	int n = snprintf(out, DBI_PROM_NUM_MAX, "%.15g", v);
	if (strtod(out, NULL) != v)
		n = snprintf(out, DBI_PROM_NUM_MAX, "%.17g", v);
	return n > 0 ? (size_t)n : 0;
}

size_t dbi_prom_fmt_canonical(double v, bool om, char *out)
{
	char sci[DBI_PROM_NUM_MAX];
	int p;
	if (!isfinite(v))
		return special(v, out);
	for (p = 1; p < 17; p++) {
		snprintf(sci, sizeof(sci), "%.*e", p - 1, v);
		if (strtod(sci, NULL) == v)
			break;
	}
	snprintf(sci, sizeof(sci), "%.*e", p - 1, v);
	const char *e = strchr(sci, 'e');
	int exp = e ? (int)strtol(e + 1, NULL, 10) : 0;
	int n;
	if (exp < -4 || exp >= 6)
		n = snprintf(out, DBI_PROM_NUM_MAX, "%s", sci);
	else
		n = snprintf(out, DBI_PROM_NUM_MAX, "%.*f", DBI_MAX(p - 1 - exp, 0), v);
	if (n < 0)
		return 0;
	if (om && !strpbrk(out, ".e") && n + 2 < DBI_PROM_NUM_MAX) {
		memcpy(out + n, ".0", 3);
		n += 2;
	}
	return (size_t)n;
}
