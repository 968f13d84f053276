/*
 * otlp_enc.c — batches to OTLP Export*ServiceRequest protobuf (see otlp_enc.h).
 *
 * Two passes over a batch. The first files every item under its metric group
 * (resource, scope, metric) through a series cache, links it into per-batch lists kept
 * in id-indexed arrays (an epoch number says whether an entry belongs to this batch, so
 * nothing is cleared between batches), and sums the encoded size of every level from
 * the points up. The second pass writes the request front to back with every length
 * already known. Grouping is first-appearance order, so the same batch always gives the
 * same bytes.
 *
 * Cached encodings live in one append-only byte store addressed by offset: point
 * attributes of an attribute set (as NumberDataPoint field 7 entries; other point kinds
 * re-tag them while copying), Resource and InstrumentationScope bodies, and the
 * name/description/unit fields of each metric. Limits, where configured, are applied
 * when an entry is filled, and the entry remembers what it cut so each item sent counts
 * it.
 */
#include "otlp_enc.h"

#include <stdlib.h>
#include <string.h>

#include "pbwire.h"

/* ---- buffers ---- */

int dbi_obuf_reserve(struct dbi_obuf *b, size_t cap)
{
	if (cap <= b->cap)
		return DBI_OK;
	size_t n = b->cap ? b->cap : 4096;
	while (n < cap)
		n *= 2;
	uint8_t *d = realloc(b->data, n);
	if (!d)
		return DBI_ERR;
	b->data = d;
	b->cap = n;
	return DBI_OK;
}

