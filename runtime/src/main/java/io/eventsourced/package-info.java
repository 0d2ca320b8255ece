/**
 * Event-sourced entities on Pekko typed actors.
 *
 * <p>An entity type is an {@link io.eventsourced.EventSourced} definition: <em>commands</em> ask
 * an entity to do something; its <em>command handler</em> looks at the current <em>state</em> and
 * returns an {@link io.eventsourced.Effect} that either rejects the command with a typed domain
 * <em>error</em> or emits <em>events</em> and says what to reply; the runtime stores the events in
 * a {@link io.eventsourced.journal.Journal}, folds each into the state with the <em>event
 * handler</em>, and only then sends the {@link io.eventsourced.Reply}. An entity is identified by a
 * {@link io.eventsourced.PersistenceId} (type name and id); on start it loads its latest snapshot
 * from a {@link io.eventsourced.snapshot.SnapshotStore}, replays the events after it, and saves new
 * snapshots as its {@link io.eventsourced.SnapshotPolicy} says. {@link io.eventsourced.Entity}
 * creates entities, {@link io.eventsourced.EntityRef} asks them from plain code, and {@link
 * io.eventsourced.Persistence} holds the journal and snapshot store plugins chosen in HOCON.
 *
 * <pre>
 * client ──ask(cmd)──▶ EntityRef ──▶ Entity actor (one per typeName + id)
 *                                     │ recovering: load snapshot, replay events, stash commands
 *                                     │ ready:      commandHandler(state, cmd) → Effect
 *                                     │ persisting: stash commands until the journal confirms
 *                                     ▼
 *                      Journal plugin (own dispatcher) ──▶ in-memory / NATS JetStream / PostgreSQL
 *                                     │ confirmed
 *                                     ▼
 *              eventHandler(state, evt) for each event → maybe snapshot → reply
 * </pre>
 */
package io.eventsourced;
