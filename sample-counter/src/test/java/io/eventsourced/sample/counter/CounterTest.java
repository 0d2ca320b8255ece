package io.eventsourced.sample.counter;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.Message;
import com.typesafe.config.ConfigFactory;
import io.eventsourced.Effect;
import io.eventsourced.PersistenceId;
import io.eventsourced.Reply;
import io.eventsourced.sample.counter.proto.Decreased;
import io.eventsourced.sample.counter.proto.Increased;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Function;
import org.apache.pekko.actor.testkit.typed.annotations.JUnit5TestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.JUnit5TestKitBuilder;
import org.apache.pekko.actor.testkit.typed.javadsl.TestKitJUnit5Extension;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(TestKitJUnit5Extension.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@DisplayName("The counter sample")
class CounterTest {

  @JUnit5TestKit final ActorTestKit testKit = new JUnit5TestKitBuilder().build();

  private final Counter counter = new Counter(0);

  @Test
  @DisplayName("persists Increased and replies with the new value")
  void increase() {
    Effect<Message, Long, Long, Counter.Error> effect = counter.commandHandler().apply(5L, new Counter.Increase(3));
    assertThat(effect.events()).containsExactly(Increased.newBuilder().setN(3).build());
    assertThat(effect.reply(8L)).isEqualTo(new Reply.Accepted<>(8L));
  }

  @Test
  @DisplayName("persists Decreased and folds both events into the value")
  void decrease() {
    Effect<Message, Long, Long, Counter.Error> effect = counter.commandHandler().apply(5L, new Counter.Decrease(5));
    assertThat(effect.events()).containsExactly(Decreased.newBuilder().setN(5).build());
    assertThat(counter.eventHandler().apply(5L, Decreased.newBuilder().setN(5).build())).isZero();
    assertThat(counter.eventHandler().apply(5L, Increased.newBuilder().setN(2).build())).isEqualTo(7L);
  }

  @Test
  @DisplayName("rejects decreasing below zero with Underflow")
  void underflow() {
    Effect<Message, Long, Long, Counter.Error> effect = counter.commandHandler().apply(2L, new Counter.Decrease(3));
    assertThat(effect.events()).isEmpty();
    assertThat(effect.reply(2L)).isEqualTo(new Reply.Rejected<>(new Counter.Underflow(2, 3)));
  }

  @Test
  @DisplayName("rejects increasing past Long.MAX_VALUE with Overflow")
  void overflow() {
    Effect<Message, Long, Long, Counter.Error> effect = counter.commandHandler().apply(Long.MAX_VALUE - 1, new Counter.Increase(2));
    assertThat(effect.events()).isEmpty();
    assertThat(effect.reply(0L)).isEqualTo(new Reply.Rejected<>(new Counter.Overflow(Long.MAX_VALUE - 1, 2)));
    assertThat(counter.commandHandler().apply(Long.MAX_VALUE - 1, new Counter.Increase(1)).events()).hasSize(1);
  }

  @Test
  @DisplayName("rejects negative amounts when the command is built")
  void negativeAmounts() {
    assertThatThrownBy(() -> new Counter.Increase(-1)).hasMessageContaining("Increase amount");
    assertThatThrownBy(() -> new Counter.Decrease(-1)).hasMessageContaining("Decrease amount");
  }

  @Test
  @DisplayName("computes the expected value of alternating commands")
  void expectedValue() {
    assertThat(Main.expectedValue(0)).isZero();
    assertThat(Main.expectedValue(1)).isEqualTo(2);
    assertThat(Main.expectedValue(2)).isEqualTo(1);
    assertThat(Main.expectedValue(20_000)).isEqualTo(10_000);
  }

  @Test
  @DisplayName("runs writes and recovery on the in-memory journal and verifies every entity")
  void runsAndVerifies() {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    Main.Result result = Main.run(testKit.system(), new CounterSettings("in-memory", 5, 301, 0), new PrintStream(out, true, StandardCharsets.UTF_8));
    assertThat(result.verified()).as(out.toString(StandardCharsets.UTF_8)).isTrue();
    assertThat(result.totalEvents()).isEqualTo(5 * 301);
    assertThat(result.summaryLine())
        .matches("SUMMARY journal=in-memory entities=5 events_per_entity=301 write_s=\\d+\\.\\d{3} write_events_per_s=\\d+ recovery_s=\\d+\\.\\d{3} recovery_events_per_s=\\d+ verified=true");
  }

  @Test
  @DisplayName("recovers from snapshots when snapshots are on")
  void runsWithSnapshots() {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    Main.Result result = Main.run(testKit.system(), new CounterSettings("in-memory", 3, 250, 100), new PrintStream(out, true, StandardCharsets.UTF_8));
    assertThat(result.verified()).as(out.toString(StandardCharsets.UTF_8)).isTrue();
  }

  @Test
  @DisplayName("reads its settings from config and names the key of a bad value")
  void settings() {
    CounterSettings defaults = CounterSettings.fromConfig(ConfigFactory.load());
    assertThat(defaults.entities()).isPositive();
    assertThatThrownBy(() -> settingsWith("counter.journal = nope"))
        .hasMessageContaining("[counter.journal]")
        .hasMessageContaining("nope");
    assertThatThrownBy(() -> settingsWith("counter.entities = 0")).hasMessageContaining("[counter.entities]");
    // As COUNTER_EVENTS=1.5 would give it: a string, which getInt would read as 1.
    assertThatThrownBy(() -> settingsWith("counter.events-per-entity = \"1.5\""))
        .hasMessage("[counter.events-per-entity] (COUNTER_EVENTS) must be a whole number from 1 to 2147483647, was [1.5]");
    assertThatThrownBy(() -> settingsWith("counter.entities = 3000000000"))
        .hasMessage("[counter.entities] (COUNTER_ENTITIES) must be a whole number from 1 to 2147483647, was [3000000000]");
    assertThatThrownBy(() -> settingsWith("counter.entities = -3000000000"))
        .hasMessageContaining("[counter.entities] (COUNTER_ENTITIES) must be a whole number from 1");
    assertThatThrownBy(() -> settingsWith("counter.snapshot-every = 1e19"))
        .hasMessageContaining("[counter.snapshot-every] (COUNTER_SNAPSHOT_EVERY) must be a whole number");
  }

  private static CounterSettings settingsWith(String override) {
    return CounterSettings.fromConfig(ConfigFactory.parseString(override).withFallback(ConfigFactory.load()));
  }

  @Test
  @DisplayName("gives up with a report when no command completes for the stall time, instead of waiting forever")
  void stalledWritePhaseEnds() {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    LongAdder persisted = new LongAdder();
    persisted.add(7);
    long start = System.nanoTime();
    boolean finished =
        Main.awaitProgress(new CompletableFuture<>(), persisted, Duration.ofSeconds(2),
            new PrintStream(out, true, StandardCharsets.UTF_8));
    assertThat(finished).isFalse();
    assertThat(System.nanoTime() - start).as("gave up after the stall time, not at once").isGreaterThan(2_000_000_000L);
    assertThat(out.toString(StandardCharsets.UTF_8)).contains("no command completed for 2 s (7 events persisted); giving up");
  }

  @Test
  @DisplayName("keeps waiting while commands complete, however long the phase takes")
  void progressingWritePhaseIsAwaited() throws Exception {
    LongAdder persisted = new LongAdder();
    CompletableFuture<Void> all = new CompletableFuture<>();
    Thread clients = new Thread(() -> {
      try {
        for (int i = 0; i < 12; i++) {
          Thread.sleep(300);
          persisted.increment();
        }
        all.complete(null);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    clients.start();
    // 3.6 s of work with progress every 0.3 s (far inside the limit, even on a loaded machine)
    // outlasts a 2 s stall limit.
    boolean finished =
        Main.awaitProgress(all, persisted, Duration.ofSeconds(2), new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
    clients.join();
    assertThat(finished).isTrue();
  }

  @Test
  @DisplayName("drives an entity whose replies all arrive before the client attaches its continuation, without nesting calls")
  void clientLoopsOnRepliesThatArriveFirst() throws Exception {
    int commands = 200_000;
    SimulatedCounter entity = new SimulatedCounter(command -> CompletableFuture.completedFuture(command));
    ClientRun run = new ClientRun(entity, commands);
    // Each reply is there before the continuation: a client that sent the next command from
    // the continuation would nest a call deeper per command (the simulated counter fails its
    // ask then, see SimulatedCounter) and in the end overflow the stack.
    run.client.start();
    run.client.done.get(60, TimeUnit.SECONDS);
    assertThat(run.output()).isEmpty();
    assertThat(run.mismatches.get()).isZero();
    assertThat(run.persisted.sum()).isEqualTo(commands);
    assertThat(entity.value).isEqualTo(Main.expectedValue(commands));
  }

  @Test
  @DisplayName("drives an entity whose replies arrive on other threads, early or late, from one thread at a time")
  void clientHandlesRepliesFromOtherThreads() throws Exception {
    int commands = 50_000;
    ExecutorService replies = Executors.newFixedThreadPool(2);
    try {
      SimulatedCounter entity =
          new SimulatedCounter(
              command -> {
                // Mixes replies that are there before the client attaches its continuation
                // with replies completed later by another thread (a reply completed by another
                // thread exactly while the client attaches is rare here; the hand-over's
                // atomic covers it the same way).
                if (ThreadLocalRandom.current().nextInt(3) == 0) {
                  return CompletableFuture.completedFuture(command);
                }
                return CompletableFuture.supplyAsync(() -> command, replies);
              });
      ClientRun run = new ClientRun(entity, commands);
      run.client.start();
      run.client.done.get(60, TimeUnit.SECONDS);
      assertThat(run.output()).isEmpty();
      assertThat(entity.overlaps.get()).as("commands sent while another was in flight").isZero();
      assertThat(run.persisted.sum()).isEqualTo(commands);
      assertThat(entity.value).isEqualTo(Main.expectedValue(commands));
    } finally {
      replies.shutdownNow();
    }
  }

  @Test
  @DisplayName("stops a client at the first wrong reply and reports it")
  void clientStopsAtAWrongReply() throws Exception {
    SimulatedCounter entity =
        new SimulatedCounter(command -> CompletableFuture.completedFuture(command)) {
          @Override
          long apply(Counter.Command command) {
            long value = super.apply(command);
            return sent == 3 ? value + 100 : value;
          }
        };
    ClientRun run = new ClientRun(entity, 10);
    run.client.start();
    run.client.done.get(10, TimeUnit.SECONDS);
    assertThat(entity.sent).as("commands sent").isEqualTo(3);
    assertThat(run.mismatches.get()).isEqualTo(1);
    assertThat(run.persisted.sum()).isEqualTo(2);
    assertThat(run.output()).contains("command 3: expected value 3, got Accepted[value=103]");
  }

  /**
   * A counter without actors: applies each command and answers through a chosen future. Fails an
   * ask that is made much deeper in the stack than the first one, so that a client that nests a
   * call per command fails fast, naming the cause, instead of overflowing the stack.
   */
  private static class SimulatedCounter {
    private static final int MAX_EXTRA_FRAMES = 200;
    final AtomicInteger overlaps = new AtomicInteger();
    private final AtomicInteger inFlight = new AtomicInteger();
    private final Function<Counter.Command, CompletableFuture<Counter.Command>> delivery;
    volatile long value;
    volatile int sent;
    private volatile int asks;
    private volatile int firstDepth;

    SimulatedCounter(Function<Counter.Command, CompletableFuture<Counter.Command>> delivery) {
      this.delivery = delivery;
    }

    long apply(Counter.Command command) {
      sent++;
      return value +=
          command instanceof Counter.Increase increase ? increase.n() : -((Counter.Decrease) command).n();
    }

    CompletionStage<Reply<Long, Counter.Error>> ask(Counter.Command command) {
      if (asks++ % 100 == 0) {
        int depth = StackWalker.getInstance().walk(frames -> (int) frames.count());
        if (firstDepth == 0) {
          firstDepth = depth;
        } else if (depth > firstDepth + MAX_EXTRA_FRAMES) {
          throw new IllegalStateException(
              "ask " + asks + " made " + depth + " frames deep, the first " + firstDepth + ": the client nests calls");
        }
      }
      if (inFlight.incrementAndGet() > 1) {
        overlaps.incrementAndGet();
      }
      return delivery
          .apply(command)
          .thenApply(
              c -> {
                long value = apply(c);
                inFlight.decrementAndGet();
                return new Reply.Accepted<>(value);
              });
    }
  }

  private static final class ClientRun {
    final LongAdder persisted = new LongAdder();
    final AtomicInteger mismatches = new AtomicInteger();
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    final Main.Client client;

    ClientRun(SimulatedCounter entity, int commands) {
      client =
          new Main.Client(
              PersistenceId.of("counter", "simulated"),
              entity::ask,
              commands,
              persisted,
              mismatches,
              new PrintStream(out, true, StandardCharsets.UTF_8));
    }

    String output() {
      return out.toString(StandardCharsets.UTF_8);
    }
  }
}
