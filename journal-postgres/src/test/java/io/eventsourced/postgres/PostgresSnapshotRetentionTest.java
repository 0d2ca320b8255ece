package io.eventsourced.postgres;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.JournalException;
import io.eventsourced.snapshot.SnapshotRecord;
import io.eventsourced.snapshot.SnapshotStore;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.Done;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The PostgreSQL snapshot store (snapshot-keep-last = 2)")
class PostgresSnapshotRetentionTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("retention");
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() {
    PostgresTestSupport.requireServer();
    testKit = PostgresTestSupport.testKit(SCHEMA, "eventsourced.snapshot-store.postgres.snapshot-keep-last = 2");
  }

  @AfterAll
  static void shutdown() {
    if (testKit != null) {
      testKit.shutdownTestKit();
      PostgresTestSupport.dropSchema(SCHEMA);
    }
  }

  @Test
  @DisplayName("keeps only the two latest snapshots of each entity")
  void keepsLastTwo() throws Exception {
    SnapshotStore store = Persistence.get(testKit.system()).snapshotStore();
    PersistenceId a = PersistenceId.of("retained", UUID.randomUUID().toString());
    PersistenceId b = PersistenceId.of("retained", UUID.randomUUID().toString());
    for (long seq : new long[] {10, 20, 30, 40}) {
      store.save(new SnapshotRecord(a, seq, 4, "", new byte[] {(byte) seq})).toCompletableFuture().get(10, TimeUnit.SECONDS);
    }
    store.save(new SnapshotRecord(b, 5, 4, "", new byte[] {5})).toCompletableFuture().get(10, TimeUnit.SECONDS);
    assertThat(sequenceNrs(a)).containsExactly(30L, 40L);
    assertThat(sequenceNrs(b)).containsExactly(5L);
    assertThat(store.loadLatest(a, 35).toCompletableFuture().get(10, TimeUnit.SECONDS).map(SnapshotRecord::sequenceNr))
        .contains(30L);
  }

  @Test
  @DisplayName("saves concurrent snapshots of one entity, some at the same sequenceNr, without a deadlock")
  void concurrentSavesOfOneEntity() throws Exception {
    SnapshotStore store = Persistence.get(testKit.system()).snapshotStore();
    for (int round = 0; round < 10; round++) {
      PersistenceId id = PersistenceId.of("retained", UUID.randomUUID().toString());
      List<CompletableFuture<Done>> saves = new ArrayList<>();
      for (int i = 0; i < 16; i++) {
        long seq = (i % 4 + 1) * 10;
        saves.add(store.save(new SnapshotRecord(id, seq, 4, "", new byte[] {(byte) i})).toCompletableFuture());
      }
      for (CompletableFuture<Done> save : saves) {
        assertThat(PostgresTestSupport.outcome(save)).as("round " + round).isNull();
      }
      assertThat(sequenceNrs(id)).as("round " + round).containsExactly(30L, 40L);
    }
  }

  @Test
  @DisplayName("refuses a snapshot whose manifest PostgreSQL text cannot hold, instead of storing it changed")
  void refusesUnstorableManifest() throws Exception {
    SnapshotStore store = Persistence.get(testKit.system()).snapshotStore();
    PersistenceId id = PersistenceId.of("retained", UUID.randomUUID().toString());
    for (String manifest : new String[] {"com.example.State\uD800", "nul\u0000byte"}) {
      assertThatThrownBy(() ->
              store.save(new SnapshotRecord(id, 7, 4, manifest, new byte[] {7})).toCompletableFuture().get(10, TimeUnit.SECONDS))
          .hasCauseInstanceOf(JournalException.class)
          .hasMessageContaining("cannot save the snapshot of [" + id + "] at sequenceNr [7]")
          .hasMessageContaining("nothing was stored");
    }
    assertThat(sequenceNrs(id)).isEmpty();
    // A manifest with a surrogate pair is stored unchanged.
    store.save(new SnapshotRecord(id, 8, 4, "state-😀", new byte[] {8})).toCompletableFuture().get(10, TimeUnit.SECONDS);
    assertThat(store.loadLatest(id, Long.MAX_VALUE).toCompletableFuture().get(10, TimeUnit.SECONDS).map(SnapshotRecord::manifest))
        .contains("state-😀");
  }

  private static List<Long> sequenceNrs(PersistenceId id) throws Exception {
    List<Long> seqs = new ArrayList<>();
    try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        PreparedStatement ps =
            c.prepareStatement(
                "SELECT sequence_nr FROM " + Sql.quote(SCHEMA) + ".snapshot"
                    + " WHERE type_name = ? AND entity_id = ? ORDER BY sequence_nr")) {
      ps.setString(1, id.typeName());
      ps.setString(2, id.entityId());
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          seqs.add(rs.getLong(1));
        }
      }
    }
    return seqs;
  }
}
