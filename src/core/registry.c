/*
 * registry.c — interning of metric descriptors, attribute sets, scopes and series
 * (see registry.h). Four RCU hash tables (liburcu cds_lfht, memb flavour) map content
 * to objects; an id table of fixed-size chunks maps ids back to objects. Readers take
 * an RCU read lock only for content lookups; inserts are rare (a new series) and
 * serialised by one mutex per table, which keeps id assignment dense and simple.
 * Objects are never freed before the registry: pointers handed out stay valid.
 *
 * Metrics, attribute sets and scopes are few: each is one allocation (strings appended),
 * reached through a separate hash node, and the id table holds node pointers. Series are
 * most of the registry (280 000 at 1 000 PostgreSQL targets), so they are kept small: the
 * id table's chunks hold the series themselves (24 bytes; the id is the slot), and
 * lookups by content go through an open-addressing index of 32-bit ids (linear probing,
 * at most 70 % full) instead of the RCU hash table: ~30 bytes per series instead of ~52
 * (a 48-byte entry with its hash node, plus the hash table's buckets), and a lookup is
 * one hash of the four ids, one probe run and one entry compare.
 *
 * Publication of a series: under the table mutex, after the series limit check, the next
 * slot is reserved (its chunk calloc'ed on first use), its fields are written, then the
 * id table's count is stored with release, then the id enters the index (release). A
 * lookup loads the index with acquire and each id it probes with acquire before reading
 * that entry's fields, so it sees whole entries only. The index grows under the mutex: a
 * new one twice the size is filled and published (release); the old one is retired: its
 * pages are handed back (madvise) but its mapping stays until the registry goes, so a
 * lookup still probing it reads zeros, which is a miss, and a miss is always re-checked
 * under the mutex against the current index before anything is inserted.
 */
#include "dbi/registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#define CHUNK_BITS 12
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_CHUNKS 4096 /* 16 M ids per kind */

enum obj_kind { OBJ_METRIC, OBJ_ATTRS, OBJ_SCOPE, OBJ_SERIES, OBJ_KINDS };

/*
 * Chunks of CHUNK_SIZE slots, calloc'ed when the first id in them is handed out. A slot is
 * a node pointer (metrics, attribute sets, scopes) or a whole series entry; the slot size
 * is a parameter of the functions below, constant where they are inlined.
 */
struct idtab {
	_Atomic(void *) chunks[MAX_CHUNKS];
	_Atomic uint32_t count; /* ids handed out; next id is count + 1 */
};

struct node {
	struct cds_lfht_node lf;
	/*
	 * Published with release before the node enters the table, read with acquire after
	 * a lookup: liburcu's own barriers already order this, but in code TSan cannot see;
	 * this pair makes the hand-over visible (and costs nothing on x86).
	 */
	_Atomic(void *) obj;
};

_Static_assert(sizeof(struct dbi_series) == 24, "a series is 24 bytes");

/* The series index: ids (0 = empty) by the hash of their four ids, linear probing. */
struct sindex {
	uint32_t mask; /* slots - 1 */
	size_t bytes;  /* of the mapping */
	_Atomic uint32_t slot[];
};

#define SINDEX_MIN_SLOTS 4096u
#define SINDEX_MAX_RETIRED 32 /* doublings: 4096 << 32 slots is far past MAX_CHUNKS ids */

struct table {
	struct cds_lfht *ht; /* metrics, attribute sets, scopes */
	pthread_mutex_t lock;
	struct idtab ids;
	/* series only */
	_Atomic(struct sindex *) ix;
	struct sindex *retired[SINDEX_MAX_RETIRED]; /* zeroed: their sizes are kept here */
	size_t retired_bytes[SINDEX_MAX_RETIRED];
	int nretired;
};

struct dbi_registry {
	struct table t[OBJ_KINDS];
	uint32_t max_series;
	_Atomic uint64_t limit_hits;
	_Atomic uint64_t bytes;
};

/* ---- RCU thread registration: lazily, undone when the thread exits ---- */

static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;
static __thread int rcu_registered;

static void rcu_thread_exit(void *arg)
{
	(void)arg;
	if (rcu_registered) {
		urcu_memb_unregister_thread();
		rcu_registered = 0;
	}
}

static void rcu_key_init(void)
{
	pthread_key_create(&rcu_key, rcu_thread_exit);
}

