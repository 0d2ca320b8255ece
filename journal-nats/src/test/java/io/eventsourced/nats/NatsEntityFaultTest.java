package io.eventsourced.nats;

import io.eventsourced.tck.EntityFaultCheck;
import java.time.Duration;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/**
 * A nats-server of the test's own killed under a load of real entities and restarted, seen from
 * the entities' callers through the TCK's {@link EntityFaultCheck}.
 */
@DisplayName("Entities on the NATS journal when the server is killed and restarted")
class NatsEntityFaultTest {

  @Test
  @DisplayName("tells every caller of a lost write, stores each acknowledged event once, and lets re-spawned entities recover what was stored and go on")
  void killAndRestart() throws Exception {
    try (NatsServerProcess server = NatsServerProcess.start()) {
      TestNats.Names names = TestNats.Names.fresh("ENTITYKILL");
      ActorTestKit testKit =
          ActorTestKit.create(
              "NatsEntityKill",
              names.config(
                  server.url(),
                  "eventsourced.nats.connection { request-timeout = 1s, connect-timeout = 2s, reconnect-wait = 100ms }\n"
                      + "eventsourced.journal.nats { publish-retries = 1, retry-backoff = 200ms }\n"));
      try {
        EntityFaultCheck.Outcome outcome =
            EntityFaultCheck.run(testKit.system(), server::kill, Duration.ofSeconds(4), server::startProcess);
        LoggerFactory.getLogger(NatsEntityFaultTest.class).info("Entity fault run: {}", outcome);
      } finally {
        testKit.shutdownTestKit();
      }
    }
  }
}
