/*
 * pgtest.c — the throwaway-PostgreSQL harness of pgtest.h for C integration tests.
 *
 * The cluster recipe lives in scripts/pg-cluster.sh; this file runs it, parses the `export`
 * lines it prints, talks to the server with libpq, and keeps a process-global registry of
 * everything it started (clusters, temp dirs, background pgbench runs). The registry is
 * emptied at exit and by fatal-signal handlers, which then re-raise the signal. That cleanup
 * path uses only async-signal-safe calls (fork, execve, waitpid, kill) on data prepared when
 * the entry was registered, and it runs only in the process that registered the entries, never
 * in a forked child.
 */
#include "pgtest.h"

#include "dbi/common.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum pgtest_kind { PGTEST_FREE = 0, PGTEST_CLUSTER, PGTEST_TMPDIR, PGTEST_PGBENCH };

struct pgtest_slot {
	volatile sig_atomic_t kind;
	pid_t pid; /* PGTEST_PGBENCH: pid and process group */
	char path[DBI_PGTEST_PATH];
};

#define PGTEST_SLOTS 64
#define PGTEST_MAXARGS 96

static struct pgtest_slot pgtest_slots[PGTEST_SLOTS];
static pthread_mutex_t pgtest_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile pid_t pgtest_owner; /* the process whose registry this is */
static char pgtest_script[PATH_MAX];
static char pgtest_rootdir[PATH_MAX];
static bool pgtest_ready;
static bool pgtest_swept;

static const int pgtest_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};

/* --- cleanup: async-signal-safe ------------------------------------------------------- */

