package io.eventsourced;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.internal.EventsourcedRuntime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.PoisonPill;
import org.apache.pekko.actor.testkit.typed.annotations.JUnit5TestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.JUnit5TestKitBuilder;
import org.apache.pekko.actor.testkit.typed.javadsl.TestKitJUnit5Extension;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(TestKitJUnit5Extension.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@DisplayName("An EntityRef")
class EntityRefTest {

  @JUnit5TestKit final ActorTestKit testKit = new JUnit5TestKitBuilder().build();

  private EntityRef<Tally.Command, List<String>, Tally.Error> spawn() {
    return Entity.spawn(testKit.system(), new Tally(), UUID.randomUUID().toString());
  }

  private static <T> T await(CompletionStage<T> stage) {
    try {
      return stage.toCompletableFuture().get(5, TimeUnit.SECONDS);
    } catch (InterruptedException | ExecutionException | TimeoutException e) {
      throw new AssertionError(e);
    }
  }

  private static Throwable failure(CompletionStage<?> stage) {
    try {
      stage.toCompletableFuture().get(5, TimeUnit.SECONDS);
      throw new AssertionError("expected a failure");
    } catch (ExecutionException e) {
      return e.getCause();
    } catch (InterruptedException | TimeoutException e) {
      throw new AssertionError(e);
    }
  }

  @Test
  @DisplayName("completes an ask with the accepted reply")
  void askAccepted() {
    var ref = spawn();
    assertThat(await(ref.ask(new Tally.Add("a")))).isEqualTo(new Reply.Accepted<>(List.of("a")));
    assertThat(await(ref.ask(new Tally.Get())).acceptedValue()).containsExactly("a");
  }

  @Test
  @DisplayName("completes an ask with the typed rejection, not a failure")
  void askRejected() {
    var ref = spawn();
    Reply<List<String>, Tally.Error> reply = await(ref.ask(new Tally.Add("")));
    assertThat(reply).isInstanceOf(Reply.Rejected.class);
    assertThat(((Reply.Rejected<List<String>, Tally.Error>) reply).error()).isInstanceOf(Tally.EmptyItem.class);
  }

  @Test
  @DisplayName("fails an ask with an EntityException on a technical failure")
  void askFailed() {
    var ref = spawn();
    assertThat(failure(ref.ask(new Tally.Explode()))).isInstanceOf(EntityException.class).hasMessageContaining("Explode");
  }

  @Test
  @DisplayName("fails an ask that gets no reply in time with an EntityException caused by a timeout")
  void askTimeout() {
    var ref = spawn();
    Throwable error = failure(ref.ask(new Tally.Silent(), Duration.ofMillis(200)));
    assertThat(error).isInstanceOf(EntityException.class).hasMessageContaining("within [200 ms]");
    assertThat(error.getCause()).isInstanceOf(TimeoutException.class);
  }

  @Test
  @DisplayName("stops, fails later asks at once, and a re-spawn recovers the stored state")
  void stopAndRespawn() {
    var ref = spawn();
    await(ref.ask(new Tally.Add("a")));
    await(ref.stop());
    long start = System.nanoTime();
    Throwable error = failure(ref.ask(new Tally.Get()));
    assertThat(error).isInstanceOf(EntityException.class).hasMessageContaining("stopped");
    assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(2));
    var again = Entity.spawn(testKit.system(), new Tally(), ref.persistenceId().entityId());
    assertThat(await(again.ask(new Tally.Get())).acceptedValue()).containsExactly("a");
  }

  @Test
  @DisplayName("runs continuations of an ask on the actor system's dispatcher, never the common pool")
  void continuationsOnDispatcher() throws Exception {
    var ref = spawn();
    var journal = (io.eventsourced.journal.InMemoryJournal) Persistence.get(testKit.system()).journal();
    CompletableFuture<String> plain = new CompletableFuture<>();
    CompletableFuture<String> async = new CompletableFuture<>();
    // Hold the write until both continuations are registered, so neither runs on this thread.
    journal.pauseWrites();
    try {
      CompletionStage<Reply<List<String>, Tally.Error>> reply = ref.ask(new Tally.Add("a"));
      reply.thenAccept(r -> plain.complete(Thread.currentThread().getName()));
      reply.thenAcceptAsync(r -> async.complete(Thread.currentThread().getName()));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while (journal.heldWrites() == 0 && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      assertThat(journal.heldWrites()).isEqualTo(1);
    } finally {
      journal.resumeWrites();
    }
    assertThat(await(plain)).contains("pekko.actor.default-dispatcher");
    assertThat(await(async)).contains("pekko.actor.default-dispatcher");
  }

  @Test
  @DisplayName("runs a whenCompleteAsync continuation as a task of its own even when the reply is already there")
  void asyncContinuationLoopKeepsAFlatStack() throws Exception {
    var ref = spawn();
    int commands = 2_000;
    AtomicInteger deepest = new AtomicInteger();
    CompletableFuture<Integer> done = new CompletableFuture<>();
    askFrom(ref, 0, commands, deepest, done);
    assertThat(done.get(60, TimeUnit.SECONDS)).isEqualTo(commands);
    // Each step is its own dispatcher task: the stack is as deep at the last step as at the
    // first. Run inline instead, the steps would nest, ten-odd frames deeper each.
    assertThat(deepest.get()).as("deepest stack of a continuation").isLessThan(MAX_FLAT_DEPTH);
  }

  private static final int MAX_FLAT_DEPTH = 200;

  /**
   * The loop getting-started.md shows, made to attach every continuation to a completed ask
   * (the case in which a non-async continuation would run at once, nested), and recording the
   * stack depth of every continuation.
   */
  private static void askFrom(
      EntityRef<Tally.Command, List<String>, Tally.Error> ref, int i, int total, AtomicInteger deepest, CompletableFuture<Integer> done) {
    if (i == total) {
      done.complete(i);
      return;
    }
    CompletableFuture<Reply<List<String>, Tally.Error>> ask = ref.ask(new Tally.Get()).toCompletableFuture();
    ask.join();
    ask.whenCompleteAsync(
        (reply, error) -> {
          int depth = StackWalker.getInstance().walk(frames -> (int) frames.count());
          deepest.accumulateAndGet(depth, Math::max);
          if (error != null) {
            done.completeExceptionally(error);
          } else if (depth >= MAX_FLAT_DEPTH) {
            done.completeExceptionally(new AssertionError("step " + i + " runs " + depth + " frames deep: the steps nest"));
          } else {
            askFrom(ref, i + 1, total, deepest, done);
          }
        });
  }

  @Test
  @DisplayName("does not let a slow continuation hold up the entity")
  void slowContinuationDoesNotStallEntity() throws Exception {
    var ref = spawn();
    var journal = (io.eventsourced.journal.InMemoryJournal) Persistence.get(testKit.system()).journal();
    CompletableFuture<Void> release = new CompletableFuture<>();
    CompletableFuture<Void> blocked = new CompletableFuture<>();
    // Hold the write until the slow continuation is registered, so it cannot run on this thread.
    journal.pauseWrites();
    try {
      ref.ask(new Tally.Add("a"))
          .thenAccept(
              r -> {
                blocked.complete(null);
                try {
                  release.get(10, TimeUnit.SECONDS);
                } catch (Exception e) {
                  throw new IllegalStateException(e);
                }
              });
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
      while (journal.heldWrites() == 0 && System.nanoTime() < deadline) {
        Thread.sleep(5);
      }
      assertThat(journal.heldWrites()).isEqualTo(1);
    } finally {
      journal.resumeWrites();
    }
    try {
      await(blocked);
      assertThat(await(ref.ask(new Tally.Get())).acceptedValue()).containsExactly("a");
    } finally {
      release.complete(null);
    }
  }

  @Test
  @DisplayName("answers every ask sent while its entity stops, none left to the ask timeout")
  void asksRacingTheStopAreAnswered() throws Exception {
    ExecutorService senders = Executors.newFixedThreadPool(2);
    List<CompletableFuture<Reply<List<String>, Tally.Error>>> asks = Collections.synchronizedList(new ArrayList<>());
    try {
      for (int i = 0; i < 500; i++) {
        var ref = spawn();
        await(ref.ask(new Tally.Get()));
        CyclicBarrier start = new CyclicBarrier(2);
        var stopping =
            senders.submit(
                () -> {
                  start.await();
                  return ref.stop();
                });
        var asking =
            senders.submit(
                () -> {
                  start.await();
                  for (int j = 0; j < 20; j++) {
                    asks.add(ref.ask(new Tally.Get(), Duration.ofSeconds(3)).toCompletableFuture());
                  }
                  return null;
                });
        asking.get(5, TimeUnit.SECONDS);
        await(stopping.get(5, TimeUnit.SECONDS));
      }
    } finally {
      senders.shutdown();
    }
    long timedOut = 0;
    long toldStopped = 0;
    for (var ask : asks) {
      try {
        ask.get(10, TimeUnit.SECONDS);
      } catch (ExecutionException e) {
        if (e.getCause().getMessage().contains("no reply from")) {
          timedOut++;
        } else {
          assertThat(e.getCause()).isInstanceOf(EntityException.class).hasMessageContaining("stopped");
          toldStopped++;
        }
      }
    }
    assertThat(timedOut).as("asks of %d left to the timeout", asks.size()).isZero();
    assertThat(toldStopped).as("asks answered with the entity's stop").isPositive();
  }

  @Test
  @DisplayName("keeps the order of commands asked without waiting")
  void pipelinedAsksKeepOrder() {
    var ref = spawn();
    List<CompletionStage<Reply<List<String>, Tally.Error>>> replies =
        java.util.stream.IntStream.range(0, 200).mapToObj(i -> ref.ask(new Tally.Add("i" + i))).toList();
    for (int i = 0; i < replies.size(); i++) {
      assertThat(await(replies.get(i)).acceptedValue()).hasSize(i + 1).endsWith("i" + i);
    }
  }

  @Test
  @DisplayName("fails every pipelined ask promptly when a write fails")
  void pipelinedAsksFailWithWrite() {
    var ref = spawn();
    var journal = (io.eventsourced.journal.InMemoryJournal) Persistence.get(testKit.system()).journal();
    await(ref.ask(new Tally.Add("a")));
    journal.pauseWrites();
    List<CompletionStage<Reply<List<String>, Tally.Error>>> asks;
    try {
      asks = java.util.stream.IntStream.range(0, 20).mapToObj(i -> ref.ask(new Tally.Add("b" + i))).toList();
      journal.failNextWrite(ref.persistenceId());
    } finally {
      journal.resumeWrites();
    }
    long start = System.nanoTime();
    for (var ask : asks) {
      assertThat(failure(ask)).isInstanceOf(EntityException.class);
    }
    assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(3));
    await(ref.whenStopped());
    var again = Entity.spawn(testKit.system(), new Tally(), ref.persistenceId().entityId());
    assertThat(await(again.ask(new Tally.Get())).acceptedValue()).containsExactly("a");
  }

  @Test
  @DisplayName("fails an ask whose command handler throws an Error such as AssertionError, and keeps serving")
  void commandHandlerError() {
    var ref = spawn();
    await(ref.ask(new Tally.Add("a")));
    assertThat(failure(ref.ask(new Tally.Assert())))
        .isInstanceOf(EntityException.class)
        .hasMessageContaining("the command handler of [" + ref.persistenceId() + "] failed")
        .hasRootCauseInstanceOf(AssertionError.class);
    assertThat(await(ref.ask(new Tally.Get())).acceptedValue()).containsExactly("a");
  }

  @Test
  @DisplayName("fails the ask and stops the entity when the event handler throws an Error after the write, and fails its recovery naming the sequenceNr")
  void eventHandlerError() {
    var ref = spawn();
    assertThat(failure(ref.ask(new Tally.PersistPoison())))
        .isInstanceOf(EntityException.class)
        .hasMessageContaining("the event handler of [" + ref.persistenceId() + "] failed")
        .hasRootCauseInstanceOf(AssertionError.class);
    await(ref.whenStopped());
    var again = Entity.spawn(testKit.system(), new Tally(), ref.persistenceId().entityId());
    assertThat(failure(again.ask(new Tally.Get())))
        .isInstanceOf(EntityException.class)
        .hasMessageContaining("cannot recover [" + ref.persistenceId() + "]: the event handler failed on ["
            + Tally.Poisoned.class.getName() + "] at sequenceNr [1]")
        .hasRootCauseInstanceOf(AssertionError.class);
  }

  @Test
  @DisplayName("fails the ask when computing the reply throws an Error, with the event stored and applied")
  void replyError() {
    var ref = spawn();
    assertThat(failure(ref.ask(new Tally.BadReply("a"))))
        .isInstanceOf(EntityException.class)
        .hasMessageContaining("computing the reply of [" + ref.persistenceId() + "] failed")
        .hasRootCauseInstanceOf(AssertionError.class);
    assertThat(await(ref.ask(new Tally.Get())).acceptedValue()).containsExactly("a");
  }

  @Test
  @DisplayName("answers a command sent at once to an entity that fails to start in a fresh actor system")
  void deadLettersOfTheFirstEntity() {
    // The dead-letter listener starts with the runtime, with the first entity: it must be
    // subscribed before that entity's first dead letters are published. The command is put in
    // the entity's mailbox before the entity stops: Pekko dead-letters a stopping actor's mailbox
    // reliably, but a message sent at the instant it terminates may be dropped without a dead
    // letter (delivery to dead letters is best effort), which no listener could answer.
    for (int round = 0; round < 5; round++) {
      ActorTestKit fresh = ActorTestKit.create("dead-letters-" + round);
      try {
        var probe = fresh.<Reply<List<String>, Tally.Error>>createTestProbe();
        var gate = new CountDownLatch(1);
        var entity = fresh.spawn(Entity.create(new GatedTally(gate), "z"));
        entity.tell(new EntityCommand<>(new Tally.Get(), probe.ref()));
        gate.countDown();
        assertThat(probe.receiveMessage(Duration.ofSeconds(5))).isInstanceOf(Reply.Failed.class);
      } finally {
        fresh.shutdownTestKit();
      }
    }
  }

  @Test
  @DisplayName("fails an ask made after whenStopped() at once, with the failure it stopped on, without relying on dead letters")
  void askAfterStopNeedsNoDeadLetter() throws Exception {
    ActorTestKit fresh = ActorTestKit.create("ask-after-stop");
    try {
      // Without the dead-letter listener, only the EntityRef itself can answer at once; a reply
      // later than the 10 s ask timeout would fail the 5 s wait below.
      EventsourcedRuntime.get(fresh.system());
      var classic = Adapter.toClassic(fresh.system());
      var listener =
          classic.actorSelection("/system/eventsourced-dead-letter-replies").resolveOne(Duration.ofSeconds(5))
              .toCompletableFuture().get(5, TimeUnit.SECONDS);
      var watcher = fresh.createTestProbe();
      listener.tell(PoisonPill.getInstance(), org.apache.pekko.actor.ActorRef.noSender());
      watcher.expectTerminated(Adapter.toTyped(listener), Duration.ofSeconds(5));

      var failed = Entity.spawn(fresh.system(), new UnbuildableTally(), UUID.randomUUID().toString());
      await(failed.whenStopped());
      assertThat(failure(failed.ask(new Tally.Get())))
          .isInstanceOf(EntityException.class)
          .hasMessageContaining("entity [" + failed.persistenceId() + "] is stopped after a failure")
          .hasRootCauseMessage("assertion in eventHandler()");
      // A new incarnation of the same id does not change what the old reference answers.
      var again = Entity.spawn(fresh.system(), new Tally(), failed.persistenceId().entityId());
      await(again.ask(new Tally.Add("a")));
      assertThat(failure(failed.ask(new Tally.Get()))).hasRootCauseMessage("assertion in eventHandler()");

      var stopped = Entity.spawn(fresh.system(), new Tally(), UUID.randomUUID().toString());
      await(stopped.ask(new Tally.Add("a")));
      await(stopped.stop());
      assertThat(failure(stopped.ask(new Tally.Get())))
          .isInstanceOf(EntityException.class)
          .hasMessage("entity [" + stopped.persistenceId() + "] is stopped; the command was not handled")
          .hasNoCause();
    } finally {
      fresh.shutdownTestKit();
    }
  }

  @Test
  @DisplayName("refuses to spawn an entity whose journal is not configured, naming the config path")
  void spawnWithMissingPlugin() {
    org.assertj.core.api.Assertions.assertThatThrownBy(
            () -> Entity.spawn(testKit.system(), new Tally(0, "no.such.journal"), "x"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[no.such.journal]");
  }

  /** A definition that behaves as the tally it wraps, for subclasses to change one part of. */
  private abstract static class DelegatingTally
      implements EventSourced<Tally.Command, Tally.Event, Tally.State, List<String>, Tally.Error> {
    final Tally tally;

    DelegatingTally(Tally tally) {
      this.tally = tally;
    }

    @Override
    public String typeName() {
      return tally.typeName();
    }

    @Override
    public Tally.State emptyState() {
      return tally.emptyState();
    }

    @Override
    public CommandHandler<Tally.Command, Tally.Event, Tally.State, List<String>, Tally.Error> commandHandler() {
      return tally.commandHandler();
    }

    @Override
    public EventHandler<Tally.State, Tally.Event> eventHandler() {
      return tally.eventHandler();
    }

    @Override
    public String journalPluginId() {
      return tally.journalPluginId();
    }
  }

  /**
   * A tally on a journal that is not configured, whose set-up waits for a gate: the test sends a
   * command before the entity fails to start.
   */
  private static final class GatedTally extends DelegatingTally {
    private final CountDownLatch gate;

    GatedTally(CountDownLatch gate) {
      super(new Tally(0, "no.such.journal"));
      this.gate = gate;
    }

    @Override
    public CommandHandler<Tally.Command, Tally.Event, Tally.State, List<String>, Tally.Error> commandHandler() {
      try {
        if (!gate.await(5, TimeUnit.SECONDS)) {
          throw new IllegalStateException("the test did not open the gate");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
      return tally.commandHandler();
    }
  }

  /** A tally whose event handler cannot be built: its factory fails a Java {@code assert}. */
  private static final class UnbuildableTally extends DelegatingTally {
    UnbuildableTally() {
      super(new Tally());
    }

    @Override
    public EventHandler<Tally.State, Tally.Event> eventHandler() {
      throw new AssertionError("assertion in eventHandler()");
    }
  }

  @Test
  @DisplayName("stops an entity whose definition throws an AssertionError while it is set up, and tells callers why")
  void setupAssertionError() {
    var ref = Entity.spawn(testKit.system(), new UnbuildableTally(), UUID.randomUUID().toString());
    await(ref.whenStopped());
    assertThat(failure(ref.ask(new Tally.Get())))
        .isInstanceOf(EntityException.class)
        .hasMessageContaining("cannot start entity [" + ref.persistenceId() + "]")
        .hasRootCauseInstanceOf(AssertionError.class)
        .hasRootCauseMessage("assertion in eventHandler()");
  }

  @Test
  @DisplayName("reports an entity that cannot start as stopped, and tells callers why")
  void setupFailure() {
    var behavior = Entity.create(new Tally(0, "no.such.journal"), "y");
    var probe = testKit.<Reply<List<String>, Tally.Error>>createTestProbe();
    var entity = testKit.spawn(behavior);
    testKit.createTestProbe().expectTerminated(entity, Duration.ofSeconds(3));
    entity.tell(new EntityCommand<>(new Tally.Get(), probe.ref()));
    Reply<List<String>, Tally.Error> reply = probe.receiveMessage(Duration.ofSeconds(3));
    assertThat(reply).isInstanceOf(Reply.Failed.class);
  }
}
