package io.eventsourced.nats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("Subject token encoding")
class KeysTest {
  private static final List<String> IDS =
      List.of(
          "550e8400-e29b-41d4-a716-446655440000", ".", "a.b", "*", ">", "a.*.>", "|", "a|b", "/", "a/b", " ",
          "a b", "\t", "ünïcødé", "日本語", "emoji😀", "%2E", "=2E", "=", "_", "-", "A-z_0",
          // lone surrogates, which UTF-8 cannot hold, next to what Java's encoder makes of them
          "?", "\uD800", "\uDC00", "a\uD800b", "\uDC00\uD800", "\uDBFF\uDFFF", "\u0080", "\u07FF", "\uFFFF");

  @Test
  @DisplayName("round-trips any id, including dots, wildcards, spaces, separators and non-ASCII")
  void roundTrips() {
    for (String id : IDS) {
      assertThat(Keys.decode(Keys.encode(id))).as("round trip of [%s]", id).isEqualTo(id);
    }
  }

  @Test
  @DisplayName("produces tokens of letters, digits, - _ and = only, distinct for distinct ids")
  void safeAndDistinct() {
    Set<String> tokens = new HashSet<>();
    for (String id : IDS) {
      String token = Keys.encode(id);
      assertThat(token).as("token of [%s]", id).matches("[A-Za-z0-9_=-]+");
      tokens.add(token);
    }
    assertThat(tokens).hasSize(IDS.size());
  }

  @Test
  @DisplayName("leaves UUIDs and plain type names readable")
  void plainStaysPlain() {
    assertThat(Keys.encode("550e8400-e29b-41d4-a716-446655440000")).isEqualTo("550e8400-e29b-41d4-a716-446655440000");
    assertThat(Keys.encode("a.b")).isEqualTo("a=2Eb");
    assertThat(Keys.encode("ü")).isEqualTo("=C3=BC");
  }

  @Test
  @DisplayName("rejects tokens it did not produce")
  void rejectsForeignTokens() {
    assertThatThrownBy(() -> Keys.decode("a=2")).isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> Keys.decode("a=ZZ")).isInstanceOf(IllegalArgumentException.class);
  }
}
