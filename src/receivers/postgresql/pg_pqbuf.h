/*
 * pg_pqbuf.h — private to the `postgresql` receiver: hand an idle session's libpq buffer
 * pages back to the kernel (pg_pqbuf.c says how and when it is safe).
 */
#ifndef DBI_PG_PQBUF_H
#define DBI_PG_PQBUF_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* Once per process: on when the running libpq is the one built against; why says which. */
bool dbi_pg_pqbuf_init(char *why, size_t whylen);

/* The session must be idle (no query in flight); returns the bytes handed back. */
size_t dbi_pg_pqbuf_release(PGconn *conn);

#endif
