/*
 * test_shm.c — the shared-memory segment: create/alloc/attach, the single-owner lock
 * (second collector refused, crashed collector's file replaced), page modes (off, auto
 * falling back, on failing clearly, and — as root — real hugetlbfs and THP mounts),
 * reset/generation, and the reader's view of stops and restarts.
 *
 * Every test uses its own directory under /dev/shm and its own instance names, so it
 * can run next to a live collector and other test processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbi/config.h"
#include "dbi/log.h"
#include "dbi/ring.h"
#include "dbi/shm.h"
#include "dbi/stats.h"

#define SEG_SIZE (4ULL << 20)

static char g_dir[PATH_MAX];

static void name_for(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "t%d.%s", (int)getpid(), what);
}

static struct dbi_shm *create_ok(const char *name, const char *dir, int hugepages)
{
	struct dbi_errbuf err;
	struct dbi_shm *s = NULL;
	struct dbi_shm_opts o = {.name = name, .dir = dir, .hugepages = hugepages, .size = SEG_SIZE, .version = "test"};
	dbi_err_clear(&err);
	int rc = dbi_shm_create(&s, &o, &err);
	if (rc != DBI_OK)
		print_error("create %s: %s\n", name, err.msg);
	assert_int_equal(rc, DBI_OK);
	assert_non_null(s);
	return s;
}

static struct dbi_shm *attach_ok(const char *name, const char *dir)
{
	struct dbi_errbuf err;
	struct dbi_shm *r = NULL;
	enum dbi_attach_status st;
	dbi_err_clear(&err);
	int rc = dbi_shm_attach(&r, name, dir, &st, &err);
	if (rc != DBI_OK)
		print_error("attach %s: %s\n", name, err.msg);
	assert_int_equal(rc, DBI_OK);
	assert_int_equal(st, DBI_ATTACH_OK);
	return r;
}

static enum dbi_attach_status attach_fails(const char *name, const char *dir, struct dbi_errbuf *err)
{
	struct dbi_shm *r = NULL;
	enum dbi_attach_status st = DBI_ATTACH_OK;
	dbi_err_clear(err);
	assert_int_equal(dbi_shm_attach(&r, name, dir, &st, err), DBI_ERR);
	assert_null(r);
	return st;
}

static int group_setup(void **state)
{
	(void)state;
	dbi_log_set_level(DBI_LOG_WARN);
	snprintf(g_dir, sizeof(g_dir), "/dev/shm/dbi-test-shm.XXXXXX");
	return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[PATH_MAX + 16];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_create_alloc_attach(void **state)
{
	char name[64], path[PATH_MAX];
	struct stat sb;
	(void)state;
	name_for(name, sizeof(name), "basic");
	struct dbi_shm *s = create_ok(name, g_dir, DBI_HP_OFF);
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	assert_string_equal(dbi_shm_path(s), path);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	struct dbi_shm_header *h = dbi_shm_header(s);
	assert_int_equal(h->page_mode, DBI_PAGES_NORMAL);
	assert_int_equal(h->pid, getpid());
	assert_true(h->size >= SEG_SIZE);
	dbi_shm_set_state(s, DBI_RUN_RUNNING);
	dbi_shm_heartbeat(s);

	uint64_t free0 = dbi_shm_free_bytes(s);
	struct dbi_ring *ring = dbi_shm_alloc(s, DBI_REGION_RING, "ring:a>b", dbi_ring_memsize(64, 16), "a", "b");
	assert_non_null(ring);
	assert_int_equal((uintptr_t)ring % 64, 0);
	assert_int_equal(dbi_ring_init(ring, "a>b", 64, 16), DBI_OK);
	uint8_t slot[16] = {1};
	assert_int_equal(dbi_ring_enqueue_burst(ring, slot, 1, 16), 1);

	static const struct dbi_stat_def defs[] = {{"received", DBI_STAT_COUNTER, "points in"},
	                                           {"queued", DBI_STAT_GAUGE, "points waiting"},
	                                           {NULL, 0, NULL}};
	struct dbi_stats st;
	struct dbi_stats_block *blk = dbi_shm_alloc(s, DBI_REGION_STATS, "stats:batch", sizeof(*blk), "batch", "");
	assert_non_null(blk);
	assert_int_equal((uintptr_t)blk % 64, 0);
	assert_int_equal(dbi_stats_init(&st, blk, DBI_SK_PROCESSOR, "batch@metrics#0", "batch", defs), DBI_OK);
	dbi_stats_add(&st, 0, 42);
	dbi_stats_set(&st, 1, 7);
	dbi_stats_publish(&st);

	/* odd size: the next region still starts on a cache line */
	void *odd = dbi_shm_alloc(s, DBI_REGION_BLOB, "blob:x", 13, "x", "");
	void *after = dbi_shm_alloc(s, DBI_REGION_THREAD, "thread:proc#0", sizeof(struct dbi_shm_thread), "proc#0", "");
	assert_non_null(odd);
	assert_non_null(after);
	assert_int_equal((uintptr_t)after % 64, 0);
	assert_true(dbi_shm_free_bytes(s) < free0);

	struct dbi_shm *r = attach_ok(name, g_dir);
	struct dbi_shm_header *rh = dbi_shm_header(r);
	assert_string_equal(rh->instance, name);
	assert_string_equal(rh->collector_version, "test");
	assert_int_equal(rh->pid, getpid());
	assert_int_equal(rh->version, DBI_SHM_VERSION);
	assert_int_equal(atomic_load(&rh->state), DBI_RUN_RUNNING);
	assert_true(dbi_shm_alive(r));
	assert_false(dbi_shm_replaced(r));

	uint32_t n = 0;
	const struct dbi_shm_region *dir = dbi_shm_regions(r, &n);
	assert_int_equal(n, 4);
	assert_string_equal(dir[0].name, "ring:a>b");
	assert_int_equal(dir[0].kind, DBI_REGION_RING);
	assert_string_equal(dir[0].owner, "a");
	assert_string_equal(dir[0].peer, "b");
	assert_string_equal(dir[1].name, "stats:batch");
	assert_int_equal(dir[3].kind, DBI_REGION_THREAD);

	const struct dbi_ring *rr = dbi_shm_region_ptr(r, &dir[0]);
	assert_non_null(rr);
	assert_int_equal(rr->magic, DBI_RING_MAGIC);
	assert_int_equal(rr->capacity, 64);
	assert_int_equal(dbi_ring_depth(rr), 1);

	struct dbi_stats_block snap;
	assert_int_equal(dbi_stats_snapshot(dbi_shm_region_ptr(r, &dir[1]), &snap), DBI_OK);
	assert_string_equal(snap.id, "batch@metrics#0");
	assert_int_equal(snap.n, 2);
	assert_string_equal(snap.names[0], "received");
	assert_int_equal(snap.v[0], 42);
	assert_int_equal(snap.v[1], 7);
	assert_int_equal(snap.types[1], DBI_STAT_GAUGE);

	/* a directory entry pointing outside the segment is refused, not followed */
	struct dbi_shm_region bad = dir[0];
	bad.offset = rh->size - 8;
	bad.size = 64;
	assert_null(dbi_shm_region_ptr(r, &bad));

	struct dbi_shm_region copy[8];
	uint64_t gen = 99;
	assert_int_equal(dbi_shm_regions_snapshot(r, copy, 8, &n, &gen), DBI_OK);
	assert_int_equal(n, 4);
	assert_int_equal(gen, 0);
	assert_string_equal(copy[2].name, "blob:x");

	dbi_shm_detach(r);
	dbi_shm_destroy(s);
	assert_int_equal(stat(path, &sb), -1);
}

