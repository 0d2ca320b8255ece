package io.eventsourced.internal;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import java.time.Duration;

/**
 * The {@code eventsourced.entity} block, parsed once per actor system.
 *
 * @param stashCapacity most commands held while recovering or persisting
 * @param askTimeout how long {@code EntityRef.ask} waits for a reply
 */
public record EntitySettings(int stashCapacity, Duration askTimeout) {

  static final String PATH = "eventsourced.entity";

  /**
   * Parses the settings.
   *
   * @param root the actor system's config
   * @return the settings
   * @throws IllegalArgumentException naming the key of a missing or invalid value
   */
  public static EntitySettings fromConfig(Config root) {
    String key = PATH + ".stash-capacity";
    int stash;
    Duration timeout;
    try {
      double number = root.getNumber(key).doubleValue();
      if (number != Math.rint(number)) {
        // getInt would truncate 1.5 to 1 without a word.
        throw new IllegalArgumentException(
            "[" + key + "] must be a whole number, was [" + root.getValue(key).unwrapped() + "]");
      }
      stash = root.getInt(key);
      key = PATH + ".ask-timeout";
      timeout = root.getDuration(key);
    } catch (ConfigException e) {
      throw new IllegalArgumentException("invalid [" + key + "]: " + e.getMessage(), e);
    }
    if (stash < 1) {
      throw new IllegalArgumentException("[" + PATH + ".stash-capacity] must be >= 1, was [" + stash + "]");
    }
    if (timeout.isNegative() || timeout.isZero()) {
      throw new IllegalArgumentException("[" + PATH + ".ask-timeout] must be > 0, was [" + timeout + "]");
    }
    return new EntitySettings(stash, timeout);
  }
}
