package io.eventsourced;

/**
 * A technical failure of an entity, as opposed to a domain rejection: the journal failed or
 * reported a conflict, the entity stopped, its stash overflowed, an event could not be serialized,
 * a handler threw, or no reply came in time. The cause, if any, is the underlying error (for
 * example a {@link io.eventsourced.journal.ConcurrencyConflictException}).
 */
public final class EntityException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final transient PersistenceId persistenceId;

  /**
   * Creates the exception.
   *
   * @param persistenceId the entity concerned
   * @param message what could not be done, with the values in brackets
   * @param cause the underlying error, may be {@code null}
   */
  public EntityException(PersistenceId persistenceId, String message, Throwable cause) {
    super(message, cause);
    this.persistenceId = persistenceId;
  }

  /**
   * The entity concerned.
   *
   * @return the persistence id, or {@code null} when only the actor is known (an {@link
   *     EntityCommand} that reached a stopped entity actor)
   */
  public PersistenceId persistenceId() {
    return persistenceId;
  }
}
