package io.eventsourced.postgres;

import io.eventsourced.Persistence;
import io.eventsourced.journal.Journal;
import io.eventsourced.tck.JournalTck;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;

/** The TCK again with replay pages of two events, so that every replay bound crosses pages. */
@DisplayName("The PostgreSQL journal passes the journal TCK with replay pages of two events")
class PostgresJournalSmallPagesTckTest extends JournalTck {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("journal_pages");
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() {
    PostgresTestSupport.requireServer();
    testKit = PostgresTestSupport.testKit(SCHEMA, "eventsourced.postgres.replay-fetch-size = 2");
  }

  @AfterAll
  static void shutdown() {
    if (testKit != null) {
      testKit.shutdownTestKit();
      PostgresTestSupport.dropSchema(SCHEMA);
    }
  }

  @Override
  protected Journal journal() {
    return Persistence.get(testKit.system()).journal();
  }
}
