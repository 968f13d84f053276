/*
 * dbi-loadgen — synthetic load for benchmarks and soak tests, printing JSON.
 *
 *   dbi-loadgen pipeline [--targets N] [--series M] [--rate R] [--duration D]
 *                        [--processors K] [--batch-size B] [--batch-timeout T]
 *                        [--threads P] [--ring-points S]
 *       runs loadgen receiver → batch → nop exporter in this process and reports
 *       whole-pipeline throughput (points/s) and enqueue→exporter latency (p50/p99/max).
 *       --rate 0 means as fast as the pipeline takes points.
 *
 * Other modes (OTLP traffic to a running collector) are added by the OTLP work.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/log.h"
#include "dbi/proc.h"
#include "dbi/runtime.h"
#include "dbi/shm.h"
#include "dbi/stats.h"

static double cpu_seconds(void)
{
	return (double)dbi_proc_cpu_ns() / 1e9;
}

/* Read one counter of a component's stats block from the segment by block id. */
static uint64_t stat_of(struct dbi_shm *shm, const char *block, const char *counter)
{
	struct dbi_shm_header *h = dbi_shm_header(shm);
	const struct dbi_shm_region *dir = (const void *)((const char *)h + h->dir_offset);
	uint32_t n = atomic_load(&h->nregions);
	for (uint32_t i = 0; i < n; i++) {
		if (dir[i].kind != DBI_REGION_STATS)
			continue;
		const struct dbi_stats_block *b = (const void *)((const char *)h + dir[i].offset);
		if (strcmp(b->id, block) != 0)
			continue;
		struct dbi_stats_block snap;
		if (dbi_stats_snapshot(b, &snap) != DBI_OK)
			return 0;
		for (uint32_t k = 0; k < snap.n; k++)
			if (strcmp(snap.names[k], counter) == 0)
				return snap.v[k];
	}
	return 0;
}

static long num(const char *s, const char *flag)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 0) {
		fprintf(stderr, "dbi-loadgen: %s needs a non-negative integer, not '%s'\n", flag, s);
		exit(64);
	}
	return v;
}

static void usage(void)
{
	fprintf(stderr, "usage: dbi-loadgen pipeline [--targets N] [--series M] [--rate R] [--duration D]\n"
	                "                           [--processors K] [--threads P] [--batch-size B]\n"
	                "                           [--batch-timeout T] [--ring-points S]\n");
}

