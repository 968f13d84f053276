/*
 * proc.c — process and machine facts (see proc.h).
 */
#include "dbi/proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int read_small(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (int)n;
}

uint64_t dbi_proc_rss_bytes(void)
{
	char buf[128];
	if (read_small("/proc/self/statm", buf, sizeof(buf)) <= 0)
		return 0;
	char *p = strchr(buf, ' ');
	if (!p)
		return 0;
	return strtoull(p + 1, NULL, 10) * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t dbi_proc_total_memory(void)
{
	char buf[64];
	if (read_small("/sys/fs/cgroup/memory.max", buf, sizeof(buf)) > 0 && strncmp(buf, "max", 3) != 0) {
		uint64_t v = strtoull(buf, NULL, 10);
		if (v)
			return v;
	}
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
}

uint64_t dbi_proc_cpu_ns(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ULL +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ULL;
}
