/*
 * otlp_int.h — the otlp receiver's private interfaces, shared by its files:
 *
 *   otlp_decode.c  OTLP export requests (already unpacked) → registry ids → points and
 *                  byte records handed to a sink; counts what was accepted and dropped
 *   otlp_body.c    request bodies: gzip/deflate/zstd with a size and ratio limit,
 *                  unpacking protobuf or JSON, and the encoded responses
 *   otlp_http.c    OTLP/HTTP over libmicrohttpd, driven from the receiver's own thread
 *   otlp_grpc.c    OTLP/gRPC over nghttp2 (h2c), same thread
 *   otlp.c         the component: config, sockets, the poll loop, admission
 *
 * The decoder does not know about rings: a sink takes its output. The receiver's sink
 * is the runtime's rctx; the fuzz target and the benchmark use sinks of their own.
 */
#ifndef DBI_OTLP_INT_H
#define DBI_OTLP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dbi/common.h"
#include "dbi/record.h"
#include "dbi/registry.h"
#include "opentelemetry/proto/collector/logs/v1/logs_service.pb-c.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

/* ---- decode → sink ---- */

enum otlp_signal { OTLP_METRICS = 0, OTLP_LOGS = 1, OTLP_TRACES = 2, OTLP_NSIGNALS };

/* Why an item (data point, log record, span) was not accepted. */
enum otlp_drop {
	OTLP_DROP_SERIES_LIMIT, /* the registry refused a new series (runtime.max_series) */
	OTLP_DROP_INVALID,      /* malformed: no value, bucket counts that do not match, no name */
	OTLP_DROP_ATTRIBUTES,   /* attribute set too large to intern (> DBI_ATTRS_MAX or 16 KiB) */
	OTLP_DROP_TOO_LARGE,    /* one record larger than a byte ring can carry */
	OTLP_DROP_PIPELINE,     /* the pipeline stayed full in the middle of a large request */
	OTLP_NDROPS
};
const char *otlp_drop_name(enum otlp_drop d);

struct otlp_sink {
	void *cls;
	/* DBI_OK, or DBI_AGAIN when the pipeline stayed full (the decoder then stops emitting) */
	int (*point)(void *cls, struct dbi_point *p, uint64_t route);
	/* header filled in by the sink; NULL when full (as above) */
	void *(*reserve)(void *cls, uint32_t type, uint32_t len, uint64_t route);
	void (*commit)(void *cls, void *rec);
	uint32_t max_record; /* largest record reserve() can take */
};

struct otlp_result {
	uint64_t items;    /* data points, log records or spans in the request */
	uint64_t accepted; /* handed to the sink */
	uint64_t dropped[OTLP_NDROPS];
	char msg[256]; /* why, for partial_success.error_message; "" when nothing dropped */
};

static inline uint64_t otlp_result_rejected(const struct otlp_result *r)
{
	uint64_t n = 0;
	for (int i = 0; i < OTLP_NDROPS; i++)
		n += r->dropped[i];
	return n;
}

struct otlp_dec;

struct otlp_dec *otlp_dec_create(struct dbi_registry *reg);
void otlp_dec_destroy(struct otlp_dec *d);

/* What a request will put in the rings, for admission before anything is emitted. */
struct otlp_need {
	uint64_t items;  /* points + records */
	uint64_t points; /* slots in the point ring */
	uint64_t records;
};
void otlp_count(enum otlp_signal sig, const ProtobufCMessage *req, struct otlp_need *need);

/* Emit every item of an unpacked Export*ServiceRequest of signal sig into the sink. */
void otlp_emit(struct otlp_dec *d, enum otlp_signal sig, const ProtobufCMessage *req, const struct otlp_sink *s,
               struct otlp_result *r);

/* ---- bodies and responses (otlp_body.c) ---- */

enum otlp_encoding { OTLP_ENC_IDENTITY = 0, OTLP_ENC_GZIP, OTLP_ENC_DEFLATE, OTLP_ENC_ZSTD, OTLP_ENC_UNKNOWN };
/* Content-Encoding / grpc-encoding value → enum (NULL or "" = identity). */
enum otlp_encoding otlp_encoding_parse(const char *s);

/* Outcome of decompressing a body. */
enum { OTLP_BODY_OK = 0, OTLP_BODY_TOO_LARGE = 1, OTLP_BODY_BOMB = 2, OTLP_BODY_CORRUPT = 3 };

/*
 * Decompress in into *out (malloc'd, caller frees), stopping as soon as the output
 * would pass max_out bytes or the output/input ratio passes max_ratio once the output
 * is over 1 MiB. Identity returns a copy. On failure *out is NULL and why says why.
 */
int otlp_decompress(enum otlp_encoding enc, const uint8_t *in, size_t inlen, size_t max_out, unsigned max_ratio,
                    uint8_t **out, size_t *outlen, char *why, size_t whylen);

const ProtobufCMessageDescriptor *otlp_request_desc(enum otlp_signal sig);
/* protobuf (json = 0) or OTLP/JSON → request message; err says what was wrong. */
int otlp_unpack(enum otlp_signal sig, int json, const uint8_t *buf, size_t len, ProtobufCMessage **out,
                struct dbi_errbuf *err);

