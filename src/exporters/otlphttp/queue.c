/*
 * queue.c — the sending queue in memory and on disk (see queue.h for the contract and
 * the file layout).
 *
 * Segment records carry contiguous sequence numbers, so a reader position is a
 * (segment, offset, seq) triple and the nth record of a segment is seq first+n. The
 * structure of every segment is walked at open (record magic, seq and length chained
 * from the header), so a torn tail is found before anything is read; bodies are
 * CRC-checked when read. A crash leaves at worst a torn record at a segment's end, and
 * a state slot that is either the old or the new one; the writer never appends to a
 * segment from a previous run, so recovery never has to repair a file in place.
 */
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <zlib.h>

#include "dbi/clock.h"
#include "dbi/log.h"

#define SEG_MAGIC "DBIQSEG1"
#define SEG_VERSION 1
#define SEG_HDR 32
#define REC_MAGIC 0x43455251u /* "QREC" */
#define REC_HDR 32
#define REC_MAX_BODY (256u << 20)
#define STATE_MAGIC 0x41494244u /* "DBIA" */
#define STATE_VERSION 1
#define STATE_SLOT 8192
#define POOL_BYTES (32ULL << 20)

struct seg {
	uint64_t first, end; /* seqs [first, end) */
	uint64_t size;       /* bytes of valid content */
	int fd;
};

/* An unresolved request found at open, not yet taken again. */
struct redo {
	uint64_t seq;
	uint64_t seg_first;
	uint64_t off;
	uint32_t ndone;
	struct dbi_oq_range done[DBI_OQ_MAX_RANGES];
};

struct dbi_oq {
	struct dbi_oq_opts o;
	pthread_mutex_t mu;

	/* memory */
	struct dbi_oq_item *head, *tail;
	uint64_t mem_seq;
	struct dbi_oq_item *pool; /* resolved items kept for reuse: steady state does not allocate */
	uint32_t npool;
	uint64_t pool_bytes;

	/* disk */
	char *dir;
	int lockfd, statefd;
	struct seg *segs;
	size_t nsegs, segcap;
	uint64_t seg_max;
	uint64_t read_seq, tail_seq;
	int rd_valid;
	uint64_t rd_seg_first, rd_off, rd_seq;
	struct redo *redo;
	size_t nredo;
	uint64_t state_gen;
	int state_unsynced, seg_unsynced;
	int active_ok; /* the last segment was created by this run: appendable */
	uint64_t last_sync;
	uint8_t statebuf[STATE_SLOT];

	struct dbi_oq_item *unres[DBI_OQ_MAX_UNRESOLVED];
	uint32_t nunres;
	struct dbi_oq_stats st;
};

/* ---- little-endian field helpers (the files are read back by this same code) ---- */

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}
static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return DBI_ERR;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return DBI_OK;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return DBI_ERR;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return DBI_OK;
}

/* ---- record headers ---- */

struct rec_hdr {
	uint32_t len;
	uint64_t seq;
	struct dbi_oq_meta m;
	uint32_t crc;
};

static void rec_hdr_write(uint8_t *h, const struct rec_hdr *r)
{
	put32(h, REC_MAGIC);
	put32(h + 4, r->len);
	put64(h + 8, r->seq);
	put32(h + 16, r->m.nitems);
	put32(h + 20, r->m.raw_len);
	h[24] = r->m.signal;
	h[25] = r->m.encoding;
	h[26] = r->m.compression;
	h[27] = 0;
	put32(h + 28, r->crc);
}

static int rec_hdr_read(const uint8_t *h, struct rec_hdr *r)
{
	if (get32(h) != REC_MAGIC)
		return DBI_ERR;
	r->len = get32(h + 4);
	r->seq = get64(h + 8);
	r->m.nitems = get32(h + 16);
	r->m.raw_len = get32(h + 20);
	r->m.signal = h[24];
	r->m.encoding = h[25];
	r->m.compression = h[26];
	r->crc = get32(h + 28);
	return r->len <= REC_MAX_BODY ? DBI_OK : DBI_ERR;
}

static uint32_t rec_crc(const uint8_t *hdr, const uint8_t *body, uint32_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);
	c = crc32(c, hdr, 28);
	c = crc32(c, body, len);
	return (uint32_t)c;
}

/* ---- ranges ---- */

