package io.eventsourced.postgres;

import static org.junit.jupiter.api.Assertions.fail;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.IOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.util.Locale;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.Assumptions;
import org.slf4j.LoggerFactory;

/**
 * Shared plumbing of the integration tests: the real server at the configured URL (default
 * {@code 127.0.0.1:5432}), one schema per test class, dropped afterwards.
 *
 * <p>If the server is unreachable the tests are skipped with a message saying how to start it,
 * except with {@code CI=true}, where they fail: in CI the server is required.
 */
final class PostgresTestSupport {

  static final String START_HINT =
      "start it with: pg_ctlcluster --skip-systemctl-redirect 15 main start"
          + " (or point EVENTSOURCED_POSTGRES_URL at a server)";

  private PostgresTestSupport() {}

  /** The connection settings of the default configuration (environment overrides applied). */
  static PostgresSettings defaults() {
    return PostgresSettings.fromConfig(
        ConfigFactory.load().getConfig("eventsourced.journal.postgres"), "eventsourced.journal.postgres");
  }

  /** Skips the calling test class (fails it in CI) if the server cannot be reached. */
  static void requireServer() {
    PostgresSettings s = defaults();
    try (Connection c = connect(s)) {
      c.isValid(2);
    } catch (SQLException e) {
      String message =
          "PostgreSQL is not reachable at [" + s.safeUrl() + "]: " + e.getMessage() + "; " + START_HINT;
      if ("true".equalsIgnoreCase(System.getenv("CI"))) {
        fail("CI=true requires PostgreSQL: " + message, e);
      }
      // Surefire counts an aborted class as neither run nor skipped: say it in the build log.
      LoggerFactory.getLogger(PostgresTestSupport.class).warn("Skipping PostgreSQL tests: {}", message);
      Assumptions.abort(message);
    }
  }

  static Connection connect(PostgresSettings s) throws SQLException {
    Properties props = new Properties();
    props.setProperty("user", s.user());
    if (s.password() != null) {
      props.setProperty("password", s.password());
    }
    props.setProperty("connectTimeout", "2");
    return DriverManager.getConnection(s.url(), props);
  }

  /** A fresh schema name for one test class. */
  static String freshSchema(String prefix) {
    return ("es_test_" + prefix + "_" + UUID.randomUUID().toString().substring(0, 8))
        .toLowerCase(Locale.ROOT)
        .replace('-', '_');
  }

  /** Config with the tests' overrides applied before resolution, so both plugin blocks see them. */
  static Config config(String overrides) {
    return ConfigFactory.load(ConfigFactory.parseString(overrides));
  }

  /** An actor system whose default journal and snapshot store are the Postgres ones in {@code schema}. */
  static ActorTestKit testKit(String schema, String moreOverrides) {
    return ActorTestKit.create(
        "pg-" + schema.replace('_', '-'),
        config(
            "eventsourced.journal.plugin = \"eventsourced.journal.postgres\"\n"
                + "eventsourced.snapshot-store.plugin = \"eventsourced.snapshot-store.postgres\"\n"
                + "eventsourced.postgres.schema = \"" + schema + "\"\n"
                + moreOverrides));
  }

  /** Host, port and database of the default server, as pgjdbc reads its URL. */
  private static Properties defaultTarget() {
    return org.postgresql.Driver.parseURL(defaults().url(), null);
  }

  /** A proxy in front of the default server, for fault tests that cut the connection. */
  static TcpProxy proxyToServer() throws IOException {
    Properties target = defaultTarget();
    return new TcpProxy(target.getProperty("PGHOST"), Integer.parseInt(target.getProperty("PGPORT")));
  }

  /**
   * An actor system on the Postgres plugins in {@code schema}, connected through {@code proxy},
   * with short timeouts so that a cut connection fails writes and reads quickly.
   */
  static ActorTestKit testKitThrough(TcpProxy proxy, String schema) {
    String url = "jdbc:postgresql://127.0.0.1:" + proxy.port() + "/" + defaultTarget().getProperty("PGDBNAME");
    return testKit(
        schema,
        "eventsourced.postgres.url = \"" + url + "\"\n"
            + "eventsourced.postgres.pool-size = 4\n"
            + "eventsourced.postgres.connection-timeout = 500ms\n"
            + "eventsourced.postgres.socket-timeout = 5s\n");
  }

  /** Runs one statement against the default server. */
  static void execute(String sql, Object... params) {
    try (Connection c = connect(defaults()); PreparedStatement ps = c.prepareStatement(sql)) {
      for (int i = 0; i < params.length; i++) {
        ps.setObject(i + 1, params[i]);
      }
      ps.execute();
    } catch (SQLException e) {
      throw new IllegalStateException("cannot run [" + sql + "]: " + e.getMessage(), e);
    }
  }

  /** Waits for a stage (at most 20 s): null if it succeeded, else the error it failed with. */
  static Throwable outcome(CompletableFuture<?> f) throws Exception {
    try {
      f.get(20, TimeUnit.SECONDS);
      return null;
    } catch (ExecutionException e) {
      return e.getCause();
    }
  }

  /** Drops a test schema and everything in it. */
  static void dropSchema(String schema) {
    // The name was generated by freshSchema, so it is a safe identifier.
    execute("DROP SCHEMA IF EXISTS " + Sql.quote(schema) + " CASCADE");
  }
}
