package io.eventsourced;

import java.util.Objects;

/**
 * The answer to one command, in three kinds a caller can always tell apart (contract 7): accepted
 * with a reply value, rejected with the entity's typed domain error, or failed for a technical
 * reason (write failed, conflict, entity stopped, stash overflow, timeout).
 *
 * <p>{@link EntityRef#ask} completes its stage with {@link Accepted} or {@link Rejected} and fails
 * it with an {@link EntityException} instead of returning {@link Failed}; actors that send an
 * {@link EntityCommand} with a {@code replyTo} receive all three as messages.
 *
 * @param <R> the reply value type
 * @param <Err> the domain error type
 */
public sealed interface Reply<R, Err> {

  /**
   * The command was accepted: its events (if any) are stored and applied.
   *
   * @param value the reply computed from the new state
   * @param <R> the reply value type
   * @param <Err> the domain error type
   */
  record Accepted<R, Err>(R value) implements Reply<R, Err> {}

  /**
   * The command was rejected by the command handler; nothing was stored.
   *
   * @param error the domain error
   * @param <R> the reply value type
   * @param <Err> the domain error type
   */
  record Rejected<R, Err>(Err error) implements Reply<R, Err> {
    /**
     * Validates that there is an error.
     *
     * @param error as in the record header
     */
    public Rejected {
      Objects.requireNonNull(error, "error");
    }
  }

  /**
   * The command could not be handled for a technical reason. Whether its events were stored is
   * known only after a re-spawn recovers what is stored.
   *
   * @param error what went wrong, naming the entity
   * @param <R> the reply value type
   * @param <Err> the domain error type
   */
  record Failed<R, Err>(EntityException error) implements Reply<R, Err> {
    /**
     * Validates that there is an error.
     *
     * @param error as in the record header
     */
    public Failed {
      Objects.requireNonNull(error, "error");
    }
  }

  /**
   * Whether this is an {@link Accepted} reply.
   *
   * @return true if accepted
   */
  default boolean isAccepted() {
    return this instanceof Accepted;
  }

  /**
   * The accepted value.
   *
   * @return the value of an {@link Accepted} reply
   * @throws IllegalStateException if the reply is a rejection or failure, naming it
   */
  default R acceptedValue() {
    if (this instanceof Accepted<R, Err> accepted) {
      return accepted.value();
    }
    throw new IllegalStateException("reply is not accepted: " + this);
  }
}
