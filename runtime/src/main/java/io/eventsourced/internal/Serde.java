package io.eventsourced.internal;

import org.apache.pekko.actor.ActorRefProvider;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.SerializerWithStringManifest;
import org.apache.pekko.serialization.Serializers;
import org.apache.pekko.serialization.Serialization$;
import scala.Option;
import scala.util.DynamicVariable;

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

  /** The serializer used last, looked up by id without boxing; immutable, so racy reads are safe. */
  private record Known(int id, Serializer serializer) {}

  private static final DynamicVariable<Serialization.Information> TRANSPORT =
      Serialization$.MODULE$.currentTransportInformation();

  private final Serialization serialization;
  private final ActorRefProvider provider;
  private volatile Known last; // null until the first lookup

  Serde(ActorSystem<?> system) {
    ExtendedActorSystem classic = (ExtendedActorSystem) Adapter.toClassic(system);
    this.serialization = SerializationExtension.get(classic);
    this.provider = classic.provider();
  }

  /**
   * Serializes an object with the serializer bound to its class.
   *
   * @param value the object
   * @return the stored form
   * @throws RuntimeException if no serializer is bound or the serializer fails
   */
  public Serialized serialize(Object value) {
    Serialization.Information outer = enterTransport();
    try {
      Serializer serializer = serialization.findSerializerFor(value);
      String manifest = Serializers.manifestFor(serializer, value);
      return new Serialized(serializer.identifier(), manifest, serializer.toBinary(value));
    } catch (RuntimeException e) {
      throw e;
    } catch (Exception e) {
      // Pekko's Scala code throws checked exceptions (NotSerializableException) undeclared.
      throw new IllegalArgumentException(e.getMessage(), e);
    } finally {
      exitTransport(outer);
    }
  }

  /**
   * Deserializes stored bytes.
   *
   * <p>Replay calls this once per event, so a string-manifest serializer (protobuf, Jackson) is
   * called directly: Pekko's generic path costs a map lookup with boxing, a {@code Try} and a
   * closure per event, about as much as parsing a small event.
   *
   * @param bytes the payload
   * @param serializerId the serializer id stored beside it
   * @param manifest the manifest stored beside it
   * @return the object
   * @throws RuntimeException if the serializer is unknown or the bytes do not parse
   */
  public Object deserialize(byte[] bytes, int serializerId, String manifest) {
    Serializer serializer = serializer(serializerId);
    Serialization.Information outer = enterTransport();
    try {
      if (serializer instanceof SerializerWithStringManifest withManifest) {
        return withManifest.fromBinary(bytes, manifest);
      }
      // A class manifest: Pekko resolves and caches the class.
      return serialization.deserialize(bytes, serializerId, manifest).get();
    } catch (Exception e) {
      // Pekko's Scala code throws checked exceptions (NotSerializableException) undeclared.
      throw new IllegalStateException(
          "cannot deserialize [" + bytes.length + "] bytes with serializer [" + serializerId
              + "] and manifest [" + manifest + "]: " + e.getMessage(),
          e);
    } finally {
      exitTransport(outer);
    }
  }

  private Serializer serializer(int id) {
    Known known = last;
    if (known != null && known.id() == id) {
      return known.serializer();
    }
    Option<Serializer> found = serialization.serializerByIdentity().get(id);
    if (found.isEmpty()) {
      throw new IllegalStateException(
          "no serializer with id [" + id + "] is configured (pekko.actor.serializers); "
              + "the stored bytes were written by a serializer this system does not have");
    }
    last = new Known(id, found.get());
    return found.get();
  }

  /**
   * Serializers that write actor refs (Jackson's) need the system's transport information on
   * the calling thread, as Pekko's own serialize/deserialize set it.
   */
  private Serialization.Information enterTransport() {
    Serialization.Information outer = TRANSPORT.value();
    if (outer == null) {
      // Read per call, as Pekko does: with remoting it holds the bound address only once bound.
      TRANSPORT.value_$eq(provider.serializationInformation());
    }
    return outer;
  }

  private static void exitTransport(Serialization.Information outer) {
    if (outer == null) {
      TRANSPORT.value_$eq(null);
    }
  }
}
