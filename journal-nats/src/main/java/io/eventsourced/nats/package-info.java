/**
 * NATS JetStream plugins: {@link io.eventsourced.nats.NatsJournal} keeps each entity's events on
 * its own subject of one stream, with the server enforcing optimistic concurrency; {@link
 * io.eventsourced.nats.NatsSnapshotStore} keeps snapshots in a key-value bucket; {@link
 * io.eventsourced.nats.NatsSettings} says how to reach the servers. Select them with {@code
 * eventsourced.journal.plugin = "eventsourced.journal.nats"} and {@code
 * eventsourced.snapshot-store.plugin = "eventsourced.snapshot-store.nats"}; every key is in this
 * module's {@code reference.conf}.
 */
package io.eventsourced.nats;
