/*
 * prom_name.c — OpenTelemetry → Prometheus naming, per the OpenTelemetry specification
 * ("Prometheus and OpenMetrics Compatibility", OTLP → Prometheus) and the OpenTelemetry
 * Collector's translator, so a dashboard built on otelcol's prometheus exporter works
 * unchanged:
 *
 *   metric name   invalid characters → '_', runs of '_' collapsed, leading and trailing
 *                 '_' dropped; the unit as words (By → bytes, ms → milliseconds,
 *                 By/s → bytes_per_second, {packet} dropped) unless the name already has
 *                 them; "ratio" for gauges with unit "1" (the Collector does this for
 *                 gauges only: a counter of unit 1 is a count, not a ratio); "_total" on
 *                 counters; the namespace in front.
 *   labels        job = service.namespace/service.name, instance = service.instance.id,
 *                 otel_scope_name/otel_scope_version, const_labels, then the point's
 *                 attributes and, with resource_to_telemetry_conversion, the resource's.
 *                 Keys are sanitised like names (a leading digit gets '_'); keys that
 *                 collide after sanitising are merged, values joined with ';' in the
 *                 order of the original keys (spec). An attribute that would shadow a
 *                 label the exporter sets (job, instance, scope, const labels, le,
 *                 quantile) is renamed exported_<key>, as Prometheus itself does; a
 *                 resource attribute loses to a point attribute of the same name.
 *
 * All of this runs once per new series (the result is cached), never per point.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opentelemetry/proto/common/v1/common.pb-c.h"

#include "dbi/otlp_pb.h"
#include "prom_int.h"

/* ---- units ---- */

struct unit_word {
	const char *ucum;
	const char *word;
};

static const struct unit_word main_units[] = {
        {"d", "days"},          {"h", "hours"},
        {"min", "minutes"},     {"s", "seconds"},
        {"ms", "milliseconds"}, {"us", "microseconds"},
        {"ns", "nanoseconds"},  {"By", "bytes"},
        {"KiBy", "kibibytes"},  {"MiBy", "mebibytes"},
        {"GiBy", "gibibytes"},  {"TiBy", "tibibytes"},
        {"KBy", "kilobytes"},   {"MBy", "megabytes"},
        {"GBy", "gigabytes"},   {"TBy", "terabytes"},
        {"m", "meters"},        {"V", "volts"},
        {"A", "amperes"},       {"J", "joules"},
        {"W", "watts"},         {"g", "grams"},
        {"Cel", "celsius"},     {"Hz", "hertz"},
        {"%", "percent"},       {"1", ""},
        {NULL, NULL},
};

static const struct unit_word per_units[] = {
        {"s", "second"}, {"m", "minute"}, {"h", "hour"}, {"d", "day"},
        {"w", "week"},   {"mo", "month"}, {"y", "year"}, {NULL, NULL},
};

static void unit_part(const char *s, size_t n, const struct unit_word *map, char *out, size_t cap)
{
	size_t o = 0;
	for (const struct unit_word *u = map; u->ucum; u++) {
		if (strlen(u->ucum) == n && memcmp(u->ucum, s, n) == 0) {
			dbi_strlcpy(out, u->word, cap);
			return;
		}
	}
	/* not a unit we know: its letters and digits, as the Collector does */
	for (size_t i = 0; i < n && o + 1 < cap; i++)
		if (isalnum((unsigned char)s[i]))
			out[o++] = s[i];
	out[o] = '\0';
}

