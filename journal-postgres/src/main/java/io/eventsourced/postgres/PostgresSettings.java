package io.eventsourced.postgres;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Objects;
import java.util.Set;
import java.util.function.Supplier;
import java.util.regex.Pattern;

/**
 * The settings of the PostgreSQL journal and snapshot store, parsed once from a plugin's config
 * block (see the module's {@code reference.conf} for every key, its meaning and default).
 *
 * <p>Both plugin blocks inherit the shared block {@code eventsourced.postgres}, so one record
 * type serves both; the journal ignores {@code snapshot-keep-last}, the snapshot store ignores
 * the batching keys. {@link #toString()} masks the password.
 *
 * @param url the pgjdbc URL, e.g. {@code jdbc:postgresql://127.0.0.1:5432/postgres}: the
 *     {@code url} key, or else built from {@code host}, {@code port} and {@code database}
 * @param user the database user
 * @param password the password, {@code null} if none is configured
 * @param sslMode the pgjdbc {@code sslmode}: disable, allow, prefer, require, verify-ca or
 *     verify-full
 * @param schema the schema holding the tables, a lower-case SQL identifier
 * @param journalTable the events table, a lower-case SQL identifier
 * @param snapshotTable the snapshots table, a lower-case SQL identifier
 * @param setup whether to create schema and tables (idempotently) at start
 * @param orderingIndex whether setup creates the {@code (type_name, ordering)} index, which only
 *     by-type queries need
 * @param poolSize connections in the pool (fixed size)
 * @param connectionTimeout longest wait for a connection from the pool, and for connecting
 * @param socketTimeout longest wait for the server's answer on an open connection, zero for none
 * @param maxLifetime longest life of a pooled connection before it is replaced
 * @param closeTimeout longest the journal's close waits for the batches being stored, zero for
 *     not at all
 * @param maxBatchSize most events in one group-commit batch (one transaction)
 * @param maxInFlightBatches most group-commit batches written at the same time
 * @param maxBatchWait longest a batch waits to fill up to the size of the previous one, zero for
 *     never
 * @param replayFetchSize rows fetched per round trip when replaying
 * @param snapshotKeepLast snapshots kept per entity after a save, 0 keeps all
 */
