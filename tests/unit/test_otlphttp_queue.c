/*
 * test_otlphttp_queue.c — the otlphttp sending queue. In memory: FIFO order, the size
 * bound (newest dropped, counted), the unresolved bound. On disk: a child process
 * queues, sends and acknowledges, then is SIGKILLed; the reopened queue gives back
 * exactly what was not acknowledged (whole requests and the unacknowledged parts of
 * split ones) and never anything acknowledged. Torn tails, corrupt bodies and a torn
 * state slot are detected and counted; max_bytes drops the oldest; resolved segments
 * are removed; a second process cannot open a queue in use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/exporters/otlphttp/queue.h"
#include "dbi/record.h"

static char dir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/dbi_qtest_XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static struct dbi_oq_meta meta(uint32_t nitems)
{
	struct dbi_oq_meta m = {.signal = DBI_SIG_METRICS, .nitems = nitems, .raw_len = 1000};
	return m;
}

/* Body i: "req-<i>" padded to len bytes. */
static uint32_t body(uint8_t *buf, int i, uint32_t len)
{
	memset(buf, 'a' + i % 26, len);
	snprintf((char *)buf, len, "req-%d", i);
	return len;
}

static int body_id(const struct dbi_oq_item *it)
{
	int id = -1;
	sscanf((const char *)it->body, "req-%d", &id);
	return id;
}

static struct dbi_oq *open_q(uint64_t max_bytes, struct dbi_errbuf *err)
{
	struct dbi_oq *q = NULL;
	struct dbi_oq_opts o = {.persistent = 1, .dir = dir, .max_bytes = max_bytes, .max_unresolved = 20};
	dbi_err_clear(err);
	if (dbi_oq_open(&q, &o, err) != DBI_OK)
		return NULL;
	return q;
}

static int count_files(const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name), s = strlen(suffix);
		n += l > s && strcmp(de->d_name + l - s, suffix) == 0;
	}
	closedir(d);
	return n;
}

static void seg_file(char *out, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	out[0] = '\0';
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".seg"))
			snprintf(out, len, "%s/%s", dir, de->d_name);
	closedir(d);
}

static void test_memory_queue(void **state)
{
	(void)state;
	struct dbi_oq *q = NULL;
	struct dbi_errbuf err;
	struct dbi_oq_opts o = {.queue_size = 3, .max_unresolved = 2};
	uint8_t b[64];
	assert_int_equal(dbi_oq_open(&q, &o, &err), DBI_OK);
	for (int i = 0; i < 3; i++) {
		struct dbi_oq_meta m = meta(10);
		assert_int_equal(dbi_oq_push(q, &m, b, body(b, i, 64)), DBI_OK);
	}
	struct dbi_oq_meta m = meta(7);
	assert_int_equal(dbi_oq_push(q, &m, b, body(b, 3, 64)), DBI_AGAIN);
	struct dbi_oq_stats st;
	dbi_oq_get_stats(q, &st);
	assert_int_equal(st.dropped_full_reqs, 1);
	assert_int_equal(st.dropped_full_items, 7);
	assert_int_equal(st.pending, 3);
	assert_int_equal(st.pending_items, 30);
	struct dbi_oq_item *a, *c, *d;
	assert_int_equal(dbi_oq_take(q, &a), DBI_OK);
	assert_int_equal(dbi_oq_take(q, &c), DBI_OK);
	assert_int_equal(body_id(a), 0);
	assert_int_equal(body_id(c), 1);
	/* two unresolved: the third waits */
	assert_int_equal(dbi_oq_take(q, &d), DBI_AGAIN);
	assert_int_equal(dbi_oq_part_done(q, a, 0, 5), 0);
	assert_int_equal(dbi_oq_part_done(q, a, 5, 10), 1);
	assert_int_equal(dbi_oq_take(q, &d), DBI_OK);
	assert_int_equal(body_id(d), 2);
	dbi_oq_abandon(q, c);
	assert_int_equal(dbi_oq_part_done(q, d, 0, 10), 1);
	assert_int_equal(dbi_oq_take(q, &d), DBI_AGAIN);
	dbi_oq_close(q);
}

static void test_ranges(void **state)
{
	(void)state;
	struct dbi_oq_item it;
	struct dbi_oq_range r[DBI_OQ_MAX_RANGES + 1];
	memset(&it, 0, sizeof(it));
	it.m.nitems = 100;
	assert_int_equal(dbi_oq_remaining(&it, r, 9), 1);
	assert_int_equal(r[0].lo, 0);
	assert_int_equal(r[0].hi, 100);
	it.ndone = 2;
	it.done[0] = (struct dbi_oq_range){10, 20};
	it.done[1] = (struct dbi_oq_range){50, 100};
	assert_int_equal(dbi_oq_remaining(&it, r, 9), 2);
	assert_int_equal(r[0].lo, 0);
	assert_int_equal(r[0].hi, 10);
	assert_int_equal(r[1].lo, 20);
	assert_int_equal(r[1].hi, 50);
}