/* Split a UCUM unit into main and per words; annotations ({...}) and blanks dropped. */
static void unit_split(const char *unit, char *mainw, char *perw, size_t cap)
{
	char u[128] = {0};
	size_t n = 0;
	int depth = 0;
	for (const char *c = unit ? unit : ""; *c && n + 1 < sizeof(u); c++) {
		if (*c == '{')
			depth++;
		else if (*c == '}')
			depth -= depth > 0;
		else if (!depth && !isspace((unsigned char)*c))
			u[n++] = *c;
	}
	u[n] = '\0';
	const char *slash = strchr(u, '/');
	size_t mlen = slash ? (size_t)(slash - u) : n;
	unit_part(u, mlen, main_units, mainw, cap);
	if (slash)
		unit_part(slash + 1, strlen(slash + 1), per_units, perw, cap);
	else
		perw[0] = '\0';
	/* "1/s" style: a per word on its own is fine; a per word naming nothing known stays */
	if (slash && !perw[0])
		unit_part(slash + 1, strlen(slash + 1), main_units, perw, cap);
}

static bool unit_is_one(const char *unit)
{
	if (!unit)
		return false;
	while (isspace((unsigned char)*unit))
		unit++;
	if (*unit != '1')
		return false;
	unit++;
	while (isspace((unsigned char)*unit))
		unit++;
	return *unit == '\0';
}

void prom_unit_words(const char *unit, char *out, size_t cap)
{
	char mainw[64], perw[64];
	unit_split(unit, mainw, perw, sizeof(mainw));
	if (perw[0])
		snprintf(out, cap, "%s%sper_%s", mainw, mainw[0] ? "_" : "", perw);
	else
		snprintf(out, cap, "%s", mainw);
}

/* ---- metric names ---- */

static bool has_token(const char *name, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = name; *p;) {
		const char *e = p;
		while (*e && *e != '_' && *e != ':')
			e++;
		if ((size_t)(e - p) == wl && memcmp(p, word, wl) == 0)
			return true;
		p = *e ? e + 1 : e;
	}
	return false;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static void append(char *dst, size_t cap, const char *a, const char *b)
{
	size_t n = strlen(dst);
	if (n < cap)
		snprintf(dst + n, cap - n, "%s%s", a, b);
}

int prom_family_names(const char *ns, const char *name, const char *unit, int type, bool suffixes, char *text, char *om,
                      char *om_unit)
{
	char base[PROM_NAME_MAX], mainw[64], perw[64], uword[160];
	size_t n = dbi_prom_sanitize(name, strlen(name), base, sizeof(base), true);
	size_t s = 0;
	while (s < n && base[s] == '_')
		s++;
	while (n > s && base[n - 1] == '_')
		n--;
	if (n == s)
		return DBI_ERR;
	memmove(base, base + s, n - s);
	base[n - s] = '\0';

	unit_split(unit, mainw, perw, sizeof(mainw));
	bool ratio = type == PT_GAUGE && unit_is_one(unit);
	if (ratio)
		snprintf(uword, sizeof(uword), "ratio");
	else
		prom_unit_words(unit, uword, sizeof(uword));
	if (suffixes) {
		if (mainw[0] && !has_token(base, mainw))
			append(base, sizeof(base), "_", mainw);
		if (perw[0] && !(has_token(base, "per") && has_token(base, perw)))
			append(base, sizeof(base), "_per_", perw);
		if (ratio && !has_token(base, "ratio"))
			append(base, sizeof(base), "_", "ratio");
		if (type == PT_COUNTER && !ends_with(base, "_total"))
			append(base, sizeof(base), "_", "total");
	}
	if (ns && ns[0])
		snprintf(text, PROM_NAME_MAX, "%s_%s", ns, base);
	else
		snprintf(text, PROM_NAME_MAX, "%s%s", isdigit((unsigned char)base[0]) ? "_" : "", base);

	dbi_strlcpy(om, text, PROM_NAME_MAX);
	size_t ol = strlen(om);
	if (type == PT_COUNTER && ol > 6 && ends_with(om, "_total"))
		om[ol - 6] = '\0';
	om_unit[0] = '\0';
	if (uword[0]) {
		char tail[168];
		snprintf(tail, sizeof(tail), "_%s", uword);
		if (ends_with(om, tail))
			dbi_strlcpy(om_unit, uword, 160);
	}
	return DBI_OK;
}

