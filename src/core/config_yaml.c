/*
 * config_yaml.c — YAML text to a position-carrying node tree, and the passes over it
 * that do not depend on what the keys mean: environment expansion and hashing.
 *
 * Built from libyaml's event API so every node keeps the line and column it was
 * written at (every later error points there), duplicate keys are caught where the
 * second one is written, and aliases can be expanded under a budget. Merge keys are
 * refused: they would make "which value wins" depend on rules few readers know.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config_int.h"

void dbi_cerr(struct dbi_cctx *cx, int line, int col, const char *fmt, ...)
{
	char msg[2048];
	struct dbi_cerror *e;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cx->nerr++;
	if (cx->nheld == DBI_CONF_HELD_ERRORS)
		return;
	if (cx->nheld == cx->capheld) {
		size_t cap = cx->capheld ? cx->capheld * 2 : 16;
		e = realloc(cx->held, cap * sizeof(*e));
		if (!e)
			return; /* still counted: the load fails, with fewer words */
		cx->held = e;
		cx->capheld = cap;
	}
	/* A default's position is in the C source, not the user's file: do not invent one. */
	if (cx->in_default)
		line = 0;
	e = &cx->held[cx->nheld];
	e->line = line > 0 ? line : 0;
	e->col = line > 0 ? col : 0;
	e->seq = cx->nheld;
	if (cx->in_default)
		n = asprintf(&e->text, "%s: built-in default: %s", cx->file, msg);
	else if (line <= 0)
		n = asprintf(&e->text, "%s: %s", cx->file, msg);
	else
		n = asprintf(&e->text, "%s:%d:%d: %s", cx->file, line, col, msg);
	if (n >= 0)
		cx->nheld++;
}

static int cmp_error(const void *a, const void *b)
{
	const struct dbi_cerror *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void dbi_cctx_finish(struct dbi_cctx *cx)
{
	size_t shown = DBI_MIN(cx->nheld, (size_t)DBI_CONF_MAX_ERRORS);

	if (cx->nheld)
		qsort(cx->held, cx->nheld, sizeof(*cx->held), cmp_error);
	for (size_t i = 0; i < shown; i++)
		dbi_err_add(cx->err, "%s", cx->held[i].text);
	if (cx->nerr > (int)shown)
		dbi_err_add(cx->err, "%s: too many errors; %d more not shown", cx->file, cx->nerr - (int)shown);
	for (size_t i = 0; i < cx->nheld; i++)
		free(cx->held[i].text);
	free(cx->held);
	cx->held = NULL;
	cx->nheld = cx->capheld = 0;
}

/* ---- building ---- */

struct dbi_canchor {
	char *name;
	struct dbi_cnode *node; /* borrowed from the tree */
};

struct dbi_cframe {
	struct dbi_cnode *node;
	char *anchor; /* registered once the collection is complete, so it cannot contain itself */
};

struct dbi_cbuild {
	struct dbi_cctx *cx;
	struct dbi_cnode *root;
	struct dbi_cframe stack[DBI_CONF_MAX_DEPTH];
	int depth;
	struct dbi_canchor *anchors;
	size_t nanchors, capanchors;
	size_t nodes;
};

static struct dbi_cnode *node_new(struct dbi_cbuild *b, enum dbi_cnode_kind kind, const yaml_mark_t *m)
{
	struct dbi_cnode *n;

	if (++b->nodes > DBI_CONF_MAX_NODES) {
		dbi_cerr(b->cx, (int)m->line + 1, (int)m->column + 1,
		         "document too large (more than %d nodes after expanding aliases)", DBI_CONF_MAX_NODES);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		dbi_cerr(b->cx, 0, 0, "out of memory");
		return NULL;
	}
	n->kind = kind;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	return n;
}

void dbi_cnode_free(struct dbi_cnode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		dbi_cnode_free(n->kids[i]);
	free(n->kids);
	free(n->s);
	free(n);
}

static int kids_push(struct dbi_cnode *parent, struct dbi_cnode *kid)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 8;
		struct dbi_cnode **k = realloc(parent->kids, cap * sizeof(*k));
		if (!k)
			return DBI_ERR;
		parent->kids = k;
		parent->cap = cap;
	}
	parent->kids[parent->n++] = kid;
	return DBI_OK;
}

