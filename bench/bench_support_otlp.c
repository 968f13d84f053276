/*
 * bench_support_otlp.c — the OTLP exporter's hot path for the benchmarks (see bench_support_otlp.h):
 * encode a batch with the otlphttp encoder and compress it with the exporter's own
 * compressor, exactly the work of consume() before the request is queued.
 */
#include "bench_support_otlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/exporters/otlphttp/compress.h"
#include "../src/exporters/otlphttp/otlp_enc.h"
#include "dbi/registry.h"

#define NBATCHES 8

struct dbi_bench_otlp {
	struct dbi_registry *reg;
	struct dbi_otlp_enc *enc;
	struct dbi_compressor comp;
	int compress;
	struct dbi_point *pts[NBATCHES];
	unsigned npts, next;
	struct dbi_obuf raw, wire;
};

static const char *metric_names[] = {
        "postgresql.backends",
        "postgresql.commits",
        "postgresql.rollbacks",
        "postgresql.blocks_read",
        "postgresql.db_size",
        "postgresql.rows",
        "postgresql.operations",
        "postgresql.deadlocks",
        "postgresql.temp_files",
        "postgresql.sequential_scans",
        "postgresql.index.scans",
        "postgresql.table.size",
        "postgresql.wal.lag",
        "postgresql.connection.max",
        "postgresql.bgwriter.buffers.writes",
        "postgresql.table.vacuum.count",
};

struct dbi_bench_otlp *dbi_bench_otlp_new(unsigned targets, unsigned metrics, unsigned series_per_metric,
                                          unsigned batch_points, int shuffled, int compression, int level, int newrelic)
{
	struct dbi_bench_otlp *b = calloc(1, sizeof(*b));
	unsigned nseries = targets * metrics * series_per_metric;
	uint32_t *series = calloc(nseries, sizeof(*series));
	uint8_t *is_sum = calloc(nseries, 1);
	b->reg = dbi_registry_create(nseries + 16);
	uint32_t scope = dbi_scope_intern(b->reg, "dbi/postgresql", "0.1.0");
	unsigned k = 0;
	for (unsigned t = 0; t < targets; t++) {
		char host[64], inst[80];
		snprintf(host, sizeof(host), "pg-%04u.db.example.internal", t);
		snprintf(inst, sizeof(inst), "%s:5432", host);
		struct dbi_attr ra[] = {
		        {.key = "server.address", .type = DBI_AT_STR, .v.s = host},
		        {.key = "server.port", .type = DBI_AT_INT, .v.i = 5432},
		        {.key = "service.instance.id", .type = DBI_AT_STR, .v.s = inst},
		        {.key = "service.name", .type = DBI_AT_STR, .v.s = "postgresql"},
		        {.key = "postgresql.version", .type = DBI_AT_STR, .v.s = "15.6"},
		};
		uint32_t res = dbi_attrs_intern(b->reg, ra, 5);
		for (unsigned m = 0; m < metrics; m++) {
			char name[96];
			snprintf(name, sizeof(name), "%s%s", metric_names[m % 16], m >= 16 ? ".x" : "");
			if (m >= 16)
				snprintf(name, sizeof(name), "%s.%u", metric_names[m % 16], m / 16);
			struct dbi_metric_def md = {name,           "1", "", (m % 3) ? DBI_MK_SUM : DBI_MK_GAUGE, 1,
			                            DBI_TEMP_DELTA, 0};
			uint32_t mid = dbi_metric_intern(b->reg, &md);
			for (unsigned s = 0; s < series_per_metric; s++) {
				char db[32];
				snprintf(db, sizeof(db), "app_%u", s);
				struct dbi_attr pa[] = {
				        {.key = "postgresql.database.name", .type = DBI_AT_STR, .v.s = db},
				        {.key = "state", .type = DBI_AT_STR, .v.s = (s & 1) ? "active" : "idle"},
				};
				uint32_t attrs = dbi_attrs_intern(b->reg, pa, 2);
				is_sum[k] = (m % 3) != 0;
				series[k++] = dbi_series_intern(b->reg, mid, res, scope, attrs);
			}
		}
	}
	b->npts = batch_points;
	uint64_t rng = 0x9e3779b97f4a7c15ULL, t0 = 1700000000000000000ULL;
	unsigned cursor = 0;
	for (int i = 0; i < NBATCHES; i++) {
		b->pts[i] = calloc(batch_points, sizeof(struct dbi_point));
		for (unsigned j = 0; j < batch_points; j++) {
			unsigned s = cursor++ % nseries;
			if (shuffled) {
				rng ^= rng << 13;
				rng ^= rng >> 7;
				rng ^= rng << 17;
				s = (unsigned)(rng % nseries);
			}
			struct dbi_point *p = &b->pts[i][j];
			p->series = series[s];
			p->time_ns = t0 + (uint64_t)i * 10000000000ULL;
			if (is_sum[s]) {
				p->kind = DBI_PK_SUM;
				p->start_ns = t0 - 10000000000ULL;
				p->v.i = (int64_t)j * 37 + (int64_t)i * 1000;
			} else {
				p->kind = DBI_PK_GAUGE;
				p->flags = DBI_PF_DOUBLE;
				p->v.d = (double)(j % 1000) * 0.25;
			}
		}
	}
	free(series);
	free(is_sum);
	struct dbi_otlp_limits lim = DBI_NR_LIMITS_INIT;
	struct dbi_attr extra = {.key = "instrumentation.provider", .type = DBI_AT_STR, .v.s = "opentelemetry"};
	struct dbi_otlp_enc_opts o = {0};
	if (newrelic) {
		o.limits = &lim;
		o.res_extra = &extra;
		o.nres_extra = 1;
	}
	b->enc = dbi_otlp_enc_create(b->reg, &o);
	b->compress = compression != DBI_COMP_NONE;
	dbi_compressor_init(&b->comp, compression, level);
	return b;
}

void dbi_bench_otlp_free(struct dbi_bench_otlp *b)
{
	for (int i = 0; i < NBATCHES; i++)
		free(b->pts[i]);
	dbi_otlp_enc_destroy(b->enc);
	dbi_compressor_free(&b->comp);
	dbi_obuf_free(&b->raw);
	dbi_obuf_free(&b->wire);
	dbi_registry_destroy(b->reg);
	free(b);
}

uint64_t dbi_bench_otlp_run(struct dbi_bench_otlp *b)
{
	uint32_t n = 0;
	const struct dbi_point *p = b->pts[b->next++ % NBATCHES];
	if (dbi_otlp_enc_metrics(b->enc, p, b->npts, NULL, 0, &b->raw, &n) != DBI_OK)
		abort();
	/* "none" is a plain copy in the exporter too; skip it here so encode is measured alone */
	if (b->compress && dbi_compressor_run(&b->comp, b->raw.data, b->raw.len, &b->wire) != DBI_OK)
		abort();
	return n;
}

uint64_t dbi_bench_otlp_raw_bytes(const struct dbi_bench_otlp *b)
{
	return b->raw.len;
}

uint64_t dbi_bench_otlp_wire_bytes(const struct dbi_bench_otlp *b)
{
	return b->compress ? b->wire.len : b->raw.len;
}
