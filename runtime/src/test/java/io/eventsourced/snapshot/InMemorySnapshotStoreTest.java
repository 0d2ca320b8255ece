package io.eventsourced.snapshot;

import io.eventsourced.Persistence;
import io.eventsourced.tck.SnapshotStoreTck;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DisplayName;

@DisplayName("The in-memory snapshot store passes the snapshot store TCK")
class InMemorySnapshotStoreTest extends SnapshotStoreTck {
  private static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void shutdown() {
    testKit.shutdownTestKit();
  }

  @Override
  protected SnapshotStore snapshotStore() {
    return Persistence.get(testKit.system()).snapshotStore();
  }
}
