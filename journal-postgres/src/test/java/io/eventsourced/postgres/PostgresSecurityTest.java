package io.eventsourced.postgres;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.typesafe.config.ConfigFactory;
import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.PersistentRepr;
import io.eventsourced.snapshot.SnapshotRecord;
import io.eventsourced.snapshot.SnapshotStore;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The PostgreSQL plugins against SQL injection")
class PostgresSecurityTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("security");
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() {
    PostgresTestSupport.requireServer();
    testKit = PostgresTestSupport.testKit(SCHEMA, "");
  }

  @AfterAll
  static void shutdown() {
    if (testKit != null) {
      testKit.shutdownTestKit();
      PostgresTestSupport.dropSchema(SCHEMA);
    }
  }

  @Test
  @DisplayName("rejects a table name like [events; drop table x] at start, naming the key")
  void rejectsInjectedTableName() {
    ActorTestKit bad =
        PostgresTestSupport.testKit(SCHEMA, "eventsourced.journal.postgres.journal-table = \"events; drop table x\"");
    try {
      assertThatThrownBy(() -> Persistence.get(bad.system()).journal())
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("[eventsourced.journal.postgres.journal-table]")
          .hasMessageContaining("events; drop table x");
    } finally {
      bad.shutdownTestKit();
    }
  }

  @Test
  @DisplayName("rejects quoted, upper-case, dotted and over-long names in every identifier key")
  void rejectsBadIdentifiers() {
    List<String> bad = List.of("\\\"x\\\"", "Events", "a.b", "x--", "1abc", "", "a b", "x".repeat(64));
    for (String key : List.of("schema", "journal-table", "snapshot-table")) {
      for (String value : bad) {
        assertThatThrownBy(
                () ->
                    PostgresSettings.fromConfig(
                        PostgresTestSupport.config("eventsourced.postgres." + key + " = \"" + value + "\"")
                            .getConfig("eventsourced.snapshot-store.postgres"),
                        "eventsourced.snapshot-store.postgres"))
            .as("%s = %s", key, value)
            .isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining("[eventsourced.snapshot-store.postgres." + key + "]");
      }
    }
  }

  @Test
  @DisplayName("stores ids and manifests full of SQL as plain values: every statement is prepared")
  void injectionInValuesIsInert() throws Exception {
    Journal journal = Persistence.get(testKit.system()).journal();
    SnapshotStore snapshots = Persistence.get(testKit.system()).snapshotStore();
    List<String> nasty =
        List.of(
            "x'); DROP TABLE " + SCHEMA + ".event_journal; --",
            "' OR '1'='1",
            "$$; DELETE FROM " + SCHEMA + ".snapshot; $$",
            "\\\\'; select pg_sleep(10); --");
    List<PersistenceId> ids = new ArrayList<>();
    for (String value : nasty) {
      PersistenceId id = PersistenceId.of(value, value);
      ids.add(id);
      PersistentRepr event = new PersistentRepr(id, 1, 4, value, value.getBytes(StandardCharsets.UTF_8));
      journal.append(new AtomicWrite(id, 0, List.of(event))).toCompletableFuture().get(10, TimeUnit.SECONDS);
      snapshots
          .save(new SnapshotRecord(id, 1, 4, value, value.getBytes(StandardCharsets.UTF_8)))
          .toCompletableFuture()
          .get(10, TimeUnit.SECONDS);
    }
    for (PersistenceId id : ids) {
      List<PersistentRepr> events = new ArrayList<>();
      journal.replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, events::add).toCompletableFuture().get(10, TimeUnit.SECONDS);
      assertThat(events).hasSize(1);
      assertThat(events.get(0).manifest()).isEqualTo(id.entityId());
      assertThat(snapshots.loadLatest(id, Long.MAX_VALUE).toCompletableFuture().get(10, TimeUnit.SECONDS))
          .hasValueSatisfying(s -> assertThat(s.manifest()).isEqualTo(id.entityId()));
    }
    try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        PreparedStatement ps =
            c.prepareStatement(
                "SELECT (SELECT count(*) FROM " + Sql.quote(SCHEMA) + ".event_journal),"
                    + " (SELECT count(*) FROM " + Sql.quote(SCHEMA) + ".snapshot)");
        ResultSet rs = ps.executeQuery()) {
      rs.next();
      assertThat(rs.getLong(1)).isEqualTo(nasty.size());
      assertThat(rs.getLong(2)).isEqualTo(nasty.size());
    }
  }

  @Test
  @DisplayName("masks the password in toString and in URLs")
  void masksPassword() {
    PostgresSettings settings =
        PostgresSettings.fromConfig(
            ConfigFactory.parseString(
                    "eventsourced.postgres.password = \"s3cret-pw\"\n"
                        + "eventsourced.postgres.url = \"jdbc:postgresql://db:5432/app?password=s3cret-url&ssl=true\"")
                .withFallback(ConfigFactory.defaultReferenceUnresolved())
                .resolve()
                .getConfig("eventsourced.journal.postgres"),
            "eventsourced.journal.postgres");
    assertThat(settings.password()).isEqualTo("s3cret-pw");
    assertThat(settings.toString()).doesNotContain("s3cret").contains("password=***");
    assertThat(settings.safeUrl()).isEqualTo("jdbc:postgresql://db:5432/app?password=***&ssl=true");
  }

  private static PostgresSettings withUrl(String url) {
    return PostgresSettings.fromConfig(
        ConfigFactory.parseString("eventsourced.postgres.url = \"" + url + "\"")
            .withFallback(ConfigFactory.defaultReferenceUnresolved())
            .resolve()
            .getConfig("eventsourced.journal.postgres"),
        "eventsourced.journal.postgres");
  }

  @Test
  @DisplayName("masks a password parameter up to the next &, as pgjdbc reads it, whatever it holds")
  void masksWholePasswordParameter() {
    assertThat(withUrl("jdbc:postgresql://db:5432/app?password=abc;TOPSECRET#x&ssl=true").safeUrl())
        .isEqualTo("jdbc:postgresql://db:5432/app?password=***&ssl=true");
  }

  @Test
  @DisplayName("rejects a password before the host, and URLs pgjdbc cannot read, without repeating the password")
  void rejectsUserInfoAndUnreadableUrls() {
    for (String url :
        List.of(
            "jdbc:postgresql://app:pa?TOPSECRET@db:5432/app",
            "jdbc:postgresql://app:pa/TOPSECRET@db:5432/app",
            "jdbc:postgresql://app:pa#TOPSECRET@db:5432/app",
            "jdbc:postgresql://app:1234/TOPSECRET@db:5432/app",
            "jdbc:postgresql://app:1234/TOP?SECRET@db:5432/app",
            "jdbc:postgresql://app:TOPSECRET@db/app?ssl=true",
            "jdbc:postgresql:app:TOPSECRET@db/app",
            "jdbc:postgresql://db/app/?password=TOPSECRET",
            "jdbc:postgresql://db:/app?password=TOPSECRET",
            "jdbc:postgresql://db:99999/app?password=TOPSECRET",
            "jdbc:postgresql://db:5432?password=TOPSECRET")) {
      assertThatThrownBy(() -> withUrl(url))
          .as(url)
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("[eventsourced.journal.postgres.url]")
          .hasMessageNotContaining("TOPSECRET");
    }
  }

  @Test
  @DisplayName("never shows a password before the host, even where pgjdbc reads the URL otherwise")
  void masksEverythingBeforeTheLastAt() {
    // pgjdbc reads host "app", port 1234, database "TOP" and a parameter x; the password stays hidden.
    assertThat(withUrl("jdbc:postgresql://app:1234/TOP?x=SECRET@db:5432/app").safeUrl())
        .isEqualTo("jdbc:postgresql://***@db:5432/app");
    assertThat(withUrl("jdbc:postgresql://db/app?ApplicationName=me@corp&ssl=true").safeUrl())
        .isEqualTo("jdbc:postgresql://***@corp&ssl=true");
  }

  @Test
  @DisplayName("accepts the URL forms pgjdbc reads, unmasked")
  void acceptsReadableUrls() {
    for (String url :
        List.of(
            "jdbc:postgresql://db1:5432,db2:5433/app?ssl=true",
            "jdbc:postgresql://db1:5432,/app",
            "jdbc:postgresql://:5433/app",
            "jdbc:postgresql://[::1]:5432/app",
            "jdbc:postgresql://::1:5432/app",
            "jdbc:postgresql://db/my%40db",
            "jdbc:postgresql:///app?host=/var/run/postgresql",
            "jdbc:postgresql://",
            "jdbc:postgresql:app")) {
      assertThat(withUrl(url).safeUrl()).as(url).isEqualTo(url);
    }
  }

  @Test
  @DisplayName("rejects a URL with no / after its hosts, which pgjdbc cannot read")
  void rejectsMissingSlash() {
    assertThatThrownBy(() -> withUrl("jdbc:postgresql://db:5432"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[eventsourced.journal.postgres.url] must have a / after the hosts and ports");
  }

  @Test
  @DisplayName("rejects a URL with a user and password before the host, without repeating the password")
  void rejectsUserInfoInUrl() {
    assertThatThrownBy(() -> PostgresSettings.fromConfig(
            ConfigFactory.parseString(
                    "eventsourced.postgres.url = \"jdbc:postgresql://bob:s3cret-info@db:5432/app?password=s3cret-url\"")
                .withFallback(ConfigFactory.defaultReferenceUnresolved())
                .resolve()
                .getConfig("eventsourced.journal.postgres"),
            "eventsourced.journal.postgres"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[eventsourced.journal.postgres.url]")
        .hasMessageContaining("user:password@host")
        .hasMessageContaining("jdbc:postgresql://***@db:5432/app?password=***")
        .hasMessageNotContaining("s3cret");
  }
}
