/*
 * dbi-stat — show what a running dbi-collector is doing, like varnishstat or top: it
 * maps the collector's shared-memory segment read-only (it never writes to it and asks
 * the collector nothing), and prints rings, byte rings, counters and threads with
 * per-second rates. Live mode redraws every interval until q or Ctrl-C and follows the
 * collector across restarts and reloads; --once prints one snapshot (text or JSON).
 *
 * Exit status: 0 ok; 1 usage or unexpected error; 2 no collector running (no segment,
 * or a stale one); 3 incompatible segment layout; 4 permission denied.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "dbi/clock.h"
#include "dbi/version.h"
#include "dbistat.h"

#define EXIT_USAGE 1
#define EXIT_NO_COLLECTOR 2
#define EXIT_INCOMPAT 3
#define EXIT_PERM 4
#define NOTICE_NS (5 * DBI_NSEC_PER_SEC)

struct opts {
	const char *instance;
	const char *dir;
	int once, json;
	uint64_t interval_ns;
};

static volatile sig_atomic_t g_stop;
static int g_keys;   /* stdin is a terminal we put in raw mode */
static int g_screen; /* stdout is a terminal showing our alternate screen */
static struct termios g_saved_tio;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void term_restore(void)
{
	if (g_screen) {
		fputs("\033[?25h\033[?1049l", stdout);
		fflush(stdout);
		g_screen = 0;
	}
	if (g_keys) {
		tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_tio);
		g_keys = 0;
	}
}

static void term_setup(int json)
{
	struct termios t;
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &g_saved_tio) == 0) {
		t = g_saved_tio;
		/* keys without Enter and without echo; ISIG stays, so Ctrl-C still signals */
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		t.c_cc[VMIN] = 1;
		t.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
			g_keys = 1;
	}
	if (!json && isatty(STDOUT_FILENO)) {
		fputs("\033[?1049h\033[?25l", stdout);
		g_screen = 1;
	}
	atexit(term_restore);
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() must return to notice */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* Sleep for ns or until q/Ctrl-C. */
static void wait_interval(uint64_t ns)
{
	uint64_t end = dbi_mono_ns() + ns;
	while (!g_stop) {
		uint64_t now = dbi_mono_ns();
		if (now >= end)
			return;
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		int rc = poll(&pfd, g_keys ? 1 : 0, (int)((end - now + 999999) / 1000000));
		if (rc > 0) {
			char buf[64];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
			for (ssize_t i = 0; i < n; i++)
				if (buf[i] == 'q' || buf[i] == 'Q')
					g_stop = 1;
			if (n <= 0)
				g_keys = 0; /* stdin closed: stop watching it */
		}
	}
}

static int exit_code(enum dbi_attach_status st)
{
	switch (st) {
	case DBI_ATTACH_NOENT:
	case DBI_ATTACH_STALE:
		return EXIT_NO_COLLECTOR;
	case DBI_ATTACH_INCOMPAT:
		return EXIT_INCOMPAT;
	case DBI_ATTACH_PERM:
		return EXIT_PERM;
	default:
		return 1;
	}
}

/* Write a text frame: on a terminal, redraw in place (home, clear each line's rest, clear below). */
static void emit_frame(const char *buf, size_t len, int separate)
{
	if (!g_screen) {
		fwrite(buf, 1, len, stdout);
		if (separate)
			fputc('\n', stdout); /* frames follow each other in a pipe or file */
		fflush(stdout);
		return;
	}
	fputs("\033[H", stdout);
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n')
			fputs("\033[K", stdout);
		fputc(buf[i], stdout);
	}
	fputs("\033[J", stdout);
	fflush(stdout);
}

static void render(const struct opts *o, const struct st_view *v, int pretty, int separate)
{
	if (o->json) {
		st_render_json(stdout, v, pretty);
		fflush(stdout);
		return;
	}
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return;
	st_render_text(m, v);
	fclose(m);
	emit_frame(buf, len, separate);
	free(buf);
}

static int attach(const struct opts *o, struct dbi_shm **shm, enum dbi_attach_status *st, struct dbi_errbuf *err)
{
	dbi_err_clear(err);
	return dbi_shm_attach(shm, o->instance, o->dir, st, err);
}

