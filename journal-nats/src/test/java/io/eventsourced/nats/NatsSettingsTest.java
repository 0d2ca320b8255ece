package io.eventsourced.nats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.nats.client.api.StorageType;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("NATS settings")
class NatsSettingsTest {
  private static final String JOURNAL = "eventsourced.journal.nats";
  private static final String SNAPSHOTS = "eventsourced.snapshot-store.nats";

  private static Config load(String overrides) {
    return ConfigFactory.load(ConfigFactory.parseString(overrides));
  }

  @Test
  @DisplayName("parse the reference defaults of both plugins")
  void defaults() {
    Config config = ConfigFactory.load();
    JournalSettings journal = JournalSettings.fromConfig(config.getConfig(JOURNAL), JOURNAL);
    assertThat(journal.connection().servers()).containsExactly("nats://127.0.0.1:4222");
    assertThat(journal.stream()).isEqualTo("EVENTSOURCED");
    assertThat(journal.subjectPrefix()).isEqualTo("es");
    assertThat(journal.storage()).isEqualTo(StorageType.File);
    assertThat(journal.duplicateWindow()).isEqualTo(Duration.ofMinutes(1));
    assertThat(journal.setup()).isTrue();
    assertThat(journal.sharedScanMinReplays()).isEqualTo(8);
    assertThat(journal.sharedScanGatherWindow()).isEqualTo(Duration.ofMillis(10));
    SnapshotSettings snapshots = SnapshotSettings.fromConfig(config.getConfig(SNAPSHOTS), SNAPSHOTS);
    assertThat(snapshots.bucket()).isEqualTo("eventsourced-snapshots");
    assertThat(snapshots.connection()).isEqualTo(journal.connection());
  }

  @Test
  @DisplayName("let one override of eventsourced.nats.connection reach both plugins")
  void sharedOverride() {
    Config config = load("eventsourced.nats.connection.servers = [\"nats://a:4222\", \"nats://b:4222\"]");
    assertThat(JournalSettings.fromConfig(config.getConfig(JOURNAL), JOURNAL).connection().servers())
        .containsExactly("nats://a:4222", "nats://b:4222");
    assertThat(SnapshotSettings.fromConfig(config.getConfig(SNAPSHOTS), SNAPSHOTS).connection().servers())
        .containsExactly("nats://a:4222", "nats://b:4222");
  }

  @Test
  @DisplayName("accept the servers as one comma-separated string, the environment variable's format")
  void serversFromString() {
    Config block = ConfigFactory.parseString("servers = \"nats://a:4222, nats://b:4222\"")
        .withFallback(ConfigFactory.load().getConfig("eventsourced.nats.connection"));
    assertThat(NatsSettings.fromConfig(block, "x").servers()).containsExactly("nats://a:4222", "nats://b:4222");
  }

  @Test
  @DisplayName("mask passwords, tokens and seeds in toString")
  void masksSecrets() {
    Config block = ConfigFactory.parseString(
            "user = app, password = pa55word, tls { enabled = on, trust-store = /x.jks, trust-store-password = st0re }")
        .withFallback(ConfigFactory.load().getConfig("eventsourced.nats.connection"));
    String text = NatsSettings.fromConfig(block, "x").toString();
    assertThat(text).contains("user=app").doesNotContain("pa55word").doesNotContain("st0re");
    Config token = ConfigFactory.parseString("token = t0ken")
        .withFallback(ConfigFactory.load().getConfig("eventsourced.nats.connection"));
    assertThat(NatsSettings.fromConfig(token, "x").toString()).doesNotContain("t0ken");
  }

