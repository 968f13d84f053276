/*
 * pg_metrics.c — the metric catalog of the `postgresql` receiver: every metric of the
 * OpenTelemetry Collector's postgresqlreceiver with its exact name, unit, type and
 * default enablement (so dashboards built for it work unchanged), then dbi's own
 * metrics under `postgresql.` where OTel has none, then the receiver's own health
 * metrics under `dbi.postgresql.`. Each metric belongs to one group; a group's SQL runs
 * only when the group is enabled and at least one of its metrics is on.
 * docs/postgresql-metrics.md documents each one with its SQL source.
 */
#include <string.h>

#include "pg_int.h"

const char *const dbi_pg_group_names[PG_G_COUNT] = {
        [PG_G_SERVER] = "server",
        [PG_G_DATABASE] = "database",
        [PG_G_CONFLICTS] = "conflicts",
        [PG_G_BGWRITER] = "bgwriter",
        [PG_G_WAL] = "wal",
        [PG_G_ARCHIVER] = "archiver",
        [PG_G_REPLICATION] = "replication",
        [PG_G_SLOTS] = "replication_slots",
        [PG_G_LOCKS] = "locks",
        [PG_G_ACTIVITY] = "activity",
        [PG_G_QUERY_TIME] = "query_time",
        [PG_G_STATEMENTS] = "statements",
        [PG_G_TABLES] = "tables",
        [PG_G_INDEXES] = "indexes",
        [PG_G_FUNCTIONS] = "functions",
        [PG_G_RELATION_LOCKS] = "relation_locks",
};

