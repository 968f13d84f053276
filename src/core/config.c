/*
 * config.c — the collector's configuration: the six top-level sections, component
 * instances looked up in the registry, service.pipelines wiring, and the maps of
 * service: and runtime:.
 *
 * Loading is all-or-nothing: every problem found is reported (up to a limit) as
 * "file:line:col: message" so one validate run shows everything to fix, and the
 * caller gets a config only when it is entirely valid — a reload never half-applies.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "dbi/component.h"
#include "dbi/record.h"

/* ---- service: and runtime: maps ---- */

const struct dbi_conf_key dbi_service_keys[] = {
        {.name = "extensions",
         .type = DBI_CT_STRLIST,
         .offset = offsetof(struct dbi_conf_service, extensions),
         .doc = "extensions to start, by id; each must be declared under extensions:"},
        {.name = "shutdown_timeout",
         .type = DBI_CT_DURATION,
         .offset = offsetof(struct dbi_conf_service, shutdown_timeout),
         .def = "10s",
         .doc = "on SIGTERM, how long to drain rings and flush exporters before giving up"},
        {.name = "telemetry.logs.level",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct dbi_conf_service, log_level),
         .def = "info",
         .choices = "debug|info|warn|error",
         .doc = "the collector's own log level"},
        {.name = "telemetry.metrics.address",
         .type = DBI_CT_ENDPOINT,
         .offset = offsetof(struct dbi_conf_service, metrics_address),
         .def = "127.0.0.1:8888",
         .doc = "where the collector serves its own metrics (Prometheus text)"},
        {.name = "telemetry.metrics.level",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct dbi_conf_service, metrics_enabled),
         .def = "normal",
         .choices = "none|basic|normal|detailed",
         .doc = "detail of the collector's own metrics; none turns the endpoint off"},
        DBI_CONF_END,
};

