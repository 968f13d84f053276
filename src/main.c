/*
 * main.c — dbi-collector: parse the command line, load and validate the config, build
 * and start the runtime, then sit in the signal loop: SIGHUP reloads (a bad new config
 * is refused and the old one keeps running), SIGTERM/SIGINT drain and exit 0. The main
 * thread also does the runtime's housekeeping (heartbeat, process stats) every 100 ms.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dbi/clock.h"
#include "dbi/component.h"
#include "dbi/config.h"
#include "dbi/log.h"
#include "dbi/runtime.h"
#include "dbi/version.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: dbi-collector [--config FILE] [--log-level debug|info|warn|error]\n"
	           "       dbi-collector validate --config FILE\n"
	           "       dbi-collector --help | --version\n"
	           "\n"
	           "Scrapes PostgreSQL fleets, ingests OTLP and PostgreSQL logs, exports to OpenTelemetry\n"
	           "backends and Prometheus. Signals: SIGHUP reloads the config, SIGTERM/SIGINT drain and exit.\n"
	           "The config is YAML in the OpenTelemetry Collector's shape; every component and key:\n\n");
}

static void version(void)
{
	time_t t = (time_t)DBI_BUILD_EPOCH;
	struct tm tm;
	char when[32];
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("dbi-collector %s (git %s, built %s, %s)\n", DBI_VERSION, DBI_GIT_VERSION, when, DBI_BUILD_FLAGS);
}

static struct dbi_config *load(const char *path, struct dbi_errbuf *err)
{
	struct dbi_config *cfg = NULL;
	dbi_err_clear(err);
	if (dbi_config_load(path, dbi_components, &cfg, err) != DBI_OK)
		return NULL;
	return cfg;
}

static void apply_log_level(const struct dbi_config *cfg, const char *cli_level)
{
	enum dbi_log_level lvl;
	const char *l = cli_level ? cli_level : cfg->service.log_level;
	if (l && dbi_log_parse_level(l, &lvl) == DBI_OK)
		dbi_log_set_level(lvl);
}

/* Configs a running runtime may still point into; freed after a full rebuild or at exit. */
static struct dbi_config *retired[64];
static size_t nretired;

static void retire(struct dbi_config *cfg)
{
	if (nretired == DBI_ARRAY_LEN(retired)) {
		/* far too many in-place reloads without a rebuild: keep the newest half */
		dbi_config_free(retired[0]);
		memmove(retired, retired + 1, (--nretired) * sizeof(retired[0]));
	}
	retired[nretired++] = cfg;
}

static void free_retired(void)
{
	while (nretired)
		dbi_config_free(retired[--nretired]);
}

static int run(const char *path, const char *cli_level)
{
	struct dbi_errbuf err;
	struct dbi_config *cfg = load(path, &err);
	struct dbi_runtime *rt = NULL;
	sigset_t set;
	int rc = 0;

	if (!cfg) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	apply_log_level(cfg, cli_level);

	/* Every thread inherits this mask; only the main thread takes these signals. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct dbi_runtime_opts ro = {.version = DBI_VERSION " " DBI_GIT_VERSION};
	dbi_err_clear(&err);
	if (dbi_runtime_create(&rt, cfg, &ro, &err) != DBI_OK) {
		DBI_LOGE("main", "cannot build the pipelines", "error=\"%s\"", err.msg);
		fprintf(stderr, "dbi-collector: %s\n", err.msg);
		dbi_config_free(cfg);
		return 2;
	}
	if (dbi_runtime_start(rt, &err) != DBI_OK) {
		DBI_LOGE("main", "cannot start", "error=\"%s\"", err.msg);
		fprintf(stderr, "dbi-collector: %s\n", err.msg);
		dbi_runtime_destroy(rt);
		dbi_config_free(cfg);
		return 2;
	}
	DBI_LOGI("main", "started", "version=%s config=%s pid=%d instance=%s", DBI_VERSION, path, (int)getpid(),
	         cfg->runtime.shm_name);

	for (;;) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		int sig = sigtimedwait(&set, NULL, &ts);
		dbi_runtime_housekeeping(rt);
		if (sig < 0)
			continue;
		if (sig == SIGHUP) {
			DBI_LOGI("main", "SIGHUP: reloading config", "config=%s", path);
			struct dbi_config *ncfg = load(path, &err);
			if (!ncfg) {
				DBI_LOGE("main", "reload refused: the new config is invalid; the old one keeps running",
				         "errors=\"%s\"", err.msg);
				continue;
			}
			dbi_err_clear(&err);
			if (dbi_runtime_reload(rt, ncfg, &err) != DBI_OK) {
				DBI_LOGE("main", "reload failed; the old config keeps running", "error=\"%s\"",
				         err.msg);
				dbi_config_free(ncfg);
				continue;
			}
			/* the runtime may still point into the old config (in-place reload) */
			retire(cfg);
			cfg = ncfg;
			apply_log_level(cfg, cli_level);
			DBI_LOGI("main", "reload applied", "config=%s", path);
			continue;
		}
		DBI_LOGI("main", "stopping: draining pipelines", "signal=%s timeout_ms=%llu", strsignal(sig),
		         (unsigned long long)(cfg->service.shutdown_timeout / DBI_NSEC_PER_MSEC));
		if (dbi_runtime_stop(rt, cfg->service.shutdown_timeout) != DBI_OK)
			DBI_LOGW("main", "shutdown deadline passed before everything drained", "");
		break;
	}
	struct dbi_runtime_totals t;
	dbi_runtime_totals(rt, &t);
	DBI_LOGI("main", "stopped", "points_in=%llu points_out=%llu records_in=%llu records_out=%llu dropped=%llu",
	         (unsigned long long)t.points_in, (unsigned long long)t.points_out, (unsigned long long)t.records_in,
	         (unsigned long long)t.records_out, (unsigned long long)t.dropped);
	dbi_runtime_destroy(rt);
	dbi_config_free(cfg);
	free_retired();
	return rc;
}

static int validate(const char *path)
{
	struct dbi_errbuf err;
	struct dbi_config *cfg = load(path, &err);
	if (!cfg) {
		fprintf(stderr, "%s\n", err.msg);
		fprintf(stderr, "%s: %d error%s\n", path, err.count, err.count == 1 ? "" : "s");
		return 1;
	}
	printf("%s: valid (%zu components, %zu pipelines)\n", path, cfg->ncomponents, cfg->npipelines);
	dbi_config_free(cfg);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"log-level", required_argument, NULL, 'l'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *level = NULL;
	int do_validate = 0, c;

	if (argc > 1 && strcmp(argv[1], "validate") == 0) {
		do_validate = 1;
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	while ((c = getopt_long(argc, argv, "c:l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'l':
			level = optarg;
			break;
		case 'h':
			usage(stdout);
			dbi_config_print_help(stdout, dbi_components);
			return 0;
		case 'V':
			version();
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dbi-collector: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 64;
	}
	if (level) {
		enum dbi_log_level l;
		if (dbi_log_parse_level(level, &l) != DBI_OK) {
			fprintf(stderr, "dbi-collector: --log-level must be debug, info, warn or error\n");
			return 64;
		}
		dbi_log_set_level(l);
	}
	if (!config) {
		fprintf(stderr, "dbi-collector: --config FILE is required (see --help)\n");
		return 64;
	}
	return do_validate ? validate(config) : run(config, level);
}
