/*
 * fuzz_config.c — libFuzzer target for the config loader: arbitrary bytes as YAML,
 * against a registry of test components with every key type (so deep map, list and
 * pipeline paths are reached) and, on odd-length inputs, an empty registry.
 *
 * A config file is outside input (written by people, templated by tools): the loader
 * must reject anything malformed with a message, never crash, leak or hang.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dbi/config.h"
#include "dbi_test_components.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct dbi_component *const empty[] = {NULL};
	static struct dbi_errbuf err;
	struct dbi_config *cfg = NULL;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	/* the env vars some seeds name: one set, one set but empty, others unset */
	setenv("DBI_FUZZ_SET", "db1:5432", 0);
	setenv("DBI_FUZZ_EMPTY", "", 0);
	if (dbi_config_load_string(text, "fuzz.yaml", (size & 1) ? empty : dbi_test_registry, &cfg, &err) == DBI_OK) {
		/* a loaded config must be fully usable */
		for (size_t i = 0; i < cfg->ncomponents; i++)
			(void)dbi_config_find_kind(cfg, cfg->components[i].kind, cfg->components[i].id);
		dbi_config_free(cfg);
	} else if (cfg != NULL || err.count == 0 || strlen(err.msg) == 0) {
		abort(); /* an error must leave *out alone and say something */
	}
	free(text);
	return 0;
}
