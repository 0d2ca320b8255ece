package io.eventsourced.internal;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import io.eventsourced.PluginContext;
import io.eventsourced.journal.Journal;
import io.eventsourced.snapshot.SnapshotStore;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import org.apache.pekko.Done;
import org.apache.pekko.actor.CoordinatedShutdown;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.DispatcherSelector;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Creates plugins from their config blocks, once per actor system, and closes them on shutdown. */
public final class PluginRegistry {
  private static final Logger log = LoggerFactory.getLogger(PluginRegistry.class);
  static final String JOURNAL_DEFAULT_KEY = "eventsourced.journal.plugin";
  static final String SNAPSHOT_DEFAULT_KEY = "eventsourced.snapshot-store.plugin";

  private final ActorSystem<?> system;
  private final Map<String, AutoCloseable> plugins = new ConcurrentHashMap<>();

  /**
   * Creates the registry and registers closing of its plugins with coordinated shutdown.
   *
   * @param system the actor system
   */
  public PluginRegistry(ActorSystem<?> system) {
    this.system = system;
    CoordinatedShutdown.get(system)
        .addTask(
            CoordinatedShutdown.PhaseBeforeActorSystemTerminate(),
            "eventsourced-close-plugins",
            () -> {
              closeAll();
              return CompletableFuture.completedFuture(Done.getInstance());
            });
  }

  /**
   * The journal at a config path.
   *
   * @param pluginId the config path, empty for the default
   * @return the journal
   */
  public Journal journal(String pluginId) {
    return load(resolve(pluginId, JOURNAL_DEFAULT_KEY), Journal.class);
  }

  /**
   * The snapshot store at a config path.
   *
   * @param pluginId the config path, empty for the default
   * @return the snapshot store
   */
  public SnapshotStore snapshotStore(String pluginId) {
    return load(resolve(pluginId, SNAPSHOT_DEFAULT_KEY), SnapshotStore.class);
  }

  private String resolve(String pluginId, String defaultKey) {
    if (pluginId != null && !pluginId.isEmpty()) {
      return pluginId;
    }
    Config config = system.settings().config();
    if (!config.hasPath(defaultKey) || config.getString(defaultKey).isBlank()) {
      throw new IllegalArgumentException("no default plugin configured at [" + defaultKey + "]");
    }
    return config.getString(defaultKey);
  }

  private <T> T load(String path, Class<T> type) {
    AutoCloseable plugin = plugins.get(path);
    if (plugin == null) {
      // Plugins are created rarely; a lock keeps two callers from creating two pools.
      synchronized (plugins) {
        plugin = plugins.get(path);
        if (plugin == null) {
          plugin = create(path, type);
          plugins.put(path, plugin);
        }
      }
    }
    if (!type.isInstance(plugin)) {
      throw new IllegalArgumentException(
          "plugin at [" + path + "] is a " + plugin.getClass().getName() + ", not a " + type.getSimpleName());
    }
    return type.cast(plugin);
  }

  private AutoCloseable create(String path, Class<?> type) {
    Config root = system.settings().config();
    if (!root.hasPath(path)) {
      throw new IllegalArgumentException(
          "no " + type.getSimpleName() + " plugin configured at [" + path + "]");
    }
    Config config;
    try {
      config = root.getConfig(path);
    } catch (ConfigException e) {
      throw new IllegalArgumentException("[" + path + "] must be a plugin config block", e);
    }
    String className = requiredString(config, path, "class");
    String dispatcherPath = requiredString(config, path, "plugin-dispatcher");
    if (!root.hasPath(dispatcherPath)) {
      throw new IllegalArgumentException(
          "dispatcher ["
              + dispatcherPath
              + "] named by ["
              + path
              + ".plugin-dispatcher] is not configured");
    }
    Executor dispatcher = system.dispatchers().lookup(DispatcherSelector.fromConfig(dispatcherPath));
    Class<?> pluginClass;
    try {
      pluginClass = Class.forName(className, true, system.dynamicAccess().classLoader());
    } catch (ClassNotFoundException e) {
      throw new IllegalArgumentException(
          "class [" + className + "] named by [" + path + ".class] is not on the classpath", e);
    }
    if (!type.isAssignableFrom(pluginClass)) {
      throw new IllegalArgumentException(
          "class ["
              + className
              + "] named by ["
              + path
              + ".class] does not implement "
              + type.getName());
    }
    try {
      Constructor<?> constructor = pluginClass.getConstructor(PluginContext.class);
      Object plugin = constructor.newInstance(new PluginContext(system, config, path, dispatcher));
      log.info("Started {} plugin [{}] ({})", type.getSimpleName(), path, className);
      return (AutoCloseable) plugin;
    } catch (NoSuchMethodException e) {
      throw new IllegalArgumentException(
          "class [" + className + "] named by [" + path + ".class] needs a public constructor ("
              + PluginContext.class.getName() + ")", e);
    } catch (InvocationTargetException e) {
      Throwable cause = e.getCause();
      if (cause instanceof RuntimeException re) {
        throw re;
      }
      throw new IllegalStateException("cannot start plugin [" + path + "]: " + cause, cause);
    } catch (ReflectiveOperationException e) {
      throw new IllegalArgumentException("cannot create plugin [" + path + "]: " + e, e);
    }
  }

  private static String requiredString(Config config, String path, String key) {
    try {
      String value = config.getString(key);
      if (value.isBlank()) {
        throw new IllegalArgumentException("[" + path + "." + key + "] must not be empty");
      }
      return value;
    } catch (ConfigException.Missing e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] is missing", e);
    } catch (ConfigException.WrongType e) {
      throw new IllegalArgumentException("[" + path + "." + key + "] must be a string", e);
    }
  }

  private void closeAll() {
    plugins.forEach(
        (path, plugin) -> {
          try {
            plugin.close();
          } catch (Exception e) {
            log.warn("Closing plugin [{}] failed", path, e);
          }
        });
    plugins.clear();
  }
}