static bool name_char_ok(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

static int check_shm_name(const void *field, char *why, size_t len)
{
	const char *s = *(char *const *)field;

	/* It becomes a file name under /dev/shm: no separators, no . or .. */
	if (!s || !*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || strlen(s) > 200) {
		snprintf(why, len, "'%s' is not a usable shared memory name", s ? s : "");
		return DBI_ERR;
	}
	for (const char *p = s; *p; p++) {
		if (!name_char_ok(*p)) {
			snprintf(why, len, "'%s': shared memory names may only use letters, digits, '_', '.' and '-'",
			         s);
			return DBI_ERR;
		}
	}
	return DBI_OK;
}

#define DBI_MAX_CPU 4095

static int cpu_number(const char **p, long *out)
{
	char *end;

	if (!isdigit((unsigned char)**p))
		return DBI_ERR;
	errno = 0;
	*out = strtol(*p, &end, 10);
	if (errno || *out > DBI_MAX_CPU)
		return DBI_ERR;
	*p = end;
	return DBI_OK;
}

/* taskset's list syntax per item: "3", "0-3", "0-3,8-11". */
static int check_cpus(const void *field, char *why, size_t len)
{
	const struct dbi_strlist *l = field;

	for (size_t i = 0; i < l->n; i++) {
		const char *p = l->v[i];
		for (;;) {
			long lo, hi;
			if (cpu_number(&p, &lo) != DBI_OK)
				goto bad;
			hi = lo;
			if (*p == '-') {
				p++;
				if (cpu_number(&p, &hi) != DBI_OK || hi < lo)
					goto bad;
			}
			if (*p == '\0')
				break;
			if (*p++ != ',')
				goto bad;
		}
		continue;
	bad:
		snprintf(why, len, "invalid CPU list '%s' (e.g. \"0-3\", \"5\" or \"0-3,8\"; CPUs 0 to %d)", l->v[i],
		         DBI_MAX_CPU);
		return DBI_ERR;
	}
	return DBI_OK;
}

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static int check_pow2_int(const void *field, char *why, size_t len)
{
	int64_t v = *(const int64_t *)field;

	if (v > 0 && is_pow2((uint64_t)v))
		return DBI_OK;
	snprintf(why, len, "%lld is not a power of two (rings index with a mask)", (long long)v);
	return DBI_ERR;
}

static int check_pow2_size(const void *field, char *why, size_t len)
{
	uint64_t v = *(const uint64_t *)field;
	char buf[64];

	if (is_pow2(v))
		return DBI_OK;
	dbi_cval_fmt_size(v, buf, sizeof(buf));
	snprintf(why, len, "%s is not a power of two (e.g. 1MiB, 4MiB)", buf);
	return DBI_ERR;
}

const struct dbi_conf_key dbi_runtime_keys[] = {
        {.name = "shm.name",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct dbi_conf_runtime, shm_name),
         .def = "dbi.main",
         .doc = "shared memory segment name (/dev/shm/<name>); dbi-stat attaches by it",
         .check = check_shm_name},
        {.name = "shm.hugepages",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct dbi_conf_runtime, hugepages),
         .def = "auto",
         .choices = "auto|on|off",
         .doc = "huge pages for the segment: auto falls back to normal pages, on fails without them"},
        {.name = "shm.size",
         .type = DBI_CT_SIZE,
         .offset = offsetof(struct dbi_conf_runtime, shm_size),
         .def = "0",
         .doc = "segment size; 0 computes it from rings and threads"},
        {.name = "shm.dir",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct dbi_conf_runtime, shm_dir),
         .def = "",
         .doc = "directory of the segment; empty: /dev/shm (hugetlbfs: /dev/hugepages)"},
        {.name = "threads.scrapers",
         .type = DBI_CT_INT,
         .offset = offsetof(struct dbi_conf_runtime, scrapers),
         .def = "1",
         .min = 1,
         .max = 256,
         .doc = "scraper threads; each drives many PostgreSQL targets asynchronously"},
        {.name = "threads.processors",
         .type = DBI_CT_INT,
         .offset = offsetof(struct dbi_conf_runtime, processors),
         .def = "1",
         .min = 1,
         .max = 64,
         .doc = "processor threads; series are routed to them by hash"},
        {.name = "threads.pin",
         .type = DBI_CT_ENUM,
         .offset = offsetof(struct dbi_conf_runtime, pin),
         .def = "auto",
         .choices = "auto|none",
         .doc = "pin each thread to a CPU (auto) or leave placement to the kernel (none)"},
        {.name = "threads.cpus",
         .type = DBI_CT_STRLIST,
         .offset = offsetof(struct dbi_conf_runtime, cpus),
         .doc = "CPUs to pin to, e.g. [\"0-3\", \"8\"]; empty: every CPU the process may use",
         .check = check_cpus},
        {.name = "rings.points",
         .type = DBI_CT_INT,
         .offset = offsetof(struct dbi_conf_runtime, ring_points),
         .def = "65536",
         .min = 1024,
         .max = 16777216,
         .doc = "slots per metric point ring (a power of two)",
         .check = check_pow2_int},
        {.name = "rings.bytes",
         .type = DBI_CT_SIZE,
         .offset = offsetof(struct dbi_conf_runtime, ring_bytes),
         .def = "4MiB",
         .min = 65536,
         .max = 1073741824,
         .doc = "bytes per record ring for logs, plans and histograms (a power of two)",
         .check = check_pow2_size},
        {.name = "max_series",
         .type = DBI_CT_INT,
         .offset = offsetof(struct dbi_conf_runtime, max_series),
         .def = "2000000",
         .min = 1,
         .max = 1e9,
         .doc = "series registry capacity; new series beyond it are dropped and counted"},
        {.name = "state_dir",
         .type = DBI_CT_STRING,
         .offset = offsetof(struct dbi_conf_runtime, state_dir),
         .def = "",
         .doc = "persistent state (circuit breakers, queues), created 0700; empty: $DBI_STATE_DIR, else "
                "/var/lib/dbi when writable, else $XDG_STATE_HOME/dbi, else /tmp/dbi-<uid>"},
        DBI_CONF_END,
};

/* ---- loading ---- */

static const struct {
	const char *name;
	int kind; /* enum dbi_comp_kind; 0 for service and runtime */
} dbi_sections[] = {
        {"receivers", DBI_RECEIVER},
        {"processors", DBI_PROCESSOR},
        {"exporters", DBI_EXPORTER},
        {"extensions", DBI_EXTENSION},
        {"service", 0},
        {"runtime", 0},
};

struct dbi_cload {
	struct dbi_cctx *cx;
	struct dbi_config *cfg;
	const struct dbi_component *const *registry;
	bool pipelines_broken; /* pipelines too malformed to say what is unused */
};

