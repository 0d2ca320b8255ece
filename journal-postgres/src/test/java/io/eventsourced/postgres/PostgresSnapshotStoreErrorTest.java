package io.eventsourced.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import com.zaxxer.hikari.HikariDataSource;
import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.JournalException;
import io.eventsourced.snapshot.SnapshotRecord;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.sql.Connection;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorSystem;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * A non-fatal {@link Error} from below the snapshot store (the driver or the pool) fails the
 * operation instead of leaving its caller, an entity recovering or taking a snapshot, waiting
 * forever. The error is injected by swapping the store's pool for one whose connections cannot
 * be had; the real pool is put back afterwards.
 */
@DisplayName("The PostgreSQL snapshot store when the driver throws an Error")
class PostgresSnapshotStoreErrorTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("snap_error");
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

  @Test
  @DisplayName("fails load, save and delete naming entity and sequenceNr, and loses nothing stored")
  void errorFailsTheOperation() throws Exception {
    PostgresSnapshotStore store = (PostgresSnapshotStore) Persistence.get(testKit.system()).snapshotStore();
    PersistenceId id = PersistenceId.of("snap-error", UUID.randomUUID().toString());
    await(store.save(new SnapshotRecord(id, 10, 4, "", new byte[] {10})));

    AssertionError injected = new AssertionError("injected by the test");
    Field poolField = PostgresSnapshotStore.class.getDeclaredField("pool");
    poolField.setAccessible(true);
    Object realPool = poolField.get(store);
    poolField.set(store, failingPool(injected));
    try {
      assertFailsWith(store.loadLatest(id, Long.MAX_VALUE), injected, "cannot load the snapshot of [" + id + "] at sequenceNr [" + Long.MAX_VALUE + "]", id, Long.MAX_VALUE);
      assertFailsWith(store.save(new SnapshotRecord(id, 20, 4, "", new byte[] {20})), injected, "cannot save the snapshot of [" + id + "] at sequenceNr [20]", id, 20);
      assertFailsWith(store.delete(id, 10), injected, "cannot delete the snapshots of [" + id + "] at sequenceNr [10]", id, 10);
    } finally {
      poolField.set(store, realPool);
    }

    Optional<SnapshotRecord> latest = await(store.loadLatest(id, Long.MAX_VALUE));
    assertThat(latest).map(SnapshotRecord::sequenceNr).contains(10L);
  }

  private static void assertFailsWith(
      CompletionStage<?> stage, Error injected, String message, PersistenceId id, long sequenceNr) throws Exception {
    Throwable error = PostgresTestSupport.outcome(stage.toCompletableFuture());
    assertThat(error).isInstanceOf(JournalException.class).hasMessageContaining(message).hasCause(injected);
    assertThat(((JournalException) error).persistenceId()).isEqualTo(id);
    assertThat(((JournalException) error).sequenceNr()).isEqualTo(sequenceNr);
  }

  /** A pool whose every connection request throws {@code error}. */
  private static ConnectionPool failingPool(Error error) throws Exception {
    HikariDataSource failing =
        new HikariDataSource() {
          @Override
          public Connection getConnection() {
            throw error;
          }
        };
    Class<?> key = Class.forName(ConnectionPool.class.getName() + "$Key");
    Constructor<ConnectionPool> constructor =
        ConnectionPool.class.getDeclaredConstructor(ActorSystem.class, key, HikariDataSource.class);
    constructor.setAccessible(true);
    return constructor.newInstance(testKit.system(), null, failing);
  }

  private static <T> T await(CompletionStage<T> stage) throws Exception {
    return stage.toCompletableFuture().get(10, TimeUnit.SECONDS);
  }
}
