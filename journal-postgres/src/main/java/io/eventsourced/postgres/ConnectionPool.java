package io.eventsourced.postgres;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import javax.sql.DataSource;
import org.apache.pekko.actor.typed.ActorSystem;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A HikariCP pool shared by the plugins of one actor system that name the same connection
 * settings: the journal and the snapshot store of the default configuration use one pool. It is
 * reference counted; the last plugin to release it closes it.
 */
final class ConnectionPool {
  private static final Logger log = LoggerFactory.getLogger(ConnectionPool.class);

  /** SQLState of "permission denied". */
  private static final String INSUFFICIENT_PRIVILEGE = "42501";

  /** Advisory lock key that serialises concurrent setups (two JVMs starting at once). */
  static final long SETUP_LOCK = 0x6576656e74736f75L; // "eventsou"

  /**
   * Pools by actor system (by identity: two systems of the same name are still two) and
   * settings; guarded by itself.
   */
  private static final Map<ActorSystem<?>, Map<Key, ConnectionPool>> shared = new IdentityHashMap<>();
  private static final AtomicInteger poolNumber = new AtomicInteger();

  /** What makes two plugins' pools interchangeable. */
  private record Key(
      String url,
      String user,
      String password,
      String sslMode,
      int poolSize,
      Duration connectionTimeout,
      Duration socketTimeout,
      Duration maxLifetime) {

    static Key of(PostgresSettings s) {
      return new Key(s.url(), s.user(), s.password(), s.sslMode(), s.poolSize(),
          s.connectionTimeout(), s.socketTimeout(), s.maxLifetime());
    }

    @Override
    public String toString() {
      return "pool of " + user + " at " + PostgresSettings.maskUrl(url);
    }
  }

  private final ActorSystem<?> system;
  private final Key key;
  private final HikariDataSource dataSource;
  private int references; // guarded by shared

  private ConnectionPool(ActorSystem<?> system, Key key, HikariDataSource dataSource) {
    this.system = system;
    this.key = key;
    this.dataSource = dataSource;
  }

  /**
   * The pool for these settings, created (and connected once, to fail fast) if this actor system
   * has none yet.
   *
   * @throws IllegalStateException naming the URL and user (never the password) if the server
   *     cannot be reached or refuses the login
   */
  static ConnectionPool acquire(ActorSystem<?> system, PostgresSettings settings) {
    Key key = Key.of(settings);
    synchronized (shared) {
      Map<Key, ConnectionPool> pools = shared.computeIfAbsent(system, k -> new HashMap<>());
      ConnectionPool pool = pools.get(key);
      if (pool == null) {
        try {
          pool = new ConnectionPool(system, key, open(settings));
        } catch (RuntimeException e) {
          if (pools.isEmpty()) {
            shared.remove(system);
          }
          throw e;
        }
        pools.put(key, pool);
      }
      pool.references++;
      return pool;
    }
  }

  DataSource dataSource() {
    return dataSource;
  }

  /** Drops one reference; closes the pool with the last one. Each holder calls it once. */
  void release() {
    boolean last;
    synchronized (shared) {
      last = --references == 0;
      if (last) {
        Map<Key, ConnectionPool> pools = shared.get(system);
        pools.remove(key);
        if (pools.isEmpty()) {
          shared.remove(system);
        }
      }
    }
    if (last) {
      dataSource.close();
      log.info("Closed PostgreSQL {}", key);
    }
  }