void dbi_obuf_free(struct dbi_obuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static int buf_put(struct dbi_obuf *b, const void *p, size_t n)
{
	if (dbi_obuf_reserve(b, b->len + n) != DBI_OK)
		return DBI_ERR;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return DBI_OK;
}

static int buf_put_len_field(struct dbi_obuf *b, uint8_t tag, const void *p, size_t n)
{
	if (dbi_obuf_reserve(b, b->len + 11 + n) != DBI_OK)
		return DBI_ERR;
	b->len = (size_t)(pb_put_bytes(b->data + b->len, tag, p, n) - b->data);
	return DBI_OK;
}

/* ---- limits on attributes (cold path: cache fills and the NR profile's log/span rewrite) ---- */

struct cut {
	uint32_t keys, values, arrays, dropped;
};

static size_t utf8_cut(const uint8_t *s, size_t len, size_t max)
{
	if (max == 0 || len <= max)
		return len;
	size_t n = max;
	while (n > 0 && (s[n] & 0xc0) == 0x80)
		n--; /* s[n] would start the dropped part mid-character: cut before its lead byte */
	return n;
}

static int limit_kv(const struct dbi_otlp_limits *lim, const uint8_t *in, size_t len, struct dbi_obuf *out,
                    struct cut *cut, unsigned depth);

/* AnyValue body in -> out with limits applied; DBI_ERR if malformed (out is then undefined). */
static int limit_anyvalue(const struct dbi_otlp_limits *lim, const uint8_t *in, size_t len, struct dbi_obuf *out,
                          struct cut *cut, unsigned depth)
{
	const uint8_t *p = in, *end = in + len;
	struct pb_field f;
	int rc;
	if (depth > 16)
		return buf_put(out, in, len); /* deeper than any limit is worth: pass through */
	while ((rc = pb_next(&p, end, &f)) == 1) {
		if (f.wt == PB_LEN && f.num == 1) {
			size_t n = utf8_cut(f.data, f.len, lim->max_value_len);
			cut->values += n != f.len;
			if (buf_put_len_field(out, 0x0a, f.data, n) != DBI_OK)
				return DBI_ERR;
		} else if (f.wt == PB_LEN && (f.num == 5 || f.num == 6)) {
			/* ArrayValue / KeyValueList: repeated field 1 of AnyValue / KeyValue */
			struct dbi_obuf sub = {0};
			const uint8_t *q = f.data, *qe = f.data + f.len;
			struct pb_field g;
			uint32_t n = 0;
			int r2;
			while ((r2 = pb_next(&q, qe, &g)) == 1) {
				if (g.num != 1 || g.wt != PB_LEN) {
					if (buf_put(&sub, g.start, (size_t)(g.end - g.start)) != DBI_OK)
						goto subfail;
					continue;
				}
				if (lim->max_array_len && n >= lim->max_array_len) {
					cut->arrays += n == lim->max_array_len;
					n++;
					continue;
				}
				n++;
				struct dbi_obuf el = {0};
				int er = f.num == 5 ? limit_anyvalue(lim, g.data, g.len, &el, cut, depth + 1)
				                    : limit_kv(lim, g.data, g.len, &el, cut, depth + 1);
				if (er != DBI_OK || buf_put_len_field(&sub, 0x0a, el.data, el.len) != DBI_OK) {
					dbi_obuf_free(&el);
					goto subfail;
				}
				dbi_obuf_free(&el);
			}
			if (r2 < 0)
				goto subfail;
			if (buf_put_len_field(out, (uint8_t)PB_TAG(f.num, PB_LEN), sub.data, sub.len) != DBI_OK)
				goto subfail;
			dbi_obuf_free(&sub);
			continue;
		subfail:
			dbi_obuf_free(&sub);
			return DBI_ERR;
		} else if (buf_put(out, f.start, (size_t)(f.end - f.start)) != DBI_OK) {
			return DBI_ERR;
		}
	}
	return rc < 0 ? DBI_ERR : DBI_OK;
}

/* KeyValue body in -> out with limits applied. */
static int limit_kv(const struct dbi_otlp_limits *lim, const uint8_t *in, size_t len, struct dbi_obuf *out,
                    struct cut *cut, unsigned depth)
{
	const uint8_t *p = in, *end = in + len;
	struct pb_field f;
	int rc;
	while ((rc = pb_next(&p, end, &f)) == 1) {
		if (f.wt == PB_LEN && f.num == 1) {
			size_t n = utf8_cut(f.data, f.len, lim->max_key_len);
			cut->keys += n != f.len;
			if (buf_put_len_field(out, 0x0a, f.data, n) != DBI_OK)
				return DBI_ERR;
		} else if (f.wt == PB_LEN && f.num == 2) {
			struct dbi_obuf v = {0};
			if (limit_anyvalue(lim, f.data, f.len, &v, cut, depth + 1) != DBI_OK ||
			    buf_put_len_field(out, 0x12, v.data, v.len) != DBI_OK) {
				dbi_obuf_free(&v);
				return DBI_ERR;
			}
			dbi_obuf_free(&v);
		} else if (buf_put(out, f.start, (size_t)(f.end - f.start)) != DBI_OK) {
			return DBI_ERR;
		}
	}
	return rc < 0 ? DBI_ERR : DBI_OK;
}

/* One registry attribute as a KeyValue body, limits applied. */
static int kv_from_attr(const struct dbi_otlp_limits *lim, const struct dbi_attr *a, struct dbi_obuf *out,
                        struct cut *cut)
{
	uint8_t tmp[16];
	size_t kl = a->klen ? a->klen : strlen(a->key);
	if (lim) {
		size_t n = utf8_cut((const uint8_t *)a->key, kl, lim->max_key_len);
		cut->keys += n != kl;
		kl = n;
	}
	if (buf_put_len_field(out, 0x0a, a->key, kl) != DBI_OK)
		return DBI_ERR;
	struct dbi_obuf v = {0};
	int rc = DBI_OK;
	switch (a->type) {
	case DBI_AT_STR: {
		const char *sv = a->v.s ? a->v.s : "";
		size_t vl = a->v.s ? (a->vlen ? a->vlen : strlen(sv)) : 0;
		if (lim) {
			size_t n = utf8_cut((const uint8_t *)sv, vl, lim->max_value_len);
			cut->values += n != vl;
			vl = n;
		}
		rc = buf_put_len_field(&v, 0x0a, sv, vl);
		break;
	}
	case DBI_AT_BOOL:
		tmp[0] = 0x10;
		tmp[1] = a->v.b ? 1 : 0;
		rc = buf_put(&v, tmp, 2);
		break;
	case DBI_AT_INT:
		tmp[0] = 0x18;
		rc = buf_put(&v, tmp, (size_t)(pb_put_varint(tmp + 1, (uint64_t)a->v.i) - tmp));
		break;
	case DBI_AT_DOUBLE:
		tmp[0] = 0x21;
		rc = buf_put(&v, tmp, (size_t)(pb_put_double(tmp + 1, a->v.d) - tmp));
		break;
	case DBI_AT_BYTES:
		rc = buf_put_len_field(&v, 0x3a, a->v.s ? a->v.s : "", a->v.s ? a->vlen : 0);
		break;
	case DBI_AT_ANYPB:
		if (!a->v.s)
			break; /* an empty AnyValue */
		if (lim && limit_anyvalue(lim, (const uint8_t *)a->v.s, a->vlen, &v, cut, 0) == DBI_OK)
			break;
		v.len = 0;
		rc = buf_put(&v, a->v.s, a->vlen);
		break;
	default:
		rc = DBI_ERR;
	}
	if (rc == DBI_OK)
		rc = buf_put_len_field(out, 0x12, v.data, v.len);
	dbi_obuf_free(&v);
	return rc;
}

/* ---- encoder state ---- */

struct cached {
	uint32_t off, len; /* bytes in the store */
	uint8_t filled;
	struct cut cut;
};

/* A resource: its cached Resource body and this batch's list of scopes. */
struct res_ent {
	struct cached c;
	uint32_t epoch, head, tail, next; /* rs ids; next res in the batch */
	size_t size;                      /* ResourceX body */
};

/* A (resource, scope) pair. */
struct rs_ent {
	uint32_t res, scope;
	uint32_t epoch, head, tail, next; /* metrics: mg ids; logs/spans: record indexes */
	size_t size, dsize;               /* ScopeX body; logs/spans: the records' part */
};

/* A (resource, scope, metric) group. */
struct mg_ent {
	uint32_t rs, metric;
	uint8_t kind, temporality, monotonic;
	uint32_t epoch, next;  /* next mg of the rs in this batch */
	uint32_t phead, ptail; /* points (indexes), linked through e->pnext */
	uint32_t rhead, rtail; /* records (indexes), linked through e->rnext */
	uint32_t npts, nrecs;
	size_t dsize; /* the data container's body */
	size_t size;  /* Metric body */
};

struct series_ent {
	uint32_t mg, attrs;
};

struct map_ent {
	uint64_t key;
	uint32_t val;
};

struct idmap {
	struct map_ent *t;
	uint32_t cap, n; /* cap is a power of two */
};

#define NONE UINT32_MAX

struct dbi_otlp_enc {
	struct dbi_registry *reg;
	struct dbi_otlp_enc_opts o;
	char *host_name, *host_id;
	struct dbi_attr *extra;

	struct dbi_obuf store; /* cached encodings */

	/* caches by registry id (counts after the pointers, for packing) */
	struct series_ent *series;
	struct cached *attrs;   /* by attrset id: point attributes */
	struct res_ent *res;    /* by attrset id */
	struct cached *scopes;  /* by scope id */
	struct cached *metrics; /* by metric id: name/description/unit fields */
	struct rs_ent *rs;      /* by rs id (1-based, dense) */
	struct mg_ent *mg;      /* by mg id (1-based, dense) */
	struct idmap rs_map, mg_map;

	/* per batch */
	uint32_t *pnext, *psize;
	uint32_t *rnext, *rsize;
	const uint8_t **rdata; /* record payloads (maybe rewritten into scratch) */
	size_t *roff;          /* offsets into scratch of rewritten records */
	struct dbi_obuf scratch;

	struct dbi_otlp_enc_stats st;
	struct dbi_otlp_limits lim;
	int has_lim;
	uint32_t nseries, nattrs, nres, nscopes, nmetrics;
	uint32_t nrs, rs_cap, nmg, mg_cap;
	uint32_t epoch;
	uint32_t pcap, rcap;
	uint32_t res_head, res_tail;
};

static int grow_array(void **arr, uint32_t *n, uint32_t need, size_t elem)
{
	if (need < *n)
		return DBI_OK;
	uint32_t m = *n ? *n : 64;
	while (m <= need) {
		if (m > UINT32_MAX / 2)
			return DBI_ERR;
		m *= 2;
	}
	void *p = realloc(*arr, (size_t)m * elem);
	if (!p)
		return DBI_ERR;
	memset((char *)p + (size_t)*n * elem, 0, (size_t)(m - *n) * elem);
	*arr = p;
	*n = m;
	return DBI_OK;
}

static uint64_t map_hash(uint64_t k)
{
	return dbi_mix64(k);
}

static uint32_t map_get(const struct idmap *m, uint64_t key)
{
	if (!m->cap)
		return 0;
	for (uint64_t i = map_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->t[i].key == key)
			return m->t[i].val;
		if (m->t[i].key == 0)
			return 0;
	}
}

static int map_put(struct idmap *m, uint64_t key, uint32_t val)
{
	if ((m->n + 1) * 2 > m->cap) {
		uint32_t ncap = m->cap ? m->cap * 2 : 256;
		struct map_ent *t = calloc(ncap, sizeof(*t));
		if (!t)
			return DBI_ERR;
		for (uint32_t i = 0; i < m->cap; i++) {
			if (!m->t[i].key)
				continue;
			uint64_t j = map_hash(m->t[i].key) & (ncap - 1);
			while (t[j].key)
				j = (j + 1) & (ncap - 1);
			t[j] = m->t[i];
		}
		free(m->t);
		m->t = t;
		m->cap = ncap;
	}
	uint64_t i = map_hash(key) & (m->cap - 1);
	while (m->t[i].key && m->t[i].key != key)
		i = (i + 1) & (m->cap - 1);
	if (!m->t[i].key)
		m->n++;
	m->t[i].key = key;
	m->t[i].val = val;
	return DBI_OK;
}

/* ---- cache fills (cold path) ---- */

