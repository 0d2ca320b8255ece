package io.eventsourced.nats;

import com.typesafe.config.Config;
import io.nats.client.api.StorageType;

/**
 * The keys of the {@code eventsourced.snapshot-store.nats} block besides {@code class}, {@code
 * plugin-dispatcher} and {@code connection}.
 */
record SnapshotSettings(
    NatsSettings connection,
    String bucket,
    StorageType storage,
    int replicas,
    long maxBytes,
    boolean setup) {

  static SnapshotSettings fromConfig(Config config, String path) {
    NatsSettings connection = NatsSettings.fromConfig(config.getConfig("connection"), path + ".connection");
    String bucket = NatsSettings.nonEmpty(config, path, "bucket.name");
    if (!bucket.matches("[A-Za-z0-9_-]+")) {
      throw new IllegalArgumentException(
          "[" + path + ".bucket.name] may only use letters, digits, - and _, was [" + bucket + "]");
    }
    int replicas = NatsSettings.integer(config, path, "bucket.replicas");
    if (replicas < 1 || replicas > 5) {
      throw new IllegalArgumentException(
          "[" + path + ".bucket.replicas] must be between 1 and 5, was [" + replicas + "]");
    }
    return new SnapshotSettings(
        connection,
        bucket,
        JournalSettings.storage(config, path, "bucket.storage"),
        replicas,
        NatsSettings.bytes(config, path, "bucket.max-bytes"),
        NatsSettings.bool(config, path, "setup"));
  }
}
