/*
 * fingerprint.c — query fingerprints (libpg_query), literal-free text, and the bounded
 * queryid → fingerprint cache. See include/dbi/fingerprint.h.
 *
 * libpg_query does the real work when the text parses. Its normalizer replaces A_Const
 * nodes only, so a constant the grammar keeps as a plain string (a COPY file name) or a
 * comment (sqlcommenter tags, "/ * user=... * /") would survive; every normalized text
 * therefore goes through our scrubber too, which drops comments and string literals. For
 * text the parser rejects, the scrubber alone produces the text and the fingerprint.
 */
#include "dbi/fingerprint.h"

#include <pg_query.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

void dbi_qfp_hex(uint64_t fp, char out[DBI_QFP_HEX_SIZE])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--) {
		out[i] = digits[fp & 0xf];
		fp >>= 4;
	}
	out[16] = '\0';
}

/* ---- the scrubber: a small PostgreSQL lexer ---- */

struct scrub {
	const char *in;
	size_t len, i;
	char *out;
	size_t cap, o;
	bool trunc;
	bool numbers;
	bool counting;      /* first pass: only find the highest $n */
	unsigned max_param; /* highest $n seen outside literals */
	unsigned next_param;
	uint64_t h;
	bool h_space; /* last hashed byte was a collapsed space */
};

static bool is_ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_ident_char(unsigned char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void hash_byte(struct scrub *s, unsigned char c)
{
	s->h = (s->h ^ c) * FNV_PRIME;
}

static void put_byte(struct scrub *s, char c)
{
	if (s->counting || !s->out)
		return;
	if (s->o + 1 < s->cap)
		s->out[s->o++] = c;
	else
		s->trunc = true;
}

/* Copy n input bytes verbatim; fold ASCII case in the hash when fold. */
static void copy_bytes(struct scrub *s, const char *p, size_t n, bool fold)
{
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)p[k];
		put_byte(s, (char)c);
		if (!s->counting) {
			hash_byte(s, (fold && c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c);
			s->h_space = false;
		}
	}
}

static void put_space(struct scrub *s, const char *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		put_byte(s, p[k]);
	if (!s->counting && !s->h_space) {
		hash_byte(s, ' ');
		s->h_space = true;
	}
}