static void pgtest_run_wait(const char *path, char *const argv[])
{
	pid_t pid = fork();
	if (pid == 0) {
		execve(path, argv, environ);
		_exit(127);
	}
	if (pid < 0)
		return;
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void pgtest_cleanup_slot(struct pgtest_slot *s)
{
	char *argv[5];

	switch (s->kind) {
	case PGTEST_PGBENCH:
		if (s->pid > 0) {
			kill(-s->pid, SIGKILL);
			while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		break;
	case PGTEST_CLUSTER:
		argv[0] = pgtest_script;
		argv[1] = (char *)"stop";
		argv[2] = s->path;
		argv[3] = NULL;
		pgtest_run_wait(pgtest_script, argv);
		break;
	case PGTEST_TMPDIR:
		argv[0] = (char *)"rm";
		argv[1] = (char *)"-rf";
		argv[2] = (char *)"--";
		argv[3] = s->path;
		argv[4] = NULL;
		pgtest_run_wait("/bin/rm", argv);
		break;
	default:
		break;
	}
	s->kind = PGTEST_FREE;
}

static void pgtest_cleanup_unlocked(void)
{
	size_t i;
	int pass;

	if (pgtest_owner == 0 || getpid() != pgtest_owner)
		return;
	/* pgbench first (it talks to the clusters), then clusters, then plain directories. */
	for (pass = PGTEST_PGBENCH; pass >= PGTEST_CLUSTER; pass--)
		for (i = 0; i < PGTEST_SLOTS; i++)
			if (pgtest_slots[i].kind == pass)
				pgtest_cleanup_slot(&pgtest_slots[i]);
}

static void pgtest_on_signal(int sig)
{
	static volatile sig_atomic_t busy;
	int saved = errno;

	if (!busy) {
		busy = 1;
		pgtest_cleanup_unlocked();
	}
	signal(sig, SIG_DFL);
	raise(sig); /* blocked until the handler returns, then kills us the default way */
	errno = saved;
}

static void pgtest_atexit(void)
{
	dbi_pgtest_cleanup_all();
}

void dbi_pgtest_cleanup_all(void)
{
	pthread_mutex_lock(&pgtest_lock);
	pgtest_cleanup_unlocked();
	pthread_mutex_unlock(&pgtest_lock);
}

/* --- setup ---------------------------------------------------------------------------- */

/* Catch the fatal signals whose disposition is still the default (the test's own win). */
static void pgtest_install_handlers(void)
{
	struct sigaction sa, old;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pgtest_on_signal;
	sigfillset(&sa.sa_mask);
	for (i = 0; i < DBI_ARRAY_LEN(pgtest_signals); i++) {
		if (sigaction(pgtest_signals[i], NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
		    old.sa_handler == SIG_DFL)
			sigaction(pgtest_signals[i], &sa, NULL);
	}
}

static void pgtest_init(void)
{
	const char *env;
	size_t i;

	pthread_mutex_lock(&pgtest_lock);
	if (pgtest_ready && pgtest_owner == getpid())
		goto out;
	if (pgtest_ready) {
		/* A forked child starting its own clusters: the parent's entries are not ours. */
		for (i = 0; i < PGTEST_SLOTS; i++)
			pgtest_slots[i].kind = PGTEST_FREE;
		pgtest_owner = getpid();
		pgtest_swept = false;
		pgtest_install_handlers();
		goto out;
	}

	env = getenv("DBI_PG_CLUSTER_SCRIPT");
	if (env && *env)
		snprintf(pgtest_script, sizeof(pgtest_script), "%s", env);
	else if ((env = getenv("DBI_SOURCE_DIR")) && *env)
		snprintf(pgtest_script, sizeof(pgtest_script), "%s/scripts/pg-cluster.sh", env);
	else
		snprintf(pgtest_script, sizeof(pgtest_script), "%s/scripts/pg-cluster.sh", DBI_SOURCE_DIR);

	pgtest_owner = getpid();
	atexit(pgtest_atexit);
	pgtest_install_handlers();
	pgtest_ready = true;
out:
	pthread_mutex_unlock(&pgtest_lock);
}

const char *dbi_pgtest_root(void)
{
	const char *env = getenv("DBI_PGTEST_ROOT");
	const char *tmp = getenv("TMPDIR");

	if (env && *env)
		snprintf(pgtest_rootdir, sizeof(pgtest_rootdir), "%s", env);
	else
		snprintf(pgtest_rootdir, sizeof(pgtest_rootdir), "%s/dbi-pgtest", tmp && *tmp ? tmp : "/tmp");
	/* World-writable and sticky, like /tmp: root and other users may both run tests. */
	if (mkdir(pgtest_rootdir, 0777) == 0)
		chmod(pgtest_rootdir, 01777);
	return pgtest_rootdir;
}

static int pgtest_register(enum pgtest_kind kind, const char *path, pid_t pid)
{
	int i, slot = -1;

	pthread_mutex_lock(&pgtest_lock);
	for (i = 0; i < PGTEST_SLOTS; i++) {
		if (pgtest_slots[i].kind == PGTEST_FREE) {
			dbi_strlcpy(pgtest_slots[i].path, path ? path : "", sizeof(pgtest_slots[i].path));
			pgtest_slots[i].pid = pid;
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			pgtest_slots[i].kind = kind;
			slot = i;
			break;
		}
	}
	pthread_mutex_unlock(&pgtest_lock);
	if (slot < 0)
		fprintf(stderr, "pgtest: more than %d live clusters/dirs/pgbench runs\n", PGTEST_SLOTS);
	return slot;
}

static void pgtest_unregister(int slot)
{
	if (slot < 0 || slot >= PGTEST_SLOTS)
		return;
	pthread_mutex_lock(&pgtest_lock);
	pgtest_slots[slot].kind = PGTEST_FREE;
	pthread_mutex_unlock(&pgtest_lock);
}

/*
 * Run the script with argv (argv[0] is replaced by the script path). Its stdout goes to out
 * (truncated to outlen, may be NULL), its stderr to ours. With pgid_out, run it in its own
 * process group and return without waiting, the pid in *pgid_out.
 */
static int pgtest_spawn(const char **argv, char *out, size_t outlen, pid_t *pgid_out)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int fds[2] = {-1, -1};
	int rc = DBI_ERR, status, err;
	size_t used = 0;
	pid_t pid;
	char buf[1024];
	ssize_t n;

	argv[0] = pgtest_script;
	if (out && outlen)
		out[0] = '\0';
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	if (pgid_out) {
		posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
		posix_spawnattr_setpgroup(&attr, 0);
		posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
	} else {
		if (pipe2(fds, O_CLOEXEC) != 0) {
			perror("pgtest: pipe");
			goto cleanup;
		}
		posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	}
	err = posix_spawn(&pid, pgtest_script, &fa, &attr, (char *const *)argv, environ);
	if (err != 0) {
		fprintf(stderr, "pgtest: cannot run %s: %s\n", pgtest_script, strerror(err));
		goto cleanup;
	}
	if (pgid_out) {
		*pgid_out = pid;
		rc = DBI_OK;
		goto cleanup;
	}
	close(fds[1]);
	fds[1] = -1;
	for (;;) {
		n = read(fds[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out && used + 1 < outlen) {
			size_t take = DBI_MIN((size_t)n, outlen - 1 - used);
			memcpy(out + used, buf, take);
			used += take;
			out[used] = '\0';
		}
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("pgtest: waitpid");
			goto cleanup;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		rc = DBI_OK;
	else
		fprintf(stderr, "pgtest: pg-cluster.sh %s %s failed (status 0x%x)\n", argv[1], argv[2] ? argv[2] : "",
		        (unsigned)status);
cleanup:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return rc;
}

static void pgtest_sweep(void)
{
	const char *argv[] = {NULL, "sweep", dbi_pgtest_root(), NULL};

	if (pgtest_swept)
		return;
	pgtest_swept = true;
	pgtest_spawn(argv, NULL, 0, NULL);
}

/* Field 22 of /proc/<pid>/stat: start time in clock ticks since boot. */
static int pgtest_stat(pid_t pid, char *state, pid_t *ppid, unsigned long long *start)
{
	char path[64], buf[1024], *p;
	unsigned long long v;
	int i, fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return DBI_ERR;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return DBI_ERR;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return DBI_ERR;
	p += 2; /* field 3: state */
	if (state)
		*state = *p;
	for (i = 4; i <= 22 && *p; i++) {
		while (*p && *p != ' ')
			p++;
		while (*p == ' ')
			p++;
		v = strtoull(p, NULL, 10); /* field i */
		if (i == 4 && ppid)
			*ppid = (pid_t)v;
		if (i == 22 && start)
			*start = v;
	}
	return DBI_OK;
}

/* --- dbi_pgtest ----------------------------------------------------------------------- */

/* Parse `export KEY='value'` (shell single quoting, as pg-cluster.sh prints it). */
static int pgtest_parse_line(char *line, char **key, char *val, size_t vlen)
{
	char *eq, *p;
	size_t n = 0;
	bool q = false;

	if (strncmp(line, "export ", 7) == 0)
		line += 7;
	eq = strchr(line, '=');
	if (!eq)
		return DBI_ERR;
	*eq = '\0';
	*key = line;
	for (p = eq + 1; *p; p++) {
		if (*p == '\'') {
			q = !q;
			continue;
		}
		if (*p == '\\' && !q && p[1])
			p++;
		if (n + 1 < vlen)
			val[n++] = *p;
	}
	val[n] = '\0';
	return DBI_OK;
}

int dbi_pgtest_conninfo_add(char *buf, size_t len, const char *key, const char *value)
{
	size_t n = strlen(buf), need = strlen(key) + 4; /* " key='...'" */
	const char *p;

	for (p = value; *p; p++)
		need += (*p == '\'' || *p == '\\') ? 2 : 1;
	if (n + need >= len)
		return DBI_ERR;
	if (n)
		buf[n++] = ' ';
	n += (size_t)sprintf(buf + n, "%s='", key);
	for (p = value; *p; p++) {
		if (*p == '\'' || *p == '\\')
			buf[n++] = '\\';
		buf[n++] = *p;
	}
	buf[n++] = '\'';
	buf[n] = '\0';
	return DBI_OK;
}

int dbi_pgtest_conninfo(const struct dbi_pgtest *pg, const char *db, const char *host, char *buf, size_t len)
{
	char port[16];

	if (len == 0)
		return DBI_ERR;
	buf[0] = '\0';
	snprintf(port, sizeof(port), "%d", pg->port);
	if (dbi_pgtest_conninfo_add(buf, len, "host", host ? host : pg->host) != DBI_OK ||
	    dbi_pgtest_conninfo_add(buf, len, "port", port) != DBI_OK ||
	    dbi_pgtest_conninfo_add(buf, len, "user", pg->user) != DBI_OK ||
	    dbi_pgtest_conninfo_add(buf, len, "dbname", db ? db : "postgres") != DBI_OK ||
	    dbi_pgtest_conninfo_add(buf, len, "connect_timeout", "10") != DBI_OK)
		return DBI_ERR;
	if (pg->password[0] && dbi_pgtest_conninfo_add(buf, len, "password", pg->password) != DBI_OK)
		return DBI_ERR;
	return DBI_OK;
}

static void pgtest_first_listen(const char *listen, char *out, size_t len)
{
	size_t n = strcspn(listen, ",");
	char first[64];

	while (*listen == ' ') {
		listen++;
		n--;
	}
	snprintf(first, sizeof(first), "%.*s", (int)DBI_MIN(n, sizeof(first) - 1), listen);
	if (strcmp(first, "*") == 0 || strcmp(first, "0.0.0.0") == 0 || first[0] == '\0')
		snprintf(out, len, "127.0.0.1");
	else if (strcmp(first, "::") == 0)
		snprintf(out, len, "::1");
	else
		snprintf(out, len, "%s", first);
}

static int pgtest_add_arg(const char **argv, int *argc, const char *a)
{
	if (*argc + 2 >= PGTEST_MAXARGS) {
		fprintf(stderr, "pgtest: too many options\n");
		return DBI_ERR;
	}
	argv[(*argc)++] = a;
	argv[*argc] = NULL;
	return DBI_OK;
}

int dbi_pgtest_start(struct dbi_pgtest *pg, const struct dbi_pgtest_opts *o)
{
	static const struct dbi_pgtest_opts defaults;
	const char *argv[PGTEST_MAXARGS];
	char owner[16], port[16], out[4096], val[DBI_PGTEST_PATH], *line, *save, *key;
	const char *const *s;
	int argc = 0, rc = DBI_ERR;

	memset(pg, 0, sizeof(*pg));
	pg->slot = -1;
	if (!o)
		o = &defaults;
	pgtest_init();
	pgtest_sweep();

	snprintf(pg->dir, sizeof(pg->dir), "%s/pg.XXXXXX", dbi_pgtest_root());
	if (!mkdtemp(pg->dir)) {
		fprintf(stderr, "pgtest: mkdtemp %s: %s\n", pg->dir, strerror(errno));
		pg->dir[0] = '\0';
		return DBI_ERR;
	}
	pg->slot = pgtest_register(PGTEST_CLUSTER, pg->dir, 0);
	if (pg->slot < 0)
		goto cleanup;

	snprintf(owner, sizeof(owner), "%d", (int)getpid());
	snprintf(port, sizeof(port), "%d", o->port);
	argv[argc++] = NULL;
	argv[argc++] = "start";
	argv[argc++] = pg->dir;
	argv[argc++] = "--owner";
	argv[argc++] = owner;
	argv[argc] = NULL;
	if (o->port > 0 && (pgtest_add_arg(argv, &argc, "--port") || pgtest_add_arg(argv, &argc, port)))
		goto cleanup;
	if (o->listen && (pgtest_add_arg(argv, &argc, "--listen") || pgtest_add_arg(argv, &argc, o->listen)))
		goto cleanup;
	if (o->ssl_dir && (pgtest_add_arg(argv, &argc, "--ssl") || pgtest_add_arg(argv, &argc, o->ssl_dir)))
		goto cleanup;
	if (o->auth && (pgtest_add_arg(argv, &argc, "--auth") || pgtest_add_arg(argv, &argc, o->auth)))
		goto cleanup;
	if (o->local_auth &&
	    (pgtest_add_arg(argv, &argc, "--local-auth") || pgtest_add_arg(argv, &argc, o->local_auth)))
		goto cleanup;
	if (o->password && (pgtest_add_arg(argv, &argc, "--password") || pgtest_add_arg(argv, &argc, o->password)))
		goto cleanup;
	for (s = o->settings; s && *s; s++)
		if (pgtest_add_arg(argv, &argc, "--set") || pgtest_add_arg(argv, &argc, *s))
			goto cleanup;
	for (s = o->hba; s && *s; s++)
		if (pgtest_add_arg(argv, &argc, "--hba") || pgtest_add_arg(argv, &argc, *s))
			goto cleanup;

	if (pgtest_spawn(argv, out, sizeof(out), NULL) != DBI_OK)
		goto cleanup;

	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (pgtest_parse_line(line, &key, val, sizeof(val)) != DBI_OK)
			continue;
		if (strcmp(key, "PGHOST") == 0)
			dbi_strlcpy(pg->host, val, sizeof(pg->host));
		else if (strcmp(key, "PGPORT") == 0)
			pg->port = atoi(val);
		else if (strcmp(key, "PGDATA") == 0)
			dbi_strlcpy(pg->data, val, sizeof(pg->data));
		else if (strcmp(key, "PGUSER") == 0)
			dbi_strlcpy(pg->user, val, sizeof(pg->user));
		else if (strcmp(key, "PGPASSWORD") == 0)
			dbi_strlcpy(pg->password, val, sizeof(pg->password));
		else if (strcmp(key, "DBI_PG_LOG") == 0)
			dbi_strlcpy(pg->log, val, sizeof(pg->log));
		else if (strcmp(key, "DBI_PG_LISTEN") == 0)
			dbi_strlcpy(pg->listen, val, sizeof(pg->listen));
	}
	if (!pg->host[0] || pg->port <= 0 || !pg->data[0] || !pg->user[0]) {
		fprintf(stderr, "pgtest: pg-cluster.sh start printed no usable environment\n");
		goto cleanup;
	}
	pg->running = true;
	pgtest_first_listen(pg->listen, pg->tcp_host, sizeof(pg->tcp_host));
	if (dbi_pgtest_conninfo(pg, NULL, NULL, pg->conninfo, sizeof(pg->conninfo)) != DBI_OK ||
	    dbi_pgtest_conninfo(pg, NULL, pg->tcp_host, pg->conninfo_tcp, sizeof(pg->conninfo_tcp)) != DBI_OK) {
		fprintf(stderr, "pgtest: conninfo too long\n");
		goto cleanup;
	}
	rc = DBI_OK;
cleanup:
	if (rc != DBI_OK)
		dbi_pgtest_stop(pg);
	return rc;
}

void dbi_pgtest_stop(struct dbi_pgtest *pg)
{
	const char *argv[] = {NULL, "stop", pg->dir, NULL};

	if (!pg->dir[0])
		return;
	pgtest_init();
	pgtest_spawn(argv, NULL, 0, NULL);
	pgtest_unregister(pg->slot);
	pg->slot = -1;
	pg->running = false;
	pg->dir[0] = '\0';
}

static int pgtest_server_cmd(struct dbi_pgtest *pg, const char *cmd)
{
	const char *argv[] = {NULL, cmd, pg->dir, NULL};

	if (!pg->dir[0])
		return DBI_ERR;
	pgtest_init();
	return pgtest_spawn(argv, NULL, 0, NULL);
}

int dbi_pgtest_stop_server(struct dbi_pgtest *pg)
{
	int rc = pgtest_server_cmd(pg, "stop-server");
	if (rc == DBI_OK)
		pg->running = false;
	return rc;
}

int dbi_pgtest_start_server(struct dbi_pgtest *pg)
{
	int rc = pgtest_server_cmd(pg, "start-server");
	if (rc == DBI_OK)
		pg->running = true;
	return rc;
}

int dbi_pgtest_restart(struct dbi_pgtest *pg)
{
	int rc = pgtest_server_cmd(pg, "restart");
	pg->running = rc == DBI_OK;
	return rc;
}

int dbi_pgtest_sql(struct dbi_pgtest *pg, const char *db, const char *sql, char *out, size_t outlen)
{
	char ci[1200];
	PGconn *conn = NULL;
	PGresult *res = NULL;
	ExecStatusType st;
	int rc = DBI_ERR;

	if (out && outlen)
		out[0] = '\0';
	if (dbi_pgtest_conninfo(pg, db, NULL, ci, sizeof(ci)) != DBI_OK ||
	    dbi_pgtest_conninfo_add(ci, sizeof(ci), "application_name", "dbi-pgtest") != DBI_OK) {
		fprintf(stderr, "pgtest: conninfo too long\n");
		goto cleanup;
	}
	conn = PQconnectdb(ci);
	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "pgtest: connect to %s (db %s): %s", pg->dir, db ? db : "postgres",
		        PQerrorMessage(conn));
		goto cleanup;
	}
	res = PQexec(conn, sql);
	st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && st != PGRES_EMPTY_QUERY) {
		fprintf(stderr, "pgtest: sql \"%s\" failed: %s", sql, PQerrorMessage(conn));
		goto cleanup;
	}
	if (out && outlen && st == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0 &&
	    !PQgetisnull(res, 0, 0))
		dbi_strlcpy(out, PQgetvalue(res, 0, 0), outlen);
	rc = DBI_OK;
cleanup:
	PQclear(res);
	PQfinish(conn);
	return rc;
}

