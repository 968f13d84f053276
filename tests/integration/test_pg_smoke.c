/*
 * test_pg_smoke.c — smoke test of the throwaway-PostgreSQL harness (tests/support/pgtest.c,
 * scripts/pg-cluster.sh) that every later integration test builds on: a real PostgreSQL 15
 * starts, is reachable over the unix socket and TCP (also on several 127.0.0.x addresses and
 * over verified TLS with client-certificate auth), has pg_stat_statements and auto_explain
 * working, survives restarts, takes pgbench load, and is removed without leftovers, also when
 * the test process aborts or is killed with SIGKILL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dbi/common.h"
#include "pgtest.h"

#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Clusters of the current test; the teardown stops whatever a failed assertion left. */
static struct dbi_pgtest smoke_pg;
static char smoke_tmp[DBI_PGTEST_PATH];

static int smoke_teardown(void **state)
{
	DBI_UNUSED(state);
	dbi_pgtest_stop(&smoke_pg);
	dbi_pgtest_rmdir(smoke_tmp);
	smoke_tmp[0] = '\0';
	return 0;
}

static bool smoke_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 || errno != ENOENT;
}

/* Run sql over conninfo; returns the first value (static buffer) or NULL with a message. */
static const char *smoke_query_ex(const char *conninfo, const char *sql, bool quiet)
{
	static char out[1024];
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r = NULL;
	const char *ret = NULL;

	if (PQstatus(c) != CONNECTION_OK) {
		if (!quiet)
			fprintf(stderr, "smoke: connect failed: %s", PQerrorMessage(c));
		goto cleanup;
	}
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
		fprintf(stderr, "smoke: %s failed: %s", sql, PQerrorMessage(c));
		goto cleanup;
	}
	dbi_strlcpy(out, PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0), sizeof(out));
	ret = out;
cleanup:
	PQclear(r);
	PQfinish(c);
	return ret;
}

static const char *smoke_query(const char *conninfo, const char *sql)
{
	return smoke_query_ex(conninfo, sql, false);
}

/* A connection that must be refused. */
static bool smoke_refused(const char *conninfo)
{
	return smoke_query_ex(conninfo, "SELECT 1", true) == NULL;
}

static long smoke_long(struct dbi_pgtest *pg, const char *sql)
{
	char out[64];
	assert_int_equal(dbi_pgtest_sql(pg, NULL, sql, out, sizeof(out)), DBI_OK);
	return atol(out);
}

/* Stop pg and check that its directory and every one of its processes are gone. */
static void smoke_stop_and_check_gone(struct dbi_pgtest *pg)
{
	pid_t pids[128];
	char dir[DBI_PGTEST_PATH];
	int n = dbi_pgtest_server_pids(pg, pids, (int)DBI_ARRAY_LEN(pids));

	assert_true(n >= 2); /* postmaster + at least the checkpointer */
	dbi_strlcpy(dir, pg->dir, sizeof(dir));
	dbi_pgtest_stop(pg);
	assert_false(pg->running);
	assert_false(smoke_exists(dir));
	assert_int_equal(dbi_pgtest_count_alive(pids, n), 0);
	assert_int_equal(dbi_pgtest_count_procs_in(dir), 0);
}

