package io.eventsourced.sample.counter;

import com.google.protobuf.Message;
import io.eventsourced.CommandHandler;
import io.eventsourced.Effect;
import io.eventsourced.EventHandler;
import io.eventsourced.EventSourced;
import io.eventsourced.SnapshotPolicy;
import io.eventsourced.sample.counter.proto.Decreased;
import io.eventsourced.sample.counter.proto.Increased;

/**
 * The counter entity: a non-negative value, increased and decreased by commands. Going below zero
 * or above {@link Long#MAX_VALUE} is rejected with a typed error. Events are protobuf messages
 * generated from {@code counter.proto}; the state is the value itself.
 */
public final class Counter implements EventSourced<Counter.Command, Message, Long, Long, Counter.Error> {

  /** What a counter can be asked to do. */
  public sealed interface Command {}

  /**
   * Increase the value by {@code n}; replies with the new value.
   *
   * @param n the amount, at least 0
   */
  public record Increase(long n) implements Command {
    /**
     * Validates the amount.
     *
     * @param n as in the record header
     */
    public Increase {
      if (n < 0) {
        throw new IllegalArgumentException("Increase amount must be >= 0, was [" + n + "]");
      }
    }
  }

  /**
   * Decrease the value by {@code n}; replies with the new value.
   *
   * @param n the amount, at least 0
   */
  public record Decrease(long n) implements Command {
    /**
     * Validates the amount.
     *
     * @param n as in the record header
     */
    public Decrease {
      if (n < 0) {
        throw new IllegalArgumentException("Decrease amount must be >= 0, was [" + n + "]");
      }
    }
  }

  /** Reply with the current value. */
  public record Get() implements Command {}

  /** Why a command was rejected. */
  public sealed interface Error {}

  /**
   * Increasing would exceed {@link Long#MAX_VALUE}.
   *
   * @param value the current value
   * @param n the requested increase
   */
  public record Overflow(long value, long n) implements Error {}

  /**
   * Decreasing would go below zero.
   *
   * @param value the current value
   * @param n the requested decrease
   */
  public record Underflow(long value, long n) implements Error {}

  private final long snapshotEvery;

  /**
   * Creates the definition.
   *
   * @param snapshotEvery save a snapshot every this many events; 0 for never
   */
  public Counter(long snapshotEvery) {
    this.snapshotEvery = snapshotEvery;
  }

  @Override
  public String typeName() {
    return "counter";
  }

  @Override
  public Long emptyState() {
    return 0L;
  }

  @Override
  public CommandHandler<Command, Message, Long, Long, Error> commandHandler() {
    return newCommandHandlerBuilder()
        .onCommand(Increase.class, this::onIncrease)
        .onCommand(Decrease.class, this::onDecrease)
        .onCommand(Get.class, (value, get) -> effect().reply(value))
        .build();
  }

  private Effect<Message, Long, Long, Error> onIncrease(Long value, Increase increase) {
    if (increase.n() > Long.MAX_VALUE - value) {
      return effect().reject(new Overflow(value, increase.n()));
    }
    return effect().persist(Increased.newBuilder().setN(increase.n()).build()).thenReply(v -> v);
  }

  private Effect<Message, Long, Long, Error> onDecrease(Long value, Decrease decrease) {
    if (decrease.n() > value) {
      return effect().reject(new Underflow(value, decrease.n()));
    }
    return effect().persist(Decreased.newBuilder().setN(decrease.n()).build()).thenReply(v -> v);
  }

  @Override
  public EventHandler<Long, Message> eventHandler() {
    return newEventHandlerBuilder()
        .onEvent(Increased.class, (value, increased) -> value + increased.getN())
        .onEvent(Decreased.class, (value, decreased) -> value - decreased.getN())
        .build();
  }

  @Override
  public SnapshotPolicy<Long, Message> snapshotPolicy() {
    return snapshotEvery > 0 ? SnapshotPolicy.every(snapshotEvery) : SnapshotPolicy.never();
  }
}
