package io.eventsourced.journal;

import io.eventsourced.PersistenceId;

/**
 * An append carried an expected sequence number that is not the entity's last stored one: another
 * writer got there first (contract 5). Nothing of the rejected write was stored and nothing stored
 * was changed.
 */
public final class ConcurrencyConflictException extends JournalException {
  private static final long serialVersionUID = 1L;

  private final long expectedSequenceNr;
  private final long actualSequenceNr;

  /**
   * Creates the exception.
   *
   * @param persistenceId the entity written to
   * @param expectedSequenceNr what the writer expected as the last stored sequence number
   * @param actualSequenceNr the last stored sequence number, or -1 if the store does not tell
   */
  public ConcurrencyConflictException(
      PersistenceId persistenceId, long expectedSequenceNr, long actualSequenceNr) {
    super(
        "cannot append events for ["
            + persistenceId
            + "]: expected sequenceNr ["
            + expectedSequenceNr
            + "], found ["
            + (actualSequenceNr < 0 ? "unknown" : Long.toString(actualSequenceNr))
            + "]",
        persistenceId,
        expectedSequenceNr + 1,
        null);
    this.expectedSequenceNr = expectedSequenceNr;
    this.actualSequenceNr = actualSequenceNr;
  }

  /**
   * The sequence number the writer expected to be the last stored one.
   *
   * @return the expected sequence number
   */
  public long expectedSequenceNr() {
    return expectedSequenceNr;
  }

  /**
   * The last stored sequence number, if the store reported it.
   *
   * @return the actual sequence number, or -1 if unknown
   */
  public long actualSequenceNr() {
    return actualSequenceNr;
  }
}
