package io.eventsourced.internal;

import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;

/** Turns events and states into bytes + serializer id + manifest and back, via Pekko. */
public final class Serde {

  /**
   * An object in stored form.
   *
   * @param serializerId the Pekko serializer id
   * @param manifest the manifest, empty if none
   * @param bytes the payload
   */
  public record Serialized(int serializerId, String manifest, byte[] bytes) {}

  private final Serialization serialization;

  Serde(ActorSystem<?> system) {
    this.serialization = SerializationExtension.get(Adapter.toClassic(system));
  }

  /**
   * Serializes an object with the serializer bound to its class.
   *
   * @param value the object
   * @return the stored form
   * @throws RuntimeException if no serializer is bound or the serializer fails
   */
  public Serialized serialize(Object value) {
    try {
      Serializer serializer = serialization.findSerializerFor(value);
      String manifest = Serializers.manifestFor(serializer, value);
      return new Serialized(serializer.identifier(), manifest, serializer.toBinary(value));
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      // Pekko's Scala code throws checked exceptions (NotSerializableException) undeclared.
      throw new IllegalArgumentException(e.getMessage(), e);
    }
  }

  /**
   * Deserializes stored bytes.
   *
   * @param bytes the payload
   * @param serializerId the serializer id stored beside it
   * @param manifest the manifest stored beside it
   * @return the object
   * @throws RuntimeException if the serializer is unknown or the bytes do not parse
   */
  public Object deserialize(byte[] bytes, int serializerId, String manifest) {
    try {
      return serialization.deserialize(bytes, serializerId, manifest).get();
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      throw new IllegalStateException(e.getMessage(), e);
    }
  }
}
