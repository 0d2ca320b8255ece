package io.eventsourced;

import io.eventsourced.internal.EntityBehavior;
import io.eventsourced.internal.EventsourcedRuntime;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.ActorContext;

/**
 * Creates entities: a Pekko typed {@link Behavior} to spawn from any {@link ActorContext}, or an
 * {@link EntityRef} for code outside actors.
 *
 * <p>An entity recovers on start (latest snapshot, then the events after it), then handles
 * commands one at a time, persisting each command's events before replying. Run at most one
 * entity per persistence id: a second one is refused by the journal's optimistic concurrency check
 * and stops (across machines, use Pekko Cluster Sharding).
 */
public final class Entity {

  private static final AtomicLong incarnation = new AtomicLong();

  private Entity() {}

  /**
   * The behavior of one entity, for {@code context.spawn(Entity.create(counter, id), name)}.
   * Other actors send it {@link EntityCommand}s. Its plugins start on first use; to keep their
   * blocking start off the entity's thread, start them beforehand with {@code
   * Persistence.get(system).journal()} (as {@link #spawn} does).
   *
   * @param definition the entity type
   * @param entityId the entity id
   * @param <C> the command type
   * @param <E> the event type
   * @param <S> the state type
   * @param <R> the reply value type
   * @param <Err> the domain error type
   * @return the behavior
   */
  public static <C, E, S, R, Err> Behavior<EntityCommand<C, R, Err>> create(
      EventSourced<C, E, S, R, Err> definition, String entityId) {
    return EntityBehavior.create(definition, entityId, cause -> {}).narrow();
  }

  /**
   * Spawns an entity as a system actor and returns a reference for asking it.
   *
   * @param system the actor system
   * @param definition the entity type
   * @param entityId the entity id
   * @param <C> the command type
   * @param <E> the event type
   * @param <S> the state type
   * @param <R> the reply value type
   * @param <Err> the domain error type
   * @return the entity reference
   * @throws IllegalArgumentException if the entity's journal or snapshot store plugin is missing
   *     or misconfigured, or {@code eventsourced.entity} is invalid, naming the config path
   */
  public static <C, E, S, R, Err> EntityRef<C, R, Err> spawn(
      ActorSystem<?> system, EventSourced<C, E, S, R, Err> definition, String entityId) {
    PersistenceId persistenceId = PersistenceId.of(definition.typeName(), entityId);
    startPlugins(system, definition);
    EntityRef.Lifecycle lifecycle = new EntityRef.Lifecycle();
    ActorRef<Object> ref =
        system.systemActorOf(
            EntityBehavior.create(definition, entityId, lifecycle::stopped),
            actorName(persistenceId),
            Props.empty());
    return new EntityRef<>(system, persistenceId, ref, lifecycle);
  }

  /**
   * Spawns an entity as a child of an actor and returns a reference for asking it. Call it from
   * the actor's own thread, as any {@code context.spawn}.
   *
   * @param context the parent's context
   * @param definition the entity type
   * @param entityId the entity id
   * @param <C> the command type
   * @param <E> the event type
   * @param <S> the state type
   * @param <R> the reply value type
   * @param <Err> the domain error type
   * @return the entity reference
   * @throws IllegalArgumentException if the entity's journal or snapshot store plugin is missing
   *     or misconfigured, or {@code eventsourced.entity} is invalid, naming the config path
   */
  public static <C, E, S, R, Err> EntityRef<C, R, Err> spawn(
      ActorContext<?> context, EventSourced<C, E, S, R, Err> definition, String entityId) {
    PersistenceId persistenceId = PersistenceId.of(definition.typeName(), entityId);
    startPlugins(context.getSystem(), definition);
    EntityRef.Lifecycle lifecycle = new EntityRef.Lifecycle();
    ActorRef<Object> ref =
        context.spawn(
            EntityBehavior.create(definition, entityId, lifecycle::stopped), actorName(persistenceId));
    return new EntityRef<>(context.getSystem(), persistenceId, ref, lifecycle);
  }

  /**
   * Starts the entity's plugins on the caller's thread (once per actor system), so that their
   * blocking start (a pool, a connection) does not run on an entity's dispatcher thread and a
   * configuration error reaches the caller.
   */
  private static void startPlugins(ActorSystem<?> system, EventSourced<?, ?, ?, ?, ?> definition) {
    EventsourcedRuntime.get(system).settings();
    Persistence persistence = Persistence.get(system);
    persistence.journal(definition.journalPluginId());
    persistence.snapshotStore(definition.snapshotPluginId());
  }

  /** A unique, valid actor name: readable prefix, then a counter so a re-spawn never collides. */
  private static String actorName(PersistenceId persistenceId) {
    String readable = URLEncoder.encode(persistenceId.typeName() + "|" + persistenceId.entityId(), StandardCharsets.UTF_8);
    if (readable.length() > 100) {
      readable = readable.substring(0, 100);
    }
    return readable.replace('%', '~') + "-" + incarnation.incrementAndGet();
  }
}
