package io.eventsourced;

/**
 * Folds one event into the state. It must be a pure function of its arguments: it runs when an
 * event was persisted and again for every event on recovery, where it may run on the journal
 * plugin's thread rather than the entity's (always sequentially).
 *
 * @param <S> the state type
 * @param <E> the event type
 */
@FunctionalInterface
public interface EventHandler<S, E> {

  /**
   * Applies one event.
   *
   * @param state the state before the event
   * @param event the event
   * @return the state after the event
   */
  S apply(S state, E event);
}
