package io.eventsourced.serialization;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import java.io.NotSerializableException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.serialization.SerializerWithStringManifest;

/**
 * Pekko serializer for protobuf-java messages (any {@link Message}, protobuf-java 3.x and 4.x):
 * the bytes are the message's wire format, the manifest is the message's class name. Bound to
 * {@code com.google.protobuf.Message} in the runtime's {@code reference.conf} under the name
 * {@code eventsourced-protobuf}, with the fixed serializer id {@value #IDENTIFIER}.
 */
public final class ProtobufSerializer extends SerializerWithStringManifest {

  /** The serializer id stored beside every payload it produced; never change it. */
  public static final int IDENTIFIER = 7710;

  private final ClassLoader classLoader;
  private final Map<String, Parser<?>> parsers = new ConcurrentHashMap<>();

  /**
   * Created by Pekko Serialization.
   *
   * @param system the actor system, for its class loader
   */
  public ProtobufSerializer(ExtendedActorSystem system) {
    this.classLoader = system.dynamicAccess().classLoader();
  }

  @Override
  public int identifier() {
    return IDENTIFIER;
  }

  @Override
  public String manifest(Object o) {
    return o.getClass().getName();
  }

  @Override
  public byte[] toBinary(Object o) {
    if (o instanceof Message message) {
      return message.toByteArray();
    }
    throw new IllegalArgumentException(
        "cannot serialize [" + o.getClass().getName() + "]: not a protobuf Message");
  }

  @Override
  public Object fromBinary(byte[] bytes, String manifest) throws NotSerializableException {
    try {
      return parser(manifest).parseFrom(bytes);
    } catch (InvalidProtocolBufferException e) {
      NotSerializableException error =
          new NotSerializableException(
              "cannot parse [" + bytes.length + "] bytes as protobuf message [" + manifest + "]: " + e.getMessage());
      error.initCause(e);
      throw error;
    }
  }

  private Parser<?> parser(String manifest) throws NotSerializableException {
    Parser<?> parser = parsers.get(manifest);
    if (parser != null) {
      return parser;
    }
    try {
      Class<?> type = Class.forName(manifest, true, classLoader);
      parser = (Parser<?>) type.getMethod("parser").invoke(null);
    } catch (ReflectiveOperationException | ClassCastException e) {
      NotSerializableException error =
          new NotSerializableException(
              "no protobuf message class [" + manifest + "] with a static parser() on the classpath");
      error.initCause(e);
      throw error;
    }
    parsers.put(manifest, parser);
    return parser;
  }
}
