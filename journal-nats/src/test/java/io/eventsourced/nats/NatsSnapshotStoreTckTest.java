package io.eventsourced.nats;

import io.eventsourced.Persistence;
import io.eventsourced.snapshot.SnapshotStore;
import io.eventsourced.tck.SnapshotStoreTck;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;

@DisplayName("The NATS snapshot store passes the snapshot store TCK against nats-server")
class NatsSnapshotStoreTckTest extends SnapshotStoreTck {
  private static final TestNats.Names names = TestNats.Names.fresh("STCK");
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() {
    TestNats.requireServer();
    testKit = ActorTestKit.create("NatsSnapshotTck", names.config(TestNats.URL, ""));
  }

  @AfterAll
  static void shutdown() throws Exception {
    if (testKit != null) {
      testKit.shutdownTestKit();
      names.delete(TestNats.URL);
    }
  }

  @Override
  protected SnapshotStore snapshotStore() {
    return Persistence.get(testKit.system()).snapshotStore("eventsourced.snapshot-store.nats");
  }
}