static int store_put(struct dbi_otlp_enc *e, struct cached *c, const struct dbi_obuf *b)
{
	if (e->store.len + b->len > UINT32_MAX)
		return DBI_ERR;
	c->off = (uint32_t)e->store.len;
	c->len = (uint32_t)b->len;
	if (buf_put(&e->store, b->data, b->len) != DBI_OK)
		return DBI_ERR;
	c->filled = 1;
	return DBI_OK;
}

/*
 * Attribute set as repeated KeyValue entries with the given one-byte tag; at most
 * max_attrs (minus reserve) of them, the rest counted as dropped.
 */
static int encode_attrset(struct dbi_otlp_enc *e, uint32_t id, uint8_t tag, uint32_t reserve, struct dbi_obuf *out,
                          struct cut *cut, uint32_t *written)
{
	const struct dbi_attrset *as = dbi_attrs_get(e->reg, id);
	struct dbi_attr_iter it;
	struct dbi_attr a;
	uint32_t n = 0, cap = UINT32_MAX;
	*written = 0;
	if (!as)
		return DBI_OK;
	if (e->has_lim && e->lim.max_attrs)
		cap = e->lim.max_attrs > reserve ? e->lim.max_attrs - reserve : 0;
	dbi_attrs_iter_init(&it, as->enc, as->len);
	while (dbi_attrs_next(&it, &a)) {
		if (n++ >= cap) {
			cut->dropped++;
			continue;
		}
		struct dbi_obuf kv = {0};
		if (kv_from_attr(e->has_lim ? &e->lim : NULL, &a, &kv, cut) != DBI_OK ||
		    buf_put_len_field(out, tag, kv.data, kv.len) != DBI_OK) {
			dbi_obuf_free(&kv);
			return DBI_ERR;
		}
		dbi_obuf_free(&kv);
		(*written)++;
	}
	return DBI_OK;
}

static struct cached *attrs_cached(struct dbi_otlp_enc *e, uint32_t id)
{
	if (grow_array((void **)&e->attrs, &e->nattrs, id, sizeof(*e->attrs)) != DBI_OK)
		return NULL;
	struct cached *c = &e->attrs[id];
	if (dbi_likely(c->filled))
		return c;
	struct dbi_obuf b = {0};
	uint32_t w;
	memset(&c->cut, 0, sizeof(c->cut));
	int rc = encode_attrset(e, id, 0x3a, 0, &b, &c->cut, &w);
	if (rc == DBI_OK)
		rc = store_put(e, c, &b);
	dbi_obuf_free(&b);
	return rc == DBI_OK ? c : NULL;
}

static int is_local_address(const struct dbi_otlp_enc *e, const char *s, size_t n)
{
	if ((n == 9 && memcmp(s, "localhost", 9) == 0) || (n >= 4 && memcmp(s, "127.", 4) == 0) ||
	    (n == 3 && memcmp(s, "::1", 3) == 0) || (n > 0 && s[0] == '/'))
		return 1;
	return e->host_name && strlen(e->host_name) == n && memcmp(s, e->host_name, n) == 0;
}

static int add_string_kv(struct dbi_obuf *b, uint8_t tag, const char *k, const char *v)
{
	struct dbi_attr a = {.key = k, .type = DBI_AT_STR, .v.s = v};
	struct dbi_obuf kv = {0};
	struct cut ignore = {0};
	int rc = kv_from_attr(NULL, &a, &kv, &ignore);
	if (rc == DBI_OK)
		rc = buf_put_len_field(b, tag, kv.data, kv.len);
	dbi_obuf_free(&kv);
	return rc;
}

/* Resource body: attributes (+ extras and host attributes per the options). */
static struct res_ent *res_cached(struct dbi_otlp_enc *e, uint32_t id)
{
	if (grow_array((void **)&e->res, &e->nres, id, sizeof(*e->res)) != DBI_OK)
		return NULL;
	struct res_ent *r = &e->res[id];
	if (dbi_likely(r->c.filled))
		return r;
	const struct dbi_attrset *as = dbi_attrs_get(e->reg, id);
	const uint8_t *enc = as ? as->enc : NULL;
	size_t len = as ? as->len : 0;
	struct dbi_attr a;
	const char *add[8][2];
	uint32_t nadd = 0;
	for (size_t i = 0; i < e->o.nres_extra && nadd < 6; i++)
		if (!dbi_attrs_find(enc, len, e->extra[i].key, &a)) {
			add[nadd][0] = e->extra[i].key;
			add[nadd++][1] = e->extra[i].v.s;
		}
	if (e->o.host_mode != DBI_OTLP_HOST_NEVER) {
		struct dbi_attr hn, addr;
		int has_hn = dbi_attrs_find(enc, len, "host.name", &hn);
		int has_hid = dbi_attrs_find(enc, len, "host.id", &a);
		int local = e->o.host_mode == DBI_OTLP_HOST_ALWAYS;
		if (!local) {
			/* auto: this machine's identity only goes to resources that are this machine */
			if (has_hn)
				local = hn.type == DBI_AT_STR && e->host_name && is_local_address(e, hn.v.s, hn.vlen);
			else if (dbi_attrs_find(enc, len, "server.address", &addr))
				local = addr.type == DBI_AT_STR && is_local_address(e, addr.v.s, addr.vlen);
			else
				local = 1;
		}
		if (local && !has_hn && e->host_name) {
			add[nadd][0] = "host.name";
			add[nadd++][1] = e->host_name;
		}
		if (local && !has_hid && e->host_id) {
			add[nadd][0] = "host.id";
			add[nadd++][1] = e->host_id;
		}
	}
	struct dbi_obuf b = {0};
	uint32_t w;
	memset(&r->c.cut, 0, sizeof(r->c.cut));
	int rc = encode_attrset(e, id, 0x0a, nadd, &b, &r->c.cut, &w);
	for (uint32_t i = 0; rc == DBI_OK && i < nadd; i++)
		rc = add_string_kv(&b, 0x0a, add[i][0], add[i][1]);
	if (rc == DBI_OK && r->c.cut.dropped) {
		uint8_t tmp[12] = {0x10};
		rc = buf_put(&b, tmp, (size_t)(pb_put_varint(tmp + 1, r->c.cut.dropped) - tmp));
	}
	if (rc == DBI_OK)
		rc = store_put(e, &r->c, &b);
	dbi_obuf_free(&b);
	return rc == DBI_OK ? r : NULL;
}

static struct cached *scope_cached(struct dbi_otlp_enc *e, uint32_t id)
{
	if (grow_array((void **)&e->scopes, &e->nscopes, id, sizeof(*e->scopes)) != DBI_OK)
		return NULL;
	struct cached *c = &e->scopes[id];
	if (dbi_likely(c->filled))
		return c;
	const struct dbi_scope *s = dbi_scope_get(e->reg, id);
	struct dbi_obuf b = {0};
	int rc = DBI_OK;
	if (s && s->name && *s->name)
		rc = buf_put_len_field(&b, 0x0a, s->name, strlen(s->name));
	if (rc == DBI_OK && s && s->version && *s->version)
		rc = buf_put_len_field(&b, 0x12, s->version, strlen(s->version));
	if (rc == DBI_OK)
		rc = store_put(e, c, &b);
	dbi_obuf_free(&b);
	return rc == DBI_OK ? c : NULL;
}