static void ranges_add(struct dbi_oq_range *r, uint32_t *n, uint32_t lo, uint32_t hi)
{
	struct dbi_oq_range tmp[DBI_OQ_MAX_RANGES + 1];
	uint32_t m = 0, i = 0;
	if (lo >= hi)
		return;
	/* insert in order, merging overlaps and neighbours */
	while (i < *n && r[i].hi < lo)
		tmp[m++] = r[i++];
	uint32_t nlo = lo, nhi = hi;
	while (i < *n && r[i].lo <= nhi) {
		nlo = DBI_MIN(nlo, r[i].lo);
		nhi = DBI_MAX(nhi, r[i].hi);
		i++;
	}
	tmp[m++] = (struct dbi_oq_range){nlo, nhi};
	while (i < *n)
		tmp[m++] = r[i++];
	if (m > DBI_OQ_MAX_RANGES) {
		/*
		 * Pathological fragmentation: forget the smallest resolved range. It will be
		 * sent again after a crash; nothing is lost, at worst duplicated.
		 */
		uint32_t small = 0;
		for (uint32_t k = 1; k < m; k++)
			if (tmp[k].hi - tmp[k].lo < tmp[small].hi - tmp[small].lo)
				small = k;
		memmove(&tmp[small], &tmp[small + 1], (m - small - 1) * sizeof(tmp[0]));
		m--;
	}
	memcpy(r, tmp, m * sizeof(tmp[0]));
	*n = m;
}

uint32_t dbi_oq_remaining(const struct dbi_oq_item *it, struct dbi_oq_range *out, uint32_t max)
{
	uint32_t n = 0, at = 0;
	for (uint32_t i = 0; i < it->ndone && n < max; i++) {
		if (it->done[i].lo > at)
			out[n++] = (struct dbi_oq_range){at, DBI_MIN(it->done[i].lo, it->m.nitems)};
		at = DBI_MAX(at, it->done[i].hi);
	}
	if (at < it->m.nitems && n < max)
		out[n++] = (struct dbi_oq_range){at, it->m.nitems};
	return n;
}

static int item_complete(const struct dbi_oq_item *it)
{
	return it->ndone == 1 && it->done[0].lo == 0 && it->done[0].hi >= it->m.nitems;
}

/* ---- persistent state ---- */

static void state_write(struct dbi_oq *q)
{
	uint8_t *b = q->statebuf;
	size_t o = 32;
	uint32_t n = 0;
	memset(b, 0, STATE_SLOT);
	for (uint32_t i = 0; i < q->nunres + q->nredo; i++) {
		uint64_t seq;
		uint32_t nd;
		const struct dbi_oq_range *d;
		if (i < q->nunres) {
			seq = q->unres[i]->seq;
			nd = q->unres[i]->ndone;
			d = q->unres[i]->done;
		} else {
			const struct redo *r = &q->redo[i - q->nunres];
			seq = r->seq;
			nd = r->ndone;
			d = r->done;
		}
		if (o + 16 + 8 * (size_t)nd + 4 > STATE_SLOT)
			break; /* cannot happen with the caps; never write past the slot */
		put64(b + o, seq);
		put32(b + o + 8, nd);
		o += 16;
		for (uint32_t k = 0; k < nd; k++) {
			put32(b + o, d[k].lo);
			put32(b + o + 4, d[k].hi);
			o += 8;
		}
		n++;
	}
	q->state_gen++;
	put32(b, STATE_MAGIC);
	put32(b + 4, STATE_VERSION);
	put64(b + 8, q->state_gen);
	put64(b + 16, q->read_seq);
	put32(b + 24, n);
	put32(b + 28, (uint32_t)o);
	put32(b + o, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)o));
	if (pwrite_full(q->statefd, b, o + 4, (q->state_gen & 1) * STATE_SLOT) != DBI_OK) {
		q->st.io_errors++;
		DBI_LOGE("otlphttp", "cannot write the queue state", "dir=%s errno=%d", q->dir, errno);
	}
	q->state_unsynced = 1;
}

struct loaded_state {
	uint64_t gen, read_seq;
	uint32_t n;
	struct redo ent[DBI_OQ_MAX_UNRESOLVED];
};

static int state_parse(const uint8_t *b, struct loaded_state *ls)
{
	if (get32(b) != STATE_MAGIC || get32(b + 4) != STATE_VERSION)
		return DBI_ERR;
	uint32_t len = get32(b + 28);
	if (len < 32 || len + 4 > STATE_SLOT)
		return DBI_ERR;
	if (get32(b + len) != (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, len))
		return DBI_ERR;
	ls->gen = get64(b + 8);
	ls->read_seq = get64(b + 16);
	uint32_t n = get32(b + 24);
	size_t o = 32;
	ls->n = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (o + 16 > len || ls->n >= DBI_OQ_MAX_UNRESOLVED)
			return DBI_ERR;
		struct redo *r = &ls->ent[ls->n++];
		memset(r, 0, sizeof(*r));
		r->seq = get64(b + o);
		r->ndone = get32(b + o + 8);
		o += 16;
		if (r->ndone > DBI_OQ_MAX_RANGES || o + 8 * (size_t)r->ndone > len)
			return DBI_ERR;
		for (uint32_t k = 0; k < r->ndone; k++) {
			r->done[k].lo = get32(b + o);
			r->done[k].hi = get32(b + o + 4);
			o += 8;
		}
	}
	return DBI_OK;
}