static void test_basic(void **state)
{
	struct dbi_pgtest *pg = &smoke_pg;
	struct dbi_pgbench_opts bo = {.clients = 4, .jobs = 2, .seconds = 3, .scale = 1};
	struct dbi_pgbench bench;
	const char *v;
	char out[512], ci[1200];
	FILE *f;
	size_t n;
	static char logbuf[1 << 16];

	DBI_UNUSED(state);
	assert_int_equal(dbi_pgtest_start(pg, NULL), DBI_OK);
	assert_true(pg->running);
	assert_true(pg->port > 0);
	assert_string_equal(pg->host, pg->dir);
	assert_string_equal(pg->user, "postgres");
	assert_string_equal(pg->tcp_host, "127.0.0.1");
	assert_non_null(strstr(pg->log, pg->dir));

	/* libpq over the unix socket in the cluster dir, and over TCP. */
	v = smoke_query(pg->conninfo, "SELECT inet_server_addr() IS NULL");
	assert_non_null(v);
	assert_string_equal(v, "t");
	v = smoke_query(pg->conninfo_tcp, "SELECT host(inet_server_addr())");
	assert_non_null(v);
	assert_string_equal(v, "127.0.0.1");
	v = smoke_query(pg->conninfo, "SELECT current_setting('unix_socket_directories')");
	assert_non_null(v);
	assert_string_equal(v, pg->dir);
	assert_int_equal(dbi_pgtest_conninfo(pg, "template1", "127.0.0.1", ci, sizeof(ci)), DBI_OK);
	v = smoke_query(ci, "SELECT current_database()");
	assert_non_null(v);
	assert_string_equal(v, "template1");

	/* The preloaded libraries and the test settings. */
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "SHOW shared_preload_libraries", out, sizeof(out)), DBI_OK);
	assert_non_null(strstr(out, "pg_stat_statements"));
	assert_non_null(strstr(out, "auto_explain"));
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "SHOW auto_explain.log_format", out, sizeof(out)), DBI_OK);
	assert_string_equal(out, "json");
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "SHOW auto_explain.log_min_duration", out, sizeof(out)), DBI_OK);
	assert_string_equal(out, "100ms");
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "SHOW pg_stat_statements.track", out, sizeof(out)), DBI_OK);
	assert_string_equal(out, "all");
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "SHOW track_io_timing", out, sizeof(out)), DBI_OK);
	assert_string_equal(out, "on");
	assert_int_equal(smoke_long(pg, "SELECT current_setting('max_connections')::int"), 200);
	assert_int_equal(smoke_long(pg, "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"), 1);
	assert_true(smoke_long(pg, "SELECT count(*) FROM pg_stat_statements") >= 0);
	/* Failing SQL reports DBI_ERR rather than crashing. */
	fprintf(stderr, "smoke: an error about no_such_table is expected next\n");
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "SELECT * FROM no_such_table", out, sizeof(out)), DBI_ERR);

	/* pgbench in the background, then pg_stat_statements must have seen its statements. */
	assert_int_equal(dbi_pgtest_pgbench_start(pg, &bo, &bench), DBI_OK);
	assert_true(bench.pid > 0);
	assert_int_equal(dbi_pgtest_pgbench_wait(&bench, 120), DBI_OK);
	assert_true(smoke_long(pg, "SELECT count(*) FROM pgbench_accounts") == 100000);
	assert_true(smoke_long(pg, "SELECT count(*) FROM pg_stat_statements "
	                           "WHERE query LIKE 'UPDATE pgbench_accounts%'") >= 1);
	assert_true(smoke_long(pg, "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
	                           "WHERE query LIKE 'UPDATE pgbench_accounts%'") > 10);

	/* auto_explain writes a JSON plan of a slow statement to the server log. */
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "SELECT pg_sleep(0.2)", NULL, 0), DBI_OK);
	f = fopen(pg->log, "r");
	assert_non_null(f);
	n = fread(logbuf, 1, sizeof(logbuf) - 1, f);
	logbuf[n] = '\0';
	fclose(f);
	assert_non_null(strstr(logbuf, "\"Query Text\": \"SELECT pg_sleep(0.2)\""));
	assert_non_null(strstr(logbuf, "user=postgres db=postgres app=dbi-pgtest"));

	smoke_stop_and_check_gone(pg);
	dbi_pgtest_stop(pg); /* idempotent */
}

static void test_restart(void **state)
{
	struct dbi_pgtest *pg = &smoke_pg;
	const char *settings[] = {"auto_explain.log_min_duration=0", "work_mem=8MB", NULL};
	char out[64];
	int port;

	DBI_UNUSED(state);
	assert_int_equal(dbi_pgtest_start(pg, &(struct dbi_pgtest_opts){.settings = settings}), DBI_OK);
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "SHOW work_mem", out, sizeof(out)), DBI_OK);
	assert_string_equal(out, "8MB");
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "SHOW auto_explain.log_min_duration", out, sizeof(out)), DBI_OK);
	assert_string_equal(out, "0");
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "CREATE TABLE t AS SELECT 42 AS x", NULL, 0), DBI_OK);
	port = pg->port;

	assert_int_equal(dbi_pgtest_stop_server(pg), DBI_OK);
	assert_false(pg->running);
	fprintf(stderr, "smoke: a connection error is expected next (server stopped)\n");
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "SELECT 1", out, sizeof(out)), DBI_ERR);
	assert_true(smoke_refused(pg->conninfo_tcp));
	assert_true(smoke_exists(pg->data));

	assert_int_equal(dbi_pgtest_start_server(pg), DBI_OK);
	assert_true(pg->running);
	assert_int_equal(pg->port, port);
	assert_int_equal(smoke_long(pg, "SELECT x FROM t"), 42);

	assert_int_equal(dbi_pgtest_restart(pg), DBI_OK);
	assert_int_equal(smoke_long(pg, "SELECT x FROM t"), 42);
	assert_non_null(smoke_query(pg->conninfo_tcp, "SELECT 1"));

	smoke_stop_and_check_gone(pg);
}