static int run_once(const struct opts *o, struct dbi_shm *shm)
{
	struct st_dircache dc = {0};
	struct st_sample a = {0}, b = {0};
	struct st_view v = {.cur = &a};
	char notice[300];
	int rc = 0;

	if (st_sample_take(shm, &dc, &a) != 0)
		goto oom;
	if (o->interval_ns) {
		wait_interval(o->interval_ns);
		if (g_stop) {
			rc = 130; /* interrupted: no half-measured rates */
			goto out;
		}
		if (dbi_shm_replaced(shm)) {
			/* restarted between the samples: report the new one, without rates */
			struct dbi_errbuf err;
			enum dbi_attach_status st;
			int32_t old = a.pid;
			dbi_shm_detach(shm);
			st_dircache_free(&dc);
			if (attach(o, &shm, &st, &err) != DBI_OK) {
				shm = NULL;
				fprintf(stderr, "dbi-stat: collector (pid %d) went away: %s\n", old, err.msg);
				rc = exit_code(st);
				goto out;
			}
			if (st_sample_take(shm, &dc, &a) != 0)
				goto oom;
			snprintf(notice, sizeof(notice), "collector restarted (pid %d \xe2\x86\x92 %d), reattaching",
			         old, a.pid);
			v.notice = notice;
			fprintf(stderr, "dbi-stat: %s\n", notice);
		} else {
			if (st_sample_take(shm, &dc, &b) != 0)
				goto oom;
			v.prev = &a;
			v.cur = &b;
		}
	}
	render(o, &v, 1, 0);
	if (!v.cur->alive) {
		fprintf(stderr, "dbi-stat: collector pid %d is no longer running (its segment is stale)\n", v.cur->pid);
		rc = EXIT_NO_COLLECTOR;
	}
	goto out;
oom:
	fprintf(stderr, "dbi-stat: out of memory\n");
	rc = 1;
out:
	st_sample_free(&a);
	st_sample_free(&b);
	st_dircache_free(&dc);
	dbi_shm_detach(shm);
	return rc;
}

static void show_waiting(const struct opts *o, const char *msg)
{
	if (o->json) {
		fprintf(stderr, "dbi-stat: %s\n", msg);
		return;
	}
	char buf[1400];
	int n = snprintf(buf, sizeof(buf), "dbi-stat  instance %s\n! %s\n", o->instance, msg);
	if (n > 0)
		emit_frame(buf, DBI_MIN((size_t)n, sizeof(buf) - 1), 1);
}

static int run_live(const struct opts *o, struct dbi_shm *shm)
{
	struct st_dircache dc = {0};
	struct st_sample s[2] = {{0}};
	int cur = 0, have_prev = 0, rc = 0, waiting = 0;
	int32_t last_pid = dbi_shm_header(shm)->pid;
	char notice[1200] = "";
	uint64_t notice_until = 0;

	term_setup(o->json);
	while (!g_stop) {
		if (shm && dbi_shm_replaced(shm)) {
			dbi_shm_detach(shm);
			shm = NULL;
			st_dircache_free(&dc);
			have_prev = 0;
		}
		if (!shm) {
			struct dbi_errbuf err;
			enum dbi_attach_status st;
			if (attach(o, &shm, &st, &err) != DBI_OK) {
				shm = NULL;
				if (st == DBI_ATTACH_NOENT || st == DBI_ATTACH_STALE) {
					char msg[1300];
					snprintf(msg, sizeof(msg),
					         "collector (pid %d) went away: %s; waiting for it (q to quit)",
					         last_pid, err.msg);
					if (!waiting || !o->json)
						show_waiting(o, msg);
					waiting = 1;
					wait_interval(o->interval_ns);
					continue;
				}
				term_restore();
				fprintf(stderr, "dbi-stat: %s\n", err.msg);
				rc = exit_code(st);
				break;
			}
			int32_t pid = dbi_shm_header(shm)->pid;
			snprintf(notice, sizeof(notice), "collector restarted (pid %d \xe2\x86\x92 %d), reattaching",
			         last_pid, pid);
			notice_until = dbi_mono_ns() + NOTICE_NS;
			last_pid = pid;
			waiting = 0;
		}

		struct st_sample *now = &s[cur], *prev = have_prev ? &s[!cur] : NULL;
		if (st_sample_take(shm, &dc, now) != 0) {
			term_restore();
			fprintf(stderr, "dbi-stat: out of memory\n");
			rc = 1;
			break;
		}
		if (prev && prev->generation != now->generation) {
			snprintf(notice, sizeof(notice),
			         "collector reloaded (generation %llu \xe2\x86\x92 %llu): regions re-read",
			         (unsigned long long)prev->generation, (unsigned long long)now->generation);
			notice_until = now->mono_ns + NOTICE_NS;
		}
		if (!now->alive) {
			snprintf(notice, sizeof(notice),
			         "collector pid %d is not running (it exited without cleanup); waiting for a restart",
			         now->pid);
			notice_until = now->mono_ns + NOTICE_NS;
		}
		struct st_view v = {.prev = prev, .cur = now, .notice = now->mono_ns < notice_until ? notice : NULL};
		render(o, &v, 0, 1);
		have_prev = 1;
		cur = !cur;
		wait_interval(o->interval_ns);
	}
	term_restore();
	st_sample_free(&s[0]);
	st_sample_free(&s[1]);
	st_dircache_free(&dc);
	dbi_shm_detach(shm);
	return rc;
}

