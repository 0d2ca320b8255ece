package io.eventsourced;

import java.util.List;
import java.util.Objects;
import java.util.function.Function;

/**
 * What a command does: the events to persist atomically (possibly none), whether the entity stops
 * afterwards, and the reply, computed from the state after the events were applied. Built only
 * through {@link EventSourced#effect()}; a command handler returns an {@code Effect}, and every way
 * of building one ends in a reply decision ({@code thenReply}, {@code reply}, {@code reject} or the
 * explicit {@code thenNoReply}), so a forgotten reply does not compile.
 *
 * <p>The accessors let command handlers be unit-tested without actors.
 *
 * @param <E> the event type
 * @param <S> the state type
 * @param <R> the reply value type
 * @param <Err> the domain error type
 */
public final class Effect<E, S, R, Err> {

  private final List<E> events;
  private final boolean stop;
  private final Function<S, Reply<R, Err>> reply; // null: no reply

  Effect(List<E> events, boolean stop, Function<S, Reply<R, Err>> reply) {
    this.events = events;
    this.stop = stop;
    this.reply = reply;
  }

  /**
   * The events to persist, in order, all in one atomic write.
   *
   * @return the events, empty if none
   */
  public List<E> events() {
    return events;
  }

  /**
   * Whether the entity stops after persisting and replying.
   *
   * @return true to stop
   */
  public boolean stops() {
    return stop;
  }

  /**
   * Whether the caller gets a reply.
   *
   * @return false only for {@code thenNoReply()}
   */
  public boolean hasReply() {
    return reply != null;
  }

  /**
   * The reply for the state after the events were applied.
   *
   * @param newState the state after the events
   * @return the reply
   * @throws IllegalStateException if this effect has no reply
   */
  public Reply<R, Err> reply(S newState) {
    if (reply == null) {
      throw new IllegalStateException("this effect has no reply (thenNoReply)");
    }
    return reply.apply(newState);
  }

  /**
   * An effect under construction: events chosen, reply not yet. Finish it with {@link #thenReply},
   * or {@link #thenNoReply()}.
   *
   * @param <E> the event type
   * @param <S> the state type
   * @param <R> the reply value type
   * @param <Err> the domain error type
   */
  public static final class Builder<E, S, R, Err> {
    private final List<E> events;
    private final boolean stop;

    Builder(List<E> events, boolean stop) {
      this.events = events;
      this.stop = stop;
    }

    /**
     * Stops the entity after the events are persisted and the reply is sent.
     *
     * @return the builder
     */
    public Builder<E, S, R, Err> thenStop() {
      return new Builder<>(events, true);
    }

    /**
     * Replies with a value computed from the state after the events are persisted and applied.
     *
     * @param replyFromState computes the reply value from the new state
     * @return the effect
     */
    public Effect<E, S, R, Err> thenReply(Function<S, R> replyFromState) {
      Objects.requireNonNull(replyFromState, "replyFromState");
      return new Effect<>(events, stop, state -> new Reply.Accepted<>(replyFromState.apply(state)));
    }

    /**
     * Sends no reply at all: only for commands whose senders expect none. An {@link EntityRef#ask}
     * of such a command times out.
     *
     * @return the effect
     */
    public Effect<E, S, R, Err> thenNoReply() {
      return new Effect<>(events, stop, null);
    }
  }
}