static int state_load(struct dbi_oq *q, struct loaded_state *best)
{
	struct loaded_state *tmp = malloc(sizeof(*tmp));
	int found = 0;
	if (!tmp)
		return 0;
	for (int slot = 0; slot < 2; slot++) {
		uint8_t *b = q->statebuf;
		memset(b, 0, STATE_SLOT);
		ssize_t n = pread(q->statefd, b, STATE_SLOT, (off_t)slot * STATE_SLOT);
		if (n < 36 || state_parse(b, tmp) != DBI_OK)
			continue;
		if (!found || tmp->gen > best->gen) {
			*best = *tmp;
			found = 1;
		}
	}
	free(tmp);
	return found;
}

/* ---- segments ---- */

static struct seg *seg_find(struct dbi_oq *q, uint64_t seq)
{
	for (size_t i = 0; i < q->nsegs; i++)
		if (seq >= q->segs[i].first && seq < q->segs[i].end)
			return &q->segs[i];
	return NULL;
}

static void seg_path(const struct dbi_oq *q, uint64_t first, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%016" PRIx64 ".seg", q->dir, first);
}

static void dir_sync(const struct dbi_oq *q)
{
	int fd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

static void seg_remove(struct dbi_oq *q, size_t i)
{
	char path[4096];
	seg_path(q, q->segs[i].first, path, sizeof(path));
	if (q->segs[i].fd >= 0)
		close(q->segs[i].fd);
	unlink(path);
	q->st.disk_bytes -= q->segs[i].size;
	if (i == q->nsegs - 1)
		q->active_ok = 0;
	memmove(&q->segs[i], &q->segs[i + 1], (q->nsegs - i - 1) * sizeof(q->segs[0]));
	q->nsegs--;
	q->rd_valid = 0;
}

/* Offset of record seq inside segment s, by walking headers from the start. */
static int seg_offset_of(const struct seg *s, uint64_t seq, uint64_t *off)
{
	uint64_t o = SEG_HDR, at = s->first;
	uint8_t h[REC_HDR];
	struct rec_hdr r;
	while (at < seq) {
		if (pread_full(s->fd, h, REC_HDR, o) != DBI_OK || rec_hdr_read(h, &r) != DBI_OK)
			return DBI_ERR;
		o += REC_HDR + r.len;
		at++;
	}
	*off = o;
	return o < s->size ? DBI_OK : DBI_ERR;
}

/* Read the record at (s, off), check it is seq, load it into a new item. */
static int read_item(const struct seg *s, uint64_t off, uint64_t seq, struct dbi_oq_item **out, uint64_t *next_off)
{
	uint8_t h[REC_HDR];
	struct rec_hdr r;
	if (pread_full(s->fd, h, REC_HDR, off) != DBI_OK || rec_hdr_read(h, &r) != DBI_OK || r.seq != seq ||
	    off + REC_HDR + r.len > s->size)
		return DBI_ERR;
	struct dbi_oq_item *it = calloc(1, sizeof(*it) + r.len);
	if (!it)
		return DBI_ERR;
	it->body = (uint8_t *)(it + 1);
	if (pread_full(s->fd, it->body, r.len, off + REC_HDR) != DBI_OK || rec_crc(h, it->body, r.len) != r.crc) {
		free(it);
		return DBI_ERR;
	}
	it->seq = seq;
	it->m = r.m;
	it->body_len = r.len;
	if (next_off)
		*next_off = off + REC_HDR + r.len;
	*out = it;
	return DBI_OK;
}

/* Walk a segment file found at open: its valid extent and record count. */
static int seg_scan(struct dbi_oq *q, struct seg *s)
{
	struct stat sb;
	uint8_t h[SEG_HDR];
	if (fstat(s->fd, &sb) != 0 || sb.st_size < SEG_HDR || pread_full(s->fd, h, SEG_HDR, 0) != DBI_OK ||
	    memcmp(h, SEG_MAGIC, 8) != 0 || get32(h + 8) != SEG_VERSION || get64(h + 16) != s->first)
		return DBI_ERR;
	uint64_t fsize = (uint64_t)sb.st_size, o = SEG_HDR, seq = s->first, last_off = 0;
	struct rec_hdr r;
	while (o + REC_HDR <= fsize) {
		if (pread_full(s->fd, h, REC_HDR, o) != DBI_OK || rec_hdr_read(h, &r) != DBI_OK || r.seq != seq ||
		    r.len > fsize - o - REC_HDR)
			break;
		last_off = o;
		o += REC_HDR + r.len;
		seq++;
	}
	s->size = o;
	s->end = seq;
	if (o < fsize) {
		q->st.corrupt++;
		DBI_LOGW("otlphttp", "queue segment has a torn or corrupt tail; it is skipped",
		         "dir=%s segment=%016" PRIx64 " valid_bytes=%" PRIu64 " file_bytes=%" PRIu64, q->dir, s->first,
		         o, fsize);
	}
	/* the last record is the one a crash can leave half-written with a plausible length */
	if (seq > s->first) {
		struct dbi_oq_item *it = NULL;
		if (read_item(s, last_off, seq - 1, &it, NULL) != DBI_OK) {
			q->st.corrupt++;
			DBI_LOGW("otlphttp", "queue segment's last record fails its CRC; it is skipped",
			         "dir=%s segment=%016" PRIx64, q->dir, s->first);
			s->size = last_off;
			s->end = seq - 1;
		}
		free(it);
	}
	return DBI_OK;
}

static int mkdir_p(const char *path)
{
	char tmp[4096];
	if (dbi_strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp))
		return DBI_ERR;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return DBI_ERR;
		*p = '/';
	}
	return mkdir(tmp, 0700) == 0 || errno == EEXIST ? DBI_OK : DBI_ERR;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

