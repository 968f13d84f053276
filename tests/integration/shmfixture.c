/*
 * shmfixture.c — a stand-in collector for dbi-stat's tests: it creates a segment the
 * way the runtime does (rings, a byte ring, stats blocks of every kind, thread
 * regions, a blob holding a fake secret that must never be printed) and keeps them
 * moving every 10 ms until SIGTERM/SIGINT, which removes the segment cleanly.
 * SIGUSR1 simulates a reload (reset + new layout, generation +1).
 *
 *   dbi_shmfixture --name N [--dir D] [--hugepages auto|on|off] [--compat V] [--ready FILE]
 *
 * --compat V writes layout version V into the header (for the incompatible-reader
 * test); --ready FILE is written with our pid once the segment exists.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbi/clock.h"
#include "dbi/config.h"
#include "dbi/log.h"
#include "dbi/ring.h"
#include "dbi/shm.h"
#include "dbi/stats.h"

#define TICK_NS (10 * DBI_NSEC_PER_MSEC)
#define SLOT 48

static volatile sig_atomic_t g_stop, g_reload;

static void on_stop(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void on_reload(int sig)
{
	(void)sig;
	g_reload = 1;
}

struct fixture {
	struct dbi_shm *shm;
	struct dbi_ring *in, *out, *extra;
	struct dbi_bring *logs;
	struct dbi_stats rt, rcv, proc, exp, ext, thr;
	struct dbi_shm_thread *main_thread, *proc_thread;
	uint64_t ticks;
};

static const struct dbi_stat_def rt_defs[] = {
        {"uptime_s", DBI_STAT_GAUGE, ""}, {"loops", DBI_STAT_COUNTER, ""}, {NULL, 0, NULL}};
static const struct dbi_stat_def rcv_defs[] = {{"scrapes", DBI_STAT_COUNTER, ""},
                                               {"points", DBI_STAT_COUNTER, ""},
                                               {"targets_up", DBI_STAT_GAUGE, ""},
                                               {NULL, 0, NULL}};
static const struct dbi_stat_def proc_defs[] = {{"received", DBI_STAT_COUNTER, ""},
                                                {"sent", DBI_STAT_COUNTER, ""},
                                                {"dropped.ring_full", DBI_STAT_COUNTER, ""},
                                                {NULL, 0, NULL}};
static const struct dbi_stat_def exp_defs[] = {{"sent_points", DBI_STAT_COUNTER, ""},
                                               {"failed", DBI_STAT_COUNTER, ""},
                                               {"queue", DBI_STAT_GAUGE, ""},
                                               {NULL, 0, NULL}};
static const struct dbi_stat_def ext_defs[] = {{"requests", DBI_STAT_COUNTER, ""}, {NULL, 0, NULL}};
static const struct dbi_stat_def thr_defs[] = {{"points_in", DBI_STAT_COUNTER, ""}, {NULL, 0, NULL}};

static void *need(void *p, const char *what)
{
	if (!p) {
		fprintf(stderr, "shmfixture: cannot allocate %s\n", what);
		exit(1);
	}
	return p;
}

static struct dbi_stats_block *block(struct fixture *f, const char *id)
{
	char region[DBI_SHM_REGION_NAME];
	snprintf(region, sizeof(region), "stats:%s", id);
	return need(dbi_shm_alloc(f->shm, DBI_REGION_STATS, region, sizeof(struct dbi_stats_block), id, ""), region);
}

static struct dbi_ring *ring(struct fixture *f, const char *from, const char *to, uint64_t cap)
{
	char name[DBI_SHM_REGION_NAME];
	snprintf(name, sizeof(name), "ring:%s>%s", from, to);
	struct dbi_ring *r =
	        need(dbi_shm_alloc(f->shm, DBI_REGION_RING, name, dbi_ring_memsize(cap, SLOT), from, to), name);
	dbi_ring_init(r, name, cap, SLOT);
	return r;
}

static struct dbi_shm_thread *thread(struct fixture *f, const char *name, int cpu, uint32_t role)
{
	char region[DBI_SHM_REGION_NAME];
	snprintf(region, sizeof(region), "thread:%s", name);
	struct dbi_shm_thread *t = need(dbi_shm_alloc(f->shm, DBI_REGION_THREAD, region, sizeof(*t), name, ""), region);
	dbi_strlcpy(t->name, name, sizeof(t->name));
	t->tid = (int32_t)getpid();
	t->cpu = cpu;
	t->role = role;
	return t;
}

static void build(struct fixture *f, int reloaded)
{
	dbi_stats_init(&f->rt, block(f, "runtime"), DBI_SK_RUNTIME, "runtime", "runtime", rt_defs);
	dbi_stats_init(&f->rcv, block(f, "receiver:postgresql"), DBI_SK_RECEIVER, "receiver:postgresql", "postgresql",
	               rcv_defs);
	dbi_stats_init(&f->proc, block(f, "processor:batch@metrics#0"), DBI_SK_PROCESSOR, "processor:batch@metrics#0",
	               "batch", proc_defs);
	dbi_stats_init(&f->exp, block(f, "exporter:otlphttp/newrelic"), DBI_SK_EXPORTER, "exporter:otlphttp/newrelic",
	               "otlphttp", exp_defs);
	dbi_stats_init(&f->ext, block(f, "extension:health_check"), DBI_SK_EXTENSION, "extension:health_check",
	               "health_check", ext_defs);
	dbi_stats_init(&f->thr, block(f, "thread:proc#0"), DBI_SK_THREAD, "thread:proc#0", "thread", thr_defs);
	f->main_thread = thread(f, "main", -1, 0);
	f->proc_thread = thread(f, "proc#0", 1, 2);
	/* fills up: 64 in, 60 out per tick, so it shows depth and then full events */
	f->in = ring(f, "postgresql#0", "proc#0", 1024);
	f->out = ring(f, "proc#0", "exp:otlphttp/newrelic", 4096);
	f->extra = reloaded ? ring(f, "postgresql#1", "proc#0", 1024) : NULL;
	f->logs = need(dbi_shm_alloc(f->shm, DBI_REGION_BRING, "bring:pglog>proc#0", dbi_bring_memsize(1 << 16),
	                             "pglog", "proc#0"),
	               "byte ring");
	dbi_bring_init(f->logs, "pglog>proc#0", 1 << 16);
	need(dbi_shm_alloc(f->shm, DBI_REGION_CIRCUIT, "circuit:postgresql", 4096, "receiver:postgresql", ""),
	     "circuit");
	/* never shown by dbi-stat: only names and sizes of blobs are */
	char *blob =
	        need(dbi_shm_alloc(f->shm, DBI_REGION_BLOB, "blob:otlphttp/newrelic", 256, "otlphttp", ""), "blob");
	snprintf(blob, 256, "api-key=NRAK-FIXTURESECRET password=hunter2");
}

