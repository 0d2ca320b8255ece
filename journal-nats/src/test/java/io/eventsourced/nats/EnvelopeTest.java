package io.eventsourced.nats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.eventsourced.PersistenceId;
import io.eventsourced.journal.PersistentRepr;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("Message bodies")
class EnvelopeTest {
  private static final PersistenceId ID = PersistenceId.of("counter", "1");

  @Test
  @DisplayName("finds unpaired surrogates anywhere in a manifest, and only those")
  void loneSurrogates() {
    assertThat(Envelope.hasLoneSurrogate("\uD800")).isTrue();
    assertThat(Envelope.hasLoneSurrogate("a\uDC00b")).isTrue();
    assertThat(Envelope.hasLoneSurrogate("ab\uD83D")).isTrue();
    assertThat(Envelope.hasLoneSurrogate("\uDE00\uD83D")).isTrue();
    assertThat(Envelope.hasLoneSurrogate("")).isFalse();
    assertThat(Envelope.hasLoneSurrogate("com.example.E")).isFalse();
    assertThat(Envelope.hasLoneSurrogate("x\uD83D\uDE00y")).isFalse();
  }

  @Test
  @DisplayName("round-trip the events of one write with serializer ids, manifests and payloads")
  void eventsRoundTrip() {
    List<PersistentRepr> events =
        List.of(
            new PersistentRepr(ID, 7, -3, "", new byte[0]),
            new PersistentRepr(ID, 8, 7710, "com.example.Evt$V2", new byte[] {0, 1, -1, 127, -128}),
            new PersistentRepr(ID, 9, Integer.MAX_VALUE, "日本", new byte[300]));
    byte[] body = Envelope.encodeEvents(events);
    assertThat(Envelope.eventCount(body)).isEqualTo(3);
    List<PersistentRepr> read = new ArrayList<>();
    assertThat(Envelope.decodeEvents(body, ID, 7, 1, Long.MAX_VALUE, read::add)).isTrue();
    assertThat(read).hasSize(3);
    for (int i = 0; i < 3; i++) {
      assertThat(read.get(i).sequenceNr()).isEqualTo(events.get(i).sequenceNr());
      assertThat(read.get(i).serializerId()).isEqualTo(events.get(i).serializerId());
      assertThat(read.get(i).manifest()).isEqualTo(events.get(i).manifest());
      assertThat(read.get(i).payload()).isEqualTo(events.get(i).payload());
    }
  }

  @Test
  @DisplayName("deliver only the events within the requested bounds")
  void bounds() {
    List<PersistentRepr> events = new ArrayList<>();
    for (long seq = 1; seq <= 5; seq++) {
      events.add(new PersistentRepr(ID, seq, 1, "", new byte[] {(byte) seq}));
    }
    List<PersistentRepr> read = new ArrayList<>();
    Envelope.decodeEvents(Envelope.encodeEvents(events), ID, 1, 2, 4, read::add);
    assertThat(read).extracting(PersistentRepr::sequenceNr).containsExactly(2L, 3L, 4L);
  }

  @Test
  @DisplayName("round-trip a snapshot")
  void snapshotRoundTrip() {
    Envelope.SnapshotBody body = Envelope.decodeSnapshot(Envelope.encodeSnapshot(42, "State$V1", new byte[] {9, 8, 7}));
    assertThat(body.serializerId()).isEqualTo(42);
    assertThat(body.manifest()).isEqualTo("State$V1");
    assertThat(body.payload()).containsExactly(9, 8, 7);
  }

  @Test
  @DisplayName("reject bodies of an unknown format or cut short")
  void rejectsBadBodies() {
    byte[] body = Envelope.encodeEvents(List.of(new PersistentRepr(ID, 1, 1, "m", new byte[10])));
    byte[] cut = java.util.Arrays.copyOf(body, body.length - 3);
    assertThatThrownBy(() -> Envelope.decodeEvents(cut, ID, 1, 1, Long.MAX_VALUE, e -> true))
        .isInstanceOf(IllegalArgumentException.class);
    body[0] = 9;
    assertThatThrownBy(() -> Envelope.eventCount(body)).isInstanceOf(IllegalArgumentException.class);
  }
}