int dbi_pgtest_server_pids(const struct dbi_pgtest *pg, pid_t *pids, int max)
{
	char path[DBI_PGTEST_PATH + 32], line[64];
	FILE *f;
	DIR *d;
	struct dirent *de;
	pid_t pm, ppid = 0;
	int n = 0;

	snprintf(path, sizeof(path), "%s/postmaster.pid", pg->data);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	pm = (pid_t)atoi(line);
	if (pm <= 0 || kill(pm, 0) != 0)
		return -1;
	if (max > 0)
		pids[n++] = pm;
	d = opendir("/proc");
	if (!d)
		return n;
	while ((de = readdir(d)) != NULL && n < max) {
		pid_t pid;
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)atoi(de->d_name);
		if (pgtest_stat(pid, NULL, &ppid, NULL) == DBI_OK && ppid == pm)
			pids[n++] = pid;
	}
	closedir(d);
	return n;
}

int dbi_pgtest_count_alive(const pid_t *pids, int n)
{
	int i, alive = 0;
	char state;

	for (i = 0; i < n; i++)
		if (pgtest_stat(pids[i], &state, NULL, NULL) == DBI_OK && state != 'Z' && state != 'X')
			alive++;
	return alive;
}

int dbi_pgtest_count_procs_in(const char *dir)
{
	char link[300], cwd[PATH_MAX];
	size_t dlen = strlen(dir);
	struct dirent *de;
	ssize_t n;
	int count = 0;
	DIR *d = opendir("/proc");

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(link, sizeof(link), "/proc/%s/cwd", de->d_name);
		n = readlink(link, cwd, sizeof(cwd) - 1);
		if (n <= 0)
			continue;
		cwd[n] = '\0';
		if (strncmp(cwd, dir, dlen) == 0 && (cwd[dlen] == '\0' || cwd[dlen] == '/' || cwd[dlen] == ' '))
			count++;
	}
	closedir(d);
	return count;
}