static struct cached *metric_cached(struct dbi_otlp_enc *e, uint32_t id, const struct dbi_metric **mout)
{
	*mout = dbi_metric_get(e->reg, id);
	if (!*mout || grow_array((void **)&e->metrics, &e->nmetrics, id, sizeof(*e->metrics)) != DBI_OK)
		return NULL;
	struct cached *c = &e->metrics[id];
	if (dbi_likely(c->filled))
		return c;
	const struct dbi_metric *m = *mout;
	struct dbi_obuf b = {0};
	int rc = buf_put_len_field(&b, 0x0a, m->name ? m->name : "", m->name ? strlen(m->name) : 0);
	if (rc == DBI_OK && m->description && *m->description)
		rc = buf_put_len_field(&b, 0x12, m->description, strlen(m->description));
	if (rc == DBI_OK && m->unit && *m->unit)
		rc = buf_put_len_field(&b, 0x1a, m->unit, strlen(m->unit));
	if (rc == DBI_OK)
		rc = store_put(e, c, &b);
	dbi_obuf_free(&b);
	return rc == DBI_OK ? c : NULL;
}

static uint32_t rs_lookup(struct dbi_otlp_enc *e, uint32_t res, uint32_t scope)
{
	uint64_t key = ((uint64_t)res << 32) | scope | (1ULL << 63) * (res == 0 && scope == 0);
	uint32_t id = map_get(&e->rs_map, key);
	if (dbi_likely(id))
		return id;
	if (!res_cached(e, res) || !scope_cached(e, scope))
		return 0;
	if (e->nrs + 1 >= e->rs_cap && grow_array((void **)&e->rs, &e->rs_cap, e->nrs + 1, sizeof(*e->rs)) != DBI_OK)
		return 0;
	id = ++e->nrs;
	e->rs[id].res = res;
	e->rs[id].scope = scope;
	if (map_put(&e->rs_map, key, id) != DBI_OK) {
		e->nrs--;
		return 0;
	}
	return id;
}

/* Series -> metric group and attributes; NULL for an unknown series. */
static const struct series_ent *series_lookup(struct dbi_otlp_enc *e, uint32_t sid)
{
	if (dbi_likely(sid < e->nseries && e->series[sid].mg))
		return &e->series[sid];
	const struct dbi_series *s = dbi_series_get(e->reg, sid);
	const struct dbi_metric *m;
	if (!s || !metric_cached(e, s->metric, &m) || !attrs_cached(e, s->attrs))
		return NULL;
	if (grow_array((void **)&e->series, &e->nseries, sid, sizeof(*e->series)) != DBI_OK)
		return NULL;
	uint32_t rs = rs_lookup(e, s->resource, s->scope);
	if (!rs)
		return NULL;
	uint64_t key = ((uint64_t)rs << 32) | s->metric;
	uint32_t mg = map_get(&e->mg_map, key);
	if (!mg) {
		if (e->nmg + 1 >= e->mg_cap &&
		    grow_array((void **)&e->mg, &e->mg_cap, e->nmg + 1, sizeof(*e->mg)) != DBI_OK)
			return NULL;
		mg = ++e->nmg;
		struct mg_ent *g = &e->mg[mg];
		g->rs = rs;
		g->metric = s->metric;
		g->kind = m->kind;
		g->temporality = m->temporality;
		g->monotonic = m->monotonic;
		if (map_put(&e->mg_map, key, mg) != DBI_OK) {
			e->nmg--;
			return NULL;
		}
	}
	e->series[sid].mg = mg;
	e->series[sid].attrs = s->attrs;
	return &e->series[sid];
}

/* ---- create / destroy ---- */

struct dbi_otlp_enc *dbi_otlp_enc_create(struct dbi_registry *reg, const struct dbi_otlp_enc_opts *o)
{
	struct dbi_otlp_enc *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->reg = reg;
	if (o) {
		e->o = *o;
		if (o->limits) {
			e->lim = *o->limits;
			e->has_lim = 1;
		}
		if (o->host_name && !(e->host_name = strdup(o->host_name)))
			goto fail;
		if (o->host_id && !(e->host_id = strdup(o->host_id)))
			goto fail;
		if (o->nres_extra) {
			e->extra = calloc(o->nres_extra, sizeof(*e->extra));
			if (!e->extra)
				goto fail;
			for (size_t i = 0; i < o->nres_extra; i++) {
				e->extra[i].type = DBI_AT_STR;
				e->extra[i].key = strdup(o->res_extra[i].key);
				e->extra[i].v.s = strdup(o->res_extra[i].v.s ? o->res_extra[i].v.s : "");
				if (!e->extra[i].key || !e->extra[i].v.s) {
					e->o.nres_extra = i + 1;
					goto fail;
				}
			}
		}
	}
	e->o.limits = NULL;
	e->o.res_extra = NULL;
	e->o.host_name = e->o.host_id = NULL;
	e->epoch = 0;
	return e;
fail:
	dbi_otlp_enc_destroy(e);
	return NULL;
}

void dbi_otlp_enc_destroy(struct dbi_otlp_enc *e)
{
	if (!e)
		return;
	for (size_t i = 0; e->extra && i < e->o.nres_extra; i++) {
		free((void *)e->extra[i].key);
		free((void *)e->extra[i].v.s);
	}
	free(e->extra);
	free(e->host_name);
	free(e->host_id);
	dbi_obuf_free(&e->store);
	dbi_obuf_free(&e->scratch);
	free(e->series);
	free(e->attrs);
	free(e->res);
	free(e->scopes);
	free(e->metrics);
	free(e->rs);
	free(e->mg);
	free(e->rs_map.t);
	free(e->mg_map.t);
	free(e->pnext);
	free(e->psize);
	free(e->rnext);
	free(e->rsize);
	free(e->rdata);
	free(e->roff);
	free(e);
}

const struct dbi_otlp_enc_stats *dbi_otlp_enc_stats(const struct dbi_otlp_enc *e)
{
	return &e->st;
}

/* ---- per-batch bookkeeping ---- */

static void next_epoch(struct dbi_otlp_enc *e)
{
	if (dbi_unlikely(++e->epoch == 0)) {
		/* wrapped after 2^32 batches: forget every old mark */
		for (uint32_t i = 0; i < e->nres; i++)
			e->res[i].epoch = 0;
		for (uint32_t i = 0; i <= e->nrs && i < e->rs_cap; i++)
			e->rs[i].epoch = 0;
		for (uint32_t i = 0; i <= e->nmg && i < e->mg_cap; i++)
			e->mg[i].epoch = 0;
		e->epoch = 1;
	}
	e->res_head = e->res_tail = NONE;
}

