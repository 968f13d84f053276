/*
 * shm.c — the collector's shared-memory segment (see shm.h).
 *
 * A segment never appears under its name half-built: the file is created unnamed
 * (O_TMPFILE, or a hidden temporary name where that is unsupported), locked, sized,
 * prefaulted and given its header, and only then linked under the instance name.
 * On tmpfs only the header and directory are prefaulted at create; each region's pages
 * are faulted in when the region is allocated (startup and reloads, never the hot path),
 * so the headroom a segment keeps for reloads costs no memory until it is used. So a
 * file found under the name is either a live collector's (its flock is held) or the
 * leftover of one that died (nobody holds it); a stale file is replaced by unlinking it,
 * which leaves a dbi-stat still mapping the old inode able to notice the restart.
 *
 * Files live in the tmpfs directory (default /dev/shm) or, for huge pages, in the
 * hugetlbfs mount. Both places are checked on create (a stale file of the same name in
 * the other place is removed too) and on attach.
 */
#include "dbi/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <mntent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dbi/clock.h"
#include "dbi/config.h"
#include "dbi/log.h"

#define SHM_DEFAULT_DIR "/dev/shm"
#define SHM_CONVENTIONAL_HUGETLBFS "/dev/hugepages"
#define THP_SIZE_FALLBACK (2ULL << 20)
/* A dbi-stat liveness probe holds a shared lock for microseconds: retry before refusing. */
#define LOCK_RETRIES 20
#define LOCK_RETRY_NS (5 * DBI_NSEC_PER_MSEC)
#define MIB(x) ((unsigned long long)((x) >> 20))

struct dbi_shm {
	uint8_t *base;
	size_t map_size;
	struct dbi_shm_header *hdr;
	struct dbi_shm_region *dir;
	int fd;
	int writer;
	int32_t pid; /* the writer's pid when we attached or created */
	dev_t dev;
	ino_t ino;
	char name[DBI_SHM_NAME_MAX];
	char path[PATH_MAX];
};

/* Where an instance's file may live. */
struct shm_dirs {
	char tmpfs[PATH_MAX];
	char huge[PATH_MAX]; /* "" when no hugetlbfs is mounted */
	uint64_t huge_page;  /* bytes per page of that mount */
};

/* A segment file being built, not yet under its final name. */
struct seg_file {
	int fd;
	uint8_t *base;
	uint64_t size;
	char tmp[PATH_MAX]; /* hidden temporary name when O_TMPFILE was unavailable */
};

const char *dbi_page_mode_name(enum dbi_page_mode m)
{
	switch (m) {
	case DBI_PAGES_NORMAL:
		return "normal";
	case DBI_PAGES_THP:
		return "thp";
	case DBI_PAGES_HUGETLB:
		return "hugetlb";
	}
	return "?";
}

const char *dbi_run_state_name(enum dbi_run_state st)
{
	switch (st) {
	case DBI_RUN_STARTING:
		return "starting";
	case DBI_RUN_RUNNING:
		return "running";
	case DBI_RUN_RELOADING:
		return "reloading";
	case DBI_RUN_STOPPING:
		return "stopping";
	case DBI_RUN_STOPPED:
		return "stopped";
	}
	return "?";
}

const char *dbi_region_kind_name(enum dbi_region_kind k)
{
	static const char *const names[] = {"free", "ring", "bring", "stats", "circuit", "thread", "pipeline", "blob"};
	return (unsigned)k < DBI_ARRAY_LEN(names) ? names[k] : "?";
}

static uint64_t dir_offset(void)
{
	return DBI_ALIGN_UP(sizeof(struct dbi_shm_header), DBI_SHM_ALIGN);
}

static uint64_t regions_offset(uint32_t max_regions)
{
	return DBI_ALIGN_UP(dir_offset() + (uint64_t)max_regions * sizeof(struct dbi_shm_region), DBI_SHM_ALIGN);
}

static int check_name(const char *name, struct dbi_errbuf *err)
{
	size_t len = name ? strlen(name) : 0;
	/* a leading dot would collide with our hidden temporary files (and allows "..") */
	if (len == 0 || len >= DBI_SHM_NAME_MAX || strchr(name, '/') || name[0] == '.') {
		dbi_err_set(
		        err,
		        "invalid shared-memory instance name '%s': use 1-%d characters, no '/', not starting with '.'",
		        name ? name : "", DBI_SHM_NAME_MAX - 1);
		return DBI_ERR;
	}
	return DBI_OK;
}

static int join_path(char *out, size_t len, const char *dir, const char *name)
{
	int n = snprintf(out, len, "%s/%s", dir, name);
	return n > 0 && (size_t)n < len ? DBI_OK : DBI_ERR;
}