/* ---- attribute values as label text ---- */

static void base64(struct dbi_tbuf *b, const uint8_t *s, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		dbi_tbuf_putc(b, tab[(v >> 18) & 63]);
		dbi_tbuf_putc(b, tab[(v >> 12) & 63]);
		dbi_tbuf_putc(b, i + 1 < n ? tab[(v >> 6) & 63] : '=');
		dbi_tbuf_putc(b, i + 2 < n ? tab[v & 63] : '=');
	}
}

static void json_str(struct dbi_tbuf *b, const char *s, size_t n)
{
	dbi_tbuf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			dbi_tbuf_putc(b, '\\');
			dbi_tbuf_putc(b, (char)c);
		} else if (c < 0x20) {
			char u[8];
			snprintf(u, sizeof(u), "\\u%04x", c);
			dbi_tbuf_puts(b, u);
		} else {
			dbi_tbuf_putc(b, (char)c);
		}
	}
	dbi_tbuf_putc(b, '"');
}

/* AnyValue as JSON (arrays and maps), the attribute spec's string form of non-primitives. */
static void any_json(struct dbi_tbuf *b, const Opentelemetry__Proto__Common__V1__AnyValue *v, bool top)
{
	char num[DBI_PROM_NUM_MAX];
	if (!v) {
		dbi_tbuf_puts(b, "null");
		return;
	}
	switch (v->value_case) {
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
		if (top)
			dbi_tbuf_puts(b, v->string_value ? v->string_value : "");
		else
			json_str(b, v->string_value ? v->string_value : "",
			         v->string_value ? strlen(v->string_value) : 0);
		return;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
		dbi_tbuf_puts(b, v->bool_value ? "true" : "false");
		return;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
		dbi_tbuf_put(b, num, dbi_prom_fmt_int(v->int_value, num));
		return;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
		dbi_tbuf_put(b, num, dbi_prom_fmt_double(v->double_value, num));
		return;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
		if (!top)
			dbi_tbuf_putc(b, '"');
		base64(b, v->bytes_value.data, v->bytes_value.len);
		if (!top)
			dbi_tbuf_putc(b, '"');
		return;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
		dbi_tbuf_putc(b, '[');
		for (size_t i = 0; v->array_value && i < v->array_value->n_values; i++) {
			if (i)
				dbi_tbuf_putc(b, ',');
			any_json(b, v->array_value->values[i], false);
		}
		dbi_tbuf_putc(b, ']');
		return;
	case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
		dbi_tbuf_putc(b, '{');
		for (size_t i = 0; v->kvlist_value && i < v->kvlist_value->n_values; i++) {
			const Opentelemetry__Proto__Common__V1__KeyValue *kv = v->kvlist_value->values[i];
			if (i)
				dbi_tbuf_putc(b, ',');
			const char *k = kv && kv->key ? kv->key : "";
			json_str(b, k, strlen(k));
			dbi_tbuf_putc(b, ':');
			any_json(b, kv ? kv->value : NULL, false);
		}
		dbi_tbuf_putc(b, '}');
		return;
	default:
		if (!top)
			dbi_tbuf_puts(b, "null");
		return;
	}
}

void prom_attr_value(struct dbi_tbuf *b, const struct dbi_attr *a)
{
	char num[DBI_PROM_NUM_MAX];
	switch (a->type) {
	case DBI_AT_STR:
		dbi_tbuf_put(b, a->v.s, a->vlen);
		break;
	case DBI_AT_INT:
		dbi_tbuf_put(b, num, dbi_prom_fmt_int(a->v.i, num));
		break;
	case DBI_AT_DOUBLE:
		dbi_tbuf_put(b, num, dbi_prom_fmt_double(a->v.d, num));
		break;
	case DBI_AT_BOOL:
		dbi_tbuf_puts(b, a->v.b ? "true" : "false");
		break;
	case DBI_AT_BYTES:
		base64(b, (const uint8_t *)a->v.s, a->vlen);
		break;
	case DBI_AT_ANYPB: {
		ProtobufCMessage *m = NULL;
		if (dbi_otlp_pb_unpack(&opentelemetry__proto__common__v1__any_value__descriptor,
		                       (const uint8_t *)a->v.s, a->vlen, &m, NULL) == DBI_OK) {
			any_json(b, (const Opentelemetry__Proto__Common__V1__AnyValue *)m, true);
			protobuf_c_message_free_unpacked(m, NULL);
		}
		break;
	}
	default:
		break;
	}
}

