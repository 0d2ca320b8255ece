package io.eventsourced.nats;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigValueType;
import io.nats.client.AuthHandler;
import io.nats.client.Nats;
import io.nats.client.Options;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * How to reach the NATS servers: the {@code connection} block shared by the NATS journal and the
 * NATS snapshot store (by default both copy {@code eventsourced.nats.connection}). Plugins whose
 * settings are equal share one connection per actor system.
 *
 * <p>Parsed once from HOCON with {@link #fromConfig(Config, String)}; {@link #toString()} masks
 * the secrets (password, token, nkey seed, trust store password).
 *
 * @param servers server URLs, at least one, e.g. {@code nats://127.0.0.1:4222}
 * @param connectionName the client name the servers show in monitoring
 * @param user user name for user/password authentication, empty for none
 * @param password password for user/password authentication, empty for none
 * @param token token for token authentication, empty for none
 * @param nkeySeed NKey seed (starts with {@code SU}) for NKey authentication, empty for none
 * @param credsFile path of a {@code .creds} file (JWT plus NKey seed), empty for none
 * @param tls whether to connect with TLS
 * @param trustStore path of a trust store for TLS, empty for the JVM default
 * @param trustStorePassword password of the trust store, empty for none
 * @param connectTimeout how long one connection attempt may take
 * @param requestTimeout how long a JetStream management request (stream info, get message,
 *     consumer create) may take
 * @param reconnectWait pause between reconnect attempts to the same server
 * @param maxReconnects reconnect attempts before the connection is closed for good, -1 for
 *     unlimited
 */
public record NatsSettings(
    List<String> servers,
    String connectionName,
    String user,
    String password,
    String token,
    String nkeySeed,
    String credsFile,
    boolean tls,
    String trustStore,
    String trustStorePassword,
    Duration connectTimeout,
    Duration requestTimeout,
    Duration reconnectWait,
    int maxReconnects) {

  /**
   * Validates and copies the fields.
   *
   * @param servers see the record description
   * @param connectionName see the record description
   * @param user see the record description
   * @param password see the record description
   * @param token see the record description
   * @param nkeySeed see the record description
   * @param credsFile see the record description
   * @param tls see the record description
   * @param trustStore see the record description
   * @param trustStorePassword see the record description
   * @param connectTimeout see the record description
   * @param requestTimeout see the record description
   * @param reconnectWait see the record description
   * @param maxReconnects see the record description
   */
  public NatsSettings {
    servers = List.copyOf(servers);
    if (servers.isEmpty()) {
      throw new IllegalArgumentException("at least one NATS server is needed");
    }
    Objects.requireNonNull(connectionName, "connectionName");
    Objects.requireNonNull(user, "user");
    Objects.requireNonNull(password, "password");
    Objects.requireNonNull(token, "token");
    Objects.requireNonNull(nkeySeed, "nkeySeed");
    Objects.requireNonNull(credsFile, "credsFile");
    Objects.requireNonNull(trustStore, "trustStore");
    Objects.requireNonNull(trustStorePassword, "trustStorePassword");
    Objects.requireNonNull(connectTimeout, "connectTimeout");
    Objects.requireNonNull(requestTimeout, "requestTimeout");
    Objects.requireNonNull(reconnectWait, "reconnectWait");
  }

  /**
   * Parses a {@code connection} block.
   *
   * @param config the block, e.g. {@code eventsourced.journal.nats.connection}
   * @param path the block's full config path, for error messages
   * @return the settings
   * @throws IllegalArgumentException naming the full key path of a missing or bad value
   */
  public static NatsSettings fromConfig(Config config, String path) {
    List<String> servers = servers(config, path);
    String user = string(config, path, "user");
    String password = string(config, path, "password");
    String token = string(config, path, "token");
    String nkeySeed = string(config, path, "nkey-seed");
    String credsFile = string(config, path, "creds-file");
    int methods =
        (user.isEmpty() ? 0 : 1)
            + (token.isEmpty() ? 0 : 1)
            + (nkeySeed.isEmpty() ? 0 : 1)
            + (credsFile.isEmpty() ? 0 : 1);
    if (methods > 1) {
      throw new IllegalArgumentException(
          "["
              + path
              + "] sets more than one of user, token, nkey-seed and creds-file; choose one way to"
              + " authenticate");
    }
    if (user.isEmpty() && !password.isEmpty()) {
      throw new IllegalArgumentException("[" + path + ".password] is set but [" + path + ".user] is empty");
    }
    if (!nkeySeed.isEmpty() && !nkeySeed.startsWith("SU")) {
      throw new IllegalArgumentException(
          "[" + path + ".nkey-seed] must be a user NKey seed (starting with SU)");
    }
    int maxReconnects = integer(config, path, "max-reconnects");
    if (maxReconnects < -1) {
      throw new IllegalArgumentException(
          "[" + path + ".max-reconnects] must be -1 (unlimited) or >= 0, was [" + maxReconnects + "]");
    }
    return new NatsSettings(
        servers,
        string(config, path, "connection-name"),
        user,
        password,
        token,
        nkeySeed,
        credsFile,
        bool(config, path, "tls.enabled"),
        string(config, path, "tls.trust-store"),
        string(config, path, "tls.trust-store-password"),
        positive(config, path, "connect-timeout"),
        positive(config, path, "request-timeout"),
        positive(config, path, "reconnect-wait"),
        maxReconnects);
  }

  /**
   * The servers as one string for messages and logs; URLs carry no secrets here because
   * credentials are separate keys.
   *
   * @return the server URLs, comma separated
   */
  public String serversText() {
    return String.join(",", servers);
  }

  /**
   * A jnats options builder filled from these settings; the caller adds listeners.
   *
   * @return the builder
   */
  Options.Builder optionsBuilder() {
    Options.Builder builder =
        Options.builder()
            .servers(servers.toArray(String[]::new))
            .connectionName(connectionName)
            .connectionTimeout(connectTimeout)
            .reconnectWait(reconnectWait)
            .maxReconnects(maxReconnects)
            // Publishes happen on entity threads: let jnats' writer thread flush the socket
            // instead of every publish taking the writer's lock to flush it itself.
            .dontForceFlushOnRequest();
    if (!user.isEmpty()) {
      builder.userInfo(user.toCharArray(), password.toCharArray());
    } else if (!token.isEmpty()) {
      builder.token(token.toCharArray());
    } else if (!nkeySeed.isEmpty()) {
      AuthHandler handler = Nats.staticCredentials(null, nkeySeed.toCharArray());
      builder.authHandler(handler);
    } else if (!credsFile.isEmpty()) {
      builder.authHandler(Nats.credentials(credsFile));
    }
    if (tls) {
      if (trustStore.isEmpty()) {
        try {
          builder.secure();
        } catch (java.security.NoSuchAlgorithmException e) {
          throw new IllegalArgumentException("TLS is not available in this JVM: " + e.getMessage(), e);
        }
      } else {
        builder.truststorePath(trustStore);
        if (!trustStorePassword.isEmpty()) {
          builder.truststorePassword(trustStorePassword.toCharArray());
        }
      }
    }
    return builder;
  }

  @Override
  public String toString() {
    return "NatsSettings[servers="
        + servers
        + ", connectionName="
        + connectionName
        + ", user="
        + user
        + ", password="
        + mask(password)
        + ", token="
        + mask(token)
        + ", nkeySeed="
        + mask(nkeySeed)
        + ", credsFile="
        + credsFile
        + ", tls="
        + tls
        + ", trustStore="
        + trustStore
        + ", trustStorePassword="
        + mask(trustStorePassword)
        + ", connectTimeout="
        + connectTimeout
        + ", requestTimeout="
        + requestTimeout
        + ", reconnectWait="
        + reconnectWait
        + ", maxReconnects="
        + maxReconnects
        + "]";
  }

  private static String mask(String secret) {
    return secret.isEmpty() ? "" : "****";
  }

  private static List<String> servers(Config config, String path) {
    String key = "servers";
    List<String> raw = new ArrayList<>();
    try {
      if (!config.hasPath(key)) {
        throw new IllegalArgumentException("[" + path + "." + key + "] is missing");
      }
      if (config.getValue(key).valueType() == ConfigValueType.LIST) {
        raw.addAll(config.getStringList(key));
      } else {
        // An environment variable arrives as one string: "nats://a:4222,nats://b:4222".
        for (String part : config.getString(key).split(",")) {
          raw.add(part);
        }
      }
    } catch (ConfigException e) {
      throw new IllegalArgumentException(
          "[" + path + "." + key + "] must be a list of server URLs or a comma-separated string", e);
    }
    List<String> servers = new ArrayList<>();
    for (String server : raw) {
      String trimmed = server.trim();
      if (!trimmed.isEmpty()) {
        if (trimmed.contains("@")) {
          throw new IllegalArgumentException(
              "["
                  + path
                  + "."
                  + key
                  + "] must not carry credentials in a URL; use the user/password, token,"
                  + " nkey-seed or creds-file keys");
        }
        servers.add(trimmed);
      }
    }
    if (servers.isEmpty()) {
      throw new IllegalArgumentException("[" + path + "." + key + "] must name at least one server");
    }
    return servers;
  }

  static String string(Config config, String path, String key) {
    try {
      return config.getString(key).trim();
    } catch (ConfigException.Missing e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] is missing", e);
    } catch (ConfigException e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] must be a string", e);
    }
  }

  static String nonEmpty(Config config, String path, String key) {
    String value = string(config, path, key);
    if (value.isEmpty()) {
      throw new IllegalArgumentException("[" + path + "." + key + "] must not be empty");
    }
    return value;
  }

  static boolean bool(Config config, String path, String key) {
    try {
      return config.getBoolean(key);
    } catch (ConfigException.Missing e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] is missing", e);
    } catch (ConfigException e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] must be on or off", e);
    }
  }

  static int integer(Config config, String path, String key) {
    try {
      // getInt would truncate 1.7 to 1 without a word.
      double value = config.getNumber(key).doubleValue();
      if (value != Math.rint(value)) {
        throw new IllegalArgumentException(
            "[" + path + "." + key + "] must be a whole number, was [" + config.getValue(key).unwrapped() + "]");
      }
      return config.getInt(key);
    } catch (ConfigException.Missing e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] is missing", e);
    } catch (ConfigException e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] must be an integer", e);
    }
  }

  static long bytes(Config config, String path, String key) {
    String what = "[" + path + "." + key + "] must be a size such as 10GiB, or -1 for unlimited";
    try {
      long value;
      if (config.getValue(key).valueType() == ConfigValueType.NUMBER) {
        double number = ((Number) config.getValue(key).unwrapped()).doubleValue();
        if (number != Math.rint(number)) {
          throw new IllegalArgumentException(what + " (whole bytes), was [" + config.getValue(key).unwrapped() + "]");
        }
        value = config.getLong(key);
      } else {
        value = config.getBytes(key);
      }
      if (value != -1 && value <= 0) {
        // JetStream refuses 0 and other negative limits, with a message that names no key.
        throw new IllegalArgumentException(what + ", was [" + config.getValue(key).unwrapped() + "]");
      }
      return value;
    } catch (ConfigException.Missing e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] is missing", e);
    } catch (ConfigException e) {
      throw new IllegalArgumentException(what, e);
    }
  }

  static Duration duration(Config config, String path, String key) {
    try {
      Duration value = config.getDuration(key);
      if (value.isNegative()) {
        throw new IllegalArgumentException("[" + path + "." + key + "] must not be negative");
      }
      return value;
    } catch (ConfigException.Missing e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] is missing", e);
    } catch (ConfigException e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] must be a duration such as 5s", e);
    }
  }

  static Duration positive(Config config, String path, String key) {
    Duration value = duration(config, path, key);
    if (value.isZero()) {
      throw new IllegalArgumentException("[" + path + "." + key + "] must be greater than 0");
    }
    return value;
  }
}