static void test_alloc_until_full(void **state)
{
	char name[64];
	(void)state;
	name_for(name, sizeof(name), "full");
	struct dbi_shm *s = create_ok(name, g_dir, DBI_HP_OFF);
	dbi_log_set_level(DBI_LOG_ERROR); /* the "segment full" warning is expected */
	assert_null(dbi_shm_alloc(s, DBI_REGION_BLOB, "too-big", dbi_shm_free_bytes(s) + 1, "x", ""));
	assert_non_null(dbi_shm_alloc(s, DBI_REGION_BLOB, "all", dbi_shm_free_bytes(s), "x", ""));
	assert_int_equal(dbi_shm_free_bytes(s), 0);
	assert_null(dbi_shm_alloc(s, DBI_REGION_BLOB, "one-more", 1, "x", ""));
	dbi_shm_reset(s);
	for (int i = 0; i < DBI_SHM_MAX_REGIONS; i++)
		assert_non_null(dbi_shm_alloc(s, DBI_REGION_BLOB, "small", 8, "x", ""));
	assert_null(dbi_shm_alloc(s, DBI_REGION_BLOB, "past-the-directory", 8, "x", ""));
	dbi_log_set_level(DBI_LOG_WARN);
	dbi_shm_destroy(s);
}

/* Resident bytes of the pages covering [p, p + len) (mincore: the segment file's pages in memory). */
static uint64_t resident_bytes(const void *p, uint64_t len)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p & ~(page - 1);
	uint64_t n = ((uintptr_t)p + len - a + page - 1) / page, r = 0;
	unsigned char *vec = malloc(n);
	assert_non_null(vec);
	assert_int_equal(mincore((void *)(uintptr_t)a, n * page, vec), 0);
	for (uint64_t i = 0; i < n; i++)
		r += vec[i] & 1;
	free(vec);
	return r * page;
}

