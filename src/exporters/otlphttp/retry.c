/*
 * retry.c — backoff schedule, Retry-After, status classes and the circuit breaker
 * (see retry.h). HTTP dates are parsed by libcurl's curl_getdate(), which knows the
 * three formats RFC 9110 requires a recipient to accept.
 */
#include "retry.h"

#include <ctype.h>
#include <string.h>

#include <curl/curl.h>

void dbi_retry_backoff_start(struct dbi_retry_backoff *b, const struct dbi_retry_cfg *c, uint64_t now)
{
	b->interval_ns = c->initial_ns;
	b->start_ns = now;
}

uint64_t dbi_retry_backoff_next(struct dbi_retry_backoff *b, const struct dbi_retry_cfg *c, uint64_t now, double r)
{
	double f = c->randomization < 0 ? 0 : c->randomization > 1 ? 1 : c->randomization;
	double cur = (double)b->interval_ns;
	double wait = cur * (1.0 - f) + cur * 2.0 * f * r;
	uint64_t w = wait < 1.0 ? 1 : (uint64_t)wait;
	double nxt = cur * (c->multiplier < 1.0 ? 1.0 : c->multiplier);
	b->interval_ns = nxt >= (double)c->max_ns ? c->max_ns : (uint64_t)nxt;
	if (c->max_elapsed_ns && (now - b->start_ns) + w > c->max_elapsed_ns)
		return 0;
	return w;
}

int dbi_retry_after_parse(const char *v, time_t now_wall, uint64_t *wait_ns)
{
	if (!v)
		return DBI_ERR;
	while (*v == ' ' || *v == '\t')
		v++;
	size_t n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
		n--;
	if (n == 0 || n > 64)
		return DBI_ERR;
	size_t digits = 0;
	while (digits < n && isdigit((unsigned char)v[digits]))
		digits++;
	if (digits == n) {
		uint64_t s = 0;
		for (size_t i = 0; i < n; i++) {
			s = s * 10 + (uint64_t)(v[i] - '0');
			if (s > DBI_RETRY_AFTER_MAX_S)
				s = DBI_RETRY_AFTER_MAX_S; /* keeps going without overflow */
		}
		*wait_ns = s * DBI_NSEC_PER_SEC;
		return DBI_OK;
	}
	/* an HTTP date has a letter first (day name); refuse "-5", "1.5" and the like */
	if (!isalpha((unsigned char)v[0]))
		return DBI_ERR;
	char tmp[65];
	memcpy(tmp, v, n);
	tmp[n] = '\0';
	time_t t = curl_getdate(tmp, NULL);
	if (t == (time_t)-1)
		return DBI_ERR;
	int64_t d = (int64_t)t - (int64_t)now_wall;
	if (d < 0)
		d = 0;
	if (d > DBI_RETRY_AFTER_MAX_S)
		d = DBI_RETRY_AFTER_MAX_S;
	*wait_ns = (uint64_t)d * DBI_NSEC_PER_SEC;
	return DBI_OK;
}

enum dbi_retry_outcome dbi_retry_classify(long status)
{
	if (status >= 200 && status < 300)
		return DBI_RETRY_OK;
	if (status == 0 || status == 408 || status == 429)
		return DBI_RETRY_RETRY;
	if (status == 413)
		return DBI_RETRY_TOO_LARGE;
	if (status >= 500 && status < 600 && status != 501 && status != 505)
		return DBI_RETRY_RETRY;
	return DBI_RETRY_PERMANENT;
}

int dbi_retry_endpoint_failed(long status)
{
	return status == 0 || status == 408 || (status >= 500 && status < 600);
}

void dbi_breaker_init(struct dbi_breaker *c, const struct dbi_breaker_cfg *cfg)
{
	memset(c, 0, sizeof(*c));
	c->cooldown_ns = cfg->open_ns;
}

static void circuit_open(struct dbi_breaker *c, uint64_t now)
{
	c->state = DBI_BREAKER_OPEN;
	c->open_until = now + c->cooldown_ns;
	c->probing = 0;
	c->opened++;
}

int dbi_breaker_allow(struct dbi_breaker *c, const struct dbi_breaker_cfg *cfg, uint64_t now)
{
	if (!cfg->enabled || c->state == DBI_BREAKER_CLOSED)
		return 1;
	if (c->state == DBI_BREAKER_OPEN) {
		if (now < c->open_until)
			return 0;
		c->state = DBI_BREAKER_HALF_OPEN;
		c->probing = 0;
	}
	if (c->probing)
		return 0;
	c->probing = 1;
	return 1;
}

void dbi_breaker_result(struct dbi_breaker *c, const struct dbi_breaker_cfg *cfg, uint64_t now, int failed)
{
	if (!cfg->enabled)
		return;
	if (!failed) {
		/* any answer that is not a failure proves the endpoint is back */
		c->state = DBI_BREAKER_CLOSED;
		c->failures = 0;
		c->probing = 0;
		c->cooldown_ns = cfg->open_ns;
		return;
	}
	switch (c->state) {
	case DBI_BREAKER_CLOSED:
		if (++c->failures >= cfg->threshold)
			circuit_open(c, now);
		break;
	case DBI_BREAKER_HALF_OPEN:
		c->cooldown_ns = DBI_MIN(c->cooldown_ns * 2, cfg->max_open_ns);
		circuit_open(c, now);
		break;
	default:
		break; /* a request started before it opened failed too: nothing new */
	}
}