/* --- temp dirs and certificates ------------------------------------------------------- */

int dbi_pgtest_tmpdir(char *path, size_t len)
{
	char owner[DBI_PGTEST_PATH + 16];
	unsigned long long start = 0;
	FILE *f;

	pgtest_init();
	pgtest_sweep();
	if ((size_t)snprintf(path, len, "%s/tmp.XXXXXX", dbi_pgtest_root()) >= len || !mkdtemp(path)) {
		fprintf(stderr, "pgtest: cannot make a temp dir under %s: %s\n", dbi_pgtest_root(), strerror(errno));
		return DBI_ERR;
	}
	chmod(path, 0755);
	/* The owner file lets pg-cluster.sh sweep remove it if we die by SIGKILL. */
	pgtest_stat(getpid(), NULL, NULL, &start);
	snprintf(owner, sizeof(owner), "%s/.dbi-owner", path);
	f = fopen(owner, "we");
	if (f) {
		fprintf(f, "%d %llu\n", (int)getpid(), start);
		fclose(f);
	}
	if (pgtest_register(PGTEST_TMPDIR, path, 0) < 0) {
		dbi_pgtest_rmdir(path);
		return DBI_ERR;
	}
	return DBI_OK;
}

void dbi_pgtest_rmdir(const char *path)
{
	char *argv[] = {(char *)"rm", (char *)"-rf", (char *)"--", NULL, NULL};
	char copy[DBI_PGTEST_PATH];
	int i;

	if (!path || !path[0])
		return;
	dbi_strlcpy(copy, path, sizeof(copy));
	argv[3] = copy;
	pgtest_run_wait("/bin/rm", argv);
	pthread_mutex_lock(&pgtest_lock);
	for (i = 0; i < PGTEST_SLOTS; i++)
		if (pgtest_slots[i].kind == PGTEST_TMPDIR && strcmp(pgtest_slots[i].path, copy) == 0)
			pgtest_slots[i].kind = PGTEST_FREE;
	pthread_mutex_unlock(&pgtest_lock);
}

