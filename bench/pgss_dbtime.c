/*
 * pgss_dbtime.c — database time per scrape of the statements group with 5 000 tracked
 * statements, against a real PostgreSQL 15 (throwaway cluster), compared with what
 * peers do (read pg_stat_statements with its text every scrape).
 *
 * It creates 5 000 distinct statement shapes (count(*) over pairs of 100 columns), then
 * scrapes N times the way the engine does (pipeline mode, results to the module, emit),
 * and reads the database time of our own queries from pg_stat_statements (our SQL
 * starts with the comment "dbi:statements"; track_planning is on so planning counts).
 * It also times the collector side (CPU of dbi_pgss_result + emit) and runs the peers'
 * query N times for comparison. Prints one JSON object. Not a test: numbers, no verdict.
 *
 * Reads are the module's default: one full read, then reads that return only the rows
 * that changed (every full_read_every-th read is full again); full_read_every = 1 makes
 * every read a full one, for comparison.
 *
 *   build/bench/pgss_dbtime [scrapes=20] [statements=5000] [full_read_every=20]
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbi/registry.h"
#include "pgss_sink.h"
#include "pgtest.h"

static double cpu_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static double wall_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int run(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "pgss_dbtime: %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	return ok ? DBI_OK : DBI_ERR;
}

/* One scrape through the module; adds the CPU spent inside the module to *mod_cpu. */
static int scrape(PGconn *c, struct dbi_pgss *s, struct dbi_test_sink *sink, double *mod_cpu)
{
	struct dbi_pgss_query q[DBI_PGSS_MAX_QUERIES];
	struct timespec ts;
	unsigned n;
	double t;

	clock_gettime(CLOCK_REALTIME, &ts);
	dbi_test_sink_clear(sink);
	t = cpu_ms();
	dbi_pgss_begin(s, (uint64_t)ts.tv_sec * DBI_NSEC_PER_SEC + (uint64_t)ts.tv_nsec);
	*mod_cpu += cpu_ms() - t;
	while ((n = dbi_pgss_queries(s, q, DBI_PGSS_MAX_QUERIES)) > 0) {
		PQenterPipelineMode(c);
		for (unsigned i = 0; i < n; i++)
			PQsendQueryParams(c, q[i].sql, q[i].nparams, NULL, q[i].params, NULL, NULL, q[i].result_binary);
		PQpipelineSync(c);
		for (unsigned i = 0; i < n; i++) {
			PGresult *r = PQgetResult(c), *x;
			t = cpu_ms();
			int rc = dbi_pgss_result(s, i, r);
			*mod_cpu += cpu_ms() - t;
			PQclear(r);
			while ((x = PQgetResult(c)))
				PQclear(x);
			if (rc != DBI_OK)
				return DBI_ERR;
		}
		PQclear(PQgetResult(c)); /* PGRES_PIPELINE_SYNC */
		PQexitPipelineMode(c);
	}
	t = cpu_ms();
	int rc = dbi_pgss_emit(s);
	*mod_cpu += cpu_ms() - t;
	return rc;
}

static void own_time(PGconn *c, const char *like, double *calls, double *exec_ms, double *plan_ms)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT coalesce(sum(calls),0), coalesce(sum(total_exec_time),0), coalesce(sum(total_plan_time),0) "
	         "FROM pg_stat_statements WHERE query LIKE '%s'",
	         like);
	PGresult *r = PQexec(c, sql);
	*calls = atof(PQgetvalue(r, 0, 0));
	*exec_ms = atof(PQgetvalue(r, 0, 1));
	*plan_ms = atof(PQgetvalue(r, 0, 2));
	PQclear(r);
}

