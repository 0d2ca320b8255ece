/**
 * Serialization of events and snapshots through Pekko Serialization: the protobuf serializer and
 * the marker interfaces bound to Pekko's Jackson JSON and CBOR serializers.
 */
package io.eventsourced.serialization;
