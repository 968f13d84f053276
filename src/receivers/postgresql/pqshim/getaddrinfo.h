/*
 * getaddrinfo.h — stand-in for PostgreSQL's src/include/getaddrinfo.h, which libpq-int.h
 * includes but libpq-dev does not ship (it is in the server headers). On Linux the real one
 * only includes the system's declarations; so does this. Used by pg_pqbuf.c alone.
 */
#ifndef DBI_PQSHIM_GETADDRINFO_H
#define DBI_PQSHIM_GETADDRINFO_H
#include <netdb.h>
#include <sys/socket.h>
#endif
