/*
 * components.c — the component registry: every receiver, processor, exporter and
 * extension the collector knows, one line each. Adding a component = its folder + a line.
 */
#include <string.h>

#include "dbi/component.h"

extern const struct dbi_component dbi_receiver_loadgen;
extern const struct dbi_component dbi_receiver_otlp;
extern const struct dbi_component dbi_receiver_postgresql;
extern const struct dbi_component dbi_processor_batch;
extern const struct dbi_component dbi_processor_memory_limiter;
extern const struct dbi_component dbi_processor_cumulativetodelta;
extern const struct dbi_component dbi_exporter_debug;
extern const struct dbi_component dbi_exporter_nop;
extern const struct dbi_component dbi_exporter_prometheus;
extern const struct dbi_component dbi_exporter_otlphttp;
extern const struct dbi_component dbi_extension_health_check;

/* one line each, so parallel additions merge cleanly (clang-format would pack them) */
/* clang-format off */
const struct dbi_component *const dbi_components[] = {
        &dbi_receiver_loadgen,
        &dbi_receiver_otlp,
        &dbi_receiver_postgresql,
        &dbi_processor_batch,
        &dbi_processor_memory_limiter,
        &dbi_processor_cumulativetodelta,
        &dbi_exporter_debug,
        &dbi_exporter_nop,
        &dbi_exporter_prometheus,
        &dbi_exporter_otlphttp,
        &dbi_extension_health_check,
        NULL,
};
/* clang-format on */

const struct dbi_component *dbi_component_find(const char *type, enum dbi_comp_kind kind)
{
	for (size_t i = 0; dbi_components[i]; i++)
		if (dbi_components[i]->kind == kind && strcmp(dbi_components[i]->type, type) == 0)
			return dbi_components[i];
	return NULL;
}

const char *dbi_comp_kind_name(enum dbi_comp_kind k)
{
	switch (k) {
	case DBI_RECEIVER:
		return "receiver";
	case DBI_PROCESSOR:
		return "processor";
	case DBI_EXPORTER:
		return "exporter";
	case DBI_EXTENSION:
		return "extension";
	}
	return "?";
}

const char *dbi_signal_name(unsigned sig)
{
	switch (sig) {
	case DBI_SIG_METRICS:
		return "metrics";
	case DBI_SIG_LOGS:
		return "logs";
	case DBI_SIG_TRACES:
		return "traces";
	}
	return "?";
}
