/*
 * config_value.c — parsers for the scalar value types of config maps (durations,
 * sizes, endpoints, numbers, booleans, choices) and the formatters that print such
 * values back in messages and --help.
 *
 * Shared with command-line flags, so "10s" or "4MiB" means the same in a flag as in a
 * file. Durations follow Go's time.ParseDuration because OpenTelemetry users write
 * them that way already.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"

static void set_why(int *why, int v)
{
	if (why)
		*why = v;
}

struct dbi_cunit {
	const char *name;
	uint64_t mult;
};

static const struct dbi_cunit duration_units[] = {
        {"ns", 1ULL},           {"us", 1000ULL},      {"\xc2\xb5s", 1000ULL}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000ULL},                                               /* U+03BC Greek mu */
        {"ms", 1000000ULL},     {"s", 1000000000ULL}, {"m", 60ULL * 1000000000ULL}, {"h", 3600ULL * 1000000000ULL},
};

/* Largest duration accepted: what fits an int64, as in Go, so callers may go signed. */
#define DBI_DURATION_MAX ((uint64_t)INT64_MAX)

/*
 * Digits with an optional fraction: whole and, for the fraction, num/den (extra
 * digits past 18 are dropped; they are below a nanosecond for every unit we have).
 * Returns the number of characters used; 0 if there were no digits at all.
 */
static size_t parse_decimal(const char *s, uint64_t *whole, uint64_t *num, uint64_t *den, bool *overflow)
{
	const char *p = s;
	bool digits = false;

	*whole = 0;
	*num = 0;
	*den = 1;
	*overflow = false;
	while (isdigit((unsigned char)*p)) {
		unsigned d = (unsigned)(*p++ - '0');
		if (*whole > (UINT64_MAX - d) / 10)
			*overflow = true;
		else
			*whole = *whole * 10 + d;
		digits = true;
	}
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p)) {
			if (*den < 1000000000000000000ULL) {
				*num = *num * 10 + (uint64_t)(*p - '0');
				*den *= 10;
			}
			p++;
			digits = true;
		}
	}
	return digits ? (size_t)(p - s) : 0;
}

static bool all_numeric(const char *s)
{
	bool digit = false;
	for (; *s; s++) {
		if (isdigit((unsigned char)*s))
			digit = true;
		else if (*s != '.')
			return false;
	}
	return digit;
}

int dbi_cval_duration(const char *s, uint64_t *ns, int *why)
{
	uint64_t total = 0;
	const char *p = s;

	if (*p == '+')
		p++;
	else if (*p == '-') {
		set_why(why, DBI_CV_NEGATIVE);
		return DBI_ERR;
	}
	if (strcmp(p, "0") == 0) {
		*ns = 0;
		return DBI_OK;
	}
	if (all_numeric(p)) {
		set_why(why, DBI_CV_NOUNIT);
		return DBI_ERR;
	}
	if (!*p)
		goto bad;
	while (*p) {
		uint64_t whole, num, den, mult = 0;
		unsigned __int128 v;
		bool overflow;
		size_t n = parse_decimal(p, &whole, &num, &den, &overflow), ulen;

		if (!n)
			goto bad;
		p += n;
		ulen = strcspn(p, "0123456789.");
		for (size_t i = 0; i < DBI_ARRAY_LEN(duration_units); i++) {
			if (strlen(duration_units[i].name) == ulen && strncmp(p, duration_units[i].name, ulen) == 0) {
				mult = duration_units[i].mult;
				break;
			}
		}
		if (!mult)
			goto bad;
		p += ulen;
		if (overflow)
			goto toobig;
		v = (unsigned __int128)whole * mult + (unsigned __int128)num * mult / den;
		if (v > DBI_DURATION_MAX || total + (uint64_t)v > DBI_DURATION_MAX)
			goto toobig;
		total += (uint64_t)v;
	}
	*ns = total;
	return DBI_OK;
toobig:
	set_why(why, DBI_CV_TOOBIG);
	return DBI_ERR;
bad:
	set_why(why, DBI_CV_BAD);
	return DBI_ERR;
}

