/*
 * config_int.h — private to the config loader (src/core/config*.c).
 *
 * The loader works in three layers, one file each: config_yaml.c turns YAML text into
 * a small node tree that remembers where every node was written (libyaml's document
 * API forgets nothing but makes positions and duplicate keys awkward to get at);
 * config_map.c fills C structs from that tree through config maps; config.c knows the
 * collector's sections and pipelines. Scalar parsers live in config_value.c, --help in
 * config_help.c.
 */
#ifndef DBI_CONFIG_INT_H
#define DBI_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbi/config.h"

/* Past this many errors the rest are mostly echoes of the first ones. */
#define DBI_CONF_MAX_ERRORS 25
/* Deep enough for any sane config; bounds recursion in every pass over the tree. */
#define DBI_CONF_MAX_DEPTH 64
/* Bounds memory when aliases multiply a document ("billion laughs"). */
#define DBI_CONF_MAX_NODES 200000

enum dbi_cnode_kind { DBI_CN_SCALAR = 1, DBI_CN_SEQ, DBI_CN_MAP };

struct dbi_cnode {
	enum dbi_cnode_kind kind;
	int line, col; /* 1-based */
	bool null;     /* plain scalar written as nothing, ~ or null */
	bool quoted;   /* scalar in quotes or block style */
	bool drop;     /* map key rejected while building: the pair is pruned */
	char *s;       /* scalar text; env-expanded once dbi_cnode_expand_env ran */
	/* SEQ: n items; MAP: n = 2 * pairs, laid out key, value, key, value ... */
	struct dbi_cnode **kids;
	size_t n, cap;
};

static inline size_t dbi_cnode_pairs(const struct dbi_cnode *m)
{
	return m->n / 2;
}

static inline struct dbi_cnode *dbi_cnode_key(const struct dbi_cnode *m, size_t i)
{
	return m->kids[2 * i];
}

static inline struct dbi_cnode *dbi_cnode_val(const struct dbi_cnode *m, size_t i)
{
	return m->kids[2 * i + 1];
}

static inline bool dbi_cnode_is_null(const struct dbi_cnode *n)
{
	return n == NULL || (n->kind == DBI_CN_SCALAR && n->null);
}

/* Errors found are held beyond this many only as a count. */
#define DBI_CONF_HELD_ERRORS 1000

struct dbi_cerror {
	int line, col;
	size_t seq; /* discovery order, to keep the sort stable */
	char *text; /* the whole "file:line:col: message" line */
};

/*
 * Where errors go while loading. They are held and sorted by position before they
 * reach the errbuf: checks run section by section, but people fix a file top down.
 */
struct dbi_cctx {
	const char *file;
	struct dbi_errbuf *err;
	int nerr;        /* every error reported; nonzero means the load fails */
	bool in_default; /* errors come from a key's built-in default, not the user's file */
	struct dbi_cerror *held;
	size_t nheld, capheld;
};

/* One "file:line:col: message" line; line <= 0 prints "file: message". */
void dbi_cerr(struct dbi_cctx *cx, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Sort the held errors into cx->err (the first DBI_CONF_MAX_ERRORS) and free them. */
void dbi_cctx_finish(struct dbi_cctx *cx);

/* config_yaml.c */
int dbi_cnode_parse(struct dbi_cctx *cx, const char *text, size_t len, struct dbi_cnode **root);
void dbi_cnode_free(struct dbi_cnode *n);
void dbi_cnode_expand_env(struct dbi_cctx *cx, struct dbi_cnode *n);
uint64_t dbi_cnode_hash(const struct dbi_cnode *n);
const struct dbi_cnode *dbi_cnode_get(const struct dbi_cnode *map, const char *key);

/* config_value.c: scalar parsers; on DBI_ERR *why (if given) says what kind of wrong. */
enum dbi_cval_err { DBI_CV_BAD = 1, DBI_CV_NOUNIT, DBI_CV_NEGATIVE, DBI_CV_TOOBIG, DBI_CV_PORT, DBI_CV_V6 };
int dbi_cval_duration(const char *s, uint64_t *ns, int *why);
int dbi_cval_size(const char *s, uint64_t *bytes, int *why);
int dbi_cval_endpoint(const char *s, struct dbi_endpoint *ep, int *why);
int dbi_cval_bool(const char *s, bool *v);
int dbi_cval_int(const char *s, int64_t *v, int *why);
int dbi_cval_double(const char *s, double *v);
int dbi_cval_percent(const char *s, double *v); /* 0..100, "80" or "80%" */
int dbi_cval_choice(const char *choices, const char *s, int *index);
void dbi_cval_fmt_duration(uint64_t ns, char *buf, size_t len);
void dbi_cval_fmt_size(uint64_t bytes, char *buf, size_t len);
/* "a|b|c" -> "a, b, c" for messages */
void dbi_cval_fmt_choices(const char *choices, char *buf, size_t len);

/* config_map.c */
const char *dbi_conf_type_name(enum dbi_conf_type t);
/* A key's min or max as its users write it: "1s", "64KiB", "1024". */
void dbi_conf_fmt_bound(const struct dbi_conf_key *k, double x, char *buf, size_t len);
/*
 * Defaults, then the user's mapping (node may be NULL or null), then required keys.
 * path names the map in messages ("processors.batch"); skip is a top-level key the
 * caller handles itself (service.pipelines); line/col locate "missing key" errors
 * when node is absent. Errors go to cx.
 */
void dbi_conf_load_map(struct dbi_cctx *cx, const struct dbi_conf_key *keys, void *dst, const struct dbi_cnode *node,
                       const char *path, const char *skip, int line, int col);

#endif
