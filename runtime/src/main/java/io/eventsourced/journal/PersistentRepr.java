package io.eventsourced.journal;

import io.eventsourced.PersistenceId;
import java.util.Objects;

/**
 * One stored event as a journal sees it: opaque bytes plus what Pekko Serialization needs to turn
 * them back into an object (serializer id and manifest), so event types can evolve.
 *
 * <p>The payload array is not copied; callers must not modify it after handing it over.
 *
 * @param persistenceId the entity the event belongs to
 * @param sequenceNr the event's per-entity sequence number, 1 for the first event
 * @param serializerId the Pekko serializer id that produced {@code payload}
 * @param manifest the serializer's manifest, empty if it uses none
 * @param payload the serialized event
 */
public record PersistentRepr(
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
  public PersistentRepr {
    Objects.requireNonNull(persistenceId, "persistenceId");
    Objects.requireNonNull(manifest, "manifest");
    Objects.requireNonNull(payload, "payload");
    if (sequenceNr < 1) {
      throw new IllegalArgumentException(
          "sequenceNr must be >= 1 for [" + persistenceId + "], was [" + sequenceNr + "]");
    }
  }

  @Override
  public String toString() {
    return "PersistentRepr["
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