int main(int argc, char **argv)
{
	int scrapes = argc > 1 ? atoi(argv[1]) : 20, nstmt = argc > 2 ? atoi(argv[2]) : 5000;
	uint32_t full_every = argc > 3 ? (uint32_t)atoi(argv[3]) : 0;
	const char *settings[] = {"pg_stat_statements.max=20000", "pg_stat_statements.track_planning=on", NULL};
	struct dbi_pgtest_opts o = {.settings = settings};
	struct dbi_pgtest pg;
	struct dbi_registry *reg = dbi_registry_create(1u << 22);
	struct dbi_test_sink sink;
	struct dbi_errbuf err;
	struct dbi_attr ra = {.key = "service.instance.id", .type = DBI_AT_STR, .v.s = "bench:5432"};
	char sql[512];
	double mod_cpu = 0, wall = 0, peer_wall = 0, peer_cpu = 0;
	int rc = 1;

	if (dbi_pgtest_start(&pg, &o) != DBI_OK)
		return 1;
	PGconn *c = PQconnectdb(pg.conninfo);
	if (PQstatus(c) != CONNECTION_OK)
		goto out;
	/* 100 columns, 5 000 distinct shapes: count(*) WHERE ci = $1 AND cj = $2 (i != j) */
	{
		PGresult *r = PQexec(c, "SELECT format('CREATE TABLE w (%s)', string_agg(format('c%s int', i), ', ')) "
		                        "FROM generate_series(0, 99) i");
		run(c, PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	snprintf(sql, sizeof(sql),
	         "DO $$DECLARE n int := 0; BEGIN FOR i IN 0..99 LOOP FOR j IN 0..99 LOOP "
	         "CONTINUE WHEN i = j; EXIT WHEN n >= %d; "
	         "EXECUTE format('SELECT count(*) FROM w WHERE c%%s = 1 AND c%%s = 2', i, j); n := n + 1; "
	         "END LOOP; END LOOP; END$$",
	         nstmt);
	if (run(c, sql) != DBI_OK)
		goto out;

	dbi_test_sink_init(&sink, reg);
	struct dbi_pgss_config cfg = {.reg = reg,
	                              .resource = dbi_attrs_intern(reg, &ra, 1),
	                              .scope = dbi_scope_intern(reg, "dbi.postgresql", "bench"),
	                              .sink = &sink.sink,
	                              .full_read_every = full_every,
	                              .tag = 1};
	struct dbi_pgss *s = dbi_pgss_create(&cfg, &err);
	dbi_pgss_connected(s, PQserverVersion(c));
	for (int k = 0; k < scrapes; k++) {
		/* some activity between scrapes: 50 of the shapes again */
		snprintf(
		        sql, sizeof(sql),
		        "DO $$BEGIN FOR j IN 1..50 LOOP EXECUTE format('SELECT count(*) FROM w WHERE c0 = 1 AND c%%s = "
		        "2', j); END LOOP; END$$");
		run(c, sql);
		double t = wall_ms();
		if (scrape(c, s, &sink, &mod_cpu) != DBI_OK) {
			fprintf(stderr, "pgss_dbtime: scrape failed: %s\n", dbi_pgss_status(s, NULL) ? "error" : "");
			goto out;
		}
		wall += wall_ms() - t;
	}
	/* the peers' way: all columns with text, every scrape */
	for (int k = 0; k < scrapes; k++) {
		double t = wall_ms(), tc = cpu_ms();
		PGresult *r = PQexec(c, "/* peer */ SELECT * FROM pg_stat_statements");
		for (int i = 0; i < PQntuples(r); i++)
			for (int j = 0; j < PQnfields(r); j++)
				(void)PQgetvalue(r, i, j);
		PQclear(r);
		peer_cpu += cpu_ms() - tc;
		peer_wall += wall_ms() - t;
	}
	/* the floor: pg_stat_statements(false) materialized, nothing sent */
	for (int k = 0; k < scrapes; k++)
		run(c, "/* floor */ SELECT count(*) FROM pg_stat_statements(false)");
	double cc, ce, cp, xc, xe, xp, tc_, te, tp, pc, pe, pp, fc, fe, fp, tracked;
	own_time(c, "/* floor */ SELECT%", &fc, &fe, &fp);
	own_time(c, "/* dbi:statements */ SELECT userid%", &cc, &ce, &cp);
	own_time(c, "/* dbi:statements */ SELECT * FROM (SELECT userid%", &xc, &xe, &xp);
	own_time(c, "/* dbi:statements */ SELECT queryid, query%", &tc_, &te, &tp);
	own_time(c, "/* peer */ SELECT%", &pc, &pe, &pp);
	{
		PGresult *r = PQexec(c, "SELECT count(*) FROM pg_stat_statements");
		tracked = atof(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	const struct dbi_pgss_stats *st = dbi_pgss_get_stats(s);
	printf("{\"statements_tracked\": %.0f, \"scrapes\": %d,\n"
	       " \"counters_db_ms_per_scrape\": %.3f, \"rows_per_scrape\": %.1f,\n"
	       " \"full_read\": {\"calls\": %.0f, \"db_ms_per_call\": %.3f, \"exec_ms\": %.3f, \"plan_ms\": "
	       "%.3f},\n"
	       " \"changed_only_read\": {\"calls\": %.0f, \"db_ms_per_call\": %.3f, \"plan_ms\": %.3f},\n"
	       " \"text_query\": {\"calls\": %.0f, \"db_ms_per_call\": %.3f, \"texts_requested\": %llu},\n"
	       " \"client_wall_ms_per_scrape\": %.3f, \"module_cpu_ms_per_scrape\": %.3f,\n"
	       " \"floor_count_pg_stat_statements_false\": {\"db_ms\": %.3f},\n"
	       " \"peer_select_all_with_text\": {\"db_ms_per_scrape\": %.3f, \"client_wall_ms\": %.3f, "
	       "\"client_cpu_ms\": %.3f}}\n",
	       tracked, scrapes, (ce + cp + xe + xp) / scrapes, (double)st->rows / scrapes, cc, cc ? (ce + cp) / cc : 0,
	       cc ? ce / cc : 0, cc ? cp / cc : 0, xc, xc ? (xe + xp) / xc : 0, xc ? xp / xc : 0, tc_,
	       tc_ ? (te + tp) / tc_ : 0, (unsigned long long)st->texts_requested, wall / scrapes, mod_cpu / scrapes,
	       fc ? (fe + fp) / fc : 0, pc ? (pe + pp) / pc : 0, peer_wall / scrapes, peer_cpu / scrapes);
	dbi_pgss_release(s);
	dbi_test_sink_free(&sink);
	rc = 0;
out:
	PQfinish(c);
	dbi_pgtest_stop(&pg);
	dbi_registry_destroy(reg);
	return rc;
}
