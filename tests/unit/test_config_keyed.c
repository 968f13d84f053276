/*
 * test_config_keyed.c — unit tests of DBI_CT_KEYED_LIST (a mapping of arbitrary names,
 * dots included, to sub-mappings: `metrics: {postgresql.blks_hit: {enabled: true}}`) and
 * of dbi_conf_load_list_file (a list of mappings kept in a file of its own, e.g. a
 * fleet's targets file), through the real config loader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbi/component.h"
#include "dbi/config.h"

struct kl_metric {
	char *name; /* the key; must be first */
	bool enabled;
	int64_t weight;
};

struct kl_cfg {
	struct dbi_list metrics;
	int64_t other;
};

static const struct dbi_conf_key kl_metric_keys[] = {
        {.name = "enabled", .type = DBI_CT_BOOL, .offset = offsetof(struct kl_metric, enabled), .def = "true"},
        {.name = "weight", .type = DBI_CT_INT, .offset = offsetof(struct kl_metric, weight), .def = "7"},
        DBI_CONF_END,
};

static const struct dbi_conf_key kl_keys[] = {
        {.name = "metrics",
         .type = DBI_CT_KEYED_LIST,
         .offset = offsetof(struct kl_cfg, metrics),
         .sub = kl_metric_keys,
         .elem_size = sizeof(struct kl_metric)},
        {.name = "other", .type = DBI_CT_INT, .offset = offsetof(struct kl_cfg, other), .def = "1"},
        DBI_CONF_END,
};

static const struct dbi_component kl_receiver = {
        .type = "kl",
        .kind = DBI_RECEIVER,
        .signals = DBI_SIG_METRICS,
        .keys = kl_keys,
        .conf_size = sizeof(struct kl_cfg),
};

extern const struct dbi_component dbi_exporter_nop;
static const struct dbi_component *const kl_registry[] = {&kl_receiver, &dbi_exporter_nop, NULL};

#define TAIL "exporters:\n  nop:\nservice:\n  pipelines:\n    metrics: {receivers: [kl], exporters: [nop]}\n"

static struct dbi_errbuf g_err;

static const struct kl_cfg *kl_of(const struct dbi_config *cfg)
{
	const struct dbi_conf_component *c = dbi_config_find_kind(cfg, DBI_RECEIVER, "kl");
	assert_non_null(c);
	return c->cfg;
}

static void test_keyed_list(void **unused)
{
	(void)unused;
	const char *y = "receivers:\n"
	                "  kl:\n"
	                "    metrics:\n"
	                "      postgresql.blks_hit: {enabled: false}\n"
	                "      postgresql.deadlocks: {weight: 3}\n"
	                "      a.b.c:\n" TAIL;
	struct dbi_config *cfg = NULL;
	int rc = dbi_config_load_string(y, "t.yaml", kl_registry, &cfg, &g_err);
	if (rc != DBI_OK)
		assert_int_equal(rc, DBI_OK);
	const struct kl_cfg *k = kl_of(cfg);
	assert_int_equal(k->metrics.n, 3);
	const struct kl_metric *m = k->metrics.items;
	assert_string_equal(m[0].name, "postgresql.blks_hit");
	assert_false(m[0].enabled);
	assert_int_equal(m[0].weight, 7);
	assert_string_equal(m[1].name, "postgresql.deadlocks");
	assert_true(m[1].enabled);
	assert_int_equal(m[1].weight, 3);
	assert_string_equal(m[2].name, "a.b.c"); /* null value: defaults */
	assert_true(m[2].enabled);
	assert_int_equal(k->other, 1);
	dbi_config_free(cfg);
}

static void test_keyed_list_errors(void **unused)
{
	(void)unused;
	struct dbi_config *cfg = NULL;
	const char *bad_elem = "receivers:\n  kl:\n    metrics:\n      x.y: {enabled: maybe, nope: 1}\n" TAIL;
	assert_int_equal(dbi_config_load_string(bad_elem, "t.yaml", kl_registry, &cfg, &g_err), DBI_ERR);
	assert_non_null(strstr(g_err.msg, "t.yaml:4:22: receivers.kl.metrics.x.y.enabled: invalid boolean 'maybe'"));
	assert_non_null(strstr(g_err.msg, "t.yaml:4:29: unknown key 'nope' in receivers.kl.metrics.x.y"));
	const char *not_map = "receivers:\n  kl:\n    metrics: [a, b]\n" TAIL;
	assert_int_equal(dbi_config_load_string(not_map, "t.yaml", kl_registry, &cfg, &g_err), DBI_ERR);
	assert_non_null(strstr(g_err.msg, "t.yaml:3:14: receivers.kl.metrics: expected a mapping of names"));
	const char *scalar_elem = "receivers:\n  kl:\n    metrics: {m: 3}\n" TAIL;
	assert_int_equal(dbi_config_load_string(scalar_elem, "t.yaml", kl_registry, &cfg, &g_err), DBI_ERR);
	assert_non_null(
	        strstr(g_err.msg, "receivers.kl.metrics.m: expected a mapping (key: value), not a single value"));
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_list_file(void **unused)
{
	(void)unused;
	char path[] = "/tmp/dbi-kl-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	struct dbi_list l = {0};

	setenv("DBI_KL_WEIGHT", "42", 1);
	write_file(path, "- {enabled: false}\n- weight: ${env:DBI_KL_WEIGHT}\n");
	assert_int_equal(dbi_conf_load_list_file(path, kl_metric_keys, sizeof(struct kl_metric), &l, &g_err), DBI_OK);
	assert_int_equal(l.n, 2);
	const struct kl_metric *m = l.items;
	assert_false(m[0].enabled);
	assert_int_equal(m[1].weight, 42);
	dbi_conf_list_release(kl_metric_keys, sizeof(struct kl_metric), &l);
	assert_null(l.items);

	write_file(path, "");
	assert_int_equal(dbi_conf_load_list_file(path, kl_metric_keys, sizeof(struct kl_metric), &l, &g_err), DBI_OK);
	assert_int_equal(l.n, 0);
	dbi_conf_list_release(kl_metric_keys, sizeof(struct kl_metric), &l);

	write_file(path, "- {weight: x}\n");
	dbi_err_clear(&g_err);
	assert_int_equal(dbi_conf_load_list_file(path, kl_metric_keys, sizeof(struct kl_metric), &l, &g_err), DBI_ERR);
	assert_non_null(strstr(g_err.msg, ":1:12: targets[0].weight: invalid integer 'x'"));
	write_file(path, "a: [\n");
	dbi_err_clear(&g_err);
	assert_int_equal(dbi_conf_load_list_file(path, kl_metric_keys, sizeof(struct kl_metric), &l, &g_err), DBI_ERR);
	assert_true(g_err.count > 0);
	unlink(path);
	dbi_err_clear(&g_err);
	assert_int_equal(dbi_conf_load_list_file(path, kl_metric_keys, sizeof(struct kl_metric), &l, &g_err), DBI_ERR);
	assert_non_null(strstr(g_err.msg, "cannot read"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_keyed_list),
	        cmocka_unit_test(test_keyed_list_errors),
	        cmocka_unit_test(test_list_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