#define G DBI_MK_GAUGE
#define S DBI_MK_SUM
/* name, unit, description, kind, monotonic, double, default on, group */
const struct pg_metric_info dbi_pg_metrics[PGM_COUNT] = {
        [PGM_BACKENDS] = {"postgresql.backends", "1", "The number of backends.", S, 0, 0, 1, PG_G_DATABASE},
        [PGM_BGW_BUF_ALLOC] = {"postgresql.bgwriter.buffers.allocated", "{buffers}", "Number of buffers allocated.", S,
                               1, 0, 1, PG_G_BGWRITER},
        [PGM_BGW_BUF_WRITES] = {"postgresql.bgwriter.buffers.writes", "{buffers}", "Number of buffers written.", S, 1,
                                0, 1, PG_G_BGWRITER},
        [PGM_BGW_CKPT_COUNT] = {"postgresql.bgwriter.checkpoint.count", "{checkpoints}",
                                "The number of checkpoints performed.", S, 1, 0, 1, PG_G_BGWRITER},
        [PGM_BGW_DURATION] = {"postgresql.bgwriter.duration", "ms",
                              "Total time spent writing and syncing files to disk by checkpoints.", S, 1, 1, 1,
                              PG_G_BGWRITER},
        [PGM_BGW_MAXWRITTEN] = {"postgresql.bgwriter.maxwritten", "1",
                                "Number of times the background writer stopped a cleaning scan because it had "
                                "written too many buffers.",
                                S, 1, 0, 1, PG_G_BGWRITER},
        [PGM_BLOCKS_READ] = {"postgresql.blocks_read", "1", "The number of blocks read.", S, 1, 0, 1, PG_G_TABLES},
        [PGM_COMMITS] = {"postgresql.commits", "1", "The number of commits.", S, 1, 0, 1, PG_G_DATABASE},
        [PGM_ROLLBACKS] = {"postgresql.rollbacks", "1", "The number of rollbacks.", S, 1, 0, 1, PG_G_DATABASE},
        [PGM_CONN_MAX] = {"postgresql.connection.max", "{connections}",
                          "Configured maximum number of client connections allowed", G, 0, 0, 1, PG_G_SERVER},
        [PGM_DB_COUNT] = {"postgresql.database.count", "{databases}", "Number of user databases.", S, 0, 0, 1,
                          PG_G_SERVER},
        [PGM_DB_SIZE] = {"postgresql.db_size", "By", "The database disk usage.", S, 0, 0, 1, PG_G_DATABASE},
        [PGM_INDEX_SCANS] = {"postgresql.index.scans", "{scans}", "The number of index scans on a table.", S, 1, 0, 1,
                             PG_G_INDEXES},
        [PGM_INDEX_SIZE] = {"postgresql.index.size", "By", "The size of the index on disk.", G, 0, 0, 1, PG_G_INDEXES},
        [PGM_OPERATIONS] = {"postgresql.operations", "1", "The number of db row operations.", S, 1, 0, 1, PG_G_TABLES},
        [PGM_REPL_DATA_DELAY] = {"postgresql.replication.data_delay", "By",
                                 "The amount of data delayed in replication.", G, 0, 0, 1, PG_G_REPLICATION},
        [PGM_ROWS] = {"postgresql.rows", "1", "The number of rows in the database.", S, 0, 0, 1, PG_G_TABLES},
        [PGM_TABLE_COUNT] = {"postgresql.table.count", "{table}", "Number of user tables in a database.", S, 0, 0, 1,
                             PG_G_TABLES},
        [PGM_TABLE_SIZE] = {"postgresql.table.size", "By", "Disk space used by a table.", S, 0, 0, 1, PG_G_TABLES},
        [PGM_TABLE_VACUUM] = {"postgresql.table.vacuum.count", "{vacuum}",
                              "Number of times a table has manually been vacuumed.", S, 1, 0, 1, PG_G_TABLES},
        [PGM_WAL_AGE] = {"postgresql.wal.age", "s", "Age of the oldest WAL file.", G, 0, 0, 1, PG_G_ARCHIVER},
        [PGM_WAL_LAG] = {"postgresql.wal.lag", "s",
                         "Time between flushing recent WAL locally and receiving notification that the standby "
                         "server has completed an operation with it.",
                         G, 0, 0, 1, PG_G_REPLICATION},

        [PGM_BLKS_HIT] = {"postgresql.blks_hit", "{blks_hit}",
                          "Number of times disk blocks were found already in the buffer cache.", S, 1, 0, 0,
                          PG_G_DATABASE},
        [PGM_BLKS_READ] = {"postgresql.blks_read", "{blks_read}", "Number of disk blocks read in this database.", S, 1,
                           0, 0, PG_G_DATABASE},
        [PGM_DEADLOCKS] = {"postgresql.deadlocks", "{deadlock}", "The number of deadlocks.", S, 1, 0, 0, PG_G_DATABASE},
        [PGM_TEMP_FILES] = {"postgresql.temp_files", "{temp_file}", "The number of temp files.", S, 1, 0, 0,
                            PG_G_DATABASE},
        [PGM_TEMP_IO] = {"postgresql.temp.io", "By", "Total amount of data written to temporary files by queries.", S,
                         1, 0, 0, PG_G_DATABASE},
        [PGM_TUP_DELETED] = {"postgresql.tup_deleted", "{tup_deleted}",
                             "Number of rows deleted by queries in the database.", S, 1, 0, 0, PG_G_DATABASE},
        [PGM_TUP_FETCHED] = {"postgresql.tup_fetched", "{tup_fetched}",
                             "Number of rows fetched by queries in the database.", S, 1, 0, 0, PG_G_DATABASE},
        [PGM_TUP_INSERTED] = {"postgresql.tup_inserted", "{tup_inserted}",
                              "Number of rows inserted by queries in the database.", S, 1, 0, 0, PG_G_DATABASE},
        [PGM_TUP_RETURNED] = {"postgresql.tup_returned", "{tup_returned}",
                              "Number of rows returned by queries in the database.", S, 1, 0, 0, PG_G_DATABASE},
        [PGM_TUP_UPDATED] = {"postgresql.tup_updated", "{tup_updated}",
                             "Number of rows updated by queries in the database.", S, 1, 0, 0, PG_G_DATABASE},
        [PGM_DB_LOCKS] = {"postgresql.database.locks", "{lock}", "The number of database locks.", G, 0, 0, 0,
                          PG_G_RELATION_LOCKS},
        [PGM_FUNC_CALLS] = {"postgresql.function.calls", "{call}", "The number of calls made to a function.", S, 1, 0,
                            0, PG_G_FUNCTIONS},
        [PGM_QUERY_CONFLICTS] = {"postgresql.query.conflicts", "{query}",
                                 "Number of queries canceled due to conflicts with recovery on this database.", S, 1, 0,
                                 0, PG_G_CONFLICTS},
        [PGM_QUERY_EXEC_TIME] = {"postgresql.query.execution.time", "s",
                                 "The total execution time of SQL statements currently tracked by "
                                 "pg_stat_statements for the database.",
                                 S, 1, 1, 0, PG_G_QUERY_TIME},
        [PGM_SEQ_SCANS] = {"postgresql.sequential_scans", "{sequential_scan}", "The number of sequential scans.", S, 1,
                           0, 0, PG_G_TABLES},
        [PGM_WAL_DELAY] = {"postgresql.wal.delay", "s",
                           "Time between flushing recent WAL locally and receiving notification that the standby "
                           "server has completed an operation with it.",
                           G, 0, 1, 0, PG_G_REPLICATION},

        [PGM_XID_AGE] = {"postgresql.database.xid_age", "{transaction}",
                         "Age of the database's frozen transaction id (wraparound distance used).", G, 0, 0, 1,
                         PG_G_DATABASE},
        [PGM_MXID_AGE] = {"postgresql.database.multixact_age", "{multixact}",
                          "Age of the database's minimum multixact id (wraparound distance used).", G, 0, 0, 1,
                          PG_G_DATABASE},
        [PGM_TABLE_AUTOVACUUM] = {"postgresql.table.autovacuum.count", "{vacuum}",
                                  "Number of times a table has been vacuumed by autovacuum.", S, 1, 0, 1, PG_G_TABLES},
        [PGM_TABLE_ANALYZE] = {"postgresql.table.analyze.count", "{analyze}",
                               "Number of times a table has manually been analyzed.", S, 1, 0, 1, PG_G_TABLES},
        [PGM_TABLE_AUTOANALYZE] = {"postgresql.table.autoanalyze.count", "{analyze}",
                                   "Number of times a table has been analyzed by autovacuum.", S, 1, 0, 1, PG_G_TABLES},
        [PGM_INDEX_TUP_READ] = {"postgresql.index.tuples.read", "{tuple}",
                                "Index entries returned by scans of the index.", S, 1, 0, 0, PG_G_INDEXES},
        [PGM_INDEX_TUP_FETCH] = {"postgresql.index.tuples.fetched", "{tuple}",
                                 "Live table rows fetched by simple index scans of the index.", S, 1, 0, 0,
                                 PG_G_INDEXES},
        [PGM_FUNC_TIME] = {"postgresql.function.duration", "ms",
                           "Time spent in a function (type total: with callees; self: without).", S, 1, 1, 0,
                           PG_G_FUNCTIONS},
        [PGM_LOCKS] = {"postgresql.locks", "{lock}", "Locks held or awaited in the cluster, by mode.", G, 0, 0, 1,
                       PG_G_LOCKS},
        [PGM_ACT_SESSIONS] = {"postgresql.activity.sessions", "{session}",
                              "Server processes by state, wait event and backend type (pg_stat_activity).", G, 0, 0, 1,
                              PG_G_ACTIVITY},
        [PGM_ACT_BLOCKED] = {"postgresql.activity.blocked", "{session}",
                             "Sessions waiting on a lock held by another session (pg_blocking_pids).", G, 0, 0, 1,
                             PG_G_ACTIVITY},
        [PGM_ACT_OLDEST_XACT] = {"postgresql.activity.oldest_transaction.age", "s",
                                 "Age of the oldest open transaction of a client backend.", G, 0, 1, 1, PG_G_ACTIVITY},
        [PGM_ACT_OLDEST_XMIN] = {"postgresql.activity.oldest_xmin.age", "{transaction}",
                                 "Age of the oldest snapshot xmin held by a backend (what holds back vacuum).", G, 0, 0,
                                 1, PG_G_ACTIVITY},
        [PGM_CONN_COUNT] = {"postgresql.connection.count", "{connections}", "Client backends connected.", G, 0, 0, 1,
                            PG_G_ACTIVITY},
        [PGM_CONN_USAGE] = {"postgresql.connection.usage", "1", "Client backends connected divided by max_connections.",
                            G, 0, 1, 1, PG_G_ACTIVITY},
        [PGM_SLOT_RETAINED] = {"postgresql.replication_slot.retained_wal", "By",
                               "WAL retained by a replication slot (from its restart_lsn).", G, 0, 0, 1, PG_G_SLOTS},
        [PGM_SLOT_ACTIVE] = {"postgresql.replication_slot.active", "1",
                             "1 when a replication slot is in use by a connection, else 0.", G, 0, 0, 1, PG_G_SLOTS},
        [PGM_SLOT_WAL_STATUS] = {"postgresql.replication_slot.wal_status", "1",
                                 "1 for the slot's current wal_status (reserved, extended, unreserved, lost).", G, 0, 0,
                                 1, PG_G_SLOTS},
        [PGM_WAL_BYTES] = {"postgresql.wal.bytes", "By", "WAL generated (pg_stat_wal.wal_bytes).", S, 1, 0, 1,
                           PG_G_WAL},
        [PGM_WAL_RECORDS] = {"postgresql.wal.records", "{record}", "WAL records generated.", S, 1, 0, 1, PG_G_WAL},
        [PGM_WAL_FPI] = {"postgresql.wal.full_page_images", "{image}", "WAL full page images generated.", S, 1, 0, 1,
                         PG_G_WAL},
        [PGM_WAL_BUFFERS_FULL] = {"postgresql.wal.buffers_full", "{event}",
                                  "Times WAL data was written to disk because the WAL buffers became full.", S, 1, 0, 1,
                                  PG_G_WAL},
        [PGM_CKPT_RESTARTPOINTS] = {"postgresql.checkpointer.restartpoints", "{restartpoint}",
                                    "Restartpoints (PostgreSQL 17+): type scheduled, requested, done.", S, 1, 0, 1,
                                    PG_G_BGWRITER},
        [PGM_ARCH_ARCHIVED] = {"postgresql.archiver.archived", "{file}", "WAL files archived successfully.", S, 1, 0, 1,
                               PG_G_ARCHIVER},
        [PGM_ARCH_FAILED] = {"postgresql.archiver.failed", "{file}", "Failed attempts to archive WAL files.", S, 1, 0,
                             1, PG_G_ARCHIVER},

        [PGM_SELF_UP] = {"dbi.postgresql.up", "1", "1 when the last scrape of the target succeeded, else 0.", G, 0, 0,
                         1, PG_G_SERVER},
        [PGM_SELF_SCRAPE_DURATION] = {"dbi.postgresql.scrape.duration", "s",
                                      "Wall time of the target's last scrape, all databases.", G, 0, 1, 1, PG_G_SERVER},
        [PGM_SELF_GROUP_ENABLED] = {"dbi.postgresql.group.enabled", "1",
                                    "1 when a metric group runs on the target, 0 when configured but turned off "
                                    "(missing privilege, extension or server version).",
                                    G, 0, 0, 1, PG_G_SERVER},
        [PGM_SELF_SCRAPE_ERRORS] = {"dbi.postgresql.scrape.errors", "{error}", "Scrape errors by group and reason.", S,
                                    1, 0, 1, PG_G_SERVER},
};
#undef G
#undef S

int dbi_pg_metric_find(const char *name)
{
	for (int i = 0; i < PGM_COUNT; i++)
		if (strcmp(dbi_pg_metrics[i].name, name) == 0)
			return i;
	return -1;
}
