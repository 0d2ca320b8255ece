package io.eventsourced.sample.counter;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.eventsourced.Entity;
import io.eventsourced.EntityRef;
import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.Reply;
import io.eventsourced.journal.Journal;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Function;
import org.apache.pekko.actor.Cancellable;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * The counter example and benchmark. Spawns many counters, drives each with one client that sends
 * commands strictly one at a time, alternating Increase and Decrease; then stops all counters,
 * spawns them again, times their recovery and verifies every recovered value and sequence number.
 * The journal is chosen by configuration only ({@code EVENTSOURCED_JOURNAL}).
 */
public final class Main {

  /** Each client alternates these, so the value climbs by one per pair and never underflows. */
  private static final long INCREASE = 2;

  private static final long DECREASE = 1;
  /** How long the write phase may go without a single completed command before it gives up. */
  private static final Duration STALL = Duration.ofSeconds(60);

  private Main() {}

  /**
   * Runs the sample with {@code application.conf} and the environment; exits non-zero if any
   * check failed.
   *
   * @param args ignored
   */
  public static void main(String[] args) {
    Config config = ConfigFactory.load();
    CounterSettings settings;
    try {
      settings = CounterSettings.fromConfig(config);
    } catch (IllegalArgumentException e) {
      System.err.println("counter: " + e.getMessage());
      System.exit(2);
      return;
    }
    ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "counter", config);
    int status = 1;
    try {
      Result result = run(system, settings, System.out);
      System.out.println(result.summaryLine());
      status = result.verified() ? 0 : 1;
    } catch (RuntimeException e) {
      System.err.println("counter: failed: " + e);
      e.printStackTrace();
    } finally {
      system.terminate();
      try {
        system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
      } catch (Exception e) {
        System.err.println("counter: actor system did not terminate in time: " + e);
      }
    }
    System.exit(status);
  }

  /**
   * The outcome of one run.
   *
   * @param journal the journal name
   * @param entities how many entities
   * @param eventsPerEntity commands (events) per entity
   * @param writeSeconds time from the first spawn until every client got its last reply
   * @param recoverySeconds time from the re-spawn until every entity answered a Get
   * @param verified whether every reply, recovered value and sequence number was as expected
   */
  public record Result(
      String journal,
      int entities,
      int eventsPerEntity,
      double writeSeconds,
      double recoverySeconds,
      boolean verified) {

    /**
     * Events written (and replayed) in all.
     *
     * @return entities times events per entity
     */
    public long totalEvents() {
      return (long) entities * eventsPerEntity;
    }

    /**
     * The one machine-readable summary line.
     *
     * @return the line, starting with {@code SUMMARY}
     */
    public String summaryLine() {
      return String.format(
          Locale.ROOT,
          "SUMMARY journal=%s entities=%d events_per_entity=%d write_s=%.3f write_events_per_s=%d recovery_s=%.3f recovery_events_per_s=%d verified=%s",
          journal,
          entities,
          eventsPerEntity,
          writeSeconds,
          Math.round(totalEvents() / writeSeconds),
          recoverySeconds,
          Math.round(totalEvents() / recoverySeconds),
          verified);
    }
  }

  /**
   * Runs the write phase and the recovery phase on an actor system whose default journal and
   * snapshot store are the ones to measure.
   *
   * @param system the actor system
   * @param settings what to run
   * @param out where progress goes
   * @return the result
   */
  public static Result run(ActorSystem<?> system, CounterSettings settings, PrintStream out) {
    Counter counter = new Counter(settings.snapshotEvery());
    List<String> ids = new ArrayList<>();
    for (int i = 0; i < settings.entities(); i++) {
      ids.add(UUID.randomUUID().toString());
    }
    out.printf(
        Locale.ROOT,
        "counter: journal=%s entities=%d events_per_entity=%d snapshot_every=%d%n",
        settings.journal(),
        settings.entities(),
        settings.eventsPerEntity(),
        settings.snapshotEvery());
    // Plugins start on first use; start them before the clock does.
    Journal journal = Persistence.get(system).journal();
    Persistence.get(system).snapshotStore();

    LongAdder persisted = new LongAdder();
    AtomicInteger mismatches = new AtomicInteger();
    long writeStart = System.nanoTime();
    Cancellable progress = progress(system, persisted, writeStart, out);
    List<EntityRef<Counter.Command, Long, Counter.Error>> refs = new ArrayList<>();
    List<CompletableFuture<Void>> clients = new ArrayList<>();
    List<Client> drivers = new ArrayList<>();
    for (String id : ids) {
      EntityRef<Counter.Command, Long, Counter.Error> ref = Entity.spawn(system, counter, id);
      refs.add(ref);
      Client client = new Client(ref.persistenceId(), ref::ask, settings.eventsPerEntity(), persisted, mismatches, out);
      client.start();
      clients.add(client.done);
      drivers.add(client);
    }
    boolean finished = awaitProgress(CompletableFuture.allOf(clients.toArray(CompletableFuture[]::new)), persisted, STALL, out);
    double writeSeconds = (System.nanoTime() - writeStart) / 1e9;
    progress.cancel();
    if (!finished) {
      for (Client client : drivers) {
        if (!client.done.isDone()) {
          out.printf(Locale.ROOT, "counter:   [%s] waits for the reply to %s%n", client.id, client.waitingFor());
        }
      }
      return new Result(settings.journal(), settings.entities(), settings.eventsPerEntity(), writeSeconds, Double.NaN, false);
    }
    out.printf(Locale.ROOT, "counter: wrote %d events in %.3f s%n", persisted.sum(), writeSeconds);

    CompletableFuture.allOf(refs.stream().map(r -> r.stop().toCompletableFuture()).toArray(CompletableFuture[]::new)).join();

    long expected = expectedValue(settings.eventsPerEntity());
    long recoveryStart = System.nanoTime();
    List<CompletableFuture<Reply<Long, Counter.Error>>> gets = new ArrayList<>();
    List<EntityRef<Counter.Command, Long, Counter.Error>> recovered = new ArrayList<>();
    for (String id : ids) {
      EntityRef<Counter.Command, Long, Counter.Error> ref = Entity.spawn(system, counter, id);
      recovered.add(ref);
      gets.add(ref.ask(new Counter.Get(), Duration.ofMinutes(5)).toCompletableFuture());
    }
    CompletableFuture.allOf(gets.toArray(CompletableFuture[]::new)).exceptionally(e -> null).join();
    double recoverySeconds = (System.nanoTime() - recoveryStart) / 1e9;

    for (int i = 0; i < ids.size(); i++) {
      String id = ids.get(i);
      try {
        long value = gets.get(i).join().acceptedValue();
        long sequenceNr = journal.highestSequenceNr(recovered.get(i).persistenceId()).toCompletableFuture().join();
        if (value != expected || sequenceNr != settings.eventsPerEntity()) {
          mismatches.incrementAndGet();
          out.printf(Locale.ROOT, "counter: [%s] recovered value %d (expected %d), sequenceNr %d (expected %d)%n", id, value, expected, sequenceNr, settings.eventsPerEntity());
        }
      } catch (RuntimeException e) {
        mismatches.incrementAndGet();
        out.printf(Locale.ROOT, "counter: [%s] did not recover: %s%n", id, e);
      }
    }
    CompletableFuture.allOf(recovered.stream().map(r -> r.stop().toCompletableFuture()).toArray(CompletableFuture[]::new)).join();
    out.printf(Locale.ROOT, "counter: recovered %d entities in %.3f s, %d mismatches%n", ids.size(), recoverySeconds, mismatches.get());
    return new Result(settings.journal(), settings.entities(), settings.eventsPerEntity(), writeSeconds, recoverySeconds, mismatches.get() == 0);
  }

  /**
   * Waits for the clients, and gives up with a report when no command has completed for {@code
   * stall} ({@link #STALL} in the sample): every command either gets its reply or fails after the ask timeout (10 s by
   * default), so a longer silence means a client or the runtime stopped making progress (it
   * happened when a client's continuations overflowed the stack, see {@link Client}); a report
   * that names the threads' states and the waiting clients, and a failed run, beat a run that
   * never ends.
   *
   * @return true if every client finished
   */
  static boolean awaitProgress(CompletableFuture<Void> all, LongAdder persisted, Duration stall, PrintStream out) {
    long seen = -1;
    long lastChange = System.nanoTime();
    while (true) {
      try {
        all.get(1, TimeUnit.SECONDS);
        return true;
      } catch (TimeoutException e) {
        long now = persisted.sum();
        if (now != seen) {
          seen = now;
          lastChange = System.nanoTime();
        } else if (System.nanoTime() - lastChange > stall.toNanos()) {
          out.printf(Locale.ROOT, "counter: no command completed for %d s (%d events persisted); giving up%n", stall.toSeconds(), now);
          Thread.getAllStackTraces().forEach((thread, stack) -> {
            if (thread.getName().contains("dispatcher") || thread.getName().contains("scheduler")) {
              // A fork-join worker also shows its pool's counts: queued tasks with no active
              // worker would point at the pool, none at a lost message.
              String pool = thread instanceof java.util.concurrent.ForkJoinWorkerThread worker ? " in " + worker.getPool() : "";
              out.printf(Locale.ROOT, "counter:   thread %s %s at %s%s%n", thread.getName(), thread.getState(), stack.length > 0 ? stack[0] : "?", pool);
            }
          });
          return false;
        }
      } catch (ExecutionException e) {
        // Clients complete normally; a failure here is a bug in the sample.
        throw new IllegalStateException("a client failed", e.getCause());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return false;
      }
    }
  }

  /**
   * The value a counter has after {@code commands} alternating commands, starting with Increase.
   *
   * @param commands how many commands
   * @return the value
   */
  static long expectedValue(long commands) {
    long increases = (commands + 1) / 2;
    long decreases = commands / 2;
    return increases * INCREASE - decreases * DECREASE;
  }

  private static Cancellable progress(ActorSystem<?> system, LongAdder persisted, long start, PrintStream out) {
    long[] last = {0, start};
    return system
        .scheduler()
        .scheduleAtFixedRate(
            Duration.ofSeconds(1),
            Duration.ofSeconds(1),
            () -> {
              long now = System.nanoTime();
              long total = persisted.sum();
              double rate = (total - last[0]) / ((now - last[1]) / 1e9);
              last[0] = total;
              last[1] = now;
              out.printf(Locale.ROOT, "counter: %d events persisted, %.0f events/s%n", total, rate);
            },
            system.executionContext());
  }

  /**
   * Drives one entity: one command in flight at a time, checking every reply.
   *
   * <p>A reply can arrive before the client has attached its continuation to the ask; the JDK
   * then runs the continuation at once, on the attaching thread. Sending the next command from
   * there would nest one call deeper per such reply, and a run of them overflowed the stack
   * (inside Pekko's {@code tell}, about once in a hundred in-memory runs). So of the two events,
   * "the continuation is attached" and "the reply is there", whichever comes second handles the
   * reply: the attaching thread in a loop, or the thread that completed the ask, which then
   * takes over the loop. At most one thread drives a client at a time, and its stack does not
   * grow with the number of commands. (A {@code whenCompleteAsync} continuation is the simpler
   * way to the same end, at the cost of one more dispatcher task per command.)
   */
  static final class Client {
    private final PersistenceId id;
    private final Function<Counter.Command, CompletionStage<Reply<Long, Counter.Error>>> send;
    private final int total;
    private final LongAdder persisted;
    private final AtomicInteger mismatches;
    private final PrintStream out;
    final CompletableFuture<Void> done = new CompletableFuture<>();
    // Touched only by the thread driving the client; each ask's Handover passes them on.
    private int sent;
    private long expected;
    private volatile CompletableFuture<Reply<Long, Counter.Error>> pending;

    Client(
        PersistenceId id,
        Function<Counter.Command, CompletionStage<Reply<Long, Counter.Error>>> send,
        int total,
        LongAdder persisted,
        AtomicInteger mismatches,
        PrintStream out) {
      this.id = id;
      this.send = send;
      this.total = total;
      this.persisted = persisted;
      this.mismatches = mismatches;
      this.out = out;
    }

    /** Sends commands until one is in flight, or the client is done. */
    void start() {
      drive();
    }

    /** The command the client waits for, and its ask; for the stall report. */
    String waitingFor() {
      CompletableFuture<Reply<Long, Counter.Error>> ask = pending; // read first: written after sent
      return "command " + sent + " (its ask " + ask + ")";
    }

    private void drive() {
      while (true) {
        CompletableFuture<Reply<Long, Counter.Error>> ask;
        try {
          ask = sendNext();
        } catch (RuntimeException | Error e) {
          fail("sending failed", e);
          return;
        }
        Handover handover = new Handover();
        ask.whenComplete(
            (reply, error) -> {
              handover.reply = reply;
              handover.error = error;
              if (handover.second() && handle(reply, error)) {
                // Attached earlier: this thread, which completed the ask, takes over the loop.
                drive();
              }
            });
        if (!handover.second()) {
          return; // the reply is handled when it comes
        }
        // The reply came first: handle it here, one loop turn instead of a nested call.
        if (!handle(handover.reply, handover.error)) {
          return;
        }
      }
    }

    private CompletableFuture<Reply<Long, Counter.Error>> sendNext() {
      boolean increase = sent % 2 == 0;
      Counter.Command command = increase ? new Counter.Increase(INCREASE) : new Counter.Decrease(DECREASE);
      expected += increase ? INCREASE : -DECREASE;
      sent++;
      CompletableFuture<Reply<Long, Counter.Error>> ask = send.apply(command).toCompletableFuture();
      pending = ask;
      return ask;
    }

    /** Checks a reply; returns whether to send the next command. */
    private boolean handle(Reply<Long, Counter.Error> reply, Throwable error) {
      try {
        if (error != null || !reply.isAccepted() || reply.acceptedValue() != expected) {
          mismatches.incrementAndGet();
          out.printf(Locale.ROOT, "counter: [%s] command %d: expected value %d, got %s%n", id, sent, expected, error != null ? error : reply);
          done.complete(null);
          return false;
        }
        persisted.increment();
        if (sent < total) {
          return true;
        }
        done.complete(null);
        return false;
      } catch (RuntimeException | Error e) {
        fail("checking the reply " + reply + " failed", e);
        return false;
      }
    }

    private void fail(String what, Throwable e) {
      // Reported here: thrown from a continuation, it would be swallowed and leave this client
      // waiting forever.
      mismatches.incrementAndGet();
      out.printf(Locale.ROOT, "counter: [%s] command %d: %s: %s%n", id, sent, what, e);
      e.printStackTrace(out);
      done.complete(null);
    }

    /** Of attaching the continuation and receiving the reply, tells the second which it is. */
    private static final class Handover {
      private final AtomicBoolean oneArrived = new AtomicBoolean();
      // Written before the reply's second(), read after the attacher's: the atomic passes them on.
      Reply<Long, Counter.Error> reply;
      Throwable error;

      boolean second() {
        return oneArrived.getAndSet(true);
      }
    }
  }
}
