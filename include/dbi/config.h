/*
 * config.h — configuration: OTel-Collector-shaped YAML (receivers, processors,
 * exporters, extensions, service.pipelines) plus dbi's own `runtime:` section.
 *
 * Every component describes its settings with a config map: an array of
 * struct dbi_conf_key giving name, type, default, offset into the component's config
 * struct and a doc string. The loader fills the struct from YAML, expands ${env:VAR}
 * and ${env:VAR:-default}, and rejects unknown keys, bad types, bad durations and sizes,
 * unknown components in pipelines, signal mismatches and unused components with
 * "file:line:column: message". `dbi-collector --help` prints the same maps.
 *
 * A key written without a value (`timeout:`, `~`, `null`) keeps its default, and so does
 * a non-string key whose value expands to "" (`${env:X:-}`): an unset optional variable
 * must not turn into a type error. A string key set to "" is "" (a required one fails).
 */
#ifndef DBI_CONFIG_H
#define DBI_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "dbi/common.h"

struct dbi_component;

enum dbi_conf_type {
	DBI_CT_BOOL = 1, /* bool */
	DBI_CT_INT,      /* int64_t */
	DBI_CT_DOUBLE,   /* double */
	DBI_CT_STRING,   /* char * (owned by the config); with .choices, must be one of them */
	DBI_CT_DURATION, /* uint64_t ns; Go syntax: "10s", "250ms", "1m30s", "1h"; "0" allowed */
	DBI_CT_SIZE,     /* uint64_t bytes; "1048576", "512KiB", "4MiB", "1GiB", "1MB" (10^6) */
	DBI_CT_ENUM,     /* int: index into choices "a|b|c" */
	DBI_CT_STRLIST,  /* struct dbi_strlist: YAML sequence of scalars */
	DBI_CT_STRMAP,   /* struct dbi_strmap: YAML mapping scalar -> scalar */
	DBI_CT_LIST,     /* struct dbi_list: sequence of mappings, each parsed with .sub */
	DBI_CT_ENDPOINT, /* struct dbi_endpoint: "host:port", "[v6]:port", ":port" */
	DBI_CT_PERCENT,  /* double in [0,100] */
	/*
	 * struct dbi_list: a mapping of arbitrary names to sub-mappings, each element filled
	 * by .sub; the element's first field is a `char *name` that gets the key:
	 * `metrics: {postgresql.blks_hit: {enabled: true}}`. Keys are taken literally (dots
	 * included); a null value gives an element with its defaults.
	 */
	DBI_CT_KEYED_LIST,
};

#define DBI_CK_REQUIRED 0x1 /* must be present (after env expansion, non-empty) */
#define DBI_CK_SECRET 0x2   /* never printed: logs, --help defaults, dbi-stat */

struct dbi_strlist {
	char **v;
	size_t n;
};

struct dbi_strmap {
	char **k;
	char **v;
	size_t n;
};

struct dbi_list {
	void *items; /* n elements of .elem_size bytes, each filled by the .sub map */
	size_t n;
};

struct dbi_endpoint {
	char host[256]; /* "" means all interfaces when the key allows it */
	uint16_t port;
};

struct dbi_conf_key {
	const char *name; /* dotted path for nested mappings: "retry_on_failure.initial_interval" */
	enum dbi_conf_type type;
	size_t offset;                  /* offsetof(struct my_cfg, field) */
	const char *def;                /* default as YAML text, parsed like user input; NULL = zero */
	const char *doc;                /* one line for --help */
	unsigned flags;                 /* DBI_CK_* */
	const char *choices;            /* DBI_CT_ENUM: "basic|normal|detailed" */
	double min, max;                /* numeric range when min < max (INT, DOUBLE, DURATION in s, SIZE) */
	const struct dbi_conf_key *sub; /* DBI_CT_LIST, _KEYED_LIST: keys of each element; NULL-name terminated */
	size_t elem_size;               /* DBI_CT_LIST, _KEYED_LIST: sizeof one element */
	/*
	 * Optional syntax check of the stored field (e.g. "a power of two", "a CPU list"),
	 * run after the value is parsed, for defaults too. On DBI_ERR, why says what is
	 * wrong; the loader reports it at the value's file:line:col.
	 */
	int (*check)(const void *field, char *why, size_t whylen);
};
#define DBI_CONF_END                                                                                                   \
	{                                                                                                              \
		0                                                                                                      \
	}

/* One configured component instance ("otlphttp/newrelic"). */
struct dbi_conf_component {
	char *id;   /* "otlphttp/newrelic" */
	char *type; /* "otlphttp" */
	char *name; /* "newrelic" or "" */
	const struct dbi_component *desc;
	void *cfg;     /* desc->conf_size bytes filled from the map */
	uint64_t hash; /* hash of the expanded YAML subtree: reload compares it */
	int line, col; /* where it was declared */
	int used;      /* referenced by a pipeline (or service.extensions) */
	int kind;      /* enum dbi_comp_kind: the section it was declared in */
};

struct dbi_conf_pipeline {
	char *id;        /* "metrics", "logs/pg" */
	unsigned signal; /* enum dbi_signal, one bit */
	int *receivers;  /* indexes into dbi_config.components */
	size_t nreceivers;
	int *processors; /* in order */
	size_t nprocessors;
	int *exporters;
	size_t nexporters;
	int line, col;
};