/* Rejected keys stay in the tree (anchors may point into their values) until pruning. */
static void check_key(struct dbi_cbuild *b, struct dbi_cnode *key)
{
	if (key->kind != DBI_CN_SCALAR) {
		dbi_cerr(b->cx, key->line, key->col, "mapping keys must be plain values, not lists or mappings");
		key->drop = true;
		return;
	}
	if (!key->quoted && strcmp(key->s, "<<") == 0) {
		dbi_cerr(b->cx, key->line, key->col,
		         "merge keys (<<) are not supported; write the keys out (anchors and aliases do work)");
		key->drop = true;
	}
}

static int cmp_key(const void *a, const void *b)
{
	const struct dbi_cnode *x = *(struct dbi_cnode *const *)a, *y = *(struct dbi_cnode *const *)b;
	int c = strcmp(x->s, y->s);

	/* equal keys in the order they were written: the first one is the original */
	if (c)
		return c;
	return x->line != y->line ? (x->line < y->line ? -1 : 1) : (x->col < y->col ? -1 : x->col > y->col);
}

/*
 * Sorting the keys finds duplicates in n log n: a mapping with many keys must not
 * cost a quadratic scan. Each later copy is reported at its own position.
 */
static int check_duplicates(struct dbi_cbuild *b, struct dbi_cnode *map)
{
	size_t np = dbi_cnode_pairs(map), nk = 0;
	struct dbi_cnode **keys;

	if (np < 2)
		return DBI_OK;
	keys = malloc(np * sizeof(*keys));
	if (!keys) {
		dbi_cerr(b->cx, 0, 0, "out of memory");
		return DBI_ERR;
	}
	for (size_t i = 0; i < np; i++)
		if (!dbi_cnode_key(map, i)->drop)
			keys[nk++] = dbi_cnode_key(map, i);
	qsort(keys, nk, sizeof(*keys), cmp_key);
	for (size_t i = 1, first = 0; i < nk; i++) {
		if (strcmp(keys[i]->s, keys[first]->s) != 0) {
			first = i;
			continue;
		}
		dbi_cerr(b->cx, keys[i]->line, keys[i]->col,
		         "duplicate key '%.100s' (first defined at line %d, column %d)", keys[i]->s, keys[first]->line,
		         keys[first]->col);
		keys[i]->drop = true;
	}
	free(keys);
	return DBI_OK;
}

static int attach(struct dbi_cbuild *b, struct dbi_cnode *n)
{
	struct dbi_cnode *parent;

	if (b->depth == 0) {
		/* libyaml yields one root per document and a second document is refused first */
		if (b->root) {
			dbi_cnode_free(n);
			dbi_cerr(b->cx, 0, 0, "internal error: a second document root");
			return DBI_ERR;
		}
		b->root = n;
		return DBI_OK;
	}
	parent = b->stack[b->depth - 1].node;
	if (kids_push(parent, n) != DBI_OK) {
		dbi_cnode_free(n);
		dbi_cerr(b->cx, 0, 0, "out of memory");
		return DBI_ERR;
	}
	if (parent->kind == DBI_CN_MAP && parent->n % 2 == 1)
		check_key(b, n);
	return DBI_OK;
}

static int anchor_add(struct dbi_cbuild *b, const yaml_char_t *name, struct dbi_cnode *n)
{
	if (b->nanchors == b->capanchors) {
		size_t cap = b->capanchors ? b->capanchors * 2 : 8;
		struct dbi_canchor *a = realloc(b->anchors, cap * sizeof(*a));
		if (!a)
			return DBI_ERR;
		b->anchors = a;
		b->capanchors = cap;
	}
	b->anchors[b->nanchors].name = strdup((const char *)name);
	if (!b->anchors[b->nanchors].name)
		return DBI_ERR;
	b->anchors[b->nanchors++].node = n;
	return DBI_OK;
}

