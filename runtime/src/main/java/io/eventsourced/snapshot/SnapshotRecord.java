package io.eventsourced.snapshot;

import io.eventsourced.PersistenceId;
import java.util.Objects;

/**
 * One stored snapshot: an entity's state after {@code sequenceNr} events, serialized by Pekko
 * Serialization, with serializer id and manifest beside the bytes so state types can evolve.
 *
 * <p>The payload array is not copied; callers must not modify it after handing it over.
 *
 * @param persistenceId the entity
 * @param sequenceNr the sequence number of the last event folded into the state, at least 1
 * @param serializerId the Pekko serializer id that produced {@code payload}
 * @param manifest the serializer's manifest, empty if it uses none
 * @param payload the serialized state
 */
public record SnapshotRecord(
    PersistenceId persistenceId,
    long sequenceNr,
    int serializerId,
    String manifest,
    byte[] payload) {

  /**
   * Validates the fields: a sequence number is at least 1.
   *
   * @param persistenceId as in the record header
   * @param sequenceNr as in the record header
   * @param serializerId as in the record header
   * @param manifest as in the record header
   * @param payload as in the record header
   */
  public SnapshotRecord {
    Objects.requireNonNull(persistenceId, "persistenceId");
    Objects.requireNonNull(manifest, "manifest");
    Objects.requireNonNull(payload, "payload");
    if (sequenceNr < 1) {
      throw new IllegalArgumentException(
          "snapshot sequenceNr must be >= 1 for [" + persistenceId + "], was [" + sequenceNr + "]");
    }
  }

  @Override
  public String toString() {
    return "SnapshotRecord["
        + persistenceId
        + ", sequenceNr="
        + sequenceNr
        + ", serializerId="
        + serializerId
        + ", manifest="
        + manifest
        + ", "
        + payload.length
        + " bytes]";
  }
}
