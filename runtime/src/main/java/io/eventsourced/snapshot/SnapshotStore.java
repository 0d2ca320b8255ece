package io.eventsourced.snapshot;

import io.eventsourced.PersistenceId;
import java.util.Optional;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.Done;

/**
 * The snapshot store SPI. One instance per actor system and config path, shared by all entities;
 * every method may be called concurrently. Created by the runtime through a public constructor
 * taking a {@link io.eventsourced.PluginContext}; blocking I/O runs on the context's dispatcher.
 *
 * <h2>Contract</h2>
 *
 * <ul>
 *   <li>Snapshots are keyed by entity and sequence number. Saving the same entity and sequence
 *       number again overwrites the earlier snapshot.
 *   <li>Loading returns the snapshot with the highest sequence number at or below a bound.
 *   <li>Snapshots are an optimisation: the runtime treats a failed save as non-fatal, so a store
 *       may lose snapshots but must never return one that was not saved.
 *   <li>Failures are reported as failed stages, never thrown from the method itself.
 * </ul>
 */
public interface SnapshotStore extends AutoCloseable {

  /**
   * Saves a snapshot, overwriting one with the same entity and sequence number.
   *
   * @param snapshot the snapshot
   * @return completes when the snapshot is stored
   */
  CompletionStage<Done> save(SnapshotRecord snapshot);

  /**
   * Loads the snapshot with the highest sequence number at or below {@code maxSequenceNr}.
   *
   * @param persistenceId the entity
   * @param maxSequenceNr the upper bound, {@code Long.MAX_VALUE} for the latest
   * @return the snapshot, or empty if there is none
   */
  CompletionStage<Optional<SnapshotRecord>> loadLatest(
      PersistenceId persistenceId, long maxSequenceNr);

  /**
   * Deletes the snapshots of an entity with a sequence number at or below {@code maxSequenceNr}.
   *
   * @param persistenceId the entity
   * @param maxSequenceNr the upper bound, {@code Long.MAX_VALUE} for all
   * @return completes when they are deleted
   */
  CompletionStage<Done> delete(PersistenceId persistenceId, long maxSequenceNr);

  /** Releases connections and pools; idempotent. The runtime calls it on actor system shutdown. */
  @Override
  default void close() {}
}