/* "1s", "500ms", "2.5s", "100us", "1m", bare seconds; 0 allowed. */
static int parse_interval(const char *s, uint64_t *ns)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0 || !isfinite(v))
		return -1;
	double mult = 1e9;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mult = 1e9;
	else if (strcmp(end, "ms") == 0)
		mult = 1e6;
	else if (strcmp(end, "us") == 0)
		mult = 1e3;
	else if (strcmp(end, "ns") == 0)
		mult = 1;
	else if (strcmp(end, "m") == 0)
		mult = 60e9;
	else
		return -1;
	if (v * mult > 86400e9)
		return -1;
	*ns = (uint64_t)(v * mult);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: dbi-stat [-n|--instance NAME] [--dir DIR] [--once] [--json] [-i|--interval DURATION]\n"
	           "\n"
	           "Show what a running dbi-collector is doing, read-only from its shared-memory segment.\n"
	           "\n"
	           "  -n, --instance NAME   collector instance (runtime.shm.name); default dbi.main\n"
	           "      --dir DIR         segment directory (runtime.shm.dir); default /dev/shm\n"
	           "      --once            print one snapshot and exit; rates are measured over --interval\n"
	           "      --json            JSON instead of text: one object with --once, one per line live\n"
	           "  -i, --interval DUR    refresh interval and rate window: 1s (default), 500ms, 2s;\n"
	           "                        0 takes a single sample without rates (--once only)\n"
	           "  -h, --help            this help\n"
	           "  -V, --version         version\n"
	           "\n"
	           "Live mode: q or Ctrl-C quits.\n"
	           "Exit status: 0 ok, 1 usage or other error, 2 no collector running (or stale segment),\n"
	           "3 incompatible segment version, 4 permission denied.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"instance", required_argument, NULL, 'n'}, {"dir", required_argument, NULL, 'd'},
	        {"once", no_argument, NULL, 'o'},           {"json", no_argument, NULL, 'j'},
	        {"interval", required_argument, NULL, 'i'}, {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},        {NULL, 0, NULL, 0},
	};
	struct opts o = {.instance = "dbi.main", .interval_ns = DBI_NSEC_PER_SEC};
	struct dbi_shm *shm = NULL;
	struct dbi_errbuf err;
	enum dbi_attach_status st;
	int c;

	while ((c = getopt_long(argc, argv, "n:i:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.instance = optarg;
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 'o':
			o.once = 1;
			break;
		case 'j':
			o.json = 1;
			break;
		case 'i':
			if (parse_interval(optarg, &o.interval_ns) != 0) {
				fprintf(stderr, "dbi-stat: bad --interval '%s' (examples: 1s, 500ms, 2.5s, 0)\n",
				        optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("dbi-stat %s (%s), segment layout version %d\n", DBI_VERSION, DBI_GIT_VERSION,
			       DBI_SHM_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dbi-stat: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!o.once && o.interval_ns < 10 * DBI_NSEC_PER_MSEC) {
		fprintf(stderr, "dbi-stat: live mode needs an --interval of at least 10ms (0 is for --once)\n");
		return EXIT_USAGE;
	}
	install_signals();
	if (attach(&o, &shm, &st, &err) != DBI_OK) {
		fprintf(stderr, "dbi-stat: %s\n", err.msg);
		return exit_code(st);
	}
	return o.once ? run_once(&o, shm) : run_live(&o, shm);
}
