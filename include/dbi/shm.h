/*
 * shm.h — the collector's shared-memory segment: one per instance, a file in /dev/shm
 * (or hugetlbfs) named after the instance, mode 0600. It starts with a versioned header,
 * then a directory of named regions (rings, byte rings, stats blocks, circuit states),
 * then the regions. The collector maps it read-write; dbi-stat maps it PROT_READ and
 * re-checks pid and generation to notice restarts and reloads.
 *
 * Page modes, tried in this order under `hugepages: auto`: hugetlbfs file (2 MiB pages),
 * transparent huge pages via madvise (when the kernel allows THP for shmem), normal
 * pages. `on` demands hugetlbfs, `off` uses normal pages. The mode used is recorded.
 *
 * The running collector holds an exclusive flock on the file: a second collector with the
 * same instance name is refused; a file nobody holds is a stale leftover of a crash and
 * is replaced.
 */
#ifndef DBI_SHM_H
#define DBI_SHM_H

#include <stdatomic.h>
#include <stdint.h>

#include "dbi/common.h"

#define DBI_SHM_MAGIC 0x4442494d454d3031ULL /* "DBIMEM01" */
#define DBI_SHM_VERSION 1                   /* layout version written by this build */
#define DBI_SHM_COMPAT 1                    /* oldest reader version that can read it */
#define DBI_SHM_NAME_MAX 64
#define DBI_SHM_REGION_NAME 56
#define DBI_SHM_MAX_REGIONS 4096
#define DBI_SHM_DEFAULT_SIZE (64ULL << 20) /* when dbi_shm_opts.size is 0 */
#define DBI_SHM_ALIGN 64                   /* every region starts on a cache line */

enum dbi_page_mode { DBI_PAGES_NORMAL = 0, DBI_PAGES_THP = 1, DBI_PAGES_HUGETLB = 2 };
const char *dbi_page_mode_name(enum dbi_page_mode m);

enum dbi_region_kind {
	DBI_REGION_FREE = 0,     /* slot unused (after a reload reset) */
	DBI_REGION_RING = 1,     /* struct dbi_ring */
	DBI_REGION_BRING = 2,    /* struct dbi_bring */
	DBI_REGION_STATS = 3,    /* struct dbi_stats_block */
	DBI_REGION_CIRCUIT = 4,  /* circuit breaker states (PostgreSQL receiver) */
	DBI_REGION_THREAD = 5,   /* struct dbi_shm_thread: per-thread heartbeat and cpu */
	DBI_REGION_PIPELINE = 6, /* struct dbi_shm_pipeline */
	DBI_REGION_BLOB = 7,     /* component-defined */
};
const char *dbi_region_kind_name(enum dbi_region_kind k);

struct dbi_shm_region {
	char name[DBI_SHM_REGION_NAME]; /* "ring:loadgen#0->proc#0", "stats:batch@metrics#0" */
	uint32_t kind;                  /* enum dbi_region_kind */
	uint32_t flags;
	uint64_t offset; /* from the start of the segment */
	uint64_t size;
	char owner[DBI_SHM_REGION_NAME]; /* producer / component id, for display */
	char peer[DBI_SHM_REGION_NAME];  /* consumer id for rings */
};

struct dbi_shm_header {
	uint64_t magic;
	uint32_t version;
	uint32_t compat_version;
	uint64_t size;        /* whole segment */
	uint32_t header_size; /* sizeof(struct dbi_shm_header) */
	uint32_t region_size; /* sizeof(struct dbi_shm_region) */
	char instance[DBI_SHM_NAME_MAX];
	char collector_version[64];
	int32_t pid;
	uint32_t page_mode; /* enum dbi_page_mode */
	uint64_t start_wall_ns;
	_Atomic uint64_t heartbeat_wall_ns; /* updated by the main thread every ~100 ms */
	_Atomic uint64_t generation;        /* +1 on every layout change (reload) */
	_Atomic uint32_t nregions;          /* directory entries in use; published with release */
	uint32_t max_regions;
	uint64_t dir_offset;
	_Atomic uint64_t alloc_offset; /* bump pointer for regions */
	_Atomic uint32_t state;        /* enum dbi_run_state: starting/running/reloading/stopping */
	uint32_t reserved0;
	uint64_t pidns_ino; /* inode of the writer's pid namespace: pid liveness is only checked in the same one */
	uint64_t reserved[15];
};

enum dbi_run_state { DBI_RUN_STARTING = 0, DBI_RUN_RUNNING, DBI_RUN_RELOADING, DBI_RUN_STOPPING, DBI_RUN_STOPPED };
const char *dbi_run_state_name(enum dbi_run_state st);

