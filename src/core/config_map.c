/*
 * config_map.c — config maps: filling a C struct from a node tree through an array of
 * struct dbi_conf_key, applying defaults, checking types, ranges and required keys,
 * and releasing what was allocated.
 *
 * Components, service: and runtime: all go through here, so every key in the
 * collector is parsed, defaulted, documented and reported the same way. Defaults are
 * text run through the same setters as user input: a default can never mean
 * something a user could not have written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

/* What a setter made of a value. EMPTY: written but empty (the default stays). */
enum { DBI_VAL_BAD = -1, DBI_VAL_EMPTY = 0, DBI_VAL_SET = 1 };

#define DBI_PATH_MAX 512

static void apply_defaults(struct dbi_cctx *cx, const struct dbi_conf_key *keys, void *dst, const char *path);

const char *dbi_conf_type_name(enum dbi_conf_type t)
{
	switch (t) {
	case DBI_CT_BOOL:
		return "bool";
	case DBI_CT_INT:
		return "int";
	case DBI_CT_DOUBLE:
		return "number";
	case DBI_CT_STRING:
		return "string";
	case DBI_CT_DURATION:
		return "duration";
	case DBI_CT_SIZE:
		return "size";
	case DBI_CT_ENUM:
		return "enum";
	case DBI_CT_STRLIST:
		return "[string]";
	case DBI_CT_STRMAP:
		return "{string: string}";
	case DBI_CT_LIST:
		return "[{...}]";
	case DBI_CT_ENDPOINT:
		return "host:port";
	case DBI_CT_PERCENT:
		return "percent";
	case DBI_CT_KEYED_LIST:
		return "{name: {...}}";
	}
	return "?";
}

static size_t field_size(enum dbi_conf_type t)
{
	switch (t) {
	case DBI_CT_BOOL:
		return sizeof(bool);
	case DBI_CT_INT:
		return sizeof(int64_t);
	case DBI_CT_DOUBLE:
	case DBI_CT_PERCENT:
		return sizeof(double);
	case DBI_CT_STRING:
		return sizeof(char *);
	case DBI_CT_DURATION:
	case DBI_CT_SIZE:
		return sizeof(uint64_t);
	case DBI_CT_ENUM:
		return sizeof(int);
	case DBI_CT_STRLIST:
		return sizeof(struct dbi_strlist);
	case DBI_CT_STRMAP:
		return sizeof(struct dbi_strmap);
	case DBI_CT_LIST:
	case DBI_CT_KEYED_LIST:
		return sizeof(struct dbi_list);
	case DBI_CT_ENDPOINT:
		return sizeof(struct dbi_endpoint);
	}
	return 0;
}

static bool is_collection(enum dbi_conf_type t)
{
	return t == DBI_CT_STRLIST || t == DBI_CT_STRMAP || t == DBI_CT_LIST || t == DBI_CT_KEYED_LIST;
}

