package io.eventsourced;

import io.eventsourced.snapshot.SnapshotRecord;
import io.eventsourced.snapshot.SnapshotStore;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.Done;

/**
 * A snapshot store whose {@code save} throws an {@link AssertionError}, as a failed {@code assert}
 * in a plugin would; it holds no snapshots. For {@link PluginConfigTest}.
 */
public final class AssertingSnapshotStore implements SnapshotStore {
  /** How many saves were attempted, across instances. */
  static final AtomicInteger saves = new AtomicInteger();

  /**
   * Created by the plugin registry.
   *
   * @param context unused
   */
  public AssertingSnapshotStore(PluginContext context) {}

  @Override
  public CompletionStage<Done> save(SnapshotRecord snapshot) {
    saves.incrementAndGet();
    throw new AssertionError("save asserted for [" + snapshot.persistenceId() + "]");
  }

  @Override
  public CompletionStage<Optional<SnapshotRecord>> loadLatest(PersistenceId persistenceId, long maxSequenceNr) {
    return CompletableFuture.completedFuture(Optional.empty());
  }

  @Override
  public CompletionStage<Done> delete(PersistenceId persistenceId, long maxSequenceNr) {
    return CompletableFuture.completedFuture(Done.getInstance());
  }
}
