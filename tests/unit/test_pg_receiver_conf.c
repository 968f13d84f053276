/*
 * test_pg_receiver_conf.c — unit tests of the postgresql receiver's cold paths: its config
 * map through the real loader (OTel key names, per-metric `metrics:` entries, groups,
 * inheritance from the receiver into `targets:`, TLS → sslmode), target-set resolution
 * (identity vs settings, duplicates), database patterns, the metric catalog, and the SQL
 * chosen per server version (12 .. 17). What the SQL returns is checked against real
 * servers in tests/integration/test_pg_receiver*.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbi/component.h"
#include "dbi/config.h"

#include "../../src/receivers/postgresql/pg_int.h"

static struct dbi_errbuf g_err;

#define TAIL "exporters:\n  nop:\nservice:\n  pipelines:\n    metrics: {receivers: [postgresql], exporters: [nop]}\n"

static struct dbi_config *load_ok(const char *body)
{
	struct dbi_config *cfg = NULL;
	char y[4096];
	snprintf(y, sizeof(y), "receivers:\n  postgresql:\n%s" TAIL, body);
	int rc = dbi_config_load_string(y, "t.yaml", dbi_components, &cfg, &g_err);
	if (rc != DBI_OK)
		print_message("%s\n", g_err.msg);
	assert_int_equal(rc, DBI_OK);
	return cfg;
}

static int load_err(const char *body)
{
	struct dbi_config *cfg = NULL;
	char y[4096];
	snprintf(y, sizeof(y), "receivers:\n  postgresql:\n%s" TAIL, body);
	dbi_err_clear(&g_err);
	return dbi_config_load_string(y, "t.yaml", dbi_components, &cfg, &g_err);
}

static const struct pg_cfg *pgcfg(const struct dbi_config *cfg)
{
	return dbi_config_find_kind(cfg, DBI_RECEIVER, "postgresql")->cfg;
}

static void test_defaults(void **unused)
{
	(void)unused;
	struct dbi_config *cfg = load_ok("    username: mon\n");
	const struct pg_cfg *c = pgcfg(cfg);
	assert_string_equal(c->endpoint, "localhost:5432");
	assert_int_equal(c->collection_interval, 10 * DBI_NSEC_PER_SEC);
	assert_int_equal(c->initial_delay, DBI_NSEC_PER_SEC);
	assert_int_equal(c->statement_timeout, 5 * DBI_NSEC_PER_SEC);
	assert_int_equal(c->lock_timeout, DBI_NSEC_PER_SEC);
	assert_string_equal(c->application_name, "dbi-collector");
	assert_int_equal(c->databases.n, 1);
	assert_string_equal(c->databases.v[0], "*");
	for (int g = PG_G_DATABASE; g < PG_G_COUNT; g++)
		assert_true(c->groups[g]);
	assert_int_equal(c->stmt_limit, 200);

	struct dbi_errbuf err;
	dbi_err_clear(&err);
	struct pg_tset *ts = dbi_pg_tset_build(c, NULL, &err);
	assert_non_null(ts);
	assert_int_equal(ts->n, 1);
	assert_string_equal(ts->v[0].host, "localhost");
	assert_int_equal(ts->v[0].port, 5432);
	assert_string_equal(ts->v[0].instance_id, "localhost:5432");
	assert_string_equal(ts->v[0].sslmode, "prefer");
	assert_string_equal(ts->v[0].maint_db, "postgres");
	assert_null(ts->v[0].password);
	dbi_pg_tset_free(ts);
	dbi_config_free(cfg);
}

static void test_targets_inherit(void **unused)
{
	(void)unused;
	struct dbi_config *cfg = load_ok("    username: mon\n"
	                                 "    password: pw\n"
	                                 "    tls: {ca_file: /ca.crt}\n"
	                                 "    collection_interval: 30s\n"
	                                 "    labels: {env: prod, team: a}\n"
	                                 "    exclude_databases: [tmp*]\n"
	                                 "    targets:\n"
	                                 "      - {endpoint: 'db1:5433'}\n"
	                                 "      - {endpoint: '[::1]:6543', username: other, sslmode: disable,\n"
	                                 "         labels: {team: b}, collection_interval: 5s, databases: [app]}\n"
	                                 "      - {endpoint: '/run/pg', transport: unix}\n"
	                                 "      - {endpoint: 'db1:5433'}\n");
	const struct pg_cfg *c = pgcfg(cfg);
	struct dbi_errbuf err;
	dbi_err_clear(&err);
	struct pg_tset *ts = dbi_pg_tset_build(c, NULL, &err);
	assert_non_null(ts);
	assert_int_equal(ts->n, 3); /* the duplicate is scraped once */
	const struct pg_tconf *a = &ts->v[0], *b = &ts->v[1], *u = &ts->v[2];
	assert_string_equal(a->instance_id, "db1:5433");
	assert_string_equal(a->user, "mon");
	assert_string_equal(a->password, "pw");
	assert_string_equal(a->sslmode, "verify-full");
	assert_string_equal(a->sslrootcert, "/ca.crt");
	assert_int_equal(a->interval, 30 * DBI_NSEC_PER_SEC);
	assert_int_equal(a->nlabels, 2);
	assert_true(dbi_pg_db_wanted(a, "app"));
	assert_false(dbi_pg_db_wanted(a, "tmp_1"));
	assert_string_equal(b->host, "::1");
	assert_int_equal(b->port, 6543);
	assert_string_equal(b->user, "other");
	assert_string_equal(b->sslmode, "disable");
	assert_int_equal(b->interval, 5 * DBI_NSEC_PER_SEC);
	assert_true(dbi_pg_db_wanted(b, "app"));
	assert_false(dbi_pg_db_wanted(b, "postgres"));
	assert_int_equal(b->nlabels, 3); /* env, team (receiver), team (target: later wins when interned) */
	assert_string_equal(b->label_k[2], "team");
	assert_string_equal(b->label_v[2], "b");
	assert_true(u->unix_socket);
	assert_string_equal(u->host, "/run/pg");
	assert_int_equal(u->port, 5432);
	assert_string_not_equal(a->key, b->key);

	/* identity vs settings: a new password keeps the identity, changes the settings */
	uint64_t key = a->key_hash, set = a->settings_hash;
	dbi_pg_tset_free(ts);
	dbi_config_free(cfg);
	cfg = load_ok(
	        "    username: mon\n    password: pw2\n    tls: {ca_file: /ca.crt}\n    collection_interval: 30s\n"
	        "    labels: {env: prod, team: a}\n    exclude_databases: [tmp*]\n"
	        "    targets: [{endpoint: 'db1:5433'}]\n");
	ts = dbi_pg_tset_build(pgcfg(cfg), NULL, &err);
	assert_non_null(ts);
	assert_int_equal(ts->v[0].key_hash, key);
	assert_int_not_equal(ts->v[0].settings_hash, set);
	dbi_pg_tset_free(ts);
	dbi_config_free(cfg);
}