/* A child queues 10 requests, takes 4, resolves some, then dies by SIGKILL. */
static void crash_child(void)
{
	struct dbi_errbuf err;
	struct dbi_oq *q = open_q(0, &err);
	if (!q)
		_exit(2);
	uint8_t b[300];
	for (int i = 0; i < 10; i++) {
		struct dbi_oq_meta m = meta(10);
		if (dbi_oq_push(q, &m, b, body(b, i, 300)) != DBI_OK)
			_exit(3);
	}
	struct dbi_oq_item *it[4];
	for (int i = 0; i < 4; i++)
		if (dbi_oq_take(q, &it[i]) != DBI_OK || body_id(it[i]) != i)
			_exit(4);
	/* 0: half acknowledged after a split; 1: acknowledged; 2: in flight; 3: acknowledged out of order */
	dbi_oq_part_done(q, it[0], 0, 5);
	dbi_oq_part_done(q, it[1], 0, 10);
	dbi_oq_part_done(q, it[3], 0, 10);
	raise(SIGKILL);
	_exit(5);
}

static void test_persistent_kill9(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		crash_child();
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	struct dbi_errbuf err;
	struct dbi_oq *q = open_q(0, &err);
	assert_non_null(q);
	struct dbi_oq_stats st;
	dbi_oq_get_stats(q, &st);
	assert_int_equal(st.redelivered, 2);
	assert_int_equal(st.corrupt, 0);
	int seen[10] = {0};
	struct dbi_oq_item *it;
	/* first the unresolved ones, with what was already acknowledged */
	assert_int_equal(dbi_oq_take(q, &it), DBI_OK);
	assert_int_equal(body_id(it), 0);
	struct dbi_oq_range r[DBI_OQ_MAX_RANGES + 1];
	assert_int_equal(dbi_oq_remaining(it, r, 9), 1);
	assert_int_equal(r[0].lo, 5);
	assert_int_equal(r[0].hi, 10);
	assert_int_equal(dbi_oq_part_done(q, it, 5, 10), 1);
	seen[0]++;
	while (dbi_oq_take(q, &it) == DBI_OK) {
		int id = body_id(it);
		assert_true(id >= 0 && id < 10);
		assert_int_equal(it->ndone, 0);
		assert_int_equal(it->body_len, 300);
		seen[id]++;
		assert_int_equal(dbi_oq_part_done(q, it, 0, it->m.nitems), 1);
	}
	for (int i = 0; i < 10; i++)
		assert_int_equal(seen[i], (i == 1 || i == 3) ? 0 : 1);
	dbi_oq_close(q);

	/* everything resolved: a clean reopen gives nothing */
	q = open_q(0, &err);
	assert_non_null(q);
	assert_int_equal(dbi_oq_take(q, &it), DBI_AGAIN);
	dbi_oq_get_stats(q, &st);
	assert_int_equal(st.pending, 0);
	dbi_oq_close(q);
}

static void test_torn_tail_and_corrupt_body(void **state)
{
	(void)state;
	struct dbi_errbuf err;
	struct dbi_oq *q = open_q(0, &err);
	uint8_t b[500];
	for (int i = 0; i < 6; i++) {
		struct dbi_oq_meta m = meta(1);
		assert_int_equal(dbi_oq_push(q, &m, b, body(b, i, 500)), DBI_OK);
	}
	dbi_oq_close(q);
	char path[512];
	seg_file(path, sizeof(path));
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	/* a torn last record: half of it missing */
	assert_int_equal(truncate(path, sb.st_size - 200), 0);
	/* a corrupt body in record 2: header intact, payload flipped */
	int fd = open(path, O_RDWR);
	uint8_t x = 0xee;
	off_t rec2 = 32 + 2 * (32 + 500) + 32 + 100;
	assert_int_equal(pwrite(fd, &x, 1, rec2), 1);
	close(fd);

	q = open_q(0, &err);
	assert_non_null(q);
	struct dbi_oq_stats st;
	dbi_oq_get_stats(q, &st);
	assert_int_equal(st.corrupt, 1); /* the torn tail, found at open */
	int got[6] = {0};
	struct dbi_oq_item *it;
	while (dbi_oq_take(q, &it) == DBI_OK) {
		got[body_id(it)]++;
		dbi_oq_part_done(q, it, 0, 1);
	}
	dbi_oq_get_stats(q, &st);
	assert_int_equal(st.corrupt, 2); /* and the bad CRC, found when read */
	int want[6] = {1, 1, 0, 1, 1, 0};
	for (int i = 0; i < 6; i++)
		assert_int_equal(got[i], want[i]);
	/* new requests still go through after recovery */
	struct dbi_oq_meta m = meta(1);
	assert_int_equal(dbi_oq_push(q, &m, b, body(b, 42, 500)), DBI_OK);
	assert_int_equal(dbi_oq_take(q, &it), DBI_OK);
	assert_int_equal(body_id(it), 42);
	dbi_oq_part_done(q, it, 0, 1);
	dbi_oq_close(q);
}

