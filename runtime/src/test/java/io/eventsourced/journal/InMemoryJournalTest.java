package io.eventsourced.journal;

import io.eventsourced.Persistence;
import io.eventsourced.tck.JournalTck;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DisplayName;

@DisplayName("The in-memory journal passes the journal TCK")
class InMemoryJournalTest extends JournalTck {
  private static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void shutdown() {
    testKit.shutdownTestKit();
  }

  @Override
  protected Journal journal() {
    return Persistence.get(testKit.system()).journal();
  }
}
