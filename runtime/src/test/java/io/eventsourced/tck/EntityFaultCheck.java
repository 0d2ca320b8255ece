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
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;

/**
 * Checks a journal under a fault the test makes itself (a cut connection, a killed server),
 * through real entities and their callers rather than the journal SPI alone.
 *
 * <p>Twenty entities on the actor system's default journal and snapshot store each get one
 * command at a time from a caller of their own. Half a second in, {@code cut} runs; {@code down}
 * later, {@code restore}. A caller whose ask fails waits for its entity to stop and spawns it
 * again, again and again while the store is away, until every entity has had three commands
 * acknowledged after the restore. Then the check asserts the contracts a caller relies on:
 *
 * <ul>
 *   <li>every failed ask failed with the entity's {@link EntityException}, none with the ask
 *       timeout, and at least one names a write that failed;
 *   <li>every acknowledged command's event is stored once, and sequence numbers are contiguous;
 *   <li>every reply is the total of the events stored up to its own: the entity persisted before
 *       it replied, and an entity spawned after a failure recovered whatever the failed write
 *       left behind;
 *   <li>a fresh entity recovers the total of what is stored.
 * </ul>
 *
 * <p>The entity stores its events as JSON through Pekko's Jackson serializer (the runtime's
 * default binding for {@link JsonSerializable}). The journal's own failure detection must take
 * less than the ask timeout of 20 seconds.
 */
public final class EntityFaultCheck {

  private static final Duration ASK_TIMEOUT = Duration.ofSeconds(20);
  private static final Duration CATCH_UP = Duration.ofSeconds(60);
  private static final int ENTITIES = 20;
  private static final int ACKS_AFTER_RESTORE = 3;

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
    List<Client> clients = new ArrayList<>();
    for (int i = 0; i < ENTITIES; i++) {
      clients.add(new Client(system));
    }
    clients.forEach(Client::spawn);
    Thread.sleep(500);
    cut.run();
    Thread.sleep(down.toMillis());
    restore.run();
    clients.forEach(c -> c.restored = true);
    long deadline = System.nanoTime() + CATCH_UP.toNanos();
    while (clients.stream().anyMatch(c -> c.acksAfterRestore.get() < ACKS_AFTER_RESTORE)
        && System.nanoTime() < deadline) {
      Thread.sleep(50);
    }
    clients.forEach(c -> c.stop = true);
    for (Client client : clients) {
      assertThat(client.acksAfterRestore.get())
          .as(
              "commands acknowledged by [%s] within %s of the restore (spawned %d times, its last entity %s; its failures: %s)",
              client.ledger.typeName() + "|" + client.entityId,
              CATCH_UP,
              client.spawns.get(),
              client.ref.whenStopped().toCompletableFuture().isDone() ? "stopped" : "not stopped",
              client.failures)
          .isGreaterThanOrEqualTo(ACKS_AFTER_RESTORE);
      client.done.get(ASK_TIMEOUT.toSeconds() * 2, TimeUnit.SECONDS);
      client.ref.stop().toCompletableFuture().get(ASK_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
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
      client.checkStored(journal, serialization);
    }
    return new Outcome(
        clients.stream().mapToInt(c -> c.acknowledged.size()).sum(),
        failures.size(),
        clients.stream().mapToInt(c -> c.spawns.get()).sum());
  }

  private static void isTheEntitysAnswer(Throwable failure) {
    assertThat(failure).isInstanceOf(EntityException.class);
    assertThat(failure.getMessage()).as("failure message").doesNotContain("no reply from");
    for (Throwable t = failure; t != null; t = t.getCause()) {
      assertThat(t).as("cause of %s", failure).isNotInstanceOf(TimeoutException.class);
    }
  }

  /**
   * One caller of one entity, one command at a time. Each {@code Add} carries the caller's
   * attempt number, so every stored event names the ask that wrote it.
   */
  private static final class Client {
    final ActorSystem<?> system;
    final FaultLedger ledger = new FaultLedger();
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
      spawns.incrementAndGet();
      ref = Entity.spawn(system, ledger, entityId);
      next();
    }

