/*
 * compress.c — gzip / zstd / none for request bodies (see compress.h). One context per
 * compressor, reset per request; output buffers are sized from the codec's bound so a
 * body is compressed in one call.
 */
#include "compress.h"

#include <stdlib.h>
#include <string.h>

#define ZLIB_CONST /* next_in is const: no cast needed to compress caller-owned bytes */
#include <zlib.h>
#ifdef DBI_HAVE_ZSTD
#include <zstd.h>
#endif

const char *dbi_compressor_name(int kind)
{
	switch (kind) {
	case DBI_COMP_GZIP:
		return "gzip";
	case DBI_COMP_ZSTD:
		return "zstd";
	}
	return NULL;
}

int dbi_compressor_init(struct dbi_compressor *c, int kind, int level)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->level = level;
	if (kind == DBI_COMP_GZIP) {
		z_stream *zs = calloc(1, sizeof(*zs));
		if (!zs)
			return DBI_ERR;
		/* windowBits 15 + 16: a gzip wrapper, not zlib's */
		if (deflateInit2(zs, level ? level : Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
		                 Z_DEFAULT_STRATEGY) != Z_OK) {
			free(zs);
			return DBI_ERR;
		}
		c->ctx = zs;
		return DBI_OK;
	}
	if (kind == DBI_COMP_ZSTD) {
#ifdef DBI_HAVE_ZSTD
		ZSTD_CCtx *z = ZSTD_createCCtx();
		if (!z)
			return DBI_ERR;
		if (ZSTD_isError(
		            ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level ? level : ZSTD_CLEVEL_DEFAULT)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 0))) {
			ZSTD_freeCCtx(z);
			return DBI_ERR;
		}
		c->ctx = z;
		return DBI_OK;
#else
		return DBI_ERR;
#endif
	}
	return kind == DBI_COMP_NONE ? DBI_OK : DBI_ERR;
}

void dbi_compressor_free(struct dbi_compressor *c)
{
	if (!c->ctx)
		return;
	if (c->kind == DBI_COMP_GZIP) {
		deflateEnd(c->ctx);
		free(c->ctx);
	}
#ifdef DBI_HAVE_ZSTD
	if (c->kind == DBI_COMP_ZSTD)
		ZSTD_freeCCtx(c->ctx);
#endif
	c->ctx = NULL;
}

int dbi_compressor_run(struct dbi_compressor *c, const uint8_t *in, size_t len, struct dbi_obuf *out)
{
	out->len = 0;
	if (c->kind == DBI_COMP_NONE) {
		if (dbi_obuf_reserve(out, len) != DBI_OK)
			return DBI_ERR;
		memcpy(out->data, in, len);
		out->len = len;
		return DBI_OK;
	}
	if (c->kind == DBI_COMP_GZIP) {
		z_stream *zs = c->ctx;
		if (len > UINT32_MAX || deflateReset(zs) != Z_OK)
			return DBI_ERR;
		size_t bound = deflateBound(zs, (uLong)len);
		if (dbi_obuf_reserve(out, bound) != DBI_OK)
			return DBI_ERR;
		zs->next_in = in;
		zs->avail_in = (uInt)len;
		zs->next_out = out->data;
		zs->avail_out = (uInt)DBI_MIN(out->cap, UINT32_MAX);
		if (deflate(zs, Z_FINISH) != Z_STREAM_END)
			return DBI_ERR;
		out->len = zs->total_out;
		return DBI_OK;
	}
#ifdef DBI_HAVE_ZSTD
	if (c->kind == DBI_COMP_ZSTD) {
		size_t bound = ZSTD_compressBound(len);
		if (dbi_obuf_reserve(out, bound) != DBI_OK)
			return DBI_ERR;
		size_t n = ZSTD_compress2(c->ctx, out->data, out->cap, in, len);
		if (ZSTD_isError(n))
			return DBI_ERR;
		out->len = n;
		return DBI_OK;
	}
#endif
	return DBI_ERR;
}

static int gunzip(const uint8_t *in, size_t len, size_t max_out, struct dbi_obuf *out)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	if (len > UINT32_MAX || inflateInit2(&zs, 15 + 32) != Z_OK)
		return DBI_ERR;
	int rc = DBI_ERR;
	zs.next_in = in;
	zs.avail_in = (uInt)len;
	for (;;) {
		if (out->cap - out->len < 65536 && dbi_obuf_reserve(out, out->len + 65536) != DBI_OK)
			break;
		zs.next_out = out->data + out->len;
		zs.avail_out = (uInt)DBI_MIN(out->cap - out->len, UINT32_MAX);
		size_t before = zs.avail_out;
		int zr = inflate(&zs, Z_NO_FLUSH);
		out->len += before - zs.avail_out;
		if (out->len > max_out)
			break;
		if (zr == Z_STREAM_END) {
			rc = zs.avail_in == 0 ? DBI_OK : DBI_ERR;
			break;
		}
		if (zr != Z_OK)
			break;
	}
	inflateEnd(&zs);
	return rc;
}

int dbi_compressor_undo(int kind, const uint8_t *in, size_t len, size_t max_out, struct dbi_obuf *out)
{
	out->len = 0;
	if (kind == DBI_COMP_NONE) {
		if (len > max_out || dbi_obuf_reserve(out, len) != DBI_OK)
			return DBI_ERR;
		memcpy(out->data, in, len);
		out->len = len;
		return DBI_OK;
	}
	if (kind == DBI_COMP_GZIP)
		return gunzip(in, len, max_out, out);
#ifdef DBI_HAVE_ZSTD
	if (kind == DBI_COMP_ZSTD) {
		ZSTD_DStream *ds = ZSTD_createDStream();
		int rc = DBI_ERR;
		if (!ds)
			return DBI_ERR;
		ZSTD_inBuffer ib = {in, len, 0};
		size_t zr = 1;
		while (ib.pos < ib.size || zr != 0) {
			if (out->cap - out->len < 65536 && dbi_obuf_reserve(out, out->len + 65536) != DBI_OK)
				goto zdone;
			ZSTD_outBuffer ob = {out->data + out->len, out->cap - out->len, 0};
			zr = ZSTD_decompressStream(ds, &ob, &ib);
			out->len += ob.pos;
			if (ZSTD_isError(zr) || out->len > max_out)
				goto zdone;
			if (ob.pos == 0 && ib.pos == ib.size && zr != 0)
				goto zdone; /* truncated frame */
		}
		rc = DBI_OK;
	zdone:
		ZSTD_freeDStream(ds);
		return rc;
	}
#endif
	return DBI_ERR;
}