static int batch_arrays(struct dbi_otlp_enc *e, uint32_t npts, uint32_t nrecs)
{
	if (npts > e->pcap) {
		uint32_t *a = realloc(e->pnext, npts * sizeof(uint32_t));
		if (!a)
			return DBI_ERR;
		e->pnext = a;
		a = realloc(e->psize, npts * sizeof(uint32_t));
		if (!a)
			return DBI_ERR;
		e->psize = a;
		e->pcap = npts;
	}
	if (nrecs > e->rcap) {
		uint32_t *a = realloc(e->rnext, nrecs * sizeof(uint32_t));
		if (!a)
			return DBI_ERR;
		e->rnext = a;
		a = realloc(e->rsize, nrecs * sizeof(uint32_t));
		if (!a)
			return DBI_ERR;
		e->rsize = a;
		const uint8_t **d = realloc(e->rdata, nrecs * sizeof(*d));
		if (!d)
			return DBI_ERR;
		e->rdata = d;
		size_t *o = realloc(e->roff, nrecs * sizeof(*o));
		if (!o)
			return DBI_ERR;
		e->roff = o;
		e->rcap = nrecs;
	}
	return DBI_OK;
}

static void touch_res(struct dbi_otlp_enc *e, uint32_t res, uint32_t rsid)
{
	struct res_ent *r = &e->res[res];
	if (r->epoch != e->epoch) {
		r->epoch = e->epoch;
		r->head = r->tail = rsid;
		r->next = NONE;
		if (e->res_tail == NONE)
			e->res_head = res;
		else
			e->res[e->res_tail].next = res;
		e->res_tail = res;
	} else {
		e->rs[r->tail].next = rsid;
		r->tail = rsid;
	}
}

static struct rs_ent *touch_rs(struct dbi_otlp_enc *e, uint32_t rsid)
{
	struct rs_ent *s = &e->rs[rsid];
	if (s->epoch != e->epoch) {
		s->epoch = e->epoch;
		s->head = s->tail = NONE;
		s->next = NONE;
		s->dsize = 0;
		touch_res(e, s->res, rsid);
	}
	return s;
}

static struct mg_ent *touch_mg(struct dbi_otlp_enc *e, uint32_t mgid)
{
	struct mg_ent *g = &e->mg[mgid];
	if (g->epoch != e->epoch) {
		g->epoch = e->epoch;
		g->phead = g->ptail = g->rhead = g->rtail = NONE;
		g->npts = g->nrecs = 0;
		g->dsize = 0;
		g->next = NONE;
		struct rs_ent *s = touch_rs(e, g->rs);
		if (s->tail == NONE)
			s->head = mgid;
		else
			e->mg[s->tail].next = mgid;
		s->tail = mgid;
	}
	return g;
}

static inline void count_cut(struct dbi_otlp_enc *e, const struct cut *c)
{
	e->st.keys_truncated += c->keys;
	e->st.values_truncated += c->values;
	e->st.arrays_truncated += c->arrays;
	e->st.attrs_dropped += c->dropped;
}

/* ---- metrics ---- */

static inline uint32_t number_point_size(const struct dbi_point *p, uint32_t attr_len)
{
	return attr_len + (p->start_ns ? 9 : 0) + 9 + ((p->flags & DBI_PF_NOVALUE) ? 2 : 9);
}

/* Top-level attributes field present in a passed-through data point? -1 if malformed. */
static int has_field(const uint8_t *p, size_t len, uint32_t num)
{
	const uint8_t *end = p + len;
	struct pb_field f;
	int rc, found = 0;
	while ((rc = pb_next(&p, end, &f)) == 1)
		found |= f.num == num;
	return rc < 0 ? -1 : found;
}

/* Size of a record's data point; 0 if the record is invalid for metric kind `kind`. */
static uint32_t metric_rec_size(const struct dbi_rec_hdr *h, uint8_t kind, const struct cached *ac,
                                const uint8_t **data)
{
	if (h->type == DBI_REC_HIST) {
		const struct dbi_hist_rec *r = (const struct dbi_hist_rec *)h;
		if (kind != DBI_MK_HISTOGRAM || h->len < sizeof(*r) || h->len < dbi_hist_rec_size(r->nbounds))
			return 0;
		uint32_t nb = r->nbounds;
		uint32_t n = ac->len + (r->start_ns ? 9 : 0) + 9 + 9;
		n += (r->flags & DBI_HF_HAS_SUM) ? 9 : 0;
		n += (uint32_t)pb_len_field(8 * ((size_t)nb + 1));
		n += nb ? (uint32_t)pb_len_field(8 * (size_t)nb) : 0;
		n += (r->flags & DBI_HF_NOVALUE) ? 2 : 0;
		n += (r->flags & DBI_HF_HAS_MINMAX) ? 18 : 0;
		*data = NULL;
		return n;
	}
	const struct dbi_otlp_point_rec *r = (const struct dbi_otlp_point_rec *)h;
	uint8_t want = h->type == DBI_REC_EXPHIST ? DBI_MK_EXPHISTOGRAM : DBI_MK_SUMMARY;
	if (kind != want || h->len < sizeof(*r) || h->len - sizeof(*r) < r->pb_len)
		return 0;
	const uint8_t *pb = (const uint8_t *)(r + 1);
	int has = has_field(pb, r->pb_len, h->type == DBI_REC_EXPHIST ? 1 : 7);
	if (has < 0 || r->pb_len == 0)
		return 0;
	*data = pb;
	return r->pb_len + (has ? 0 : ac->len) + (has ? 0x80000000u : 0);
}

static inline uint8_t *put_attrs_retag(uint8_t *q, const uint8_t *src, uint32_t len, uint8_t tag)
{
	memcpy(q, src, len);
	if (tag != 0x3a) {
		/* entries are [0x3a][varint len][KeyValue]: rewrite each tag byte */
		size_t at = 0;
		while (at < len) {
			uint64_t n;
			const uint8_t *v = src + at + 1;
			q[at] = tag;
			if (pb_get_varint(&v, src + len, &n) != 0)
				break;
			at = (size_t)(v - src) + n;
		}
	}
	return q + len;
}

static uint8_t *write_hist(const struct dbi_otlp_enc *e, uint8_t *q, const struct dbi_hist_rec *r,
                           const struct cached *ac)
{
	q = put_attrs_retag(q, e->store.data + ac->off, ac->len, 0x4a);
	if (r->start_ns) {
		*q++ = 0x11;
		q = pb_put_fixed64(q, r->start_ns);
	}
	*q++ = 0x19;
	q = pb_put_fixed64(q, r->time_ns);
	*q++ = 0x21;
	q = pb_put_fixed64(q, r->count);
	if (r->flags & DBI_HF_HAS_SUM) {
		*q++ = 0x29;
		q = pb_put_double(q, r->sum);
	}
	uint32_t nb = r->nbounds;
	const double *bounds = (const double *)(const void *)(r + 1);
	const uint64_t *counts = (const uint64_t *)(const void *)(bounds + nb);
	q = pb_put_bytes(q, 0x32, counts, 8 * ((size_t)nb + 1));
	if (nb)
		q = pb_put_bytes(q, 0x3a, bounds, 8 * (size_t)nb);
	if (r->flags & DBI_HF_NOVALUE) {
		*q++ = 0x50;
		*q++ = 1;
	}
	if (r->flags & DBI_HF_HAS_MINMAX) {
		*q++ = 0x59;
		q = pb_put_double(q, r->min);
		*q++ = 0x61;
		q = pb_put_double(q, r->max);
	}
	return q;
}