/* ---- label sets ---- */

struct plabel {
	uint32_t noff, nlen; /* name in lb->names */
	uint32_t voff, vlen; /* value in lb->vals */
	const char *key;     /* original key: the order of merged values */
	uint32_t klen;
	bool dead;
};

struct prom_lbuild {
	struct dbi_tbuf names, vals;
	struct plabel data[DBI_ATTRS_MAX], res[DBI_ATTRS_MAX];
	size_t ndata, nres;
};

int prom_lbuild_init(struct prom *p)
{
	p->lb = calloc(1, sizeof(*p->lb));
	return p->lb ? DBI_OK : DBI_ERR;
}

void prom_lbuild_free(struct prom *p)
{
	if (!p->lb)
		return;
	dbi_tbuf_free(&p->lb->names);
	dbi_tbuf_free(&p->lb->vals);
	free(p->lb);
	p->lb = NULL;
}

static const char *lname(const struct prom_lbuild *lb, const struct plabel *l)
{
	return lb->names.p + l->noff;
}

static int lcmp(const struct prom_lbuild *lb, const struct plabel *a, const struct plabel *b)
{
	int c = memcmp(lname(lb, a), lname(lb, b), DBI_MIN(a->nlen, b->nlen));
	if (c || a->nlen != b->nlen)
		return c ? c : (a->nlen < b->nlen ? -1 : 1);
	c = memcmp(a->key, b->key, DBI_MIN(a->klen, b->klen));
	return c ? c : (a->klen < b->klen ? -1 : a->klen > b->klen);
}

static bool name_is(const struct prom_lbuild *lb, const struct plabel *l, const char *s)
{
	size_t n = strlen(s);
	return l->nlen == n && memcmp(lname(lb, l), s, n) == 0;
}

/* Label names the exporter itself sets on a series; attributes must not shadow them. */
static bool reserved(const struct prom *p, const char *name, size_t n, int type)
{
	static const char *const fixed[] = {"job", "instance", "otel_scope_name", "otel_scope_version"};
	for (size_t i = 0; i < DBI_ARRAY_LEN(fixed); i++)
		if (strlen(fixed[i]) == n && memcmp(fixed[i], name, n) == 0)
			return true;
	if ((type == PT_HISTOGRAM && n == 2 && memcmp(name, "le", 2) == 0) ||
	    (type == PT_SUMMARY && n == 8 && memcmp(name, "quantile", 8) == 0))
		return true;
	for (size_t i = 0; i < p->nconst; i++)
		if (strlen(p->const_names[i]) == n && memcmp(p->const_names[i], name, n) == 0)
			return true;
	return false;
}

/*
 * Convert an attribute set into labels: sanitised names (reserved ones prefixed
 * exported_), sorted by name then original key, colliding names merged with ';'.
 * skip_service drops service.name/namespace/instance.id (target_info: they are job and
 * instance already).
 */
