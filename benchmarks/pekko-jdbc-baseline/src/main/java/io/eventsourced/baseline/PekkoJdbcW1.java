package io.eventsourced.baseline;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.Done;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.persistence.typed.PersistenceId;
import org.apache.pekko.persistence.typed.javadsl.CommandHandler;
import org.apache.pekko.persistence.typed.javadsl.EventHandler;
import org.apache.pekko.persistence.typed.javadsl.EventSourcedBehavior;

/**
 * Workload W1 on Pekko Persistence Typed with the pekko-persistence-jdbc plugin: the reference the
 * PostgreSQL journal's "3.5× pekko-jdbc" target is measured against, on the same machine.
 *
 * <p>Like the sample: {@code entities} counters, each driven by one client that sends its next
 * command only after the previous reply, alternating increase and decrease, one event per
 * command. Then every counter is spawned again (a new actor, same persistence id) and asked for
 * its value; recovery time runs from the re-spawn to the last reply, and every value is checked.
 *
 * <p>Arguments: entities (50), commands per entity (20 000). Prints one SUMMARY line.
 */
public final class PekkoJdbcW1 {
  private static final Duration ASK_TIMEOUT = Duration.ofSeconds(30);
  private static final Duration RECOVERY_TIMEOUT = Duration.ofMinutes(5);
  /** As the sample: alternating +2 and -1, so a recovery that misses events shows in the value. */
  private static final int INCREASE = 2;

  private static final int DECREASE = 1;

  private PekkoJdbcW1() {}

  /** Marks what Pekko serializes with Jackson (see application.conf). */
  public interface JsonSerializable {}

  /** What a counter can be asked to do. */
  public sealed interface Command {}

  /** Adds {@code by} and replies with the new value once the event is stored. */
  public record Add(int by, ActorRef<Long> replyTo) implements Command {}

  /** Replies with the current state. */
  public record Get(ActorRef<State> replyTo) implements Command {}

  /** Stops the counter, replying first. */
  public record Stop(ActorRef<Done> replyTo) implements Command {}

  /** The one event: the value changed by {@code by}. */
  public record Added(int by) implements JsonSerializable {}

  /**
   * A counter's state: its value and how many events made it, so a recovery that applied too few
   * events is caught even where the value happens to match.
   */
  public record State(long value, long events) {}

  /** A counter as a Pekko Persistence Typed entity. */
  static final class Counter extends EventSourcedBehavior<Command, Added, State> {
    Counter(String id) {
      super(PersistenceId.of("counter", id));
    }

    @Override
    public State emptyState() {
      return new State(0, 0);
    }

    @Override
    public CommandHandler<Command, Added, State> commandHandler() {
      return newCommandHandlerBuilder()
          .forAnyState()
          .onCommand(Add.class, (state, add) -> Effect().persist(new Added(add.by())).thenReply(add.replyTo(), State::value))
          .onCommand(Get.class, (state, get) -> Effect().reply(get.replyTo(), state))
          .onCommand(Stop.class, (state, stop) -> Effect().stop().thenReply(stop.replyTo(), s -> Done.getInstance()))
          .build();
    }

    @Override
    public EventHandler<State, Added> eventHandler() {
      return newEventHandlerBuilder()
          .forAnyState()
          .onEvent(Added.class, (state, added) -> new State(state.value() + added.by(), state.events() + 1))
          .build();
    }
  }

