/**
 * The snapshot store SPI: {@link io.eventsourced.snapshot.SnapshotStore}, its record, and the
 * in-memory implementation used by default.
 */
package io.eventsourced.snapshot;
