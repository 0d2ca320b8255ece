package io.eventsourced;

import static org.assertj.core.api.Assertions.assertThat;

import com.typesafe.config.ConfigFactory;
import io.eventsourced.serialization.JsonSerializable;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * The advice of docs/getting-started.md for a load that never waits on the in-memory journal:
 * with a thread-pool executor as the default dispatcher, work handed in from other threads still
 * runs while callers send each next command from the previous reply.
 */
@DisplayName("The in-memory journal under a load that never waits")
class InMemoryLoadFairnessTest {

  /** A counter whose events are stored as JSON. */
  static final class Hits implements EventSourced<Hits.Command, Hits.Hit, Long, Long, String> {
    sealed interface Command {}

    record Hit1() implements Command {}

    record Get() implements Command {}

    record Hit() implements JsonSerializable {}

    @Override
    public String typeName() {
      return "hits";
    }

    @Override
    public Long emptyState() {
      return 0L;
    }

    @Override
    public CommandHandler<Command, Hit, Long, Long, String> commandHandler() {
      return newCommandHandlerBuilder()
          .onCommand(Hit1.class, (n, c) -> effect().persist(new Hit()).thenReply(s -> s))
          .onCommand(Get.class, (n, c) -> effect().reply(n))
          .build();
    }

    @Override
    public EventHandler<Long, Hit> eventHandler() {
      return newEventHandlerBuilder().onEvent(Hit.class, (n, e) -> n + 1).build();
    }
  }

  private static void loop(EntityRef<Hits.Command, Long, String> ref, AtomicBoolean stop, AtomicLong replies) {
    if (!stop.get()) {
      ref.ask(new Hits.Hit1())
          .whenCompleteAsync(
              (reply, error) -> {
                replies.incrementAndGet();
                loop(ref, stop, replies);
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
    AtomicLong replies = new AtomicLong();
    try {
      for (int i = 0; i < 20; i++) {
        loop(Entity.spawn(testKit.system(), new Hits(), UUID.randomUUID().toString()), stop, replies);
      }
      Thread.sleep(300);
      for (int i = 0; i < 3; i++) {
        long before = replies.get();
        CountDownLatch ran = new CountDownLatch(1);
        testKit.system().executionContext().execute(ran::countDown);
        assertThat(ran.await(5, TimeUnit.SECONDS)).as("a task handed in from the test's thread ran").isTrue();
        EntityRef<Hits.Command, Long, String> fresh = Entity.spawn(testKit.system(), new Hits(), UUID.randomUUID().toString());
        assertThat(fresh.ask(new Hits.Get(), Duration.ofSeconds(5)).toCompletableFuture().get(6, TimeUnit.SECONDS))
            .as("a new entity's reply to the test's thread")
            .isEqualTo(new Reply.Accepted<Long, String>(0L));
        Thread.sleep(50);
        assertThat(replies.get()).as("the load went on meanwhile").isGreaterThan(before);
      }
    } finally {
      stop.set(true);
      testKit.shutdownTestKit();
    }
  }
}
