package io.eventsourced.tck;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.CommandHandler;
import io.eventsourced.Entity;
import io.eventsourced.EntityException;
import io.eventsourced.EntityRef;
import io.eventsourced.EventHandler;
import io.eventsourced.EventSourced;
import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.Reply;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.PersistentRepr;
import io.eventsourced.serialization.JsonSerializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;

/**
 * Checks a journal under a fault the test makes itself (a cut connection, a killed server),
 * through real entities and their callers rather than the journal SPI alone.
 *
 * <p>Twenty entities on the actor system's default journal and snapshot store each get commands
 * from a caller of their own, two at a time (so one waits in the entity's stash while the other
 * persists); each command persists two events in one atomic write. Once every entity has
 * acknowledged a command, {@code cut} runs; {@code down} later, {@code restore}. A caller whose
 * ask fails waits for its entity to stop and spawns it again, again and again while the store is
 * away, until every entity has had three commands acknowledged after the restore. Then the check
 * asserts the contracts a caller relies on:
 *
 * <ul>
 *   <li>every failed ask failed with the entity's {@link EntityException}, none with the ask
 *       timeout, and at least one names a write that failed;
 *   <li>every acknowledged command's events are stored once; every stored write is whole, in the
 *       order the commands were sent, with contiguous sequence numbers;
 *   <li>every reply is the total of the events stored up to its own: the entity persisted before
 *       it replied, and an entity spawned after a failure recovered whatever the failed write
 *       left behind;
 *   <li>a fresh entity recovers the total of what is stored.
 * </ul>
 *
 * <p>The entity stores its events as JSON through Pekko's Jackson serializer (the runtime's
 * default binding for {@link JsonSerializable}). The journal's own failure detection must take
 * less than the ask timeout of 20 seconds, and the whole check ends within 100 seconds, inside
 * the 120 seconds JUnit gives a test in this project.
 */
public final class EntityFaultCheck {

  private static final Duration ASK_TIMEOUT = Duration.ofSeconds(20);
  private static final Duration FIRST_ACKS = Duration.ofSeconds(30);
  private static final Duration CATCH_UP = Duration.ofSeconds(45);
  private static final Duration WHOLE_CHECK = Duration.ofSeconds(100);
  /** Between a failed entity's stop and its re-spawn, so callers do not spin while the store is away. */
  private static final Duration RESPAWN_DELAY = Duration.ofMillis(100);
  private static final int ENTITIES = 20;
  private static final int ACKS_AFTER_RESTORE = 3;
  private static final FaultLedger LEDGER = new FaultLedger();

  private EntityFaultCheck() {}

  /** A step of the fault: cutting or restoring the store. */
  @FunctionalInterface
  public interface Action {
    /**
     * Runs the step.
     *
     * @throws Exception if it cannot; the check fails with it
     */
    void run() throws Exception;
  }

  /**
   * What a run did, for the test's log.
   *
   * @param acknowledged commands acknowledged
   * @param failedAsks asks that failed
   * @param spawns entities spawned, the first spawns included
   */
  public record Outcome(int acknowledged, int failedAsks, int spawns) {}

  /**
   * Runs the check; see the class description.
   *
   * @param system an actor system whose default journal and snapshot store are under test
   * @param cut makes the store unreachable
   * @param down how long the store stays away
   * @param restore makes it reachable again
   * @return what the run did
   * @throws Exception if {@code cut} or {@code restore} fails or the run is interrupted; an
   *     {@link AssertionError} if a contract does not hold
   */
  public static Outcome run(ActorSystem<?> system, Action cut, Duration down, Action restore) throws Exception {
    long end = System.nanoTime() + WHOLE_CHECK.toNanos();
    List<Client> clients = new ArrayList<>();
    for (int i = 0; i < ENTITIES; i++) {
      clients.add(new Client(system));
    }
    try {
      clients.forEach(Client::spawn);
      // Cut only once every entity has recovered and written: a cut during the first recoveries
      // would test recovery alone.
      awaitAll(clients, c -> !c.acknowledged.isEmpty(), FIRST_ACKS, end, "its first command acknowledged before the cut");
      cut.run();
      try {
        Thread.sleep(down.toMillis());
      } finally {
        // Also when interrupted: the next test on this store must not find it cut.
        restore.run();
      }
      clients.forEach(c -> c.restored = true);
      awaitAll(clients, c -> c.acksAfterRestore.get() >= ACKS_AFTER_RESTORE, CATCH_UP, end, ACKS_AFTER_RESTORE + " commands acknowledged after the restore");
    } finally {
      // Also when the check fails: callers must not go on writing into the next test.
      clients.forEach(c -> c.stop = true);
    }
    for (Client client : clients) {
      within(client.done, end, "the last commands of " + client);
      within(client.ref.stop(), end, "the stop of " + client);
    }

    List<Throwable> failures = clients.stream().flatMap(c -> c.failures.stream()).toList();
    assertThat(failures)
        .as("asks that failed while the store was away")
        .isNotEmpty()
        .allSatisfy(EntityFaultCheck::isTheEntitysAnswer)
        .anySatisfy(f -> assertThat(f.getMessage()).contains("cannot persist events of"));

    Journal journal = Persistence.get(system).journal();
    Serialization serialization = SerializationExtension.get(Adapter.toClassic(system));
    for (Client client : clients) {
      client.checkStored(journal, serialization, end);
    }
    return new Outcome(
        clients.stream().mapToInt(c -> c.acknowledged.size()).sum(),
        failures.size(),
        clients.stream().mapToInt(c -> c.spawns.get()).sum());
  }

