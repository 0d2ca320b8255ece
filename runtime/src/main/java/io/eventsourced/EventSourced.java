package io.eventsourced;

/**
 * The definition of an event-sourced entity type: its commands, events, state and typed domain
 * errors, and the two handlers that give them meaning.
 *
 * <p>A command arrives; the {@link #commandHandler()} looks at the current state and returns an
 * {@link Effect}: reject the command with a domain error, or emit events and say what to reply.
 * The runtime stores the events in the journal, folds each into the state with the {@link
 * #eventHandler()}, and only then replies. On start, an entity loads its latest snapshot and
 * replays the events after it through the same event handler. Implementations are stateless and
 * may be shared by all entities of the type.
 *
 * <pre>{@code
 * final class Counter implements EventSourced<CounterCommand, CounterEvent, Long, Long, CounterError> {
 *   public String typeName() { return "counter"; }
 *   public Long emptyState() { return 0L; }
 *   public CommandHandler<...> commandHandler() {
 *     return newCommandHandlerBuilder()
 *         .onCommand(Increase.class, (value, cmd) -> effect().persist(new Increased(cmd.n())).thenReply(v -> v))
 *         .build();
 *   }
 *   public EventHandler<Long, CounterEvent> eventHandler() { ... }
 * }
 * }</pre>
 *
 * @param <C> the command type, typically a sealed interface of records
 * @param <E> the event type, serializable by Pekko Serialization
 * @param <S> the state type, immutable; serializable if snapshots are used
 * @param <R> the reply value type
 * @param <Err> the domain error type carried by rejections
 */
public interface EventSourced<C, E, S, R, Err> {

  /**
   * The entity type name, the first part of every {@link PersistenceId} of this type. Keep it
   * stable: stored events are keyed by it.
   *
   * @return the type name
   */
  String typeName();

  /**
   * The state of an entity before its first event.
   *
   * @return the empty state
   */
  S emptyState();

  /**
   * The command handler. Called once per entity start.
   *
   * @return the command handler
   */
  CommandHandler<C, E, S, R, Err> commandHandler();

  /**
   * The event handler. Called once per entity start.
   *
   * @return the event handler
   */
  EventHandler<S, E> eventHandler();

  /**
   * When to save snapshots; never by default.
   *
   * @return the snapshot policy
   */
  default SnapshotPolicy<S, E> snapshotPolicy() {
    return SnapshotPolicy.never();
  }

  /**
   * The config path of the journal plugin; empty for {@code eventsourced.journal.plugin}.
   *
   * @return the journal plugin id
   */
  default String journalPluginId() {
    return "";
  }

  /**
   * The config path of the snapshot store plugin; empty for {@code
   * eventsourced.snapshot-store.plugin}.
   *
   * @return the snapshot store plugin id
   */
  default String snapshotPluginId() {
    return "";
  }

  /**
   * The entry point for building effects with this entity's types.
   *
   * @return the effect factory
   */
  default Effects<E, S, R, Err> effect() {
    return Effects.instance();
  }

  /**
   * A builder for a command handler that dispatches on the command's class.
   *
   * @return a new builder
   */
  default CommandHandlerBuilder<C, E, S, R, Err> newCommandHandlerBuilder() {
    return new CommandHandlerBuilder<>();
  }

  /**
   * A builder for an event handler that dispatches on the event's class.
   *
   * @return a new builder
   */
  default EventHandlerBuilder<S, E> newEventHandlerBuilder() {
    return new EventHandlerBuilder<>();
  }
}
