package io.eventsourced.journal;

import io.eventsourced.PersistenceId;

/**
 * A journal operation failed: the store was unreachable, an outcome is uncertain, or stored data
 * could not be read. Names the entity and the sequence number concerned.
 */
public class JournalException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final transient PersistenceId persistenceId;
  private final long sequenceNr;

  /**
   * Creates the exception.
   *
   * @param message what could not be done, with the values in brackets
   * @param persistenceId the entity concerned
   * @param sequenceNr the sequence number concerned, 0 if none
   * @param cause the underlying error, may be {@code null}
   */
  public JournalException(
      String message, PersistenceId persistenceId, long sequenceNr, Throwable cause) {
    super(message, cause);
    this.persistenceId = persistenceId;
    this.sequenceNr = sequenceNr;
  }

  /**
   * The entity concerned.
   *
   * @return the persistence id
   */
  public PersistenceId persistenceId() {
    return persistenceId;
  }

  /**
   * The sequence number concerned (the first of a failed write, the event that failed to replay).
   *
   * @return the sequence number, 0 if none applies
   */
  public long sequenceNr() {
    return sequenceNr;
  }
}