static void test_torn_state_slot(void **state)
{
	(void)state;
	struct dbi_errbuf err;
	struct dbi_oq *q = open_q(0, &err);
	uint8_t b[100];
	struct dbi_oq_item *it;
	for (int i = 0; i < 4; i++) {
		struct dbi_oq_meta m = meta(1);
		assert_int_equal(dbi_oq_push(q, &m, b, body(b, i, 100)), DBI_OK);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(dbi_oq_take(q, &it), DBI_OK);
		dbi_oq_part_done(q, it, 0, 1);
	}
	dbi_oq_close(q);
	/* tear the newest slot: the loader falls back to the older state, never to garbage */
	char path[512];
	snprintf(path, sizeof(path), "%s/state", dir);
	int fd = open(path, O_RDWR);
	uint8_t hdr[16];
	uint64_t g0 = 0, g1 = 0;
	assert_int_equal(pread(fd, hdr, 16, 0), 16);
	memcpy(&g0, hdr + 8, 8);
	assert_int_equal(pread(fd, hdr, 16, 8192), 16);
	memcpy(&g1, hdr + 8, 8);
	uint8_t junk[64];
	memset(junk, 0x5a, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), g0 > g1 ? 40 : 8192 + 40), (ssize_t)sizeof(junk));
	close(fd);
	q = open_q(0, &err);
	assert_non_null(q);
	int got[4] = {0};
	while (dbi_oq_take(q, &it) == DBI_OK) {
		got[body_id(it)]++;
		dbi_oq_part_done(q, it, 0, 1);
	}
	/* what the older state had not acknowledged comes back; nothing is lost */
	assert_int_equal(got[2], 1);
	assert_int_equal(got[3], 1);
	assert_true(got[0] + got[1] <= 1);
	dbi_oq_close(q);
}

static void test_max_bytes_drops_oldest(void **state)
{
	(void)state;
	struct dbi_errbuf err;
	/* 4 MiB cap: segments of 1 MiB; 100 KiB bodies */
	struct dbi_oq *q = open_q(4 << 20, &err);
	assert_non_null(q);
	uint8_t *b = malloc(100 << 10);
	for (int i = 0; i < 100; i++) {
		struct dbi_oq_meta m = meta(3);
		assert_int_equal(dbi_oq_push(q, &m, b, body(b, i, 100 << 10)), DBI_OK);
		struct dbi_oq_stats st;
		dbi_oq_get_stats(q, &st);
		assert_true(st.disk_bytes <= (4 << 20));
	}
	struct dbi_oq_stats st;
	dbi_oq_get_stats(q, &st);
	assert_true(st.dropped_oldest_reqs > 50);
	assert_int_equal(st.dropped_oldest_items, 3 * st.dropped_oldest_reqs);
	/* what is left is the newest, in order, and adds up */
	struct dbi_oq_item *it;
	int prev = -1, n = 0;
	while (dbi_oq_take(q, &it) == DBI_OK) {
		assert_true(body_id(it) > prev);
		prev = body_id(it);
		n++;
		dbi_oq_part_done(q, it, 0, 3);
	}
	assert_int_equal(prev, 99);
	assert_int_equal((uint64_t)n + st.dropped_oldest_reqs, 100);
	/* a body that can never fit is refused */
	struct dbi_oq_meta m = meta(1);
	uint8_t *huge = calloc(1, 5 << 20);
	assert_int_equal(dbi_oq_push(q, &m, huge, 5 << 20), DBI_ERR);
	free(huge);
	/* resolved segments are gone, only the active one stays */
	assert_int_equal(count_files(".seg"), 1);
	dbi_oq_close(q);
	free(b);
}

static void test_dir_locked(void **state)
{
	(void)state;
	struct dbi_errbuf err;
	struct dbi_oq *q = open_q(0, &err);
	assert_non_null(q);
	pid_t pid = fork();
	if (pid == 0) {
		struct dbi_errbuf e2;
		struct dbi_oq *q2 = open_q(0, &e2);
		_exit(q2 == NULL && strstr(e2.msg, "in use") ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	dbi_oq_close(q);
	/* released on close */
	q = open_q(0, &err);
	assert_non_null(q);
	dbi_oq_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_memory_queue),
	        cmocka_unit_test(test_ranges),
	        cmocka_unit_test_setup_teardown(test_persistent_kill9, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_torn_tail_and_corrupt_body, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_torn_state_slot, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_max_bytes_drops_oldest, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_dir_locked, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