static const uint8_t data_tag[] = {
        [DBI_MK_GAUGE] = 0x2a,        [DBI_MK_SUM] = 0x3a,     [DBI_MK_HISTOGRAM] = 0x4a,
        [DBI_MK_EXPHISTOGRAM] = 0x52, [DBI_MK_SUMMARY] = 0x5a,
};

static size_t data_extra(const struct mg_ent *g)
{
	size_t n = 0;
	if (g->kind == DBI_MK_SUM || g->kind == DBI_MK_HISTOGRAM || g->kind == DBI_MK_EXPHISTOGRAM)
		n += g->temporality ? 1 + pb_varint_len(g->temporality) : 0;
	if (g->kind == DBI_MK_SUM && g->monotonic)
		n += 2;
	return n;
}

int dbi_otlp_enc_metrics(struct dbi_otlp_enc *e, const struct dbi_point *pts, uint32_t npts,
                         const struct dbi_rec_hdr *const *recs, uint32_t nrecs, struct dbi_obuf *out, uint32_t *nitems)
{
	out->len = 0;
	*nitems = 0;
	if (batch_arrays(e, npts, nrecs) != DBI_OK)
		return DBI_ERR;
	next_epoch(e);
	uint32_t items = 0;

	/* pass 1: group and size */
	for (uint32_t i = 0; i < npts; i++) {
		const struct dbi_point *p = &pts[i];
		const struct series_ent *s = series_lookup(e, p->series);
		if (dbi_unlikely(!s || p->kind == DBI_PK_MARK)) {
			e->st.invalid += p->kind != DBI_PK_MARK;
			continue;
		}
		struct mg_ent *g = &e->mg[s->mg];
		if (dbi_unlikely(g->kind != DBI_MK_GAUGE && g->kind != DBI_MK_SUM)) {
			e->st.invalid++;
			continue;
		}
		const struct cached *ac = &e->attrs[s->attrs];
		uint32_t sz = number_point_size(p, ac->len);
		e->psize[i] = sz;
		g = touch_mg(e, s->mg);
		e->pnext[i] = NONE;
		if (g->ptail == NONE)
			g->phead = i;
		else
			e->pnext[g->ptail] = i;
		g->ptail = i;
		g->npts++;
		g->dsize += pb_len_field(sz);
		count_cut(e, &ac->cut);
		items++;
	}
	for (uint32_t i = 0; i < nrecs; i++) {
		const struct dbi_rec_hdr *h = recs[i];
		uint32_t sid;
		if (h->len < sizeof(*h)) {
			e->st.invalid++;
			continue;
		}
		if (h->type == DBI_REC_HIST && h->len >= sizeof(struct dbi_hist_rec))
			sid = ((const struct dbi_hist_rec *)h)->series;
		else if ((h->type == DBI_REC_EXPHIST || h->type == DBI_REC_SUMMARY) &&
		         h->len >= sizeof(struct dbi_otlp_point_rec))
			sid = ((const struct dbi_otlp_point_rec *)h)->series;
		else {
			e->st.invalid++;
			continue;
		}
		const struct series_ent *s = series_lookup(e, sid);
		if (!s) {
			e->st.invalid++;
			continue;
		}
		const struct cached *ac = &e->attrs[s->attrs];
		uint32_t sz = metric_rec_size(h, e->mg[s->mg].kind, ac, &e->rdata[i]);
		if (!sz) {
			e->st.invalid++;
			continue;
		}
		/* the top bit says "attributes already inside the passed-through bytes" */
		int inside = (sz & 0x80000000u) != 0;
		sz &= 0x7fffffffu;
		e->rsize[i] = sz | (inside ? 0x80000000u : 0);
		struct mg_ent *g = touch_mg(e, s->mg);
		e->rnext[i] = NONE;
		if (g->rtail == NONE)
			g->rhead = i;
		else
			e->rnext[g->rtail] = i;
		g->rtail = i;
		g->nrecs++;
		g->dsize += pb_len_field(sz);
		if (!inside)
			count_cut(e, &ac->cut);
		items++;
	}
	if (!items)
		return DBI_OK;

	/* sizes, bottom up */
	size_t total = 0;
	for (uint32_t r = e->res_head; r != NONE; r = e->res[r].next) {
		struct res_ent *re = &e->res[r];
		re->size = pb_len_field(re->c.len);
		for (uint32_t s = re->head; s != NONE; s = e->rs[s].next) {
			struct rs_ent *se = &e->rs[s];
			se->size = pb_len_field(e->scopes[se->scope].len);
			for (uint32_t m = se->head; m != NONE; m = e->mg[m].next) {
				struct mg_ent *g = &e->mg[m];
				g->size = e->metrics[g->metric].len + pb_len_field(g->dsize + data_extra(g));
				se->size += pb_len_field(g->size);
			}
			re->size += pb_len_field(se->size);
		}
		total += pb_len_field(re->size);
	}
	if (dbi_obuf_reserve(out, total) != DBI_OK)
		return DBI_ERR;

	/* pass 2: write */
	uint8_t *q = out->data;
	for (uint32_t r = e->res_head; r != NONE; r = e->res[r].next) {
		const struct res_ent *re = &e->res[r];
		q = pb_put_len_hdr(q, 0x0a, re->size);
		q = pb_put_bytes(q, 0x0a, e->store.data + re->c.off, re->c.len);
		count_cut(e, &re->c.cut);
		for (uint32_t s = re->head; s != NONE; s = e->rs[s].next) {
			const struct rs_ent *se = &e->rs[s];
			const struct cached *sc = &e->scopes[se->scope];
			q = pb_put_len_hdr(q, 0x12, se->size);
			q = pb_put_bytes(q, 0x0a, e->store.data + sc->off, sc->len);
			for (uint32_t m = se->head; m != NONE; m = e->mg[m].next) {
				const struct mg_ent *g = &e->mg[m];
				const struct cached *mc = &e->metrics[g->metric];
				q = pb_put_len_hdr(q, 0x12, g->size);
				memcpy(q, e->store.data + mc->off, mc->len);
				q += mc->len;
				q = pb_put_len_hdr(q, data_tag[g->kind], g->dsize + data_extra(g));
				for (uint32_t i = g->phead; i != NONE; i = e->pnext[i]) {
					const struct dbi_point *p = &pts[i];
					const struct cached *ac = &e->attrs[e->series[p->series].attrs];
					q = pb_put_len_hdr(q, 0x0a, e->psize[i]);
					memcpy(q, e->store.data + ac->off, ac->len);
					q += ac->len;
					if (p->start_ns) {
						*q++ = 0x11;
						q = pb_put_fixed64(q, p->start_ns);
					}
					*q++ = 0x19;
					q = pb_put_fixed64(q, p->time_ns);
					if (p->flags & DBI_PF_NOVALUE) {
						*q++ = 0x40;
						*q++ = 1;
					} else if (p->flags & DBI_PF_DOUBLE) {
						*q++ = 0x21;
						q = pb_put_double(q, p->v.d);
					} else {
						*q++ = 0x31;
						q = pb_put_fixed64(q, (uint64_t)p->v.i);
					}
				}
				for (uint32_t i = g->rhead; i != NONE; i = e->rnext[i]) {
					const struct dbi_rec_hdr *h = recs[i];
					uint32_t sz = e->rsize[i] & 0x7fffffffu;
					int inside = (e->rsize[i] & 0x80000000u) != 0;
					q = pb_put_len_hdr(q, 0x0a, sz);
					if (h->type == DBI_REC_HIST) {
						const struct dbi_hist_rec *hr = (const struct dbi_hist_rec *)h;
						q = write_hist(e, q, hr, &e->attrs[e->series[hr->series].attrs]);
						continue;
					}
					const struct dbi_otlp_point_rec *pr = (const struct dbi_otlp_point_rec *)h;
					memcpy(q, e->rdata[i], pr->pb_len);
					q += pr->pb_len;
					if (!inside) {
						const struct cached *ac = &e->attrs[e->series[pr->series].attrs];
						q = put_attrs_retag(q, e->store.data + ac->off, ac->len,
						                    h->type == DBI_REC_EXPHIST ? 0x0a : 0x3a);
					}
				}
				if ((g->kind == DBI_MK_SUM || g->kind == DBI_MK_HISTOGRAM ||
				     g->kind == DBI_MK_EXPHISTOGRAM) &&
				    g->temporality) {
					*q++ = 0x10;
					q = pb_put_varint(q, g->temporality);
				}
				if (g->kind == DBI_MK_SUM && g->monotonic) {
					*q++ = 0x18;
					*q++ = 1;
				}
			}
		}
	}
	out->len = (size_t)(q - out->data);
	if (dbi_unlikely(out->len != total)) {
		/* a size computation disagrees with the writer: never ship such bytes */
		out->len = 0;
		return DBI_ERR;
	}
	e->st.points += items;
	*nitems = items;
	return DBI_OK;
}

