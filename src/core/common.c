/*
 * common.c — the small helpers of common.h: error buffers, strlcpy, hashing.
 */
#include "dbi/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void dbi_err_clear(struct dbi_errbuf *e)
{
	e->msg[0] = '\0';
	e->count = 0;
}

static void err_vappend(struct dbi_errbuf *e, const char *fmt, va_list ap)
{
	size_t used = strlen(e->msg);
	if (used && used + 1 < sizeof(e->msg)) {
		e->msg[used++] = '\n';
		e->msg[used] = '\0';
	}
	if (used < sizeof(e->msg))
		vsnprintf(e->msg + used, sizeof(e->msg) - used, fmt, ap);
	e->count++;
}

void dbi_err_set(struct dbi_errbuf *e, const char *fmt, ...)
{
	va_list ap;
	dbi_err_clear(e);
	va_start(ap, fmt);
	err_vappend(e, fmt, ap);
	va_end(ap);
}

void dbi_err_add(struct dbi_errbuf *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vappend(e, fmt, ap);
	va_end(ap);
}

size_t dbi_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);
	if (size) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint64_t mum(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)(r >> 64) ^ (uint64_t)r;
}

/*
 * A small multiply-mix hash: 8 bytes per step, good avalanche, stable across runs and
 * machines (routing and series hashes must not change between restarts).
 */
uint64_t dbi_hash64(const void *data, size_t len, uint64_t seed)
{
	const uint8_t *p = data;
	const uint64_t k0 = 0xa0761d6478bd642fULL, k1 = 0xe7037ed1a0b428dbULL;
	uint64_t h = seed ^ k0 ^ (len * k1);
	while (len >= 8) {
		h = mum(h ^ rd64(p), k1);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t t = 0;
		memcpy(&t, p, len);
		h = mum(h ^ t ^ ((uint64_t)len << 56), k1);
	}
	return dbi_mix64(h);
}
