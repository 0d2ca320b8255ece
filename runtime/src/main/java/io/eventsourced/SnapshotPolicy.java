package io.eventsourced;

/**
 * When an entity saves a snapshot of its state: never (the default), every N sequence numbers,
 * when a predicate on state, event and sequence number holds, or either. It is checked for every
 * persisted event; if any event of a write qualifies, one snapshot of the state after the whole
 * write is saved. Saving runs in the background; a failed save is logged and is not fatal.
 *
 * @param <S> the state type
 * @param <E> the event type
 */
@FunctionalInterface
public interface SnapshotPolicy<S, E> {

  /**
   * Whether to snapshot after this event.
   *
   * @param state the state after the event
   * @param event the event
   * @param sequenceNr the event's sequence number
   * @return true to save a snapshot
   */
  boolean shouldSnapshot(S state, E event, long sequenceNr);

  /**
   * Never snapshot.
   *
   * @param <S> the state type
   * @param <E> the event type
   * @return the policy
   */
  static <S, E> SnapshotPolicy<S, E> never() {
    return (state, event, sequenceNr) -> false;
  }

  /**
   * Snapshot whenever the sequence number is a multiple of {@code n}.
   *
   * @param n the interval, at least 1
   * @param <S> the state type
   * @param <E> the event type
   * @return the policy
   */
  static <S, E> SnapshotPolicy<S, E> every(long n) {
    if (n < 1) {
      throw new IllegalArgumentException("snapshot interval must be >= 1, was [" + n + "]");
    }
    return (state, event, sequenceNr) -> sequenceNr % n == 0;
  }

  /**
   * Snapshot when either this or the other policy says so.
   *
   * @param other the other policy
   * @return the combined policy
   */
  default SnapshotPolicy<S, E> or(SnapshotPolicy<S, E> other) {
    return (state, event, sequenceNr) ->
        shouldSnapshot(state, event, sequenceNr) || other.shouldSnapshot(state, event, sequenceNr);
  }
}