static size_t collect(struct prom *p, const struct dbi_attrset *as, struct plabel *out, int type, bool skip_service)
{
	struct prom_lbuild *lb = p->lb;
	struct dbi_attr_iter it;
	struct dbi_attr a;
	size_t n = 0;
	if (!as)
		return 0;
	dbi_attrs_iter_init(&it, as->enc, as->len);
	while (n < DBI_ATTRS_MAX && dbi_attrs_next(&it, &a)) {
		char nm[PROM_NAME_MAX];
		if (a.klen == 0)
			continue;
		if (skip_service && ((a.klen == 12 && memcmp(a.key, "service.name", 12) == 0) ||
		                     (a.klen == 17 && memcmp(a.key, "service.namespace", 17) == 0) ||
		                     (a.klen == 19 && memcmp(a.key, "service.instance.id", 19) == 0)))
			continue;
		size_t nl = dbi_prom_sanitize(a.key, a.klen, nm, sizeof(nm), false);
		struct plabel *l = &out[n];
		memset(l, 0, sizeof(*l));
		l->noff = (uint32_t)lb->names.len;
		if (reserved(p, nm, nl, type))
			dbi_tbuf_puts(&lb->names, "exported_");
		dbi_tbuf_put(&lb->names, nm, nl);
		l->nlen = (uint32_t)(lb->names.len - l->noff);
		l->voff = (uint32_t)lb->vals.len;
		prom_attr_value(&lb->vals, &a);
		l->vlen = (uint32_t)(lb->vals.len - l->voff);
		l->key = a.key;
		l->klen = a.klen;
		n++;
	}
	/* insertion sort: a handful of labels, and this runs once per series */
	for (size_t i = 1; i < n; i++) {
		struct plabel t = out[i];
		size_t j = i;
		while (j > 0 && lcmp(lb, &out[j - 1], &t) > 0) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = t;
	}
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && out[j].nlen == out[i].nlen &&
		       memcmp(lname(lb, &out[j]), lname(lb, &out[i]), out[i].nlen) == 0)
			j++;
		if (j > i + 1) {
			uint32_t off = (uint32_t)lb->vals.len;
			for (size_t k = i; k < j; k++) {
				if (k > i)
					dbi_tbuf_putc(&lb->vals, ';');
				/* offsets stay valid across growth; pointers would not */
				dbi_tbuf_room(&lb->vals, out[k].vlen);
				if (!lb->vals.oom)
					dbi_tbuf_put(&lb->vals, lb->vals.p + out[k].voff, out[k].vlen);
				if (k > i)
					out[k].dead = true;
			}
			out[i].voff = off;
			out[i].vlen = (uint32_t)(lb->vals.len - off);
		}
		i = j;
	}
	return n;
}

static void put_label(struct dbi_tbuf *b, bool *first, const char *name, size_t nlen, const char *val, size_t vlen)
{
	if (!*first)
		dbi_tbuf_putc(b, ',');
	*first = false;
	dbi_tbuf_put(b, name, nlen);
	dbi_tbuf_put(b, "=\"", 2);
	dbi_tbuf_label_value(b, val, vlen);
	dbi_tbuf_putc(b, '"');
}

/* job and instance of a resource, as label text in lb->vals; offsets returned. */
static void job_instance(struct prom *p, const struct dbi_attrset *res, uint32_t *joff, uint32_t *jlen, uint32_t *ioff,
                         uint32_t *ilen)
{
	struct dbi_tbuf *v = &p->lb->vals;
	struct dbi_attr name, nsp, inst;
	bool has_name = res && dbi_attrs_find(res->enc, res->len, "service.name", &name);
	bool has_ns = res && dbi_attrs_find(res->enc, res->len, "service.namespace", &nsp);
	bool has_inst = res && dbi_attrs_find(res->enc, res->len, "service.instance.id", &inst);
	*joff = (uint32_t)v->len;
	if (has_name) {
		size_t before = v->len;
		if (has_ns) {
			prom_attr_value(v, &nsp);
			if (v->len > before)
				dbi_tbuf_putc(v, '/');
		}
		prom_attr_value(v, &name);
	}
	*jlen = (uint32_t)(v->len - *joff);
	*ioff = (uint32_t)v->len;
	if (has_inst)
		prom_attr_value(v, &inst);
	*ilen = (uint32_t)(v->len - *ioff);
}

