/**
 * The journal (event log) SPI: {@link io.eventsourced.journal.Journal}, the records it works in,
 * its errors, and the in-memory implementation used by default, in tests and in demos.
 */
package io.eventsourced.journal;
