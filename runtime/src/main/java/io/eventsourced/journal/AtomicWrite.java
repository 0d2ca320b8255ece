package io.eventsourced.journal;

import io.eventsourced.PersistenceId;
import java.util.List;
import java.util.Objects;

/**
 * The events one command emitted, to be stored together or not at all (contract 4), guarded by
 * the sequence number the writer expects to be the entity's last (contract 5).
 *
 * <p>The events carry the sequence numbers {@code expectedSequenceNr + 1, + 2, ...} in order; the
 * constructor rejects anything else, so a journal can rely on it.
 *
 * @param persistenceId the entity written to
 * @param expectedSequenceNr the highest sequence number the writer believes is stored, 0 for a new
 *     entity
 * @param events the events, at least one, contiguous from {@code expectedSequenceNr + 1}
 */
public record AtomicWrite(
    PersistenceId persistenceId, long expectedSequenceNr, List<PersistentRepr> events) {

  /**
   * Validates that the events are non-empty, of this entity and contiguous.
   *
   * @param persistenceId as in the record header
   * @param expectedSequenceNr as in the record header
   * @param events as in the record header
   */
  public AtomicWrite {
    Objects.requireNonNull(persistenceId, "persistenceId");
    events = List.copyOf(events);
    if (expectedSequenceNr < 0) {
      throw new IllegalArgumentException(
          "expectedSequenceNr must be >= 0 for [" + persistenceId + "], was [" + expectedSequenceNr + "]");
    }
    if (events.isEmpty()) {
      throw new IllegalArgumentException("an atomic write for [" + persistenceId + "] needs events");
    }
    long next = expectedSequenceNr + 1;
    for (PersistentRepr event : events) {
      if (!event.persistenceId().equals(persistenceId)) {
        throw new IllegalArgumentException(
            "event of [" + event.persistenceId() + "] in an atomic write for [" + persistenceId + "]");
      }
      if (event.sequenceNr() != next) {
        throw new IllegalArgumentException(
            "events of ["
                + persistenceId
                + "] must be contiguous: expected sequenceNr ["
                + next
                + "], got ["
                + event.sequenceNr()
                + "]");
      }
      next++;
    }
  }

  /**
   * The sequence number of the last event in this write.
   *
   * @return {@code expectedSequenceNr + events.size()}
   */
  public long highestSequenceNr() {
    return expectedSequenceNr + events.size();
  }
}