static int open_disk(struct dbi_oq *q, struct dbi_errbuf *err)
{
	char path[4096];
	if (!q->o.dir || !*q->o.dir || mkdir_p(q->o.dir) != DBI_OK) {
		dbi_err_add(err, "sending_queue.directory %s: cannot create: %s", q->o.dir ? q->o.dir : "(none)",
		            strerror(errno));
		return DBI_ERR;
	}
	q->dir = strdup(q->o.dir);
	if (!q->dir)
		return DBI_ERR;
	snprintf(path, sizeof(path), "%s/lock", q->dir);
	q->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (q->lockfd < 0 || flock(q->lockfd, LOCK_EX | LOCK_NB) != 0) {
		dbi_err_add(err, "sending_queue.directory %s: %s", q->dir,
		            q->lockfd < 0 ? strerror(errno) : "in use by another process (lock held)");
		return DBI_ERR;
	}
	snprintf(path, sizeof(path), "%s/state", q->dir);
	q->statefd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (q->statefd < 0) {
		dbi_err_add(err, "%s: %s", path, strerror(errno));
		return DBI_ERR;
	}
	DIR *d = opendir(q->dir);
	if (!d) {
		dbi_err_add(err, "%s: %s", q->dir, strerror(errno));
		return DBI_ERR;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char *end = NULL;
		if (strlen(de->d_name) != 20 || strcmp(de->d_name + 16, ".seg") != 0)
			continue;
		errno = 0;
		uint64_t first = strtoull(de->d_name, &end, 16);
		if (errno || end != de->d_name + 16)
			continue;
		if (q->nsegs == q->segcap) {
			size_t ncap = q->segcap ? q->segcap * 2 : 16;
			struct seg *ns = realloc(q->segs, ncap * sizeof(*ns));
			if (!ns) {
				closedir(d);
				return DBI_ERR;
			}
			q->segs = ns;
			q->segcap = ncap;
		}
		seg_path(q, first, path, sizeof(path));
		struct seg *s = &q->segs[q->nsegs];
		memset(s, 0, sizeof(*s));
		s->first = first;
		s->fd = open(path, O_RDWR | O_CLOEXEC);
		if (s->fd < 0)
			continue;
		q->nsegs++;
	}
	closedir(d);
	if (q->nsegs > 1)
		qsort(q->segs, q->nsegs, sizeof(q->segs[0]), seg_cmp);
	for (size_t i = 0; i < q->nsegs;) {
		struct seg *s = &q->segs[i];
		if (seg_scan(q, s) != DBI_OK) {
			q->st.corrupt++;
			DBI_LOGW("otlphttp", "queue segment has a bad header; removed", "dir=%s segment=%016" PRIx64,
			         q->dir, s->first);
			s->size = 0;
			seg_remove(q, i);
			continue;
		}
		q->st.disk_bytes += s->size;
		if (s->end == s->first) {
			seg_remove(q, i);
			continue;
		}
		i++;
	}

	struct loaded_state *ls = calloc(1, sizeof(*ls));
	if (!ls)
		return DBI_ERR;
	int have = state_load(q, ls);
	q->state_gen = have ? ls->gen : 0;
	q->read_seq = have ? ls->read_seq : 0;
	if (q->nsegs && q->read_seq < q->segs[0].first)
		q->read_seq = q->segs[0].first;
	q->tail_seq = q->read_seq;
	if (q->nsegs && q->segs[q->nsegs - 1].end > q->tail_seq)
		q->tail_seq = q->segs[q->nsegs - 1].end;
	for (uint32_t i = 0; i < ls->n; i++) {
		struct redo *r = &ls->ent[i];
		struct seg *s = seg_find(q, r->seq);
		if (r->seq >= q->read_seq)
			continue; /* not taken before the crash: read again in order anyway */
		if (!s || seg_offset_of(s, r->seq, &r->off) != DBI_OK) {
			q->st.corrupt++;
			DBI_LOGW("otlphttp", "an unresolved queued request is gone from disk", "dir=%s seq=%" PRIu64,
			         q->dir, r->seq);
			continue;
		}
		r->seg_first = s->first;
		struct redo *nr = realloc(q->redo, (q->nredo + 1) * sizeof(*nr));
		if (!nr) {
			free(ls);
			return DBI_ERR;
		}
		q->redo = nr;
		q->redo[q->nredo++] = *r;
	}
	free(ls);
	q->st.redelivered = q->nredo;
	state_write(q);
	if (q->nredo || q->read_seq < q->tail_seq)
		DBI_LOGI("otlphttp", "persistent queue reopened", "dir=%s unresolved=%zu waiting=%" PRIu64, q->dir,
		         q->nredo, q->tail_seq - q->read_seq);
	return DBI_OK;
}

