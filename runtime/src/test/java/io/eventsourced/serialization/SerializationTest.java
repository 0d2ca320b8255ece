package io.eventsourced.serialization;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.StringValue;
import com.google.protobuf.Timestamp;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.annotations.JUnit5TestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.JUnit5TestKitBuilder;
import org.apache.pekko.actor.testkit.typed.javadsl.TestKitJUnit5Extension;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(TestKitJUnit5Extension.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@DisplayName("Serialization")
class SerializationTest {

  record JsonEvent(String name, long amount, List<String> tags) implements JsonSerializable {}

  record CborEvent(String name, long amount) implements CborSerializable {}

  @JUnit5TestKit final ActorTestKit testKit = new JUnit5TestKitBuilder().build();

  private Serialization serialization() {
    return SerializationExtension.get(Adapter.toClassic(testKit.system()));
  }

  private Object roundTrip(Object value, String expectedSerializerClass) {
    Serializer serializer = serialization().findSerializerFor(value);
    assertThat(serializer.getClass().getName()).isEqualTo(expectedSerializerClass);
    String manifest = Serializers.manifestFor(serializer, value);
    byte[] bytes = serializer.toBinary(value);
    return serialization().deserialize(bytes, serializer.identifier(), manifest).get();
  }

  @Test
  @DisplayName("stores records marked JsonSerializable as JSON and reads them back")
  void json() {
    JsonEvent event = new JsonEvent("x", 42, List.of("a", "b"));
    assertThat(roundTrip(event, "org.apache.pekko.serialization.jackson.JacksonJsonSerializer")).isEqualTo(event);
    String json = new String(serialization().findSerializerFor(event).toBinary(event), java.nio.charset.StandardCharsets.UTF_8);
    assertThat(json).contains("\"amount\":42");
  }

  @Test
  @DisplayName("stores records marked CborSerializable as CBOR and reads them back")
  void cbor() {
    CborEvent event = new CborEvent("y", -7);
    assertThat(roundTrip(event, "org.apache.pekko.serialization.jackson.JacksonCborSerializer")).isEqualTo(event);
  }

  @Test
  @DisplayName("stores protobuf messages with the message class as manifest and reads them back")
  void protobuf() {
    Timestamp ts = Timestamp.newBuilder().setSeconds(1_700_000_000L).setNanos(5).build();
    assertThat(roundTrip(ts, ProtobufSerializer.class.getName())).isEqualTo(ts);
    StringValue value = StringValue.of("hello");
    Serializer serializer = serialization().findSerializerFor(value);
    assertThat(serializer.identifier()).isEqualTo(ProtobufSerializer.IDENTIFIER);
    assertThat(Serializers.manifestFor(serializer, value)).isEqualTo("com.google.protobuf.StringValue");
    assertThat(roundTrip(value, ProtobufSerializer.class.getName())).isEqualTo(value);
  }

  @Test
  @DisplayName("names the manifest when protobuf bytes cannot be read back")
  void protobufErrors() throws Exception {
    ProtobufSerializer serializer = (ProtobufSerializer) serialization().serializerFor(StringValue.class);
    assertThatThrownBy(() -> serializer.fromBinary(new byte[] {1}, "com.example.Missing"))
        .hasMessageContaining("com.example.Missing");
    assertThatThrownBy(() -> serializer.fromBinary(new byte[] {(byte) 0xFF, (byte) 0xFF}, "com.google.protobuf.StringValue"))
        .hasMessageContaining("com.google.protobuf.StringValue");
  }
}