  private static void awaitAll(List<Client> clients, Predicate<Client> done, Duration limit, long end, String what)
      throws InterruptedException {
    long start = System.nanoTime();
    long deadline = Math.min(end, start + limit.toNanos());
    while (!clients.stream().allMatch(done) && System.nanoTime() < deadline) {
      Thread.sleep(20);
    }
    Duration waited = Duration.ofNanos(System.nanoTime() - start);
    for (Client client : clients) {
      EntityRef<?, ?, ?> ref = client.ref;
      assertThat(done.test(client))
          .as("%s had %s within %s ms (spawned %d times, its entity %s; its failures: %s)",
              client, what, waited.toMillis(), client.spawns.get(),
              ref == null ? "never started" : ref.whenStopped().toCompletableFuture().isDone() ? "stopped" : "not stopped",
              client.failures)
          .isTrue();
    }
  }

  private static <T> T within(CompletionStage<T> stage, long end, String what) throws Exception {
    try {
      return stage.toCompletableFuture().get(Math.max(0, end - System.nanoTime()), TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      throw new AssertionError(what + " did not complete within the check's " + WHOLE_CHECK, e);
    }
  }

  /** The ask timeout fails an ask with an EntityException caused directly by a TimeoutException. */
  private static void isTheEntitysAnswer(Throwable failure) {
    assertThat(failure).isInstanceOf(EntityException.class);
    assertThat(failure.getMessage()).as("failure message").doesNotStartWith("no reply from [");
    assertThat(failure.getCause()).as("cause of %s", failure).isNotInstanceOf(TimeoutException.class);
  }

  /**
   * One caller of one entity. Each {@code Add} carries the caller's attempt number, so every
   * stored event names the ask that wrote it.
   */
  private static final class Client {
    final ActorSystem<?> system;
    final String entityId = UUID.randomUUID().toString();
    /** Acknowledged attempt → the total the entity replied with. */
    final Map<Long, Long> acknowledged = new ConcurrentHashMap<>();
    final List<Throwable> failures = new CopyOnWriteArrayList<>();
    final AtomicInteger spawns = new AtomicInteger();
    final AtomicInteger acksAfterRestore = new AtomicInteger();
    final CompletableFuture<Void> done = new CompletableFuture<>();
    volatile boolean stop;
    volatile boolean restored;
    volatile EntityRef<FaultLedger.Command, Long, String> ref;
    long attempt;

    Client(ActorSystem<?> system) {
      this.system = system;
    }

    void spawn() {
      try {
        spawns.incrementAndGet();
        ref = Entity.spawn(system, LEDGER, entityId);
        next();
      } catch (RuntimeException | Error e) {
        failures.add(e);
        done.complete(null);
      }
    }

    /** Sends the next two commands, and on their outcomes the next two or a re-spawn. */
    void next() {
      if (stop) {
        done.complete(null);
        return;
      }
      long first = ++attempt;
      long second = ++attempt;
      CompletableFuture<Reply<Long, String>> a = ref.ask(new FaultLedger.Add(first), ASK_TIMEOUT).toCompletableFuture();
      CompletableFuture<Reply<Long, String>> b = ref.ask(new FaultLedger.Add(second), ASK_TIMEOUT).toCompletableFuture();
      CompletableFuture.allOf(a, b)
          .whenCompleteAsync(
              (both, error) -> {
                boolean failed = settle(first, a) | settle(second, b);
                if (!failed) {
                  next();
                } else {
                  // An entity that failed stops; its successor may be spawned once it has.
                  ref.whenStopped()
                      .thenRun(() -> system.scheduler().scheduleOnce(RESPAWN_DELAY, this::spawn, system.executionContext()));
                }
              },
              system.executionContext());
    }

    /** Records one ask's outcome; true if it failed. */
    private boolean settle(long amount, CompletableFuture<Reply<Long, String>> ask) {
      try {
        Reply<Long, String> reply = ask.join();
        if (reply instanceof Reply.Accepted<Long, String> accepted) {
          acknowledged.put(amount, accepted.value());
          if (restored) {
            acksAfterRestore.incrementAndGet();
          }
          return false;
        }
        failures.add(new AssertionError("unexpected reply " + reply));
      } catch (CompletionException e) {
        failures.add(e.getCause() != null ? e.getCause() : e);
      }
      return true;
    }

    void checkStored(Journal journal, Serialization serialization, long end) throws Exception {
      List<PersistentRepr> events = new ArrayList<>();
      within(
          journal.replay(PersistenceId.of(LEDGER.typeName(), entityId), 1, Long.MAX_VALUE, Long.MAX_VALUE, events::add),
          end,
          "the replay of " + this);
      List<Long> stored = new ArrayList<>();
      long total = 0;
      for (int i = 0; i < events.size(); i++) {
        PersistentRepr repr = events.get(i);
        assertThat(repr.sequenceNr()).as("contiguous sequenceNrs of %s", this).isEqualTo(i + 1L);
        FaultLedger.Added added =
            (FaultLedger.Added) serialization.deserialize(repr.payload(), repr.serializerId(), repr.manifest()).get();
        // Each command's two events form one atomic write: parts 1 and 2 of the same attempt.
        assertThat(added.part()).as("part of the write at sequenceNr %d of %s", repr.sequenceNr(), this).isEqualTo(i % 2 + 1);
        if (added.part() == 2) {
          assertThat(added.attempt()).as("attempt of the write ending at sequenceNr %d of %s", repr.sequenceNr(), this)
              .isEqualTo(stored.get(stored.size() - 1));
        } else {
          stored.add(added.attempt());
        }
        total += added.attempt();
        Long replied = acknowledged.get(added.attempt());
        if (replied != null && added.part() == 2) {
          assertThat(replied)
              .as("reply to attempt %d of %s, against the total stored up to its events", added.attempt(), this)
              .isEqualTo(total);
        }
      }
      assertThat(events.size() % 2).as("events of %s, two per write", this).isZero();
      assertThat(stored).as("attempts stored in the order sent, each once, for %s", this).isSorted().doesNotHaveDuplicates();
      assertThat(stored).as("acknowledged attempts stored for %s", this).containsAll(acknowledged.keySet());
      EntityRef<FaultLedger.Command, Long, String> fresh = Entity.spawn(system, LEDGER, entityId);
      Reply<Long, String> recovered = within(fresh.ask(new FaultLedger.Get(), ASK_TIMEOUT), end, "the recovery of a fresh " + this);
      assertThat(recovered).as("total recovered by a fresh %s", this).isEqualTo(new Reply.Accepted<Long, String>(total));
      within(fresh.stop(), end, "the stop of a fresh " + this);
    }

    @Override
    public String toString() {
      return "[" + LEDGER.typeName() + "|" + entityId + "]";
    }
  }

  /** The check's entity: a running total of the attempts added, each added twice. */
  static final class FaultLedger implements EventSourced<FaultLedger.Command, FaultLedger.Added, Long, Long, String> {

    sealed interface Command {}

    record Add(long attempt) implements Command {}

    record Get() implements Command {}

    record Added(long attempt, int part) implements JsonSerializable {}

    @Override
    public String typeName() {
      return "tck-fault-ledger";
    }

    @Override
    public Long emptyState() {
      return 0L;
    }

    @Override
    public CommandHandler<Command, Added, Long, Long, String> commandHandler() {
      return newCommandHandlerBuilder()
          .onCommand(
              Add.class,
              (total, add) -> effect().persist(List.of(new Added(add.attempt(), 1), new Added(add.attempt(), 2))).thenReply(t -> t))
          .onCommand(Get.class, (total, get) -> effect().reply(total))
          .build();
    }

    @Override
    public EventHandler<Long, Added> eventHandler() {
      return newEventHandlerBuilder().onEvent(Added.class, (total, added) -> total + added.attempt()).build();
    }
  }
}