static void put_param(struct scrub *s)
{
	char buf[16];
	unsigned v = s->next_param++;
	int n = 0;
	char tmp[12];
	int t = 0;

	if (s->counting)
		return;
	buf[n++] = '$';
	do {
		tmp[t++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && t < (int)sizeof(tmp));
	while (t)
		buf[n++] = tmp[--t];
	copy_bytes(s, buf, (size_t)n, false);
}

/* '...' from s->i (at the quote); backslash escapes when esc. Ends past the closing quote. */
static void skip_quoted(struct scrub *s, bool esc)
{
	size_t i = s->i + 1;
	while (i < s->len) {
		char c = s->in[i];
		if (esc && c == '\\') {
			i += 2;
			continue;
		}
		if (c == '\'') {
			if (i + 1 < s->len && s->in[i + 1] == '\'') {
				i += 2;
				continue;
			}
			i++;
			s->i = i;
			return;
		}
		i++;
	}
	s->i = s->len;
}

/* A dollar-quote opening tag at s->i ("$$" or "$tag$"); returns its length or 0. */
static size_t dollar_tag(const struct scrub *s)
{
	size_t i = s->i + 1;
	if (i < s->len && s->in[i] == '$')
		return 2;
	if (i >= s->len || !is_ident_start((unsigned char)s->in[i]))
		return 0;
	while (i < s->len && is_ident_char((unsigned char)s->in[i]) && s->in[i] != '$')
		i++;
	if (i < s->len && s->in[i] == '$')
		return i + 1 - s->i;
	return 0;
}

static void skip_dollar(struct scrub *s, size_t taglen)
{
	const char *tag = s->in + s->i;
	size_t i = s->i + taglen;
	while (i + taglen <= s->len) {
		if (s->in[i] == '$' && memcmp(s->in + i, tag, taglen) == 0) {
			s->i = i + taglen;
			return;
		}
		i++;
	}
	s->i = s->len;
}

static void skip_block_comment(struct scrub *s)
{
	size_t i = s->i + 2;
	int depth = 1;
	while (i < s->len && depth > 0) {
		if (s->in[i] == '/' && i + 1 < s->len && s->in[i + 1] == '*') {
			depth++;
			i += 2;
		} else if (s->in[i] == '*' && i + 1 < s->len && s->in[i + 1] == '/') {
			depth--;
			i += 2;
		} else {
			i++;
		}
	}
	s->i = i > s->len ? s->len : i;
}

/* A numeric literal at s->i: decimal with fraction/exponent, 0x/0o/0b, underscores. */
static size_t number_len(const struct scrub *s)
{
	const char *p = s->in;
	size_t i = s->i, n = s->len;
	if (p[i] == '0' && i + 1 < n && strchr("xXoObB", p[i + 1]) && i + 2 < n) {
		i += 2;
		while (i < n && (is_digit((unsigned char)p[i]) || (p[i] >= 'a' && p[i] <= 'f') ||
		                 (p[i] >= 'A' && p[i] <= 'F') || p[i] == '_'))
			i++;
		return i - s->i;
	}
	while (i < n && (is_digit((unsigned char)p[i]) || p[i] == '_'))
		i++;
	if (i < n && p[i] == '.' && !(i + 1 < n && p[i + 1] == '.')) {
		i++;
		while (i < n && (is_digit((unsigned char)p[i]) || p[i] == '_'))
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		size_t j = i + 1;
		if (j < n && (p[j] == '+' || p[j] == '-'))
			j++;
		if (j < n && is_digit((unsigned char)p[j])) {
			while (j < n && is_digit((unsigned char)p[j]))
				j++;
			i = j;
		}
	}
	return i - s->i;
}

static void scrub_pass(struct scrub *s)
{
	s->i = 0;
	while (s->i < s->len) {
		unsigned char c = (unsigned char)s->in[s->i];
		unsigned char c1 = s->i + 1 < s->len ? (unsigned char)s->in[s->i + 1] : 0;
		size_t start = s->i;

		if (is_space(c)) {
			while (s->i < s->len && is_space((unsigned char)s->in[s->i]))
				s->i++;
			put_space(s, s->in + start, s->i - start);
		} else if (c == '-' && c1 == '-') {
			while (s->i < s->len && s->in[s->i] != '\n')
				s->i++;
			put_space(s, " ", 1);
		} else if (c == '/' && c1 == '*') {
			skip_block_comment(s);
			put_space(s, " ", 1);
		} else if (c == '\'') {
			skip_quoted(s, false);
			put_param(s);
		} else if (c == '"') {
			size_t i = s->i + 1;
			while (i < s->len) {
				if (s->in[i] == '"') {
					if (i + 1 < s->len && s->in[i + 1] == '"') {
						i += 2;
						continue;
					}
					i++;
					break;
				}
				i++;
			}
			s->i = i > s->len ? s->len : i;
			copy_bytes(s, s->in + start, s->i - start, false);
		} else if (is_ident_start(c)) {
			while (s->i < s->len && is_ident_char((unsigned char)s->in[s->i]))
				s->i++;
			size_t wl = s->i - start;
			unsigned char nx = s->i < s->len ? (unsigned char)s->in[s->i] : 0;
			unsigned char l = (unsigned char)(c | 0x20);
			if (wl == 1 && nx == '\'' && (l == 'e' || l == 'b' || l == 'x' || l == 'n')) {
				skip_quoted(s, l == 'e');
				put_param(s);
			} else if (wl == 1 && l == 'u' && nx == '&' && s->i + 1 < s->len && s->in[s->i + 1] == '\'') {
				s->i++;
				skip_quoted(s, false);
				put_param(s);
			} else {
				copy_bytes(s, s->in + start, wl, true);
			}
		} else if (c == '$') {
			if (is_digit(c1)) {
				unsigned v = 0;
				s->i++;
				while (s->i < s->len && is_digit((unsigned char)s->in[s->i])) {
					if (v < 100000000)
						v = v * 10 + (unsigned)(s->in[s->i] - '0');
					s->i++;
				}
				if (v > s->max_param)
					s->max_param = v;
				copy_bytes(s, s->in + start, s->i - start, false);
			} else {
				size_t tl = dollar_tag(s);
				if (tl) {
					skip_dollar(s, tl);
					put_param(s);
				} else {
					s->i++;
					copy_bytes(s, "$", 1, false);
				}
			}
		} else if (is_digit(c) || (c == '.' && is_digit(c1))) {
			size_t nl = number_len(s);
			if (nl == 0)
				nl = 1;
			s->i += nl;
			if (s->numbers)
				put_param(s);
			else
				copy_bytes(s, s->in + start, nl, false);
		} else {
			s->i++;
			copy_bytes(s, s->in + start, 1, false);
		}
	}
}

/* Back o off so out[0..o) does not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *out, size_t o)
{
	size_t k = o;
	int back = 0;
	while (k > 0 && back < 4) {
		unsigned char c = (unsigned char)out[k - 1];
		if ((c & 0xc0) != 0x80) {
			size_t need = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
			return (o - (k - 1) >= need) ? o : k - 1;
		}
		k--;
		back++;
	}
	return o;
}

size_t dbi_qfp_scrub(const char *in, size_t len, bool numbers, char *out, size_t cap, uint64_t *hash, bool *truncated)
{
	struct scrub s = {.in = in, .len = len, .numbers = numbers, .counting = true};

	scrub_pass(&s);
	s.counting = false;
	s.next_param = s.max_param + 1;
	s.out = cap ? out : NULL;
	s.cap = cap;
	s.h = FNV_OFFSET;
	s.h_space = true; /* leading whitespace does not count */
	scrub_pass(&s);
	if (s.trunc)
		s.o = utf8_cut(out, s.o);
	if (cap)
		out[s.o] = '\0';
	if (hash)
		*hash = dbi_mix64(s.h);
	if (truncated)
		*truncated = s.trunc;
	return s.o;
}