static void test_listen_many(void **state)
{
	struct dbi_pgtest *pg = &smoke_pg;
	char ci[1200];
	const char *v;

	DBI_UNUSED(state);
	assert_int_equal(dbi_pgtest_start(pg, &(struct dbi_pgtest_opts){.listen = "127.0.0.2,127.0.0.3"}), DBI_OK);
	assert_string_equal(pg->tcp_host, "127.0.0.2");
	assert_int_equal(dbi_pgtest_conninfo(pg, NULL, "127.0.0.2", ci, sizeof(ci)), DBI_OK);
	v = smoke_query(ci, "SELECT host(inet_server_addr())");
	assert_non_null(v);
	assert_string_equal(v, "127.0.0.2");
	assert_int_equal(dbi_pgtest_conninfo(pg, NULL, "127.0.0.3", ci, sizeof(ci)), DBI_OK);
	v = smoke_query(ci, "SELECT host(inet_server_addr())");
	assert_non_null(v);
	assert_string_equal(v, "127.0.0.3");
	/* Not listening where it was not asked to. */
	assert_int_equal(dbi_pgtest_conninfo(pg, NULL, "127.0.0.1", ci, sizeof(ci)), DBI_OK);
	assert_true(smoke_refused(ci));
	smoke_stop_and_check_gone(pg);
}