static inline void rcu_ensure_registered(void)
{
	if (dbi_likely(rcu_registered))
		return;
	pthread_once(&rcu_once, rcu_key_init);
	urcu_memb_register_thread();
	rcu_registered = 1;
	pthread_setspecific(rcu_key, (void *)1);
}

/* ---- id table ---- */

/* The slot of a published id (slot bytes each), or NULL. */
static inline void *idtab_get(const struct idtab *it, uint32_t id, size_t slot)
{
	if (id == 0 || id > atomic_load_explicit(&it->count, memory_order_acquire))
		return NULL;
	uint32_t i = id - 1;
	char *chunk = atomic_load_explicit(&it->chunks[i >> CHUNK_BITS], memory_order_acquire);
	return chunk ? chunk + (size_t)(i & (CHUNK_SIZE - 1)) * slot : NULL;
}

/*
 * Caller holds the table mutex. The slot of the id the next idtab_publish will hand out
 * (its id in *id), zero-filled and invisible to readers until then; NULL when the table
 * is full or out of memory, with nothing changed but maybe a new empty chunk.
 */
static void *idtab_reserve(struct dbi_registry *reg, struct idtab *it, size_t slot, uint32_t *id)
{
	uint32_t i = atomic_load_explicit(&it->count, memory_order_relaxed);
	if ((i >> CHUNK_BITS) >= MAX_CHUNKS)
		return NULL;
	char *chunk = atomic_load_explicit(&it->chunks[i >> CHUNK_BITS], memory_order_relaxed);
	if (!chunk) {
		chunk = calloc(CHUNK_SIZE, slot);
		if (!chunk)
			return NULL;
		atomic_fetch_add_explicit(&reg->bytes, CHUNK_SIZE * slot, memory_order_relaxed);
		atomic_store_explicit(&it->chunks[i >> CHUNK_BITS], chunk, memory_order_release);
	}
	*id = i + 1;
	return chunk + (size_t)(i & (CHUNK_SIZE - 1)) * slot;
}

/* Caller holds the table mutex; id came from idtab_reserve and its slot is complete. */
static void idtab_publish(struct idtab *it, uint32_t id)
{
	atomic_store_explicit(&it->count, id, memory_order_release);
}

/* ---- attribute encoding ---- */

static void put16(uint8_t **p, uint16_t v)
{
	memcpy(*p, &v, 2);
	*p += 2;
}
static void put32(uint8_t **p, uint32_t v)
{
	memcpy(*p, &v, 4);
	*p += 4;
}

static size_t attr_key_len(const struct dbi_attr *a)
{
	return a->klen ? a->klen : strlen(a->key);
}

static size_t attr_val_len(const struct dbi_attr *a)
{
	if (a->type == DBI_AT_STR)
		return a->vlen ? a->vlen : (a->v.s ? strlen(a->v.s) : 0);
	return a->vlen;
}

static size_t attr_enc_size(const struct dbi_attr *a)
{
	size_t n = 2 + attr_key_len(a) + 1;
	switch (a->type) {
	case DBI_AT_STR:
	case DBI_AT_BYTES:
	case DBI_AT_ANYPB:
		return n + 4 + attr_val_len(a);
	case DBI_AT_INT:
	case DBI_AT_DOUBLE:
		return n + 8;
	case DBI_AT_BOOL:
		return n + 1;
	}
	return 0;
}