static const char *section_of(int kind)
{
	for (size_t i = 0; i < DBI_ARRAY_LEN(dbi_sections); i++)
		if (dbi_sections[i].kind == kind)
			return dbi_sections[i].name;
	return "?";
}

static const char *kind_name(int kind)
{
	return dbi_comp_kind_name((enum dbi_comp_kind)kind);
}

static int find_comp(const struct dbi_config *cfg, int kind, const char *id)
{
	for (size_t i = 0; i < cfg->ncomponents; i++)
		if (cfg->components[i].kind == kind && strcmp(cfg->components[i].id, id) == 0)
			return (int)i;
	return -1;
}

static const struct dbi_component *registry_find(const struct dbi_component *const *reg, int kind, const char *type)
{
	for (size_t i = 0; reg && reg[i]; i++)
		if ((int)reg[i]->kind == kind && strcmp(reg[i]->type, type) == 0)
			return reg[i];
	return NULL;
}

static void unknown_type(struct dbi_cload *ld, const struct dbi_cnode *key, int kind, const char *type)
{
	char known[1024];
	size_t o = 0;

	known[0] = '\0';
	for (size_t i = 0; ld->registry && ld->registry[i] && o < sizeof(known); i++)
		if ((int)ld->registry[i]->kind == kind)
			o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s", o ? ", " : "",
			                      ld->registry[i]->type);
	if (o)
		dbi_cerr(ld->cx, key->line, key->col, "unknown %s type '%.100s' (known %s types: %s)", kind_name(kind),
		         type, kind_name(kind), known);
	else
		dbi_cerr(ld->cx, key->line, key->col, "unknown %s type '%.100s' (no %s types are built in)",
		         kind_name(kind), type, kind_name(kind));
}

/* "type" or "type/name"; returns why it is malformed, or NULL. */
static const char *check_id(const char *id, size_t *typelen)
{
	const char *slash = strchr(id, '/');

	*typelen = slash ? (size_t)(slash - id) : strlen(id);
	if (*typelen == 0)
		return "the type before '/' is empty";
	for (size_t i = 0; i < *typelen; i++)
		if (!name_char_ok(id[i]))
			return "types may only use letters, digits, '_', '.' and '-'";
	if (!slash)
		return NULL;
	if (!slash[1])
		return "the name after '/' is empty";
	for (const char *p = slash + 1; *p; p++)
		if (!name_char_ok(*p))
			return "names after '/' may only use letters, digits, '_', '.' and '-'";
	return NULL;
}