static struct dbi_cnode *anchor_find(struct dbi_cbuild *b, const char *name)
{
	/* YAML lets an anchor be redefined; an alias means the latest one. */
	for (size_t i = b->nanchors; i-- > 0;)
		if (strcmp(b->anchors[i].name, name) == 0)
			return b->anchors[i].node;
	return NULL;
}

/* Positions stay those of the anchored text: that is where a bad value is written. */
static struct dbi_cnode *copy_tree(struct dbi_cbuild *b, const struct dbi_cnode *src, int depth, const yaml_mark_t *m)
{
	struct dbi_cnode *n;

	if (depth > DBI_CONF_MAX_DEPTH) {
		dbi_cerr(b->cx, (int)m->line + 1, (int)m->column + 1, "alias expands to more than %d levels of nesting",
		         DBI_CONF_MAX_DEPTH);
		return NULL;
	}
	n = node_new(b, src->kind, m);
	if (!n)
		return NULL;
	n->line = src->line;
	n->col = src->col;
	n->null = src->null;
	n->quoted = src->quoted;
	n->drop = src->drop;
	if (src->s && !(n->s = strdup(src->s)))
		goto oom;
	if (src->n) {
		n->kids = calloc(src->n, sizeof(*n->kids));
		if (!n->kids)
			goto oom;
		n->cap = src->n;
	}
	for (size_t i = 0; i < src->n; i++) {
		n->kids[i] = copy_tree(b, src->kids[i], depth + 1, m);
		if (!n->kids[i])
			goto fail;
		n->n++;
	}
	return n;
oom:
	dbi_cerr(b->cx, 0, 0, "out of memory");
fail:
	dbi_cnode_free(n);
	return NULL;
}

static struct dbi_cnode *scalar_new(struct dbi_cbuild *b, const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	struct dbi_cnode *n = node_new(b, DBI_CN_SCALAR, &ev->start_mark);

	if (!n)
		return NULL;
	n->s = malloc(len + 1);
	if (!n->s) {
		dbi_cnode_free(n);
		dbi_cerr(b->cx, 0, 0, "out of memory");
		return NULL;
	}
	if (len)
		memcpy(n->s, v, len);
	n->s[len] = '\0';
	if (strlen(n->s) != len)
		dbi_cerr(b->cx, n->line, n->col, "value contains a NUL character");
	n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
	/* An explicit tag (!!str null) makes "null" a string. */
	n->null = !n->quoted && ev->data.scalar.plain_implicit &&
	          (n->s[0] == '\0' || strcmp(n->s, "~") == 0 || strcmp(n->s, "null") == 0 ||
	           strcmp(n->s, "Null") == 0 || strcmp(n->s, "NULL") == 0);
	return n;
}

static int push(struct dbi_cbuild *b, struct dbi_cnode *n, const yaml_char_t *anchor)
{
	if (b->depth == DBI_CONF_MAX_DEPTH) {
		dbi_cerr(b->cx, n->line, n->col, "nesting deeper than %d levels", DBI_CONF_MAX_DEPTH);
		dbi_cnode_free(n);
		return DBI_ERR;
	}
	if (attach(b, n) != DBI_OK)
		return DBI_ERR;
	b->stack[b->depth].node = n;
	b->stack[b->depth].anchor = NULL;
	if (anchor && !(b->stack[b->depth].anchor = strdup((const char *)anchor))) {
		dbi_cerr(b->cx, 0, 0, "out of memory");
		return DBI_ERR;
	}
	b->depth++;
	return DBI_OK;
}

