package io.eventsourced.internal;

import io.eventsourced.EntityException;
import io.eventsourced.PersistenceId;
import java.util.Map;
import java.util.Collections;
import java.util.LinkedHashMap;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Extension;
import org.apache.pekko.actor.typed.ExtensionId;

/** Per actor system: the plugin registry, the entity settings and the serialization helper. */
public final class EventsourcedRuntime implements Extension {

  private static final ExtensionId<EventsourcedRuntime> ID =
      new ExtensionId<>() {
        @Override
        public EventsourcedRuntime createExtension(ActorSystem<?> system) {
          return new EventsourcedRuntime(system);
        }
      };

  private final PluginRegistry plugins;
  private final EntitySettings settings;
  private final IllegalArgumentException settingsError;
  private final Serde serde;
  /** Bounded, oldest dropped first: entities that failed and are never used again must not pile up. */
  private final Map<PersistenceId, EntityException> failures = bounded();
  private static final int MAX_REMEMBERED_FAILURES = 10_000;
  /**
   * The same causes by the stopped actor, for commands sent to its {@code ActorRef} directly:
   * their dead letters name the actor, not the entity. Keyed by the actor's path with its uid
   * (not the ref, which would keep the stopped actor's cell): each incarnation has its own key,
   * so an entry never needs clearing; bounded like the map above.
   */
  private final Map<String, EntityException> failedActors = bounded();

  private static <K> Map<K, EntityException> bounded() {
    return Collections.synchronizedMap(
        new LinkedHashMap<>() {
          private static final long serialVersionUID = 1L;

          @Override
          protected boolean removeEldestEntry(Map.Entry<K, EntityException> eldest) {
            return size() > MAX_REMEMBERED_FAILURES;
          }
        });
  }

  private EventsourcedRuntime(ActorSystem<?> system) {
    // Invalid settings do not stop the runtime: its dead-letter listener must still answer the
    // commands of entities that then fail to start, and each use of the settings reports them.
    EntitySettings parsed = null;
    IllegalArgumentException invalid = null;
    try {
      parsed = EntitySettings.fromConfig(system.settings().config());
    } catch (IllegalArgumentException e) {
      invalid = e;
    }
    this.settings = parsed;
    this.settingsError = invalid;
    this.plugins = new PluginRegistry(system);
    this.serde = new Serde(system);
    DeadLetterReplies.start(system, failures::get, failedActors::get);
  }

  /**
   * The runtime of an actor system.
   *
   * @param system the actor system
   * @return its runtime
   */
  public static EventsourcedRuntime get(ActorSystem<?> system) {
    return ID.apply(system);
  }

  /**
   * The plugins.
   *
   * @return the plugin registry
   */
  public PluginRegistry plugins() {
    return plugins;
  }

  /**
   * The entity settings.
   *
   * @return the settings
   * @throws IllegalArgumentException naming the key if {@code eventsourced.entity} is invalid
   */
  public EntitySettings settings() {
    if (settingsError != null) {
      throw new IllegalArgumentException(settingsError.getMessage(), settingsError);
    }
    return settings;
  }

  /**
   * Remembers why an entity stopped after a failure, so commands that reach it afterwards are
   * answered with that cause. Cleared when the entity starts again.
   *
   * @param persistenceId the entity
   * @param failure why it stopped, or {@code null} to forget
   */
  void failed(PersistenceId persistenceId, EntityException failure) {
    if (failure == null) {
      failures.remove(persistenceId);
    } else {
      failures.put(persistenceId, failure);
    }
  }

  /**
   * Remembers why an entity stopped after a failure, also by its actor.
   *
   * @param persistenceId the entity
   * @param actor the entity's actor, which is stopping
   * @param failure why it stopped
   */
  void failed(PersistenceId persistenceId, org.apache.pekko.actor.typed.ActorRef<?> actor, EntityException failure) {
    failed(persistenceId, failure);
    failedActors.put(actor.path().toSerializationFormat(), failure);
  }

  /**
   * The failure of a command sent to an entity that has stopped.
   *
   * @param persistenceId the entity
   * @param cause the failure it stopped on, or {@code null} if it was stopped on purpose
   * @return the failure to give the command's caller
   */
  public EntityException stopped(PersistenceId persistenceId, EntityException cause) {
    return DeadLetterReplies.stopped(persistenceId, cause);
  }

  /**
   * The serialization helper.
   *
   * @return the serde
   */
  public Serde serde() {
    return serde;
  }
}
