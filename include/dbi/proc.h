/*
 * proc.h — facts about this process and machine from /proc and /sys: resident memory,
 * total memory (cgroup-aware), CPU time. Used by the memory limiter, self-telemetry
 * and dbi-loadgen.
 */
#ifndef DBI_PROC_H
#define DBI_PROC_H

#include <stdint.h>

uint64_t dbi_proc_rss_bytes(void);
/* The cgroup v2 memory limit when one is set, else physical memory. */
uint64_t dbi_proc_total_memory(void);
/* User + system CPU time of the whole process, ns. */
uint64_t dbi_proc_cpu_ns(void);

#endif