size_t dbi_attrs_encode(uint8_t *buf, size_t cap, const struct dbi_attr *attrs, size_t n)
{
	/* lengths once per attribute: strlen in the sort's comparisons dominated the cost */
	struct sorted {
		const struct dbi_attr *a;
		uint32_t kl, vl;
	} sorted[DBI_ATTRS_MAX];
	size_t m = 0, need = 0;
	if (n > DBI_ATTRS_MAX)
		return 0;
	/* Stable insertion sort by key; an equal key replaces the earlier one (last wins). */
	for (size_t i = 0; i < n; i++) {
		const struct dbi_attr *a = &attrs[i];
		if (!a->key)
			return 0;
		size_t kl = attr_key_len(a);
		if (kl == 0 || kl > 0xffff || attr_enc_size(a) == 0)
			return 0;
		struct sorted e = {a, (uint32_t)kl, (uint32_t)attr_val_len(a)};
		size_t j = m;
		int c = 1;
		while (j > 0) {
			const struct sorted *p = &sorted[j - 1];
			c = memcmp(p->a->key, a->key, DBI_MIN(p->kl, e.kl));
			if (c == 0)
				c = p->kl < e.kl ? -1 : p->kl > e.kl;
			if (c <= 0)
				break;
			j--;
		}
		if (j > 0 && c == 0) {
			sorted[j - 1] = e;
			continue;
		}
		memmove(&sorted[j + 1], &sorted[j], (m - j) * sizeof(sorted[0]));
		sorted[j] = e;
		m++;
	}
	for (size_t i = 0; i < m; i++) {
		uint8_t t = sorted[i].a->type;
		need += 3 + sorted[i].kl +
		        ((t == DBI_AT_STR || t == DBI_AT_BYTES || t == DBI_AT_ANYPB) ? 4 + sorted[i].vl
		         : t == DBI_AT_BOOL                                          ? 1
		                                                                     : 8);
	}
	if (need > cap || need == 0)
		return 0; /* too big, or empty: the empty set is interned with len 0 directly */
	uint8_t *p = buf;
	for (size_t i = 0; i < m; i++) {
		const struct dbi_attr *a = sorted[i].a;
		uint32_t kl = sorted[i].kl;
		put16(&p, (uint16_t)kl);
		memcpy(p, a->key, kl);
		p += kl;
		*p++ = a->type;
		switch (a->type) {
		case DBI_AT_STR:
		case DBI_AT_BYTES:
		case DBI_AT_ANYPB:
			put32(&p, sorted[i].vl);
			if (sorted[i].vl)
				memcpy(p, a->v.s, sorted[i].vl);
			p += sorted[i].vl;
			break;
		case DBI_AT_INT:
			memcpy(p, &a->v.i, 8);
			p += 8;
			break;
		case DBI_AT_DOUBLE:
			memcpy(p, &a->v.d, 8);
			p += 8;
			break;
		case DBI_AT_BOOL:
			*p++ = a->v.b ? 1 : 0;
			break;
		}
	}
	return (size_t)(p - buf);
}

void dbi_attrs_iter_init(struct dbi_attr_iter *it, const uint8_t *enc, size_t len)
{
	it->p = enc;
	it->end = enc + len;
}

int dbi_attrs_next(struct dbi_attr_iter *it, struct dbi_attr *out)
{
	const uint8_t *p = it->p;
	uint16_t kl;
	uint32_t vl;
	if (!p || p + 3 > it->end)
		return 0;
	memcpy(&kl, p, 2);
	p += 2;
	if (p + kl + 1 > it->end)
		return 0;
	out->key = (const char *)p;
	out->klen = kl;
	p += kl;
	out->type = *p++;
	switch (out->type) {
	case DBI_AT_STR:
	case DBI_AT_BYTES:
	case DBI_AT_ANYPB:
		if (p + 4 > it->end)
			return 0;
		memcpy(&vl, p, 4);
		p += 4;
		if (p + vl > it->end)
			return 0;
		out->v.s = (const char *)p;
		out->vlen = vl;
		p += vl;
		break;
	case DBI_AT_INT:
	case DBI_AT_DOUBLE:
		if (p + 8 > it->end)
			return 0;
		memcpy(&out->v.i, p, 8);
		out->vlen = 8;
		p += 8;
		break;
	case DBI_AT_BOOL:
		if (p + 1 > it->end)
			return 0;
		out->v.b = *p++;
		out->vlen = 1;
		break;
	default:
		return 0;
	}
	it->p = p;
	return 1;
}

int dbi_attrs_find(const uint8_t *enc, size_t len, const char *key, struct dbi_attr *out)
{
	struct dbi_attr_iter it;
	size_t kl = strlen(key);
	dbi_attrs_iter_init(&it, enc, len);
	while (dbi_attrs_next(&it, out))
		if (out->klen == kl && memcmp(out->key, key, kl) == 0)
			return 1;
	return 0;
}