int dbi_pgtest_certs(const char *dir, const char *cn, const char *san)
{
	const char *argv[PGTEST_MAXARGS];
	int argc = 0;

	pgtest_init();
	argv[argc++] = NULL;
	argv[argc++] = "certs";
	argv[argc++] = dir;
	argv[argc] = NULL;
	if (cn && (pgtest_add_arg(argv, &argc, "--cn") || pgtest_add_arg(argv, &argc, cn)))
		return DBI_ERR;
	if (san && (pgtest_add_arg(argv, &argc, "--san") || pgtest_add_arg(argv, &argc, san)))
		return DBI_ERR;
	return pgtest_spawn(argv, NULL, 0, NULL);
}

/* --- pgbench -------------------------------------------------------------------------- */

int dbi_pgtest_pgbench_init(struct dbi_pgtest *pg, const char *db, int scale)
{
	char sc[16];
	const char *argv[] = {NULL, "pgbench", pg->dir, "--db", db ? db : "postgres", "--scale", sc, NULL};

	pgtest_init();
	snprintf(sc, sizeof(sc), "%d", scale > 0 ? scale : 1);
	return pgtest_spawn(argv, NULL, 0, NULL);
}

int dbi_pgtest_pgbench_start(struct dbi_pgtest *pg, const struct dbi_pgbench_opts *o, struct dbi_pgbench *b)
{
	static const struct dbi_pgbench_opts defaults;
	const char *argv[PGTEST_MAXARGS];
	char sc[16], c[16], j[16], t[16];
	const char *const *a;
	int argc = 0;
	pid_t pid;

	memset(b, 0, sizeof(*b));
	b->slot = -1;
	if (!o)
		o = &defaults;
	pgtest_init();
	snprintf(sc, sizeof(sc), "%d", o->scale > 0 ? o->scale : 1);
	snprintf(c, sizeof(c), "%d", o->clients > 0 ? o->clients : 1);
	snprintf(j, sizeof(j), "%d", o->jobs > 0 ? o->jobs : 1);
	snprintf(t, sizeof(t), "%d", o->seconds > 0 ? o->seconds : 5);
	argv[argc++] = NULL;
	argv[argc++] = "pgbench";
	argv[argc++] = pg->dir;
	argv[argc++] = "--db";
	argv[argc++] = o->db ? o->db : "postgres";
	argv[argc++] = "--scale";
	argv[argc++] = sc;
	argv[argc++] = "--";
	argv[argc++] = "-c";
	argv[argc++] = c;
	argv[argc++] = "-j";
	argv[argc++] = j;
	argv[argc++] = "-T";
	argv[argc++] = t;
	argv[argc] = NULL;
	for (a = o->args; a && *a; a++)
		if (pgtest_add_arg(argv, &argc, *a))
			return DBI_ERR;
	if (pgtest_spawn(argv, NULL, 0, &pid) != DBI_OK)
		return DBI_ERR;
	b->pid = pid;
	b->slot = pgtest_register(PGTEST_PGBENCH, NULL, pid);
	if (b->slot < 0) {
		dbi_pgtest_pgbench_kill(b);
		return DBI_ERR;
	}
	return DBI_OK;
}