/* A validate callback speaks without positions; its lines get the declaration's. */
static void run_validate(struct dbi_cload *ld, struct dbi_conf_component *c, const char *path)
{
	struct dbi_errbuf *verr = malloc(sizeof(*verr));
	int rc;

	if (!verr) {
		dbi_cerr(ld->cx, 0, 0, "out of memory");
		return;
	}
	dbi_err_clear(verr);
	rc = c->desc->validate(c->cfg, c->id, verr);
	if (verr->count) {
		char *save = NULL;
		for (char *line = strtok_r(verr->msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			dbi_cerr(ld->cx, c->line, c->col, "%s: %s", path, line);
	} else if (rc != DBI_OK) {
		dbi_cerr(ld->cx, c->line, c->col, "%s: invalid configuration", path);
	}
	free(verr);
}

static void load_component(struct dbi_cload *ld, int kind, const struct dbi_cnode *key, const struct dbi_cnode *val)
{
	struct dbi_config *cfg = ld->cfg;
	struct dbi_conf_component *c = &cfg->components[cfg->ncomponents];
	const char *why;
	char path[600];
	size_t typelen;
	int before = ld->cx->nerr;

	why = check_id(key->s, &typelen);
	if (why) {
		dbi_cerr(ld->cx, key->line, key->col, "invalid %s id '%.100s': %s", kind_name(kind), key->s, why);
		return;
	}
	c->id = strdup(key->s);
	c->type = strndup(key->s, typelen);
	c->name = strdup(key->s[typelen] ? key->s + typelen + 1 : "");
	if (!c->id || !c->type || !c->name) {
		free(c->id);
		free(c->type);
		free(c->name);
		memset(c, 0, sizeof(*c));
		dbi_cerr(ld->cx, 0, 0, "out of memory");
		return;
	}
	c->kind = kind;
	c->line = key->line;
	c->col = key->col;
	cfg->ncomponents++;
	/* Registered even when its type is unknown, so pipelines do not also call it undeclared. */
	c->desc = registry_find(ld->registry, kind, c->type);
	if (!c->desc) {
		unknown_type(ld, key, kind, c->type);
		return;
	}
	c->cfg = calloc(1, c->desc->conf_size ? c->desc->conf_size : 1);
	if (!c->cfg) {
		dbi_cerr(ld->cx, 0, 0, "out of memory");
		return;
	}
	snprintf(path, sizeof(path), "%s.%s", section_of(kind), c->id);
	dbi_conf_load_map(ld->cx, c->desc->keys, c->cfg, val, path, NULL, key->line, key->col);
	c->hash = dbi_cnode_hash(val);
	/* A cross-key check on a half-filled struct would only add confusing echoes. */
	if (c->desc->validate && ld->cx->nerr == before)
		run_validate(ld, c, path);
}

static unsigned signal_of(const char *s, size_t len)
{
	static const struct {
		const char *name;
		unsigned sig;
	} sigs[] = {{"metrics", DBI_SIG_METRICS}, {"logs", DBI_SIG_LOGS}, {"traces", DBI_SIG_TRACES}};

	for (size_t i = 0; i < DBI_ARRAY_LEN(sigs); i++)
		if (strlen(sigs[i].name) == len && strncmp(sigs[i].name, s, len) == 0)
			return sigs[i].sig;
	return 0;
}

/* One of a pipeline's receivers/processors/exporters lists, as component indexes. */
static void load_refs(struct dbi_cload *ld, struct dbi_conf_pipeline *p, int kind, const struct dbi_cnode *list,
                      int **out, size_t *nout)
{
	const char *role = section_of(kind);

	if (dbi_cnode_is_null(list))
		return;
	if (list->kind != DBI_CN_SEQ) {
		dbi_cerr(ld->cx, list->line, list->col, "service.pipelines.%s.%s: expected a list of ids, e.g. [%s]",
		         p->id, role, kind == DBI_PROCESSOR ? "batch" : "otlp");
		ld->pipelines_broken = true;
		return;
	}
	*out = calloc(list->n ? list->n : 1, sizeof(int));
	if (!*out) {
		dbi_cerr(ld->cx, 0, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < list->n; i++) {
		const struct dbi_cnode *it = list->kids[i];
		struct dbi_conf_component *c;
		bool twice = false;
		int idx;

		if (it->kind != DBI_CN_SCALAR || it->null || !it->s[0]) {
			dbi_cerr(ld->cx, it->line, it->col, "service.pipelines.%s.%s[%zu]: expected a %s id", p->id,
			         role, i, kind_name(kind));
			continue;
		}
		idx = find_comp(ld->cfg, kind, it->s);
		if (idx < 0) {
			dbi_cerr(ld->cx, it->line, it->col, "%s '%.100s' is not declared under %s:", kind_name(kind),
			         it->s, role);
			continue;
		}
		c = &ld->cfg->components[idx];
		c->used = 1;
		if (p->signal && c->desc && !(c->desc->signals & p->signal)) {
			dbi_cerr(ld->cx, it->line, it->col, "%s '%s' does not support %s", kind_name(kind), c->id,
			         dbi_signal_name(p->signal));
			continue;
		}
		for (size_t j = 0; j < *nout && !twice; j++)
			twice = (*out)[j] == idx;
		if (twice) {
			dbi_cerr(ld->cx, it->line, it->col, "%s '%s' is listed twice in pipeline '%s'", kind_name(kind),
			         c->id, p->id);
			continue;
		}
		(*out)[(*nout)++] = idx;
	}
}

static void free_pipeline(struct dbi_conf_pipeline *p)
{
	free(p->id);
	free(p->receivers);
	free(p->processors);
	free(p->exporters);
	memset(p, 0, sizeof(*p));
}

static void load_pipeline(struct dbi_cload *ld, const struct dbi_cnode *key, const struct dbi_cnode *body)
{
	static const char *const roles = "receivers, processors, exporters";
	struct dbi_conf_pipeline p = {0};
	const char *id = key->s, *slash = strchr(id, '/');
	size_t siglen = slash ? (size_t)(slash - id) : strlen(id);
	const struct dbi_cnode *rcv, *exp;
	const char *why = NULL;
	size_t typelen;

	p.signal = signal_of(id, siglen);
	p.line = key->line;
	p.col = key->col;
	p.id = strdup(id);
	if (!p.id) {
		dbi_cerr(ld->cx, 0, 0, "out of memory");
		return;
	}
	/* A bad signal still has its lists walked: what they name is used, not "unused". */
	if (!p.signal)
		dbi_cerr(ld->cx, key->line, key->col,
		         "unknown pipeline signal '%.*s' in pipeline '%.100s' (metrics, logs or traces, optionally "
		         "followed by /name)",
		         (int)DBI_MIN(siglen, 100), id, id);
	else if (slash && (why = check_id(id, &typelen)) != NULL)
		dbi_cerr(ld->cx, key->line, key->col, "invalid pipeline id '%.100s': %s", id, why);
	if (dbi_cnode_is_null(body) || body->kind != DBI_CN_MAP) {
		dbi_cerr(ld->cx, body->line, body->col,
		         "service.pipelines.%s: expected a mapping with receivers, processors and exporters", p.id);
		ld->pipelines_broken = true;
		goto out;
	}
	for (size_t i = 0; i < dbi_cnode_pairs(body); i++) {
		const struct dbi_cnode *k = dbi_cnode_key(body, i);
		if (strcmp(k->s, "receivers") && strcmp(k->s, "processors") && strcmp(k->s, "exporters"))
			dbi_cerr(ld->cx, k->line, k->col,
			         "unknown key '%.100s' in service.pipelines.%s (known keys: %s)", k->s, p.id, roles);
	}
	rcv = dbi_cnode_get(body, "receivers");
	exp = dbi_cnode_get(body, "exporters");
	load_refs(ld, &p, DBI_RECEIVER, rcv, &p.receivers, &p.nreceivers);
	load_refs(ld, &p, DBI_PROCESSOR, dbi_cnode_get(body, "processors"), &p.processors, &p.nprocessors);
	load_refs(ld, &p, DBI_EXPORTER, exp, &p.exporters, &p.nexporters);
	if (!rcv)
		dbi_cerr(ld->cx, key->line, key->col, "pipeline '%s' has no receivers (add receivers: [...])", p.id);
	else if (dbi_cnode_is_null(rcv) || (rcv->kind == DBI_CN_SEQ && rcv->n == 0))
		dbi_cerr(ld->cx, rcv->line, rcv->col, "pipeline '%s' has no receivers (the list is empty)", p.id);
	if (!exp)
		dbi_cerr(ld->cx, key->line, key->col, "pipeline '%s' has no exporters (add exporters: [...])", p.id);
	else if (dbi_cnode_is_null(exp) || (exp->kind == DBI_CN_SEQ && exp->n == 0))
		dbi_cerr(ld->cx, exp->line, exp->col, "pipeline '%s' has no exporters (the list is empty)", p.id);
out:
	if (p.signal)
		ld->cfg->pipelines[ld->cfg->npipelines++] = p;
	else
		free_pipeline(&p);
}

static void load_pipelines(struct dbi_cload *ld, const struct dbi_cnode *svckey, const struct dbi_cnode *svc)
{
	const struct dbi_cnode *pl = dbi_cnode_get(svc, "pipelines");
	int line = svckey ? svckey->line : 1, col = svckey ? svckey->col : 1;

	if (!dbi_cnode_is_null(pl) && pl->kind != DBI_CN_MAP) {
		dbi_cerr(ld->cx, pl->line, pl->col,
		         "service.pipelines: expected a mapping of pipelines, e.g. metrics: "
		         "{receivers: [...], exporters: [...]}");
		ld->pipelines_broken = true;
		return;
	}
	if (dbi_cnode_is_null(pl) || dbi_cnode_pairs(pl) == 0) {
		if (pl) {
			line = pl->line;
			col = pl->col;
		}
		dbi_cerr(ld->cx, line, col,
		         "no pipelines configured: service.pipelines needs at least one, e.g. metrics: {receivers: "
		         "[...], exporters: [...]}");
		ld->pipelines_broken = true;
		return;
	}
	ld->cfg->pipelines = calloc(dbi_cnode_pairs(pl), sizeof(*ld->cfg->pipelines));
	if (!ld->cfg->pipelines) {
		dbi_cerr(ld->cx, 0, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < dbi_cnode_pairs(pl); i++)
		load_pipeline(ld, dbi_cnode_key(pl, i), dbi_cnode_val(pl, i));
}

static void check_extensions(struct dbi_cload *ld, const struct dbi_cnode *svc)
{
	const struct dbi_cnode *list = dbi_cnode_get(svc, "extensions");

	/* A malformed list was reported by the service map; positions come from the nodes. */
	if (!list || list->kind != DBI_CN_SEQ)
		return;
	for (size_t i = 0; i < list->n; i++) {
		const struct dbi_cnode *it = list->kids[i];
		int idx;
		if (it->kind != DBI_CN_SCALAR)
			continue; /* reported by the service map */
		if (it->null || !it->s[0]) {
			dbi_cerr(ld->cx, it->line, it->col, "service.extensions[%zu]: expected an extension id", i);
			continue;
		}
		idx = find_comp(ld->cfg, DBI_EXTENSION, it->s);
		if (idx < 0) {
			dbi_cerr(ld->cx, it->line, it->col,
			         "extension '%.100s' is not declared under extensions:", it->s);
			continue;
		}
		if (ld->cfg->components[idx].used) {
			dbi_cerr(ld->cx, it->line, it->col, "extension '%s' is listed twice in service.extensions",
			         it->s);
			continue;
		}
		ld->cfg->components[idx].used = 1;
	}
}

static void check_unused(struct dbi_cload *ld)
{
	for (size_t i = 0; i < ld->cfg->ncomponents; i++) {
		const struct dbi_conf_component *c = &ld->cfg->components[i];
		if (c->used || !c->desc)
			continue;
		if (c->kind == DBI_EXTENSION)
			dbi_cerr(ld->cx, c->line, c->col,
			         "extension '%s' is declared but not enabled (add it to service.extensions)", c->id);
		else if (!ld->pipelines_broken)
			dbi_cerr(ld->cx, c->line, c->col, "%s '%s' is declared but not used in any pipeline",
			         kind_name(c->kind), c->id);
	}
}

static void load_root(struct dbi_cload *ld, const struct dbi_cnode *root)
{
	const struct dbi_cnode *sec[DBI_ARRAY_LEN(dbi_sections)] = {0}, *seckey[DBI_ARRAY_LEN(dbi_sections)] = {0};
	size_t ncomp = 0;

	if (dbi_cnode_is_null(root))
		root = NULL;
	if (root && root->kind != DBI_CN_MAP) {
		dbi_cerr(ld->cx, root->line, root->col,
		         "the top level must be a mapping of sections (receivers, processors, exporters, extensions, "
		         "service, runtime)");
		return;
	}
	for (size_t i = 0; root && i < dbi_cnode_pairs(root); i++) {
		const struct dbi_cnode *k = dbi_cnode_key(root, i), *v = dbi_cnode_val(root, i);
		size_t s;
		for (s = 0; s < DBI_ARRAY_LEN(dbi_sections); s++)
			if (strcmp(k->s, dbi_sections[s].name) == 0)
				break;
		if (s == DBI_ARRAY_LEN(dbi_sections)) {
			dbi_cerr(ld->cx, k->line, k->col,
			         "unknown top-level key '%.100s' (known: receivers, processors, exporters, extensions, "
			         "service, runtime)",
			         k->s);
			continue;
		}
		seckey[s] = k;
		if (dbi_cnode_is_null(v))
			continue;
		if (v->kind != DBI_CN_MAP) {
			dbi_cerr(ld->cx, v->line, v->col, "%s: expected a mapping, not a %s", k->s,
			         v->kind == DBI_CN_SEQ ? "list" : "single value");
			continue;
		}
		sec[s] = v;
		if (dbi_sections[s].kind)
			ncomp += dbi_cnode_pairs(v);
	}

	ld->cfg->components = calloc(ncomp ? ncomp : 1, sizeof(*ld->cfg->components));
	if (!ld->cfg->components) {
		dbi_cerr(ld->cx, 0, 0, "out of memory");
		return;
	}
	for (size_t s = 0; s < DBI_ARRAY_LEN(dbi_sections); s++) {
		if (!dbi_sections[s].kind || !sec[s])
			continue;
		for (size_t i = 0; i < dbi_cnode_pairs(sec[s]); i++)
			load_component(ld, dbi_sections[s].kind, dbi_cnode_key(sec[s], i), dbi_cnode_val(sec[s], i));
	}

	/* sections 4 and 5: service and runtime */
	dbi_conf_load_map(ld->cx, dbi_service_keys, &ld->cfg->service, sec[4], "service", "pipelines",
	                  seckey[4] ? seckey[4]->line : 1, seckey[4] ? seckey[4]->col : 1);
	load_pipelines(ld, seckey[4], sec[4]);
	check_extensions(ld, sec[4]);
	check_unused(ld);
	dbi_conf_load_map(ld->cx, dbi_runtime_keys, &ld->cfg->runtime, sec[5], "runtime", NULL,
	                  seckey[5] ? seckey[5]->line : 1, seckey[5] ? seckey[5]->col : 1);
}

static int load_text(const char *text, size_t len, const char *name, const struct dbi_component *const *registry,
                     struct dbi_config **out, struct dbi_errbuf *err)
{
	struct dbi_errbuf *local = NULL;
	struct dbi_cctx cx = {.file = name, .err = err};
	struct dbi_cload ld = {.cx = &cx, .registry = registry};
	struct dbi_cnode *root = NULL;
	struct dbi_config *cfg;

	if (!cx.err) {
		local = malloc(sizeof(*local));
		if (!local)
			return DBI_ERR;
		cx.err = local;
	}
	dbi_err_clear(cx.err);
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(name))) {
		dbi_cerr(&cx, 0, 0, "out of memory");
		goto fail;
	}
	ld.cfg = cfg;
	/* After a syntax error the tree is unknown: nothing further can be said. */
	if (dbi_cnode_parse(&cx, text, len, &root) != DBI_OK)
		goto fail;
	dbi_cnode_expand_env(&cx, root);
	load_root(&ld, root);
	if (cx.nerr)
		goto fail;
	dbi_cnode_free(root);
	free(local);
	*out = cfg;
	return DBI_OK;
fail:
	dbi_cctx_finish(&cx);
	dbi_cnode_free(root);
	dbi_config_free(cfg);
	free(local);
	return DBI_ERR;
}

int dbi_config_load_string(const char *yaml, const char *name, const struct dbi_component *const *registry,
                           struct dbi_config **out, struct dbi_errbuf *err)
{
	return load_text(yaml ? yaml : "", yaml ? strlen(yaml) : 0, name ? name : "<string>", registry, out, err);
}

int dbi_config_load(const char *path, const struct dbi_component *const *registry, struct dbi_config **out,
                    struct dbi_errbuf *err)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	size_t len = 0, cap = 0;
	int rc = DBI_ERR;

	if (!f)
		goto ioerr;
	for (;;) {
		size_t n;
		if (cap - len < 4096) {
			char *t;
			cap = cap ? cap * 2 : 16384;
			t = realloc(text, cap);
			if (!t) {
				errno = ENOMEM;
				goto ioerr;
			}
			text = t;
		}
		n = fread(text + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f))
		goto ioerr;
	text[len] = '\0';
	rc = load_text(text, len, path, registry, out, err);
	goto out;
ioerr:
	if (err) {
		dbi_err_clear(err);
		dbi_err_add(err, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
	}
out:
	if (f)
		fclose(f);
	free(text);
	return rc;
}

void dbi_config_free(struct dbi_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->ncomponents; i++) {
		struct dbi_conf_component *c = &cfg->components[i];
		if (c->desc && c->cfg)
			dbi_conf_release(c->desc->keys, c->cfg);
		free(c->cfg);
		free(c->id);
		free(c->type);
		free(c->name);
	}
	free(cfg->components);
	for (size_t i = 0; i < cfg->npipelines; i++)
		free_pipeline(&cfg->pipelines[i]);
	free(cfg->pipelines);
	dbi_conf_release(dbi_service_keys, &cfg->service);
	dbi_conf_release(dbi_runtime_keys, &cfg->runtime);
	free(cfg->path);
	free(cfg);
}

struct dbi_conf_component *dbi_config_find(const struct dbi_config *cfg, const char *id)
{
	for (size_t i = 0; cfg && i < cfg->ncomponents; i++)
		if (strcmp(cfg->components[i].id, id) == 0)
			return &cfg->components[i];
	return NULL;
}

struct dbi_conf_component *dbi_config_find_kind(const struct dbi_config *cfg, int kind, const char *id)
{
	int idx = cfg ? find_comp(cfg, kind, id) : -1;
	return idx < 0 ? NULL : &cfg->components[idx];
}
