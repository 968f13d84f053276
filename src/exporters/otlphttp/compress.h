/*
 * compress.h — request body compression for the otlphttp exporter: gzip (zlib, with a
 * gzip wrapper so `Content-Encoding: gzip` is exact), zstd (libzstd, when built with
 * DBI_HAVE_ZSTD) or none. A compressor keeps its zlib/zstd context between requests so
 * a request costs a reset, not an allocation. Decompression exists for the rare path
 * that must cut a queued request in two (HTTP 413, resending part of a request).
 */
#ifndef DBI_OTLPHTTP_COMPRESS_H
#define DBI_OTLPHTTP_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "otlp_enc.h"

#ifdef __cplusplus
extern "C" {
#endif

enum dbi_compression { DBI_COMP_GZIP = 0, DBI_COMP_ZSTD = 1, DBI_COMP_NONE = 2 };

struct dbi_compressor {
	int kind;  /* enum dbi_compression */
	int level; /* 0: the library's default for that codec */
	void *ctx; /* z_stream or ZSTD_CCtx */
};

/* "gzip", "zstd" or NULL (none): the Content-Encoding header value. */
const char *dbi_compressor_name(int kind);

int dbi_compressor_init(struct dbi_compressor *c, int kind, int level);
void dbi_compressor_free(struct dbi_compressor *c);
/* Compress in into out (replacing its contents). DBI_OK or DBI_ERR. */
int dbi_compressor_run(struct dbi_compressor *c, const uint8_t *in, size_t len, struct dbi_obuf *out);
/* Decompress a whole body of the given kind into out; DBI_ERR if malformed or over max_out bytes. */
int dbi_compressor_undo(int kind, const uint8_t *in, size_t len, size_t max_out, struct dbi_obuf *out);

#ifdef __cplusplus
}
#endif

#endif
