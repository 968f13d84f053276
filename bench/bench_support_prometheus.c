/*
 * bench_support_prometheus.c — the C side of bench_prometheus.cc (see
 * bench_prometheus.h): a real `prometheus` exporter instance over a registry of
 * PostgreSQL-like counter series, fed through its consume callback, rendered with
 * the exporter's own functions and scraped over loopback TCP through its HTTP server.
 * The calling thread plays the exporter thread.
 */
#include "bench_prometheus.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../src/exporters/prometheus/prom_int.h"
#include "dbi/clock.h"

struct dbi_bench_prom {
	struct dbi_registry *reg;
	struct prom_cfg cfg;
	struct dbi_stats_block *blk;
	struct dbi_stats st;
	struct dbi_inst inst;
	struct prom *p;
	uint32_t *ids;
	uint32_t n;
	struct dbi_point *pts;
	int64_t value;
	char *rx;
	size_t rx_cap;
};

struct dbi_bench_prom *dbi_bench_prom_new(uint32_t nseries)
{
	struct dbi_errbuf err;
	struct dbi_bench_prom *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	dbi_err_clear(&err);
	b->n = nseries;
	b->reg = dbi_registry_create(nseries + 1000);
	b->blk = calloc(1, sizeof(*b->blk));
	b->ids = calloc(nseries, sizeof(*b->ids));
	b->pts = calloc(nseries, sizeof(*b->pts));
	b->rx_cap = 64u << 20;
	b->rx = malloc(b->rx_cap);
	if (!b->reg || !b->blk || !b->ids || !b->pts || !b->rx ||
	    dbi_conf_defaults(dbi_exporter_prometheus.keys, &b->cfg, &err) != DBI_OK)
		goto fail;
	b->cfg.endpoint.port = 0;
	if (dbi_stats_init(&b->st, b->blk, DBI_SK_EXPORTER, "prometheus", "prometheus",
	                   dbi_exporter_prometheus.stats) != DBI_OK)
		goto fail;
	b->inst = (struct dbi_inst){
	        .id = "prometheus", .desc = &dbi_exporter_prometheus, .cfg = &b->cfg, .reg = b->reg, .stats = &b->st};
	void *state = NULL;
	if (dbi_exporter_prometheus.create(&b->inst, &state, &err) != DBI_OK)
		goto fail;
	b->p = state;

	/* like the PostgreSQL receiver: a resource per server, per-database/per-table series */
	struct dbi_metric_def md = {.name = "postgresql.table.tuples.inserted",
	                            .unit = "{tuple}",
	                            .description = "Rows inserted into the table.",
	                            .kind = DBI_MK_SUM,
	                            .monotonic = 1,
	                            .temporality = DBI_TEMP_CUMULATIVE};
	uint32_t metric = dbi_metric_intern(b->reg, &md);
	uint32_t scope = dbi_scope_intern(b->reg, "dbi/postgresql", "0.1.0");
	uint32_t res = 0;
	for (uint32_t i = 0; i < nseries; i++) {
		char host[64], inst[80], table[64];
		if (i % 100 == 0) {
			snprintf(host, sizeof(host), "pg-%05u.db.example.internal", i / 100);
			snprintf(inst, sizeof(inst), "%s:5432", host);
			struct dbi_attr ra[] = {
			        {.key = "server.address", .type = DBI_AT_STR, .v.s = host},
			        {.key = "server.port", .type = DBI_AT_INT, .v.i = 5432},
			        {.key = "service.instance.id", .type = DBI_AT_STR, .v.s = inst},
			        {.key = "service.name", .type = DBI_AT_STR, .v.s = "postgresql"},
			};
			res = dbi_attrs_intern(b->reg, ra, DBI_ARRAY_LEN(ra));
		}
		snprintf(table, sizeof(table), "public.orders_%04u", i % 100);
		struct dbi_attr pa[] = {
		        {.key = "postgresql.database.name", .type = DBI_AT_STR, .v.s = "app"},
		        {.key = "postgresql.table.name", .type = DBI_AT_STR, .v.s = table},
		};
		b->ids[i] = dbi_series_intern(b->reg, metric, res, scope, dbi_attrs_intern(b->reg, pa, 2));
		if (!b->ids[i])
			goto fail;
	}
	dbi_bench_prom_update(b);
	return b;
fail:
	dbi_bench_prom_free(b);
	return NULL;
}

void dbi_bench_prom_free(struct dbi_bench_prom *b)
{
	if (!b)
		return;
	if (b->p) {
		dbi_exporter_prometheus.stop(b->p);
		dbi_exporter_prometheus.destroy(b->p);
	}
	dbi_conf_release(dbi_exporter_prometheus.keys, &b->cfg);
	dbi_registry_destroy(b->reg);
	free(b->blk);
	free(b->ids);
	free(b->pts);
	free(b->rx);
	free(b);
}

uint64_t dbi_bench_prom_update(struct dbi_bench_prom *b)
{
	uint64_t now = dbi_wall_ns();
	b->value++;
	for (uint32_t i = 0; i < b->n; i++)
		b->pts[i] = (struct dbi_point){.series = b->ids[i],
		                               .start_ns = 1700000000000000000ULL,
		                               .time_ns = now,
		                               .v.i = b->value * 1000 + i,
		                               .kind = DBI_PK_SUM};
	struct dbi_batch batch = {.signal = DBI_SIG_METRICS, .pts = b->pts, .npts = b->n};
	dbi_exporter_prometheus.consume(b->p, &batch, NULL);
	return b->n;
}

size_t dbi_bench_prom_render(struct dbi_bench_prom *b, int om, int gzip)
{
	int fmt = om ? PROM_FMT_OM : PROM_FMT_TEXT;
	uint64_t now = dbi_mono_ns();
	atomic_store(&b->p->want_gz_until, gzip ? now + 60 * DBI_NSEC_PER_SEC : 0);
	if (prom_render_publish(b->p, PROM_FMT_BIT(fmt), now) != DBI_OK)
		return 0;
	const struct prom_page *pg = atomic_load(&b->p->cur);
	return gzip ? pg->gz[fmt].len : pg->body[fmt].len;
}

unsigned dbi_bench_prom_serve(struct dbi_bench_prom *b)
{
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	if (dbi_exporter_prometheus.start(b->p, &err) != DBI_OK)
		return 0;
	/* a page for both formats, compressed, newer than the last update: scrapes never wait */
	atomic_store(&b->p->want_gz_until, dbi_mono_ns() + 3600 * DBI_NSEC_PER_SEC);
	prom_render_publish(b->p, PROM_FMT_BIT(PROM_FMT_TEXT) | PROM_FMT_BIT(PROM_FMT_OM), dbi_mono_ns());
	return prom_port(b->p);
}

size_t dbi_bench_prom_scrape(struct dbi_bench_prom *b, int om, int gzip)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)prom_port(b->p))};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	size_t got = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		char req[512];
		int n = snprintf(req, sizeof(req),
		                 "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s%s\r\n",
		                 om ? "Accept: application/openmetrics-text;version=1.0.0\r\n" : "",
		                 gzip ? "Accept-Encoding: gzip\r\n" : "");
		if (write(fd, req, (size_t)n) == n) {
			for (;;) {
				ssize_t k = read(fd, b->rx, b->rx_cap);
				if (k <= 0)
					break;
				got += (size_t)k;
			}
		}
	}
	close(fd);
	return got;
}
