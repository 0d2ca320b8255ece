package io.eventsourced;

import com.typesafe.config.ConfigFactory;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;

/**
 * Measures the rate of 20 callers on the in-memory journal that send each next command from the
 * previous reply, then how long work handed in from outside waits meanwhile (docs/getting-started.md, "A load that never
 * waits"). Not a test: run it by hand. {@code -Dprobe.executor=thread-pool-executor} sets the
 * default dispatcher's executor; without it Pekko's fork-join executor runs.
 */
public final class StarvationProbe {

  private StarvationProbe() {}

  /**
   * Prints the load's rate, then runs five probes and prints one line each.
   *
   * @param args unused
   * @throws Exception if interrupted
   */
  public static void main(String[] args) throws Exception {
    String executor = System.getProperty("probe.executor", "fork-join-executor");
    ActorTestKit testKit =
        ActorTestKit.create(
            "StarvationProbe",
            ConfigFactory.parseString("pekko.actor.default-dispatcher.executor = \"" + executor + "\"")
                .withFallback(ConfigFactory.load()));
    AtomicBoolean stop = new AtomicBoolean();
    AtomicLong accepted = new AtomicLong();
    try {
      InMemoryLoadFairnessTest.startLoad(testKit.system(), stop, accepted);
      // Past the JIT's warm-up, then a window of three seconds.
      Thread.sleep(5000);
      long before = accepted.get();
      Thread.sleep(3000);
      System.out.printf("PROBE executor=%s load_commands_per_s=%d%n", executor, (accepted.get() - before) / 3);
      for (int i = 0; i < 5; i++) {
        long t0 = System.nanoTime();
        CountDownLatch ran = new CountDownLatch(1);
        testKit.system().executionContext().execute(ran::countDown);
        boolean taskRan = ran.await(10, TimeUnit.SECONDS);
        long t1 = System.nanoTime();
        EntityRef<Hits.Command, Long, String> fresh = Entity.spawn(testKit.system(), new Hits(), UUID.randomUUID().toString());
        String outcome;
        try {
          outcome = String.valueOf(fresh.ask(new Hits.Get(), Duration.ofSeconds(10)).toCompletableFuture().get(15, TimeUnit.SECONDS));
        } catch (Exception e) {
          outcome = e.toString();
        }
        long t2 = System.nanoTime();
        System.out.printf(
            "PROBE executor=%s task_ran=%s task_wait_ms=%d spawn_and_ask_ms=%d outcome=%s accepted_so_far=%d%n",
            executor, taskRan, (t1 - t0) / 1_000_000, (t2 - t1) / 1_000_000, outcome, accepted.get());
      }
    } finally {
      stop.set(true);
      testKit.shutdownTestKit();
    }
  }
}