int dbi_qfp_compute(const char *text, struct dbi_qfp *out, char *norm, size_t normcap, bool *truncated)
{
	PgQueryFingerprintResult fr;
	uint64_t h;

	if (!text || !out)
		return DBI_ERR;
	if (truncated)
		*truncated = false;
	fr = pg_query_fingerprint(text);
	if (!fr.error) {
		out->fp = fr.fingerprint;
		out->source = DBI_QFP_PARSED;
		pg_query_free_fingerprint_result(fr);
		if (norm && normcap) {
			PgQueryNormalizeResult nr = pg_query_normalize(text);
			if (!nr.error && nr.normalized_query)
				dbi_qfp_scrub(nr.normalized_query, strlen(nr.normalized_query), false, norm, normcap,
				              NULL, truncated);
			else
				dbi_qfp_scrub(text, strlen(text), true, norm, normcap, NULL, truncated);
			pg_query_free_normalize_result(nr);
		}
		return DBI_OK;
	}
	pg_query_free_fingerprint_result(fr);
	dbi_qfp_scrub(text, strlen(text), true, norm, norm ? normcap : 0, &h, truncated);
	out->fp = h;
	out->source = DBI_QFP_FALLBACK;
	return DBI_OK;
}

/* ---- the cache: fixed-capacity LRU over 128-bit keys ---- */

enum { KIND_QUERYID = 1, KIND_SAMPLED = 2 };

struct qfp_slot {
	uint64_t key;   /* queryid or fingerprint */
	uint64_t value; /* fingerprint */
	uint32_t tag;
	uint32_t hnext; /* bucket chain */
	uint32_t prev, next;
	uint8_t kind; /* 0 = free */
	uint8_t source;
	uint8_t pad[6];
};

struct dbi_qfp_cache {
	struct qfp_slot *slots; /* [1..cap]; 0 is the list head sentinel */
	uint32_t *buckets;
	uint32_t cap, used, nbuckets;
	uint32_t free_head; /* chain of freed slots through hnext */
	uint32_t fresh;     /* slots [fresh..cap] were never used: taken in order, so pages untouched until needed */
	struct dbi_qfp_cache_stats st;
};

static uint32_t slot_bucket(const struct dbi_qfp_cache *c, uint8_t kind, uint32_t tag, uint64_t key)
{
	uint64_t h = dbi_mix64(key ^ ((uint64_t)tag << 32) ^ ((uint64_t)kind << 62));
	return (uint32_t)(h & (c->nbuckets - 1));
}

struct dbi_qfp_cache *dbi_qfp_cache_create(size_t max_bytes)
{
	struct dbi_qfp_cache *c = calloc(1, sizeof(*c));
	size_t per = sizeof(struct qfp_slot) + 2 * sizeof(uint32_t);
	size_t cap = max_bytes / per;
	uint32_t nb = 1;

	if (!c)
		return NULL;
	if (cap < 256)
		cap = 256;
	if (cap > (1u << 30))
		cap = 1u << 30;
	while (nb < cap)
		nb <<= 1;
	c->cap = (uint32_t)cap;
	c->nbuckets = nb;
	c->slots = calloc(cap + 1, sizeof(*c->slots));
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->slots || !c->buckets) {
		dbi_qfp_cache_release(c);
		return NULL;
	}
	c->free_head = 0;
	c->fresh = 1;
	c->slots[0].prev = c->slots[0].next = 0;
	c->st.capacity = c->cap;
	c->st.bytes = sizeof(*c) + (cap + 1) * sizeof(*c->slots) + nb * sizeof(*c->buckets);
	return c;
}