static void pgtest_pgbench_done(struct dbi_pgbench *b)
{
	pgtest_unregister(b->slot);
	b->slot = -1;
	b->pid = 0;
}

int dbi_pgtest_pgbench_wait(struct dbi_pgbench *b, int timeout_s)
{
	struct timespec nap = {0, 50 * 1000 * 1000};
	long waited_ms = 0;
	pid_t r;

	if (b->pid <= 0)
		return DBI_ERR;
	for (;;) {
		r = waitpid(b->pid, &b->status, WNOHANG);
		if (r == b->pid)
			break;
		if (r < 0 && errno != EINTR) {
			perror("pgtest: waitpid pgbench");
			pgtest_pgbench_done(b);
			return DBI_ERR;
		}
		if (timeout_s > 0 && waited_ms >= timeout_s * 1000L) {
			fprintf(stderr, "pgtest: pgbench still running after %d s, killing it\n", timeout_s);
			dbi_pgtest_pgbench_kill(b);
			return DBI_ERR;
		}
		nanosleep(&nap, NULL);
		waited_ms += 50;
	}
	/* pgbench is gone; make sure nothing of its group lingers. */
	kill(-b->pid, SIGKILL);
	pgtest_pgbench_done(b);
	if (WIFEXITED(b->status) && WEXITSTATUS(b->status) == 0)
		return DBI_OK;
	fprintf(stderr, "pgtest: pgbench failed (status 0x%x)\n", (unsigned)b->status);
	return DBI_ERR;
}

void dbi_pgtest_pgbench_kill(struct dbi_pgbench *b)
{
	struct timespec nap = {0, 50 * 1000 * 1000};
	int i;

	if (b->pid <= 0)
		return;
	kill(-b->pid, SIGTERM);
	for (i = 0; i < 40; i++) {
		if (waitpid(b->pid, &b->status, WNOHANG) == b->pid)
			goto reaped;
		nanosleep(&nap, NULL);
	}
	kill(-b->pid, SIGKILL);
	while (waitpid(b->pid, &b->status, 0) < 0 && errno == EINTR)
		;
reaped:
	kill(-b->pid, SIGKILL);
	pgtest_pgbench_done(b);
}

int dbi_pgtest_pgbench(struct dbi_pgtest *pg, const struct dbi_pgbench_opts *o)
{
	struct dbi_pgbench b;
	int limit = (o && o->seconds > 0 ? o->seconds : 5) + 120;

	if (dbi_pgtest_pgbench_start(pg, o, &b) != DBI_OK)
		return DBI_ERR;
	return dbi_pgtest_pgbench_wait(&b, limit);
}
