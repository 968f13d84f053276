/*
 * config_help.c — `dbi-collector --help`: every component and every key, printed
 * from the same config maps the loader uses, so the help cannot drift from what the
 * loader accepts.
 */
#include <stdio.h>
#include <string.h>

#include "config_int.h"
#include "dbi/component.h"
#include "dbi/record.h"

struct dbi_hcols {
	int name, type, def;
};

/* What a key is when the file says nothing: its default, or the zero its type means. */
static const char *default_text(const struct dbi_conf_key *k, char *buf, size_t len)
{
	if (k->flags & DBI_CK_SECRET)
		return "(secret)";
	if (k->def)
		return k->def[0] ? k->def : "\"\"";
	switch (k->type) {
	case DBI_CT_BOOL:
		return "false";
	case DBI_CT_INT:
	case DBI_CT_DOUBLE:
	case DBI_CT_PERCENT:
	case DBI_CT_SIZE:
		return "0";
	case DBI_CT_DURATION:
		return "0s";
	case DBI_CT_ENUM:
		if (k->choices) {
			snprintf(buf, len, "%.*s", (int)strcspn(k->choices, "|"), k->choices);
			return buf;
		}
		return "-";
	default:
		return "-";
	}
}

static void describe(const struct dbi_conf_key *k, char *buf, size_t len)
{
	char tmp[512], lo[64], hi[64];
	size_t o = 0;

	buf[0] = '\0';
	if (k->doc)
		o += (size_t)snprintf(buf + o, len - o, "%s", k->doc);
	if (k->choices && o < len) {
		dbi_cval_fmt_choices(k->choices, tmp, sizeof(tmp));
		o += (size_t)snprintf(buf + o, len - o, "%sone of: %s", o ? "; " : "", tmp);
	}
	if (k->min < k->max && o < len) {
		dbi_conf_fmt_bound(k, k->min, lo, sizeof(lo));
		dbi_conf_fmt_bound(k, k->max, hi, sizeof(hi));
		o += (size_t)snprintf(buf + o, len - o, "%srange %s to %s", o ? "; " : "", lo, hi);
	}
	if ((k->flags & DBI_CK_REQUIRED) && o < len)
		snprintf(buf + o, len - o, "%s(required)", o ? " " : "");
}

/* One pass measures (out == NULL), the next prints with the measured columns. */
static void walk(FILE *out, const struct dbi_conf_key *keys, const char *prefix, struct dbi_hcols *w, int depth)
{
	char name[512], dbuf[64], doc[1024];

	for (const struct dbi_conf_key *k = keys; k && k->name; k++) {
		const char *type = dbi_conf_type_name(k->type), *def = default_text(k, dbuf, sizeof(dbuf));
		int nl;

		snprintf(name, sizeof(name), "%s%s", prefix, k->name);
		nl = (int)strlen(name);
		if (!out) {
			w->name = DBI_MAX(w->name, nl);
			w->type = DBI_MAX(w->type, (int)strlen(type));
			w->def = DBI_MAX(w->def, DBI_MIN((int)strlen(def), 24));
		} else {
			describe(k, doc, sizeof(doc));
			fprintf(out, "      %-*s  %-*s  %-*s  %s\n", w->name, name, w->type, type, w->def, def, doc);
		}
		if ((k->type == DBI_CT_LIST || k->type == DBI_CT_KEYED_LIST) && k->sub && depth < 4) {
			char sub[520];
			snprintf(sub, sizeof(sub), k->type == DBI_CT_LIST ? "%s[]." : "%s.<name>.", name);
			walk(out, k->sub, sub, w, depth + 1);
		}
	}
}

static void print_keys(FILE *out, const struct dbi_conf_key *keys)
{
	struct dbi_hcols w = {(int)strlen("KEY"), (int)strlen("TYPE"), (int)strlen("DEFAULT")};

	if (!keys || !keys->name) {
		fprintf(out, "      (no settings)\n");
		return;
	}
	walk(NULL, keys, "", &w, 0);
	fprintf(out, "      %-*s  %-*s  %-*s  %s\n", w.name, "KEY", w.type, "TYPE", w.def, "DEFAULT", "DESCRIPTION");
	walk(out, keys, "", &w, 0);
}

static void signals_text(unsigned sigs, char *buf, size_t len)
{
	static const unsigned all[] = {DBI_SIG_METRICS, DBI_SIG_LOGS, DBI_SIG_TRACES};
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < DBI_ARRAY_LEN(all) && o < len; i++)
		if (sigs & all[i])
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", dbi_signal_name(all[i]));
}

void dbi_config_print_help(FILE *out, const struct dbi_component *const *registry)
{
	static const struct {
		int kind;
		const char *title, *section;
	} kinds[] = {
	        {DBI_RECEIVER, "RECEIVERS", "receivers"},
	        {DBI_PROCESSOR, "PROCESSORS", "processors"},
	        {DBI_EXPORTER, "EXPORTERS", "exporters"},
	        {DBI_EXTENSION, "EXTENSIONS", "extensions"},
	};
	char sigs[64];

	fprintf(out, "Configuration (YAML, OpenTelemetry Collector layout). Components are declared as\n"
	             "<type> or <type>/<name> under their section and wired up in service.pipelines.\n"
	             "Durations: 10s, 500ms, 1m30s, 1h. Sizes: 1048576, 512KiB, 4MiB, 1GB.\n"
	             "Values may use ${env:NAME} and ${env:NAME:-default}; $$ is a literal $.\n");
	for (size_t i = 0; i < DBI_ARRAY_LEN(kinds); i++) {
		bool any = false;
		fprintf(out, "\n%s (%s:)\n", kinds[i].title, kinds[i].section);
		for (size_t c = 0; registry && registry[c]; c++) {
			const struct dbi_component *d = registry[c];
			if ((int)d->kind != kinds[i].kind)
				continue;
			any = true;
			signals_text(d->signals, sigs, sizeof(sigs));
			fprintf(out, "\n  %s", d->type);
			if (sigs[0])
				fprintf(out, " [%s]", sigs);
			fprintf(out, "\n");
			if (d->doc)
				fprintf(out, "      %s\n", d->doc);
			print_keys(out, d->keys);
		}
		if (!any)
			fprintf(out, "\n  (none built in)\n");
	}
	fprintf(out, "\nSERVICE (service:)\n\n");
	print_keys(out, dbi_service_keys);
	fprintf(out, "      pipelines: <signal>[/<name>]: {receivers: [ids], processors: [ids], exporters: [ids]}\n"
	             "        signal is metrics, logs or traces; receivers and exporters are required,\n"
	             "        processors run in the order listed.\n");
	fprintf(out, "\nRUNTIME (runtime:)\n\n");
	print_keys(out, dbi_runtime_keys);
}