/* Per-thread region: the runtime's threads publish liveness and work here. */
struct dbi_shm_thread {
	char name[48]; /* "proc#0", "exp:otlphttp/newrelic" */
	int32_t tid;
	int32_t cpu; /* pinned CPU, -1 if not pinned */
	int32_t numa_node;
	uint32_t role;                      /* enum dbi_comp_kind, or 0 for runtime threads */
	_Atomic uint64_t heartbeat_mono_ns; /* loop iteration */
	_Atomic uint64_t busy_ns;           /* time spent working (not waiting) */
	_Atomic uint64_t allocated_bytes;   /* jemalloc thread.allocated: steady state means flat */
	_Atomic uint64_t cpu_ns;            /* thread CPU time */
};

struct dbi_shm;

struct dbi_shm_opts {
	const char *name;    /* instance name: "dbi.main" -> /dev/shm/dbi.main */
	const char *dir;     /* NULL: /dev/shm; hugetlbfs files go to the hugetlbfs mount found in
	                        /proc/mounts, or to dir itself when dir is a hugetlbfs mount */
	int hugepages;       /* enum dbi_hugepages from config.h */
	uint64_t size;       /* bytes (0: DBI_SHM_DEFAULT_SIZE); rounded up to the page size */
	const char *version; /* collector version string for the header */
};

/*
 * Create the segment for this collector. Fails with a clear message when another live
 * collector holds the name; replaces a stale file left by a crash (logged).
 */
int dbi_shm_create(struct dbi_shm **out, const struct dbi_shm_opts *o, struct dbi_errbuf *err);
/* Unmap and remove the file (clean shutdown). */
void dbi_shm_destroy(struct dbi_shm *s);

/*
 * Carve a region out of the segment and list it in the directory. Returns a pointer
 * aligned to 64 bytes (zeroed), or NULL when the segment or the directory is full.
 * Called by one thread (the runtime's main thread), like dbi_shm_reset.
 */
void *dbi_shm_alloc(struct dbi_shm *s, enum dbi_region_kind kind, const char *name, uint64_t size, const char *owner,
                    const char *peer);
/* Forget every region (after a reload has stopped all threads) and bump generation. */
void dbi_shm_reset(struct dbi_shm *s);
uint64_t dbi_shm_free_bytes(const struct dbi_shm *s);

struct dbi_shm_header *dbi_shm_header(struct dbi_shm *s);
void dbi_shm_heartbeat(struct dbi_shm *s);
void dbi_shm_set_state(struct dbi_shm *s, enum dbi_run_state st);
const char *dbi_shm_path(const struct dbi_shm *s);

/* ---- readers (dbi-stat, tests) ---- */

/*
 * Attach read-only by instance name. Errors distinguish: no collector (no file, or a
 * stale file nobody holds), incompatible version, permission denied.
 */
enum dbi_attach_status {
	DBI_ATTACH_OK = 0,
	DBI_ATTACH_NOENT,
	DBI_ATTACH_STALE,
	DBI_ATTACH_INCOMPAT,
	DBI_ATTACH_ERR,
	DBI_ATTACH_PERM, /* the segment exists but this user may not open it (mode 0600) */
};
int dbi_shm_attach(struct dbi_shm **out, const char *name, const char *dir, enum dbi_attach_status *st,
                   struct dbi_errbuf *err);
void dbi_shm_detach(struct dbi_shm *s);
/* 1 if the file under the name is no longer the one attached (collector restarted). */
int dbi_shm_replaced(const struct dbi_shm *s);
/*
 * 1 while the collector that wrote the segment still runs (holds its lock, and its pid
 * exists when we share its pid namespace); 0 once it has died without cleaning up.
 */
int dbi_shm_alive(const struct dbi_shm *s);
/* The live directory; *n entries are valid. Re-read it when the generation changes. */
const struct dbi_shm_region *dbi_shm_regions(const struct dbi_shm *s, uint32_t *n);
/*
 * Copy the directory consistently: up to max entries into out, *n of them, taken within
 * one generation (returned in *generation). DBI_AGAIN if a reload kept changing it.
 */
int dbi_shm_regions_snapshot(const struct dbi_shm *s, struct dbi_shm_region *out, uint32_t max, uint32_t *n,
                             uint64_t *generation);
/* Pointer to a region's memory, or NULL if the entry points outside the mapping. */
const void *dbi_shm_region_ptr(const struct dbi_shm *s, const struct dbi_shm_region *r);

#endif
