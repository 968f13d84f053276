/*
 * clock.h — time sources. Monotonic time for intervals and deadlines, wall time
 * (Unix epoch ns) for data timestamps; both cheap (vDSO clock_gettime).
 */
#ifndef DBI_CLOCK_H
#define DBI_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t dbi_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline uint64_t dbi_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Sleep for ns nanoseconds (restarts on EINTR unless *stop becomes nonzero). */
void dbi_sleep_ns(uint64_t ns);

/* Format a duration in ns as Go-style text ("1m30s", "250ms") into buf. */
const char *dbi_fmt_duration(uint64_t ns, char *buf, size_t len);

/* RFC 3339 UTC timestamp with milliseconds. */
const char *dbi_fmt_time(uint64_t wall_ns, char *buf, size_t len);

#endif