static int pop(struct dbi_cbuild *b)
{
	struct dbi_cframe *f;
	int rc = DBI_OK;

	if (b->depth == 0) { /* libyaml balances its events; do not trust that blindly */
		dbi_cerr(b->cx, 0, 0, "internal error: unbalanced YAML events");
		return DBI_ERR;
	}
	f = &b->stack[--b->depth];

	if (f->node->kind == DBI_CN_MAP)
		rc = check_duplicates(b, f->node);
	if (f->anchor && anchor_add(b, (const yaml_char_t *)f->anchor, f->node) != DBI_OK) {
		dbi_cerr(b->cx, 0, 0, "out of memory");
		rc = DBI_ERR;
	}
	free(f->anchor);
	f->anchor = NULL;
	return rc;
}

static void syntax_error(struct dbi_cbuild *b, const yaml_parser_t *p, const char *text, size_t len)
{
	const char *problem = p->problem ? p->problem : "cannot parse";
	int line = 1, col = 1;

	switch (p->error) {
	case YAML_READER_ERROR:
		/* The reader reports a byte offset only (it fails ahead of the scanner's marks). */
		for (size_t i = 0; i < p->problem_offset && i < len; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
				col++;
			}
		}
		dbi_cerr(b->cx, line, col, "invalid input (byte %zu): %s", p->problem_offset, problem);
		break;
	case YAML_MEMORY_ERROR:
		dbi_cerr(b->cx, 0, 0, "out of memory while parsing YAML");
		break;
	default:
		if (p->context)
			dbi_cerr(b->cx, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
			         "YAML syntax error: %s %s (line %d, column %d)", problem, p->context,
			         (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
		else
			dbi_cerr(b->cx, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1,
			         "YAML syntax error: %s", problem);
		break;
	}
}

/* Handle one event; DBI_DONE at the end of the stream, DBI_ERR when building must stop. */
static int on_event(struct dbi_cbuild *b, const yaml_event_t *ev, int *ndocs)
{
	struct dbi_cnode *n;
	const yaml_mark_t *m = &ev->start_mark;

	switch (ev->type) {
	case YAML_STREAM_END_EVENT:
		return DBI_DONE;
	case YAML_DOCUMENT_START_EVENT:
		if (++*ndocs > 1) {
			dbi_cerr(b->cx, (int)m->line + 1, (int)m->column + 1,
			         "only one YAML document is allowed in a config file");
			return DBI_ERR;
		}
		return DBI_OK;
	case YAML_SCALAR_EVENT:
		n = scalar_new(b, ev);
		if (!n)
			return DBI_ERR;
		if (attach(b, n) != DBI_OK)
			return DBI_ERR;
		if (ev->data.scalar.anchor && anchor_add(b, ev->data.scalar.anchor, n) != DBI_OK) {
			dbi_cerr(b->cx, 0, 0, "out of memory");
			return DBI_ERR;
		}
		return DBI_OK;
	case YAML_SEQUENCE_START_EVENT:
		n = node_new(b, DBI_CN_SEQ, m);
		return n ? push(b, n, ev->data.sequence_start.anchor) : DBI_ERR;
	case YAML_MAPPING_START_EVENT:
		n = node_new(b, DBI_CN_MAP, m);
		return n ? push(b, n, ev->data.mapping_start.anchor) : DBI_ERR;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return pop(b);
	case YAML_ALIAS_EVENT: {
		const struct dbi_cnode *src = anchor_find(b, (const char *)ev->data.alias.anchor);
		if (!src) {
			dbi_cerr(b->cx, (int)m->line + 1, (int)m->column + 1,
			         "alias '*%s' refers to no anchor '&%s' before it", (const char *)ev->data.alias.anchor,
			         (const char *)ev->data.alias.anchor);
			return DBI_ERR;
		}
		n = copy_tree(b, src, b->depth + 1, m);
		return n ? attach(b, n) : DBI_ERR;
	}
	default:
		return DBI_OK;
	}
}

static void prune(struct dbi_cnode *n)
{
	size_t w = 0;

	if (n->kind == DBI_CN_MAP) {
		for (size_t i = 0; i + 1 < n->n; i += 2) {
			if (n->kids[i]->drop) {
				dbi_cnode_free(n->kids[i]);
				dbi_cnode_free(n->kids[i + 1]);
				continue;
			}
			n->kids[w++] = n->kids[i];
			n->kids[w++] = n->kids[i + 1];
		}
		/* A key without its value can only come from an aborted build. */
		if (n->n % 2)
			dbi_cnode_free(n->kids[n->n - 1]);
		n->n = w;
	}
	for (size_t i = 0; i < n->n; i++)
		prune(n->kids[i]);
}

int dbi_cnode_parse(struct dbi_cctx *cx, const char *text, size_t len, struct dbi_cnode **root)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct dbi_cbuild b = {.cx = cx};
	int ndocs = 0, rc = DBI_OK;

	*root = NULL;
	if (!yaml_parser_initialize(&parser)) {
		dbi_cerr(cx, 0, 0, "out of memory");
		return DBI_ERR;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_parse(&parser, &ev)) {
			syntax_error(&b, &parser, text, len);
			rc = DBI_ERR;
			break;
		}
		rc = on_event(&b, &ev, &ndocs);
		yaml_event_delete(&ev);
		if (rc == DBI_DONE) {
			rc = DBI_OK;
			break;
		}
		if (rc != DBI_OK)
			break;
	}
	yaml_parser_delete(&parser);
	while (b.depth > 0) {
		b.depth--;
		free(b.stack[b.depth].anchor);
	}
	for (size_t i = 0; i < b.nanchors; i++)
		free(b.anchors[i].name);
	free(b.anchors);
	if (rc != DBI_OK) {
		dbi_cnode_free(b.root);
		return DBI_ERR;
	}
	if (b.root)
		prune(b.root);
	*root = b.root;
	return DBI_OK;
}

