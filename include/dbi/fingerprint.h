/*
 * fingerprint.h — query fingerprints and literal-free query text.
 *
 * A fingerprint names a query's shape: the same 64-bit value for statements that differ
 * only in literals, parameter numbers, IN-list lengths or comments (libpg_query's
 * pg_query_fingerprint). Normalized text is what may leave the network: every literal
 * replaced by a $n parameter and comments removed, so no value a user typed is exported.
 *
 * Text that PostgreSQL's parser rejects (pg_stat_statements can hold truncated text)
 * falls back to our own lexer: string, dollar-quoted, bit/hex and numeric literals become
 * $n, comments go, and the fingerprint is a hash of that scrubbed text. The caller is
 * told which way it went so it can count fallbacks.
 *
 * The cache maps (target, queryid) to a fingerprint and remembers which fingerprints
 * already had a sample sent; it is a fixed-capacity LRU sized by a byte budget at create,
 * allocates nothing afterwards, and is meant to be shared by every target of one scraper
 * thread (it takes no locks).
 */
#ifndef DBI_FINGERPRINT_H
#define DBI_FINGERPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbi/common.h"

enum dbi_qfp_source {
	DBI_QFP_PARSED = 1,   /* libpg_query parsed the text */
	DBI_QFP_FALLBACK = 2, /* unparseable: fingerprint of the scrubbed text */
};

struct dbi_qfp {
	uint64_t fp;
	uint8_t source; /* enum dbi_qfp_source */
};

/* Fingerprint as 16 lowercase hex digits (libpg_query's fingerprint_str format). */
#define DBI_QFP_HEX_SIZE 17
void dbi_qfp_hex(uint64_t fp, char out[DBI_QFP_HEX_SIZE]);

/*
 * Fingerprint text (NUL-terminated) and, when norm is not NULL, write its normalized form
 * there: NUL-terminated, cut at normcap - 1 bytes on a UTF-8 character boundary (*truncated
 * says so). Returns DBI_OK, or DBI_ERR only for a NULL text or allocation failure; parse
 * errors are not errors (out->source = DBI_QFP_FALLBACK).
 */
int dbi_qfp_compute(const char *text, struct dbi_qfp *out, char *norm, size_t normcap, bool *truncated);

/*
 * Our own literal scrubber (the fallback, also run over libpg_query's output to drop
 * comments and any string constant it leaves, such as COPY file names). Strings, E''/B''/
 * X''/U&'' strings, dollar-quoted strings, and (when numbers) numeric literals become $n,
 * numbered after the highest $n already in the text; comments become a space; an
 * unterminated literal or comment runs to the end. Writes at most cap - 1 bytes and a NUL
 * (cut on a UTF-8 boundary) and returns the bytes written; *hash (may be NULL) receives a
 * hash of the whole scrubbed text, whitespace collapsed and ASCII letters outside quotes
 * folded to lower case, independent of cap.
 */
size_t dbi_qfp_scrub(const char *in, size_t len, bool numbers, char *out, size_t cap, uint64_t *hash, bool *truncated);

/* ---- the cache ---- */

struct dbi_qfp_cache;

struct dbi_qfp_cache_stats {
	uint64_t capacity, used;
	uint64_t hits, misses, evictions;
	uint64_t bytes;
};

/* A cache within max_bytes (at least a few hundred entries whatever the budget). */
struct dbi_qfp_cache *dbi_qfp_cache_create(size_t max_bytes);
void dbi_qfp_cache_release(struct dbi_qfp_cache *c);

/* queryid → fingerprint, per target tag. get touches the entry (LRU). */
bool dbi_qfp_cache_get(struct dbi_qfp_cache *c, uint32_t tag, int64_t queryid, struct dbi_qfp *out);
void dbi_qfp_cache_put(struct dbi_qfp_cache *c, uint32_t tag, int64_t queryid, const struct dbi_qfp *fp);

/* Has a sample of this fingerprint been sent for this target? mark records that it has. */
bool dbi_qfp_cache_sampled(struct dbi_qfp_cache *c, uint32_t tag, uint64_t fp);
void dbi_qfp_cache_mark_sampled(struct dbi_qfp_cache *c, uint32_t tag, uint64_t fp);

/* Forget everything of one target (it was removed, or its server was replaced). */
void dbi_qfp_cache_forget(struct dbi_qfp_cache *c, uint32_t tag);

void dbi_qfp_cache_get_stats(const struct dbi_qfp_cache *c, struct dbi_qfp_cache_stats *out);

#endif
