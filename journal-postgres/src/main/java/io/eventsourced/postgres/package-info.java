/**
 * The PostgreSQL journal and snapshot store: {@link io.eventsourced.postgres.PostgresJournal},
 * {@link io.eventsourced.postgres.PostgresSnapshotStore} and their {@link
 * io.eventsourced.postgres.PostgresSettings}, on pgjdbc with a HikariCP pool.
 *
 * <p>Select them with {@code eventsourced.journal.plugin = "eventsourced.journal.postgres"} and
 * {@code eventsourced.snapshot-store.plugin = "eventsourced.snapshot-store.postgres"}; the
 * connection settings live in {@code eventsourced.postgres} (see the module's {@code
 * reference.conf}) and the DDL ships as {@code io/eventsourced/postgres/schema.sql}.
 */
package io.eventsourced.postgres;
