package io.eventsourced.postgres;

import io.eventsourced.Persistence;
import io.eventsourced.snapshot.SnapshotStore;
import io.eventsourced.tck.SnapshotStoreTck;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;

@DisplayName("The PostgreSQL snapshot store passes the snapshot store TCK")
class PostgresSnapshotStoreTckTest extends SnapshotStoreTck {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("snapshot_tck");
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
  protected SnapshotStore snapshotStore() {
    return Persistence.get(testKit.system()).snapshotStore();
  }
}