static void test_ssl_verify_full(void **state)
{
	struct dbi_pgtest *pg = &smoke_pg;
	const char *hba[] = {"hostssl all dbi_cert 127.0.0.0/8 cert", NULL};
	char ci[2048], ca[DBI_PGTEST_PATH + 16], crt[DBI_PGTEST_PATH + 16], key[DBI_PGTEST_PATH + 16];
	const char *v;

	DBI_UNUSED(state);
	assert_int_equal(dbi_pgtest_tmpdir(smoke_tmp, sizeof(smoke_tmp)), DBI_OK);
	assert_int_equal(dbi_pgtest_certs(smoke_tmp, "dbi_cert", "DNS:localhost,IP:127.0.0.1"), DBI_OK);
	snprintf(ca, sizeof(ca), "%s/ca.crt", smoke_tmp);
	snprintf(crt, sizeof(crt), "%s/client.crt", smoke_tmp);
	snprintf(key, sizeof(key), "%s/client.key", smoke_tmp);
	assert_int_equal(dbi_pgtest_start(pg, &(struct dbi_pgtest_opts){.ssl_dir = smoke_tmp, .hba = hba}), DBI_OK);
	assert_int_equal(dbi_pgtest_sql(pg, NULL, "CREATE ROLE dbi_cert LOGIN", NULL, 0), DBI_OK);

	/* verify-full by DNS name and by IP address: the CA signed the server cert for both. */
	assert_int_equal(dbi_pgtest_conninfo(pg, NULL, "localhost", ci, sizeof(ci)), DBI_OK);
	assert_int_equal(dbi_pgtest_conninfo_add(ci, sizeof(ci), "sslmode", "verify-full"), DBI_OK);
	assert_int_equal(dbi_pgtest_conninfo_add(ci, sizeof(ci), "sslrootcert", ca), DBI_OK);
	v = smoke_query(ci, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
	assert_non_null(v);
	assert_string_equal(v, "t");
	assert_int_equal(dbi_pgtest_conninfo(pg, NULL, "127.0.0.1", ci, sizeof(ci)), DBI_OK);
	assert_int_equal(dbi_pgtest_conninfo_add(ci, sizeof(ci), "sslmode", "verify-full"), DBI_OK);
	assert_int_equal(dbi_pgtest_conninfo_add(ci, sizeof(ci), "sslrootcert", ca), DBI_OK);
	v = smoke_query(ci, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
	assert_non_null(v);
	assert_string_equal(v, "t");

	/* Certificate authentication: the client cert's CN is the role. */
	assert_int_equal(dbi_pgtest_conninfo_add(ci, sizeof(ci), "sslcert", crt), DBI_OK);
	assert_int_equal(dbi_pgtest_conninfo_add(ci, sizeof(ci), "sslkey", key), DBI_OK);
	assert_int_equal(dbi_pgtest_conninfo_add(ci, sizeof(ci), "user", "dbi_cert"), DBI_OK);
	v = smoke_query(ci, "SELECT current_user || ' ' || client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
	assert_non_null(v);
	assert_string_equal(v, "dbi_cert /CN=dbi_cert");

	/* Without a client certificate the cert rule refuses the role. */
	ci[0] = '\0';
	assert_int_equal(dbi_pgtest_conninfo(pg, NULL, "127.0.0.1", ci, sizeof(ci)), DBI_OK);
	assert_int_equal(dbi_pgtest_conninfo_add(ci, sizeof(ci), "sslmode", "verify-full"), DBI_OK);
	assert_int_equal(dbi_pgtest_conninfo_add(ci, sizeof(ci), "sslrootcert", ca), DBI_OK);
	assert_int_equal(dbi_pgtest_conninfo_add(ci, sizeof(ci), "user", "dbi_cert"), DBI_OK);
	assert_true(smoke_refused(ci));

	smoke_stop_and_check_gone(pg);
	dbi_pgtest_rmdir(smoke_tmp);
	assert_false(smoke_exists(smoke_tmp));
	smoke_tmp[0] = '\0';
}

/* What a child reports about the cluster it started before it dies. */
struct smoke_child_report {
	char dir[DBI_PGTEST_PATH];
	pid_t pids[64];
	int npids;
};

/* Fork a child that starts a cluster, reports it, then dies by `how`. */
static void smoke_child_dies(int how, struct smoke_child_report *rep, int *status)
{
	int fds[2];
	pid_t child;
	ssize_t n;

	assert_int_equal(pipe(fds), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct dbi_pgtest pg;
		struct rlimit nocore = {0, 0};
		struct smoke_child_report r;

		close(fds[0]);
		setrlimit(RLIMIT_CORE, &nocore);
		/* cmocka catches SIGSEGV during a test; the child wants the harness's handler. */
		signal(SIGSEGV, SIG_DFL);
		memset(&r, 0, sizeof(r));
		if (dbi_pgtest_start(&pg, NULL) != DBI_OK)
			_exit(2);
		dbi_strlcpy(r.dir, pg.dir, sizeof(r.dir));
		r.npids = dbi_pgtest_server_pids(&pg, r.pids, (int)DBI_ARRAY_LEN(r.pids));
		if (write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(3);
		if (how == SIGABRT)
			abort();
		if (how == SIGSEGV)
			raise(SIGSEGV);
		for (;;)
			pause(); /* until the parent kills us */
	}
	close(fds[1]);
	n = read(fds[0], rep, sizeof(*rep));
	close(fds[0]);
	if (how == SIGKILL || how == SIGTERM)
		kill(child, how);
	assert_int_equal(waitpid(child, status, 0), child);
	assert_int_equal(n, (ssize_t)sizeof(*rep));
	assert_true(rep->npids >= 2);
}

static void smoke_check_child_cleanup(int how, int wait_s)
{
	struct smoke_child_report rep;
	struct timespec nap = {0, 100 * 1000 * 1000};
	int status, i;

	smoke_child_dies(how, &rep, &status);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), how);
	for (i = 0; i < wait_s * 10 && smoke_exists(rep.dir); i++)
		nanosleep(&nap, NULL);
	assert_false(smoke_exists(rep.dir));
	for (i = 0; i < 50 && dbi_pgtest_count_alive(rep.pids, rep.npids); i++)
		nanosleep(&nap, NULL);
	assert_int_equal(dbi_pgtest_count_alive(rep.pids, rep.npids), 0);
	assert_int_equal(dbi_pgtest_count_procs_in(rep.dir), 0);
}

/* The signal handlers remove the cluster before re-raising: gone when the child is reaped. */
static void test_cleanup_on_abort(void **state)
{
	DBI_UNUSED(state);
	smoke_check_child_cleanup(SIGABRT, 0);
}

static void test_cleanup_on_sigsegv(void **state)
{
	DBI_UNUSED(state);
	smoke_check_child_cleanup(SIGSEGV, 0);
}

static void test_cleanup_on_sigterm(void **state)
{
	DBI_UNUSED(state);
	smoke_check_child_cleanup(SIGTERM, 0);
}

/* SIGKILL cannot be handled: the script's watcher notices the dead owner within seconds. */
static void test_cleanup_on_sigkill(void **state)
{
	DBI_UNUSED(state);
	smoke_check_child_cleanup(SIGKILL, 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_basic, smoke_teardown),
	        cmocka_unit_test_teardown(test_restart, smoke_teardown),
	        cmocka_unit_test_teardown(test_listen_many, smoke_teardown),
	        cmocka_unit_test_teardown(test_ssl_verify_full, smoke_teardown),
	        cmocka_unit_test_teardown(test_cleanup_on_abort, smoke_teardown),
	        cmocka_unit_test_teardown(test_cleanup_on_sigsegv, smoke_teardown),
	        cmocka_unit_test_teardown(test_cleanup_on_sigterm, smoke_teardown),
	        cmocka_unit_test_teardown(test_cleanup_on_sigkill, smoke_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
