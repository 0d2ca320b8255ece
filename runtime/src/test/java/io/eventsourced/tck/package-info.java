/**
 * The conformance suite (TCK) for journals and snapshot stores, published in the runtime's
 * test-jar: extend {@link io.eventsourced.tck.JournalTck} and {@link
 * io.eventsourced.tck.SnapshotStoreTck} in a backend's tests, and run {@link
 * io.eventsourced.tck.EntityFaultCheck} under a fault of the test's making.
 */
package io.eventsourced.tck;