const char *dbi_attrs_format(const uint8_t *enc, size_t len, char *buf, size_t cap)
{
	struct dbi_attr_iter it;
	struct dbi_attr a;
	size_t o = 0;
	if (cap == 0)
		return buf;
	buf[0] = '\0';
	dbi_attrs_iter_init(&it, enc, len);
	while (dbi_attrs_next(&it, &a) && o + 1 < cap) {
		int n = 0;
		const char *sep = o ? ", " : "";
		switch (a.type) {
		case DBI_AT_STR:
			n = snprintf(buf + o, cap - o, "%s%.*s=\"%.*s\"", sep, (int)a.klen, a.key, (int)a.vlen, a.v.s);
			break;
		case DBI_AT_INT:
			n = snprintf(buf + o, cap - o, "%s%.*s=%lld", sep, (int)a.klen, a.key, (long long)a.v.i);
			break;
		case DBI_AT_DOUBLE:
			n = snprintf(buf + o, cap - o, "%s%.*s=%g", sep, (int)a.klen, a.key, a.v.d);
			break;
		case DBI_AT_BOOL:
			n = snprintf(buf + o, cap - o, "%s%.*s=%s", sep, (int)a.klen, a.key, a.v.b ? "true" : "false");
			break;
		default:
			n = snprintf(buf + o, cap - o, "%s%.*s=<%u bytes>", sep, (int)a.klen, a.key, a.vlen);
			break;
		}
		if (n < 0)
			break;
		o += (size_t)n;
		if (o >= cap) {
			o = cap - 1;
			break;
		}
	}
	buf[o] = '\0';
	return buf;
}

/* ---- the series index ---- */

/* A zeroed index of slots (a power of two) in its own mapping; NULL when out of memory. */
static struct sindex *sindex_new(struct dbi_registry *reg, uint32_t slots)
{
	size_t bytes = sizeof(struct sindex) + (size_t)slots * sizeof(uint32_t);
	struct sindex *ix;

	bytes = DBI_ALIGN_UP(bytes, 4096);
	ix = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ix == MAP_FAILED)
		return NULL;
	ix->mask = slots - 1;
	ix->bytes = bytes;
	atomic_fetch_add_explicit(&reg->bytes, bytes, memory_order_relaxed);
	return ix;
}

static void sindex_free_all(struct table *t)
{
	struct sindex *ix = atomic_load(&t->ix);
	if (ix)
		munmap(ix, ix->bytes);
	for (int i = 0; i < t->nretired; i++)
		munmap(t->retired[i], t->retired_bytes[i]);
}

/* ---- tables ---- */

struct dbi_registry *dbi_registry_create(uint32_t max_series)
{
	struct dbi_registry *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return NULL;
	/*
	 * Start big where tables get big: liburcu resizes in a background call_rcu thread,
	 * and until it catches up every lookup walks long chains (measured: 10x slower
	 * interning at 200k series with 1024 initial buckets on a loaded machine).
	 */
	static const unsigned long init_buckets[OBJ_SERIES] = {
	        [OBJ_METRIC] = 1024, [OBJ_ATTRS] = 65536, [OBJ_SCOPE] = 64};
	rcu_ensure_registered();
	for (int k = 0; k < OBJ_KINDS; k++)
		pthread_mutex_init(&reg->t[k].lock, NULL);
	for (int k = 0; k < OBJ_KINDS; k++) {
		if (k == OBJ_SERIES) {
			struct sindex *ix = sindex_new(reg, SINDEX_MIN_SLOTS);
			if (!ix)
				goto fail;
			atomic_store_explicit(&reg->t[k].ix, ix, memory_order_relaxed);
			continue;
		}
		reg->t[k].ht = cds_lfht_new_flavor(init_buckets[k], init_buckets[k], 1UL << 26,
		                                   CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, &urcu_memb_flavor, NULL);
		if (!reg->t[k].ht)
			goto fail;
	}
	reg->max_series = max_series ? max_series : UINT32_MAX;
	return reg;
fail:
	dbi_registry_destroy(reg);
	return NULL;
}

void dbi_registry_destroy(struct dbi_registry *reg)
{
	if (!reg)
		return;
	rcu_ensure_registered();
	for (int k = 0; k < OBJ_KINDS; k++) {
		struct table *t = &reg->t[k];
		if (t->ht) {
			struct cds_lfht_iter iter;
			struct cds_lfht_node *n;
			urcu_memb_read_lock();
			cds_lfht_first(t->ht, &iter);
			while ((n = cds_lfht_iter_get_node(&iter)) != NULL) {
				cds_lfht_del(t->ht, n);
				cds_lfht_next(t->ht, &iter);
			}
			urcu_memb_read_unlock();
			urcu_memb_synchronize_rcu();
			cds_lfht_destroy(t->ht, NULL);
			/* any object but a series is one allocation, plus its node */
			uint32_t count = atomic_load(&t->ids.count);
			for (uint32_t id = 1; id <= count; id++) {
				struct node **slot = idtab_get(&t->ids, id, sizeof(*slot));
				free(atomic_load(&(*slot)->obj));
				free(*slot);
			}
		}
		if (k == OBJ_SERIES)
			sindex_free_all(t);
		for (int c = 0; c < MAX_CHUNKS; c++)
			free(atomic_load(&t->ids.chunks[c]));
		pthread_mutex_destroy(&t->lock);
	}
	free(reg);
}

