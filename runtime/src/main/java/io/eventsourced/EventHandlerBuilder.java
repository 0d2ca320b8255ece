package io.eventsourced;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BiFunction;

/**
 * Builds an {@link EventHandler} that dispatches on the event's class. Obtain it from {@link
 * EventSourced#newEventHandlerBuilder()}. An event of a class with no case fails recovery (or the
 * write that produced it) with an error naming the class.
 *
 * @param <S> the state type
 * @param <E> the event type
 */
public final class EventHandlerBuilder<S, E> {

  private final Map<Class<?>, BiFunction<S, Object, S>> cases = new LinkedHashMap<>();

  EventHandlerBuilder() {}

  /**
   * Adds the case for one event class.
   *
   * @param type the event class
   * @param handler folds events of that class into the state
   * @param <X> the event class
   * @return this builder
   */
  @SuppressWarnings("unchecked")
  public <X extends E> EventHandlerBuilder<S, E> onEvent(
      Class<X> type, BiFunction<S, X, S> handler) {
    if (cases.putIfAbsent(type, (BiFunction<S, Object, S>) handler) != null) {
      throw new IllegalArgumentException("duplicate event handler for [" + type.getName() + "]");
    }
    return this;
  }

  /**
   * Builds the handler.
   *
   * @return the event handler
   */
  public EventHandler<S, E> build() {
    CommandHandlerBuilder.ClassDispatch<BiFunction<S, Object, S>> dispatch =
        new CommandHandlerBuilder.ClassDispatch<>(new LinkedHashMap<>(cases), "event");
    return (state, event) -> dispatch.find(event.getClass()).apply(state, event);
  }
}