static uint64_t meminfo_value(const char *key)
{
	char line[256];
	size_t kl = strlen(key);
	uint64_t v = 0;
	FILE *f = fopen("/proc/meminfo", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtoull(line + kl + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static uint64_t default_huge_page(void)
{
	return meminfo_value("Hugepagesize") * 1024;
}

static int read_u64(const char *path, uint64_t *v)
{
	char buf[64];
	int rc = DBI_ERR;
	FILE *f = fopen(path, "re");
	if (!f)
		return DBI_ERR;
	if (fgets(buf, sizeof(buf), f)) {
		*v = strtoull(buf, NULL, 10);
		rc = DBI_OK;
	}
	fclose(f);
	return rc;
}

/* Huge pages of this size that a new mapping can still reserve (free minus promised). */
static uint64_t huge_pages_available(uint64_t page, uint64_t *total)
{
	char path[128];
	uint64_t free_pages = 0, resv = 0;
	unsigned long long kb = (unsigned long long)(page / 1024);
	*total = 0;
	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/free_hugepages", kb);
	if (read_u64(path, &free_pages) == DBI_OK) {
		snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/resv_hugepages", kb);
		read_u64(path, &resv);
		snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/nr_hugepages", kb);
		read_u64(path, total);
	} else if (page == default_huge_page()) {
		free_pages = meminfo_value("HugePages_Free");
		resv = meminfo_value("HugePages_Rsvd");
		*total = meminfo_value("HugePages_Total");
	}
	return free_pages > resv ? free_pages - resv : 0;
}

static int statfs_type(const char *path, uint32_t *type, uint64_t *bsize)
{
	struct statfs sf;
	if (statfs(path, &sf) != 0)
		return DBI_ERR;
	*type = (uint32_t)sf.f_type;
	*bsize = (uint64_t)sf.f_bsize; /* on hugetlbfs: the huge page size */
	return DBI_OK;
}

/* Prefer a mount with the default page size (the pool /proc/meminfo and nr_hugepages describe). */
static void find_hugetlbfs(char *out, size_t len, uint64_t *page)
{
	char buf[4096];
	struct mntent me, *m;
	uint64_t def = default_huge_page();
	FILE *f = setmntent("/proc/mounts", "re");
	out[0] = '\0';
	*page = 0;
	if (!f)
		return;
	while ((m = getmntent_r(f, &me, buf, sizeof(buf)))) {
		uint32_t type;
		uint64_t ps;
		if (strcmp(m->mnt_type, "hugetlbfs") != 0 || statfs_type(m->mnt_dir, &type, &ps) != DBI_OK)
			continue;
		int better = !out[0] || (ps == def && *page != def) ||
		             (ps == *page && strcmp(m->mnt_dir, SHM_CONVENTIONAL_HUGETLBFS) == 0);
		if (better && strlen(m->mnt_dir) < len) {
			dbi_strlcpy(out, m->mnt_dir, len);
			*page = ps;
		}
	}
	endmntent(f);
}

static int resolve_dirs(const char *dir, struct shm_dirs *d, struct dbi_errbuf *err)
{
	uint32_t type;
	uint64_t bsize;
	memset(d, 0, sizeof(*d));
	dbi_strlcpy(d->tmpfs, SHM_DEFAULT_DIR, sizeof(d->tmpfs));
	if (dir && *dir) {
		if (strlen(dir) >= sizeof(d->tmpfs) - DBI_SHM_NAME_MAX - 16) {
			dbi_err_set(err, "shared-memory directory path is too long: %s", dir);
			return DBI_ERR;
		}
		if (statfs_type(dir, &type, &bsize) != DBI_OK) {
			dbi_err_set(err, "shared-memory directory %s: %s", dir, strerror(errno));
			return DBI_ERR;
		}
		/* A hugetlbfs dir holds only hugetlb files; normal pages then go to /dev/shm. */
		if (type == (uint32_t)HUGETLBFS_MAGIC) {
			dbi_strlcpy(d->huge, dir, sizeof(d->huge));
			d->huge_page = bsize;
			return DBI_OK;
		}
		dbi_strlcpy(d->tmpfs, dir, sizeof(d->tmpfs));
	}
	find_hugetlbfs(d->huge, sizeof(d->huge), &d->huge_page);
	return DBI_OK;
}

/* 1: someone holds the file's lock; 0: nobody does; -1: cannot tell. Never blocks. */
static int lock_held(int fd)
{
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return 0;
	}
	return errno == EWOULDBLOCK ? 1 : -1;
}

static int lock_exclusive(int fd)
{
	for (int i = 0; i < LOCK_RETRIES; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return DBI_OK;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return DBI_ERR;
		dbi_sleep_ns(LOCK_RETRY_NS);
	}
	return DBI_ERR;
}

static uint64_t self_pidns(void)
{
	struct stat st;
	return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* 1 alive, 0 gone, -1 unknown: another pid namespace's pid means nothing here. */
static int pid_alive(int32_t pid, uint64_t pidns)
{
	if (pid <= 0 || pidns == 0 || pidns != self_pidns())
		return -1;
	if (kill(pid, 0) == 0 || errno == EPERM)
		return 1;
	return errno == ESRCH ? 0 : -1;
}

static int read_header(int fd, struct dbi_shm_header *h)
{
	ssize_t r = pread(fd, h, sizeof(*h), 0);
	return r == (ssize_t)sizeof(*h) && h->magic == DBI_SHM_MAGIC ? DBI_OK : DBI_ERR;
}

/*
 * Make way for a new segment at path: nothing there is fine; a file nobody holds locked
 * is a dead collector's and is removed; a held one belongs to a running collector.
 */
static int clear_existing(const char *path, const char *name, struct dbi_errbuf *err)
{
	for (int attempt = 0; attempt < 4; attempt++) {
		struct dbi_shm_header h;
		struct stat a, b;
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			if (errno == ENOENT)
				return DBI_OK;
			dbi_err_set(err, "cannot check the existing shared-memory segment %s: %s", path,
			            strerror(errno));
			return DBI_ERR;
		}
		int is_segment = read_header(fd, &h) == DBI_OK;
		if (lock_exclusive(fd) != DBI_OK) {
			if (!is_segment) {
				dbi_err_set(err, "another process holds %s locked; cannot use instance name '%s'", path,
				            name);
			} else if (pid_alive(h.pid, h.pidns_ino) == 0) {
				dbi_err_set(
				        err,
				        "another dbi-collector (pid %d) is running with instance name '%s' (segment "
				        "%s); pid %d has exited but a process it started still holds the segment "
				        "open (find it with `fuser %s`)",
				        h.pid, name, path, h.pid, path);
			} else {
				dbi_err_set(
				        err,
				        "another dbi-collector (pid %d) is running with instance name '%s' (segment "
				        "%s)",
				        h.pid, name, path);
			}
			close(fd);
			return DBI_ERR;
		}
		/* Only our files carry the magic; never delete something else that took the name. */
		if (!is_segment) {
			dbi_err_set(err,
			            "%s exists but is not a dbi shared-memory segment; remove it or choose another "
			            "instance name than '%s'",
			            path, name);
			close(fd);
			return DBI_ERR;
		}
		if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
			close(fd); /* replaced while we waited for the lock: look again */
			continue;
		}
		DBI_LOGW("shm", "replacing stale shared-memory segment left by a collector that exited without cleanup",
		         "path=%s instance=%s pid=%d", path, name, h.pid);
		int rc = unlink(path) == 0 || errno == ENOENT ? DBI_OK : DBI_ERR;
		if (rc != DBI_OK)
			dbi_err_set(err, "cannot remove stale shared-memory segment %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	dbi_err_set(err, "shared-memory segment %s keeps being replaced; is another dbi-collector starting as '%s'?",
	            path, name);
	return DBI_ERR;
}

static void seg_file_discard(struct seg_file *f)
{
	if (f->base)
		munmap(f->base, f->size);
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp[0])
		unlink(f->tmp);
	f->base = NULL;
	f->fd = -1;
	f->tmp[0] = '\0';
}

/* An unnamed file in dir, locked by us before anyone can see it. */
static int seg_file_open(struct seg_file *f, const char *dir, const char *name, struct dbi_errbuf *err)
{
	f->tmp[0] = '\0';
	f->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (f->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		int n = snprintf(f->tmp, sizeof(f->tmp), "%s/.%s.%d.tmp", dir, name, (int)getpid());
		if (n < 0 || (size_t)n >= sizeof(f->tmp)) {
			f->tmp[0] = '\0';
			dbi_err_set(err, "shared-memory path too long in %s", dir);
			return DBI_ERR;
		}
		unlink(f->tmp); /* a leftover of an earlier process with our pid */
		f->fd = open(f->tmp, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (f->fd < 0)
			f->tmp[0] = '\0';
	}
	if (f->fd < 0) {
		dbi_err_set(err, "cannot create a shared-memory segment in %s: %s", dir, strerror(errno));
		return DBI_ERR;
	}
	if (flock(f->fd, LOCK_EX | LOCK_NB) != 0) {
		dbi_err_set(err, "cannot lock a new shared-memory segment in %s: %s", dir, strerror(errno));
		return DBI_ERR;
	}
	return DBI_OK;
}

static int seg_file_link(struct seg_file *f, const char *path)
{
	if (f->tmp[0]) {
		if (link(f->tmp, path) != 0)
			return DBI_ERR;
		unlink(f->tmp);
		f->tmp[0] = '\0';
		return DBI_OK;
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
		return DBI_OK;
	/* without /proc, AT_EMPTY_PATH works when we have CAP_DAC_READ_SEARCH */
	if (errno == ENOENT && linkat(f->fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
		return DBI_OK;
	return DBI_ERR;
}

static void hugetlb_advice(char *buf, size_t len, uint64_t need, uint64_t avail, uint64_t total, uint64_t page)
{
	if (page == default_huge_page())
		snprintf(buf, len,
		         "reserve them with `echo %llu > /proc/sys/vm/nr_hugepages` (vm.nr_hugepages in "
		         "/etc/sysctl.conf to keep it)",
		         (unsigned long long)(total + need - DBI_MIN(need, avail)));
	else
		snprintf(buf, len, "reserve them in /sys/kernel/mm/hugepages/hugepages-%llukB/nr_hugepages",
		         (unsigned long long)(page / 1024));
}

static int make_hugetlb(struct seg_file *f, const struct shm_dirs *d, const char *name, uint64_t size,
                        struct dbi_errbuf *err)
{
	char advice[200];
	uint64_t total, page = d->huge_page ? d->huge_page : default_huge_page();
	if (!d->huge[0] || !page) {
		dbi_err_set(err,
		            "huge pages: no hugetlbfs is mounted (none in /proc/mounts); mount one with `mount -t "
		            "hugetlbfs none %s` and reserve pages with `echo N > /proc/sys/vm/nr_hugepages`",
		            SHM_CONVENTIONAL_HUGETLBFS);
		return DBI_ERR;
	}
	uint64_t bytes = DBI_ALIGN_UP(size, page), need = bytes / page;
	uint64_t avail = huge_pages_available(page, &total);
	if (avail < need) {
		hugetlb_advice(advice, sizeof(advice), need, avail, total, page);
		dbi_err_set(err,
		            "huge pages: a %llu MiB segment needs %llu huge pages of %llu kB but only %llu are free "
		            "(%llu reserved in total); %s",
		            MIB(bytes), (unsigned long long)need, (unsigned long long)(page / 1024),
		            (unsigned long long)avail, (unsigned long long)total, advice);
		return DBI_ERR;
	}
	if (seg_file_open(f, d->huge, name, err) != DBI_OK)
		return DBI_ERR;
	if (ftruncate(f->fd, (off_t)bytes) != 0) {
		dbi_err_set(err, "huge pages: cannot size a segment in %s: %s", d->huge, strerror(errno));
		return DBI_ERR;
	}
	/* MAP_POPULATE: the reservation is taken and every page faulted in now, not on the hot path */
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, f->fd, 0);
	if (p == MAP_FAILED) {
		hugetlb_advice(advice, sizeof(advice), need, 0, total, page);
		dbi_err_set(err, "huge pages: cannot map %llu MiB from %s: %s; %s", MIB(bytes), d->huge,
		            strerror(errno), advice);
		return DBI_ERR;
	}
	f->base = p;
	f->size = bytes;
	return DBI_OK;
}

/* The [selected] word of a sysfs policy file such as shmem_enabled. */
static int sysfs_choice(const char *path, char *out, size_t len)
{
	char buf[256];
	FILE *f = fopen(path, "re");
	int rc = DBI_ERR;
	if (!f)
		return DBI_ERR;
	if (fgets(buf, sizeof(buf), f)) {
		char *a = strchr(buf, '['), *b = a ? strchr(a, ']') : NULL;
		if (a && b && (size_t)(b - a) < len) {
			memcpy(out, a + 1, (size_t)(b - a - 1));
			out[b - a - 1] = '\0';
			rc = DBI_OK;
		}
	}
	fclose(f);
	return rc;
}

static int tmpfs_huge_option(const char *dir, char *out, size_t len)
{
	char buf[4096];
	struct mntent me, *m;
	size_t best = 0;
	FILE *f = setmntent("/proc/mounts", "re");
	out[0] = '\0';
	if (!f)
		return DBI_ERR;
	/* the longest mount point that prefixes dir is the one dir lives on */
	while ((m = getmntent_r(f, &me, buf, sizeof(buf)))) {
		size_t ml = strlen(m->mnt_dir);
		if (strcmp(m->mnt_type, "tmpfs") != 0 || strncmp(dir, m->mnt_dir, ml) != 0 ||
		    (dir[ml] != '/' && dir[ml] != '\0' && ml > 1) || ml < best)
			continue;
		best = ml;
		char *opt = hasmntopt(m, "huge");
		out[0] = '\0';
		if (opt && opt[4] == '=') {
			size_t n = strcspn(opt + 5, ",");
			if (n < len) {
				memcpy(out, opt + 5, n);
				out[n] = '\0';
			}
		}
	}
	endmntent(f);
	return DBI_OK;
}

/*
 * Whether madvised shmem in dir may get huge pages, from policy alone: the global
 * shmem_enabled switch (deny/force override everything; it also governs SysV/memfd
 * shmem) and the tmpfs mount's huge= option, which governs files on that mount.
 */
static int thp_policy_allows(const char *dir)
{
	char global[32] = "", mount[32] = "";
	if (sysfs_choice("/sys/kernel/mm/transparent_hugepage/shmem_enabled", global, sizeof(global)) != DBI_OK)
		return 0;
	if (strcmp(global, "force") == 0)
		return 1;
	if (strcmp(global, "deny") == 0)
		return 0;
	if (strcmp(global, "advise") == 0 || strcmp(global, "always") == 0 || strcmp(global, "within_size") == 0)
		return 1;
	tmpfs_huge_option(dir, mount, sizeof(mount));
	return strcmp(mount, "advise") == 0 || strcmp(mount, "always") == 0 || strcmp(mount, "within_size") == 0;
}

/* Whether the mapping at addr is really backed by huge pages: 1, 0, or -1 if unknown. */
static int smaps_huge_backed(const void *addr)
{
	char line[512];
	int in = 0, res = -1;
	FILE *f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *end;
		unsigned long lo = strtoul(line, &end, 16);
		if (end != line && *end == '-') { /* "lo-hi perms ..." starts the next mapping */
			if (in)
				break;
			in = lo == (unsigned long)(uintptr_t)addr;
			continue;
		}
		if (in && (strncmp(line, "ShmemPmdMapped:", 15) == 0 || strncmp(line, "FilePmdMapped:", 14) == 0))
			res = res == 1 || strtoul(strchr(line, ':') + 1, NULL, 10) > 0;
	}
	fclose(f);
	return res;
}

/*
 * Fault in [off, off + len) of a shared mapping of fd (base) for writing, so the hot path
 * never takes a page fault there. Where tmpfs has no room this fails with an error instead
 * of a SIGBUS on first touch. 0 or -1 (errno).
 */
static int populate(int fd, uint8_t *base, uint64_t off, uint64_t len)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t a = off & ~(page - 1), b = DBI_ALIGN_UP(off + len, page);

	if (madvise(base + a, b - a, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno != EINVAL)
		return -1;
	/* kernels before 5.14: reserve the file's blocks (ENOSPC, not SIGBUS), then touch (both
	 * callers zero the range next, so writing zeros loses nothing) */
	if (fallocate(fd, 0, (off_t)a, (off_t)(b - a)) != 0 && errno != EOPNOTSUPP)
		return -1;
	volatile uint8_t *q = base;
	for (uint64_t o = a; o < b; o += page)
		q[o] = 0;
	return 0;
}

static int make_tmpfs(struct seg_file *f, const char *dir, const char *name, uint64_t size, int want_thp,
                      enum dbi_page_mode *mode, struct dbi_errbuf *err)
{
	struct statvfs sv;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t thp = default_huge_page() ? default_huge_page() : THP_SIZE_FALLBACK;
	/* whole huge pages when asking for THP: a partial tail could never be huge */
	uint64_t bytes = DBI_ALIGN_UP(size, want_thp ? thp : page);

	if (seg_file_open(f, dir, name, err) != DBI_OK)
		return DBI_ERR;
	/* a tmpfs that runs out under a mapping answers with SIGBUS, so check the room first */
	if (fstatvfs(f->fd, &sv) == 0 && sv.f_blocks > 0 && (uint64_t)sv.f_bavail * sv.f_frsize < bytes) {
		dbi_err_set(err,
		            "not enough space in %s for the shared-memory segment: it needs %llu MiB, %llu MiB free",
		            dir, MIB(bytes), MIB((uint64_t)sv.f_bavail * sv.f_frsize));
		return DBI_ERR;
	}
	if (ftruncate(f->fd, (off_t)bytes) != 0) {
		dbi_err_set(err, "cannot size the shared-memory segment in %s: %s", dir, strerror(errno));
		return DBI_ERR;
	}
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
	if (p == MAP_FAILED) {
		dbi_err_set(err, "cannot map %llu MiB of shared memory from %s: %s", MIB(bytes), dir, strerror(errno));
		return DBI_ERR;
	}
	f->base = p;
	f->size = bytes;
	/* advice first: pages are allocated by the populate below and keep their size */
	int advised = madvise(p, bytes, want_thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0;
	/* the header and directory now (a whole huge page when asking for THP); regions on allocation */
	uint64_t first = DBI_MIN(bytes, DBI_ALIGN_UP(regions_offset(DBI_SHM_MAX_REGIONS), want_thp ? thp : page));
	if (populate(f->fd, p, 0, first) != 0) {
		dbi_err_set(err, "cannot allocate %llu MiB of shared memory in %s: %s", MIB(first), dir,
		            strerror(errno));
		return DBI_ERR;
	}
	*mode = DBI_PAGES_NORMAL;
	if (want_thp && advised) {
		int backed = smaps_huge_backed(p);
		if (backed == 1 || (backed < 0 && thp_policy_allows(dir)))
			*mode = DBI_PAGES_THP;
	}
	return DBI_OK;
}

static void init_header(struct dbi_shm_header *h, const struct dbi_shm_opts *o, uint64_t size, enum dbi_page_mode mode)
{
	/* the file is new, so the header and directory start zeroed */
	h->version = DBI_SHM_VERSION;
	h->compat_version = DBI_SHM_COMPAT;
	h->size = size;
	h->header_size = sizeof(*h);
	h->region_size = sizeof(struct dbi_shm_region);
	dbi_strlcpy(h->instance, o->name, sizeof(h->instance));
	dbi_strlcpy(h->collector_version, o->version ? o->version : "unknown", sizeof(h->collector_version));
	h->pid = (int32_t)getpid();
	h->page_mode = mode;
	h->start_wall_ns = dbi_wall_ns();
	atomic_store_explicit(&h->heartbeat_wall_ns, h->start_wall_ns, memory_order_relaxed);
	atomic_store_explicit(&h->generation, 0, memory_order_relaxed);
	atomic_store_explicit(&h->nregions, 0, memory_order_relaxed);
	h->max_regions = DBI_SHM_MAX_REGIONS;
	h->dir_offset = dir_offset();
	atomic_store_explicit(&h->alloc_offset, regions_offset(DBI_SHM_MAX_REGIONS), memory_order_relaxed);
	atomic_store_explicit(&h->state, DBI_RUN_STARTING, memory_order_relaxed);
	h->pidns_ino = self_pidns();
	/* no ordering needed: nobody can open the file before link(2) gives it its name */
	h->magic = DBI_SHM_MAGIC;
}

int dbi_shm_create(struct dbi_shm **out, const struct dbi_shm_opts *o, struct dbi_errbuf *err)
{
	struct shm_dirs d;
	struct seg_file f = {.fd = -1};
	struct dbi_shm *s = NULL;
	char tmpfs_path[PATH_MAX], huge_path[PATH_MAX], fallback[sizeof(err->msg)] = "";
	const char *final_path;
	enum dbi_page_mode mode = DBI_PAGES_NORMAL;
	uint64_t min_size = regions_offset(DBI_SHM_MAX_REGIONS) + DBI_SHM_ALIGN;
	uint64_t size = o->size ? o->size : DBI_SHM_DEFAULT_SIZE;
	struct stat st;

	*out = NULL;
	if (check_name(o->name, err) != DBI_OK || resolve_dirs(o->dir, &d, err) != DBI_OK)
		return DBI_ERR;
	if (join_path(tmpfs_path, sizeof(tmpfs_path), d.tmpfs, o->name) != DBI_OK ||
	    (d.huge[0] && join_path(huge_path, sizeof(huge_path), d.huge, o->name) != DBI_OK)) {
		dbi_err_set(err, "shared-memory path too long for instance '%s'", o->name);
		return DBI_ERR;
	}
	if (size < min_size) {
		dbi_err_set(err,
		            "shared-memory size %llu bytes is too small: the header and region directory alone "
		            "take %llu",
		            (unsigned long long)size, (unsigned long long)min_size);
		return DBI_ERR;
	}

	/* A live collector in either place owns the name; stale files in both are cleared. */
	if (clear_existing(tmpfs_path, o->name, err) != DBI_OK ||
	    (d.huge[0] && clear_existing(huge_path, o->name, err) != DBI_OK))
		return DBI_ERR;

	if (o->hugepages != DBI_HP_OFF) {
		if (make_hugetlb(&f, &d, o->name, size, err) == DBI_OK) {
			mode = DBI_PAGES_HUGETLB;
		} else if (o->hugepages == DBI_HP_ON) {
			dbi_strlcpy(fallback, err->msg, sizeof(fallback));
			dbi_err_set(err, "%s; or set runtime.shm.hugepages: auto to fall back to normal pages",
			            fallback);
			goto fail;
		} else {
			dbi_strlcpy(fallback, err->msg, sizeof(fallback));
			seg_file_discard(&f);
			dbi_err_clear(err);
		}
	}
	if (mode != DBI_PAGES_HUGETLB &&
	    make_tmpfs(&f, d.tmpfs, o->name, size, o->hugepages == DBI_HP_AUTO, &mode, err) != DBI_OK)
		goto fail;
	final_path = mode == DBI_PAGES_HUGETLB ? huge_path : tmpfs_path;

	init_header((struct dbi_shm_header *)(void *)f.base, o, f.size, mode);
	for (int attempt = 0;; attempt++) {
		if (seg_file_link(&f, final_path) == DBI_OK)
			break;
		if (errno != EEXIST || attempt == 3) {
			dbi_err_set(err, "cannot create shared-memory segment %s: %s", final_path, strerror(errno));
			goto fail;
		}
		/* another process took the name since we looked: refuse if it lives, else clear it */
		if (clear_existing(final_path, o->name, err) != DBI_OK)
			goto fail;
	}

	s = calloc(1, sizeof(*s));
	if (!s || fstat(f.fd, &st) != 0) {
		dbi_err_set(err, "shared-memory segment %s: out of memory", final_path);
		unlink(final_path);
		goto fail;
	}
	s->fd = f.fd;
	s->base = f.base;
	s->map_size = f.size;
	s->hdr = (struct dbi_shm_header *)(void *)f.base;
	s->dir = (struct dbi_shm_region *)(void *)(f.base + s->hdr->dir_offset);
	s->writer = 1;
	s->pid = s->hdr->pid;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	dbi_strlcpy(s->name, o->name, sizeof(s->name));
	dbi_strlcpy(s->path, final_path, sizeof(s->path));
	if (fallback[0])
		DBI_LOGD("shm", "huge pages unavailable, using regular shared memory", "reason=\"%s\"", fallback);
	DBI_LOGI("shm", "shared-memory segment created", "path=%s size_mib=%llu pages=%s", s->path, MIB(s->map_size),
	         dbi_page_mode_name(mode));
	*out = s;
	return DBI_OK;
fail:
	free(s);
	seg_file_discard(&f);
	return DBI_ERR;
}

static void shm_close(struct dbi_shm *s)
{
	if (s->base)
		munmap(s->base, s->map_size);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

void dbi_shm_destroy(struct dbi_shm *s)
{
	struct stat st;
	if (!s)
		return;
	if (s->writer) {
		atomic_store_explicit(&s->hdr->state, DBI_RUN_STOPPED, memory_order_release);
		/* unlink while still locked, so nobody finds it unlocked and calls it stale;
		 * and only if the name is still ours (someone may have removed it by hand) */
		if (stat(s->path, &st) == 0 && st.st_ino == s->ino && st.st_dev == s->dev)
			unlink(s->path);
	}
	shm_close(s);
}

void *dbi_shm_alloc(struct dbi_shm *s, enum dbi_region_kind kind, const char *name, uint64_t size, const char *owner,
                    const char *peer)
{
	struct dbi_shm_header *h = s->hdr;
	uint32_t n = atomic_load_explicit(&h->nregions, memory_order_relaxed);
	uint64_t off = DBI_ALIGN_UP(atomic_load_explicit(&h->alloc_offset, memory_order_relaxed), DBI_SHM_ALIGN);

	if (!s->writer)
		return NULL;
	if (n >= h->max_regions || size > h->size || off > h->size - size) {
		DBI_LOGW("shm", "shared-memory segment full: increase runtime.shm.size",
		         "region=%s size=%llu free=%llu", name ? name : "", (unsigned long long)size,
		         (unsigned long long)dbi_shm_free_bytes(s));
		return NULL;
	}
	uint8_t *p = s->base + off;
	/* hugetlbfs segments were populated whole at create (the reservation is taken anyway) */
	if (h->page_mode != DBI_PAGES_HUGETLB && populate(s->fd, s->base, off, size) != 0) {
		DBI_LOGW("shm", "shared-memory pages unavailable (tmpfs full?)", "region=%s size=%llu error=\"%s\"",
		         name ? name : "", (unsigned long long)size, strerror(errno));
		return NULL;
	}
	memset(p, 0, size); /* a reset leaves the previous layout's bytes behind */

	struct dbi_shm_region *r = &s->dir[n];
	memset(r, 0, sizeof(*r));
	dbi_strlcpy(r->name, name ? name : "", sizeof(r->name));
	dbi_strlcpy(r->owner, owner ? owner : "", sizeof(r->owner));
	dbi_strlcpy(r->peer, peer ? peer : "", sizeof(r->peer));
	r->kind = kind;
	r->offset = off;
	r->size = size;
	atomic_store_explicit(&h->alloc_offset, off + size, memory_order_relaxed);
	/* a reader that sees the new count sees the whole entry */
	atomic_store_explicit(&h->nregions, n + 1, memory_order_release);
	return p;
}

void dbi_shm_reset(struct dbi_shm *s)
{
	struct dbi_shm_header *h = s->hdr;
	if (!s->writer)
		return;
	/*
	 * Readers copy the directory between two reads of the generation. Emptying it and
	 * bumping the generation before any entry changes makes a copy that overlaps the
	 * reset fail that check.
	 */
	atomic_store_explicit(&h->nregions, 0, memory_order_relaxed);
	/* acq_rel: the emptied count goes out with it, and no entry store moves above it */
	atomic_fetch_add_explicit(&h->generation, 1, memory_order_acq_rel);
	memset(s->dir, 0, (size_t)h->max_regions * sizeof(*s->dir));
	atomic_store_explicit(&h->alloc_offset, regions_offset(h->max_regions), memory_order_relaxed);
}

uint64_t dbi_shm_free_bytes(const struct dbi_shm *s)
{
	uint64_t off = DBI_ALIGN_UP(atomic_load_explicit(&s->hdr->alloc_offset, memory_order_relaxed), DBI_SHM_ALIGN);
	return off < s->hdr->size ? s->hdr->size - off : 0;
}

struct dbi_shm_header *dbi_shm_header(struct dbi_shm *s)
{
	return s->hdr;
}

void dbi_shm_heartbeat(struct dbi_shm *s)
{
	atomic_store_explicit(&s->hdr->heartbeat_wall_ns, dbi_wall_ns(), memory_order_relaxed);
}

void dbi_shm_set_state(struct dbi_shm *s, enum dbi_run_state st)
{
	atomic_store_explicit(&s->hdr->state, (uint32_t)st, memory_order_release);
}

const char *dbi_shm_path(const struct dbi_shm *s)
{
	return s->path;
}

/* ---- readers ---- */

static int map_reader(struct dbi_shm *s, const char *path, enum dbi_attach_status *st, struct dbi_errbuf *err)
{
	struct stat sb;
	const struct dbi_shm_header *h;

	*st = DBI_ATTACH_ERR;
	if (fstat(s->fd, &sb) != 0) {
		dbi_err_set(err, "cannot stat %s: %s", path, strerror(errno));
		return DBI_ERR;
	}
	s->dev = sb.st_dev;
	s->ino = sb.st_ino;
	for (int pass = 0; pass < 2; pass++) {
		if (sb.st_size < (off_t)sizeof(struct dbi_shm_header)) {
			dbi_err_set(err, "%s is not a dbi shared-memory segment (%lld bytes)", path,
			            (long long)sb.st_size);
			return DBI_ERR;
		}
		void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, s->fd, 0);
		if (p == MAP_FAILED) {
			*st = errno == EACCES ? DBI_ATTACH_PERM : DBI_ATTACH_ERR;
			dbi_err_set(err, "cannot map %s: %s", path, strerror(errno));
			return DBI_ERR;
		}
		s->base = p;
		s->map_size = (size_t)sb.st_size;
		h = p;
		if (h->magic != DBI_SHM_MAGIC) {
			dbi_err_set(err, "%s is not a dbi shared-memory segment (bad magic)", path);
			return DBI_ERR;
		}
		if (h->compat_version > DBI_SHM_VERSION) {
			*st = DBI_ATTACH_INCOMPAT;
			dbi_err_set(err,
			            "incompatible segment %s: dbi-collector %.64s wrote layout version %u, readable by "
			            "readers of layout version %u or newer, but this reader understands layout version "
			            "%d; use the dbi-stat that came with that collector",
			            path, h->collector_version, h->version, h->compat_version, DBI_SHM_VERSION);
			return DBI_ERR;
		}
		if (h->header_size < offsetof(struct dbi_shm_header, reserved) ||
		    h->region_size != sizeof(struct dbi_shm_region)) {
			*st = DBI_ATTACH_INCOMPAT;
			dbi_err_set(err, "incompatible segment %s: header of %u bytes, directory entries of %u bytes",
			            path, h->header_size, h->region_size);
			return DBI_ERR;
		}
		uint64_t want = h->size;
		if (want <= s->map_size)
			break;
		/* the segment says it is bigger than what we mapped: map it all */
		munmap(s->base, s->map_size);
		s->base = NULL;
		if (fstat(s->fd, &sb) != 0 || (uint64_t)sb.st_size < want || pass == 1) {
			dbi_err_set(err, "%s is truncated: the header says %llu bytes", path, (unsigned long long)want);
			return DBI_ERR;
		}
	}
	h = s->hdr = (struct dbi_shm_header *)(void *)s->base;
	if (h->dir_offset < sizeof(struct dbi_shm_header) || h->max_regions > h->size / sizeof(struct dbi_shm_region) ||
	    h->dir_offset + (uint64_t)h->max_regions * sizeof(struct dbi_shm_region) > h->size) {
		dbi_err_set(err, "%s is corrupt: its region directory lies outside the segment", path);
		return DBI_ERR;
	}
	s->dir = (struct dbi_shm_region *)(void *)(s->base + h->dir_offset);
	s->pid = h->pid;
	*st = DBI_ATTACH_OK;
	return DBI_OK;
}

static enum dbi_attach_status describe_stale(int fd, const char *path, const char *name, struct dbi_errbuf *err)
{
	struct dbi_shm_header h;
	if (read_header(fd, &h) != DBI_OK) {
		dbi_err_set(err, "%s is not a dbi shared-memory segment", path);
		return DBI_ATTACH_ERR;
	}
	dbi_err_set(err,
	            "no dbi-collector is running with instance name '%s': %s is a stale segment left by pid %d, which "
	            "exited without cleaning up (the next dbi-collector start replaces it)",
	            name, path, h.pid);
	return DBI_ATTACH_STALE;
}

int dbi_shm_attach(struct dbi_shm **out, const char *name, const char *dir, enum dbi_attach_status *st,
                   struct dbi_errbuf *err)
{
	struct shm_dirs d;
	char cand[2][PATH_MAX];
	int ncand = 1, fd = -1, stale_fd = -1, which = 0, stale_which = 0;
	struct dbi_shm *s = NULL;
	enum dbi_attach_status status = DBI_ATTACH_ERR;

	*out = NULL;
	if (check_name(name, err) != DBI_OK || resolve_dirs(dir, &d, err) != DBI_OK)
		goto done;
	if (join_path(cand[0], sizeof(cand[0]), d.tmpfs, name) != DBI_OK ||
	    (d.huge[0] && join_path(cand[1], sizeof(cand[1]), d.huge, name) != DBI_OK)) {
		dbi_err_set(err, "shared-memory path too long for instance '%s'", name);
		goto done;
	}
	if (d.huge[0])
		ncand = 2;

	/* a live segment in either place wins over a stale one in the other */
	for (int i = 0; i < ncand && fd < 0; i++) {
		int f = open(cand[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (f < 0) {
			if (errno == ENOENT)
				continue;
			if (errno == EACCES || errno == EPERM) {
				status = DBI_ATTACH_PERM;
				dbi_err_set(
				        err,
				        "permission denied opening %s: the segment is readable only by the user the "
				        "collector runs as (mode 0600); run dbi-stat as that user or as root",
				        cand[i]);
			} else {
				dbi_err_set(err, "cannot open %s: %s", cand[i], strerror(errno));
			}
			goto done;
		}
		if (lock_held(f) != 0) {
			fd = f;
			which = i;
		} else if (stale_fd < 0) {
			stale_fd = f;
			stale_which = i;
		} else {
			close(f);
		}
	}
	if (fd < 0 && stale_fd < 0) {
		status = DBI_ATTACH_NOENT;
		dbi_err_set(err, "no dbi-collector is running with instance name '%s' (no %s)", name, cand[0]);
		goto done;
	}
	if (fd < 0) {
		status = describe_stale(stale_fd, cand[stale_which], name, err);
		goto done;
	}

	s = calloc(1, sizeof(*s));
	if (!s) {
		dbi_err_set(err, "out of memory");
		goto done;
	}
	s->fd = fd;
	fd = -1;
	dbi_strlcpy(s->name, name, sizeof(s->name));
	dbi_strlcpy(s->path, cand[which], sizeof(s->path));
	if (map_reader(s, s->path, &status, err) != DBI_OK)
		goto done;
	/* the lock can outlive the collector in a child it forked; its pid cannot */
	if (pid_alive(s->hdr->pid, s->hdr->pidns_ino) == 0) {
		status = DBI_ATTACH_STALE;
		dbi_err_set(err,
		            "no dbi-collector is running with instance name '%s': pid %d that wrote %s has exited (a "
		            "process it started still holds the segment open)",
		            name, s->hdr->pid, s->path);
		goto done;
	}
	*out = s;
	s = NULL;
	status = DBI_ATTACH_OK;
done:
	if (s)
		shm_close(s);
	if (fd >= 0)
		close(fd);
	if (stale_fd >= 0)
		close(stale_fd);
	if (st)
		*st = status;
	return status == DBI_ATTACH_OK ? DBI_OK : DBI_ERR;
}

void dbi_shm_detach(struct dbi_shm *s)
{
	if (s)
		shm_close(s);
}

int dbi_shm_replaced(const struct dbi_shm *s)
{
	struct stat st;
	if (stat(s->path, &st) != 0)
		return 1; /* gone: the collector stopped, or restarted in the other page mode's place */
	if (st.st_ino != s->ino || st.st_dev != s->dev)
		return 1;
	return s->hdr->pid != s->pid;
}

int dbi_shm_alive(const struct dbi_shm *s)
{
	/* probing our own exclusive lock with LOCK_SH would convert and then drop it */
	if (s->writer)
		return 1;
	if (lock_held(s->fd) == 0)
		return 0;
	return pid_alive(s->hdr->pid, s->hdr->pidns_ino) != 0;
}

/*
 * Keeps the directory copy ahead of the generation re-check. The directory is only ever
 * read from another process, where no sanitizer sees; gcc's ThreadSanitizer rejects
 * standalone fences, so its build gets the compiler barrier that x86 (where it runs)
 * compiles an acquire fence to anyway.
 */
static inline void load_barrier(void)
{
#if defined(__SANITIZE_THREAD__)
	__asm__ __volatile__("" ::: "memory");
#else
	atomic_thread_fence(memory_order_acquire);
#endif
}

static uint32_t dir_count(const struct dbi_shm *s)
{
	uint32_t n = atomic_load_explicit(&s->hdr->nregions, memory_order_acquire);
	return DBI_MIN(n, s->hdr->max_regions);
}

const struct dbi_shm_region *dbi_shm_regions(const struct dbi_shm *s, uint32_t *n)
{
	*n = dir_count(s);
	return s->dir;
}

int dbi_shm_regions_snapshot(const struct dbi_shm *s, struct dbi_shm_region *out, uint32_t max, uint32_t *n,
                             uint64_t *generation)
{
	const struct dbi_shm_header *h = s->hdr;
	for (int tries = 0; tries < 100; tries++) {
		uint64_t g1 = atomic_load_explicit(&h->generation, memory_order_acquire);
		uint32_t cnt = DBI_MIN(dir_count(s), max);
		memcpy(out, s->dir, (size_t)cnt * sizeof(*out));
		load_barrier(); /* the copy before the re-check (seqlock reader) */
		if (atomic_load_explicit(&h->generation, memory_order_relaxed) == g1) {
			for (uint32_t i = 0; i < cnt; i++) {
				out[i].name[sizeof(out[i].name) - 1] = '\0';
				out[i].owner[sizeof(out[i].owner) - 1] = '\0';
				out[i].peer[sizeof(out[i].peer) - 1] = '\0';
			}
			*n = cnt;
			if (generation)
				*generation = g1;
			return DBI_OK;
		}
		dbi_sleep_ns(100000);
	}
	*n = 0;
	return DBI_AGAIN;
}

const void *dbi_shm_region_ptr(const struct dbi_shm *s, const struct dbi_shm_region *r)
{
	uint64_t lo = s->hdr->dir_offset + (uint64_t)s->hdr->max_regions * sizeof(struct dbi_shm_region);
	uint64_t end = DBI_MIN((uint64_t)s->map_size, s->hdr->size);
	if (r->offset < lo || r->size > end || r->offset > end - r->size)
		return NULL;
	return s->base + r->offset;
}