/*
 * On tmpfs only the header and directory are in memory after create; a region's pages
 * are all in memory once it is allocated (the hot path never faults), and the rest of the
 * segment, kept for reloads, costs nothing.
 */
static void test_headroom_not_resident(void **state)
{
	char name[64];
	(void)state;
	name_for(name, sizeof(name), "lazy");
	struct dbi_shm *s = create_ok(name, g_dir, DBI_HP_OFF);
	const uint8_t *base = (const uint8_t *)dbi_shm_header(s);
	uint64_t size = dbi_shm_header(s)->size, before = resident_bytes(base, size);
	assert_true(before < size / 2);
	uint64_t len = 1ULL << 20;
	uint8_t *p = dbi_shm_alloc(s, DBI_REGION_BLOB, "one-mib", len, "x", "");
	assert_non_null(p);
	assert_true(resident_bytes(p, len) >= len); /* every page of the region */
	uint64_t after = resident_bytes(base, size);
	assert_true(after >= before + len && after <= before + len + 2 * (uint64_t)sysconf(_SC_PAGESIZE));
	dbi_shm_destroy(s);
}

static void test_second_create_refused(void **state)
{
	char name[64], want[PATH_MAX + 200];
	struct dbi_errbuf err;
	struct dbi_shm *b = NULL;
	(void)state;
	name_for(name, sizeof(name), "dup");
	struct dbi_shm *a = create_ok(name, g_dir, DBI_HP_OFF);
	struct dbi_shm_opts o = {.name = name, .dir = g_dir, .hugepages = DBI_HP_OFF, .size = SEG_SIZE};
	dbi_err_clear(&err);
	assert_int_equal(dbi_shm_create(&b, &o, &err), DBI_ERR);
	assert_null(b);
	snprintf(want, sizeof(want),
	         "another dbi-collector (pid %d) is running with instance name '%s' (segment %s/%s)", (int)getpid(),
	         name, g_dir, name);
	assert_string_equal(err.msg, want);
	/* the refused attempt must not have disturbed the running one */
	struct dbi_shm *r = attach_ok(name, g_dir);
	assert_false(dbi_shm_replaced(r));
	dbi_shm_detach(r);
	dbi_shm_destroy(a);
}

/* A child creates the segment, reports, waits for the word, then dies without cleanup. */
static pid_t spawn_crasher(const char *name, const char *dir, int hugepages, int *go_fd, int keep_child)
{
	int up[2], down[2];
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct dbi_errbuf err;
		struct dbi_shm *s = NULL;
		struct dbi_shm_opts o = {.name = name, .dir = dir, .hugepages = hugepages, .size = SEG_SIZE};
		close(up[0]);
		close(down[1]);
		char c = dbi_shm_create(&s, &o, &err) == DBI_OK ? 'k' : 'e';
		if (c == 'k' && keep_child && fork() == 0) {
			/* a grandchild keeps the file (and its lock) until the parent closes the pipe */
			close(up[1]);
			if (read(down[0], &c, 1) < 0)
				_exit(1);
			_exit(0);
		}
		if (write(up[1], &c, 1) != 1)
			_exit(1);
		if (!keep_child && read(down[0], &c, 1) < 0) /* wait for the word (EOF) */
			_exit(1);
		_exit(0); /* crash: no dbi_shm_destroy */
	}
	close(up[1]);
	close(down[0]);
	char c = 0;
	assert_int_equal(read(up[0], &c, 1), 1);
	close(up[0]);
	assert_int_equal(c, 'k');
	*go_fd = down[1];
	return pid;
}

