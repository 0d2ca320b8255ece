package io.eventsourced;

import com.typesafe.config.Config;
import java.util.concurrent.Executor;
import org.apache.pekko.actor.typed.ActorSystem;

/**
 * What a journal or snapshot store plugin receives when it is created: one instance per actor
 * system and plugin config path. A plugin class has a public constructor taking this single
 * argument.
 *
 * @param system the actor system the plugin serves
 * @param config the plugin's own config block (the object at {@code configPath})
 * @param configPath the full config path of the block, for error messages naming keys
 * @param dispatcher the executor named by the block's {@code plugin-dispatcher}; run blocking I/O
 *     here, never on Pekko's default dispatcher
 */
public record PluginContext(
    ActorSystem<?> system, Config config, String configPath, Executor dispatcher) {

  /**
   * The full path of a key in this plugin's block, for error messages.
   *
   * @param key a key relative to the plugin block
   * @return {@code configPath + "." + key}
   */
  public String keyPath(String key) {
    return configPath + "." + key;
  }
}