static void test_metrics_and_groups(void **unused)
{
	(void)unused;
	struct dbi_config *cfg = load_ok("    metrics:\n"
	                                 "      postgresql.blks_hit: {enabled: true}\n"
	                                 "      postgresql.commits: {enabled: false}\n"
	                                 "    groups: {tables: false, wal: false}\n");
	const struct pg_cfg *c = pgcfg(cfg);
	struct dbi_pg pg;
	memset(&pg, 0, sizeof(pg));
	dbi_pg_apply_enablement(&pg, c);
	assert_true(dbi_pg_metric_on(&pg, PGM_BLKS_HIT));
	assert_false(dbi_pg_metric_on(&pg, PGM_COMMITS));
	assert_true(dbi_pg_metric_on(&pg, PGM_DB_SIZE));
	assert_false(dbi_pg_metric_on(&pg, PGM_DEADLOCKS)); /* optional: off by default */
	assert_false(dbi_pg_group_on(&pg, PG_G_TABLES));
	assert_false(dbi_pg_group_on(&pg, PG_G_WAL));
	assert_true(dbi_pg_group_on(&pg, PG_G_DATABASE));
	assert_true(dbi_pg_group_on(&pg, PG_G_SERVER));
	/* a group whose metrics are all off runs no SQL, even when the group is on */
	assert_false(dbi_pg_group_on(&pg, PG_G_CONFLICTS));
	assert_false(dbi_pg_group_on(&pg, PG_G_RELATION_LOCKS));
	dbi_config_free(cfg);

	assert_int_equal(load_err("    metrics: {postgresql.no_such: {enabled: true}}\n"), DBI_ERR);
	assert_non_null(strstr(g_err.msg, "unknown metric 'postgresql.no_such'"));
	assert_int_equal(load_err("    groups: {nope: true}\n"), DBI_ERR);
	assert_non_null(strstr(g_err.msg, "unknown key 'nope'"));
	assert_int_equal(load_err("    targets: [{endpoint: 'db:99999'}]\n"), DBI_ERR);
	assert_non_null(strstr(g_err.msg, "targets[0].endpoint"));
	assert_int_equal(load_err("    endpoint: relative/dir\n    transport: unix\n"), DBI_ERR);
	assert_non_null(strstr(g_err.msg, "absolute socket directory"));
	assert_int_equal(load_err("    sslmode: sometimes\n"), DBI_ERR);
	assert_int_equal(load_err("    password: hunter2-secret\n    sslmode: bad\n"), DBI_ERR);
	assert_null(strstr(g_err.msg, "hunter2-secret"));
}

