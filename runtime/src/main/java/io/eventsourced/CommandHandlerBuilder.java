package io.eventsourced;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BiFunction;

/**
 * Builds a {@link CommandHandler} that dispatches on the command's class, in the style of Pekko's
 * {@code forAnyState().onCommand(Increase.class, this::onIncrease)}. Obtain it from {@link
 * EventSourced#newCommandHandlerBuilder()}. A command of a class with no case fails that command
 * with an {@link EntityException} naming the class.
 *
 * @param <C> the command type
 * @param <E> the event type
 * @param <S> the state type
 * @param <R> the reply value type
 * @param <Err> the domain error type
 */
public final class CommandHandlerBuilder<C, E, S, R, Err> {

  private final Map<Class<?>, BiFunction<S, Object, Effect<E, S, R, Err>>> cases =
      new LinkedHashMap<>();

  CommandHandlerBuilder() {}

  /**
   * Adds the case for one command class (and its subclasses, unless they have their own case).
   *
   * @param type the command class
   * @param handler handles commands of that class
   * @param <X> the command class
   * @return this builder
   */
  @SuppressWarnings("unchecked")
  public <X extends C> CommandHandlerBuilder<C, E, S, R, Err> onCommand(
      Class<X> type, BiFunction<S, X, Effect<E, S, R, Err>> handler) {
    if (cases.putIfAbsent(type, (BiFunction<S, Object, Effect<E, S, R, Err>>) handler) != null) {
      throw new IllegalArgumentException("duplicate command handler for [" + type.getName() + "]");
    }
    return this;
  }

  /**
   * Builds the handler.
   *
   * @return the command handler
   */
  public CommandHandler<C, E, S, R, Err> build() {
    ClassDispatch<BiFunction<S, Object, Effect<E, S, R, Err>>> dispatch =
        new ClassDispatch<>(new LinkedHashMap<>(cases), "command");
    return (state, command) -> dispatch.find(command.getClass()).apply(state, command);
  }

  /** Finds the case for a class: exact match first, then the first assignable case, cached. */
  static final class ClassDispatch<H> {
    private final Map<Class<?>, H> declared;
    private final Map<Class<?>, H> resolved = new ConcurrentHashMap<>();
    private final String kind;

    ClassDispatch(Map<Class<?>, H> declared, String kind) {
      this.declared = declared;
      this.kind = kind;
    }

    H find(Class<?> type) {
      H handler = resolved.get(type);
      if (handler != null) {
        return handler;
      }
      handler = declared.get(type);
      if (handler == null) {
        for (Map.Entry<Class<?>, H> entry : declared.entrySet()) {
          if (entry.getKey().isAssignableFrom(type)) {
            handler = entry.getValue();
            break;
          }
        }
      }
      if (handler == null) {
        throw new IllegalStateException("no " + kind + " handler for [" + type.getName() + "]");
      }
      resolved.put(type, handler);
      return handler;
    }
  }
}