int prom_series_labels(struct prom *p, const struct dbi_series *ser, int type)
{
	struct prom_lbuild *lb = p->lb;
	struct dbi_tbuf *out = &p->scratch;
	const struct dbi_attrset *res = dbi_attrs_get(p->reg, ser->resource);
	const struct dbi_scope *sc = dbi_scope_get(p->reg, ser->scope);
	uint32_t joff, jlen, ioff, ilen;
	bool first = true;

	lb->names.len = lb->vals.len = 0;
	out->len = 0;
	job_instance(p, res, &joff, &jlen, &ioff, &ilen);
	lb->ndata = collect(p, dbi_attrs_get(p->reg, ser->attrs), lb->data, type, false);
	lb->nres = p->cfg->resource_to_telemetry ? collect(p, res, lb->res, type, false) : 0;
	if (lb->names.oom || lb->vals.oom)
		return DBI_ERR;

	if (jlen)
		put_label(out, &first, "job", 3, lb->vals.p + joff, jlen);
	if (ilen)
		put_label(out, &first, "instance", 8, lb->vals.p + ioff, ilen);
	if (sc && sc->name && sc->name[0])
		put_label(out, &first, "otel_scope_name", 15, sc->name, strlen(sc->name));
	if (sc && sc->version && sc->version[0])
		put_label(out, &first, "otel_scope_version", 18, sc->version, strlen(sc->version));
	if (p->const_text.len) {
		if (!first)
			dbi_tbuf_putc(out, ',');
		dbi_tbuf_put(out, p->const_text.p, p->const_text.len);
		first = false;
	}
	for (size_t i = 0; i < lb->ndata; i++)
		if (!lb->data[i].dead)
			put_label(out, &first, lname(lb, &lb->data[i]), lb->data[i].nlen, lb->vals.p + lb->data[i].voff,
			          lb->data[i].vlen);
	for (size_t i = 0; i < lb->nres; i++) {
		const struct plabel *r = &lb->res[i];
		bool shadowed = r->dead;
		for (size_t k = 0; k < lb->ndata && !shadowed; k++)
			shadowed = !lb->data[k].dead && lb->data[k].nlen == r->nlen &&
			           memcmp(lname(lb, &lb->data[k]), lname(lb, r), r->nlen) == 0;
		if (!shadowed)
			put_label(out, &first, lname(lb, r), r->nlen, lb->vals.p + r->voff, r->vlen);
	}
	return out->oom ? DBI_ERR : DBI_OK;
}

int prom_resource_labels(struct prom *p, uint32_t resource, uint64_t *key)
{
	struct prom_lbuild *lb = p->lb;
	struct dbi_tbuf *out = &p->scratch;
	const struct dbi_attrset *res = dbi_attrs_get(p->reg, resource);
	uint32_t joff, jlen, ioff, ilen;
	bool first = true;

	lb->names.len = lb->vals.len = 0;
	out->len = 0;
	job_instance(p, res, &joff, &jlen, &ioff, &ilen);
	size_t n = collect(p, res, lb->res, 0, true);
	if (lb->names.oom || lb->vals.oom)
		return DBI_ERR;
	uint64_t h = dbi_hash64(lb->vals.p ? lb->vals.p + joff : "", jlen, 0x6a6f62);
	*key = dbi_hash64(lb->vals.p ? lb->vals.p + ioff : "", ilen, h);
	if (jlen)
		put_label(out, &first, "job", 3, lb->vals.p + joff, jlen);
	if (ilen)
		put_label(out, &first, "instance", 8, lb->vals.p + ioff, ilen);
	for (size_t i = 0; i < n; i++)
		if (!lb->res[i].dead && !name_is(lb, &lb->res[i], "job") && !name_is(lb, &lb->res[i], "instance"))
			put_label(out, &first, lname(lb, &lb->res[i]), lb->res[i].nlen, lb->vals.p + lb->res[i].voff,
			          lb->res[i].vlen);
	return out->oom ? DBI_ERR : DBI_OK;
}
