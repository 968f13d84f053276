/*
 * telemetry.h — the collector's own metrics on a Prometheus endpoint
 * (service.telemetry.metrics.address, default 127.0.0.1:8888, path /metrics).
 *
 * Everything comes from the shared-memory segment, the same source dbi-stat reads:
 * every stats block (components, threads, runtime), every ring and byte ring, every
 * thread record, plus process RSS, CPU and uptime. Names start with dbi_; see
 * docs/self-telemetry.md. The page is rendered when scraped, on the HTTP server's own
 * thread, from snapshots: it never touches a pipeline thread.
 */
#ifndef DBI_TELEMETRY_H
#define DBI_TELEMETRY_H

#include <stddef.h>

#include "dbi/common.h"
#include "dbi/config.h"

struct dbi_shm;
struct dbi_telemetry;

/* Serve the segment's metrics on ep. DBI_ERR (with err) when the address cannot be bound. */
int dbi_telemetry_start(struct dbi_telemetry **out, struct dbi_shm *shm, const struct dbi_endpoint *ep,
                        struct dbi_errbuf *err);
void dbi_telemetry_stop(struct dbi_telemetry *t);
const struct dbi_endpoint *dbi_telemetry_endpoint(const struct dbi_telemetry *t);
unsigned dbi_telemetry_port(const struct dbi_telemetry *t);

/*
 * Render the page (Prometheus text 0.0.4) into a malloc'd buffer *out of *len bytes.
 * DBI_AGAIN when the segment kept changing (a reload), DBI_ERR when out of memory.
 */
int dbi_telemetry_render(struct dbi_shm *shm, char **out, size_t *len);

#endif
