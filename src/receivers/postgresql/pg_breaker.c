/*
 * pg_breaker.c — the receiver's seam to the per-target circuit breaker
 * (include/dbi/circuit.h, implemented in src/core/circuit.c by its own module).
 *
 * The engine asks dbi_pg_breaker_allow() before each scrape and reports with
 * dbi_pg_breaker_record() after it; nothing else in the receiver knows about circuits.
 * Until the circuit module's functions exist on main, this seam answers ALLOW and only
 * remembers the last result: it is a pass-through, not a second breaker. Wiring the
 * real one in touches only this file.
 */
#include "dbi/circuit.h"

#include "pg_int.h"

int dbi_pg_breaker_allow(struct pg_breaker *b, const char *target, uint64_t now_wall)
{
	(void)b;
	(void)target;
	(void)now_wall;
	return DBI_CIRCUIT_ALLOW;
}

void dbi_pg_breaker_record(struct pg_breaker *b, const char *target, int result, uint64_t duration_ns,
                           const char *error)
{
	(void)target;
	(void)error;
	b->last_result = result;
	b->last_ns = duration_ns;
}
