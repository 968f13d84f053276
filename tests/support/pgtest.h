/*
 * pgtest.h — throwaway PostgreSQL clusters for C integration tests.
 *
 * dbi_pgtest_start() runs scripts/pg-cluster.sh to initdb and start a real PostgreSQL 15 in a
 * fresh directory under the harness temp root ($DBI_PGTEST_ROOT, else $TMPDIR/dbi-pgtest, else
 * /tmp/dbi-pgtest), with pg_stat_statements and auto_explain preloaded and the unix socket in
 * that directory. dbi_pgtest_stop() stops it and removes the directory.
 *
 * Clusters are always removed: every started cluster (and every dbi_pgtest_tmpdir, every
 * background pgbench) is registered in a process-global list that is cleaned up at exit and in
 * handlers for SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGABRT/SIGSEGV/SIGBUS/SIGFPE/SIGILL (which then
 * re-raise the signal). For SIGKILL, the script's watcher stops a cluster once its owning
 * process is gone, and the first start of each process sweeps stale clusters of dead owners.
 *
 * Functions return DBI_OK or DBI_ERR and say why on stderr.
 */
#ifndef DBI_PGTEST_H
#define DBI_PGTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define DBI_PGTEST_PATH 256

/* Options of dbi_pgtest_start(); a NULL opts pointer or zeroed fields mean the defaults. */
struct dbi_pgtest_opts {
	int port;                    /* 0: a free port picked by the script */
	const char *listen;          /* listen_addresses, "a,b,c"; NULL: "127.0.0.1" */
	const char *ssl_dir;         /* ssl = on with the certs of dbi_pgtest_certs() in this dir */
	const char *auth;            /* pg_hba method for local and 127.0.0.0/8; NULL: trust */
	const char *local_auth;      /* pg_hba method for the unix socket only; NULL: auth */
	const char *password;        /* password of the superuser "postgres"; NULL: none */
	const char *const *settings; /* NULL-terminated "key=value" postgresql.conf settings */
	const char *const *hba;      /* NULL-terminated pg_hba.conf lines put before the defaults */
};

struct dbi_pgtest {
	char dir[DBI_PGTEST_PATH];  /* the cluster's directory (DBI_PG_DIR), removed by stop */
	char host[DBI_PGTEST_PATH]; /* unix socket directory (PGHOST; the same as dir) */
	char data[DBI_PGTEST_PATH]; /* PGDATA */
	char log[DBI_PGTEST_PATH];  /* server log (DBI_PG_LOG), stderr of the postmaster */
	char listen[DBI_PGTEST_PATH];
	char tcp_host[64]; /* the first listen address, for TCP connections */
	char user[64];     /* superuser: postgres */
	char password[128];
	int port;
	char conninfo[1024];     /* libpq key/value string: unix socket, dbname=postgres */
	char conninfo_tcp[1024]; /* the same over TCP to tcp_host */
	bool running;            /* the server is up */
	int slot;                /* cleanup registry slot; -1 when not registered */
};

/* Start a cluster. On failure pg is not registered and nothing is left behind. */
int dbi_pgtest_start(struct dbi_pgtest *pg, const struct dbi_pgtest_opts *o);

/* Stop the server and remove its directory. Safe to call twice or on a failed start. */
void dbi_pgtest_stop(struct dbi_pgtest *pg);

/* Stop / start / restart the server of the same cluster (same port, data kept). */
int dbi_pgtest_stop_server(struct dbi_pgtest *pg);
int dbi_pgtest_start_server(struct dbi_pgtest *pg);
int dbi_pgtest_restart(struct dbi_pgtest *pg);

/*
 * Run one SQL statement as the superuser in database db (NULL: postgres) over the unix socket.
 * out (may be NULL) receives the first column of the first row as text; "" when the statement
 * returns no rows or the value is NULL. Longer values are truncated.
 */
int dbi_pgtest_sql(struct dbi_pgtest *pg, const char *db, const char *sql, char *out, size_t outlen);

/*
 * A libpq conninfo string for database db (NULL: postgres) as the superuser: over the unix
 * socket when host is NULL, else over TCP to host (e.g. "127.0.0.2") on the cluster's port.
 */
int dbi_pgtest_conninfo(const struct dbi_pgtest *pg, const char *db, const char *host, char *buf, size_t len);

/* Append ` key='value'` to a conninfo string, quoting value for libpq. */
int dbi_pgtest_conninfo_add(char *buf, size_t len, const char *key, const char *value);

/* PIDs of the postmaster (first) and its children; returns how many, or -1 if not running. */
int dbi_pgtest_server_pids(const struct dbi_pgtest *pg, pid_t *pids, int max);

/* How many of these PIDs still exist (zombies excluded). */
int dbi_pgtest_count_alive(const pid_t *pids, int n);

/* How many processes have their working directory inside dir (postgres backends do). */
int dbi_pgtest_count_procs_in(const char *dir);

/*
 * A fresh directory under the harness temp root, removed at exit (or by dbi_pgtest_rmdir),
 * e.g. for certificates. path receives its absolute name.
 */
int dbi_pgtest_tmpdir(char *path, size_t len);
void dbi_pgtest_rmdir(const char *path);

/*
 * Make a CA, a server certificate for the SANs san (NULL: "DNS:localhost,IP:127.0.0.1") and a
 * client certificate whose CN is cn (NULL: "dbi") in dir: ca.crt ca.key server.crt server.key
 * client.crt client.key (pg-cluster.sh certs).
 */
int dbi_pgtest_certs(const char *dir, const char *cn, const char *san);

/* pgbench, in its own process group so the whole run can be stopped. */
struct dbi_pgbench_opts {
	const char *db;          /* NULL: postgres */
	int scale;               /* pgbench -i -s, when the tables are missing; 0: 1 */
	int clients;             /* -c; 0: 1 */
	int jobs;                /* -j; 0: 1 */
	int seconds;             /* -T; 0: 5 */
	const char *const *args; /* NULL-terminated extra pgbench arguments, or NULL */
};

struct dbi_pgbench {
	pid_t pid; /* 0 when not running */
	int status;
	int slot;
};

/* Create the pgbench tables in db (NULL: postgres) at this scale, if missing. */
int dbi_pgtest_pgbench_init(struct dbi_pgtest *pg, const char *db, int scale);

/* Start pgbench in the background (initialising first if needed). */
int dbi_pgtest_pgbench_start(struct dbi_pgtest *pg, const struct dbi_pgbench_opts *o, struct dbi_pgbench *b);

/* Wait up to timeout_s seconds (<= 0: no limit); DBI_OK if pgbench exited 0. Kills on timeout. */
int dbi_pgtest_pgbench_wait(struct dbi_pgbench *b, int timeout_s);

/* Kill a running pgbench (and its process group) and reap it. */
void dbi_pgtest_pgbench_kill(struct dbi_pgbench *b);

/* Start + wait. */
int dbi_pgtest_pgbench(struct dbi_pgtest *pg, const struct dbi_pgbench_opts *o);

/* The harness temp root (created if missing). */
const char *dbi_pgtest_root(void);

/* Stop everything registered by this process now (what atexit and the signal handlers do). */
void dbi_pgtest_cleanup_all(void);

#endif