/*
 * The Export*ServiceResponse for a result: protobuf or JSON, malloc'd into *out.
 * partial_success is set when anything was rejected.
 */
int otlp_response(enum otlp_signal sig, int json, const struct otlp_result *r, uint8_t **out, size_t *len);

/* google.rpc.Status {code, message[, RetryInfo delay]} as protobuf or JSON, malloc'd. */
int otlp_status(int json, int code, const char *msg, uint64_t retry_delay_ns, uint8_t **out, size_t *len);

/* gRPC status codes used here. */
enum {
	GRPC_OK = 0,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
	GRPC_UNAUTHENTICATED = 16,
};

/* ---- the receiver core shared by the HTTP and gRPC front ends (otlp.c) ---- */

struct otlp_recv;

enum otlp_proto { OTLP_HTTP = 0, OTLP_GRPC = 1 };

/* Outcome classes of a request, for the stats and for each protocol's status code. */
enum otlp_outcome {
	OTLP_OUT_OK = 0,
	OTLP_OUT_PARTIAL,      /* 200 with partial_success */
	OTLP_OUT_BAD_REQUEST,  /* 400 / INVALID_ARGUMENT */
	OTLP_OUT_TOO_LARGE,    /* 413 / RESOURCE_EXHAUSTED */
	OTLP_OUT_FULL,         /* 429 / RESOURCE_EXHAUSTED (+RetryInfo): pipeline full */
	OTLP_OUT_PRESSURE,     /* 503 / UNAVAILABLE: memory limiter */
	OTLP_OUT_STOPPING,     /* 503 / UNAVAILABLE */
	OTLP_OUT_UNAUTHORIZED, /* 401 / UNAUTHENTICATED */
	OTLP_OUT_UNSUPPORTED,  /* 404, 405, 415 / UNIMPLEMENTED */
	OTLP_NOUTCOMES
};

/* A request body as it came off the wire, and what the core says about it. */
struct otlp_req {
	enum otlp_proto proto;
	enum otlp_signal sig;
	int json;
	enum otlp_encoding enc;
	const uint8_t *body;
	size_t len;
	/* out */
	enum otlp_outcome outcome;
	char msg[512]; /* error text (also for partial success) */
	struct otlp_result res;
};

/* Decompress, unpack, admit, emit. Fills req->outcome, req->msg, req->res. */
void otlp_handle(struct otlp_recv *r, struct otlp_req *req);
/* Counters for requests refused before otlp_handle (auth, routing, size). */
void otlp_count_outcome(struct otlp_recv *r, enum otlp_proto proto, enum otlp_outcome o);
void otlp_count_bytes_in(struct otlp_recv *r, size_t n);
/* Constant-time check of an Authorization header value against the configured token. */
int otlp_auth_ok(const struct otlp_recv *r, const char *authorization);
size_t otlp_max_msg(const struct otlp_recv *r, enum otlp_proto proto);
uint64_t otlp_retry_after_ns(const struct otlp_recv *r);
int otlp_stopping(const struct otlp_recv *r);
/* The signal is in a pipeline this receiver feeds (else 404 / UNIMPLEMENTED). */
int otlp_signal_enabled(const struct otlp_recv *r, enum otlp_signal sig);

/* ---- HTTP front end (otlp_http.c) ---- */

struct otlp_http;
struct dbi_endpoint;
int otlp_http_start(struct otlp_http **out, struct otlp_recv *r, const struct dbi_endpoint *ep,
                    unsigned max_connections, struct dbi_errbuf *err);
int otlp_http_fd(const struct otlp_http *h);        /* readable when MHD has work */
uint64_t otlp_http_timeout_ms(struct otlp_http *h); /* UINT64_MAX: none */
void otlp_http_run(struct otlp_http *h);
unsigned otlp_http_port(const struct otlp_http *h);
unsigned otlp_http_connections(const struct otlp_http *h);
void otlp_http_stop(struct otlp_http *h);

/* ---- gRPC front end (otlp_grpc.c) ---- */

struct otlp_grpc;
int otlp_grpc_start(struct otlp_grpc **out, struct otlp_recv *r, const struct dbi_endpoint *ep,
                    unsigned max_connections, unsigned max_streams, uint64_t max_idle_ns, struct dbi_errbuf *err);
/* Register the listening socket with epfd; connections register themselves. */
int otlp_grpc_attach(struct otlp_grpc *g, int epfd);
/* An epoll event whose data.ptr belongs to the gRPC front end. */
void otlp_grpc_event(struct otlp_grpc *g, void *ptr, uint32_t events);
unsigned otlp_grpc_port(const struct otlp_grpc *g);
unsigned otlp_grpc_connections(const struct otlp_grpc *g);
/* Close (GOAWAY) connections idle for longer than max_connection_idle. */
void otlp_grpc_sweep(struct otlp_grpc *g, uint64_t now_mono_ns);
/* Say goodbye (GOAWAY) to every client and close; used when the receiver stops. */
void otlp_grpc_close_all(struct otlp_grpc *g);
void otlp_grpc_stop(struct otlp_grpc *g);

#endif
