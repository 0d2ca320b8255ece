package io.eventsourced.snapshot;

import io.eventsourced.PersistenceId;
import io.eventsourced.PluginContext;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListMap;
import org.apache.pekko.Done;

/**
 * A snapshot store in this JVM's memory: the default plugin, for tests and demos. It passes the
 * snapshot store TCK; for testing that a failed save is not fatal it can fail the next save of an
 * entity.
 */
public final class InMemorySnapshotStore implements SnapshotStore {

  private final Map<PersistenceId, NavigableMap<Long, SnapshotRecord>> snapshots =
      new ConcurrentHashMap<>();
  private final Map<PersistenceId, Boolean> failNextSave = new ConcurrentHashMap<>();

  /**
   * Creates the store; called by the runtime.
   *
   * @param context the plugin context
   */
  public InMemorySnapshotStore(PluginContext context) {
    // Nothing to configure: memory needs no connection.
  }

  @Override
  public CompletionStage<Done> save(SnapshotRecord snapshot) {
    if (failNextSave.remove(snapshot.persistenceId()) != null) {
      return CompletableFuture.failedFuture(
          new IllegalStateException(
              "injected snapshot save failure for ["
                  + snapshot.persistenceId()
                  + "] at sequenceNr ["
                  + snapshot.sequenceNr()
                  + "]"));
    }
    snapshots
        .computeIfAbsent(snapshot.persistenceId(), k -> new ConcurrentSkipListMap<>())
        .put(snapshot.sequenceNr(), snapshot);
    return CompletableFuture.completedFuture(Done.getInstance());
  }

  @Override
  public CompletionStage<Optional<SnapshotRecord>> loadLatest(
      PersistenceId persistenceId, long maxSequenceNr) {
    NavigableMap<Long, SnapshotRecord> all = snapshots.get(persistenceId);
    if (all == null) {
      return CompletableFuture.completedFuture(Optional.empty());
    }
    Map.Entry<Long, SnapshotRecord> entry = all.floorEntry(maxSequenceNr);
    return CompletableFuture.completedFuture(Optional.ofNullable(entry).map(Map.Entry::getValue));
  }

  @Override
  public CompletionStage<Done> delete(PersistenceId persistenceId, long maxSequenceNr) {
    NavigableMap<Long, SnapshotRecord> all = snapshots.get(persistenceId);
    if (all != null) {
      all.headMap(maxSequenceNr, true).clear();
    }
    return CompletableFuture.completedFuture(Done.getInstance());
  }

  /**
   * Makes the next save for an entity fail.
   *
   * @param persistenceId the entity whose next snapshot save fails
   */
  public void failNextSave(PersistenceId persistenceId) {
    failNextSave.put(persistenceId, Boolean.TRUE);
  }
}
