package io.eventsourced.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.StringValue;
import io.eventsourced.serialization.CborSerializable;
import io.eventsourced.serialization.JsonSerializable;
import io.eventsourced.serialization.ProtobufSerializer;
import java.nio.charset.StandardCharsets;
import org.apache.pekko.actor.testkit.typed.annotations.JUnit5TestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.JUnit5TestKitBuilder;
import org.apache.pekko.actor.testkit.typed.javadsl.TestKitJUnit5Extension;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.Serialization$;
import scala.util.DynamicVariable;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(TestKitJUnit5Extension.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@DisplayName("Serde")
class SerdeTest {

  record Subscribed(String topic, ActorRef<String> subscriber) implements JsonSerializable {}

  record Tagged(String tag, ActorRef<String> owner) implements CborSerializable {}

  @JUnit5TestKit final ActorTestKit testKit = new JUnit5TestKitBuilder().build();

  private Serde serde() {
    return EventsourcedRuntime.get(testKit.system()).serde();
  }

  @Test
  @DisplayName("stores events that hold an ActorRef with Jackson and resolves the ref on reading")
  void actorRefs() {
    TestProbe<String> probe = testKit.createTestProbe();
    Subscribed json = new Subscribed("news", probe.ref());
    Tagged cbor = new Tagged("t", probe.ref());

    Serde.Serialized storedJson = serde().serialize(json);
    Serde.Serialized storedCbor = serde().serialize(cbor);
    Object readJson = serde().deserialize(storedJson.bytes(), storedJson.serializerId(), storedJson.manifest());
    Object readCbor = serde().deserialize(storedCbor.bytes(), storedCbor.serializerId(), storedCbor.manifest());

    assertThat(readJson).isEqualTo(json);
    assertThat(readCbor).isEqualTo(cbor);
    ((Subscribed) readJson).subscriber().tell("hello");
    probe.expectMessage("hello");
  }

  @Test
  @DisplayName("reads protobuf, JSON and manifest-less serializers back, one after another")
  void mixedSerializers() {
    StringValue proto = StringValue.of("p");
    byte[] raw = "raw".getBytes(StandardCharsets.UTF_8);
    for (int i = 0; i < 3; i++) {
      // Alternating serializers: a per-id cache must never hand bytes to the wrong one.
      for (Object value : new Object[] {proto, raw, new Subscribed("x", testKit.system().deadLetters())}) {
        Serde.Serialized stored = serde().serialize(value);
        assertThat(serde().deserialize(stored.bytes(), stored.serializerId(), stored.manifest()))
            .isEqualTo(value);
      }
    }
    assertThat(serde().serialize(proto).serializerId()).isEqualTo(ProtobufSerializer.IDENTIFIER);
  }

  @Test
  @DisplayName("leaves the thread's transport information as it found it, after failures and in nested calls")
  void transportInformationRestored() {
    DynamicVariable<Serialization.Information> transport = Serialization$.MODULE$.currentTransportInformation();
    assertThat(transport.value()).isNull();
    assertThatThrownBy(() -> serde().deserialize(new byte[] {(byte) 0xFF}, ProtobufSerializer.IDENTIFIER, StringValue.class.getName()))
        .isInstanceOf(IllegalStateException.class);
    assertThat(transport.value()).as("after a failed deserialize").isNull();
    Serde.Serialized stored = serde().serialize(new Subscribed("x", testKit.system().deadLetters()));
    assertThat(transport.value()).as("after a serialize").isNull();

    Serialization.Information outer =
        new Serialization.Information(
            org.apache.pekko.actor.Address.apply("pekko", "outer"), Adapter.toClassic(testKit.system()));
    transport.value_$eq(outer);
    try {
      serde().deserialize(stored.bytes(), stored.serializerId(), stored.manifest());
      assertThat(transport.value()).as("inside an outer serialization").isSameAs(outer);
    } finally {
      transport.value_$eq(null);
    }
  }

  @Test
  @DisplayName("names an unknown serializer id and a manifest that no class matches")
  void errors() {
    assertThatThrownBy(() -> serde().deserialize(new byte[] {1}, 987_654, "x"))
        .hasMessageContaining("987654");
    assertThatThrownBy(() -> serde().deserialize(new byte[] {1}, Integer.MIN_VALUE, "x"))
        .hasMessageContaining(Integer.toString(Integer.MIN_VALUE));
    Serde.Serialized stored = serde().serialize(new Subscribed("x", testKit.system().deadLetters()));
    assertThatThrownBy(() -> serde().deserialize(stored.bytes(), stored.serializerId(), "com.example.Gone"))
        .hasMessageContaining("com.example.Gone")
        .hasMessageContaining("serializer [" + stored.serializerId() + "]");
  }
}
