/*
 * common.h — definitions every dbi module uses: return codes, cache-line size,
 * branch hints, small helpers. Kept tiny on purpose: anything with state lives in
 * its own module.
 */
#ifndef DBI_COMMON_H
#define DBI_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Return codes, nginx style: 0 is success, negatives are the other outcomes. */
#define DBI_OK 0
#define DBI_ERR (-1)
#define DBI_AGAIN (-2) /* try later: ring full/empty, backpressure */
#define DBI_DONE (-3)  /* nothing more to do: stopped, end of input */

#define DBI_CACHELINE 64

#define dbi_likely(x) __builtin_expect(!!(x), 1)
#define dbi_unlikely(x) __builtin_expect(!!(x), 0)
#define DBI_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define DBI_ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((size_t)(a)-1))
#define DBI_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DBI_MAX(a, b) ((a) > (b) ? (a) : (b))
#define DBI_UNUSED(x) ((void)(x))
#define dbi_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define DBI_NSEC_PER_SEC 1000000000ULL
#define DBI_NSEC_PER_MSEC 1000000ULL

/* An error message buffer threaded through loaders and parsers. */
struct dbi_errbuf {
	char msg[8192]; /* room for a config loader's ~25 errors, some listing known keys */
	int count;      /* how many errors were reported (msg holds them, newline separated) */
};

void dbi_err_set(struct dbi_errbuf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dbi_err_add(struct dbi_errbuf *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dbi_err_clear(struct dbi_errbuf *e);

/* strlcpy: copies with truncation, always terminates; returns strlen(src). */
size_t dbi_strlcpy(char *dst, const char *src, size_t size);

/* 64-bit hash (wyhash-like mixing); used for interning and routing. */
uint64_t dbi_hash64(const void *data, size_t len, uint64_t seed);

static inline uint64_t dbi_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

#endif
