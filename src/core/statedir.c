/*
 * statedir.c — the state directory and atomic state files (see statedir.h). State files
 * are small and written rarely (a circuit changing state, shutdown), so each write pays
 * for two fsyncs: a power cut must leave either the old file or the new one.
 */
#include "dbi/statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYSTEM_STATE_DIR "/var/lib/dbi"

/* mkdir -p; directories created here get mode 0700. */
static int mkdir_p(const char *path, struct dbi_errbuf *err)
{
	char buf[4096];
	size_t n = dbi_strlcpy(buf, path, sizeof(buf));
	if (n >= sizeof(buf)) {
		dbi_err_add(err, "state directory path is too long: %.100s...", path);
		return DBI_ERR;
	}
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
			dbi_err_add(err, "cannot create state directory %s: %s", buf, strerror(errno));
			return DBI_ERR;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	return DBI_OK;
}

static int usable_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode) && access(path, W_OK | X_OK) == 0;
}

static int pick(const char *path, char *out, size_t len, struct dbi_errbuf *err)
{
	if (dbi_strlcpy(out, path, len) >= len) {
		dbi_err_add(err, "state directory path is too long: %.100s...", path);
		return DBI_ERR;
	}
	return DBI_OK;
}

/* /tmp/dbi-<uid>: ours alone, or refused. */
static int tmp_dir(char *out, size_t len, struct dbi_errbuf *err)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof(path), "/tmp/dbi-%u", (unsigned)geteuid());
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		dbi_err_add(err, "cannot create state directory %s: %s", path, strerror(errno));
		return DBI_ERR;
	}
	if (lstat(path, &st) != 0) {
		dbi_err_add(err, "cannot use state directory %s: %s", path, strerror(errno));
		return DBI_ERR;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
		dbi_err_add(err,
		            "refusing state directory %s: it must be a directory owned by uid %u and not writable "
		            "by others (set runtime.state_dir)",
		            path, (unsigned)geteuid());
		return DBI_ERR;
	}
	return pick(path, out, len, err);
}

int dbi_state_dir(const char *configured, char *out, size_t len, struct dbi_errbuf *err)
{
	/* DBI_STATE_DIR stands in for an unset runtime.state_dir (containers, tests) */
	const char *env = getenv("DBI_STATE_DIR");
	if ((!configured || !*configured) && env && *env)
		configured = env;
	if (configured && *configured) {
		if (configured[0] != '/') {
			dbi_err_add(err, "runtime.state_dir must be an absolute path, not '%s'", configured);
			return DBI_ERR;
		}
		if (mkdir_p(configured, err) != DBI_OK)
			return DBI_ERR;
		if (!usable_dir(configured)) {
			dbi_err_add(err, "runtime.state_dir %s is not a writable directory", configured);
			return DBI_ERR;
		}
		return pick(configured, out, len, err);
	}
	if (usable_dir(SYSTEM_STATE_DIR) || (mkdir(SYSTEM_STATE_DIR, 0700) == 0 && usable_dir(SYSTEM_STATE_DIR)))
		return pick(SYSTEM_STATE_DIR, out, len, err);

	const char *xdg = getenv("XDG_STATE_HOME");
	if (xdg && xdg[0] == '/') {
		char path[4096];
		struct dbi_errbuf ignored;
		dbi_err_clear(&ignored);
		if (snprintf(path, sizeof(path), "%s/dbi", xdg) < (int)sizeof(path) &&
		    mkdir_p(path, &ignored) == DBI_OK && usable_dir(path))
			return pick(path, out, len, err);
	}
	return tmp_dir(out, len, err);
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int dbi_state_write(const char *path, const void *data, size_t len, struct dbi_errbuf *err)
{
	char tmp[4200], dir[4200];
	int fd = -1, rc = DBI_ERR;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		dbi_err_add(err, "state file path is too long: %.100s...", path);
		return DBI_ERR;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		dbi_err_add(err, "cannot write %s: %s", tmp, strerror(errno));
		return DBI_ERR;
	}
	if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		dbi_err_add(err, "cannot write %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	if (close(fd) != 0) {
		fd = -1;
		dbi_err_add(err, "cannot write %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		dbi_err_add(err, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto cleanup;
	}
	/* the rename itself must reach the disk too */
	dbi_strlcpy(dir, path, sizeof(dir));
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		dbi_strlcpy(dir, ".", sizeof(dir));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return DBI_OK;
cleanup:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int dbi_state_read(const char *path, size_t max, char **data, size_t *len, struct dbi_errbuf *err)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int rc = DBI_ERR;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	*data = NULL;
	*len = 0;
	if (fd < 0) {
		if (errno == ENOENT)
			return DBI_DONE;
		dbi_err_add(err, "cannot open %s: %s", path, strerror(errno));
		return DBI_ERR;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		dbi_err_add(err, "%s is not a regular file", path);
		goto cleanup;
	}
	if ((uint64_t)st.st_size > max) {
		dbi_err_add(err, "%s is too large (%lld bytes, at most %zu expected)", path, (long long)st.st_size,
		            max);
		goto cleanup;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		dbi_err_add(err, "out of memory reading %s", path);
		goto cleanup;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			dbi_err_add(err, "cannot read %s: %s", path, strerror(errno));
			goto cleanup;
		}
		if (n == 0)
			break; /* shrank meanwhile: parse what is there, the checks will tell */
		got += (size_t)n;
	}
	buf[got] = '\0';
	*data = buf;
	*len = got;
	buf = NULL;
	rc = DBI_OK;
cleanup:
	free(buf);
	close(fd);
	return rc;
}