/* ---- environment expansion ---- */

struct dbi_cbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void buf_add(struct dbi_cbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static bool env_name_ok(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

/*
 * One ${...} reference starting at s (which points at "${"); returns its length, or 0
 * after reporting an error. ":-" follows the shell: the default also replaces a
 * variable that is set but empty.
 */
static size_t expand_ref(struct dbi_cctx *cx, const struct dbi_cnode *n, const char *s, struct dbi_cbuf *out)
{
	const char *end = strchr(s + 2, '}');
	const char *body = s + 2, *name, *def = NULL, *val;
	size_t namelen, deflen = 0;
	char namebuf[256];

	if (!end) {
		dbi_cerr(cx, n->line, n->col, "unterminated '${' in value (write $$ for a literal $)");
		return 0;
	}
	if (strncmp(body, "env:", 4) != 0) {
		dbi_cerr(cx, n->line, n->col,
		         "unsupported substitution '%.*s' (only ${env:NAME} and ${env:NAME:-default}; $$ is a literal "
		         "$)",
		         (int)(end - s + 1), s);
		return 0;
	}
	name = body + 4;
	namelen = (size_t)(end - name);
	for (const char *p = name; p < end; p++) {
		if (p[0] == ':' && p[1] == '-') {
			namelen = (size_t)(p - name);
			def = p + 2;
			deflen = (size_t)(end - def);
			break;
		}
	}
	if (!env_name_ok(name, namelen) || namelen >= sizeof(namebuf)) {
		dbi_cerr(cx, n->line, n->col, "invalid environment variable name '%.*s' in '%.*s'", (int)namelen, name,
		         (int)(end - s + 1), s);
		return 0;
	}
	memcpy(namebuf, name, namelen);
	namebuf[namelen] = '\0';
	val = getenv(namebuf);
	if (def && (!val || !*val)) {
		buf_add(out, def, deflen);
	} else if (!val) {
		dbi_cerr(cx, n->line, n->col,
		         "environment variable %s is not set (write ${env:%s:-default} for a default)", namebuf,
		         namebuf);
		return 0;
	} else {
		buf_add(out, val, strlen(val));
	}
	return (size_t)(end - s + 1);
}

static void expand_scalar(struct dbi_cctx *cx, struct dbi_cnode *n)
{
	struct dbi_cbuf out = {0};
	const char *s = n->s;
	bool failed = false;

	if (!strchr(s, '$'))
		return;
	buf_add(&out, "", 0);
	while (*s) {
		const char *d = strchr(s, '$');
		if (!d) {
			buf_add(&out, s, strlen(s));
			break;
		}
		buf_add(&out, s, (size_t)(d - s));
		if (d[1] == '$') {
			buf_add(&out, "$", 1);
			s = d + 2;
		} else if (d[1] == '{') {
			size_t used = expand_ref(cx, n, d, &out);
			if (!used) {
				failed = true;
				break;
			}
			s = d + used;
		} else {
			buf_add(&out, "$", 1);
			s = d + 1;
		}
	}
	if (out.oom) {
		dbi_cerr(cx, 0, 0, "out of memory");
		failed = true;
	}
	if (failed) {
		free(out.p);
		return;
	}
	free(n->s);
	n->s = out.p;
}

void dbi_cnode_expand_env(struct dbi_cctx *cx, struct dbi_cnode *n)
{
	if (!n)
		return;
	switch (n->kind) {
	case DBI_CN_SCALAR:
		if (!n->null)
			expand_scalar(cx, n);
		break;
	case DBI_CN_SEQ:
		for (size_t i = 0; i < n->n; i++)
			dbi_cnode_expand_env(cx, n->kids[i]);
		break;
	case DBI_CN_MAP:
		/* Keys are names, not values: "${env:X}: 1" stays as written. */
		for (size_t i = 1; i < n->n; i += 2)
			dbi_cnode_expand_env(cx, n->kids[i]);
		break;
	}
}

/* ---- hashing ---- */

static uint64_t hash_pair(uint64_t a, uint64_t b, uint64_t tag)
{
	uint64_t v[2] = {a, b};
	return dbi_hash64(v, sizeof(v), tag);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * Canonical: key order, quoting and layout do not matter; the expanded text does
 * (changing an environment variable and reloading must count as a change).
 */
uint64_t dbi_cnode_hash(const struct dbi_cnode *n)
{
	uint64_t h, *ph;
	size_t np;

	if (dbi_cnode_is_null(n))
		return 0x6e756c6cULL;
	switch (n->kind) {
	case DBI_CN_SCALAR:
		return dbi_hash64(n->s, strlen(n->s), 0x5ca1a5);
	case DBI_CN_SEQ:
		h = 0x5e9;
		for (size_t i = 0; i < n->n; i++)
			h = hash_pair(h, dbi_cnode_hash(n->kids[i]), 0x5e9);
		return h;
	case DBI_CN_MAP:
		np = dbi_cnode_pairs(n);
		ph = malloc((np ? np : 1) * sizeof(*ph));
		if (!ph)
			return 0; /* only a reload's change detection suffers: it sees a change */
		for (size_t i = 0; i < np; i++)
			ph[i] = hash_pair(dbi_cnode_hash(dbi_cnode_key(n, i)), dbi_cnode_hash(dbi_cnode_val(n, i)),
			                  0x9a1);
		qsort(ph, np, sizeof(*ph), cmp_u64);
		h = 0x3a9;
		for (size_t i = 0; i < np; i++)
			h = hash_pair(h, ph[i], 0x3a9);
		free(ph);
		return h;
	}
	return 0;
}

const struct dbi_cnode *dbi_cnode_get(const struct dbi_cnode *map, const char *key)
{
	if (!map || map->kind != DBI_CN_MAP)
		return NULL;
	for (size_t i = 0; i < dbi_cnode_pairs(map); i++)
		if (strcmp(dbi_cnode_key(map, i)->s, key) == 0)
			return dbi_cnode_val(map, i);
	return NULL;
}
