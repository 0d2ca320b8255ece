package io.eventsourced.serialization;

/**
 * Marker for events and states stored as JSON by Pekko's Jackson serializer ({@code
 * jackson-json}); the binding is in the runtime's {@code reference.conf}. Records work as they are.
 */
public interface JsonSerializable {}