enum dbi_hugepages { DBI_HP_AUTO = 0, DBI_HP_ON, DBI_HP_OFF };
enum dbi_pin { DBI_PIN_AUTO = 0, DBI_PIN_NONE };

/* runtime: — dbi's own section (threads, pinning, rings, shared memory). */
struct dbi_conf_runtime {
	char *shm_name;          /* runtime.shm.name, default "dbi.main" */
	int hugepages;           /* runtime.shm.hugepages: auto|on|off */
	uint64_t shm_size;       /* runtime.shm.size, 0 = computed */
	char *shm_dir;           /* runtime.shm.dir: default /dev/shm (hugetlbfs: /dev/hugepages) */
	int64_t scrapers;        /* runtime.threads.scrapers, default 1 */
	int64_t processors;      /* runtime.threads.processors, default 1 */
	int pin;                 /* runtime.threads.pin: auto|none */
	struct dbi_strlist cpus; /* runtime.threads.cpus: CPU list for pinning, e.g. ["0-1"]; empty = all allowed */
	int64_t ring_points;     /* runtime.rings.points: slots per point ring (power of two), default 65536 */
	uint64_t ring_bytes;     /* runtime.rings.bytes: bytes per byte ring (power of two), default 4MiB */
	int64_t max_series;      /* runtime.max_series, default 2000000 */
	char *state_dir;         /* runtime.state_dir: persistent state (circuits, queues); "": see dbi_state_dir() */
};

/* service: — extensions, pipelines, telemetry, shutdown. */
struct dbi_conf_service {
	struct dbi_strlist extensions;
	uint64_t shutdown_timeout;           /* service.shutdown_timeout, default 10s */
	char *log_level;                     /* service.telemetry.logs.level: debug|info|warn|error */
	struct dbi_endpoint metrics_address; /* service.telemetry.metrics.address, default 127.0.0.1:8888 */
	int metrics_enabled;                 /* service.telemetry.metrics.level != none */
};

struct dbi_config {
	char *path; /* file it came from ("<string>" for dbi_config_load_string) */
	struct dbi_conf_component *components;
	size_t ncomponents;
	struct dbi_conf_pipeline *pipelines;
	size_t npipelines;
	struct dbi_conf_service service;
	struct dbi_conf_runtime runtime;
	void *priv; /* loader-owned memory */
};

/* The keys of service: and runtime: (for --help and tests). */
extern const struct dbi_conf_key dbi_service_keys[];
extern const struct dbi_conf_key dbi_runtime_keys[];

/*
 * Load and validate a config file. registry is the NULL-terminated array of known
 * components (dbi_components). On error returns DBI_ERR and err holds one
 * "file:line:col: message" line per problem (up to a limit), *out untouched.
 */
int dbi_config_load(const char *path, const struct dbi_component *const *registry, struct dbi_config **out,
                    struct dbi_errbuf *err);
int dbi_config_load_string(const char *yaml, const char *name, const struct dbi_component *const *registry,
                           struct dbi_config **out, struct dbi_errbuf *err);
void dbi_config_free(struct dbi_config *cfg);

/*
 * Find a component by id; NULL if absent. Ids are unique per kind only ("otlp" can be
 * both a receiver and an exporter): dbi_config_find returns the first in the order
 * receivers, processors, exporters, extensions; dbi_config_find_kind the one of that
 * kind (enum dbi_comp_kind).
 */
struct dbi_conf_component *dbi_config_find(const struct dbi_config *cfg, const char *id);
struct dbi_conf_component *dbi_config_find_kind(const struct dbi_config *cfg, int kind, const char *id);

/* Fill a struct from defaults only (used by tests and programmatic set-up). */
int dbi_conf_defaults(const struct dbi_conf_key *keys, void *dst, struct dbi_errbuf *err);
/* Free what a map allocated inside dst (strings, lists), not dst itself. */
void dbi_conf_release(const struct dbi_conf_key *keys, void *dst);

/*
 * Fill *out from a standalone YAML file holding a list of mappings, each parsed with
 * sub (elements of elem_size bytes), as a DBI_CT_LIST key would be: defaults, env
 * expansion, unknown keys and bad values reported as "file:line:col: message". For
 * lists kept outside the main config (a fleet's targets file). On error *out is
 * untouched; release a filled list with dbi_conf_list_release.
 */
int dbi_conf_load_list_file(const char *path, const struct dbi_conf_key *sub, size_t elem_size, struct dbi_list *out,
                            struct dbi_errbuf *err);
void dbi_conf_list_release(const struct dbi_conf_key *sub, size_t elem_size, struct dbi_list *l);

/* Print every component and key (with type, default, doc) from the maps. */
void dbi_config_print_help(FILE *out, const struct dbi_component *const *registry);

/* Parsers shared with other modules (also used for command-line flags). */
int dbi_parse_duration(const char *s, uint64_t *ns);
int dbi_parse_size(const char *s, uint64_t *bytes);
int dbi_parse_endpoint(const char *s, struct dbi_endpoint *ep);

#endif
