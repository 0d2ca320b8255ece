package io.eventsourced;

import io.eventsourced.internal.EventsourcedRuntime;
import io.eventsourced.internal.PluginRegistry;
import io.eventsourced.journal.Journal;
import io.eventsourced.snapshot.SnapshotStore;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Extension;
import org.apache.pekko.actor.typed.ExtensionId;

/**
 * The journals and snapshot stores of one actor system: each plugin is created on first use from
 * its config block, once per actor system, shared by all entities, and closed on coordinated
 * shutdown.
 *
 * <p>A plugin id is the config path of its block, e.g. {@code "eventsourced.journal.in-memory"};
 * the defaults are named by {@code eventsourced.journal.plugin} and {@code
 * eventsourced.snapshot-store.plugin}.
 */
public final class Persistence implements Extension {

  private static final ExtensionId<Persistence> ID =
      new ExtensionId<>() {
        @Override
        public Persistence createExtension(ActorSystem<?> system) {
          return new Persistence(system);
        }
      };

  private final PluginRegistry registry;

  private Persistence(ActorSystem<?> system) {
    this.registry = EventsourcedRuntime.get(system).plugins();
  }

  /**
   * The extension of an actor system.
   *
   * @param system the actor system
   * @return its persistence extension
   */
  public static Persistence get(ActorSystem<?> system) {
    return ID.apply(system);
  }

  /**
   * The default journal, named by {@code eventsourced.journal.plugin}.
   *
   * @return the journal
   * @throws IllegalArgumentException if the plugin's configuration is missing or invalid
   */
  public Journal journal() {
    return registry.journal("");
  }

  /**
   * The journal configured at a config path.
   *
   * @param pluginId the config path of the plugin block, empty for the default
   * @return the journal
   * @throws IllegalArgumentException if the plugin's configuration is missing or invalid
   */
  public Journal journal(String pluginId) {
    return registry.journal(pluginId);
  }

  /**
   * The default snapshot store, named by {@code eventsourced.snapshot-store.plugin}.
   *
   * @return the snapshot store
   * @throws IllegalArgumentException if the plugin's configuration is missing or invalid
   */
  public SnapshotStore snapshotStore() {
    return registry.snapshotStore("");
  }

  /**
   * The snapshot store configured at a config path.
   *
   * @param pluginId the config path of the plugin block, empty for the default
   * @return the snapshot store
   * @throws IllegalArgumentException if the plugin's configuration is missing or invalid
   */
  public SnapshotStore snapshotStore(String pluginId) {
    return registry.snapshotStore(pluginId);
  }
}
