/*
 * otlphttp_int.h — what the otlphttp exporter's two threads share: its config, the
 * exporter state, and the sender thread's entry points. The exporter thread (the
 * runtime's) encodes, compresses and queues in consume(); the sender thread (ours)
 * drives up to num_consumers HTTP transfers on one curl multi handle, with retries,
 * Retry-After, 413 splitting and the circuit breaker. They meet only in the queue
 * (queue.h) and in a few atomics for shutdown.
 */
#ifndef DBI_OTLPHTTP_INT_H
#define DBI_OTLPHTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/stats.h"

#include "compress.h"
#include "otlp_enc.h"
#include "queue.h"
#include "retry.h"

enum { OH_ENC_PROTO = 0, OH_ENC_JSON = 1 };
enum { OH_PROFILE_NONE = 0, OH_PROFILE_NEWRELIC = 1 };
enum { OH_STORAGE_MEMORY = 0, OH_STORAGE_FILE = 1 };
enum { OH_HOST_DEFAULT = 0, OH_HOST_AUTO, OH_HOST_ALWAYS, OH_HOST_NEVER };

struct otlphttp_cfg {
	char *endpoint;
	char *metrics_endpoint, *logs_endpoint, *traces_endpoint;
	struct dbi_strmap headers;
	int compression;
	int64_t compression_level;
	int encoding;
	uint64_t timeout;
	bool tls_insecure;
	char *tls_ca_file, *tls_cert_file, *tls_key_file;
	uint64_t max_request_bytes;

	bool retry_enabled;
	uint64_t retry_initial, retry_max_interval, retry_max_elapsed;
	double retry_randomization, retry_multiplier;

	bool queue_enabled;
	int64_t num_consumers, queue_size;
	int queue_storage;
	char *queue_directory;
	uint64_t queue_max_bytes;
	uint64_t queue_fsync_interval;

	bool cb_enabled;
	int64_t cb_threshold;
	uint64_t cb_open, cb_max_open;

	int profile;
	int host_attributes;
	uint64_t usage_log_interval;
};

/* Counters of the exporter thread (the component's own stats block). */
enum {
	OX_BATCHES,
	OX_ITEMS,
	OX_REQUESTS,
	OX_BYTES_RAW,
	OX_BYTES_COMPRESSED,
	OX_DROP_QUEUE_FULL,
	OX_DROP_TOO_LARGE,
	OX_DROP_INVALID,
	OX_DROP_ENCODE,
	OX_DROP_NO_ENDPOINT,
	OX_DROP_QUEUE_IO,
	OX_DROP_QUEUE_OLDEST,
	OX_QUEUE_CORRUPT,
	OX_QUEUE_REDELIVERED,
	OX_QUEUE_PENDING,
	OX_QUEUE_UNRESOLVED,
	OX_QUEUE_DISK_BYTES,
	OX_NR_KEYS,
	OX_NR_VALUES,
	OX_NR_ARRAYS,
	OX_NR_ATTRS,
	OX_NSTATS
};

/* Counters of the sender thread (a second block, "<id>:sender"). */
enum {
	OS_REQUESTS,
	OS_REQUESTS_OK,
	OS_RETRIES,
	OS_BYTES_SENT,
	OS_BYTES_SENT_RAW,
	OS_POINTS_SENT,
	OS_RECORDS_SENT,
	OS_FAIL_CONN,
	OS_FAIL_4XX,
	OS_FAIL_5XX,
	OS_THROTTLED,
	OS_SPLITS,
	OS_DROP_RETRIES,
	OS_DROP_BAD_REQUEST,
	OS_DROP_UNAUTHORIZED,
	OS_DROP_NOT_FOUND,
	OS_DROP_REJECTED,
	OS_DROP_TOO_LARGE,
	OS_DROP_SHUTDOWN,
	OS_DROP_SPLIT,
	OS_PARTIAL_REJECTED,
	OS_CIRCUIT_STATE,
	OS_CIRCUIT_OPENS,
	OS_INFLIGHT,
	OS_LATENCY_LAST_MS,
	OS_LATENCY_SUM_MS,
	OS_USAGE_MB_MONTH,
	OS_USAGE_WIRE_MB_MONTH,
	OS_NSTATS
};

struct oh_sender;

struct otlphttp {
	const struct otlphttp_cfg *cfg;
	char id[96];
	struct dbi_registry *reg;
	struct dbi_stats *st;              /* exporter thread */
	struct dbi_stats sst;              /* sender thread */
	struct dbi_stats_block *local_blk; /* sender block outside a runtime (tests) */

	char *url[3]; /* metrics, logs, traces; NULL = no endpoint for that signal */
	int max_unresolved;
	uint64_t max_request_bytes;

	/* exporter thread */
	struct dbi_otlp_enc *enc;
	struct dbi_compressor comp;
	struct dbi_obuf raw, body, part;
	struct dbi_otlp_enc_stats enc_seen;
	struct dbi_oq_stats q_seen;
	uint64_t next_gauges;

	struct dbi_oq *q;
	struct oh_sender *snd;
	pthread_t thread;
	int started;
	_Atomic int draining; /* 1: finish up (see sender.c), 2: stop now */
	_Atomic uint64_t drain_deadline;
	_Atomic int drained;
};

/* Signal index 0..2 for DBI_SIG_*. */
static inline int oh_sig_index(unsigned sig)
{
	return sig == DBI_SIG_METRICS ? 0 : sig == DBI_SIG_LOGS ? 1 : 2;
}

extern const struct dbi_stat_def oh_sender_stats[];

/*
 * Body of a request for items [lo, hi) of a queued request (decompress, cut, re-encode,
 * compress). Used by the exporter thread (max_request_bytes) and the sender (413,
 * partly resolved requests): each passes its own compressor and buffers.
 */
int oh_encode_part(const struct otlphttp *x, struct dbi_compressor *comp, const struct dbi_oq_meta *m,
                   const uint8_t *raw, size_t raw_len, uint32_t lo, uint32_t hi, struct dbi_obuf *tmp,
                   struct dbi_obuf *out, uint32_t *part_raw_len);
/* Protobuf request -> OTLP/JSON into out. */
int oh_to_json(unsigned signal, const uint8_t *pb, size_t len, struct dbi_obuf *out);
/* A queued body back to protobuf (decompress; JSON -> protobuf). */
int oh_body_to_pb(const struct dbi_oq_meta *m, const uint8_t *body, size_t len, struct dbi_obuf *out);

int oh_sender_create(struct otlphttp *x, struct dbi_errbuf *err);
void oh_sender_destroy(struct otlphttp *x);
void *oh_sender_main(void *arg);
void oh_sender_wake(struct otlphttp *x);
/* After the thread exited: count what is left, give back what is unresolved. */
void oh_sender_finish(struct otlphttp *x);

#endif