typedef int (*match_fn)(const void *obj, const void *key);

struct match_arg {
	match_fn fn;
	const void *key;
};

static int node_match(struct cds_lfht_node *lf, const void *arg)
{
	const struct match_arg *m = arg;
	struct node *n = caa_container_of(lf, struct node, lf);
	return m->fn(atomic_load_explicit(&n->obj, memory_order_acquire), m->key);
}

static void *lookup(struct table *t, uint64_t hash, match_fn m, const void *key)
{
	struct match_arg arg = {m, key};
	struct cds_lfht_iter iter;
	struct cds_lfht_node *lf;
	void *obj = NULL;
	rcu_ensure_registered();
	urcu_memb_read_lock();
	cds_lfht_lookup(t->ht, (unsigned long)hash, node_match, &arg, &iter);
	lf = cds_lfht_iter_get_node(&iter);
	if (lf)
		obj = atomic_load_explicit(&caa_container_of(lf, struct node, lf)->obj, memory_order_acquire);
	urcu_memb_read_unlock();
	return obj;
}

/*
 * Insert obj (built by the caller) unless an equal one appeared meanwhile. Returns the
 * object now in the table (ours or the winner's) or NULL on allocation failure. Takes
 * ownership of obj; *id_out gets its id.
 */
static void *insert(struct dbi_registry *reg, struct table *t, uint64_t hash, match_fn m, const void *key, void *obj,
                    uint32_t *id_field, size_t bytes)
{
	void *found;
	pthread_mutex_lock(&t->lock);
	found = lookup(t, hash, m, key);
	if (found) {
		pthread_mutex_unlock(&t->lock);
		free(obj);
		return found;
	}
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		goto fail;
	uint32_t id;
	struct node **slot = idtab_reserve(reg, &t->ids, sizeof(*slot), &id);
	if (!slot) {
		free(n);
		goto fail;
	}
	*id_field = id; /* the object is complete before anyone can see it */
	atomic_store_explicit(&n->obj, obj, memory_order_release);
	/* the id table holds the node so destroy can free it; lookups by id go through it */
	*slot = n;
	idtab_publish(&t->ids, id);
	cds_lfht_node_init(&n->lf);
	urcu_memb_read_lock();
	cds_lfht_add(t->ht, (unsigned long)hash, &n->lf);
	urcu_memb_read_unlock();
	atomic_fetch_add_explicit(&reg->bytes, bytes + sizeof(*n), memory_order_relaxed);
	pthread_mutex_unlock(&t->lock);
	return obj;
fail:
	pthread_mutex_unlock(&t->lock);
	free(obj);
	return NULL;
}

static void *get_obj(const struct table *t, uint32_t id)
{
	struct node *const *slot = idtab_get(&t->ids, id, sizeof(*slot));
	return slot ? atomic_load_explicit(&(*slot)->obj, memory_order_acquire) : NULL;
}

/* ---- attribute sets ---- */

struct attrs_key {
	const uint8_t *enc;
	size_t len;
};

static int attrs_match(const void *obj, const void *key)
{
	const struct dbi_attrset *s = obj;
	const struct attrs_key *k = key;
	return s->len == k->len && (k->len == 0 || memcmp(s->enc, k->enc, k->len) == 0);
}