static void reap(pid_t pid, int go_fd)
{
	int status;
	close(go_fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
}

static void test_stale_replaced(void **state)
{
	char name[64], logbuf[4096];
	struct dbi_errbuf err;
	int go;
	(void)state;
	name_for(name, sizeof(name), "stale");
	pid_t child = spawn_crasher(name, g_dir, DBI_HP_OFF, &go, 0);

	struct dbi_shm *r = attach_ok(name, g_dir);
	assert_int_equal(dbi_shm_header(r)->pid, child);
	assert_true(dbi_shm_alive(r));
	reap(child, go);
	assert_false(dbi_shm_alive(r));
	assert_false(dbi_shm_replaced(r)); /* same file, just nobody behind it */

	assert_int_equal(attach_fails(name, g_dir, &err), DBI_ATTACH_STALE);
	assert_non_null(strstr(err.msg, "stale"));
	assert_non_null(strstr(err.msg, name));

	FILE *log = tmpfile();
	assert_non_null(log);
	dbi_log_set_stream(log);
	struct dbi_shm *s = create_ok(name, g_dir, DBI_HP_OFF);
	dbi_log_set_stream(NULL);
	rewind(log);
	size_t got = fread(logbuf, 1, sizeof(logbuf) - 1, log);
	logbuf[got] = '\0';
	fclose(log);
	assert_non_null(strstr(logbuf, "level=warn"));
	assert_non_null(strstr(logbuf, "replacing stale shared-memory segment"));

	/* the old reader sees a new inode under the name; a new reader sees us */
	assert_true(dbi_shm_replaced(r));
	dbi_shm_detach(r);
	r = attach_ok(name, g_dir);
	assert_int_equal(dbi_shm_header(r)->pid, getpid());
	dbi_shm_detach(r);
	dbi_shm_destroy(s);
}

static void test_dead_pid_lock_held(void **state)
{
	char name[64];
	struct dbi_errbuf err;
	struct dbi_shm *b = NULL;
	int go, status;
	(void)state;
	name_for(name, sizeof(name), "orphan");
	pid_t child = spawn_crasher(name, g_dir, DBI_HP_OFF, &go, 1);
	/* the collector died at once; its grandchild still holds the file (and lock) */
	assert_int_equal(waitpid(child, &status, 0), child);

	assert_int_equal(attach_fails(name, g_dir, &err), DBI_ATTACH_STALE);
	assert_non_null(strstr(err.msg, "has exited"));
	struct dbi_shm_opts o = {.name = name, .dir = g_dir, .hugepages = DBI_HP_OFF, .size = SEG_SIZE};
	dbi_err_clear(&err);
	assert_int_equal(dbi_shm_create(&b, &o, &err), DBI_ERR);
	assert_non_null(strstr(err.msg, "fuser"));

	close(go); /* the grandchild exits: now it is plain stale */
	for (int i = 0; i < 200; i++) {
		dbi_log_set_level(DBI_LOG_ERROR);
		int rc = dbi_shm_create(&b, &o, &err);
		dbi_log_set_level(DBI_LOG_WARN);
		if (rc == DBI_OK)
			break;
		usleep(10000);
	}
	assert_non_null(b);
	dbi_shm_destroy(b);
}

static int huge_pages_free(void)
{
	char line[256];
	int n = 0;
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "HugePages_Free: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

static int hugetlbfs_mounted(void)
{
	char line[1024];
	int found = 0;
	FILE *f = fopen("/proc/mounts", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		found |= strstr(line, " hugetlbfs ") != NULL;
	fclose(f);
	return found;
}

static void test_hugepages_off_and_auto(void **state)
{
	char name[64];
	(void)state;
	name_for(name, sizeof(name), "off");
	struct dbi_shm *s = create_ok(name, g_dir, DBI_HP_OFF);
	assert_int_equal(dbi_shm_header(s)->page_mode, DBI_PAGES_NORMAL);
	dbi_shm_destroy(s);

	name_for(name, sizeof(name), "auto");
	s = create_ok(name, g_dir, DBI_HP_AUTO);
	uint32_t mode = dbi_shm_header(s)->page_mode;
	if (!hugetlbfs_mounted() || huge_pages_free() == 0) {
		/* nothing reserved: auto falls back instead of failing */
		assert_true(mode == DBI_PAGES_NORMAL || mode == DBI_PAGES_THP);
		assert_non_null(strstr(dbi_shm_path(s), g_dir));
	}
	struct dbi_shm *r = attach_ok(name, g_dir);
	assert_int_equal(dbi_shm_header(r)->page_mode, mode);
	dbi_shm_detach(r);
	dbi_shm_destroy(s);
}

static void test_hugepages_on_fails_clearly(void **state)
{
	char name[64];
	struct dbi_errbuf err;
	struct dbi_shm *s = NULL;
	(void)state;
	name_for(name, sizeof(name), "on");
	/* ask for more huge pages than are free, so this fails even where some are reserved */
	uint64_t size = ((uint64_t)huge_pages_free() + 1) * (2ULL << 20) + SEG_SIZE;
	struct dbi_shm_opts o = {.name = name, .dir = g_dir, .hugepages = DBI_HP_ON, .size = size};
	dbi_err_clear(&err);
	assert_int_equal(dbi_shm_create(&s, &o, &err), DBI_ERR);
	assert_null(s);
	assert_non_null(strstr(err.msg, "huge pages"));
	assert_non_null(strstr(err.msg, "/proc/sys/vm/nr_hugepages"));
	if (!hugetlbfs_mounted())
		assert_non_null(strstr(err.msg, "mount -t hugetlbfs"));
	/* nothing left behind */
	assert_int_equal(attach_fails(name, g_dir, &err), DBI_ATTACH_NOENT);
}

/* ---- as root: reserve huge pages / mount hugetlbfs and THP tmpfs, restore after ---- */

struct root_env {
	long saved_nr;
	char mnt[PATH_MAX]; /* hugetlbfs or tmpfs we mounted, "" if none */
};

static long read_nr_hugepages(void)
{
	long n = -1;
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r");
	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

static int write_nr_hugepages(long n)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "w");
	if (!f)
		return -1;
	int ok = fprintf(f, "%ld\n", n) > 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int root_setup(void **state)
{
	struct root_env *e = calloc(1, sizeof(*e));
	e->saved_nr = -1;
	*state = e;
	return 0;
}

static int root_teardown(void **state)
{
	struct root_env *e = *state;
	if (e->mnt[0]) {
		umount2(e->mnt, MNT_DETACH);
		rmdir(e->mnt);
	}
	if (e->saved_nr >= 0)
		write_nr_hugepages(e->saved_nr);
	free(e);
	return 0;
}

/* As root, a tmpfs of our own on a new directory under /tmp (unmounted at teardown); else skip. */
static void mount_tmpfs(struct root_env *e, const char *opts)
{
	if (geteuid() != 0)
		skip();
	snprintf(e->mnt, sizeof(e->mnt), "/tmp/dbi-test-tmpfs.XXXXXX"); /* mkdtemp's template */
	if (!mkdtemp(e->mnt) || mount("tmpfs", e->mnt, "tmpfs", 0, opts) != 0) {
		print_message("cannot mount tmpfs with %s: %s: skipping\n", opts, strerror(errno));
		rmdir(e->mnt);
		e->mnt[0] = '\0';
		skip();
	}
}

/* A tmpfs that fills up after create: the next region is refused, not a SIGBUS. */
static void test_tmpfs_full_refuses_region(void **state)
{
	struct root_env *e = *state;
	char name[64], path[PATH_MAX + 16];
	mount_tmpfs(e, "size=6m");
	name_for(name, sizeof(name), "full");
	struct dbi_shm *s = create_ok(name, e->mnt, DBI_HP_OFF); /* 4 MiB: there is room now */
	snprintf(path, sizeof(path), "%s/filler", e->mnt);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	static char chunk[64 << 10];
	memset(chunk, 1, sizeof(chunk));
	while (fwrite(chunk, 1, sizeof(chunk), f) == sizeof(chunk) && fflush(f) == 0)
		;
	fclose(f);
	dbi_log_set_level(DBI_LOG_ERROR); /* the warning is expected */
	assert_null(dbi_shm_alloc(s, DBI_REGION_BLOB, "no-room", 2ULL << 20, "x", ""));
	dbi_log_set_level(DBI_LOG_WARN);
	unlink(path);
	assert_non_null(dbi_shm_alloc(s, DBI_REGION_BLOB, "room-again", 2ULL << 20, "x", ""));
	dbi_shm_destroy(s);
}

static void test_hugetlb_as_root(void **state)
{
	struct root_env *e = *state;
	char name[64], path[PATH_MAX];
	struct stat sb;
	int go;
	if (geteuid() != 0)
		skip();
	e->saved_nr = read_nr_hugepages();
	if (e->saved_nr < 0 || write_nr_hugepages(e->saved_nr + 4) != 0 || huge_pages_free() < 2) {
		print_message("cannot reserve huge pages here: skipping\n");
		skip();
	}
	if (!hugetlbfs_mounted()) {
		snprintf(e->mnt, sizeof(e->mnt), "/tmp/dbi-test-huge.XXXXXX");
		if (!mkdtemp(e->mnt) || mount("none", e->mnt, "hugetlbfs", 0, NULL) != 0) {
			print_message("cannot mount hugetlbfs: %s: skipping\n", strerror(errno));
			rmdir(e->mnt);
			e->mnt[0] = '\0';
			skip();
		}
	}

	name_for(name, sizeof(name), "huge");
	struct dbi_shm *s = create_ok(name, g_dir, DBI_HP_ON);
	assert_int_equal(dbi_shm_header(s)->page_mode, DBI_PAGES_HUGETLB);
	assert_null(strstr(dbi_shm_path(s), g_dir)); /* it lives in the hugetlbfs mount */
	assert_int_equal(stat(dbi_shm_path(s), &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	struct dbi_stats_block *blk = dbi_shm_alloc(s, DBI_REGION_STATS, "stats:x", sizeof(*blk), "x", "");
	assert_non_null(blk);

	/* readers look in the hugetlbfs mount too */
	struct dbi_shm *r = attach_ok(name, g_dir);
	assert_int_equal(dbi_shm_header(r)->page_mode, DBI_PAGES_HUGETLB);
	assert_string_equal(dbi_shm_path(r), dbi_shm_path(s));
	uint32_t n;
	dbi_shm_regions(r, &n);
	assert_int_equal(n, 1);
	dbi_shm_detach(r);

	/* a second collector is refused whatever page mode it asks for */
	struct dbi_shm *b = NULL;
	struct dbi_errbuf err;
	struct dbi_shm_opts o = {.name = name, .dir = g_dir, .hugepages = DBI_HP_OFF, .size = SEG_SIZE};
	assert_int_equal(dbi_shm_create(&b, &o, &err), DBI_ERR);
	assert_non_null(strstr(err.msg, "another dbi-collector"));
	dbi_shm_destroy(s);

	/* a crashed hugetlb collector's file is cleared by a normal-pages start of the same name */
	pid_t child = spawn_crasher(name, g_dir, DBI_HP_ON, &go, 0);
	reap(child, go);
	dbi_log_set_level(DBI_LOG_ERROR);
	s = create_ok(name, g_dir, DBI_HP_OFF);
	dbi_log_set_level(DBI_LOG_WARN);
	assert_int_equal(dbi_shm_header(s)->page_mode, DBI_PAGES_NORMAL);
	r = attach_ok(name, g_dir);
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	assert_string_equal(dbi_shm_path(r), path);
	dbi_shm_detach(r);
	dbi_shm_destroy(s);
	assert_int_equal(attach_fails(name, g_dir, &err), DBI_ATTACH_NOENT);
}

static void test_thp_as_root(void **state)
{
	struct root_env *e = *state;
	char name[64];
	mount_tmpfs(e, "huge=advise,size=64m");
	name_for(name, sizeof(name), "thp");
	struct dbi_shm *s = create_ok(name, e->mnt, DBI_HP_OFF);
	assert_int_equal(dbi_shm_header(s)->page_mode, DBI_PAGES_NORMAL); /* off never advises */
	dbi_shm_destroy(s);
	if (hugetlbfs_mounted() && huge_pages_free() > 0)
		skip(); /* auto would take hugetlbfs first */
	s = create_ok(name, e->mnt, DBI_HP_AUTO);
	uint32_t mode = dbi_shm_header(s)->page_mode;
	dbi_shm_destroy(s);
	if (mode != DBI_PAGES_THP) {
		print_message("no transparent huge page was allocated (memory fragmented?): skipping\n");
		skip();
	}
}

static void test_reset_bumps_generation(void **state)
{
	char name[64];
	(void)state;
	name_for(name, sizeof(name), "reset");
	struct dbi_shm *s = create_ok(name, g_dir, DBI_HP_OFF);
	struct dbi_shm *r = attach_ok(name, g_dir);
	uint64_t free0 = dbi_shm_free_bytes(s);
	void *first = dbi_shm_alloc(s, DBI_REGION_BLOB, "a", 1000, "x", "");
	memset(first, 0xab, 1000);
	assert_non_null(dbi_shm_alloc(s, DBI_REGION_BLOB, "b", 1000, "x", ""));
	uint32_t n;
	uint64_t gen;
	struct dbi_shm_region copy[4];
	assert_int_equal(dbi_shm_regions_snapshot(r, copy, 4, &n, &gen), DBI_OK);
	assert_int_equal(n, 2);
	assert_int_equal(gen, 0);

	dbi_shm_reset(s);
	assert_int_equal(atomic_load(&dbi_shm_header(s)->generation), 1);
	assert_int_equal(dbi_shm_free_bytes(s), free0);
	dbi_shm_regions(r, &n);
	assert_int_equal(n, 0);

	uint8_t *again = dbi_shm_alloc(s, DBI_REGION_RING, "c", 100, "x", "y");
	assert_ptr_equal(again, first); /* the bump pointer started over */
	assert_int_equal(again[0], 0);  /* and the region comes back zeroed */
	assert_int_equal(dbi_shm_regions_snapshot(r, copy, 4, &n, &gen), DBI_OK);
	assert_int_equal(n, 1);
	assert_int_equal(gen, 1);
	assert_string_equal(copy[0].name, "c");
	assert_false(dbi_shm_replaced(r)); /* a reload is not a restart */
	dbi_shm_detach(r);
	dbi_shm_destroy(s);
}

static void test_attach_after_destroy(void **state)
{
	char name[64], want[PATH_MAX + 200];
	struct dbi_errbuf err;
	(void)state;
	name_for(name, sizeof(name), "gone");
	dbi_shm_destroy(create_ok(name, g_dir, DBI_HP_OFF));
	assert_int_equal(attach_fails(name, g_dir, &err), DBI_ATTACH_NOENT);
	snprintf(want, sizeof(want), "no dbi-collector is running with instance name '%s' (no %s/%s)", name, g_dir,
	         name);
	assert_string_equal(err.msg, want);
}

static void test_replaced_detection(void **state)
{
	char name[64];
	(void)state;
	name_for(name, sizeof(name), "restart");
	struct dbi_shm *a = create_ok(name, g_dir, DBI_HP_OFF);
	struct dbi_shm *r = attach_ok(name, g_dir);
	assert_false(dbi_shm_replaced(r));
	dbi_shm_destroy(a);
	assert_true(dbi_shm_replaced(r)); /* stopped */
	struct dbi_shm *b = create_ok(name, g_dir, DBI_HP_OFF);
	assert_true(dbi_shm_replaced(r)); /* and a new one took the name */
	struct dbi_shm *r2 = attach_ok(name, g_dir);
	assert_false(dbi_shm_replaced(r2));
	dbi_shm_detach(r2);
	dbi_shm_detach(r);
	dbi_shm_destroy(b);
}

static void test_incompatible_version(void **state)
{
	char name[64], want[64];
	struct dbi_errbuf err;
	(void)state;
	name_for(name, sizeof(name), "future");
	struct dbi_shm *s = create_ok(name, g_dir, DBI_HP_OFF);
	dbi_shm_header(s)->version = DBI_SHM_VERSION + 2;
	dbi_shm_header(s)->compat_version = DBI_SHM_VERSION + 1;
	assert_int_equal(attach_fails(name, g_dir, &err), DBI_ATTACH_INCOMPAT);
	snprintf(want, sizeof(want), "layout version %d", DBI_SHM_VERSION + 2);
	assert_non_null(strstr(err.msg, want));
	snprintf(want, sizeof(want), "layout version %d or newer", DBI_SHM_VERSION + 1);
	assert_non_null(strstr(err.msg, want));
	snprintf(want, sizeof(want), "understands layout version %d", DBI_SHM_VERSION);
	assert_non_null(strstr(err.msg, want));
	/* a newer layout that old readers can still read is fine */
	dbi_shm_header(s)->compat_version = DBI_SHM_VERSION;
	dbi_shm_detach(attach_ok(name, g_dir));
	dbi_shm_destroy(s);
}

static void test_permission_denied(void **state)
{
	char name[64], dir[PATH_MAX];
	int status;
	(void)state;
	if (geteuid() != 0)
		skip(); /* needs a second user to be denied */
	snprintf(dir, sizeof(dir), "%s/perm", g_dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	chmod(g_dir, 0755);
	name_for(name, sizeof(name), "perm");
	struct dbi_shm *s = create_ok(name, dir, DBI_HP_OFF);
	pid_t pid = fork();
	if (pid == 0) {
		struct dbi_errbuf err;
		struct dbi_shm *r = NULL;
		enum dbi_attach_status st;
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(3);
		dbi_shm_attach(&r, name, dir, &st, &err);
		_exit(st == DBI_ATTACH_PERM && strstr(err.msg, "permission denied") ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	chmod(g_dir, 0700);
	dbi_shm_destroy(s);
	rmdir(dir);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 3)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_bad_names_and_foreign_files(void **state)
{
	char name[64], path[PATH_MAX];
	struct dbi_errbuf err;
	struct dbi_shm *s = NULL;
	(void)state;
	static const char *const bad[] = {"", "a/b", ".hidden", ".."};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dbi_shm_opts o = {.name = bad[i], .dir = g_dir, .hugepages = DBI_HP_OFF, .size = SEG_SIZE};
		assert_int_equal(dbi_shm_create(&s, &o, &err), DBI_ERR);
		assert_non_null(strstr(err.msg, "invalid shared-memory instance name"));
	}
	struct dbi_shm_opts tiny = {.name = "tiny", .dir = g_dir, .hugepages = DBI_HP_OFF, .size = 4096};
	assert_int_equal(dbi_shm_create(&s, &tiny, &err), DBI_ERR);
	assert_non_null(strstr(err.msg, "too small"));

	/* a file that is not ours is neither replaced nor attached to */
	name_for(name, sizeof(name), "foreign");
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("not a segment\n", f);
	fclose(f);
	struct dbi_shm_opts o = {.name = name, .dir = g_dir, .hugepages = DBI_HP_OFF, .size = SEG_SIZE};
	assert_int_equal(dbi_shm_create(&s, &o, &err), DBI_ERR);
	assert_non_null(strstr(err.msg, "is not a dbi shared-memory segment"));
	assert_int_equal(attach_fails(name, g_dir, &err), DBI_ATTACH_ERR);
	assert_non_null(strstr(err.msg, "is not a dbi shared-memory segment"));
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_create_alloc_attach),
	        cmocka_unit_test(test_alloc_until_full),
	        cmocka_unit_test(test_headroom_not_resident),
	        cmocka_unit_test_setup_teardown(test_tmpfs_full_refuses_region, root_setup, root_teardown),
	        cmocka_unit_test(test_second_create_refused),
	        cmocka_unit_test(test_stale_replaced),
	        cmocka_unit_test(test_dead_pid_lock_held),
	        cmocka_unit_test(test_hugepages_off_and_auto),
	        cmocka_unit_test(test_hugepages_on_fails_clearly),
	        cmocka_unit_test_setup_teardown(test_hugetlb_as_root, root_setup, root_teardown),
	        cmocka_unit_test_setup_teardown(test_thp_as_root, root_setup, root_teardown),
	        cmocka_unit_test(test_reset_bumps_generation),
	        cmocka_unit_test(test_attach_after_destroy),
	        cmocka_unit_test(test_replaced_detection),
	        cmocka_unit_test(test_incompatible_version),
	        cmocka_unit_test(test_permission_denied),
	        cmocka_unit_test(test_bad_names_and_foreign_files),
	};
	return cmocka_run_group_tests_name("shm", tests, group_setup, group_teardown);
}
