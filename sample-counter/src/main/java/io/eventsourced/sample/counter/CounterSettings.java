package io.eventsourced.sample.counter;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;

/**
 * The {@code counter} block of the sample's {@code application.conf}.
 *
 * @param journal the journal name: {@code in-memory}, {@code postgres} or {@code nats}
 * @param entities how many entities to spawn
 * @param eventsPerEntity how many commands each entity's client sends
 * @param snapshotEvery snapshot every this many events; 0 for never
 */
public record CounterSettings(String journal, int entities, int eventsPerEntity, long snapshotEvery) {

  /**
   * Validates the values.
   *
   * @param journal as in the record header
   * @param entities as in the record header
   * @param eventsPerEntity as in the record header
   * @param snapshotEvery as in the record header
   */
  public CounterSettings {
    if (entities < 1) {
      throw new IllegalArgumentException("[counter.entities] (COUNTER_ENTITIES) must be >= 1, was [" + entities + "]");
    }
    if (eventsPerEntity < 1) {
      throw new IllegalArgumentException("[counter.events-per-entity] (COUNTER_EVENTS) must be >= 1, was [" + eventsPerEntity + "]");
    }
    if (snapshotEvery < 0) {
      throw new IllegalArgumentException("[counter.snapshot-every] (COUNTER_SNAPSHOT_EVERY) must be >= 0, was [" + snapshotEvery + "]");
    }
  }

  /**
   * Reads the settings.
   *
   * @param config the application config
   * @return the settings
   * @throws IllegalArgumentException naming the key of an invalid value
   */
  public static CounterSettings fromConfig(Config config) {
    String key = "counter.journal";
    try {
      String journal = config.getString(key);
      if (!config.hasPath("eventsourced.journal." + journal)) {
        throw new IllegalArgumentException(
            "[counter.journal] (EVENTSOURCED_JOURNAL) is [" + journal + "], but no journal is configured at [eventsourced.journal." + journal + "]; use in-memory, postgres or nats");
      }
      key = "counter.entities";
      int entities = (int) whole(config, key, "COUNTER_ENTITIES", 1, Integer.MAX_VALUE);
      key = "counter.events-per-entity";
      int events = (int) whole(config, key, "COUNTER_EVENTS", 1, Integer.MAX_VALUE);
      key = "counter.snapshot-every";
      long snapshotEvery = whole(config, key, "COUNTER_SNAPSHOT_EVERY", 0, Long.MAX_VALUE);
      return new CounterSettings(journal, entities, events, snapshotEvery);
    } catch (ConfigException e) {
      throw new IllegalArgumentException("invalid [" + key + "]: " + e.getMessage(), e);
    }
  }

  /**
   * A whole number from {@code min} to {@code max}; {@code getInt} would truncate 1.5 (also from
   * a variable) to 1 without a word, and {@code getLong} would clamp 1e19.
   */
  private static long whole(Config config, String key, String variable, long min, long max) {
    double value = config.getNumber(key).doubleValue();
    if (value != Math.rint(value) || value < min || value > max) {
      throw new IllegalArgumentException(
          "[" + key + "] (" + variable + ") must be a whole number from " + min + " to " + max + ", was ["
              + config.getValue(key).unwrapped() + "]");
    }
    return config.getLong(key);
  }
}