static void *field_of(void *dst, const struct dbi_conf_key *k)
{
	return (char *)dst + k->offset;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void release_field(const struct dbi_conf_key *k, void *f)
{
	switch (k->type) {
	case DBI_CT_STRING:
		free(*(char **)f);
		*(char **)f = NULL;
		break;
	case DBI_CT_STRLIST: {
		struct dbi_strlist *l = f;
		free_strv(l->v, l->n);
		l->v = NULL;
		l->n = 0;
		break;
	}
	case DBI_CT_STRMAP: {
		struct dbi_strmap *m = f;
		free_strv(m->k, m->n);
		free_strv(m->v, m->n);
		m->k = m->v = NULL;
		m->n = 0;
		break;
	}
	case DBI_CT_LIST:
		dbi_conf_list_release(k->sub, k->elem_size, f);
		break;
	case DBI_CT_KEYED_LIST: {
		struct dbi_list *l = f;
		for (size_t i = 0; i < l->n; i++) {
			char **name = (char **)(void *)((char *)l->items + i * k->elem_size);
			free(*name);
			*name = NULL;
		}
		dbi_conf_list_release(k->sub, k->elem_size, f);
		break;
	}
	default:
		break;
	}
}

void dbi_conf_list_release(const struct dbi_conf_key *sub, size_t elem_size, struct dbi_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		dbi_conf_release(sub, (char *)l->items + i * elem_size);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

void dbi_conf_release(const struct dbi_conf_key *keys, void *dst)
{
	if (!keys || !dst)
		return;
	for (const struct dbi_conf_key *k = keys; k->name; k++)
		release_field(k, field_of(dst, k));
}

/* Paths only name things in messages and lookups: a truncated one is still useful. */
static void join(char *buf, const char *path, const char *name)
{
	int n;

	if (path && *path)
		n = snprintf(buf, DBI_PATH_MAX, "%s.%s", path, name);
	else
		n = snprintf(buf, DBI_PATH_MAX, "%s", name);
	if (n >= DBI_PATH_MAX)
		buf[DBI_PATH_MAX - 1] = '\0';
}

/* A value as it may appear in a message: secrets never, and not a whole screenful. */
static const char *shown(const struct dbi_conf_key *k, const char *s, char *buf, size_t len)
{
	if (k->flags & DBI_CK_SECRET)
		return "***";
	if (strlen(s) <= 64)
		return s;
	snprintf(buf, len, "%.60s...", s);
	return buf;
}

static const char *kind_word(const struct dbi_cnode *v)
{
	return v->kind == DBI_CN_SEQ ? "list" : v->kind == DBI_CN_MAP ? "mapping" : "single value";
}

void dbi_conf_fmt_bound(const struct dbi_conf_key *k, double x, char *buf, size_t len)
{
	if (k->type == DBI_CT_DURATION)
		dbi_cval_fmt_duration((uint64_t)(x * 1e9), buf, len);
	else if (k->type == DBI_CT_SIZE)
		dbi_cval_fmt_size((uint64_t)x, buf, len);
	else if (k->type == DBI_CT_INT)
		snprintf(buf, len, "%.0f", x);
	else
		snprintf(buf, len, "%g", x);
}

static int check_range(struct dbi_cctx *cx, const struct dbi_conf_key *k, const struct dbi_cnode *v, const char *path,
                       double x)
{
	char lo[64], hi[64], sb[80];

	if (!(k->min < k->max) || (x >= k->min && x <= k->max))
		return DBI_OK;
	dbi_conf_fmt_bound(k, k->min, lo, sizeof(lo));
	dbi_conf_fmt_bound(k, k->max, hi, sizeof(hi));
	dbi_cerr(cx, v->line, v->col, "%s: %s is out of range [%s, %s]", path, shown(k, v->s, sb, sizeof(sb)), lo, hi);
	return DBI_ERR;
}

static int set_scalar(struct dbi_cctx *cx, const struct dbi_conf_key *k, void *f, const struct dbi_cnode *v,
                      const char *path)
{
	char sb[80], choices[512];
	const char *s, *sv;
	int why = DBI_CV_BAD;

	if (v->kind != DBI_CN_SCALAR) {
		dbi_cerr(cx, v->line, v->col, "%s: expected a %s, not a %s", path, dbi_conf_type_name(k->type),
		         kind_word(v));
		return DBI_VAL_BAD;
	}
	if (v->null || (!v->s[0] && k->type != DBI_CT_STRING))
		return DBI_VAL_EMPTY;
	s = v->s;
	sv = shown(k, s, sb, sizeof(sb));
	switch (k->type) {
	case DBI_CT_BOOL: {
		bool b;
		if (dbi_cval_bool(s, &b) != DBI_OK) {
			dbi_cerr(cx, v->line, v->col, "%s: invalid boolean '%s' (true/false, yes/no or on/off)", path,
			         sv);
			return DBI_VAL_BAD;
		}
		*(bool *)f = b;
		break;
	}
	case DBI_CT_INT: {
		int64_t x;
		if (dbi_cval_int(s, &x, &why) != DBI_OK) {
			if (why == DBI_CV_TOOBIG)
				dbi_cerr(cx, v->line, v->col, "%s: integer '%s' does not fit in 64 bits", path, sv);
			else
				dbi_cerr(cx, v->line, v->col, "%s: invalid integer '%s'", path, sv);
			return DBI_VAL_BAD;
		}
		if (check_range(cx, k, v, path, (double)x) != DBI_OK)
			return DBI_VAL_BAD;
		*(int64_t *)f = x;
		break;
	}
	case DBI_CT_DOUBLE: {
		double x;
		if (dbi_cval_double(s, &x) != DBI_OK) {
			dbi_cerr(cx, v->line, v->col, "%s: invalid number '%s'", path, sv);
			return DBI_VAL_BAD;
		}
		if (check_range(cx, k, v, path, x) != DBI_OK)
			return DBI_VAL_BAD;
		*(double *)f = x;
		break;
	}
	case DBI_CT_PERCENT: {
		double x;
		if (dbi_cval_percent(s, &x) != DBI_OK) {
			dbi_cerr(cx, v->line, v->col, "%s: invalid percentage '%s' (a number from 0 to 100)", path, sv);
			return DBI_VAL_BAD;
		}
		if (check_range(cx, k, v, path, x) != DBI_OK)
			return DBI_VAL_BAD;
		*(double *)f = x;
		break;
	}
	case DBI_CT_STRING: {
		int idx;
		char *dup;
		if (k->choices && dbi_cval_choice(k->choices, s, &idx) != DBI_OK) {
			dbi_cval_fmt_choices(k->choices, choices, sizeof(choices));
			dbi_cerr(cx, v->line, v->col, "%s: invalid value '%s' (one of: %s)", path, sv, choices);
			return DBI_VAL_BAD;
		}
		dup = strdup(s);
		if (!dup) {
			dbi_cerr(cx, 0, 0, "out of memory");
			return DBI_VAL_BAD;
		}
		free(*(char **)f);
		*(char **)f = dup;
		if (!*s)
			return DBI_VAL_EMPTY;
		break;
	}
	case DBI_CT_DURATION: {
		uint64_t ns;
		if (dbi_cval_duration(s, &ns, &why) != DBI_OK) {
			if (why == DBI_CV_NOUNIT)
				dbi_cerr(cx, v->line, v->col, "%s: duration needs a unit, e.g. 10s", path);
			else if (why == DBI_CV_NEGATIVE)
				dbi_cerr(cx, v->line, v->col, "%s: negative duration '%s' is not allowed", path, sv);
			else if (why == DBI_CV_TOOBIG)
				dbi_cerr(cx, v->line, v->col, "%s: duration '%s' is too large", path, sv);
			else
				dbi_cerr(cx, v->line, v->col, "%s: invalid duration '%s' (e.g. 10s, 500ms, 1m30s)",
				         path, sv);
			return DBI_VAL_BAD;
		}
		if (check_range(cx, k, v, path, (double)ns / 1e9) != DBI_OK)
			return DBI_VAL_BAD;
		*(uint64_t *)f = ns;
		break;
	}
	case DBI_CT_SIZE: {
		uint64_t bytes;
		if (dbi_cval_size(s, &bytes, &why) != DBI_OK) {
			if (why == DBI_CV_NEGATIVE)
				dbi_cerr(cx, v->line, v->col, "%s: negative size '%s' is not allowed", path, sv);
			else if (why == DBI_CV_TOOBIG)
				dbi_cerr(cx, v->line, v->col, "%s: size '%s' is too large", path, sv);
			else
				dbi_cerr(cx, v->line, v->col, "%s: invalid size '%s' (e.g. 1048576, 512KiB, 4MiB, 1GB)",
				         path, sv);
			return DBI_VAL_BAD;
		}
		if (check_range(cx, k, v, path, (double)bytes) != DBI_OK)
			return DBI_VAL_BAD;
		*(uint64_t *)f = bytes;
		break;
	}
	case DBI_CT_ENUM: {
		int idx;
		if (!k->choices || dbi_cval_choice(k->choices, s, &idx) != DBI_OK) {
			dbi_cval_fmt_choices(k->choices ? k->choices : "", choices, sizeof(choices));
			dbi_cerr(cx, v->line, v->col, "%s: invalid value '%s' (one of: %s)", path, sv, choices);
			return DBI_VAL_BAD;
		}
		*(int *)f = idx;
		break;
	}
	case DBI_CT_ENDPOINT: {
		struct dbi_endpoint ep;
		if (dbi_cval_endpoint(s, &ep, &why) != DBI_OK) {
			if (why == DBI_CV_PORT)
				dbi_cerr(cx, v->line, v->col, "%s: invalid port in endpoint '%s' (1 to 65535)", path,
				         sv);
			else if (why == DBI_CV_V6)
				dbi_cerr(cx, v->line, v->col,
				         "%s: IPv6 address in endpoint '%s' needs brackets, e.g. [::1]:4317", path, sv);
			else
				dbi_cerr(cx, v->line, v->col,
				         "%s: invalid endpoint '%s' (host:port, [ipv6]:port or :port)", path, sv);
			return DBI_VAL_BAD;
		}
		*(struct dbi_endpoint *)f = ep;
		break;
	}
	default:
		dbi_cerr(cx, v->line, v->col, "%s: key has an unknown type %d", path, (int)k->type);
		return DBI_VAL_BAD;
	}
	return DBI_VAL_SET;
}

static char **strv_new(size_t n)
{
	return calloc(n ? n : 1, sizeof(char *));
}

static int set_strlist(struct dbi_cctx *cx, const struct dbi_conf_key *k, void *f, const struct dbi_cnode *v,
                       const char *path)
{
	struct dbi_strlist *l = f;
	char **strv;
	int rc = DBI_VAL_SET;

	if (v->kind != DBI_CN_SEQ) {
		if (v->kind == DBI_CN_SCALAR && (v->null || !v->s[0]))
			return DBI_VAL_EMPTY;
		dbi_cerr(cx, v->line, v->col, "%s: expected a list, e.g. [a, b], not a %s", path, kind_word(v));
		return DBI_VAL_BAD;
	}
	strv = strv_new(v->n);
	if (!strv)
		goto oom;
	for (size_t i = 0; i < v->n; i++) {
		const struct dbi_cnode *it = v->kids[i];
		if (it->kind != DBI_CN_SCALAR) {
			dbi_cerr(cx, it->line, it->col, "%s[%zu]: expected a single value, not a %s", path, i,
			         kind_word(it));
			rc = DBI_VAL_BAD;
			strv[i] = strdup("");
		} else {
			strv[i] = strdup(it->null ? "" : it->s);
		}
		if (!strv[i]) {
			free_strv(strv, v->n);
			goto oom;
		}
	}
	release_field(k, f);
	l->v = strv;
	l->n = v->n;
	return rc == DBI_VAL_SET && v->n == 0 ? DBI_VAL_EMPTY : rc;
oom:
	dbi_cerr(cx, 0, 0, "out of memory");
	return DBI_VAL_BAD;
}

static int set_strmap(struct dbi_cctx *cx, const struct dbi_conf_key *k, void *f, const struct dbi_cnode *v,
                      const char *path)
{
	struct dbi_strmap *m = f;
	size_t np;
	char **keys, **vals;
	int rc = DBI_VAL_SET;

	if (v->kind != DBI_CN_MAP) {
		if (v->kind == DBI_CN_SCALAR && (v->null || !v->s[0]))
			return DBI_VAL_EMPTY;
		dbi_cerr(cx, v->line, v->col, "%s: expected a mapping, e.g. {name: value}, not a %s", path,
		         kind_word(v));
		return DBI_VAL_BAD;
	}
	np = dbi_cnode_pairs(v);
	keys = strv_new(np);
	vals = strv_new(np);
	if (!keys || !vals)
		goto oom;
	for (size_t i = 0; i < np; i++) {
		const struct dbi_cnode *kn = dbi_cnode_key(v, i), *vn = dbi_cnode_val(v, i);
		const char *val = "";
		if (vn->kind != DBI_CN_SCALAR) {
			dbi_cerr(cx, vn->line, vn->col, "%s.%s: expected a single value, not a %s", path, kn->s,
			         kind_word(vn));
			rc = DBI_VAL_BAD;
		} else if (!vn->null) {
			val = vn->s;
		}
		keys[i] = strdup(kn->s);
		vals[i] = strdup(val);
		if (!keys[i] || !vals[i])
			goto oom;
	}
	release_field(k, f);
	m->k = keys;
	m->v = vals;
	m->n = np;
	return rc == DBI_VAL_SET && np == 0 ? DBI_VAL_EMPTY : rc;
oom:
	/* calloc'd: entries not reached yet are NULL */
	if (keys)
		free_strv(keys, np);
	if (vals)
		free_strv(vals, np);
	dbi_cerr(cx, 0, 0, "out of memory");
	return DBI_VAL_BAD;
}

static int set_list(struct dbi_cctx *cx, const struct dbi_conf_key *k, void *f, const struct dbi_cnode *v,
                    const char *path)
{
	struct dbi_list *l = f;
	char *items;
	char ipath[DBI_PATH_MAX];
	int before = cx->nerr;

	if (v->kind != DBI_CN_SEQ) {
		if (v->kind == DBI_CN_SCALAR && (v->null || !v->s[0]))
			return DBI_VAL_EMPTY;
		dbi_cerr(cx, v->line, v->col, "%s: expected a list of mappings (- key: value), not a %s", path,
		         kind_word(v));
		return DBI_VAL_BAD;
	}
	if (!k->sub || !k->elem_size) {
		dbi_cerr(cx, v->line, v->col, "%s: list key has no element map (.sub/.elem_size)", path);
		return DBI_VAL_BAD;
	}
	items = calloc(v->n ? v->n : 1, k->elem_size);
	if (!items) {
		dbi_cerr(cx, 0, 0, "out of memory");
		return DBI_VAL_BAD;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct dbi_cnode *it = v->kids[i];
		snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
		/* Every element gets its defaults at least, so release can treat all alike. */
		if (!dbi_cnode_is_null(it) && it->kind != DBI_CN_MAP) {
			dbi_cerr(cx, it->line, it->col, "%s: expected a mapping (key: value), not a %s", ipath,
			         kind_word(it));
			apply_defaults(cx, k->sub, items + i * k->elem_size, ipath);
			continue;
		}
		dbi_conf_load_map(cx, k->sub, items + i * k->elem_size, it, ipath, NULL, it->line, it->col);
	}
	release_field(k, f);
	l->items = items;
	l->n = v->n;
	if (cx->nerr != before)
		return DBI_VAL_BAD;
	return v->n ? DBI_VAL_SET : DBI_VAL_EMPTY;
}

static int set_keyed_list(struct dbi_cctx *cx, const struct dbi_conf_key *k, void *f, const struct dbi_cnode *v,
                          const char *path)
{
	struct dbi_list *l = f;
	size_t np;
	char *items;
	char ipath[DBI_PATH_MAX];
	int before = cx->nerr;

	if (v->kind != DBI_CN_MAP) {
		if (v->kind == DBI_CN_SCALAR && (v->null || !v->s[0]))
			return DBI_VAL_EMPTY;
		dbi_cerr(cx, v->line, v->col,
		         "%s: expected a mapping of names to settings (name: {key: value}), not a %s", path,
		         kind_word(v));
		return DBI_VAL_BAD;
	}
	/* the name lives in the element's first field: the struct must start with it */
	if (!k->sub || k->elem_size < sizeof(char *)) {
		dbi_cerr(cx, v->line, v->col, "%s: keyed list key has no element map (.sub/.elem_size)", path);
		return DBI_VAL_BAD;
	}
	np = dbi_cnode_pairs(v);
	items = calloc(np ? np : 1, k->elem_size);
	if (!items) {
		dbi_cerr(cx, 0, 0, "out of memory");
		return DBI_VAL_BAD;
	}
	for (size_t i = 0; i < np; i++) {
		const struct dbi_cnode *kn = dbi_cnode_key(v, i), *it = dbi_cnode_val(v, i);
		char *elem = items + i * k->elem_size;
		join(ipath, path, kn->s);
		if (!dbi_cnode_is_null(it) && it->kind != DBI_CN_MAP) {
			dbi_cerr(cx, it->line, it->col, "%s: expected a mapping (key: value), not a %s", ipath,
			         kind_word(it));
			apply_defaults(cx, k->sub, elem, ipath);
		} else {
			dbi_conf_load_map(cx, k->sub, elem, it, ipath, NULL, kn->line, kn->col);
		}
		/* after the sub-map: its defaults zero every field it names, never the name */
		*(char **)(void *)elem = strdup(kn->s);
		if (!*(char **)(void *)elem)
			dbi_cerr(cx, 0, 0, "out of memory");
	}
	release_field(k, f);
	l->items = items;
	l->n = np;
	if (cx->nerr != before)
		return DBI_VAL_BAD;
	return np ? DBI_VAL_SET : DBI_VAL_EMPTY;
}

static int set_value(struct dbi_cctx *cx, const struct dbi_conf_key *k, void *dst, const struct dbi_cnode *v,
                     const char *path)
{
	void *f = field_of(dst, k);
	char why[256];
	int rc;

	switch (k->type) {
	case DBI_CT_STRLIST:
		rc = set_strlist(cx, k, f, v, path);
		break;
	case DBI_CT_STRMAP:
		rc = set_strmap(cx, k, f, v, path);
		break;
	case DBI_CT_LIST:
		rc = set_list(cx, k, f, v, path);
		break;
	case DBI_CT_KEYED_LIST:
		rc = set_keyed_list(cx, k, f, v, path);
		break;
	default:
		rc = set_scalar(cx, k, f, v, path);
		break;
	}
	if (rc == DBI_VAL_SET && k->check) {
		why[0] = '\0';
		if (k->check(f, why, sizeof(why)) != DBI_OK) {
			dbi_cerr(cx, v->line, v->col, "%s: %s", path, why[0] ? why : "invalid value");
			rc = DBI_VAL_BAD;
		}
	}
	return rc;
}

static void apply_defaults(struct dbi_cctx *cx, const struct dbi_conf_key *keys, void *dst, const char *path)
{
	char kpath[DBI_PATH_MAX];
	bool saved = cx->in_default;

	if (!keys)
		return;
	cx->in_default = true;
	for (const struct dbi_conf_key *k = keys; k->name; k++) {
		memset(field_of(dst, k), 0, field_size(k->type));
		if (!k->def)
			continue;
		join(kpath, path, k->name);
		if (is_collection(k->type)) {
			/* Lists and maps have no one-line scalar form: their default is YAML ("[a, b]"). */
			struct dbi_cnode *root = NULL;
			if (dbi_cnode_parse(cx, k->def, strlen(k->def), &root) == DBI_OK && root)
				set_value(cx, k, dst, root, kpath);
			dbi_cnode_free(root);
		} else {
			/* Used as the scalar's text as-is, so "*" or "a: b" need no YAML quoting. */
			struct dbi_cnode tmp = {.kind = DBI_CN_SCALAR, .s = (char *)k->def};
			set_value(cx, k, dst, &tmp, kpath);
		}
	}
	cx->in_default = saved;
}

int dbi_conf_defaults(const struct dbi_conf_key *keys, void *dst, struct dbi_errbuf *err)
{
	struct dbi_errbuf local;
	struct dbi_cctx cx = {.file = "config map"};

	dbi_err_clear(&local);
	cx.err = err ? err : &local;
	apply_defaults(&cx, keys, dst, "");
	dbi_cctx_finish(&cx);
	if (cx.nerr) {
		dbi_conf_release(keys, dst);
		return DBI_ERR;
	}
	return DBI_OK;
}

/* ---- filling from the user's mapping ---- */

struct dbi_cfill {
	struct dbi_cctx *cx;
	const struct dbi_conf_key *keys;
	void *dst;
	unsigned char *seen; /* per key: written (set, empty or bad), so not "missing" */
	const char *path;
	const char *skip;
};

static const struct dbi_conf_key *find_key(const struct dbi_conf_key *keys, const char *name)
{
	for (const struct dbi_conf_key *k = keys; k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

/* Is name a group of dotted keys ("retry_on_failure" for "retry_on_failure.enabled")? */
static bool is_group(const struct dbi_conf_key *keys, const char *name)
{
	size_t n = strlen(name);
	for (const struct dbi_conf_key *k = keys; k->name; k++)
		if (strncmp(k->name, name, n) == 0 && k->name[n] == '.')
			return true;
	return false;
}

/* The names that may appear at one level (prefix "" = top), each once, in map order. */
static void known_keys(const struct dbi_conf_key *keys, const char *prefix, const char *skip, char *buf, size_t len)
{
	size_t plen = prefix ? strlen(prefix) : 0, o = 0;

	buf[0] = '\0';
	for (const struct dbi_conf_key *k = keys; k && k->name; k++) {
		const char *rest = k->name;
		size_t seg;
		bool dup = false;
		if (plen) {
			if (strncmp(rest, prefix, plen) != 0 || rest[plen] != '.')
				continue;
			rest += plen + 1;
		}
		seg = strcspn(rest, ".");
		for (const struct dbi_conf_key *e = keys; e < k && !dup; e++) {
			const char *r2 = e->name;
			if (plen) {
				if (strncmp(r2, prefix, plen) != 0 || r2[plen] != '.')
					continue;
				r2 += plen + 1;
			}
			dup = strcspn(r2, ".") == seg && strncmp(r2, rest, seg) == 0;
		}
		if (!dup && o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%.*s", o ? ", " : "", (int)seg, rest);
	}
	if (skip && !plen && o < len)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", skip);
	if (o == 0)
		snprintf(buf, len, "none");
}

static void fill_level(struct dbi_cfill *fl, const struct dbi_cnode *map, const char *prefix)
{
	char full[DBI_PATH_MAX], kpath[DBI_PATH_MAX], known[2048];

	for (size_t i = 0; i < dbi_cnode_pairs(map); i++) {
		const struct dbi_cnode *kn = dbi_cnode_key(map, i), *vn = dbi_cnode_val(map, i);
		const struct dbi_conf_key *k;

		if (!prefix && fl->skip && strcmp(kn->s, fl->skip) == 0)
			continue;
		join(full, prefix, kn->s);
		k = fl->keys ? find_key(fl->keys, full) : NULL;
		if (k) {
			int rc;
			join(kpath, fl->path, full);
			rc = set_value(fl->cx, k, fl->dst, vn, kpath);
			if (rc == DBI_VAL_EMPTY && (k->flags & DBI_CK_REQUIRED))
				dbi_cerr(fl->cx, vn->line, vn->col, "%s is required and must not be empty", kpath);
			fl->seen[k - fl->keys] = 1;
			continue;
		}
		if (fl->keys && is_group(fl->keys, full)) {
			if (dbi_cnode_is_null(vn))
				continue;
			if (vn->kind != DBI_CN_MAP) {
				join(kpath, fl->path, full);
				known_keys(fl->keys, full, NULL, known, sizeof(known));
				dbi_cerr(fl->cx, vn->line, vn->col, "%s: expected a mapping with keys %s, not a %s",
				         kpath, known, kind_word(vn));
				continue;
			}
			fill_level(fl, vn, full);
			continue;
		}
		if (!fl->keys || !fl->keys->name) {
			dbi_cerr(fl->cx, kn->line, kn->col, "unknown key '%.100s' in %s (it has no settings)", kn->s,
			         fl->path);
			continue;
		}
		known_keys(fl->keys, prefix, fl->skip, known, sizeof(known));
		if (prefix)
			join(kpath, fl->path, prefix);
		else
			snprintf(kpath, sizeof(kpath), "%s", fl->path);
		dbi_cerr(fl->cx, kn->line, kn->col, "unknown key '%.100s' in %s (known keys: %s)", kn->s, kpath, known);
	}
}

void dbi_conf_load_map(struct dbi_cctx *cx, const struct dbi_conf_key *keys, void *dst, const struct dbi_cnode *node,
                       const char *path, const char *skip, int line, int col)
{
	struct dbi_cfill fl = {.cx = cx, .keys = keys, .dst = dst, .path = path, .skip = skip};
	size_t nkeys = 0;

	apply_defaults(cx, keys, dst, path);
	if (dbi_cnode_is_null(node))
		node = NULL;
	if (node && node->kind != DBI_CN_MAP) {
		/* One error is enough: its required keys are not "missing" on top of it. */
		dbi_cerr(cx, node->line, node->col, "%s: expected a mapping (key: value), not a %s", path,
		         kind_word(node));
		return;
	}
	for (const struct dbi_conf_key *k = keys; k && k->name; k++)
		nkeys++;
	fl.seen = calloc(nkeys ? nkeys : 1, 1);
	if (!fl.seen) {
		dbi_cerr(cx, 0, 0, "out of memory");
		return;
	}
	if (node)
		fill_level(&fl, node, NULL);
	for (size_t i = 0; i < nkeys; i++)
		if ((keys[i].flags & DBI_CK_REQUIRED) && !fl.seen[i])
			dbi_cerr(cx, line, col, "missing required key '%s' in %s", keys[i].name, path);
	free(fl.seen);
}

/* ---- a list of mappings in a file of its own ---- */

int dbi_conf_load_list_file(const char *path, const struct dbi_conf_key *sub, size_t elem_size, struct dbi_list *out,
                            struct dbi_errbuf *err)
{
	struct dbi_errbuf local;
	struct dbi_cctx cx = {.file = path};
	struct dbi_cnode *root = NULL;
	struct dbi_list tmp = {0};
	struct dbi_conf_key k = {.name = "targets", .type = DBI_CT_LIST, .sub = sub, .elem_size = elem_size};
	char *text = NULL;
	long len;
	FILE *f;

	dbi_err_clear(&local);
	cx.err = err ? err : &local;
	f = fopen(path, "rb");
	if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    len > (64L << 20)) {
		dbi_cerr(&cx, 0, 0, "cannot read the file (missing, unreadable or over 64 MiB)");
		goto fail;
	}
	text = malloc((size_t)len + 1);
	if (!text || fread(text, 1, (size_t)len, f) != (size_t)len) {
		dbi_cerr(&cx, 0, 0, "cannot read the file");
		goto fail;
	}
	text[len] = '\0';
	if (dbi_cnode_parse(&cx, text, (size_t)len, &root) != DBI_OK)
		goto fail;
	dbi_cnode_expand_env(&cx, root);
	if (root && !dbi_cnode_is_null(root))
		set_list(&cx, &k, &tmp, root, "targets");
	if (cx.nerr)
		goto fail;
	dbi_cnode_free(root);
	free(text);
	fclose(f);
	*out = tmp;
	return DBI_OK;
fail:
	dbi_conf_list_release(sub, elem_size, &tmp);
	dbi_cctx_finish(&cx);
	dbi_cnode_free(root);
	free(text);
	if (f)
		fclose(f);
	return DBI_ERR;
}
