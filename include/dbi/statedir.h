/*
 * statedir.h — where the collector keeps state that must survive a restart (circuit
 * breaker states; later, export queues), and how a state file is written so a crash
 * never leaves half of one behind.
 *
 * The directory is runtime.state_dir when set; otherwise /var/lib/dbi when it exists and
 * is writable or can be created, else $XDG_STATE_HOME/dbi, else /tmp/dbi-<uid>. A
 * directory we create is mode 0700. A /tmp/dbi-<uid> that belongs to someone else, is a
 * symlink, or is writable by others is refused: another user could plant files there.
 */
#ifndef DBI_STATEDIR_H
#define DBI_STATEDIR_H

#include <stddef.h>

#include "dbi/common.h"

/* Resolve (and create, 0700) the state directory; configured may be NULL or "". */
int dbi_state_dir(const char *configured, char *out, size_t len, struct dbi_errbuf *err);

/*
 * Replace path with data atomically: write path.tmp (0600), fsync it, rename it over
 * path, fsync the directory. A reader sees the old file or the new one, never a mix.
 */
int dbi_state_write(const char *path, const void *data, size_t len, struct dbi_errbuf *err);

/*
 * Read a whole state file of at most max bytes into a malloc'd, NUL-terminated buffer.
 * DBI_DONE when it does not exist; DBI_ERR (with a message) when unreadable or too large.
 */
int dbi_state_read(const char *path, size_t max, char **data, size_t *len, struct dbi_errbuf *err);

#endif
