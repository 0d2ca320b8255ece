package io.eventsourced.postgres;

import io.eventsourced.tck.EntityFaultCheck;
import java.time.Duration;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/**
 * The connection cut of {@link PostgresConnectionFaultTest}, seen from real entities and their
 * callers through the TCK's {@link EntityFaultCheck}.
 */
@DisplayName("Entities on the PostgreSQL journal when the connection to the server is cut")
class PostgresEntityFaultTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("entityfault");
  private static TcpProxy proxy;
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() throws Exception {
    PostgresTestSupport.requireServer();
    proxy = PostgresTestSupport.proxyToServer();
    testKit = PostgresTestSupport.testKitThrough(proxy, SCHEMA);
  }

  @AfterAll
  static void shutdown() {
    if (testKit != null) {
      testKit.shutdownTestKit();
      proxy.close();
      PostgresTestSupport.dropSchema(SCHEMA);
    }
  }

  @Test
  @DisplayName("tells every caller of a cut write, stores each acknowledged event once, and lets re-spawned entities recover what was stored and go on")
  void cutAndRestore() throws Exception {
    EntityFaultCheck.Outcome outcome =
        EntityFaultCheck.run(testKit.system(), proxy::cut, Duration.ofMillis(1500), proxy::restore);
    LoggerFactory.getLogger(PostgresEntityFaultTest.class).info("Entity fault run: {}", outcome);
  }
}