  private static HikariDataSource open(PostgresSettings s) {
    HikariConfig config = new HikariConfig();
    config.setPoolName("eventsourced-postgres-" + poolNumber.incrementAndGet());
    config.setJdbcUrl(s.url());
    config.setUsername(s.user());
    if (s.password() != null) {
      config.setPassword(s.password());
    }
    // A fixed-size pool: the dispatcher running the JDBC calls has as many threads.
    config.setMaximumPoolSize(s.poolSize());
    config.setMinimumIdle(s.poolSize());
    // Writes of several statements need a transaction; every operation ends with an explicit
    // commit or rollback (one-event batches switch to autocommit for their single statement).
    config.setAutoCommit(false);
    config.setConnectionTimeout(s.connectionTimeout().toMillis());
    config.setMaxLifetime(s.maxLifetime().toMillis());
    // Connect once now, so that a wrong password or an unreachable server fails plugin start.
    config.setInitializationFailTimeout(1);
    // The plugins' statements are few and fixed and their best plans do not depend on the
    // values: generic plans save planning every batch (PostgreSQL would otherwise keep making
    // custom plans for the array-unnesting insert).
    // Set in the startup packet (pgjdbc "options"), so no statement is needed; an "options"
    // parameter in the URL takes precedence.
    config.addDataSourceProperty("options", "-c plan_cache_mode=force_generic_plan");
    // Server-side prepared statements with binary transfer from the first execution: replay
    // reads bytea and numbers without text decoding.
    config.addDataSourceProperty("prepareThreshold", "-1");
    config.addDataSourceProperty("sslmode", s.sslMode());
    config.addDataSourceProperty("ApplicationName", "eventsourced");
    config.addDataSourceProperty("tcpKeepAlive", "true");
    config.addDataSourceProperty(
        "connectTimeout", Long.toString(Math.max(1, s.connectionTimeout().toSeconds())));
    config.addDataSourceProperty("socketTimeout", Long.toString(s.socketTimeout().toSeconds()));
    try {
      HikariDataSource dataSource = new HikariDataSource(config);
      log.info(
          "Connected to PostgreSQL at [{}] as [{}], pool size [{}]",
          s.safeUrl(), s.user(), s.poolSize());
      return dataSource;
    } catch (RuntimeException e) {
      throw new IllegalStateException(
          "cannot connect to PostgreSQL at [" + s.safeUrl() + "] as user [" + s.user() + "]: "
              + rootMessage(e),
          e);
    }
  }

  /**
   * Creates schema and tables idempotently (settings {@code setup = on}) or, with setup off,
   * checks that the tables exist, so that a missing table fails start rather than the first write.
   *
   * @param configPath the plugin's config path, to name its keys in errors
   */
  static void prepareSchema(
      DataSource dataSource, PostgresSettings s, Sql sql, String table, String configPath) {
    try (Connection c = dataSource.getConnection()) {
      try {
        if (s.setup() && s.orderingIndex()) {
          requireValidOrderingIndex(c, sql, configPath);
        }
        if (s.setup() && !allExist(c, sql)) {
          try (PreparedStatement lock = c.prepareStatement("SELECT pg_advisory_xact_lock(?)")) {
            lock.setLong(1, SETUP_LOCK);
            lock.execute();
          }
          boolean schemaExists = exists(c, sql.schemaExists, s.schema());
          if (s.orderingIndex() && !exists(c, sql.tableExists, sql.orderingIndex) && holdsEvents(c, sql)) {
            throw new IllegalStateException(
                "[" + configPath + ".ordering-index] is on, but table [" + sql.journal
                    + "] already holds events and has no index [" + sql.orderingIndex
                    + "]: building it at start would block every write to the table until it is"
                    + " built. Build it online, then start again: " + sql.createOrderingIndexOnline
                    + "; or set ordering-index = off");
          }
          for (String ddl : sql.ddl) {
            // CREATE SCHEMA IF NOT EXISTS needs the database's CREATE right even when the schema
            // exists; a user given CREATE on an existing schema can still create the tables.
            if (schemaExists && Sql.createsSchema(ddl)) {
              continue;
            }
            try (PreparedStatement st = c.prepareStatement(ddl)) {
              st.execute();
            }
          }
        } else if (!s.setup()) {
          if (!exists(c, sql.tableExists, table)) {
            throw new IllegalStateException(
                "table [" + table + "] does not exist at [" + s.safeUrl()
                    + "] and setup is off: create it with schema.sql or set setup = on");
          }
        }
        requireShape(c, sql, table, configPath);
        c.commit();
      } catch (SQLException | RuntimeException e) {
        // A broken connection fails the rollback too; the first error is the one to report.
        try {
          c.rollback();
        } catch (SQLException rollback) {
          e.addSuppressed(rollback);
        }
        throw e;
      }
    } catch (SQLException e) {
      String hint =
          INSUFFICIENT_PRIVILEGE.equals(e.getSQLState())
              ? "; the user needs USAGE on the schema to use existing objects, and CREATE rights (for"
                  + " an index on an existing table: its ownership) to create missing ones; or create"
                  + " them with schema.sql as a user who may, and setup then only uses them"
              : "";
      throw new IllegalStateException(
          "cannot " + (s.setup() ? "create the schema objects of" : "check") + " [" + table
              + "] at [" + s.safeUrl() + "] as user [" + s.user() + "]: " + e.getMessage() + hint,
          e);
    }
  }