int dbi_oq_open(struct dbi_oq **out, const struct dbi_oq_opts *o, struct dbi_errbuf *err)
{
	struct dbi_oq *q = calloc(1, sizeof(*q));
	if (!q) {
		dbi_err_add(err, "out of memory");
		return DBI_ERR;
	}
	q->o = *o;
	q->o.dir = NULL;
	q->lockfd = q->statefd = -1;
	if (q->o.max_unresolved == 0 || q->o.max_unresolved > DBI_OQ_MAX_UNRESOLVED)
		q->o.max_unresolved = DBI_OQ_MAX_UNRESOLVED;
	pthread_mutex_init(&q->mu, NULL);
	if (o->persistent) {
		q->o.dir = o->dir;
		uint64_t mb = o->max_bytes ? o->max_bytes : UINT64_MAX;
		q->seg_max = DBI_MAX(DBI_MIN(mb / 16, 64ULL << 20), 1ULL << 20);
		int rc = open_disk(q, err);
		q->o.dir = NULL;
		if (rc != DBI_OK) {
			if (err->count == 0)
				dbi_err_add(err, "sending_queue: out of memory");
			dbi_oq_close(q);
			return DBI_ERR;
		}
		q->last_sync = dbi_mono_ns();
	}
	*out = q;
	return DBI_OK;
}

