package io.eventsourced.baseline;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
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

  private PekkoJdbcW1() {}

  /** Marks what Pekko serializes with Jackson (see application.conf). */
  public interface JsonSerializable {}

  /** What a counter can be asked to do. */
  public sealed interface Command {}

  /** Adds {@code by} and replies with the new value once the event is stored. */
  public record Add(int by, ActorRef<Long> replyTo) implements Command {}

  /** Replies with the current value. */
  public record Get(ActorRef<Long> replyTo) implements Command {}

  /** The one event: the value changed by {@code by}. */
  public record Added(int by) implements JsonSerializable {}

  /** A counter as a Pekko Persistence Typed entity. */
  static final class Counter extends EventSourcedBehavior<Command, Added, Long> {
    Counter(String id) {
      super(PersistenceId.of("counter", id));
    }

    @Override
    public Long emptyState() {
      return 0L;
    }

    @Override
    public CommandHandler<Command, Added, Long> commandHandler() {
      return newCommandHandlerBuilder()
          .forAnyState()
          .onCommand(Add.class, (state, add) -> Effect().persist(new Added(add.by())).thenReply(add.replyTo(), s -> s))
          .onCommand(Get.class, (state, get) -> Effect().reply(get.replyTo(), state))
          .build();
    }

    @Override
    public EventHandler<Long, Added> eventHandler() {
      return newEventHandlerBuilder().forAnyState().onEvent(Added.class, (state, added) -> state + added.by()).build();
    }
  }

  public static void main(String[] args) throws Exception {
    int entities = args.length > 0 ? Integer.parseInt(args[0]) : 50;
    int commands = args.length > 1 ? Integer.parseInt(args[1]) : 20_000;
    ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "pekko-jdbc-w1");
    try {
      List<String> ids = new ArrayList<>();
      for (int i = 0; i < entities; i++) {
        ids.add(UUID.randomUUID().toString());
      }
      // Warms the plugin up (connection pool, statements) as the first entity's recovery would.
      List<ActorRef<Command>> refs = spawn(system, ids, "w");
      await(getAll(system, refs));

      AtomicLong persisted = new AtomicLong();
      long start = System.nanoTime();
      List<CompletableFuture<Long>> clients = new ArrayList<>();
      for (ActorRef<Command> ref : refs) {
        CompletableFuture<Long> done = new CompletableFuture<>();
        drive(system, ref, commands, 0, done, persisted);
        clients.add(done);
      }
      for (CompletableFuture<Long> client : clients) {
        client.get(30, TimeUnit.MINUTES);
      }
      double writeSeconds = (System.nanoTime() - start) / 1e9;
      long events = persisted.get();

      long recoveryStart = System.nanoTime();
      List<ActorRef<Command>> again = spawn(system, ids, "r");
      List<Long> values = await(getAll(system, again));
      double recoverySeconds = (System.nanoTime() - recoveryStart) / 1e9;
      // Alternating +1 / -1: an even number of commands ends at 0, an odd one at 1.
      long expected = commands % 2;
      boolean verified = events == (long) entities * commands && values.stream().allMatch(v -> v == expected);
      System.out.printf(
          "SUMMARY journal=pekko-persistence-jdbc entities=%d events_per_entity=%d write_s=%.3f write_events_per_s=%.0f"
              + " recovery_s=%.3f recovery_events_per_s=%.0f verified=%s%n",
          entities, commands, writeSeconds, events / writeSeconds, recoverySeconds, events / recoverySeconds, verified);
    } finally {
      system.terminate();
      system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }
  }

  private static List<ActorRef<Command>> spawn(ActorSystem<Void> system, List<String> ids, String prefix) {
    List<ActorRef<Command>> refs = new ArrayList<>();
    for (String id : ids) {
      refs.add(system.systemActorOf(new Counter(id), prefix + "-" + id, Props.empty()));
    }
    return refs;
  }

  private static List<CompletionStage<Long>> getAll(ActorSystem<Void> system, List<ActorRef<Command>> refs) {
    List<CompletionStage<Long>> gets = new ArrayList<>();
    for (ActorRef<Command> ref : refs) {
      gets.add(AskPattern.ask(ref, Get::new, ASK_TIMEOUT, system.scheduler()));
    }
    return gets;
  }

  private static List<Long> await(List<CompletionStage<Long>> stages) throws Exception {
    List<Long> values = new ArrayList<>();
    for (CompletionStage<Long> stage : stages) {
      values.add(stage.toCompletableFuture().get(30, TimeUnit.MINUTES));
    }
    return values;
  }

  /** Sends command {@code sent + 1} once command {@code sent} is answered. */
  private static void drive(
      ActorSystem<Void> system, ActorRef<Command> ref, int commands, int sent, CompletableFuture<Long> done, AtomicLong persisted) {
    if (sent == commands) {
      done.complete(persisted.get());
      return;
    }
    int by = sent % 2 == 0 ? 1 : -1;
    // On the actor system's dispatcher: the ask's stage (a Scala future seen as a Java one) runs
    // a plain continuation on the JDK's default executor, which on 2 cores starts a thread per task.
    AskPattern.<Command, Long>ask(ref, replyTo -> new Add(by, replyTo), ASK_TIMEOUT, system.scheduler())
        .whenCompleteAsync(
            (value, error) -> {
              if (error != null) {
                done.completeExceptionally(error);
              } else {
                persisted.incrementAndGet();
                drive(system, ref, commands, sent + 1, done, persisted);
              }
            },
            system.executionContext());
  }
}
