package io.eventsourced.nats;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.JournalException;
import io.eventsourced.snapshot.SnapshotRecord;
import io.nats.client.KeyValue;
import java.lang.reflect.Field;
import java.lang.reflect.Proxy;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * A non-fatal {@link Error} from the client fails the snapshot operation instead of leaving its
 * caller, an entity recovering or taking a snapshot, waiting forever. The error is injected by
 * swapping the store's bucket for one that throws; the real bucket is put back afterwards.
 */
@DisplayName("The NATS snapshot store when the client throws an Error")
class NatsSnapshotStoreErrorTest {
  private static final TestNats.Names names = TestNats.Names.fresh("SERR");
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() {
    TestNats.requireServer();
    testKit = ActorTestKit.create("NatsSnapshotError", names.config(TestNats.URL, ""));
  }

  @AfterAll
  static void shutdown() throws Exception {
    if (testKit != null) {
      testKit.shutdownTestKit();
      names.delete(TestNats.URL);
    }
  }

  @Test
  @DisplayName("fails load and save with a JournalException naming entity and sequenceNr, and loses nothing stored")
  void errorFailsTheOperation() throws Exception {
    NatsSnapshotStore store =
        (NatsSnapshotStore) Persistence.get(testKit.system()).snapshotStore("eventsourced.snapshot-store.nats");
    PersistenceId id = PersistenceId.of("snap-error", UUID.randomUUID().toString());
    await(store.save(new SnapshotRecord(id, 10, 4, "", new byte[] {10})));

    AssertionError injected = new AssertionError("injected by the test");
    Field bucketField = NatsSnapshotStore.class.getDeclaredField("bucket");
    bucketField.setAccessible(true);
    Object realBucket = bucketField.get(store);
    bucketField.set(
        store,
        Proxy.newProxyInstance(
            KeyValue.class.getClassLoader(),
            new Class<?>[] {KeyValue.class},
            (proxy, method, args) -> {
              throw injected;
            }));
    try {
      assertFailsWith(store.loadLatest(id, 15), injected, id, 15);
      assertFailsWith(store.save(new SnapshotRecord(id, 20, 4, "", new byte[] {20})), injected, id, 20);
    } finally {
      bucketField.set(store, realBucket);
    }

    Optional<SnapshotRecord> latest = await(store.loadLatest(id, Long.MAX_VALUE));
    assertThat(latest).map(SnapshotRecord::sequenceNr).contains(10L);
  }

  private static void assertFailsWith(CompletionStage<?> stage, Error injected, PersistenceId id, long sequenceNr)
      throws Exception {
    Throwable error;
    try {
      stage.toCompletableFuture().get(10, TimeUnit.SECONDS);
      throw new AssertionError("expected the operation to fail");
    } catch (ExecutionException e) {
      error = e.getCause();
    }
    assertThat(error)
        .isInstanceOf(JournalException.class)
        .hasMessageContaining("[" + id + "] in bucket [" + names.bucket() + "]")
        .hasMessageContaining("sequenceNr [" + sequenceNr + "]")
        .hasCause(injected);
    assertThat(((JournalException) error).persistenceId()).isEqualTo(id);
    assertThat(((JournalException) error).sequenceNr()).isEqualTo(sequenceNr);
  }

  private static <T> T await(CompletionStage<T> stage) throws Exception {
    return stage.toCompletableFuture().get(10, TimeUnit.SECONDS);
  }
}
