/*
 * dbi-loadgen — synthetic load for benchmarks and soak tests, printing JSON.
 *
 *   dbi-loadgen pipeline [--targets N] [--series M] [--rate R] [--duration D]
 *                        [--processors K] [--batch-size B (0 = no batch processor)] [--batch-timeout T]
 *                        [--threads P] [--ring-points S]
 *       runs loadgen receiver → batch → nop exporter in this process and reports
 *       whole-pipeline throughput (points/s) and enqueue→exporter latency (p50/p99/max).
 *       --rate 0 means as fast as the pipeline takes points.
 *
 *   dbi-loadgen otlp [--endpoint URL] [--rate R] [--points-per-request N] [--series S]
 *                    [--duration D] [--gzip]
 *       sends OTLP/HTTP protobuf metric requests (one gauge, S series cycled) at R points/s
 *       to a running collector's /v1/metrics over one keep-alive connection and reports
 *       requests, accepted points, errors by HTTP status and request latency (p50/p99/max).
 *       --rate 0 sends back to back.
 */
#include <getopt.h>
#include <math.h>
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
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"

#include <curl/curl.h>
#include <zlib.h>

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
	                "                           [--batch-timeout T] [--ring-points S]\n"
	                "       dbi-loadgen otlp [--endpoint URL] [--rate R] [--points-per-request N]\n"
	                "                        [--series S] [--duration D] [--gzip]\n");
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
	/* --batch-size 0: no batch processor, so latency is the rings and threads alone */
	char batchproc[160] = "", chain[32] = "[]";
	if (batch > 0) {
		snprintf(batchproc, sizeof(batchproc),
		         "processors:\n  batch:\n    send_batch_size: %ld\n    timeout: %s\n", batch, timeout);
		snprintf(chain, sizeof(chain), "[batch]");
	}
	char yaml[2048];
	snprintf(yaml, sizeof(yaml),
	         "receivers:\n  loadgen:\n    targets: %ld\n    series_per_target: %ld\n    rate: %ld\n"
	         "    threads: %ld\n"
	         "%s"
	         "exporters:\n  nop:\n    latency_warmup: %llums\n"
	         "service:\n  pipelines:\n    metrics:\n      receivers: [loadgen]\n      processors: %s\n"
	         "      exporters: [nop]\n"
	         "runtime:\n  shm: {name: dbi.loadgen.%d, hugepages: auto}\n  threads: {processors: %ld}\n"
	         "  rings: {points: %ld}\n",
	         targets, series, rate, threads, batchproc, (unsigned long long)(dur_ns / 10 / DBI_NSEC_PER_MSEC),
	         chain, (int)getpid(), processors, ring);
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

/* ---- otlp: OTLP/HTTP protobuf metric requests to a running collector ---- */

typedef Opentelemetry__Proto__Common__V1__KeyValue lg_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue lg_any;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint lg_point;

/* One request's worth of protobuf-c structures, reused for every request. */
struct lg_req {
	Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest req;
	Opentelemetry__Proto__Metrics__V1__ResourceMetrics rm, *rms[1];
	Opentelemetry__Proto__Resource__V1__Resource res;
	lg_kv res_kv[2], *res_kvs[2];
	lg_any res_v[2];
	Opentelemetry__Proto__Metrics__V1__ScopeMetrics sm, *sms[1];
	Opentelemetry__Proto__Common__V1__InstrumentationScope scope;
	Opentelemetry__Proto__Metrics__V1__Metric metric, *metrics[1];
	Opentelemetry__Proto__Metrics__V1__Gauge gauge;
	lg_point *pts, **ptrs;
	lg_kv *kv, **kvs;
	lg_any *v;
	size_t n;
};