/* ---- logs and spans ---- */

/*
 * A LogRecord (attrs field 6, dropped count 7) or Span (9, 10) with its attributes
 * limited: appended to e->scratch. Events' and links' attributes are left alone.
 */
static int limit_record(struct dbi_otlp_enc *e, const uint8_t *pb, size_t len, uint32_t attrs_field,
                        uint32_t dropped_field, struct cut *cut)
{
	const uint8_t *p = pb, *end = pb + len;
	struct pb_field f;
	uint64_t dropped = 0;
	uint32_t n = 0;
	int rc;
	while ((rc = pb_next(&p, end, &f)) == 1) {
		if (f.num == attrs_field && f.wt == PB_LEN) {
			if (e->lim.max_attrs && n >= e->lim.max_attrs) {
				cut->dropped++;
				dropped++;
				continue;
			}
			n++;
			struct dbi_obuf kv = {0};
			if (limit_kv(&e->lim, f.data, f.len, &kv, cut, 0) != DBI_OK ||
			    buf_put_len_field(&e->scratch, (uint8_t)PB_TAG(attrs_field, PB_LEN), kv.data, kv.len) !=
			            DBI_OK) {
				dbi_obuf_free(&kv);
				return DBI_ERR;
			}
			dbi_obuf_free(&kv);
		} else if (f.num == dropped_field && f.wt == PB_VARINT) {
			dropped += f.v;
		} else if (buf_put(&e->scratch, f.start, (size_t)(f.end - f.start)) != DBI_OK) {
			return DBI_ERR;
		}
	}
	if (rc < 0)
		return DBI_ERR;
	if (dropped) {
		uint8_t tmp[12];
		tmp[0] = (uint8_t)PB_TAG(dropped_field, PB_VARINT);
		return buf_put(&e->scratch, tmp, (size_t)(pb_put_varint(tmp + 1, dropped) - tmp));
	}
	return DBI_OK;
}

int dbi_otlp_enc_records(struct dbi_otlp_enc *e, unsigned signal, const struct dbi_rec_hdr *const *recs, uint32_t nrecs,
                         struct dbi_obuf *out, uint32_t *nitems)
{
	uint32_t want = signal == DBI_SIG_LOGS ? DBI_REC_LOG : DBI_REC_SPAN;
	uint32_t attrs_field = signal == DBI_SIG_LOGS ? 6 : 9;
	out->len = 0;
	*nitems = 0;
	if (batch_arrays(e, 0, nrecs) != DBI_OK)
		return DBI_ERR;
	next_epoch(e);
	e->scratch.len = 0;
	uint32_t items = 0;
	/* rewritten records live in scratch, which may move while growing: offsets first */
	for (uint32_t i = 0; i < nrecs; i++) {
		const struct dbi_otlp_rec *r = (const struct dbi_otlp_rec *)recs[i];
		if (r->h.type != want || r->h.len < sizeof(*r) || r->h.len - sizeof(*r) < r->pb_len) {
			e->st.invalid++;
			e->rsize[i] = NONE;
			continue;
		}
		const uint8_t *pb = dbi_otlp_rec_pb(r);
		if (e->has_lim) {
			struct cut cut = {0};
			size_t at = e->scratch.len;
			if (limit_record(e, pb, r->pb_len, attrs_field, attrs_field + 1, &cut) != DBI_OK) {
				e->scratch.len = at;
				e->st.invalid++;
				e->rsize[i] = NONE;
				continue;
			}
			count_cut(e, &cut);
			e->roff[i] = at;
			e->rsize[i] = (uint32_t)(e->scratch.len - at);
		} else {
			if (pb_check_shallow(pb, r->pb_len) != 0) {
				e->st.invalid++;
				e->rsize[i] = NONE;
				continue;
			}
			e->rdata[i] = pb;
			e->rsize[i] = r->pb_len;
		}
	}
	for (uint32_t i = 0; i < nrecs; i++) {
		if (e->rsize[i] == NONE)
			continue;
		const struct dbi_otlp_rec *r = (const struct dbi_otlp_rec *)recs[i];
		if (e->has_lim)
			e->rdata[i] = e->scratch.data + e->roff[i];
		uint32_t rsid = rs_lookup(e, r->resource, r->scope);
		if (!rsid) {
			e->st.invalid++;
			continue;
		}
		struct rs_ent *s = touch_rs(e, rsid);
		e->rnext[i] = NONE;
		if (s->tail == NONE)
			s->head = i;
		else
			e->rnext[s->tail] = i;
		s->tail = i;
		s->dsize += pb_len_field(e->rsize[i]);
		items++;
	}
	if (!items)
		return DBI_OK;
	size_t total = 0;
	for (uint32_t r = e->res_head; r != NONE; r = e->res[r].next) {
		struct res_ent *re = &e->res[r];
		re->size = pb_len_field(re->c.len);
		for (uint32_t s = re->head; s != NONE; s = e->rs[s].next) {
			struct rs_ent *se = &e->rs[s];
			se->size = pb_len_field(e->scopes[se->scope].len) + se->dsize;
			re->size += pb_len_field(se->size);
		}
		total += pb_len_field(re->size);
	}
	if (dbi_obuf_reserve(out, total) != DBI_OK)
		return DBI_ERR;
	uint8_t *q = out->data;
	for (uint32_t r = e->res_head; r != NONE; r = e->res[r].next) {
		const struct res_ent *re = &e->res[r];
		q = pb_put_len_hdr(q, 0x0a, re->size);
		q = pb_put_bytes(q, 0x0a, e->store.data + re->c.off, re->c.len);
		count_cut(e, &re->c.cut);
		for (uint32_t s = re->head; s != NONE; s = e->rs[s].next) {
			const struct rs_ent *se = &e->rs[s];
			const struct cached *sc = &e->scopes[se->scope];
			q = pb_put_len_hdr(q, 0x12, se->size);
			q = pb_put_bytes(q, 0x0a, e->store.data + sc->off, sc->len);
			/* the rs list reused head/tail for record indexes */
			for (uint32_t i = se->head; i != NONE; i = e->rnext[i])
				q = pb_put_bytes(q, 0x12, e->rdata[i], e->rsize[i]);
		}
	}
	out->len = (size_t)(q - out->data);
	if (dbi_unlikely(out->len != total)) {
		out->len = 0;
		return DBI_ERR;
	}
	e->st.records += items;
	*nitems = items;
	return DBI_OK;
}