int dbi_parse_duration(const char *s, uint64_t *ns)
{
	return dbi_cval_duration(s, ns, NULL);
}

static const struct dbi_cunit size_units[] = {
        {"", 1ULL},          {"b", 1ULL},           {"kb", 1000ULL},
        {"mb", 1000000ULL},  {"gb", 1000000000ULL}, {"tb", 1000000000000ULL},
        {"kib", 1ULL << 10}, {"mib", 1ULL << 20},   {"gib", 1ULL << 30},
        {"tib", 1ULL << 40},
};

int dbi_cval_size(const char *s, uint64_t *bytes, int *why)
{
	uint64_t whole, num, den, mult = 0;
	unsigned __int128 v;
	bool overflow;
	const char *p = s;
	size_t n;

	if (*p == '+')
		p++;
	else if (*p == '-') {
		set_why(why, DBI_CV_NEGATIVE);
		return DBI_ERR;
	}
	n = parse_decimal(p, &whole, &num, &den, &overflow);
	if (!n)
		goto bad;
	p += n;
	while (*p == ' ')
		p++;
	for (size_t i = 0; i < DBI_ARRAY_LEN(size_units); i++) {
		if (strcasecmp(p, size_units[i].name) == 0) {
			mult = size_units[i].mult;
			break;
		}
	}
	/* A fraction of a byte is a typo, not a request. */
	if (!mult || (mult == 1 && num))
		goto bad;
	if (overflow)
		goto toobig;
	v = (unsigned __int128)whole * mult + (unsigned __int128)num * mult / den;
	if (v > UINT64_MAX)
		goto toobig;
	*bytes = (uint64_t)v;
	return DBI_OK;
toobig:
	set_why(why, DBI_CV_TOOBIG);
	return DBI_ERR;
bad:
	set_why(why, DBI_CV_BAD);
	return DBI_ERR;
}

int dbi_parse_size(const char *s, uint64_t *bytes)
{
	return dbi_cval_size(s, bytes, NULL);
}

static bool host_char_ok(char c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

static bool v6_char_ok(char c)
{
	/* hex digits, colons, an embedded IPv4 tail, and a %zone (interface name) */
	return isalnum((unsigned char)c) || c == ':' || c == '.' || c == '%' || c == '-' || c == '_';
}

int dbi_cval_endpoint(const char *s, struct dbi_endpoint *ep, int *why)
{
	const char *host = s, *hend, *port;
	char *end;
	unsigned long v;

	if (*s == '[') {
		host = s + 1;
		hend = strchr(host, ']');
		if (!hend || hend == host || hend[1] != ':')
			goto bad;
		for (const char *p = host; p < hend; p++)
			if (!v6_char_ok(*p))
				goto bad;
		port = hend + 2;
	} else {
		hend = strrchr(s, ':');
		if (!hend)
			goto bad;
		for (const char *p = host; p < hend; p++) {
			if (*p == ':') {
				set_why(why, DBI_CV_V6);
				return DBI_ERR;
			}
			if (!host_char_ok(*p))
				goto bad;
		}
		port = hend + 1;
	}
	if ((size_t)(hend - host) >= sizeof(ep->host))
		goto bad;
	if (!isdigit((unsigned char)*port) || strlen(port) > 5)
		goto badport;
	errno = 0;
	v = strtoul(port, &end, 10);
	if (*end || errno || v < 1 || v > 65535)
		goto badport;
	memcpy(ep->host, host, (size_t)(hend - host));
	ep->host[hend - host] = '\0';
	ep->port = (uint16_t)v;
	return DBI_OK;
badport:
	set_why(why, DBI_CV_PORT);
	return DBI_ERR;
bad:
	set_why(why, DBI_CV_BAD);
	return DBI_ERR;
}

int dbi_parse_endpoint(const char *s, struct dbi_endpoint *ep)
{
	return dbi_cval_endpoint(s, ep, NULL);
}

int dbi_cval_bool(const char *s, bool *v)
{
	static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};

	for (size_t i = 0; i < DBI_ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*v = true;
			return DBI_OK;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*v = false;
			return DBI_OK;
		}
	}
	return DBI_ERR;
}