uint32_t dbi_attrs_intern_enc(struct dbi_registry *reg, const uint8_t *enc, size_t len)
{
	struct table *t = &reg->t[OBJ_ATTRS];
	struct attrs_key key = {enc, len};
	uint64_t hash = dbi_hash64(enc, len, 0xa77);
	struct dbi_attrset *s = lookup(t, hash, attrs_match, &key);
	if (s)
		return s->id;
	struct dbi_attr_iter it;
	struct dbi_attr a;
	uint32_t n = 0;
	dbi_attrs_iter_init(&it, enc, len);
	while (dbi_attrs_next(&it, &a))
		n++;
	if (it.p != it.end && len)
		return 0; /* malformed */
	s = malloc(sizeof(*s) + len + 1);
	if (!s)
		return 0;
	uint8_t *copy = (uint8_t *)(s + 1);
	if (len)
		memcpy(copy, enc, len);
	copy[len] = 0;
	s->enc = copy;
	s->len = (uint32_t)len;
	s->n = n;
	s->hash = hash;
	s->id = 0;
	s = insert(reg, t, hash, attrs_match, &key, s, &s->id, sizeof(*s) + len + 1);
	return s ? s->id : 0;
}

uint32_t dbi_attrs_lookup_enc(struct dbi_registry *reg, const uint8_t *enc, size_t len)
{
	struct attrs_key key = {enc, len};
	const struct dbi_attrset *s = lookup(&reg->t[OBJ_ATTRS], dbi_hash64(enc, len, 0xa77), attrs_match, &key);
	return s ? s->id : 0;
}

uint32_t dbi_attrs_intern(struct dbi_registry *reg, const struct dbi_attr *attrs, size_t n)
{
	uint8_t buf[16384];
	size_t len = 0;
	if (n) {
		len = dbi_attrs_encode(buf, sizeof(buf), attrs, n);
		if (len == 0)
			return 0;
	}
	return dbi_attrs_intern_enc(reg, buf, len);
}

const struct dbi_attrset *dbi_attrs_get(const struct dbi_registry *reg, uint32_t id)
{
	return get_obj(&reg->t[OBJ_ATTRS], id);
}

/* ---- metrics ---- */

static int metric_match(const void *obj, const void *key)
{
	const struct dbi_metric *m = obj;
	const struct dbi_metric_def *d = key;
	return m->kind == d->kind && m->monotonic == !!d->monotonic && m->temporality == d->temporality &&
	       strcmp(m->name, d->name) == 0 && strcmp(m->unit, d->unit ? d->unit : "") == 0;
}

static uint64_t metric_hash(const struct dbi_metric_def *d)
{
	uint64_t h = dbi_hash64(d->name, strlen(d->name), 0x6d);
	const char *unit = d->unit ? d->unit : "";
	h = dbi_hash64(unit, strlen(unit), h);
	uint8_t tail[3] = {d->kind, (uint8_t) !!d->monotonic, d->temporality};
	return dbi_hash64(tail, sizeof(tail), h);
}

uint32_t dbi_metric_intern(struct dbi_registry *reg, const struct dbi_metric_def *def)
{
	if (!def || !def->name || !*def->name || def->kind < DBI_MK_GAUGE || def->kind > DBI_MK_SUMMARY)
		return 0;
	struct table *t = &reg->t[OBJ_METRIC];
	uint64_t hash = metric_hash(def);
	struct dbi_metric *m = lookup(t, hash, metric_match, def);
	if (m)
		return m->id;
	const char *unit = def->unit ? def->unit : "", *desc = def->description ? def->description : "";
	size_t ln = strlen(def->name) + 1, lu = strlen(unit) + 1, ld = strlen(desc) + 1;
	m = malloc(sizeof(*m) + ln + lu + ld);
	if (!m)
		return 0;
	char *s = (char *)(m + 1);
	memcpy(s, def->name, ln);
	m->name = s;
	memcpy(s + ln, unit, lu);
	m->unit = s + ln;
	memcpy(s + ln + lu, desc, ld);
	m->description = s + ln + lu;
	m->kind = def->kind;
	m->monotonic = !!def->monotonic;
	m->temporality = def->temporality;
	m->is_double = def->is_double;
	m->hash = hash;
	m->id = 0;
	m = insert(reg, t, hash, metric_match, def, m, &m->id, sizeof(*m) + ln + lu + ld);
	return m ? m->id : 0;
}

const struct dbi_metric *dbi_metric_get(const struct dbi_registry *reg, uint32_t id)
{
	return get_obj(&reg->t[OBJ_METRIC], id);
}

/* ---- scopes ---- */

struct scope_key {
	const char *name, *version;
};

static int scope_match(const void *obj, const void *key)
{
	const struct dbi_scope *s = obj;
	const struct scope_key *k = key;
	return strcmp(s->name, k->name) == 0 && strcmp(s->version, k->version) == 0;
}

