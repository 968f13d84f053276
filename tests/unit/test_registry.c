/*
 * test_registry.c — interning: same content gives the same id, attribute order does not
 * matter, different kinds/units make different metrics, the series limit refuses new
 * series, ids map back to objects, and concurrent interning from several threads agrees.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dbi/registry.h"

static void test_attrs(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(0);
	struct dbi_attr a[] = {
	        {.key = "b", .type = DBI_AT_STR, .v.s = "x"},
	        {.key = "a", .type = DBI_AT_INT, .v.i = 3},
	        {.key = "c", .type = DBI_AT_DOUBLE, .v.d = 1.5},
	};
	struct dbi_attr b[] = {a[2], a[0], a[1]};
	uint32_t ia = dbi_attrs_intern(reg, a, 3), ib = dbi_attrs_intern(reg, b, 3);
	assert_true(ia > 0);
	assert_int_equal(ia, ib);
	uint32_t empty = dbi_attrs_intern(reg, NULL, 0);
	assert_true(empty > 0 && empty != ia);
	const struct dbi_attrset *s = dbi_attrs_get(reg, ia);
	assert_int_equal(s->n, 3);
	struct dbi_attr out;
	assert_true(dbi_attrs_find(s->enc, s->len, "b", &out));
	assert_int_equal(out.type, DBI_AT_STR);
	assert_memory_equal(out.v.s, "x", 1);
	assert_true(dbi_attrs_find(s->enc, s->len, "a", &out));
	assert_int_equal(out.v.i, 3);
	char buf[128];
	assert_string_equal(dbi_attrs_format(s->enc, s->len, buf, sizeof(buf)), "a=3, b=\"x\", c=1.5");
	/* duplicates: last wins */
	struct dbi_attr d[] = {{.key = "k", .type = DBI_AT_STR, .v.s = "1"},
	                       {.key = "k", .type = DBI_AT_STR, .v.s = "2"}};
	uint32_t id = dbi_attrs_intern(reg, d, 2);
	s = dbi_attrs_get(reg, id);
	assert_int_equal(s->n, 1);
	assert_true(dbi_attrs_find(s->enc, s->len, "k", &out));
	assert_memory_equal(out.v.s, "2", 1);
	/* invalid: empty key */
	struct dbi_attr bad = {.key = "", .type = DBI_AT_STR, .v.s = "v"};
	assert_int_equal(dbi_attrs_intern(reg, &bad, 1), 0);
	dbi_registry_destroy(reg);
}

static void test_metrics_and_series(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(3);
	struct dbi_metric_def g = {.name = "postgresql.backends", .unit = "1", .kind = DBI_MK_SUM};
	struct dbi_metric_def g2 = g;
	g2.unit = "{connections}";
	uint32_t m1 = dbi_metric_intern(reg, &g), m1b = dbi_metric_intern(reg, &g), m2 = dbi_metric_intern(reg, &g2);
	assert_true(m1 > 0);
	assert_int_equal(m1, m1b);
	assert_int_not_equal(m1, m2);
	assert_string_equal(dbi_metric_get(reg, m1)->name, "postgresql.backends");
	struct dbi_metric_def bad = {.name = "", .kind = DBI_MK_GAUGE};
	assert_int_equal(dbi_metric_intern(reg, &bad), 0);

	uint32_t sc = dbi_scope_intern(reg, "dbi/postgresql", "1.0");
	assert_int_equal(sc, dbi_scope_intern(reg, "dbi/postgresql", "1.0"));
	uint32_t res = dbi_attrs_intern(reg, NULL, 0);
	uint32_t ids[4];
	for (int i = 0; i < 4; i++) {
		struct dbi_attr a = {.key = "i", .type = DBI_AT_INT, .v.i = i};
		ids[i] = dbi_series_intern(reg, m1, res, sc, dbi_attrs_intern(reg, &a, 1));
	}
	assert_true(ids[0] && ids[1] && ids[2]);
	assert_int_equal(ids[3], 0); /* limit of 3 series */
	struct dbi_registry_stats st;
	dbi_registry_get_stats(reg, &st);
	assert_int_equal(st.series, 3);
	assert_int_equal(st.series_limit_hits, 1);
	/* existing series are still found at the limit */
	struct dbi_attr a0 = {.key = "i", .type = DBI_AT_INT, .v.i = 0};
	assert_int_equal(dbi_series_intern(reg, m1, res, sc, dbi_attrs_intern(reg, &a0, 1)), ids[0]);
	const struct dbi_series *s = dbi_series_get(reg, ids[1]);
	assert_int_equal(s->metric, m1);
	assert_null(dbi_series_get(reg, 999));
	dbi_registry_destroy(reg);
}

static void test_hash_is_content_based(void **state)
{
	(void)state;
	/* two registries interning in different orders agree on series hashes */
	struct dbi_registry *r1 = dbi_registry_create(0), *r2 = dbi_registry_create(0);
	struct dbi_metric_def a = {.name = "a", .kind = DBI_MK_GAUGE}, b = {.name = "b", .kind = DBI_MK_GAUGE};
	uint32_t a1 = dbi_metric_intern(r1, &a), b1 = dbi_metric_intern(r1, &b);
	uint32_t b2 = dbi_metric_intern(r2, &b), a2 = dbi_metric_intern(r2, &a);
	uint32_t e1 = dbi_attrs_intern(r1, NULL, 0), e2 = dbi_attrs_intern(r2, NULL, 0);
	uint32_t s1 = dbi_scope_intern(r1, "x", ""), s2 = dbi_scope_intern(r2, "x", "");
	uint32_t sa1 = dbi_series_intern(r1, a1, e1, s1, e1), sa2 = dbi_series_intern(r2, a2, e2, s2, e2);
	assert_int_equal(dbi_series_get(r1, sa1)->hash, dbi_series_get(r2, sa2)->hash);
	(void)b1;
	(void)b2;
	dbi_registry_destroy(r1);
	dbi_registry_destroy(r2);
}

struct race {
	struct dbi_registry *reg;
	uint32_t ids[2000];
};

static void *interner(void *arg)
{
	struct race *r = arg;
	struct dbi_metric_def d = {.name = "m", .kind = DBI_MK_GAUGE};
	uint32_t m = dbi_metric_intern(r->reg, &d);
	uint32_t sc = dbi_scope_intern(r->reg, "s", "");
	uint32_t res = dbi_attrs_intern(r->reg, NULL, 0);
	for (int i = 0; i < 2000; i++) {
		struct dbi_attr a = {.key = "i", .type = DBI_AT_INT, .v.i = i};
		r->ids[i] = dbi_series_intern(r->reg, m, res, sc, dbi_attrs_intern(r->reg, &a, 1));
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	(void)state;
	struct dbi_registry *reg = dbi_registry_create(0);
	static struct race r[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		r[i].reg = reg;
		pthread_create(&t[i], NULL, interner, &r[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 1; i < 4; i++)
		assert_memory_equal(r[0].ids, r[i].ids, sizeof(r[0].ids));
	assert_int_equal(dbi_series_max_id(reg), 2000);
	dbi_registry_destroy(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_attrs),
	        cmocka_unit_test(test_metrics_and_series),
	        cmocka_unit_test(test_hash_is_content_based),
	        cmocka_unit_test(test_concurrent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