  @Test
  @DisplayName("reject bad values naming the full key path")
  void badValues() {
    assertThatThrownBy(() -> journal("eventsourced.journal.nats.stream.storage = disk"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[eventsourced.journal.nats.stream.storage]");
    assertThatThrownBy(() -> journal("eventsourced.journal.nats.stream.name = \"a.b\""))
        .hasMessageContaining("[eventsourced.journal.nats.stream.name]");
    assertThatThrownBy(() -> journal("eventsourced.journal.nats.stream.subject-prefix = \"es.>\""))
        .hasMessageContaining("[eventsourced.journal.nats.stream.subject-prefix]");
    assertThatThrownBy(() -> journal("eventsourced.journal.nats.publish-retries = 1.7"))
        .hasMessageContaining("[eventsourced.journal.nats.publish-retries] must be a whole number, was [1.7]");
    assertThatThrownBy(() -> journal("eventsourced.journal.nats.stream.replicas = 2.5"))
        .hasMessageContaining("[eventsourced.journal.nats.stream.replicas] must be a whole number");
    assertThatThrownBy(() -> journal("eventsourced.journal.nats.shared-scan.min-replays = 2.9"))
        .hasMessageContaining("[eventsourced.journal.nats.shared-scan.min-replays]")
        .hasMessageContaining("2.9");
    assertThatThrownBy(() -> journal("eventsourced.journal.nats.stream.duplicate-window = soon"))
        .hasMessageContaining("[eventsourced.journal.nats.stream.duplicate-window]");
    assertThatThrownBy(() -> journal("eventsourced.nats.connection.servers = []"))
        .hasMessageContaining("[eventsourced.journal.nats.connection.servers]");
    assertThatThrownBy(() -> journal("eventsourced.nats.connection { user = a, token = b }"))
        .hasMessageContaining("[eventsourced.journal.nats.connection]")
        .hasMessageContaining("more than one");
    assertThatThrownBy(() -> journal("eventsourced.nats.connection.servers = [\"nats://u:secret@h:4222\"]"))
        .hasMessageContaining("[eventsourced.journal.nats.connection.servers]")
        .hasMessageNotContaining("secret@");
  }

  @Test
  @DisplayName("accept -1 or a positive whole size for max-bytes, and a max-age of 0s or at least the duplicate window, naming the key otherwise")
  void limits() {
    assertThat(journal("eventsourced.journal.nats.stream.max-bytes = -1").maxBytes()).isEqualTo(-1);
    assertThat(journal("eventsourced.journal.nats.stream.max-bytes = 10GiB").maxBytes()).isEqualTo(10L << 30);
    assertThat(journal("eventsourced.journal.nats.stream.max-bytes = 4096").maxBytes()).isEqualTo(4096);
    for (String bad : List.of("0", "-5", "1.5", "0B")) {
      assertThatThrownBy(() -> journal("eventsourced.journal.nats.stream.max-bytes = " + bad))
          .as("max-bytes = %s", bad)
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("[eventsourced.journal.nats.stream.max-bytes] must be a size");
      assertThatThrownBy(() -> SnapshotSettings.fromConfig(
              load("eventsourced.snapshot-store.nats.bucket.max-bytes = " + bad).getConfig(SNAPSHOTS), SNAPSHOTS))
          .as("bucket max-bytes = %s", bad)
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("[eventsourced.snapshot-store.nats.bucket.max-bytes] must be a size");
    }
    assertThat(journal("eventsourced.journal.nats.stream.max-age = 1h").maxAge()).isEqualTo(Duration.ofHours(1));
    assertThat(journal("eventsourced.journal.nats.stream.max-age = 0s").maxAge()).isZero();
    assertThatThrownBy(() -> journal("eventsourced.journal.nats.stream.max-age = 10s"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[eventsourced.journal.nats.stream.max-age] must be 0s (keep forever) or at least"
            + " [eventsourced.journal.nats.stream.duplicate-window]");
  }

  @Test
  @DisplayName("read shared-scan.min-replays as off, 0 or a number of at least 2, naming the key otherwise")
  void sharedScanSettings() {
    String key = "eventsourced.journal.nats.shared-scan.";
    assertThat(journal(key + "min-replays = off").sharedScanMinReplays()).isZero();
    assertThat(journal(key + "min-replays = false").sharedScanMinReplays()).isZero();
    assertThat(journal(key + "min-replays = 0").sharedScanMinReplays()).isZero();
    assertThat(journal(key + "min-replays = 2").sharedScanMinReplays()).isEqualTo(2);
    assertThat(journal(key + "min-replays = \"32\"").sharedScanMinReplays()).isEqualTo(32);
    assertThat(journal(key + "gather-window = 0ms").sharedScanGatherWindow()).isZero();
    assertThat(journal(key + "gather-window = 1s").sharedScanGatherWindow()).isEqualTo(Duration.ofSeconds(1));
    for (String bad : List.of("1", "-3", "on", "lots", "[8]")) {
      assertThatThrownBy(() -> journal(key + "min-replays = " + bad))
          .as("min-replays = %s", bad)
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("[eventsourced.journal.nats.shared-scan.min-replays]")
          .hasMessageContaining(">= 2");
    }
    assertThatThrownBy(() -> journal(key + "gather-window = 2s"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[eventsourced.journal.nats.shared-scan.gather-window]")
        .hasMessageContaining("at most 1s");
    assertThatThrownBy(() -> journal(key + "gather-window = -1ms"))
        .hasMessageContaining("[eventsourced.journal.nats.shared-scan.gather-window]");
    assertThatThrownBy(() -> journal(key + "gather-window = soon"))
        .hasMessageContaining("[eventsourced.journal.nats.shared-scan.gather-window]");
  }

  private static JournalSettings journal(String overrides) {
    return JournalSettings.fromConfig(load(overrides).getConfig(JOURNAL), JOURNAL);
  }
}