void dbi_qfp_cache_release(struct dbi_qfp_cache *c)
{
	if (!c)
		return;
	free(c->slots);
	free(c->buckets);
	free(c);
}

static void lru_unlink(struct dbi_qfp_cache *c, uint32_t i)
{
	struct qfp_slot *s = &c->slots[i];
	c->slots[s->prev].next = s->next;
	c->slots[s->next].prev = s->prev;
}

static void lru_push_front(struct dbi_qfp_cache *c, uint32_t i)
{
	struct qfp_slot *s = &c->slots[i];
	s->prev = 0;
	s->next = c->slots[0].next;
	c->slots[s->next].prev = i;
	c->slots[0].next = i;
}

static uint32_t slot_find(struct dbi_qfp_cache *c, uint8_t kind, uint32_t tag, uint64_t key)
{
	uint32_t i = c->buckets[slot_bucket(c, kind, tag, key)];
	while (i) {
		const struct qfp_slot *s = &c->slots[i];
		if (s->kind == kind && s->tag == tag && s->key == key)
			return i;
		i = s->hnext;
	}
	return 0;
}

static void slot_remove(struct dbi_qfp_cache *c, uint32_t i)
{
	struct qfp_slot *s = &c->slots[i];
	uint32_t *pp = &c->buckets[slot_bucket(c, s->kind, s->tag, s->key)];
	while (*pp && *pp != i)
		pp = &c->slots[*pp].hnext;
	if (*pp == i)
		*pp = s->hnext;
	lru_unlink(c, i);
	memset(s, 0, sizeof(*s));
	s->hnext = c->free_head;
	c->free_head = i;
	c->used--;
}

static uint32_t slot_insert(struct dbi_qfp_cache *c, uint8_t kind, uint32_t tag, uint64_t key)
{
	uint32_t i, b;
	if (!c->free_head && c->fresh <= c->cap) {
		i = c->fresh++;
	} else {
		if (!c->free_head) {
			slot_remove(c, c->slots[0].prev); /* least recently used */
			c->st.evictions++;
		}
		i = c->free_head;
		c->free_head = c->slots[i].hnext;
	}
	struct qfp_slot *s = &c->slots[i];
	s->kind = kind;
	s->tag = tag;
	s->key = key;
	b = slot_bucket(c, kind, tag, key);
	s->hnext = c->buckets[b];
	c->buckets[b] = i;
	lru_push_front(c, i);
	c->used++;
	return i;
}

bool dbi_qfp_cache_get(struct dbi_qfp_cache *c, uint32_t tag, int64_t queryid, struct dbi_qfp *out)
{
	uint32_t i = slot_find(c, KIND_QUERYID, tag, (uint64_t)queryid);
	if (!i) {
		c->st.misses++;
		return false;
	}
	lru_unlink(c, i);
	lru_push_front(c, i);
	c->st.hits++;
	if (out) {
		out->fp = c->slots[i].value;
		out->source = c->slots[i].source;
	}
	return true;
}

void dbi_qfp_cache_put(struct dbi_qfp_cache *c, uint32_t tag, int64_t queryid, const struct dbi_qfp *fp)
{
	uint32_t i = slot_find(c, KIND_QUERYID, tag, (uint64_t)queryid);
	if (i) {
		lru_unlink(c, i);
		lru_push_front(c, i);
	} else {
		i = slot_insert(c, KIND_QUERYID, tag, (uint64_t)queryid);
	}
	c->slots[i].value = fp->fp;
	c->slots[i].source = fp->source;
}

bool dbi_qfp_cache_sampled(struct dbi_qfp_cache *c, uint32_t tag, uint64_t fp)
{
	uint32_t i = slot_find(c, KIND_SAMPLED, tag, fp);
	if (!i)
		return false;
	lru_unlink(c, i);
	lru_push_front(c, i);
	return true;
}

void dbi_qfp_cache_mark_sampled(struct dbi_qfp_cache *c, uint32_t tag, uint64_t fp)
{
	if (!dbi_qfp_cache_sampled(c, tag, fp))
		slot_insert(c, KIND_SAMPLED, tag, fp);
}

void dbi_qfp_cache_forget(struct dbi_qfp_cache *c, uint32_t tag)
{
	for (uint32_t i = 1; i < c->fresh; i++)
		if (c->slots[i].kind && c->slots[i].tag == tag)
			slot_remove(c, i);
}

void dbi_qfp_cache_get_stats(const struct dbi_qfp_cache *c, struct dbi_qfp_cache_stats *out)
{
	*out = c->st;
	out->used = c->used;
}