uint32_t dbi_scope_intern(struct dbi_registry *reg, const char *name, const char *version)
{
	struct scope_key key = {name ? name : "", version ? version : ""};
	struct table *t = &reg->t[OBJ_SCOPE];
	uint64_t hash = dbi_hash64(key.version, strlen(key.version), dbi_hash64(key.name, strlen(key.name), 0x5c));
	struct dbi_scope *s = lookup(t, hash, scope_match, &key);
	if (s)
		return s->id;
	size_t ln = strlen(key.name) + 1, lv = strlen(key.version) + 1;
	s = malloc(sizeof(*s) + ln + lv);
	if (!s)
		return 0;
	char *p = (char *)(s + 1);
	memcpy(p, key.name, ln);
	memcpy(p + ln, key.version, lv);
	s->name = p;
	s->version = p + ln;
	s->hash = hash;
	s->id = 0;
	s = insert(reg, t, hash, scope_match, &key, s, &s->id, sizeof(*s) + ln + lv);
	return s ? s->id : 0;
}

const struct dbi_scope *dbi_scope_get(const struct dbi_registry *reg, uint32_t id)
{
	return get_obj(&reg->t[OBJ_SCOPE], id);
}

/* ---- series ---- */

struct series_key {
	uint32_t metric, resource, scope, attrs;
};

/* The index's hash: of the four ids (the routing hash, of content, is made on insert). */
static inline uint32_t series_key_hash(const struct series_key *k)
{
	uint64_t a = ((uint64_t)k->metric << 32) | k->resource, b = ((uint64_t)k->scope << 32) | k->attrs;
	return (uint32_t)(dbi_mix64(a * 0x9e3779b97f4a7c15ULL ^ b) >> 32);
}

static inline const struct dbi_series *series_at(const struct table *t, uint32_t id)
{
	return idtab_get(&t->ids, id, sizeof(struct dbi_series));
}

/*
 * The id of an interned series equal to key, or 0 (which the caller re-checks under the
 * mutex). No RCU: nothing a lookup can reach is ever freed before the registry.
 */
static uint32_t series_lookup(struct table *t, uint32_t h, const struct series_key *key)
{
	uint32_t id = 0;
	const struct sindex *ix = atomic_load_explicit(&t->ix, memory_order_acquire);
	for (uint32_t mask = ix->mask, i = h & mask;; i = (i + 1) & mask) {
		uint32_t cand = atomic_load_explicit(&ix->slot[i], memory_order_acquire);
		if (!cand)
			break;
		const struct dbi_series *e = series_at(t, cand);
		if (e && e->metric == key->metric && e->resource == key->resource && e->scope == key->scope &&
		    e->attrs == key->attrs) {
			id = cand;
			break;
		}
	}
	return id;
}

/* Caller holds the mutex: id goes into the first free slot of its probe run. */
static void sindex_put(const struct table *t, struct sindex *ix, uint32_t id)
{
	const struct dbi_series *e = series_at(t, id);
	struct series_key k = {e->metric, e->resource, e->scope, e->attrs};
	uint32_t i = series_key_hash(&k) & ix->mask;
	while (atomic_load_explicit(&ix->slot[i], memory_order_relaxed))
		i = (i + 1) & ix->mask;
	atomic_store_explicit(&ix->slot[i], id, memory_order_release);
}

/*
 * Caller holds the mutex; ids 1..n are in the index, n + 1 is about to be. Past 70 % the
 * index doubles: the new one is filled before it is published, the old one retired.
 */
static int sindex_reserve(struct dbi_registry *reg, struct table *t, uint32_t n)
{
	struct sindex *old = atomic_load_explicit(&t->ix, memory_order_relaxed), *ix;
	uint64_t slots = (uint64_t)old->mask + 1;

	if ((uint64_t)(n + 1) * 10 <= slots * 7)
		return DBI_OK;
	if (t->nretired == SINDEX_MAX_RETIRED || slots * 2 > UINT32_MAX)
		return DBI_ERR;
	ix = sindex_new(reg, (uint32_t)(slots * 2));
	if (!ix)
		return DBI_ERR;
	for (uint32_t id = 1; id <= n; id++)
		sindex_put(t, ix, id);
	atomic_store_explicit(&t->ix, ix, memory_order_release);
	/*
	 * Lookups may still be probing the old index: its pages go back to the kernel and read
	 * as zeros (a miss, re-checked under the mutex); the mapping stays until destroy.
	 */
	t->retired[t->nretired] = old;
	t->retired_bytes[t->nretired++] = old->bytes;
	atomic_fetch_sub_explicit(&reg->bytes, old->bytes, memory_order_relaxed);
	madvise(old, old->bytes, MADV_DONTNEED);
	return DBI_OK;
}

