/*
 * cg_workloads.c — fixed, single-threaded workloads for the instruction-count regression
 * gate (bench/callgrind.sh): run under `valgrind --tool=callgrind`, their instruction
 * counts are repeatable on a noisy machine, unlike wall-clock time. Each workload does
 * its set-up, then the measured part inside dbi_cg_measured() (the script collects only
 * there), so set-up costs do not blur the number.
 *
 *   cg_workloads ring        10^6 points through a slot ring in bursts of 32
 *   cg_workloads bring       10^5 variable-length records through a byte ring
 *   cg_workloads registry    10^5 series lookups of already-interned series
 *   cg_workloads attrs       10^5 attribute-set encodings (8 attributes)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/record.h"
#include "dbi/registry.h"
#include "dbi/ring.h"

/* Collection is on exactly while this runs (callgrind --toggle-collect=dbi_cg_measured). */
__attribute__((noinline)) void dbi_cg_measured(void (*fn)(void *), void *arg);
__attribute__((noinline)) void dbi_cg_measured(void (*fn)(void *), void *arg)
{
	fn(arg);
	__asm__ volatile("" ::: "memory");
}

static volatile uint64_t sink;

static void ring_work(void *arg)
{
	struct dbi_ring *r = arg;
	struct dbi_point in[32], out[32];
	memset(in, 0, sizeof(in));
	for (int i = 0; i < 1000000 / 32; i++) {
		in[0].seq = (uint64_t)i;
		dbi_ring_enqueue_burst(r, in, 32, sizeof(struct dbi_point));
		dbi_ring_dequeue_burst(r, out, 32, sizeof(struct dbi_point));
		sink += out[0].seq;
	}
}

static void bring_work(void *arg)
{
	struct dbi_bring *r = arg;
	uint32_t len;
	for (int i = 0; i < 100000; i++) {
		uint32_t l = 48 + (uint32_t)(i % 17) * 16;
		void *p = dbi_bring_reserve(r, l);
		memset(p, i & 0xff, l);
		dbi_bring_publish(r);
		const uint8_t *q = dbi_bring_peek(r, &len);
		sink += q[0] + len;
		dbi_bring_release(r);
	}
}

struct reg_arg {
	struct dbi_registry *reg;
	uint32_t metric, res, scope, attrs[1000];
};

static void registry_work(void *arg)
{
	struct reg_arg *a = arg;
	for (int i = 0; i < 100000; i++)
		sink += dbi_series_intern(a->reg, a->metric, a->res, a->scope, a->attrs[i % 1000]);
}

static void attrs_work(void *arg)
{
	(void)arg;
	uint8_t buf[1024];
	char v[8][16];
	for (int k = 0; k < 8; k++)
		snprintf(v[k], sizeof(v[k]), "value-%d", k);
	for (int i = 0; i < 100000; i++) {
		struct dbi_attr a[8] = {
		        {.key = "postgresql.table.name", .type = DBI_AT_STR, .v.s = v[0]},
		        {.key = "postgresql.database.name", .type = DBI_AT_STR, .v.s = v[1]},
		        {.key = "server.address", .type = DBI_AT_STR, .v.s = v[2]},
		        {.key = "server.port", .type = DBI_AT_INT, .v.i = 5432},
		        {.key = "postgresql.schema.name", .type = DBI_AT_STR, .v.s = v[3]},
		        {.key = "state", .type = DBI_AT_STR, .v.s = v[4]},
		        {.key = "service.instance.id", .type = DBI_AT_STR, .v.s = v[5]},
		        {.key = "i", .type = DBI_AT_INT, .v.i = i},
		};
		sink += dbi_attrs_encode(buf, sizeof(buf), a, 8);
	}
}

int main(int argc, char **argv)
{
	const char *w = argc > 1 ? argv[1] : "";
	if (strcmp(w, "ring") == 0) {
		void *mem = NULL;
		if (posix_memalign(&mem, 64, dbi_ring_memsize(1024, sizeof(struct dbi_point))))
			return 1;
		dbi_ring_init(mem, "cg", 1024, sizeof(struct dbi_point));
		dbi_cg_measured(ring_work, mem);
		free(mem);
	} else if (strcmp(w, "bring") == 0) {
		void *mem = NULL;
		if (posix_memalign(&mem, 64, dbi_bring_memsize(1 << 16)))
			return 1;
		dbi_bring_init(mem, "cg", 1 << 16);
		dbi_cg_measured(bring_work, mem);
		free(mem);
	} else if (strcmp(w, "registry") == 0) {
		static struct reg_arg a;
		a.reg = dbi_registry_create(0);
		struct dbi_metric_def d = {.name = "postgresql.blocks_read", .unit = "1", .kind = DBI_MK_SUM};
		a.metric = dbi_metric_intern(a.reg, &d);
		a.res = dbi_attrs_intern(a.reg, NULL, 0);
		a.scope = dbi_scope_intern(a.reg, "cg", "1");
		for (int i = 0; i < 1000; i++) {
			struct dbi_attr at = {.key = "i", .type = DBI_AT_INT, .v.i = i};
			a.attrs[i] = dbi_attrs_intern(a.reg, &at, 1);
			dbi_series_intern(a.reg, a.metric, a.res, a.scope, a.attrs[i]);
		}
		dbi_cg_measured(registry_work, &a);
		dbi_registry_destroy(a.reg);
	} else if (strcmp(w, "attrs") == 0) {
		dbi_cg_measured(attrs_work, NULL);
	} else {
		fprintf(stderr, "usage: cg_workloads ring|bring|registry|attrs\n");
		return 64;
	}
	return 0;
}