static void test_catalog(void **unused)
{
	(void)unused;
	for (int i = 0; i < PGM_COUNT; i++) {
		const struct pg_metric_info *m = &dbi_pg_metrics[i];
		assert_non_null(m->name);
		assert_non_null(m->unit);
		assert_true(m->kind == DBI_MK_GAUGE || m->kind == DBI_MK_SUM);
		assert_true(m->group < PG_G_COUNT);
		assert_int_equal(dbi_pg_metric_find(m->name), i);
		if (m->kind == DBI_MK_GAUGE)
			assert_false(m->monotonic);
	}
	/* a few facts of the OTel receiver */
	const struct pg_metric_info *d = &dbi_pg_metrics[dbi_pg_metric_find("postgresql.bgwriter.duration")];
	assert_string_equal(d->unit, "ms");
	assert_true(d->is_double && d->monotonic && d->def_on);
	const struct pg_metric_info *w = &dbi_pg_metrics[dbi_pg_metric_find("postgresql.wal.delay")];
	assert_true(w->kind == DBI_MK_GAUGE && w->is_double && !w->def_on);
	assert_int_equal(dbi_pg_metric_find("postgresql.nope"), -1);
}

static void test_sql_by_version(void **unused)
{
	(void)unused;
	assert_non_null(strstr(dbi_pg_group_sql(PG_G_BGWRITER, 0, 170002), "pg_stat_checkpointer"));
	assert_null(strstr(dbi_pg_group_sql(PG_G_BGWRITER, 0, 160004), "pg_stat_checkpointer"));
	assert_null(dbi_pg_group_sql(PG_G_WAL, 0, 130010));
	assert_false(dbi_pg_group_supported(PG_G_WAL, 130010));
	assert_true(dbi_pg_group_supported(PG_G_WAL, 140000));
	assert_non_null(strstr(dbi_pg_group_sql(PG_G_SLOTS, 0, 120015), "NULL::text"));
	assert_non_null(strstr(dbi_pg_group_sql(PG_G_SLOTS, 0, 130000), "wal_status"));
	assert_non_null(strstr(dbi_pg_group_sql(PG_G_QUERY_TIME, 0, 120000), "total_time"));
	assert_non_null(strstr(dbi_pg_group_sql(PG_G_QUERY_TIME, 0, 150000), "total_exec_time"));
	/* sizes skip relations under an AccessExclusiveLock */
	assert_non_null(strstr(dbi_pg_group_sql(PG_G_TABLES, 0, 150000), "AccessExclusiveLock"));
	assert_non_null(strstr(dbi_pg_group_sql(PG_G_INDEXES, 0, 150000), "AccessExclusiveLock"));
	/* the server group has two statements, every other group one or two, and nothing after */
	assert_non_null(dbi_pg_group_sql(PG_G_SERVER, 1, 150000));
	assert_null(dbi_pg_group_sql(PG_G_SERVER, 2, 150000));
	for (int g = 0; g < PG_G_COUNT; g++)
		assert_null(dbi_pg_group_sql(g, 2, 170000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults),           cmocka_unit_test(test_targets_inherit),
	        cmocka_unit_test(test_metrics_and_groups), cmocka_unit_test(test_catalog),
	        cmocka_unit_test(test_sql_by_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
