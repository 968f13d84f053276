/*
 * pg_hooks.c — plug-in points of the `postgresql` receiver for metric groups written
 * outside its core (see pg_hook.h). The pg_stat_statements query-intelligence module
 * sets the statements group here, in one line, when it lands:
 *
 *   extern const struct dbi_pg_group_ops dbi_pg_statements_group;
 *   const struct dbi_pg_group_ops *const dbi_pg_statements_ops = &dbi_pg_statements_group;
 */
#include <stddef.h>

#include "pg_hook.h"

const struct dbi_pg_group_ops *const dbi_pg_statements_ops = NULL;
