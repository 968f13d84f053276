/*
 * clock.c — sleeping and time formatting for logs and --help.
 */
#include "dbi/clock.h"

#include <errno.h>
#include <stdio.h>

void dbi_sleep_ns(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

const char *dbi_fmt_duration(uint64_t ns, char *buf, size_t len)
{
	if (ns == 0)
		snprintf(buf, len, "0s");
	else if (ns % 3600000000000ULL == 0)
		snprintf(buf, len, "%lluh", (unsigned long long)(ns / 3600000000000ULL));
	else if (ns % 60000000000ULL == 0)
		snprintf(buf, len, "%llum", (unsigned long long)(ns / 60000000000ULL));
	else if (ns % 1000000000ULL == 0)
		snprintf(buf, len, "%llus", (unsigned long long)(ns / 1000000000ULL));
	else if (ns % 1000000ULL == 0)
		snprintf(buf, len, "%llums", (unsigned long long)(ns / 1000000ULL));
	else if (ns % 1000ULL == 0)
		snprintf(buf, len, "%lluus", (unsigned long long)(ns / 1000ULL));
	else
		snprintf(buf, len, "%lluns", (unsigned long long)ns);
	return buf;
}

const char *dbi_fmt_time(uint64_t wall_ns, char *buf, size_t len)
{
	time_t s = (time_t)(wall_ns / 1000000000ULL);
	struct tm tm;
	gmtime_r(&s, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	         tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)((wall_ns / 1000000ULL) % 1000));
	return buf;
}