static void tick(struct fixture *f)
{
	uint8_t pts[64][SLOT];
	memset(pts, 0, sizeof(pts));
	f->ticks++;

	unsigned in = dbi_ring_enqueue_burst(f->in, pts, 64, SLOT);
	if (f->extra) {
		dbi_ring_enqueue_burst(f->extra, pts, 8, SLOT);
		dbi_ring_dequeue_burst(f->extra, pts, 8, SLOT);
	}
	unsigned got = dbi_ring_dequeue_burst(f->in, pts, 60, SLOT);
	unsigned sent = dbi_ring_enqueue_burst(f->out, pts, got, SLOT);
	dbi_ring_dequeue_burst(f->out, pts, 64, SLOT);

	for (int i = 0; i < 10; i++) {
		char *rec = dbi_bring_reserve(f->logs, 100);
		if (rec)
			memset(rec, 'x', 100);
	}
	dbi_bring_publish(f->logs);
	uint32_t len;
	for (int i = 0; i < 10 && dbi_bring_peek(f->logs, &len); i++)
		;
	dbi_bring_release(f->logs);

	dbi_stats_set(&f->rt, 0, f->ticks / 100);
	dbi_stats_add(&f->rt, 1, 1);
	dbi_stats_add(&f->rcv, 0, f->ticks % 10 == 0);
	dbi_stats_add(&f->rcv, 1, in);
	dbi_stats_set(&f->rcv, 2, 3);
	dbi_stats_add(&f->proc, 0, got);
	dbi_stats_add(&f->proc, 1, sent);
	dbi_stats_add(&f->proc, 2, 64 - in);
	dbi_stats_add(&f->exp, 0, sent);
	dbi_stats_set(&f->exp, 2, dbi_ring_depth(f->out));
	dbi_stats_add(&f->ext, 0, f->ticks % 50 == 0);
	dbi_stats_add(&f->thr, 0, got);
	dbi_stats_publish(&f->rt);
	dbi_stats_publish(&f->rcv);
	dbi_stats_publish(&f->proc);
	dbi_stats_publish(&f->exp);
	dbi_stats_publish(&f->ext);
	dbi_stats_publish(&f->thr);

	uint64_t now = dbi_mono_ns();
	atomic_store_explicit(&f->main_thread->heartbeat_mono_ns, now, memory_order_relaxed);
	atomic_store_explicit(&f->proc_thread->heartbeat_mono_ns, now, memory_order_relaxed);
	/* the processor looks 30% busy and 40% on CPU */
	atomic_fetch_add_explicit(&f->proc_thread->busy_ns, 3 * DBI_NSEC_PER_MSEC, memory_order_relaxed);
	atomic_fetch_add_explicit(&f->proc_thread->cpu_ns, 4 * DBI_NSEC_PER_MSEC, memory_order_relaxed);
	atomic_store_explicit(&f->proc_thread->allocated_bytes, 12u << 20, memory_order_relaxed);
	dbi_shm_heartbeat(f->shm);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"name", required_argument, NULL, 'n'},      {"dir", required_argument, NULL, 'd'},
	        {"hugepages", required_argument, NULL, 'h'}, {"compat", required_argument, NULL, 'c'},
	        {"ready", required_argument, NULL, 'r'},     {NULL, 0, NULL, 0},
	};
	struct dbi_shm_opts o = {.name = "dbi.fixture", .hugepages = DBI_HP_OFF, .size = 8 << 20, .version = "fixture"};
	const char *ready = NULL;
	int compat = 0, c;
	struct dbi_errbuf err;
	struct fixture f = {0};

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.name = optarg;
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 'h':
			o.hugepages = strcmp(optarg, "on") == 0     ? DBI_HP_ON
			              : strcmp(optarg, "auto") == 0 ? DBI_HP_AUTO
			                                            : DBI_HP_OFF;
			break;
		case 'c':
			compat = (int)strtol(optarg, NULL, 10);
			break;
		case 'r':
			ready = optarg;
			break;
		default:
			return 1;
		}
	}
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	signal(SIGUSR1, on_reload);
	dbi_log_set_level(DBI_LOG_WARN);

	dbi_err_clear(&err);
	if (dbi_shm_create(&f.shm, &o, &err) != DBI_OK) {
		fprintf(stderr, "shmfixture: %s\n", err.msg);
		return 1;
	}
	if (compat) {
		dbi_shm_header(f.shm)->version = (uint32_t)compat;
		dbi_shm_header(f.shm)->compat_version = (uint32_t)compat;
	}
	build(&f, 0);
	dbi_shm_set_state(f.shm, DBI_RUN_RUNNING);
	tick(&f);
	if (ready) {
		char tmp[4096];
		snprintf(tmp, sizeof(tmp), "%s.tmp", ready);
		FILE *rf = fopen(tmp, "w");
		if (!rf || fprintf(rf, "%d\n", (int)getpid()) < 0 || fclose(rf) != 0 || rename(tmp, ready) != 0) {
			perror("shmfixture: ready file");
			return 1;
		}
	}
	while (!g_stop) {
		if (g_reload) {
			g_reload = 0;
			dbi_shm_set_state(f.shm, DBI_RUN_RELOADING);
			dbi_shm_reset(f.shm);
			build(&f, 1);
			dbi_shm_set_state(f.shm, DBI_RUN_RUNNING);
		}
		tick(&f);
		dbi_sleep_ns(TICK_NS);
	}
	dbi_shm_set_state(f.shm, DBI_RUN_STOPPING);
	dbi_shm_destroy(f.shm);
	return 0;
}
