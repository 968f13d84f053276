/*
 * pg_breaker.c — the receiver's seam to the per-target circuit breakers
 * (include/dbi/circuit.h, src/core/circuit.c): the engine asks dbi_pg_breaker_allow()
 * before each scrape and reports with dbi_pg_breaker_record() after it; nothing else in
 * the receiver knows about circuits. A circuit is per server (`host:port`, the
 * service.instance.id), so targets reaching one server as different roles share it.
 * When the table is full (more targets than its capacity after a reload) a target runs
 * without a circuit: always allowed, as with `circuit_breaker.enabled: false`.
 */
#include "dbi/circuit.h"
#include "dbi/log.h"

#include "pg_int.h"

void dbi_pg_breaker_init(struct pg_breaker *b, struct dbi_pg *pg, const char *target, uint32_t resource)
{
	b->c = pg->circuits ? dbi_circuit_get(pg->circuits, target) : NULL;
	b->have_series = b->c && dbi_circuit_series_intern(pg->reg, resource, pg->scope, target, &b->series) == DBI_OK;
}

int dbi_pg_breaker_allow(struct pg_breaker *b, uint64_t now_wall)
{
	return b->c ? (int)dbi_circuit_allow(b->c, now_wall) : DBI_CIRCUIT_ALLOW;
}

void dbi_pg_breaker_record(struct pg_breaker *b, int result, uint64_t duration_ns, uint64_t now_wall, const char *error)
{
	if (b->c)
		dbi_circuit_record(b->c, (enum dbi_circuit_result)result, duration_ns, now_wall,
		                   error && *error ? error : NULL);
}

unsigned dbi_pg_breaker_points(const struct pg_breaker *b, uint64_t now_wall, struct dbi_point *out, uint64_t *routes)
{
	if (!b->c || !b->have_series)
		return 0;
	unsigned n = dbi_circuit_points(b->c, &b->series, now_wall, out);
	for (unsigned i = 0; i < n; i++)
		routes[i] = b->series.route[i];
	return n;
}