static int lg_req_init(struct lg_req *r, size_t n)
{
	static char rk[][16] = {"service.name", "host.name"};
	static char rv[][16] = {"dbi-loadgen", "loadgen-host"};
	memset(r, 0, sizeof(*r));
	r->n = n;
	r->pts = calloc(n, sizeof(*r->pts));
	r->ptrs = calloc(n, sizeof(*r->ptrs));
	r->kv = calloc(n, sizeof(*r->kv));
	r->kvs = calloc(n, sizeof(*r->kvs));
	r->v = calloc(n, sizeof(*r->v));
	if (!r->pts || !r->ptrs || !r->kv || !r->kvs || !r->v)
		return DBI_ERR;
	opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__init(&r->req);
	opentelemetry__proto__metrics__v1__resource_metrics__init(&r->rm);
	opentelemetry__proto__resource__v1__resource__init(&r->res);
	opentelemetry__proto__metrics__v1__scope_metrics__init(&r->sm);
	opentelemetry__proto__common__v1__instrumentation_scope__init(&r->scope);
	opentelemetry__proto__metrics__v1__metric__init(&r->metric);
	opentelemetry__proto__metrics__v1__gauge__init(&r->gauge);
	for (int i = 0; i < 2; i++) {
		opentelemetry__proto__common__v1__key_value__init(&r->res_kv[i]);
		opentelemetry__proto__common__v1__any_value__init(&r->res_v[i]);
		r->res_v[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
		r->res_v[i].string_value = rv[i];
		r->res_kv[i].key = rk[i];
		r->res_kv[i].value = &r->res_v[i];
		r->res_kvs[i] = &r->res_kv[i];
	}
	r->res.n_attributes = 2;
	r->res.attributes = r->res_kvs;
	r->scope.name = "dbi-loadgen";
	r->metric.name = "loadgen.otlp.gauge";
	r->metric.unit = "1";
	r->metric.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
	r->metric.gauge = &r->gauge;
	r->gauge.n_data_points = n;
	r->gauge.data_points = r->ptrs;
	for (size_t i = 0; i < n; i++) {
		opentelemetry__proto__metrics__v1__number_data_point__init(&r->pts[i]);
		opentelemetry__proto__common__v1__key_value__init(&r->kv[i]);
		opentelemetry__proto__common__v1__any_value__init(&r->v[i]);
		r->v[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
		r->kv[i].key = "series";
		r->kv[i].value = &r->v[i];
		r->kvs[i] = &r->kv[i];
		r->pts[i].n_attributes = 1;
		r->pts[i].attributes = &r->kvs[i];
		r->pts[i].value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
		r->ptrs[i] = &r->pts[i];
	}
	r->metrics[0] = &r->metric;
	r->sm.scope = &r->scope;
	r->sm.n_metrics = 1;
	r->sm.metrics = r->metrics;
	r->sms[0] = &r->sm;
	r->rm.resource = &r->res;
	r->rm.n_scope_metrics = 1;
	r->rm.scope_metrics = r->sms;
	r->rms[0] = &r->rm;
	r->req.n_resource_metrics = 1;
	r->req.resource_metrics = r->rms;
	return DBI_OK;
}

static void lg_req_free(struct lg_req *r)
{
	free(r->pts);
	free(r->ptrs);
	free(r->kv);
	free(r->kvs);
	free(r->v);
}

static size_t lg_discard(char *p, size_t size, size_t n, void *u)
{
	(void)p;
	(void)u;
	return size * n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int otlp_mode(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"endpoint", required_argument, NULL, 'e'},
	        {"rate", required_argument, NULL, 'r'},
	        {"points-per-request", required_argument, NULL, 'n'},
	        {"series", required_argument, NULL, 's'},
	        {"duration", required_argument, NULL, 'd'},
	        {"gzip", no_argument, NULL, 'z'},
	        {NULL, 0, NULL, 0},
	};
	const char *endpoint = "http://127.0.0.1:4318", *duration = "10s";
	long rate = 10000, ppr = 100, series = 1000;
	int use_gzip = 0, c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			endpoint = optarg;
			break;
		case 'r':
			rate = num(optarg, "--rate");
			break;
		case 'n':
			ppr = num(optarg, "--points-per-request");
			break;
		case 's':
			series = num(optarg, "--series");
			break;
		case 'd':
			duration = optarg;
			break;
		case 'z':
			use_gzip = 1;
			break;
		default:
			usage();
			return 64;
		}
	}
	uint64_t dur_ns;
	if (dbi_parse_duration(duration, &dur_ns) != DBI_OK || dur_ns == 0 || ppr < 1 || series < 1) {
		fprintf(stderr, "dbi-loadgen: bad --duration, --points-per-request or --series\n");
		return 64;
	}
	char url[512];
	snprintf(url, sizeof(url), "%s%s%s", strstr(endpoint, "://") ? "" : "http://", endpoint,
	         strstr(endpoint, "/v1/metrics") ? "" : "/v1/metrics");

	struct lg_req rq;
	CURL *curl = curl_easy_init();
	size_t maxlat = 1u << 21, nlat = 0;
	uint64_t *lat = malloc(maxlat * sizeof(*lat));
	size_t cap = 1 << 20;
	uint8_t *buf = malloc(cap), *zbuf = malloc(cap);
	struct curl_slist *hdrs = NULL;
	int ret = 1;
	if (lg_req_init(&rq, (size_t)ppr) != DBI_OK || !curl || !lat || !buf || !zbuf) {
		fprintf(stderr, "dbi-loadgen: out of memory\n");
		goto out;
	}
	hdrs = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
	if (use_gzip)
		hdrs = curl_slist_append(hdrs, "Content-Encoding: gzip");
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, lg_discard);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);

	uint64_t statuses[600] = {0}, conn_errors = 0, requests = 0, points_ok = 0, bytes = 0, next_series = 0;
	uint64_t interval = rate ? (uint64_t)((double)ppr * 1e9 / (double)rate) : 0;
	uint64_t t0 = dbi_mono_ns(), due = t0;
	double value = 0;
	while (dbi_mono_ns() - t0 < dur_ns) {
		if (interval) {
			uint64_t now = dbi_mono_ns();
			if (now < due)
				dbi_sleep_ns(due - now);
			due += interval;
		}
		uint64_t wall = dbi_wall_ns();
		for (size_t i = 0; i < rq.n; i++) {
			rq.pts[i].time_unix_nano = wall;
			rq.pts[i].as_double = value++;
			rq.v[i].int_value = (int64_t)(next_series++ % (uint64_t)series);
		}
		size_t len =
		        opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__get_packed_size(
		                &rq.req);
		if (len > cap) {
			uint8_t *nb = realloc(buf, len * 2), *nz = nb ? realloc(zbuf, len * 2) : NULL;
			if (nb)
				buf = nb;
			if (!nb || !nz) {
				fprintf(stderr, "dbi-loadgen: out of memory\n");
				goto out;
			}
			zbuf = nz;
			cap = len * 2;
		}
		opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__pack(&rq.req, buf);
		const uint8_t *body = buf;
		if (use_gzip) {
			z_stream z = {0};
			deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
			z.next_in = buf;
			z.avail_in = (uInt)len;
			z.next_out = zbuf;
			z.avail_out = (uInt)cap;
			deflate(&z, Z_FINISH);
			len = z.total_out;
			deflateEnd(&z);
			body = zbuf;
		}
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
		uint64_t s0 = dbi_mono_ns();
		CURLcode rc = curl_easy_perform(curl);
		uint64_t el = dbi_mono_ns() - s0;
		requests++;
		bytes += len;
		if (nlat < maxlat)
			lat[nlat++] = el;
		long code = 0;
		if (rc == CURLE_OK)
			curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
		if (rc != CURLE_OK || code < 100 || code >= 600) {
			conn_errors++;
			continue;
		}
		statuses[code]++;
		if (code == 200)
			points_ok += (uint64_t)ppr;
	}
	double secs = (double)(dbi_mono_ns() - t0) / 1e9;
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	size_t i50 = nlat / 2, i99 = nlat ? (size_t)floor((double)(nlat - 1) * 0.99) : 0;
	printf("{\"mode\":\"otlp\",\"endpoint\":\"%s\",\"rate\":%ld,\"points_per_request\":%ld,\"series\":%ld,"
	       "\"gzip\":%s,\"seconds\":%.3f,\"requests\":%llu,\"points\":%llu,\"points_per_sec\":%.0f,"
	       "\"bytes_sent\":%llu,\"errors\":{",
	       url, rate, ppr, series, use_gzip ? "true" : "false", secs, (unsigned long long)requests,
	       (unsigned long long)points_ok, (double)points_ok / secs, (unsigned long long)bytes);
	const char *sep = "";
	for (int i = 0; i < 600; i++) {
		if (i != 200 && statuses[i]) {
			printf("%s\"%d\":%llu", sep, i, (unsigned long long)statuses[i]);
			sep = ",";
		}
	}
	if (conn_errors)
		printf("%s\"connection\":%llu", sep, (unsigned long long)conn_errors);
	printf("},\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}}\n", nlat ? (double)lat[i50] / 1e6 : 0.0,
	       nlat ? (double)lat[i99] / 1e6 : 0.0, nlat ? (double)lat[nlat - 1] / 1e6 : 0.0);
	ret = conn_errors == requests && requests ? 1 : 0;
out:
	curl_slist_free_all(hdrs);
	if (curl)
		curl_easy_cleanup(curl);
	lg_req_free(&rq);
	free(lat);
	free(buf);
	free(zbuf);
	return ret;
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
	if (strcmp(argv[1], "otlp") == 0)
		return otlp_mode(argc - 1, argv + 1);
	fprintf(stderr, "dbi-loadgen: unknown mode '%s'\n", argv[1]);
	usage();
	return 64;
}
