package io.eventsourced.serialization;

/**
 * Marker for events and states stored as CBOR (compact binary JSON) by Pekko's Jackson serializer
 * ({@code jackson-cbor}); the binding is in the runtime's {@code reference.conf}.
 */
public interface CborSerializable {}