/*
 * Insert a series unless an equal one appeared meanwhile, under the table mutex. Returns
 * its id (ours or the winner's), or 0 at the series limit or on allocation failure; a slot
 * is reserved only when the series will be published.
 */
static uint32_t series_insert(struct dbi_registry *reg, uint32_t h, const struct series_key *key, uint64_t route)
{
	struct table *t = &reg->t[OBJ_SERIES];
	struct dbi_series *e;
	uint32_t id, n;
	pthread_mutex_lock(&t->lock);
	id = series_lookup(t, h, key);
	if (id)
		goto out;
	/* exact under the mutex: the check before it lets racing inserts through */
	n = atomic_load_explicit(&t->ids.count, memory_order_relaxed);
	if (n >= reg->max_series) {
		atomic_fetch_add_explicit(&reg->limit_hits, 1, memory_order_relaxed);
		goto out;
	}
	if (sindex_reserve(reg, t, n) != DBI_OK)
		goto out;
	e = idtab_reserve(reg, &t->ids, sizeof(*e), &id);
	if (!e) {
		id = 0;
		goto out;
	}
	e->metric = key->metric;
	e->resource = key->resource;
	e->scope = key->scope;
	e->attrs = key->attrs;
	e->hash = route;
	/* by id before by content: an id found by content always resolves */
	idtab_publish(&t->ids, id);
	sindex_put(t, atomic_load_explicit(&t->ix, memory_order_relaxed), id);
out:
	pthread_mutex_unlock(&t->lock);
	return id;
}

uint32_t dbi_series_intern(struct dbi_registry *reg, uint32_t metric, uint32_t resource, uint32_t scope, uint32_t attrs)
{
	struct series_key key = {metric, resource, scope, attrs};
	struct table *t = &reg->t[OBJ_SERIES];
	uint32_t h = series_key_hash(&key);
	uint32_t id = series_lookup(t, h, &key);
	if (id)
		return id;
	const struct dbi_metric *m = dbi_metric_get(reg, metric);
	const struct dbi_attrset *r = dbi_attrs_get(reg, resource);
	const struct dbi_attrset *a = dbi_attrs_get(reg, attrs);
	const struct dbi_scope *sc = dbi_scope_get(reg, scope);
	if (!m || !r || !a || !sc)
		return 0;
	if (atomic_load_explicit(&t->ids.count, memory_order_relaxed) >= reg->max_series) {
		atomic_fetch_add_explicit(&reg->limit_hits, 1, memory_order_relaxed);
		return 0;
	}
	/* Content hash, not id hash: routing must not depend on interning order. */
	uint64_t parts[4] = {m->hash, r->hash, sc->hash, a->hash};
	return series_insert(reg, h, &key, dbi_hash64(parts, sizeof(parts), 0x5e));
}

/* count (acquire) was stored after the entry was complete: its fields can be read */
const struct dbi_series *dbi_series_get(const struct dbi_registry *reg, uint32_t id)
{
	return series_at(&reg->t[OBJ_SERIES], id);
}

int dbi_registry_series_full(const struct dbi_registry *reg)
{
	return atomic_load_explicit(&reg->t[OBJ_SERIES].ids.count, memory_order_relaxed) >= reg->max_series;
}

uint32_t dbi_series_max_id(const struct dbi_registry *reg)
{
	return atomic_load_explicit(&reg->t[OBJ_SERIES].ids.count, memory_order_acquire);
}

void dbi_registry_get_stats(const struct dbi_registry *reg, struct dbi_registry_stats *out)
{
	out->metrics = atomic_load(&reg->t[OBJ_METRIC].ids.count);
	out->attrsets = atomic_load(&reg->t[OBJ_ATTRS].ids.count);
	out->scopes = atomic_load(&reg->t[OBJ_SCOPE].ids.count);
	out->series = atomic_load(&reg->t[OBJ_SERIES].ids.count);
	out->series_limit_hits = atomic_load(&reg->limit_hits);
	out->bytes = atomic_load(&reg->bytes);
}
