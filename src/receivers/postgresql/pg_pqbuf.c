/*
 * pg_pqbuf.c — give back the memory of an idle session's libpq buffers.
 *
 * Every PGconn keeps a 16 KiB input and a 16 KiB output buffer for its whole life, and a
 * scrape fills both (the pipeline's SQL goes out through one, its rows come in through the
 * other). At 1000 targets that is ~32 MiB resident for sessions that are idle 99 % of the
 * time, and libpq has no call to shrink them. Between scrapes nothing is pending in
 * either buffer, so their whole pages are handed back to the kernel with
 * madvise(MADV_DONTNEED): the allocation stays as it is (libpq still owns it, jemalloc
 * still counts it), its pages read as zeros and are faulted in again by the next scrape.
 * Only whole pages can be handed back, and jemalloc places a 16 KiB allocation at a random
 * cache-line offset within its first page (cache-oblivious large allocations): such a
 * buffer spans five pages of which three are whole, so two stayed resident. The first
 * time a buffer is seen unaligned it is moved, once, to a page-aligned allocation of the
 * same size (libpq frees and reallocs it with the same malloc, which takes any pointer it
 * handed out); then all of its pages go back.
 *
 * Finding the buffers needs libpq's private struct (libpq-int.h, shipped by libpq-dev),
 * whose layout is only valid for the libpq it came with: release is on only when the
 * running libpq is the exact version the collector was built against, and each call
 * checks that the offsets it reads are consistent before touching anything. Otherwise
 * it is off, and the only cost is the memory.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef DBI_HAVE_LIBPQ_INT
#include <c.h>

#include <libpq-fe.h>
#include <libpq-int.h>
/* PostgreSQL's port.h routes these to its own printf family; ours is libc's */
#undef snprintf
#undef printf
#undef fprintf
#undef vsnprintf
#endif

#include "pg_pqbuf.h"

#ifdef DBI_HAVE_LIBPQ_INT
static size_t page_size;
static atomic_bool enabled; /* turned off by any scraper thread that sees a bad layout */

bool dbi_pg_pqbuf_init(char *why, size_t whylen)
{
	long ps = sysconf(_SC_PAGESIZE);

	if (PQlibVersion() != PG_VERSION_NUM) {
		snprintf(why, whylen, "libpq %d is not the %d the collector was built with", PQlibVersion(),
		         (int)PG_VERSION_NUM);
		atomic_store_explicit(&enabled, false, memory_order_relaxed);
		return false;
	}
	page_size = ps > 0 ? (size_t)ps : 4096;
	atomic_store_explicit(&enabled, true, memory_order_relaxed);
	snprintf(why, whylen, "libpq %d", PQlibVersion());
	return true;
}

/* The whole pages inside [p, p + len): the only ones that belong to this buffer alone. */
static size_t drop_pages(char *p, size_t len)
{
	size_t head = (page_size - ((uintptr_t)p & (page_size - 1))) & (page_size - 1);
	size_t tail = ((uintptr_t)p + len) & (page_size - 1);

	if (len < head + tail + page_size || madvise(p + head, len - head - tail, MADV_DONTNEED) != 0)
		return 0;
	return len - head - tail;
}

/*
 * A buffer not starting on a page moves to one that does (same size, its first used bytes
 * copied), so that all its pages can be handed back; on allocation failure it stays put.
 */
static void align_buffer(char **buf, size_t len, size_t used)
{
	char *nb;

	if (!((uintptr_t)*buf & (page_size - 1)) || len % page_size)
		return;
	nb = aligned_alloc(page_size, len);
	if (!nb)
		return;
	memcpy(nb, *buf, used);
	free(*buf);
	*buf = nb;
}

size_t dbi_pg_pqbuf_release(PGconn *conn)
{
	size_t n = 0;

	if (!conn || !atomic_load_explicit(&enabled, memory_order_relaxed))
		return 0;
	/* offsets that do not add up mean the layout is not what we were built for: stop */
	if (conn->inBufSize <= 0 || conn->outBufSize <= 0 || conn->inStart < 0 || conn->inStart > conn->inEnd ||
	    conn->inEnd > conn->inBufSize || conn->outCount < 0 || conn->outCount > conn->outBufSize ||
	    !conn->inBuffer || !conn->outBuffer) {
		atomic_store_explicit(&enabled, false, memory_order_relaxed);
		return 0;
	}
	/* nothing left to parse: libpq rewinds to the start before its next read */
	if (conn->inStart == conn->inEnd) {
		align_buffer(&conn->inBuffer, (size_t)conn->inBufSize, (size_t)conn->inEnd);
		n += drop_pages(conn->inBuffer, (size_t)conn->inBufSize);
	}
	if (conn->outCount == 0) {
		align_buffer(&conn->outBuffer, (size_t)conn->outBufSize, 0);
		n += drop_pages(conn->outBuffer, (size_t)conn->outBufSize);
	}
	return n;
}
#else
bool dbi_pg_pqbuf_init(char *why, size_t whylen)
{
	snprintf(why, whylen, "built without libpq-int.h");
	return false;
}

size_t dbi_pg_pqbuf_release(PGconn *conn)
{
	(void)conn;
	return 0;
}
#endif