void dbi_oq_close(struct dbi_oq *q)
{
	if (!q)
		return;
	if (q->o.persistent && q->statefd >= 0) {
		state_write(q);
		fdatasync(q->statefd);
		for (size_t i = 0; i < q->nsegs; i++)
			if (q->segs[i].fd >= 0)
				fdatasync(q->segs[i].fd);
	}
	for (size_t i = 0; i < q->nsegs; i++)
		if (q->segs[i].fd >= 0)
			close(q->segs[i].fd);
	free(q->segs);
	free(q->redo);
	for (uint32_t i = 0; i < q->nunres; i++)
		free(q->unres[i]);
	while (q->head) {
		struct dbi_oq_item *n = q->head->next;
		free(q->head);
		q->head = n;
	}
	while (q->pool) {
		struct dbi_oq_item *n = q->pool->next;
		free(q->pool);
		q->pool = n;
	}
	if (q->statefd >= 0)
		close(q->statefd);
	if (q->lockfd >= 0)
		close(q->lockfd); /* releases the flock */
	free(q->dir);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

/* ---- dropping and collecting segments (disk, lock held) ---- */

static void drop_oldest_segment(struct dbi_oq *q)
{
	if (!q->segs || q->nsegs == 0)
		return;
	struct seg *s = &q->segs[0];
	uint64_t o = SEG_HDR, seq = s->first;
	uint8_t h[REC_HDR];
	struct rec_hdr r;
	uint64_t reqs = 0, items = 0;
	while (seq < s->end && pread_full(s->fd, h, REC_HDR, o) == DBI_OK && rec_hdr_read(h, &r) == DBI_OK) {
		int waiting = seq >= q->read_seq;
		for (size_t i = 0; !waiting && i < q->nredo; i++)
			waiting = q->redo[i].seq == seq;
		if (waiting) {
			reqs++;
			items += r.m.nitems;
		}
		o += REC_HDR + r.len;
		seq++;
	}
	for (size_t i = 0; i < q->nredo;) {
		if (q->redo[i].seg_first == s->first) {
			memmove(&q->redo[i], &q->redo[i + 1], (q->nredo - i - 1) * sizeof(q->redo[0]));
			q->nredo--;
			continue;
		}
		i++;
	}
	if (q->read_seq < s->end)
		q->read_seq = s->end;
	q->st.dropped_oldest_reqs += reqs;
	q->st.dropped_oldest_items += items;
	if (reqs)
		DBI_LOGW("otlphttp", "persistent queue full: dropped its oldest segment",
		         "dir=%s requests=%" PRIu64 " items=%" PRIu64, q->dir, reqs, items);
	seg_remove(q, 0);
	state_write(q);
}

static uint64_t min_unresolved_seq(const struct dbi_oq *q)
{
	uint64_t m = UINT64_MAX;
	for (uint32_t i = 0; i < q->nunres; i++)
		m = DBI_MIN(m, q->unres[i]->seq);
	for (size_t i = 0; i < q->nredo; i++)
		m = DBI_MIN(m, q->redo[i].seq);
	return m;
}

static void gc_segments(struct dbi_oq *q)
{
	uint64_t keep = DBI_MIN(min_unresolved_seq(q), q->read_seq);
	/* the last segment is the active one for writing: it goes when it is replaced */
	while (q->nsegs > 1 && q->segs[0].end <= keep)
		seg_remove(q, 0);
}

/* ---- push ---- */

static int push_disk(struct dbi_oq *q, const struct dbi_oq_meta *m, const uint8_t *body, uint32_t len)
{
	uint64_t reclen = REC_HDR + (uint64_t)len;
	if (len > REC_MAX_BODY || (q->o.max_bytes && reclen + SEG_HDR > q->o.max_bytes))
		return DBI_ERR;
	struct seg *act = q->nsegs && q->active_ok ? &q->segs[q->nsegs - 1] : NULL;
	/* segments from a previous run are never appended to: this run writes its own */
	int need_new = !act || (act->end > act->first && act->size + reclen > q->seg_max);
	while (q->o.max_bytes && q->nsegs && q->st.disk_bytes + reclen + (need_new ? SEG_HDR : 0) > q->o.max_bytes) {
		drop_oldest_segment(q);
		act = q->nsegs && q->active_ok ? &q->segs[q->nsegs - 1] : NULL;
		need_new |= !act;
	}
	if (need_new) {
		char path[4096];
		uint8_t h[SEG_HDR] = {0};
		int oldfd = act ? act->fd : -1;
		if (q->nsegs == q->segcap) {
			size_t ncap = q->segcap ? q->segcap * 2 : 16;
			struct seg *ns = realloc(q->segs, ncap * sizeof(*ns));
			if (!ns)
				return DBI_ERR;
			q->segs = ns;
			q->segcap = ncap;
		}
		seg_path(q, q->tail_seq, path, sizeof(path));
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		memcpy(h, SEG_MAGIC, 8);
		put32(h + 8, SEG_VERSION);
		put64(h + 16, q->tail_seq);
		if (fd < 0 || pwrite_full(fd, h, SEG_HDR, 0) != DBI_OK) {
			if (fd >= 0) {
				close(fd);
				unlink(path);
			}
			return DBI_ERR;
		}
		if (oldfd >= 0)
			fdatasync(oldfd); /* the finished segment is complete on disk */
		dir_sync(q);
		if (!q->segs) {
			close(fd);
			return DBI_ERR;
		}
		act = &q->segs[q->nsegs++];
		q->active_ok = 1;
		act->first = act->end = q->tail_seq;
		act->size = SEG_HDR;
		act->fd = fd;
		q->st.disk_bytes += SEG_HDR;
	}
	if (!act)
		return DBI_ERR;
	uint8_t h[REC_HDR];
	struct rec_hdr r = {.len = len, .seq = q->tail_seq, .m = *m};
	rec_hdr_write(h, &r);
	r.crc = rec_crc(h, body, len);
	put32(h + 28, r.crc);
	struct iovec iov[2] = {{h, REC_HDR}, {(void *)body, len}};
	ssize_t n = pwritev(act->fd, iov, 2, (off_t)act->size);
	if (n != (ssize_t)reclen) {
		/* leave no partial record behind: the next write goes at the same offset */
		if (ftruncate(act->fd, (off_t)act->size) != 0)
			DBI_LOGE("otlphttp", "cannot truncate a failed queue write", "dir=%s errno=%d", q->dir, errno);
		return DBI_ERR;
	}
	act->size += reclen;
	act->end = ++q->tail_seq;
	q->st.disk_bytes += reclen;
	q->seg_unsynced = 1;
	return DBI_OK;
}

int dbi_oq_push(struct dbi_oq *q, const struct dbi_oq_meta *m, const uint8_t *body, uint32_t len)
{
	int rc;
	pthread_mutex_lock(&q->mu);
	if (q->o.persistent) {
		rc = push_disk(q, m, body, len);
		if (rc != DBI_OK)
			q->st.io_errors++;
		pthread_mutex_unlock(&q->mu);
		return rc;
	}
	if (q->o.queue_size && q->st.pending >= q->o.queue_size) {
		q->st.dropped_full_reqs++;
		q->st.dropped_full_items += m->nitems;
		pthread_mutex_unlock(&q->mu);
		return DBI_AGAIN;
	}
	/* a recycled item big enough, else the pool's first one to grow (or a new one) */
	struct dbi_oq_item *it = NULL, **pp = &q->pool;
	for (int look = 0; *pp && look < 8; look++, pp = &(*pp)->next)
		if ((*pp)->cap >= len)
			break;
	if (!*pp || (*pp)->cap < len)
		pp = &q->pool;
	if (*pp) {
		it = *pp;
		*pp = it->next;
		q->npool--;
		q->pool_bytes -= it->cap;
	}
	pthread_mutex_unlock(&q->mu);
	/* allocate and copy outside the lock: the sender should not wait for them */
	if (!it || it->cap < len) {
		uint32_t cap = len + len / 4;
		struct dbi_oq_item *n = realloc(it, sizeof(*n) + cap);
		if (!n) {
			free(it);
			return DBI_ERR;
		}
		it = n;
		it->cap = cap;
	}
	uint32_t cap = it->cap;
	memset(it, 0, sizeof(*it));
	it->cap = cap;
	it->body = (uint8_t *)(it + 1);
	if (len)
		memcpy(it->body, body, len);
	it->m = *m;
	it->body_len = len;
	pthread_mutex_lock(&q->mu);
	it->seq = q->mem_seq++;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->st.pending++;
	q->st.pending_items += m->nitems;
	pthread_mutex_unlock(&q->mu);
	return DBI_OK;
}

/* ---- take / resolve ---- */

/*
 * Keep a resolved memory item for reuse (lock held); returns what the caller must free.
 * As many as the queue can hold, up to POOL_BYTES of bodies: enough that a queue which
 * fills and drains again does not allocate, not so much that one burst pins memory.
 */
static struct dbi_oq_item *recycle(struct dbi_oq *q, struct dbi_oq_item *it)
{
	if (q->o.persistent || q->pool_bytes + it->cap > POOL_BYTES ||
	    (q->o.queue_size && q->npool >= q->o.queue_size + q->o.max_unresolved))
		return it;
	it->next = q->pool;
	q->pool = it;
	q->npool++;
	q->pool_bytes += it->cap;
	return NULL;
}

static void unres_add(struct dbi_oq *q, struct dbi_oq_item *it)
{
	it->unresolved_slot = (int)q->nunres;
	q->unres[q->nunres++] = it;
}

static void unres_remove(struct dbi_oq *q, struct dbi_oq_item *it)
{
	uint32_t i = (uint32_t)it->unresolved_slot;
	if (i >= q->nunres || q->unres[i] != it)
		return;
	q->unres[i] = q->unres[--q->nunres];
	q->unres[i]->unresolved_slot = (int)i;
}

static int take_disk(struct dbi_oq *q, struct dbi_oq_item **out)
{
	while (q->nredo) {
		struct redo r = q->redo[0];
		memmove(&q->redo[0], &q->redo[1], (q->nredo - 1) * sizeof(q->redo[0]));
		q->nredo--;
		struct seg *s = seg_find(q, r.seq);
		struct dbi_oq_item *it = NULL;
		if (!s || s->first != r.seg_first || read_item(s, r.off, r.seq, &it, NULL) != DBI_OK) {
			q->st.corrupt++;
			DBI_LOGW("otlphttp", "cannot read back an unresolved queued request; skipped",
			         "dir=%s seq=%" PRIu64, q->dir, r.seq);
			state_write(q);
			continue;
		}
		it->ndone = r.ndone;
		memcpy(it->done, r.done, sizeof(r.done));
		unres_add(q, it);
		*out = it;
		return DBI_OK;
	}
	while (q->read_seq < q->tail_seq) {
		if (q->nunres >= q->o.max_unresolved)
			return DBI_AGAIN;
		struct seg *s = seg_find(q, q->read_seq);
		if (!s) {
			/* a gap (a torn tail was cut): go to the next segment that exists */
			uint64_t next = q->tail_seq;
			for (size_t i = 0; i < q->nsegs; i++)
				if (q->segs[i].first > q->read_seq) {
					next = q->segs[i].first;
					break;
				}
			q->read_seq = next;
			q->rd_valid = 0;
			continue;
		}
		if (!q->rd_valid || q->rd_seg_first != s->first || q->rd_seq != q->read_seq) {
			if (seg_offset_of(s, q->read_seq, &q->rd_off) != DBI_OK) {
				q->st.corrupt++;
				q->read_seq = s->end;
				continue;
			}
			q->rd_seg_first = s->first;
			q->rd_seq = q->read_seq;
			q->rd_valid = 1;
		}
		struct dbi_oq_item *it = NULL;
		uint64_t next_off;
		if (read_item(s, q->rd_off, q->read_seq, &it, &next_off) != DBI_OK) {
			/* the structure was checked at open, so the next record is still where it was */
			uint8_t h[REC_HDR];
			struct rec_hdr r;
			q->st.corrupt++;
			DBI_LOGW("otlphttp", "a queued request fails its CRC; skipped", "dir=%s seq=%" PRIu64, q->dir,
			         q->read_seq);
			if (pread_full(s->fd, h, REC_HDR, q->rd_off) == DBI_OK && rec_hdr_read(h, &r) == DBI_OK) {
				q->rd_off += REC_HDR + r.len;
				q->rd_seq = ++q->read_seq;
			} else {
				q->read_seq = s->end;
				q->rd_valid = 0;
			}
			continue;
		}
		q->rd_off = next_off;
		q->rd_seq = ++q->read_seq;
		unres_add(q, it);
		*out = it;
		return DBI_OK;
	}
	return DBI_AGAIN;
}

int dbi_oq_take(struct dbi_oq *q, struct dbi_oq_item **it)
{
	int rc = DBI_AGAIN;
	pthread_mutex_lock(&q->mu);
	if (q->o.persistent) {
		rc = take_disk(q, it);
	} else if (q->head && q->nunres < q->o.max_unresolved) {
		struct dbi_oq_item *h = q->head;
		q->head = h->next;
		if (!q->head)
			q->tail = NULL;
		h->next = NULL;
		q->st.pending--;
		q->st.pending_items -= h->m.nitems;
		unres_add(q, h);
		*it = h;
		rc = DBI_OK;
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int dbi_oq_part_done(struct dbi_oq *q, struct dbi_oq_item *it, uint32_t lo, uint32_t hi)
{
	int whole;
	pthread_mutex_lock(&q->mu);
	ranges_add(it->done, &it->ndone, lo, DBI_MIN(hi, it->m.nitems));
	whole = item_complete(it) || it->m.nitems == 0;
	if (whole)
		unres_remove(q, it);
	if (q->o.persistent) {
		state_write(q);
		if (whole)
			gc_segments(q);
	}
	if (whole)
		it = recycle(q, it);
	pthread_mutex_unlock(&q->mu);
	if (whole)
		free(it);
	return whole;
}

void dbi_oq_abandon(struct dbi_oq *q, struct dbi_oq_item *it)
{
	pthread_mutex_lock(&q->mu);
	if (q->o.persistent) {
		/* stays in the unresolved list that the final state records */
		pthread_mutex_unlock(&q->mu);
		return;
	}
	unres_remove(q, it);
	it = recycle(q, it);
	pthread_mutex_unlock(&q->mu);
	free(it);
}

void dbi_oq_sync(struct dbi_oq *q, uint64_t interval_ns)
{
	if (!q->o.persistent)
		return;
	uint64_t now = dbi_mono_ns();
	pthread_mutex_lock(&q->mu);
	if (now - q->last_sync < interval_ns || (!q->seg_unsynced && !q->state_unsynced)) {
		pthread_mutex_unlock(&q->mu);
		return;
	}
	int segfd = q->seg_unsynced && q->nsegs ? q->segs[q->nsegs - 1].fd : -1;
	int st = q->state_unsynced;
	q->seg_unsynced = q->state_unsynced = 0;
	q->last_sync = now;
	pthread_mutex_unlock(&q->mu);
	/*
	 * Outside the lock, so the sender is not held up by the disk. Only this thread
	 * (the producer) rotates or drops segments, so the active fd stays open meanwhile.
	 */
	if (segfd >= 0)
		fdatasync(segfd);
	if (st)
		fdatasync(q->statefd);
}

void dbi_oq_get_stats(struct dbi_oq *q, struct dbi_oq_stats *st)
{
	pthread_mutex_lock(&q->mu);
	*st = q->st;
	st->unresolved = q->nunres;
	if (q->o.persistent) {
		st->pending = q->tail_seq - q->read_seq + q->nredo;
		st->pending_items = 0;
	}
	pthread_mutex_unlock(&q->mu);
}
