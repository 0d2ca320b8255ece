package io.eventsourced.postgres;

import io.eventsourced.Persistence;
import io.eventsourced.journal.Journal;
import io.eventsourced.tck.JournalTck;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;

@DisplayName("The PostgreSQL journal passes the journal TCK")
class PostgresJournalTckTest extends JournalTck {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("journal_tck");
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() {
    PostgresTestSupport.requireServer();
    testKit = PostgresTestSupport.testKit(SCHEMA, "");
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