    void next() {
      if (stop) {
        done.complete(null);
        return;
      }
      long amount = ++attempt;
      ref.ask(new FaultLedger.Add(amount), ASK_TIMEOUT)
          .whenCompleteAsync(
              (reply, error) -> {
                if (error == null && reply instanceof Reply.Accepted<Long, String> accepted) {
                  acknowledged.put(amount, accepted.value());
                  if (restored) {
                    acksAfterRestore.incrementAndGet();
                  }
                  next();
                } else if (error == null) {
                  failures.add(new AssertionError("unexpected reply " + reply));
                  done.complete(null);
                } else {
                  failures.add(error instanceof CompletionException && error.getCause() != null ? error.getCause() : error);
                  // An entity that failed stops; its successor may be spawned once it has.
                  ref.whenStopped()
                      .thenRun(() -> CompletableFuture.delayedExecutor(100, TimeUnit.MILLISECONDS).execute(this::spawn));
                }
              });
    }

    void checkStored(Journal journal, Serialization serialization) throws Exception {
      String entity = ledger.typeName() + "|" + entityId;
      List<PersistentRepr> events = new ArrayList<>();
      journal
          .replay(PersistenceId.of(ledger.typeName(), entityId), 1, Long.MAX_VALUE, Long.MAX_VALUE, events::add)
          .toCompletableFuture()
          .get(ASK_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      List<Long> stored = new ArrayList<>();
      long total = 0;
      for (PersistentRepr repr : events) {
        assertThat(repr.sequenceNr()).as("contiguous sequenceNrs of [%s]", entity).isEqualTo(stored.size() + 1L);
        FaultLedger.Added added =
            (FaultLedger.Added) serialization.deserialize(repr.payload(), repr.serializerId(), repr.manifest()).get();
        stored.add(added.amount());
        total += added.amount();
        Long replied = acknowledged.get(added.amount());
        if (replied != null) {
          assertThat(replied)
              .as("reply to attempt %d of [%s], against the total stored up to its event", added.amount(), entity)
              .isEqualTo(total);
        }
      }
      assertThat(stored).as("attempts stored for [%s]", entity).doesNotHaveDuplicates();
      assertThat(stored).as("attempts stored for [%s]", entity).containsAll(acknowledged.keySet());
      EntityRef<FaultLedger.Command, Long, String> fresh = Entity.spawn(system, ledger, entityId);
      Reply<Long, String> recovered =
          fresh.ask(new FaultLedger.Get(), ASK_TIMEOUT).toCompletableFuture().get(ASK_TIMEOUT.toSeconds() + 5, TimeUnit.SECONDS);
      assertThat(recovered).as("total recovered by a fresh [%s]", entity).isEqualTo(new Reply.Accepted<Long, String>(total));
      fresh.stop().toCompletableFuture().get(ASK_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    }
  }

  /** The check's entity: a running total of the amounts added. */
  static final class FaultLedger implements EventSourced<FaultLedger.Command, FaultLedger.Event, Long, Long, String> {

    sealed interface Command {}

    record Add(long amount) implements Command {}

    record Get() implements Command {}

    sealed interface Event {}

    record Added(long amount) implements Event, JsonSerializable {}

    @Override
    public String typeName() {
      return "tck-fault-ledger";
    }

    @Override
    public Long emptyState() {
      return 0L;
    }

    @Override
    public CommandHandler<Command, Event, Long, Long, String> commandHandler() {
      return newCommandHandlerBuilder()
          .onCommand(Add.class, (total, add) -> effect().persist(new Added(add.amount())).thenReply(t -> t))
          .onCommand(Get.class, (total, get) -> effect().reply(total))
          .build();
    }

    @Override
    public EventHandler<Long, Event> eventHandler() {
      return newEventHandlerBuilder().onEvent(Added.class, (total, added) -> total + added.amount()).build();
    }
  }
}