  /**
   * Runs W1 and prints its SUMMARY line.
   *
   * @param args entities (default 50), commands per entity (default 20 000)
   */
  public static void main(String[] args) throws Exception {
    int entities = args.length > 0 ? Integer.parseInt(args[0]) : 50;
    int commands = args.length > 1 ? Integer.parseInt(args[1]) : 20_000;
    ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "pekko-jdbc-w1");
    try {
      // The plugin starts with the first entity's recovery: start it before the clock does, as
      // the sample starts its journal before its clock.
      ActorRef<Command> warmUp = system.systemActorOf(new Counter("warm-up-" + UUID.randomUUID()), "warm-up", Props.empty());
      AskPattern.<Command, State>ask(warmUp, Get::new, RECOVERY_TIMEOUT, system.scheduler()).toCompletableFuture().get();

      List<String> ids = new ArrayList<>();
      for (int i = 0; i < entities; i++) {
        ids.add(UUID.randomUUID().toString());
      }
      AtomicLong persisted = new AtomicLong();
      AtomicLong mismatches = new AtomicLong();
      long start = System.nanoTime();
      List<ActorRef<Command>> refs = spawn(system, ids, "w");
      List<CompletableFuture<Void>> clients = new ArrayList<>();
      for (ActorRef<Command> ref : refs) {
        CompletableFuture<Void> done = new CompletableFuture<>();
        drive(system, ref, commands, 0, 0, done, persisted, mismatches);
        clients.add(done);
      }
      for (CompletableFuture<Void> client : clients) {
        client.get(30, TimeUnit.MINUTES);
      }
      double writeSeconds = (System.nanoTime() - start) / 1e9;
      long events = persisted.get();

      List<CompletableFuture<Done>> stops = new ArrayList<>();
      for (ActorRef<Command> ref : refs) {
        stops.add(AskPattern.<Command, Done>ask(ref, Stop::new, ASK_TIMEOUT, system.scheduler()).toCompletableFuture());
      }
      CompletableFuture.allOf(stops.toArray(CompletableFuture[]::new)).get(1, TimeUnit.MINUTES);

      long recoveryStart = System.nanoTime();
      List<ActorRef<Command>> again = spawn(system, ids, "r");
      List<CompletableFuture<State>> gets = new ArrayList<>();
      for (ActorRef<Command> ref : again) {
        gets.add(AskPattern.<Command, State>ask(ref, Get::new, RECOVERY_TIMEOUT, system.scheduler()).toCompletableFuture());
      }
      List<State> states = new ArrayList<>();
      for (CompletableFuture<State> get : gets) {
        states.add(get.get(30, TimeUnit.MINUTES));
      }
      double recoverySeconds = (System.nanoTime() - recoveryStart) / 1e9;

      State expected = new State(valueAfter(commands), commands);
      long wrong = states.stream().filter(state -> !state.equals(expected)).count();
      boolean verified = mismatches.get() == 0 && wrong == 0 && events == (long) entities * commands;
      System.out.printf(
          "SUMMARY journal=pekko-persistence-jdbc entities=%d events_per_entity=%d write_s=%.3f write_events_per_s=%.0f"
              + " recovery_s=%.3f recovery_events_per_s=%.0f verified=%s%n",
          entities, commands, writeSeconds, events / writeSeconds, recoverySeconds, events / recoverySeconds, verified);
    } finally {
      system.terminate();
      system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }
  }

  /** The value after {@code commands} alternating commands, starting with an increase. */
  private static long valueAfter(long commands) {
    return (commands + 1) / 2 * INCREASE - commands / 2 * DECREASE;
  }

  private static List<ActorRef<Command>> spawn(ActorSystem<Void> system, List<String> ids, String prefix) {
    List<ActorRef<Command>> refs = new ArrayList<>();
    for (String id : ids) {
      refs.add(system.systemActorOf(new Counter(id), prefix + "-" + id, Props.empty()));
    }
    return refs;
  }

  /**
   * Sends command {@code sent + 1} once command {@code sent} is answered with the value expected
   * after it; a wrong value or a failure ends this client and counts as a mismatch.
   */
  private static void drive(
      ActorSystem<Void> system,
      ActorRef<Command> ref,
      int commands,
      int sent,
      long value,
      CompletableFuture<Void> done,
      AtomicLong persisted,
      AtomicLong mismatches) {
    if (sent == commands) {
      done.complete(null);
      return;
    }
    int by = sent % 2 == 0 ? INCREASE : -DECREASE;
    long expected = value + by;
    // On the actor system's dispatcher: the ask's stage (a Scala future seen as a Java one) runs
    // a plain continuation on the JDK's default executor, which on 2 cores starts a thread per task.
    AskPattern.<Command, Long>ask(ref, replyTo -> new Add(by, replyTo), ASK_TIMEOUT, system.scheduler())
        .whenCompleteAsync(
            (reply, error) -> {
              if (error != null || reply != expected) {
                mismatches.incrementAndGet();
                System.err.printf("[%s] command %d: expected %d, got %s%n", ref.path().name(), sent + 1, expected, error != null ? error : reply);
                done.complete(null);
              } else {
                persisted.incrementAndGet();
                drive(system, ref, commands, sent + 1, expected, done, persisted, mismatches);
              }
            },
            system.executionContext());
  }
}
