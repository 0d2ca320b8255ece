package io.eventsourced.nats;

import io.eventsourced.Persistence;
import io.eventsourced.journal.Journal;
import io.eventsourced.tck.JournalTck;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;

@DisplayName("The NATS journal passes the journal TCK against nats-server")
class NatsJournalTckTest extends JournalTck {
  private static final TestNats.Names names = TestNats.Names.fresh("JTCK");
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() {
    TestNats.requireServer();
    testKit = ActorTestKit.create("NatsJournalTck", names.config(TestNats.URL, ""));
  }

  @AfterAll
  static void shutdown() throws Exception {
    if (testKit != null) {
      testKit.shutdownTestKit();
      names.delete(TestNats.URL);
    }
  }

  @Override
  protected Journal journal() {
    return Persistence.get(testKit.system()).journal("eventsourced.journal.nats");
  }
}
