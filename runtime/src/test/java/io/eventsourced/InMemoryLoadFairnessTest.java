package io.eventsourced;

import static org.assertj.core.api.Assertions.assertThat;

import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * The advice of docs/getting-started.md for a load that never waits on the in-memory journal:
 * with a thread-pool executor as the default dispatcher, work handed in from other threads still
 * runs while callers send each next command from the previous reply. {@link StarvationProbe}
 * shows what happens with the default fork-join executor.
 */
@DisplayName("The in-memory journal under a load that never waits")
class InMemoryLoadFairnessTest {

  /** Starts 20 callers, each sending its next command from the previous reply's continuation. */
  static void startLoad(ActorSystem<?> system, AtomicBoolean stop, AtomicLong accepted) {
    for (int i = 0; i < 20; i++) {
      loop(Entity.spawn(system, new Hits(), UUID.randomUUID().toString()), stop, accepted);
    }
  }

  /** Sends the next command from the previous reply's continuation, as long as they are accepted. */
  private static void loop(EntityRef<Hits.Command, Long, String> ref, AtomicBoolean stop, AtomicLong accepted) {
    if (!stop.get()) {
      ref.ask(new Hits.Hit())
          .whenCompleteAsync(
              (reply, error) -> {
                if (reply instanceof Reply.Accepted<Long, String>) {
                  accepted.incrementAndGet();
                  loop(ref, stop, accepted);
                }
              });
    }
  }

  @Test
  @DisplayName("runs tasks, spawns and asks from other threads with a thread-pool executor as the default dispatcher")
  void threadPoolExecutorStaysFair() throws Exception {
    ActorTestKit testKit =
        ActorTestKit.create(
            "InMemoryLoadFairness",
            ConfigFactory.parseString("pekko.actor.default-dispatcher.executor = \"thread-pool-executor\"")
                .withFallback(ConfigFactory.load()));
    AtomicBoolean stop = new AtomicBoolean();
    AtomicLong accepted = new AtomicLong();
    try {
      startLoad(testKit.system(), stop, accepted);
      Thread.sleep(300);
      for (int i = 0; i < 3; i++) {
        long before = accepted.get();
        CountDownLatch ran = new CountDownLatch(1);
        testKit.system().executionContext().execute(ran::countDown);
        assertThat(ran.await(5, TimeUnit.SECONDS)).as("a task handed in from the test's thread ran").isTrue();
        EntityRef<Hits.Command, Long, String> fresh = Entity.spawn(testKit.system(), new Hits(), UUID.randomUUID().toString());
        assertThat(fresh.ask(new Hits.Get(), Duration.ofSeconds(5)).toCompletableFuture().get(6, TimeUnit.SECONDS))
            .as("a new entity's reply to the test's thread")
            .isEqualTo(new Reply.Accepted<Long, String>(0L));
        Thread.sleep(50);
        assertThat(accepted.get()).as("the load went on meanwhile").isGreaterThan(before);
      }
    } finally {
      stop.set(true);
      testKit.shutdownTestKit();
    }
  }
}