public record PostgresSettings(
    String url,
    String user,
    String password,
    String sslMode,
    String schema,
    String journalTable,
    String snapshotTable,
    boolean setup,
    boolean orderingIndex,
    int poolSize,
    Duration connectionTimeout,
    Duration socketTimeout,
    Duration maxLifetime,
    Duration closeTimeout,
    int maxBatchSize,
    int maxInFlightBatches,
    Duration maxBatchWait,
    int replayFetchSize,
    int snapshotKeepLast) {

  /**
   * Lower-case unquoted SQL identifiers. The pattern admits nothing that could end a statement or
   * a quoted identifier, and PostgreSQL folds unquoted names to lower case, so a name works the
   * same whether a DBA quotes it or not.
   */
  private static final Pattern IDENTIFIER = Pattern.compile("[a-z_][a-z0-9_]*");

  /** PostgreSQL truncates longer identifiers (NAMEDATALEN - 1). */
  static final int MAX_IDENTIFIER_LENGTH = 63;

  /** Suffix of the by-type ordering index name, appended to the journal table name. */
  static final String ORDERING_INDEX_SUFFIX = "_type_ordering_idx";

  private static final String URL_PREFIX = "jdbc:postgresql:";

  /**
   * A host name or IPv4 address, or an IPv6 address (hex digits and dots with at least two
   * colons, so that {@code db:5432} is not taken for one).
   */
  private static final Pattern HOST =
      Pattern.compile("[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?|[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*");
  private static final Pattern PORT = Pattern.compile("\\d{1,5}");

  private static final Set<String> SSL_MODES =
      Set.of("disable", "allow", "prefer", "require", "verify-ca", "verify-full");

  /**
   * Validates every field; a message names the offending key (with its full path from fromConfig).
   *
   * @param url as in the record header
   * @param user as in the record header
   * @param password as in the record header
   * @param sslMode as in the record header
   * @param schema as in the record header
   * @param journalTable as in the record header
   * @param snapshotTable as in the record header
   * @param setup as in the record header
   * @param orderingIndex as in the record header
   * @param poolSize as in the record header
   * @param connectionTimeout as in the record header
   * @param socketTimeout as in the record header
   * @param maxLifetime as in the record header
   * @param closeTimeout as in the record header
   * @param maxBatchSize as in the record header
   * @param maxInFlightBatches as in the record header
   * @param maxBatchWait as in the record header
   * @param replayFetchSize as in the record header
   * @param snapshotKeepLast as in the record header
   */
  public PostgresSettings {
    Objects.requireNonNull(url, "url");
    Objects.requireNonNull(user, "user");
    Objects.requireNonNull(sslMode, "sslMode");
    Objects.requireNonNull(connectionTimeout, "connectionTimeout");
    Objects.requireNonNull(socketTimeout, "socketTimeout");
    Objects.requireNonNull(maxLifetime, "maxLifetime");
    Objects.requireNonNull(closeTimeout, "closeTimeout");
    Objects.requireNonNull(maxBatchWait, "maxBatchWait");
    if (password != null && password.isEmpty()) {
      password = null;
    }
    check(url.startsWith("jdbc:postgresql:"), "url", () -> "must start with jdbc:postgresql:");
    // pgjdbc would take "user:password@host" for a host name, or fail to parse the URL, and
    // log or repeat the whole URL, password included; no such URL reaches it.
    String urlProblem = urlProblem(url);
    check(urlProblem == null, "url", () -> urlProblem + " (url was [" + maskUrl(url) + "])");
    check(!user.isBlank(), "user", () -> "must not be empty");
    check(SSL_MODES.contains(sslMode), "ssl-mode", () -> "must be one of " + SSL_MODES);
    checkIdentifier(schema, "schema");
    checkIdentifier(journalTable, "journal-table");
    checkIdentifier(snapshotTable, "snapshot-table");
    check(
        journalTable.length() + ORDERING_INDEX_SUFFIX.length() <= MAX_IDENTIFIER_LENGTH,
        "journal-table",
        () -> "must be at most " + (MAX_IDENTIFIER_LENGTH - ORDERING_INDEX_SUFFIX.length())
            + " characters, so that its index name fits");
    check(!journalTable.equals(snapshotTable), "snapshot-table", () -> "must differ from journal-table");
    // One connection and dispatcher thread beyond the writers: a writer keeps its thread while
    // writes keep coming, and replays and snapshots must not wait for the writes to stop.
    check(poolSize >= 2, "pool-size", () -> "must be at least 2");
    check(!connectionTimeout.isNegative() && connectionTimeout.toMillis() >= 250,
        "connection-timeout", () -> "must be at least 250ms");
    // pgjdbc counts whole seconds and reads 0 as "wait forever": a sub-second value would
    // silently disable the timeout.
    check(socketTimeout.isZero() || socketTimeout.toMillis() >= 1000,
        "socket-timeout", () -> "must be 0s (no timeout) or at least 1s");
    check(maxLifetime.toMillis() >= 30_000, "max-lifetime", () -> "must be at least 30s");
    check(!closeTimeout.isNegative() && closeTimeout.toMillis() <= 60_000,
        "close-timeout", () -> "must be between 0s and 60s");
    check(maxBatchSize >= 1, "max-batch-size", () -> "must be at least 1");
    check(maxInFlightBatches >= 1 && maxInFlightBatches < poolSize,
        "max-in-flight-batches",
        () -> "must be between 1 and pool-size - 1 [" + (poolSize - 1) + "], so that replays and snapshots"
            + " keep a connection and a dispatcher thread while writers run");
    check(!maxBatchWait.isNegative() && maxBatchWait.toMillis() <= 1000,
        "max-batch-wait", () -> "must be between 0s and 1s");
    check(replayFetchSize >= 1, "replay-fetch-size", () -> "must be at least 1");
    check(snapshotKeepLast >= 0, "snapshot-keep-last", () -> "must not be negative");
  }

  /**
   * Parses a plugin's config block.
   *
   * @param config the plugin block (the shared {@code eventsourced.postgres} keys merged in)
   * @param path the block's full config path, used in error messages
   * @return the settings
   * @throws IllegalArgumentException naming the full key path if a key is missing or invalid
   */
  public static PostgresSettings fromConfig(Config config, String path) {
    Objects.requireNonNull(config, "config");
    try {
      return new PostgresSettings(
          config.hasPath("url") ? read(config, path, "url", () -> config.getString("url")) : url(config, path),
          read(config, path, "user", () -> config.getString("user")),
          config.hasPath("password") ? read(config, path, "password", () -> config.getString("password")) : null,
          read(config, path, "ssl-mode", () -> config.getString("ssl-mode")),
          read(config, path, "schema", () -> config.getString("schema")),
          read(config, path, "journal-table", () -> config.getString("journal-table")),
          read(config, path, "snapshot-table", () -> config.getString("snapshot-table")),
          read(config, path, "setup", () -> config.getBoolean("setup")),
          read(config, path, "ordering-index", () -> config.getBoolean("ordering-index")),
          integer(config, path, "pool-size"),
          read(config, path, "connection-timeout", () -> config.getDuration("connection-timeout")),
          read(config, path, "socket-timeout", () -> config.getDuration("socket-timeout")),
          read(config, path, "max-lifetime", () -> config.getDuration("max-lifetime")),
          read(config, path, "close-timeout", () -> config.getDuration("close-timeout")),
          integer(config, path, "max-batch-size"),
          integer(config, path, "max-in-flight-batches"),
          read(config, path, "max-batch-wait", () -> config.getDuration("max-batch-wait")),
          integer(config, path, "replay-fetch-size"),
          integer(config, path, "snapshot-keep-last"));
    } catch (InvalidSetting e) {
      throw new IllegalArgumentException("[" + path + "." + e.key + "] " + e.problem);
    }
  }

  /**
   * The URL with any password parameter masked, safe for messages and logs.
   *
   * @return the URL
   */
  public String safeUrl() {
    return maskUrl(url);
  }

  /**
   * A URL with any password parameter masked (up to the next {@code &}, where pgjdbc ends a
   * parameter) and, if it holds an {@code @}, everything before the last one: that is where a
   * password written before the host ends, whatever characters it holds. An {@code @} in a
   * parameter value hides more than needed, which costs only a less readable log line.
   */
  static String maskUrl(String url) {
    String masked = url.replaceAll("(?i)(password=)[^&]*", "$1***");
    int at = masked.lastIndexOf('@');
    if (at < 0 || !masked.startsWith(URL_PREFIX)) {
      return masked;
    }
    String slashes = masked.startsWith(URL_PREFIX + "//") ? "//" : "";
    return URL_PREFIX + slashes + "***" + masked.substring(at);
  }

  /**
   * What pgjdbc would not read in a {@code jdbc:postgresql:} URL, or null. It refuses such a URL
   * (or takes a password for a host name) and logs or repeats it whole, so these are checked
   * first, following pgjdbc's own parsing: no {@code @} before the parameters nor in a parameter
   * name (where {@code user:password@host} ends up), and after {@code //} the hosts, one {@code
   * /}, and the database.
   */
  private static String urlProblem(String url) {
    int query = url.indexOf('?');
    String server = (query >= 0 ? url.substring(0, query) : url).substring(URL_PREFIX.length());
    boolean userInfo = server.indexOf('@') >= 0;
    if (query >= 0) {
      for (String parameter : url.substring(query + 1).split("&")) {
        int eq = parameter.indexOf('=');
        userInfo |= (eq >= 0 ? parameter.substring(0, eq) : parameter).indexOf('@') >= 0;
      }
    }
    if (userInfo) {
      return "must not hold a user or password before the host (user:password@host), which pgjdbc"
          + " does not read; set user and password instead (write an @ in a database name as %40)";
    }
    if (!server.startsWith("//") || server.equals("//") || server.equals("///")) {
      return null; // jdbc:postgresql:database, or the local server's defaults
    }
    String rest = server.substring(2);
    int slash = rest.indexOf('/');
    if (slash < 0) {
      return "must have a / after the hosts and ports (jdbc:postgresql://host:port/database)";
    }
    if (rest.indexOf('/', slash + 1) >= 0) {
      return "must have a single / between the hosts and the database (write a / in a database"
          + " name as %2F)";
    }
    for (String address : rest.substring(0, slash).split(",", -1)) {
      int colon = address.lastIndexOf(':');
      if (colon >= 0 && address.lastIndexOf(']') < colon) {
        String port = address.substring(colon + 1);
        if (!PORT.matcher(port).matches() || Integer.parseInt(port) < 1 || Integer.parseInt(port) > 65535) {
          return "must give each host's port as a number from 1 to 65535 (host:port, hosts"
              + " separated by commas)";
        }
      }
    }
    return null;
  }

  @Override
  public String toString() {
    return "PostgresSettings[url="
        + safeUrl()
        + ", user="
        + user
        + ", password="
        + (password == null ? "<none>" : "***")
        + ", sslMode="
        + sslMode
        + ", schema="
        + schema
        + ", journalTable="
        + journalTable
        + ", snapshotTable="
        + snapshotTable
        + ", setup="
        + setup
        + ", orderingIndex="
        + orderingIndex
        + ", poolSize="
        + poolSize
        + ", connectionTimeout="
        + connectionTimeout
        + ", socketTimeout="
        + socketTimeout
        + ", maxLifetime="
        + maxLifetime
        + ", closeTimeout="
        + closeTimeout
        + ", maxBatchSize="
        + maxBatchSize
        + ", maxInFlightBatches="
        + maxInFlightBatches
        + ", maxBatchWait="
        + maxBatchWait
        + ", replayFetchSize="
        + replayFetchSize
        + ", snapshotKeepLast="
        + snapshotKeepLast
        + "]";
  }

  private static <T> T read(Config config, String path, String key, Supplier<T> getter) {
    try {
      return getter.get();
    } catch (ConfigException.Missing e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] is missing", e);
    } catch (ConfigException e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] is invalid: " + e.getMessage(), e);
    }
  }

  /** The URL of {@code host}, {@code port} and {@code database}, each checked on its own. */
  private static String url(Config config, String path) {
    String host = read(config, path, "host", () -> config.getString("host"));
    if (!HOST.matcher(host).matches()) {
      throw new IllegalArgumentException(
          "[" + path + ".host] must be a host name or an IP address (IPv6 without brackets; the port goes"
              + " in port, user and password in their own keys)");
    }
    int port = integer(config, path, "port");
    if (port < 1 || port > 65535) {
      throw new IllegalArgumentException("[" + path + ".port] must be from 1 to 65535, was [" + port + "]");
    }
    String database = read(config, path, "database", () -> config.getString("database"));
    if (database.isEmpty()) {
      throw new IllegalArgumentException("[" + path + ".database] must not be empty");
    }
    // pgjdbc URL-decodes the database name, so any character survives the trip.
    return URL_PREFIX + "//" + (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port + "/"
        + URLEncoder.encode(database, StandardCharsets.UTF_8);
  }

  /** A whole number; {@code getInt} would truncate 2.5 to 2 without a word. */
  private static int integer(Config config, String path, String key) {
    double value = read(config, path, key, () -> config.getNumber(key).doubleValue());
    if (value != Math.rint(value)) {
      throw new IllegalArgumentException(
          "[" + path + "." + key + "] must be a whole number, was [" + config.getValue(key).unwrapped() + "]");
    }
    return read(config, path, key, () -> config.getInt(key));
  }

  private static void checkIdentifier(String value, String key) {
    Objects.requireNonNull(value, key);
    check(
        IDENTIFIER.matcher(value).matches() && value.length() <= MAX_IDENTIFIER_LENGTH,
        key,
        () -> "must be a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most "
            + MAX_IDENTIFIER_LENGTH + " characters), was [" + value + "]");
  }

  private static void check(boolean ok, String key, Supplier<String> problem) {
    if (!ok) {
      throw new InvalidSetting(key, problem.get());
    }
  }

  /** A field failed validation; {@link #fromConfig} replaces the key by its full config path. */
  private static final class InvalidSetting extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;
    private final String key;
    private final String problem;

    InvalidSetting(String key, String problem) {
      super("[" + key + "] " + problem);
      this.key = key;
      this.problem = problem;
    }
  }
}
