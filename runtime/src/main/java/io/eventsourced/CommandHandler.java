package io.eventsourced;

/**
 * Decides what a command does, given the current state: reject it or emit events, and what to
 * reply. It must not have side effects; the runtime persists the events of the returned {@link
 * Effect}, applies them through the {@link EventHandler} and only then replies.
 *
 * <p>Write one as a lambda with {@code instanceof} patterns, or build one keyed by command class
 * with {@link EventSourced#newCommandHandlerBuilder()}.
 *
 * @param <C> the command type
 * @param <E> the event type
 * @param <S> the state type
 * @param <R> the reply value type
 * @param <Err> the domain error type
 */
@FunctionalInterface
public interface CommandHandler<C, E, S, R, Err> {

  /**
   * Handles one command.
   *
   * @param state the current state
   * @param command the command
   * @return the effect: events to persist and the reply, a rejection, or none
   */
  Effect<E, S, R, Err> apply(S state, C command);
}
