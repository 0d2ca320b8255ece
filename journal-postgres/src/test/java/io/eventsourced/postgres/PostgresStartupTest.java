package io.eventsourced.postgres;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigResolveOptions;
import io.eventsourced.Persistence;
import io.eventsourced.journal.Journal;
import io.eventsourced.snapshot.SnapshotStore;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.UUID;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.PersistentRepr;
import io.eventsourced.snapshot.SnapshotRecord;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The PostgreSQL plugins at start")
class PostgresStartupTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("startup");

  private static boolean serverReached;

  @BeforeAll
  static void start() {
    PostgresTestSupport.requireServer();
    serverReached = true;
  }

  @AfterAll
  static void dropSchema() {
    // Without a server the class is skipped: dropping would fail and turn the skip into an error.
    if (serverReached) {
      PostgresTestSupport.dropSchema(SCHEMA);
    }
  }

  @Test
  @DisplayName("read the documented defaults from reference.conf")
  void defaults() {
    Config reference = ConfigFactory.parseString("").withFallback(ConfigFactory.defaultReferenceUnresolved()).resolve();
    PostgresSettings s =
        PostgresSettings.fromConfig(reference.getConfig("eventsourced.journal.postgres"), "eventsourced.journal.postgres");
    if (System.getenv("EVENTSOURCED_POSTGRES_URL") == null
        && System.getenv("EVENTSOURCED_POSTGRES_HOST") == null
        && System.getenv("EVENTSOURCED_POSTGRES_PORT") == null
        && System.getenv("EVENTSOURCED_POSTGRES_DATABASE") == null) {
      assertThat(s.url()).isEqualTo("jdbc:postgresql://127.0.0.1:5432/postgres");
    }
    if (System.getenv("EVENTSOURCED_POSTGRES_PASSWORD") == null) {
      assertThat(s.password()).isNull();
    }
    assertThat(s.journalTable()).isEqualTo("event_journal");
    assertThat(s.snapshotTable()).isEqualTo("snapshot");
    assertThat(s.orderingIndex()).isFalse();
    assertThat(s.maxBatchSize()).isEqualTo(1000);
    assertThat(s.connectionTimeout()).isEqualTo(Duration.ofSeconds(5));
    assertThat(s.closeTimeout()).isEqualTo(Duration.ofSeconds(3));
    assertThat(reference.getString("eventsourced.journal.postgres.class")).isEqualTo(PostgresJournal.class.getName());
    assertThat(reference.getString("eventsourced.snapshot-store.postgres.class")).isEqualTo(PostgresSnapshotStore.class.getName());
    assertThat(reference.getInt("eventsourced.postgres.dispatcher.thread-pool-executor.fixed-pool-size")).isEqualTo(s.poolSize());
  }

  @Test
  @DisplayName("take url, user, password, schema, table names and pool size from the EVENTSOURCED_POSTGRES_* variables")
  void environmentOverrides() {
    // HOCON resolves ${?VAR} from the config root before the environment, which lets the test
    // check the wiring without changing the process environment.
    Config config =
        ConfigFactory.parseString(
                "EVENTSOURCED_POSTGRES_URL = \"jdbc:postgresql://db.example:6543/app\"\n"
                    + "EVENTSOURCED_POSTGRES_USER = \"app\"\n"
                    + "EVENTSOURCED_POSTGRES_PASSWORD = \"pw\"\n"
                    + "EVENTSOURCED_POSTGRES_SCHEMA = \"tenant_a\"\n"
                    + "EVENTSOURCED_POSTGRES_JOURNAL_TABLE = \"events_a\"\n"
                    + "EVENTSOURCED_POSTGRES_SNAPSHOT_TABLE = \"snapshots_a\"\n"
                    + "EVENTSOURCED_POSTGRES_SSL_MODE = \"require\"\n"
                    + "EVENTSOURCED_POSTGRES_SETUP = off\n"
                    + "EVENTSOURCED_POSTGRES_POOL_SIZE = 3\n")
            .withFallback(ConfigFactory.defaultReferenceUnresolved())
            .resolve();
    for (String path : new String[] {"eventsourced.journal.postgres", "eventsourced.snapshot-store.postgres"}) {
      PostgresSettings s = PostgresSettings.fromConfig(config.getConfig(path), path);
      assertThat(s.url()).isEqualTo("jdbc:postgresql://db.example:6543/app");
      assertThat(s.user()).isEqualTo("app");
      assertThat(s.password()).isEqualTo("pw");
      assertThat(s.schema()).isEqualTo("tenant_a");
      assertThat(s.journalTable()).isEqualTo("events_a");
      assertThat(s.snapshotTable()).isEqualTo("snapshots_a");
      assertThat(s.sslMode()).isEqualTo("require");
      assertThat(s.setup()).isFalse();
      assertThat(s.poolSize()).isEqualTo(3);
    }
    assertThat(config.getInt("eventsourced.postgres.dispatcher.thread-pool-executor.fixed-pool-size")).isEqualTo(3);
  }

  @Test
  @DisplayName("build the URL from host, port and database (also from their variables) unless url is set, checking each")
  void hostPortDatabase() {
    Config config =
        ConfigFactory.parseString(
                "EVENTSOURCED_POSTGRES_HOST = \"db.example\"\n"
                    + "EVENTSOURCED_POSTGRES_PORT = \"6543\"\n"
                    + "EVENTSOURCED_POSTGRES_DATABASE = \"app\"\n")
            .withFallback(ConfigFactory.defaultReferenceUnresolved())
            .resolve(ConfigResolveOptions.noSystem());
    for (String path : new String[] {"eventsourced.journal.postgres", "eventsourced.snapshot-store.postgres"}) {
      assertThat(PostgresSettings.fromConfig(config.getConfig(path), path).url())
          .isEqualTo("jdbc:postgresql://db.example:6543/app");
    }
    String path = "eventsourced.journal.postgres";
    assertThat(referenceWith("eventsourced.postgres { host = \"::1\", database = \"my db/x@y\" }").url())
        .isEqualTo("jdbc:postgresql://[::1]:5432/my+db%2Fx%40y");
    // A plugin block may point at another server than the shared block.
    assertThat(referenceWith("eventsourced.journal.postgres.host = other").url()).isEqualTo("jdbc:postgresql://other:5432/postgres");
    assertThat(referenceWith("eventsourced.postgres { host = ignored, url = \"jdbc:postgresql://a:1/b\" }").url())
        .isEqualTo("jdbc:postgresql://a:1/b");
    assertThatThrownBy(() -> referenceWith("eventsourced.postgres.host = \"bob:pw@db\""))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("[" + path + ".host] must be a host name or an IP address (IPv6 without brackets; the port goes"
            + " in port, user and password in their own keys)")
        .hasMessageNotContaining("pw");
    assertThatThrownBy(() -> referenceWith("eventsourced.postgres.host = \"db:5432\""))
        .hasMessageContaining("[" + path + ".host] must be a host name");
    assertThat(referenceWith("eventsourced.postgres.host = \"fe80::1\"").url())
        .isEqualTo("jdbc:postgresql://[fe80::1]:5432/postgres");
    assertThatThrownBy(() -> referenceWith("eventsourced.postgres.host = \"db/x\""))
        .hasMessageContaining("[" + path + ".host] must be a host name");
    assertThatThrownBy(() -> referenceWith("eventsourced.postgres.port = 70000"))
        .hasMessage("[" + path + ".port] must be from 1 to 65535, was [70000]");
    assertThatThrownBy(() -> referenceWith("eventsourced.postgres.port = 54.32"))
        .hasMessageContaining("[" + path + ".port] must be a whole number");
    assertThatThrownBy(() -> referenceWith("eventsourced.postgres.database = \"\""))
        .hasMessage("[" + path + ".database] must not be empty");
  }

  /** The reference config with overrides, blind to the process environment (which may set a URL). */
  private static PostgresSettings referenceWith(String overrides) {
    Config config =
        ConfigFactory.parseString(overrides)
            .withFallback(ConfigFactory.defaultReferenceUnresolved())
            .resolve(ConfigResolveOptions.noSystem());
    return PostgresSettings.fromConfig(config.getConfig("eventsourced.journal.postgres"), "eventsourced.journal.postgres");
  }

  @Test
  @DisplayName("reject invalid values naming the full key path")
  void invalidValues() {
    String path = "eventsourced.journal.postgres";
    assertThatThrownBy(() -> settings("eventsourced.postgres.pool-size = 0"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[" + path + ".pool-size]");
    assertThatThrownBy(() -> settings("eventsourced.postgres.max-in-flight-batches = 9"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[" + path + ".max-in-flight-batches]");
    // Writers on every connection and dispatcher thread would leave replays waiting.
    assertThatThrownBy(() -> settings("eventsourced.postgres { pool-size = 2, max-in-flight-batches = 2 }"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[" + path + ".max-in-flight-batches] must be between 1 and pool-size - 1 [1]");
    assertThatThrownBy(() -> settings("eventsourced.postgres { pool-size = 1, max-in-flight-batches = 1 }"))
        .hasMessageContaining("[" + path + ".pool-size] must be at least 2");
    assertThat(settings("eventsourced.postgres { pool-size = 2, max-in-flight-batches = 1 }").maxInFlightBatches())
        .isEqualTo(1);
    assertThatThrownBy(() -> settings("eventsourced.postgres.ssl-mode = sometimes"))
        .hasMessageContaining("[" + path + ".ssl-mode]");
    assertThatThrownBy(() -> settings("eventsourced.postgres.url = \"jdbc:mysql://x/y\""))
        .hasMessageContaining("[" + path + ".url]");
    assertThatThrownBy(() -> settings("eventsourced.postgres.connection-timeout = soon"))
        .hasMessageContaining("[" + path + ".connection-timeout]");
    // pgjdbc would round 500ms down to 0, its "no timeout".
    assertThatThrownBy(() -> settings("eventsourced.postgres.socket-timeout = 500ms"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[" + path + ".socket-timeout]");
    assertThat(settings("eventsourced.postgres.socket-timeout = 0s").socketTimeout()).isZero();
    assertThatThrownBy(() -> settings("eventsourced.postgres.close-timeout = 2m"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[" + path + ".close-timeout] must be between 0s and 60s");
    assertThat(settings("eventsourced.postgres.close-timeout = 0s").closeTimeout()).isZero();
    for (String key : List.of("pool-size", "max-batch-size", "max-in-flight-batches", "replay-fetch-size", "snapshot-keep-last")) {
      assertThatThrownBy(() -> settings("eventsourced.postgres." + key + " = 2.5"))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessage("[" + path + "." + key + "] must be a whole number, was [2.5]");
      assertThatThrownBy(() -> settings("eventsourced.postgres." + key + " = many"))
          .isInstanceOf(IllegalArgumentException.class)
          .hasMessageContaining("[" + path + "." + key + "] is invalid");
    }
    assertThat(settings("eventsourced.postgres { pool-size = 3.0, max-in-flight-batches = 2 }").poolSize()).isEqualTo(3);
  }

  private static PostgresSettings settings(String overrides) {
    return PostgresSettings.fromConfig(
        PostgresTestSupport.config(overrides).getConfig("eventsourced.journal.postgres"), "eventsourced.journal.postgres");
  }

  @Test
  @DisplayName("fail with a message naming the URL and user, never the password, when the server is unreachable")
  void unreachableServer() throws Exception {
    int port;
    try (ServerSocket free = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      port = free.getLocalPort();
    }
    String url = "jdbc:postgresql://127.0.0.1:" + port + "/postgres";
    ActorTestKit kit =
        PostgresTestSupport.testKit(
            SCHEMA,
            "eventsourced.postgres.url = \"" + url + "\"\n"
                + "eventsourced.postgres.password = \"hunter2-secret\"\n"
                + "eventsourced.postgres.connection-timeout = 1s\n");
    try {
      assertThatThrownBy(() -> Persistence.get(kit.system()).journal())
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining("[" + url + "]")
          .hasMessageContaining("[postgres]")
          .hasMessageNotContaining("hunter2");
      assertThatThrownBy(() -> Persistence.get(kit.system()).snapshotStore())
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining("[" + url + "]")
          .hasMessageNotContaining("hunter2");
    } finally {
      kit.shutdownTestKit();
    }
  }

  @Test
  @DisplayName("fail with a message naming the URL and user, never the password, when the server refuses the login")
  void refusedLogin() {
    // This server trusts every known user, so an unknown user is the login it refuses.
    String user = "no_such_user_" + UUID.randomUUID().toString().substring(0, 8).replace('-', '_');
    ActorTestKit kit =
        PostgresTestSupport.testKit(
            SCHEMA,
            "eventsourced.postgres.user = \"" + user + "\"\n"
                + "eventsourced.postgres.password = \"hunter2-secret\"\n");
    try {
      assertThatThrownBy(() -> Persistence.get(kit.system()).journal())
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining("cannot connect to PostgreSQL at [" + PostgresTestSupport.defaults().safeUrl() + "]")
          .hasMessageContaining("as user [" + user + "]")
          .hasMessageContaining("does not exist")
          .hasMessageNotContaining("hunter2");
    } finally {
      kit.shutdownTestKit();
    }
  }

  @Test
  @DisplayName("refuse a table of the other plugin's kind, or a relation that is no table, naming the key")
  void tableOfTheWrongShape() {
    String schema = PostgresTestSupport.freshSchema("shape");
    String both =
        "eventsourced.journal.postgres.journal-table = shared\n"
            + "eventsourced.snapshot-store.postgres.snapshot-table = shared";
    try {
      ActorTestKit journalFirst = PostgresTestSupport.testKit(schema, both);
      try {
        Persistence.get(journalFirst.system()).journal();
        assertThatThrownBy(() -> Persistence.get(journalFirst.system()).snapshotStore())
            .isInstanceOf(IllegalStateException.class)
            .hasMessageContaining("[eventsourced.snapshot-store.postgres.snapshot-table]")
            .hasMessageContaining("would overwrite its events");
      } finally {
        journalFirst.shutdownTestKit();
      }
      PostgresTestSupport.execute("DROP TABLE \"" + schema + "\".shared");
      ActorTestKit snapshotsFirst = PostgresTestSupport.testKit(schema, both);
      try {
        Persistence.get(snapshotsFirst.system()).snapshotStore();
        assertThatThrownBy(() -> Persistence.get(snapshotsFirst.system()).journal())
            .isInstanceOf(IllegalStateException.class)
            .hasMessageContaining("[eventsourced.journal.postgres.journal-table]")
            .hasMessageContaining("no journal table");
      } finally {
        snapshotsFirst.shutdownTestKit();
      }
      ActorTestKit index =
          PostgresTestSupport.testKit(schema, "eventsourced.snapshot-store.postgres.snapshot-table = shared_pkey");
      try {
        assertThatThrownBy(() -> Persistence.get(index.system()).snapshotStore())
            .isInstanceOf(IllegalStateException.class)
            .hasMessageContaining("[eventsourced.snapshot-store.postgres.snapshot-table]")
            .hasMessageContaining("which is an index, not a table");
      } finally {
        index.shutdownTestKit();
      }
    } finally {
      PostgresTestSupport.dropSchema(schema);
    }
  }

  @Test
  @DisplayName("with setup off, fail naming the missing table")
  void setupOffMissingTable() {
    String schema = PostgresTestSupport.freshSchema("nothing");
    ActorTestKit kit = PostgresTestSupport.testKit(schema, "eventsourced.postgres.setup = off");
    try {
      assertThatThrownBy(() -> Persistence.get(kit.system()).journal())
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining(schema)
          .hasMessageContaining("setup is off");
    } finally {
      kit.shutdownTestKit();
    }
  }

  @Test
  @DisplayName("create the schema idempotently, share one pool between journal and snapshot store, and close idempotently")
  void setupSharingAndClose() throws Exception {
    ActorTestKit first = PostgresTestSupport.testKit(SCHEMA, "");
    ActorTestKit second = PostgresTestSupport.testKit(SCHEMA, "");
    try {
      Journal journal = Persistence.get(first.system()).journal();
      SnapshotStore snapshots = Persistence.get(first.system()).snapshotStore();
      Journal again = Persistence.get(second.system()).journal();
      assertThat(((PostgresJournal) journal).pool()).isSameAs(((PostgresSnapshotStore) snapshots).pool());
      try (java.sql.Connection c = ((PostgresJournal) journal).pool().dataSource().getConnection();
          java.sql.PreparedStatement ps = c.prepareStatement("SHOW plan_cache_mode");
          java.sql.ResultSet rs = ps.executeQuery()) {
        rs.next();
        assertThat(rs.getString(1)).as("pooled connections use generic plans").isEqualTo("force_generic_plan");
        c.rollback();
      }
      assertThat(((PostgresJournal) again).pool()).isNotSameAs(((PostgresJournal) journal).pool());
      assertThat(again.highestSequenceNr(io.eventsourced.PersistenceId.of("t", "x")).toCompletableFuture().get())
          .isZero();
      ActorTestKit third = PostgresTestSupport.testKit(SCHEMA, "eventsourced.postgres.setup = off");
      try {
        assertThat(Persistence.get(third.system()).journal()).isInstanceOf(PostgresJournal.class);
      } finally {
        third.shutdownTestKit();
      }
      again.close();
      again.close();
      assertThatThrownBy(() -> again.highestSequenceNr(io.eventsourced.PersistenceId.of("t", "x")).toCompletableFuture().get())
          .hasMessageContaining("closed");
      // The first system's pool is unaffected.
      assertThat(journal.highestSequenceNr(io.eventsourced.PersistenceId.of("t", "x")).toCompletableFuture().get()).isZero();
    } finally {
      second.shutdownTestKit();
      first.shutdownTestKit();
    }
  }

  @Test
  @DisplayName("with setup on, start as a user without CREATE rights when the objects exist, and name the missing right when they do not")
  void setupWithoutCreateRights() throws Exception {
    String schema = PostgresTestSupport.freshSchema("dba_made");
    String noIndex = PostgresTestSupport.freshSchema("dba_no_index");
    String empty = PostgresTestSupport.freshSchema("dba_empty");
    String role = PostgresTestSupport.freshSchema("app_role");
    for (String[] made : new String[][] {{schema, "on"}, {noIndex, "off"}}) {
      ActorTestKit dba = PostgresTestSupport.testKit(made[0], "eventsourced.postgres.ordering-index = " + made[1]);
      try {
        Persistence.get(dba.system()).journal();
      } finally {
        dba.shutdownTestKit();
      }
    }
    // An application role as a DBA would set it up: data access only, no CREATE anywhere. With a
    // password, so the test also holds where the server does not trust local logins.
    PostgresTestSupport.execute("CREATE ROLE " + role + " LOGIN PASSWORD 'app-secret'");
    try {
      for (String s : List.of(schema, noIndex)) {
        PostgresTestSupport.execute("GRANT USAGE ON SCHEMA " + s + " TO " + role);
        PostgresTestSupport.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + s + " TO " + role);
      }
      String asRole =
          "eventsourced.postgres.user = \"" + role + "\"\n"
              + "eventsourced.postgres.password = \"app-secret\"\n"
              + "eventsourced.postgres.ordering-index = on\n";
      ActorTestKit app = PostgresTestSupport.testKit(schema, asRole);
      ActorTestKit missingTables = PostgresTestSupport.testKit(empty, asRole);
      ActorTestKit missingIndex = PostgresTestSupport.testKit(noIndex, asRole);
      try {
        Journal journal = Persistence.get(app.system()).journal();
        SnapshotStore snapshots = Persistence.get(app.system()).snapshotStore();
        PersistenceId id = PersistenceId.of("t", "app");
        journal.append(new AtomicWrite(id, 0, List.of(new PersistentRepr(id, 1, 4, "", new byte[] {1}))))
            .toCompletableFuture().get(10, TimeUnit.SECONDS);
        snapshots.save(new SnapshotRecord(id, 1, 4, "", new byte[] {9})).toCompletableFuture().get(10, TimeUnit.SECONDS);
        assertThat(journal.highestSequenceNr(id).toCompletableFuture().get(10, TimeUnit.SECONDS)).isEqualTo(1);

        for (var missing : List.of(Map.entry(missingTables, empty), Map.entry(missingIndex, noIndex))) {
          assertThatThrownBy(() -> Persistence.get(missing.getKey().system()).journal())
              .isInstanceOf(IllegalStateException.class)
              .hasMessageContaining(missing.getValue())
              .hasMessageContaining(role)
              .hasMessageContaining("schema.sql")
              .hasMessageNotContaining("app-secret");
        }
      } finally {
        app.shutdownTestKit();
        missingTables.shutdownTestKit();
        missingIndex.shutdownTestKit();
      }
    } finally {
      PostgresTestSupport.dropSchema(schema);
      PostgresTestSupport.dropSchema(noIndex);
      dropRole(role);
    }
  }

  @Test
  @DisplayName("create the (type_name, ordering) index only with ordering-index = on, and fill ordering either way")
  void orderingIndex() throws Exception {
    String without = PostgresTestSupport.freshSchema("no_ordering_idx");
    String with = PostgresTestSupport.freshSchema("ordering_idx");
    ActorTestKit off = PostgresTestSupport.testKit(without, "");
    ActorTestKit on = PostgresTestSupport.testKit(with, "eventsourced.postgres.ordering-index = on");
    try {
      for (ActorTestKit kit : List.of(off, on)) {
        Journal journal = Persistence.get(kit.system()).journal();
        io.eventsourced.PersistenceId id = io.eventsourced.PersistenceId.of("t", "ordered");
        journal.append(new io.eventsourced.journal.AtomicWrite(id, 0, List.of(
                new io.eventsourced.journal.PersistentRepr(id, 1, 4, "", new byte[] {1}),
                new io.eventsourced.journal.PersistentRepr(id, 2, 4, "", new byte[] {2}))))
            .toCompletableFuture().get(10, java.util.concurrent.TimeUnit.SECONDS);
      }
      try (java.sql.Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults())) {
        for (String schema : List.of(without, with)) {
          assertThat(orderingIndexes(schema)).as("ordering index in %s", schema).isEqualTo(schema.equals(with) ? 1 : 0);
          try (java.sql.PreparedStatement ps = c.prepareStatement(
                  "SELECT count(DISTINCT ordering), count(*) FROM " + Sql.quote(schema) + ".event_journal")) {
            try (java.sql.ResultSet rs = ps.executeQuery()) {
              rs.next();
              assertThat(rs.getLong(1)).as("distinct ordering values in %s", schema).isEqualTo(rs.getLong(2)).isEqualTo(2);
            }
          }
        }
      }
    } finally {
      off.shutdownTestKit();
      on.shutdownTestKit();
      PostgresTestSupport.dropSchema(without);
      PostgresTestSupport.dropSchema(with);
    }
  }

  @Test
  @DisplayName("with ordering-index on, create the index on an empty journal table but refuse to build it at start on one holding events")
  void orderingIndexOnExistingTable() throws Exception {
    String filled = PostgresTestSupport.freshSchema("filled_no_idx");
    String empty = PostgresTestSupport.freshSchema("empty_no_idx");
    try {
      for (String schema : List.of(filled, empty)) {
        ActorTestKit off = PostgresTestSupport.testKit(schema, "");
        try {
          Journal journal = Persistence.get(off.system()).journal();
          if (schema.equals(filled)) {
            PersistenceId id = PersistenceId.of("t", "kept");
            journal.append(new AtomicWrite(id, 0, List.of(
                    new PersistentRepr(id, 1, 4, "", new byte[] {1}),
                    new PersistentRepr(id, 2, 4, "", new byte[] {2}))))
                .toCompletableFuture().get(10, TimeUnit.SECONDS);
          }
        } finally {
          off.shutdownTestKit();
        }
      }
      String on = "eventsourced.postgres.ordering-index = on\n";
      ActorTestKit refused = PostgresTestSupport.testKit(filled, on);
      try {
        assertThatThrownBy(() -> Persistence.get(refused.system()).journal())
            .isInstanceOf(IllegalStateException.class)
            .hasMessageContaining("[eventsourced.journal.postgres.ordering-index] is on")
            .hasMessageContaining(filled)
            .hasMessageContaining("CREATE INDEX CONCURRENTLY");
      } finally {
        refused.shutdownTestKit();
      }
      assertThat(orderingIndexes(filled)).as("no index built at start").isZero();
      assertThat(rows(filled)).as("the stored events are untouched").isEqualTo(2);

      // A concurrent build that fails (here: unique on a repeated value) leaves an invalid index
      // under the name: refused as well, with the statements that mend it.
      String index = Sql.quote(filled) + "." + Sql.quote("event_journal_type_ordering_idx");
      assertThatThrownBy(() -> PostgresTestSupport.execute("CREATE UNIQUE INDEX CONCURRENTLY event_journal_type_ordering_idx ON "
              + Sql.quote(filled) + ".event_journal (type_name)"))
          .hasMessageContaining("could not create unique index");
      ActorTestKit invalid = PostgresTestSupport.testKit(filled, on);
      try {
        assertThatThrownBy(() -> Persistence.get(invalid.system()).journal())
            .isInstanceOf(IllegalStateException.class)
            .hasMessageContaining("[eventsourced.journal.postgres.ordering-index] is on")
            .hasMessageContaining("is invalid")
            .hasMessageContaining("DROP INDEX CONCURRENTLY " + index);
      } finally {
        invalid.shutdownTestKit();
      }
      PostgresTestSupport.execute("DROP INDEX CONCURRENTLY " + index);

      // The statement the message gives builds the index; the next start then uses it.
      PostgresSettings settings = settings("eventsourced.postgres.ordering-index = on\n"
          + "eventsourced.postgres.schema = \"" + filled + "\"");
      PostgresTestSupport.execute(new Sql(settings).createOrderingIndexOnline);
      for (String schema : List.of(filled, empty)) {
        ActorTestKit started = PostgresTestSupport.testKit(schema, on);
        try {
          assertThat(Persistence.get(started.system()).journal()).isInstanceOf(PostgresJournal.class);
        } finally {
          started.shutdownTestKit();
        }
        assertThat(orderingIndexes(schema)).as("ordering index in %s", schema).isEqualTo(1);
      }
    } finally {
      PostgresTestSupport.dropSchema(filled);
      PostgresTestSupport.dropSchema(empty);
    }
  }

  @Test
  @DisplayName("with setup on, create the tables as a user with CREATE on the existing schema only")
  void setupInExistingSchema() throws Exception {
    String schema = PostgresTestSupport.freshSchema("dba_schema");
    String role = PostgresTestSupport.freshSchema("schema_role");
    // No CREATE on the database, which CREATE SCHEMA IF NOT EXISTS would need even for an
    // existing schema.
    PostgresTestSupport.execute("CREATE ROLE " + role + " LOGIN PASSWORD 'schema-secret'");
    try {
      PostgresTestSupport.execute("CREATE SCHEMA " + schema);
      PostgresTestSupport.execute("GRANT USAGE, CREATE ON SCHEMA " + schema + " TO " + role);
      ActorTestKit app = PostgresTestSupport.testKit(schema,
          "eventsourced.postgres.user = \"" + role + "\"\n"
              + "eventsourced.postgres.password = \"schema-secret\"\n");
      try {
        Journal journal = Persistence.get(app.system()).journal();
        SnapshotStore snapshots = Persistence.get(app.system()).snapshotStore();
        PersistenceId id = PersistenceId.of("t", "own");
        journal.append(new AtomicWrite(id, 0, List.of(new PersistentRepr(id, 1, 4, "", new byte[] {1}))))
            .toCompletableFuture().get(10, TimeUnit.SECONDS);
        snapshots.save(new SnapshotRecord(id, 1, 4, "", new byte[] {9})).toCompletableFuture().get(10, TimeUnit.SECONDS);
      } finally {
        app.shutdownTestKit();
      }
      assertThat(rows(schema)).isEqualTo(1);
    } finally {
      try {
        PostgresTestSupport.dropSchema(schema);
      } finally {
        dropRole(role);
      }
    }
  }

  @Test
  @DisplayName("report why setup failed when its connection breaks, not the failed rollback")
  void setupFailureNotMaskedByRollback() throws Exception {
    String schema = PostgresTestSupport.freshSchema("setup_blocked");
    // Another starting node holds the setup lock: this start waits for it until its socket times out.
    try (java.sql.Connection other = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        java.sql.PreparedStatement lock = other.prepareStatement("SELECT pg_advisory_lock(?)")) {
      lock.setLong(1, ConnectionPool.SETUP_LOCK);
      lock.execute();
      ActorTestKit kit = PostgresTestSupport.testKit(schema, "eventsourced.postgres.socket-timeout = 1s\n");
      try {
        Throwable failure = org.assertj.core.api.Assertions.catchThrowable(() -> Persistence.get(kit.system()).journal());
        assertThat(failure).isInstanceOf(IllegalStateException.class)
            .hasMessageContaining("cannot create the schema objects of")
            .hasCauseInstanceOf(java.sql.SQLException.class);
        // 08006: the connection failed (the socket timed out), not 08003 of the closed connection
        // that the rollback afterwards ran into.
        assertThat(((java.sql.SQLException) failure.getCause()).getSQLState()).isEqualTo("08006");
      } finally {
        kit.shutdownTestKit();
      }
    } finally {
      PostgresTestSupport.dropSchema(schema);
    }
  }

  private static void dropRole(String role) {
    PostgresTestSupport.execute("DROP OWNED BY " + role);
    PostgresTestSupport.execute("DROP ROLE " + role);
  }

  private static long orderingIndexes(String schema) throws Exception {
    try (java.sql.Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        java.sql.PreparedStatement ps = c.prepareStatement(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = ? AND indexname = 'event_journal_type_ordering_idx'")) {
      ps.setString(1, schema);
      try (java.sql.ResultSet rs = ps.executeQuery()) {
        rs.next();
        return rs.getLong(1);
      }
    }
  }

  private static long rows(String schema) throws Exception {
    try (java.sql.Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        java.sql.PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM " + Sql.quote(schema) + ".event_journal");
        java.sql.ResultSet rs = ps.executeQuery()) {
      rs.next();
      return rs.getLong(1);
    }
  }
}
