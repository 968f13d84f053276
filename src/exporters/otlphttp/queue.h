/*
 * queue.h — the otlphttp exporter's sending queue: encoded, compressed requests waiting
 * for a consumer (an HTTP transfer). In memory, or on disk so that what was queued
 * survives kill -9 and restart.
 *
 * One producer (the exporter thread: push) and one consumer (the sender thread: take,
 * part_done, abandon); a mutex guards the state, which is touched once per request.
 *
 * Every request has a sequence number. A taken request is *unresolved* until all of its
 * items are resolved (acknowledged by the endpoint or dropped for good); a request can
 * be resolved in parts (items [lo, hi)) when it was split after an HTTP 413. The
 * persistent queue writes, at each resolution, the read position and the unresolved
 * requests with the parts already resolved; after a crash exactly the unresolved parts
 * and everything after the read position are sent again, so nothing acknowledged is
 * sent twice (the one exception is a power loss within the last fsync interval).
 *
 * On disk (sending_queue.storage: file), in the queue's directory:
 *   lock                  flock()ed by the owning process
 *   state                 two 8 KiB slots written alternately, each CRC-checked: the newer
 *                         valid one wins, so a torn write falls back to the previous state
 *   <first seq>.seg       append-only segments: a 32-byte header, then records
 *                         [32-byte header: magic, length, seq, items, raw length, signal,
 *                         encoding, compression, CRC-32 of header and body][body]
 * A torn or corrupt record is detected (structure at open, CRC when read), skipped and
 * counted. Over max_bytes, the oldest segment is dropped (counted). A segment is removed
 * once everything in it is resolved.
 */
#ifndef DBI_OTLPHTTP_QUEUE_H
#define DBI_OTLPHTTP_QUEUE_H

#include <stdint.h>

#include "dbi/common.h"

#define DBI_OQ_MAX_RANGES 8
#define DBI_OQ_MAX_UNRESOLVED 80

struct dbi_oq_range {
	uint32_t lo, hi;
};

/* What describes a request besides its body. */
struct dbi_oq_meta {
	uint8_t signal;      /* DBI_SIG_* */
	uint8_t encoding;    /* 0 protobuf, 1 JSON */
	uint8_t compression; /* enum dbi_compression */
	uint32_t nitems;     /* data points / log records / spans */
	uint32_t raw_len;    /* bytes before compression */
};

struct dbi_oq_item {
	uint64_t seq;
	struct dbi_oq_meta m;
	uint32_t body_len;
	uint32_t cap; /* memory queue: body capacity (items are recycled, not freed) */
	uint8_t *body;
	uint32_t ndone; /* resolved parts, sorted and merged */
	struct dbi_oq_range done[DBI_OQ_MAX_RANGES];
	struct dbi_oq_item *next; /* memory queue FIFO */
	int unresolved_slot;
};

struct dbi_oq_opts {
	int persistent;
	const char *dir;         /* persistent: created if missing */
	uint64_t max_bytes;      /* persistent: bytes on disk; 0 = unlimited */
	uint32_t queue_size;     /* requests waiting (not yet taken); 0 = unlimited */
	uint32_t max_unresolved; /* taken and not resolved; take() waits beyond it */
};

struct dbi_oq_stats {
	uint64_t pending;                                   /* requests waiting */
	uint64_t pending_items;                             /* their items (memory queue; on disk: as far as known) */
	uint64_t unresolved;                                /* taken, not yet resolved */
	uint64_t disk_bytes;                                /* segments on disk */
	uint64_t dropped_full_reqs, dropped_full_items;     /* push refused: memory queue full */
	uint64_t dropped_oldest_reqs, dropped_oldest_items; /* persistent: oldest dropped for room */
	uint64_t corrupt;                                   /* records (or torn tails) found corrupt and skipped */
	uint64_t redelivered;                               /* unresolved requests found at open, sent again */
	uint64_t io_errors;
};

struct dbi_oq;

int dbi_oq_open(struct dbi_oq **out, const struct dbi_oq_opts *o, struct dbi_errbuf *err);
/* Writes the final state (persistent) and frees everything; items still out are freed with it. */
void dbi_oq_close(struct dbi_oq *q);

/*
 * Queue a request (the body is copied). DBI_OK; DBI_AGAIN when the memory queue is full
 * (the request is dropped and counted); DBI_ERR when it cannot be stored (too large for
 * max_bytes, or an I/O error; counted).
 */
int dbi_oq_push(struct dbi_oq *q, const struct dbi_oq_meta *m, const uint8_t *body, uint32_t len);

/*
 * The next request to send: first the unresolved ones found at open, then in order.
 * DBI_OK with *it, or DBI_AGAIN (nothing waiting, or max_unresolved reached).
 */
int dbi_oq_take(struct dbi_oq *q, struct dbi_oq_item **it);

/*
 * Items [lo, hi) of a taken request are resolved. Returns 1 when the whole request is
 * resolved: the item is then freed and must not be used again; 0 otherwise.
 */
int dbi_oq_part_done(struct dbi_oq *q, struct dbi_oq_item *it, uint32_t lo, uint32_t hi);

/*
 * Give a taken request back at shutdown: on disk it stays unresolved and is sent again
 * after restart; in memory it is lost (the caller counts it). Frees the item.
 */
void dbi_oq_abandon(struct dbi_oq *q, struct dbi_oq_item *it);

/* Push the state and the active segment to stable storage if older than interval_ns. */
void dbi_oq_sync(struct dbi_oq *q, uint64_t interval_ns);

void dbi_oq_get_stats(struct dbi_oq *q, struct dbi_oq_stats *st);

/* Remaining ranges of an item (the complement of done in [0, nitems)); returns how many. */
uint32_t dbi_oq_remaining(const struct dbi_oq_item *it, struct dbi_oq_range *out, uint32_t max);

#endif