int dbi_otlp_enc_batch(struct dbi_otlp_enc *e, const struct dbi_batch *b, struct dbi_obuf *out, uint32_t *nitems)
{
	if (b->signal == DBI_SIG_METRICS)
		return dbi_otlp_enc_metrics(e, b->pts, b->npts, b->recs, b->nrecs, out, nitems);
	return dbi_otlp_enc_records(e, b->signal, b->recs, b->nrecs, out, nitems);
}

/* ---- wire-level count and extract ---- */

/*
 * The request shapes, level by level: which field of a message at each level holds the
 * children (metrics: request > ResourceMetrics > ScopeMetrics > Metric > Gauge/Sum/... >
 * data point; logs/traces: request > Resource* > Scope* > record). Other fields are the
 * message's own (resource, scope, name, temporality...) and are copied with any part.
 */
static int is_child_field(unsigned signal, unsigned level, uint32_t num)
{
	switch (level) {
	case 0:
		return num == 1;
	case 1:
	case 2:
		return num == 2;
	case 3:
		return signal == DBI_SIG_METRICS && (num == 5 || num == 7 || num == 9 || num == 10 || num == 11);
	case 4:
		return signal == DBI_SIG_METRICS && num == 1;
	}
	return 0;
}

static unsigned leaf_level(unsigned signal)
{
	return signal == DBI_SIG_METRICS ? 5 : 3;
}

static int count_level(unsigned signal, unsigned level, const uint8_t *p, size_t len, uint64_t *n)
{
	const uint8_t *end = p + len;
	struct pb_field f;
	int rc;
	if (level == leaf_level(signal)) {
		(*n)++;
		return DBI_OK;
	}
	while ((rc = pb_next(&p, end, &f)) == 1) {
		if (!is_child_field(signal, level, f.num))
			continue;
		if (f.wt != PB_LEN || count_level(signal, level + 1, f.data, f.len, n) != DBI_OK)
			return DBI_ERR;
	}
	return rc < 0 ? DBI_ERR : DBI_OK;
}

int dbi_otlp_count_items(unsigned signal, const uint8_t *req, size_t len, uint32_t *nitems)
{
	uint64_t n = 0;
	if (signal != DBI_SIG_METRICS && signal != DBI_SIG_LOGS && signal != DBI_SIG_TRACES)
		return DBI_ERR;
	if (count_level(signal, 0, req, len, &n) != DBI_OK || n > UINT32_MAX)
		return DBI_ERR;
	*nitems = (uint32_t)n;
	return DBI_OK;
}

/*
 * Body of message p at level holding its leaves [lo, hi) (numbered from base), written
 * at *q (NULL: size only). Returns the body size through *size and whether any leaf
 * fell in the range.
 */
static int extract_level(unsigned signal, unsigned level, const uint8_t *p, size_t len, uint64_t *base, uint64_t lo,
                         uint64_t hi, uint8_t **q, size_t *size, int *any)
{
	const uint8_t *end = p + len;
	struct pb_field f;
	int rc;
	*size = 0;
	*any = 0;
	if (level == leaf_level(signal)) {
		*any = *base >= lo && *base < hi;
		(*base)++;
		if (*any) {
			*size = len;
			if (q) {
				memcpy(*q, p, len);
				*q += len;
			}
		}
		return DBI_OK;
	}
	/* size first (children's sizes needed for their length prefixes), then write */
	while ((rc = pb_next(&p, end, &f)) == 1) {
		if (!is_child_field(signal, level, f.num)) {
			size_t n = (size_t)(f.end - f.start);
			*size += n;
			if (q) {
				memcpy(*q, f.start, n);
				*q += n;
			}
			continue;
		}
		if (f.wt != PB_LEN)
			return DBI_ERR;
		uint64_t b0 = *base, cnt = 0;
		if (count_level(signal, level + 1, f.data, f.len, &cnt) != DBI_OK)
			return DBI_ERR;
		if (b0 + cnt <= lo || b0 >= hi) {
			*base = b0 + cnt;
			continue;
		}
		size_t csz;
		int cany;
		if (extract_level(signal, level + 1, f.data, f.len, base, lo, hi, NULL, &csz, &cany) != DBI_OK)
			return DBI_ERR;
		if (!cany)
			continue;
		size_t tlen = pb_varint_len(PB_TAG(f.num, PB_LEN));
		*size += tlen + pb_varint_len(csz) + csz;
		*any = 1;
		if (q) {
			*q = pb_put_varint(*q, PB_TAG(f.num, PB_LEN));
			*q = pb_put_varint(*q, csz);
			uint64_t b1 = b0;
			size_t again;
			if (extract_level(signal, level + 1, f.data, f.len, &b1, lo, hi, q, &again, &cany) != DBI_OK ||
			    again != csz)
				return DBI_ERR;
		}
	}
	if (rc < 0)
		return DBI_ERR;
	if (!*any) {
		/* nothing of ours here: the header fields counted above are not written either */
		*size = 0;
	}
	return DBI_OK;
}

int dbi_otlp_extract(unsigned signal, const uint8_t *req, size_t len, uint32_t lo, uint32_t hi, struct dbi_obuf *out)
{
	uint64_t base = 0;
	size_t size;
	int any;
	out->len = 0;
	if (signal != DBI_SIG_METRICS && signal != DBI_SIG_LOGS && signal != DBI_SIG_TRACES)
		return DBI_ERR;
	if (lo >= hi)
		return DBI_OK;
	if (extract_level(signal, 0, req, len, &base, lo, hi, NULL, &size, &any) != DBI_OK)
		return DBI_ERR;
	if (!any)
		return DBI_OK;
	if (dbi_obuf_reserve(out, size) != DBI_OK)
		return DBI_ERR;
	uint8_t *q = out->data;
	base = 0;
	size_t again;
	if (extract_level(signal, 0, req, len, &base, lo, hi, &q, &again, &any) != DBI_OK || again != size)
		return DBI_ERR;
	out->len = size;
	return DBI_OK;
}