static int pipeline(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"targets", required_argument, NULL, 't'},     {"series", required_argument, NULL, 's'},
	        {"rate", required_argument, NULL, 'r'},        {"duration", required_argument, NULL, 'd'},
	        {"processors", required_argument, NULL, 'p'},  {"threads", required_argument, NULL, 'T'},
	        {"batch-size", required_argument, NULL, 'b'},  {"batch-timeout", required_argument, NULL, 'o'},
	        {"ring-points", required_argument, NULL, 'R'}, {NULL, 0, NULL, 0},
	};
	long targets = 100, series = 100, rate = 0, processors = 1, threads = 1, batch = 8192, ring = 65536;
	const char *duration = "5s", *timeout = "200ms";
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			targets = num(optarg, "--targets");
			break;
		case 's':
			series = num(optarg, "--series");
			break;
		case 'r':
			rate = num(optarg, "--rate");
			break;
		case 'd':
			duration = optarg;
			break;
		case 'p':
			processors = num(optarg, "--processors");
			break;
		case 'T':
			threads = num(optarg, "--threads");
			break;
		case 'b':
			batch = num(optarg, "--batch-size");
			break;
		case 'o':
			timeout = optarg;
			break;
		case 'R':
			ring = num(optarg, "--ring-points");
			break;
		default:
			usage();
			return 64;
		}
	}
	uint64_t dur_ns;
	if (dbi_parse_duration(duration, &dur_ns) != DBI_OK || dur_ns == 0) {
		fprintf(stderr, "dbi-loadgen: bad --duration '%s'\n", duration);
		return 64;
	}
	char yaml[2048];
	snprintf(yaml, sizeof(yaml),
	         "receivers:\n  loadgen:\n    targets: %ld\n    series_per_target: %ld\n    rate: %ld\n"
	         "    threads: %ld\n"
	         "processors:\n  batch:\n    send_batch_size: %ld\n    timeout: %s\n"
	         "exporters:\n  nop:\n"
	         "service:\n  pipelines:\n    metrics:\n      receivers: [loadgen]\n      processors: [batch]\n"
	         "      exporters: [nop]\n"
	         "runtime:\n  shm: {name: dbi.loadgen.%d, hugepages: auto}\n  threads: {processors: %ld}\n"
	         "  rings: {points: %ld}\n",
	         targets, series, rate, threads, batch, timeout, (int)getpid(), processors, ring);
	struct dbi_errbuf err;
	struct dbi_config *cfg = NULL;
	dbi_err_clear(&err);
	if (dbi_config_load_string(yaml, "<dbi-loadgen>", dbi_components, &cfg, &err) != DBI_OK) {
		fprintf(stderr, "dbi-loadgen: %s\n", err.msg);
		return 1;
	}
	struct dbi_runtime *rt = NULL;
	if (dbi_runtime_create(&rt, cfg, NULL, &err) != DBI_OK || dbi_runtime_start(rt, &err) != DBI_OK) {
		fprintf(stderr, "dbi-loadgen: %s\n", err.msg);
		if (rt)
			dbi_runtime_destroy(rt);
		dbi_config_free(cfg);
		return 1;
	}
	/* warm up for a tenth of the run, then measure */
	uint64_t warm = dur_ns / 10;
	uint64_t t0 = dbi_mono_ns();
	while (dbi_mono_ns() - t0 < warm) {
		dbi_runtime_housekeeping(rt);
		dbi_sleep_ns(50 * DBI_NSEC_PER_MSEC);
	}
	struct dbi_runtime_totals a, b;
	dbi_runtime_totals(rt, &a);
	double cpu0 = cpu_seconds();
	uint64_t m0 = dbi_mono_ns();
	while (dbi_mono_ns() - m0 < dur_ns) {
		dbi_runtime_housekeeping(rt);
		dbi_sleep_ns(50 * DBI_NSEC_PER_MSEC);
	}
	dbi_runtime_totals(rt, &b);
	double secs = (double)(dbi_mono_ns() - m0) / 1e9, cpu = cpu_seconds() - cpu0;
	struct dbi_shm *shm = dbi_runtime_shm(rt);
	uint64_t p50 = stat_of(shm, "exporter:nop", "latency_p50_ns");
	uint64_t p99 = stat_of(shm, "exporter:nop", "latency_p99_ns");
	uint64_t pmax = stat_of(shm, "exporter:nop", "latency_max_ns");
	int stop_rc = dbi_runtime_stop(rt, 5 * DBI_NSEC_PER_SEC);
	struct dbi_runtime_totals fin;
	dbi_runtime_totals(rt, &fin);
	printf("{\"mode\":\"pipeline\",\"targets\":%ld,\"series_per_target\":%ld,\"rate\":%ld,\"processors\":%ld,"
	       "\"producer_threads\":%ld,\"batch_size\":%ld,\"seconds\":%.3f,\"points\":%llu,"
	       "\"points_per_sec\":%.0f,\"latency_ns\":{\"p50\":%llu,\"p99\":%llu,\"max\":%llu},"
	       "\"cpu_seconds\":%.3f,\"cpu_per_point_ns\":%.1f,\"total_in\":%llu,\"total_out\":%llu,"
	       "\"dropped\":%llu,\"drained\":%s}\n",
	       targets, series, rate, processors, threads, batch, secs,
	       (unsigned long long)(b.points_out - a.points_out), (double)(b.points_out - a.points_out) / secs,
	       (unsigned long long)p50, (unsigned long long)p99, (unsigned long long)pmax, cpu,
	       b.points_out > a.points_out ? cpu * 1e9 / (double)(b.points_out - a.points_out) : 0.0,
	       (unsigned long long)fin.points_in, (unsigned long long)fin.points_out, (unsigned long long)fin.dropped,
	       stop_rc == DBI_OK && fin.points_in == fin.points_out ? "true" : "false");
	dbi_runtime_destroy(rt);
	dbi_config_free(cfg);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage();
		return argc < 2 ? 64 : 0;
	}
	dbi_log_set_level(DBI_LOG_WARN);
	if (strcmp(argv[1], "pipeline") == 0)
		return pipeline(argc - 1, argv + 1);
	fprintf(stderr, "dbi-loadgen: unknown mode '%s'\n", argv[1]);
	usage();
	return 64;
}
