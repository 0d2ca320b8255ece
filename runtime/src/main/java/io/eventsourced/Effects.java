package io.eventsourced;

import java.util.List;
import java.util.Objects;

/**
 * The one entry point for building an {@link Effect}, obtained from {@link EventSourced#effect()}
 * so its type parameters are the entity's.
 *
 * <pre>{@code
 * effect().persist(new Increased(n)).thenReply(state -> state.value())
 * effect().persist(List.of(a, b)).thenReply(state -> ...)   // atomically
 * effect().reply(state.value())                             // no events
 * effect().reject(new Overflow(state.value(), n))           // typed domain error
 * effect().none().thenNoReply()
 * effect().stop().thenReply(state -> ...)
 * }</pre>
 *
 * @param <E> the event type
 * @param <S> the state type
 * @param <R> the reply value type
 * @param <Err> the domain error type
 */
public final class Effects<E, S, R, Err> {

  private static final Effects<?, ?, ?, ?> INSTANCE = new Effects<>();

  private Effects() {}

  @SuppressWarnings("unchecked")
  static <E, S, R, Err> Effects<E, S, R, Err> instance() {
    return (Effects<E, S, R, Err>) INSTANCE;
  }

  /**
   * Persists one event.
   *
   * @param event the event
   * @return a builder to choose the reply
   */
  public Effect.Builder<E, S, R, Err> persist(E event) {
    Objects.requireNonNull(event, "event");
    return new Effect.Builder<>(List.of(event), false);
  }

  /**
   * Persists several events atomically: all are stored or none.
   *
   * @param events the events, in order
   * @return a builder to choose the reply
   */
  public Effect.Builder<E, S, R, Err> persist(List<? extends E> events) {
    return new Effect.Builder<>(List.copyOf(events), false);
  }

  /**
   * Persists nothing.
   *
   * @return a builder to choose the reply
   */
  public Effect.Builder<E, S, R, Err> none() {
    return new Effect.Builder<>(List.of(), false);
  }

  /**
   * Persists nothing and stops the entity after replying.
   *
   * @return a builder to choose the reply
   */
  public Effect.Builder<E, S, R, Err> stop() {
    return new Effect.Builder<>(List.of(), true);
  }

  /**
   * Replies without persisting anything.
   *
   * @param value the reply value
   * @return the effect
   */
  public Effect<E, S, R, Err> reply(R value) {
    return new Effect<>(List.of(), false, state -> new Reply.Accepted<>(value));
  }

  /**
   * Rejects the command with a domain error; nothing is persisted.
   *
   * @param error the typed domain error
   * @return the effect
   */
  public Effect<E, S, R, Err> reject(Err error) {
    Reply<R, Err> rejected = new Reply.Rejected<>(error);
    return new Effect<>(List.of(), false, state -> rejected);
  }
}