  /**
   * Fails if the plugin's table is no table, or is the other plugin's kind of table: setup skips
   * an existing relation of that name, and the snapshot store's upsert would otherwise overwrite
   * stored events when both plugins are configured with the same table name.
   */
  private static void requireShape(Connection c, Sql sql, String table, String configPath)
      throws SQLException {
    boolean journal = table.equals(sql.journal);
    String key = configPath + (journal ? ".journal-table" : ".snapshot-table");
    try (PreparedStatement ps = c.prepareStatement(sql.tableShape)) {
      ps.setString(1, table);
      try (ResultSet rs = ps.executeQuery()) {
        if (!rs.next()) {
          return; // dropped meanwhile: the first statement on it will say so
        }
        String kind = rs.getString(1);
        boolean hasOrdering = rs.getBoolean(2);
        if (!kind.equals("r") && !kind.equals("p")) {
          throw new IllegalStateException(
              "[" + key + "] names [" + table + "], which is " + relationKind(kind)
                  + ", not a table; choose another name");
        }
        if (journal && !hasOrdering) {
          throw new IllegalStateException(
              "[" + key + "] names table [" + table + "], which has no ordering column, so it is no"
                  + " journal table (a snapshot table?); choose another name");
        }
        if (!journal && hasOrdering) {
          throw new IllegalStateException(
              "[" + key + "] names table [" + table + "], which has an ordering column, so it is a"
                  + " journal table: snapshots saved there would overwrite its events; choose another name");
        }
      }
    }
  }

  private static String relationKind(String relkind) {
    return switch (relkind) {
      case "i", "I" -> "an index";
      case "S" -> "a sequence";
      case "v" -> "a view";
      case "m" -> "a materialized view";
      case "f" -> "a foreign table";
      case "c" -> "a composite type";
      default -> "a relation of kind [" + relkind + "]";
    };
  }

  /**
   * Fails if the ordering index exists but is invalid, as a failed {@code CREATE INDEX
   * CONCURRENTLY} leaves it: setup would take it for built (it exists), and no query would use it.
   */
  private static void requireValidOrderingIndex(Connection c, Sql sql, String configPath)
      throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(sql.orderingIndexInvalid)) {
      ps.setString(1, sql.orderingIndex);
      try (ResultSet rs = ps.executeQuery()) {
        if (rs.next() && rs.getBoolean(1)) {
          throw new IllegalStateException(
              "[" + configPath + ".ordering-index] is on, but index [" + sql.orderingIndex
                  + "] is invalid (a CREATE INDEX CONCURRENTLY that failed leaves it so) and no query"
                  + " uses it. Drop it and build it again, then start again: DROP INDEX CONCURRENTLY "
                  + sql.orderingIndex + "; " + sql.createOrderingIndexOnline);
        }
      }
    }
  }

  /**
   * Rethrows what the JVM cannot recover from, once the caller has been told: on a Pekko
   * dispatcher it then ends the JVM ({@code pekko.jvm-exit-on-fatal-error}), as it would have
   * anywhere else. A stack overflow is not among them: it is the caller's deep recursion (a
   * replay consumer), and the stack is unwound by now.
   */
  static void rethrowIfFatal(Error e) {
    if ((e instanceof VirtualMachineError && !(e instanceof StackOverflowError)) || e instanceof LinkageError) {
      throw e;
    }
  }

  /**
   * Rolls back, ignoring a failure: on a broken connection the rollback fails as well, and must
   * not replace the error that broke it (or fail a read that succeeded). The pool evicts such a
   * connection, and the server discards its transaction.
   */
  static void rollbackQuietly(Connection c) {
    try {
      c.rollback();
    } catch (SQLException e) {
      log.debug("Cannot roll back [{}]", e.getSQLState());
    }
  }

  private static boolean exists(Connection c, String query, String name) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(query)) {
      ps.setString(1, name);
      try (ResultSet rs = ps.executeQuery()) {
        rs.next();
        return rs.getBoolean(1);
      }
    }
  }

  /** Whether the journal table exists and holds a row. */
  private static boolean holdsEvents(Connection c, Sql sql) throws SQLException {
    if (!exists(c, sql.tableExists, sql.journal)) {
      return false;
    }
    try (PreparedStatement ps = c.prepareStatement(sql.journalHoldsEvents);
        ResultSet rs = ps.executeQuery()) {
      rs.next();
      return rs.getBoolean(1);
    }
  }

  /**
   * Whether every object that setup creates exists already. Needs USAGE on the schema (without
   * it, the lookup fails with "permission denied"), no CREATE right.
   */
  private static boolean allExist(Connection c, Sql sql) throws SQLException {
    for (String name : sql.setupObjects) {
      if (!exists(c, sql.tableExists, name)) {
        return false;
      }
    }
    return true;
  }

  private static String rootMessage(Throwable e) {
    Throwable root = e;
    while (root.getCause() != null && root.getCause() != root) {
      root = root.getCause();
    }
    return root.getMessage() == null ? root.toString() : root.getMessage();
  }
}