int dbi_cval_int(const char *s, int64_t *v, int *why)
{
	char *end;
	long long x;

	/* strtoll would skip leading blanks and accept what follows them */
	if (!*s || isspace((unsigned char)*s)) {
		set_why(why, DBI_CV_BAD);
		return DBI_ERR;
	}
	errno = 0;
	x = strtoll(s, &end, 10);
	if (*end) {
		set_why(why, DBI_CV_BAD);
		return DBI_ERR;
	}
	if (errno == ERANGE) {
		set_why(why, DBI_CV_TOOBIG);
		return DBI_ERR;
	}
	*v = x;
	return DBI_OK;
}

int dbi_cval_double(const char *s, double *v)
{
	char *end;
	double x;

	if (!*s || isspace((unsigned char)*s))
		return DBI_ERR;
	errno = 0;
	x = strtod(s, &end);
	if (*end || errno == ERANGE || !isfinite(x))
		return DBI_ERR;
	*v = x;
	return DBI_OK;
}

int dbi_cval_percent(const char *s, double *v)
{
	char num[64];
	size_t n = strlen(s);
	double x;

	/* "80%" reads naturally; accept it as 80 */
	if (n && s[n - 1] == '%')
		n--;
	if (n >= sizeof(num))
		return DBI_ERR;
	memcpy(num, s, n);
	num[n] = '\0';
	if (dbi_cval_double(num, &x) != DBI_OK || x < 0 || x > 100)
		return DBI_ERR;
	*v = x;
	return DBI_OK;
}

int dbi_cval_choice(const char *choices, const char *s, int *index)
{
	size_t len = strlen(s);
	int i = 0;

	for (const char *p = choices; p; i++) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);
		if (n == len && strncmp(p, s, n) == 0) {
			*index = i;
			return DBI_OK;
		}
		p = bar ? bar + 1 : NULL;
	}
	return DBI_ERR;
}

void dbi_cval_fmt_choices(const char *choices, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (const char *p = choices; *p && o + 3 < len; p++) {
		if (*p == '|') {
			buf[o++] = ',';
			buf[o++] = ' ';
		} else {
			buf[o++] = *p;
		}
	}
	buf[DBI_MIN(o, len - 1)] = '\0';
}

void dbi_cval_fmt_duration(uint64_t ns, char *buf, size_t len)
{
	const uint64_t sec = DBI_NSEC_PER_SEC;

	if (ns == 0) {
		snprintf(buf, len, "0s");
	} else if (ns % sec == 0) {
		uint64_t s = ns / sec, h = s / 3600, m = s / 60 % 60;
		size_t o = 0;
		buf[0] = '\0';
		if (h)
			o += (size_t)snprintf(buf + o, len - o, "%lluh", (unsigned long long)h);
		if (m && o < len)
			o += (size_t)snprintf(buf + o, len - o, "%llum", (unsigned long long)m);
		if (s % 60 && o < len)
			snprintf(buf + o, len - o, "%llus", (unsigned long long)(s % 60));
	} else if (ns % DBI_NSEC_PER_MSEC == 0) {
		snprintf(buf, len, "%llums", (unsigned long long)(ns / DBI_NSEC_PER_MSEC));
	} else if (ns % 1000 == 0) {
		snprintf(buf, len, "%lluus", (unsigned long long)(ns / 1000));
	} else {
		snprintf(buf, len, "%lluns", (unsigned long long)ns);
	}
}

void dbi_cval_fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const struct dbi_cunit units[] = {
	        {"TiB", 1ULL << 40},      {"GiB", 1ULL << 30},   {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10},
	        {"TB", 1000000000000ULL}, {"GB", 1000000000ULL}, {"MB", 1000000ULL},  {"KB", 1000ULL},
	};

	if (bytes) {
		for (size_t i = 0; i < DBI_ARRAY_LEN(units); i++) {
			if (bytes % units[i].mult == 0) {
				snprintf(buf, len, "%llu%s", (unsigned long long)(bytes / units[i].mult),
				         units[i].name);
				return;
			}
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)bytes);
}
