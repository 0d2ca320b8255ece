package io.eventsourced.nats;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigValueType;
import io.nats.client.api.StorageType;
import java.time.Duration;

/**
 * The keys of the {@code eventsourced.journal.nats} block besides {@code class}, {@code
 * plugin-dispatcher} and {@code connection}.
 */
record JournalSettings(
    NatsSettings connection,
    String stream,
    String subjectPrefix,
    StorageType storage,
    int replicas,
    long maxBytes,
    Duration maxAge,
    Duration duplicateWindow,
    boolean setup,
    int publishRetries,
    Duration retryBackoff,
    int positionCacheSize,
    int sharedScanMinReplays,
    Duration sharedScanGatherWindow) {

  /** Longest gather window accepted: it delays every grouped replay by that much. */
  static final Duration MAX_GATHER_WINDOW = Duration.ofSeconds(1);

  static JournalSettings fromConfig(Config config, String path) {
    NatsSettings connection = NatsSettings.fromConfig(config.getConfig("connection"), path + ".connection");
    String stream = NatsSettings.nonEmpty(config, path, "stream.name");
    if (!stream.matches("[A-Za-z0-9_-]+")) {
      throw new IllegalArgumentException(
          "[" + path + ".stream.name] may only use letters, digits, - and _, was [" + stream + "]");
    }
    String prefix = NatsSettings.nonEmpty(config, path, "stream.subject-prefix");
    if (!prefix.matches("[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*")) {
      throw new IllegalArgumentException(
          "["
              + path
              + ".stream.subject-prefix] must be subject tokens of letters, digits, - and _ joined by"
              + " dots, was ["
              + prefix
              + "]");
    }
    int replicas = NatsSettings.integer(config, path, "stream.replicas");
    if (replicas < 1 || replicas > 5) {
      throw new IllegalArgumentException(
          "[" + path + ".stream.replicas] must be between 1 and 5, was [" + replicas + "]");
    }
    Duration window = NatsSettings.positive(config, path, "stream.duplicate-window");
    int retries = NatsSettings.integer(config, path, "publish-retries");
    if (retries < 0) {
      throw new IllegalArgumentException("[" + path + ".publish-retries] must be >= 0, was [" + retries + "]");
    }
    int cache = NatsSettings.integer(config, path, "position-cache-size");
    if (cache < 0) {
      throw new IllegalArgumentException(
          "[" + path + ".position-cache-size] must be >= 0, was [" + cache + "]");
    }
    int minReplays = minReplays(config, path, "shared-scan.min-replays");
    Duration gatherWindow = NatsSettings.duration(config, path, "shared-scan.gather-window");
    if (gatherWindow.compareTo(MAX_GATHER_WINDOW) > 0) {
      throw new IllegalArgumentException(
          "["
              + path
              + ".shared-scan.gather-window] must be at most 1s (it delays every grouped replay), was ["
              + config.getString("shared-scan.gather-window")
              + "]");
    }
    Duration maxAge = NatsSettings.duration(config, path, "stream.max-age");
    if (!maxAge.isZero() && maxAge.compareTo(window) < 0) {
      // JetStream refuses such a stream, with a message that names no key.
      throw new IllegalArgumentException(
          "[" + path + ".stream.max-age] must be 0s (keep forever) or at least [" + path
              + ".stream.duplicate-window] (" + window + "), was [" + config.getString("stream.max-age") + "]");
    }
    return new JournalSettings(
        connection,
        stream,
        prefix,
        storage(config, path, "stream.storage"),
        replicas,
        NatsSettings.bytes(config, path, "stream.max-bytes"),
        maxAge,
        window,
        NatsSettings.bool(config, path, "setup"),
        retries,
        NatsSettings.duration(config, path, "retry-backoff"),
        cache,
        minReplays,
        gatherWindow);
  }

  /** {@code off} or 0 disable the shared scan; otherwise a group needs at least 2 replays. */
  static int minReplays(Config config, String path, String key) {
    String what = "[" + path + "." + key + "] must be off (or 0) or a number of replays >= 2";
    int value;
    try {
      if (config.hasPath(key)
          && config.getValue(key).valueType() != ConfigValueType.NUMBER
          && !config.getString(key).trim().matches("-?[0-9]+")) {
        if (!config.getBoolean(key)) {
          return 0;
        }
        throw new IllegalArgumentException(what + ", was [" + config.getString(key) + "]");
      }
      value = NatsSettings.integer(config, path, key);
    } catch (ConfigException e) {
      throw new IllegalArgumentException(what + ", was [" + config.getValue(key).unwrapped() + "]", e);
    }
    if (value != 0 && value < 2) {
      throw new IllegalArgumentException(what + ", was [" + value + "]");
    }
    return value;
  }

  static StorageType storage(Config config, String path, String key) {
    String value = NatsSettings.string(config, path, key);
    return switch (value) {
      case "file" -> StorageType.File;
      case "memory" -> StorageType.Memory;
      default -> throw new IllegalArgumentException(
          "[" + path + "." + key + "] must be file or memory, was [" + value + "]");
    };
  }
}
