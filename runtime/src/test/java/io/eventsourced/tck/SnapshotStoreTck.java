package io.eventsourced.tck;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.PersistenceId;
import io.eventsourced.snapshot.SnapshotRecord;
import io.eventsourced.snapshot.SnapshotStore;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * The conformance suite every {@link SnapshotStore} passes. A backend's test extends this class and
 * implements {@link #snapshotStore()}; each test uses fresh persistence ids.
 *
 * <p>Ports the applicable cases of Pekko's {@code SnapshotStoreSpec}.
 */
public abstract class SnapshotStoreTck {

  /**
   * The snapshot store under test. Called once per test; may return the same instance every time.
   *
   * @return the store
   */
  protected abstract SnapshotStore snapshotStore();

  /**
   * How long one operation may take before the test fails.
   *
   * @return the timeout
   */
  protected Duration timeout() {
    return Duration.ofSeconds(30);
  }

  /**
   * A persistence id no earlier test or run has used.
   *
   * @return a fresh id of type {@code tck}
   */
  protected PersistenceId freshId() {
    return PersistenceId.of("tck", UUID.randomUUID().toString());
  }

  @Test
  @DisplayName("loads nothing for an unknown entity")
  void unknownEntity() {
    assertThat(await(snapshotStore().loadLatest(freshId(), Long.MAX_VALUE))).isEmpty();
  }

  @Test
  @DisplayName("loads the latest snapshot")
  void loadsLatest() {
    PersistenceId id = savedAt(1, 3, 5);
    SnapshotRecord latest = await(snapshotStore().loadLatest(id, Long.MAX_VALUE)).orElseThrow();
    assertThat(latest.sequenceNr()).isEqualTo(5);
    assertThat(latest.persistenceId()).isEqualTo(id);
    assertThat(latest.payload()).isEqualTo(state(id, 5));
  }

  @Test
  @DisplayName("loads the latest snapshot at or below a sequenceNr")
  void loadsLatestAtOrBelow() {
    PersistenceId id = savedAt(1, 3, 5);
    assertThat(await(snapshotStore().loadLatest(id, 4)).map(SnapshotRecord::sequenceNr)).contains(3L);
    assertThat(await(snapshotStore().loadLatest(id, 3)).map(SnapshotRecord::sequenceNr)).contains(3L);
    assertThat(await(snapshotStore().loadLatest(id, 2)).map(SnapshotRecord::sequenceNr)).contains(1L);
    assertThat(await(snapshotStore().loadLatest(id, 0))).isEmpty();
  }

  @Test
  @DisplayName("overwrites a snapshot saved again at the same sequenceNr")
  void overwritesSameSequenceNr() {
    PersistenceId id = freshId();
    await(snapshotStore().save(new SnapshotRecord(id, 3, 4, "v1", bytes("first"))));
    await(snapshotStore().save(new SnapshotRecord(id, 3, 7710, "v2", bytes("second"))));
    SnapshotRecord loaded = await(snapshotStore().loadLatest(id, Long.MAX_VALUE)).orElseThrow();
    assertThat(loaded.sequenceNr()).isEqualTo(3);
    assertThat(loaded.serializerId()).isEqualTo(7710);
    assertThat(loaded.manifest()).isEqualTo("v2");
    assertThat(loaded.payload()).isEqualTo(bytes("second"));
  }

  @Test
  @DisplayName("deletes the snapshots at or below a sequenceNr and keeps later ones")
  void deletesUpToSequenceNr() {
    PersistenceId id = savedAt(1, 3, 5);
    await(snapshotStore().delete(id, 3));
    assertThat(await(snapshotStore().loadLatest(id, 4))).isEmpty();
    assertThat(await(snapshotStore().loadLatest(id, Long.MAX_VALUE)).map(SnapshotRecord::sequenceNr)).contains(5L);
    await(snapshotStore().delete(id, Long.MAX_VALUE));
    assertThat(await(snapshotStore().loadLatest(id, Long.MAX_VALUE))).isEmpty();
  }

  @Test
  @DisplayName("stores and loads a 10 000-byte snapshot")
  void largeSnapshot() {
    PersistenceId id = freshId();
    byte[] big = new byte[10_000];
    for (int i = 0; i < big.length; i++) {
      big[i] = (byte) (i * 13 + 1);
    }
    await(snapshotStore().save(new SnapshotRecord(id, 42, 4, "big", big)));
    assertThat(await(snapshotStore().loadLatest(id, Long.MAX_VALUE)).orElseThrow().payload()).isEqualTo(big);
  }

  @Test
  @DisplayName("keeps ids with special characters and type names apart")
  void idsAndTypesApart() {
    String base = UUID.randomUUID().toString();
    List<PersistenceId> ids =
        List.of(
            PersistenceId.of("tck-a", base),
            PersistenceId.of("tck-b", base),
            PersistenceId.of("tck-a", base + ".*>"),
            PersistenceId.of("tck-a", base + " |/"),
            PersistenceId.of("tck-a", base + "日本語ü"));
    for (int i = 0; i < ids.size(); i++) {
      await(snapshotStore().save(new SnapshotRecord(ids.get(i), i + 1, 4, "", state(ids.get(i), i + 1))));
    }
    for (int i = 0; i < ids.size(); i++) {
      Optional<SnapshotRecord> loaded = await(snapshotStore().loadLatest(ids.get(i), Long.MAX_VALUE));
      assertThat(loaded).as("snapshot of [%s]", ids.get(i)).isPresent();
      assertThat(loaded.get().sequenceNr()).isEqualTo(i + 1);
      assertThat(loaded.get().persistenceId()).isEqualTo(ids.get(i));
      assertThat(loaded.get().payload()).isEqualTo(state(ids.get(i), i + 1));
    }
  }

  private PersistenceId savedAt(long... sequenceNrs) {
    PersistenceId id = freshId();
    for (long seq : sequenceNrs) {
      await(snapshotStore().save(new SnapshotRecord(id, seq, 4, "state", state(id, seq))));
    }
    return id;
  }

  private static byte[] state(PersistenceId id, long seq) {
    return bytes("state of " + id + " at " + seq);
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private <T> T await(CompletionStage<T> stage) {
    try {
      return stage.toCompletableFuture().get(timeout().toMillis(), TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      throw new AssertionError("snapshot store operation failed: " + e.getCause(), e.getCause());
    } catch (TimeoutException e) {
      throw new AssertionError("snapshot store operation did not complete within " + timeout(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
