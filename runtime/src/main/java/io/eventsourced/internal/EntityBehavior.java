package io.eventsourced.internal;

import io.eventsourced.CommandHandler;
import io.eventsourced.Effect;
import io.eventsourced.EntityCommand;
import io.eventsourced.EntityException;
import io.eventsourced.EventHandler;
import io.eventsourced.EventSourced;
import io.eventsourced.PersistenceId;
import io.eventsourced.Reply;
import io.eventsourced.SnapshotPolicy;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.ConcurrencyConflictException;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.JournalException;
import io.eventsourced.journal.PersistentRepr;
import io.eventsourced.snapshot.SnapshotRecord;
import io.eventsourced.snapshot.SnapshotStore;
import org.apache.pekko.Done;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The entity actor: recovering (latest snapshot, then the events after it) → ready ↔ persisting.
 * Commands that arrive while recovering or persisting wait in a bounded stash, in arrival order.
 * In the ready state the stash is always empty.
 *
 * @param <C> the command type
 * @param <E> the event type
 * @param <S> the state type
 * @param <R> the reply value type
 * @param <Err> the domain error type
 */
public final class EntityBehavior<C, E, S, R, Err> extends AbstractBehavior<Object> {
  private static final Logger log = LoggerFactory.getLogger(EntityBehavior.class);

  private enum Mode {
    RECOVERING,
    READY,
    PERSISTING
  }

  private record SnapshotLoaded(Optional<SnapshotRecord> snapshot, Throwable error) {}

  private record Recovered(Object state, long sequenceNr, Throwable error) {}

  private record WriteDone(Throwable error) {}

  private static final WriteDone WRITE_OK = new WriteDone(null);

  /** Asks the entity to stop once the command in flight (if any) is done. */
  public static final Object STOP = new Object() {
    @Override
    public String toString() {
      return "Stop";
    }
  };

  private boolean stopRequested;

  private final PersistenceId persistenceId;
  private final EventSourced<C, E, S, R, Err> definition;
  private final CommandHandler<C, E, S, R, Err> commandHandler;
  private final EventHandler<S, E> eventHandler;
  private final SnapshotPolicy<S, E> snapshotPolicy;
  private final Journal journal;
  private final SnapshotStore snapshotStore;
  private final Serde serde;
  private final int stashCapacity;
  private final Consumer<EntityException> onStopped;
  /** The failure this entity stops on, for its EntityRef; null if it stops on purpose. */
  private EntityException stoppedOn;
  private final EventsourcedRuntime runtime;
  private final ArrayDeque<Ask<C, R, Err>> stash = new ArrayDeque<>();

  private Mode mode = Mode.RECOVERING;
  private S state;
  private long sequenceNr;
  private Ask<C, R, Err> pendingCommand;
  private Effect<E, S, R, Err> pendingEffect;

  private EntityBehavior(
      ActorContext<Object> context,
      EventSourced<C, E, S, R, Err> definition,
      PersistenceId persistenceId,
      Consumer<EntityException> onStopped) {
    super(context);
    EventsourcedRuntime runtime = EventsourcedRuntime.get(context.getSystem());
    this.runtime = runtime;
    runtime.failed(persistenceId, null);
    this.persistenceId = persistenceId;
    this.definition = definition;
    this.commandHandler = definition.commandHandler();
    this.eventHandler = definition.eventHandler();
    this.snapshotPolicy = definition.snapshotPolicy();
    // Settings first: invalid ones should be reported before plugins start on this thread.
    this.stashCapacity = runtime.settings().stashCapacity();
    this.journal = runtime.plugins().journal(definition.journalPluginId());
    this.snapshotStore = runtime.plugins().snapshotStore(definition.snapshotPluginId());
    this.serde = runtime.serde();
    this.onStopped = onStopped;
    this.state = definition.emptyState();
    log.debug("Recovering [{}]", persistenceId);
    context.pipeToSelf(
        snapshotStore.loadLatest(persistenceId, Long.MAX_VALUE), SnapshotLoaded::new);
  }

  /**
   * The behavior of one entity.
   *
   * @param definition the entity type
   * @param entityId the entity id
   * @param onStopped run once after the entity stopped, on its thread, with the failure it
   *     stopped on ({@code null} if it was stopped on purpose)
   * @param <C> the command type
   * @param <E> the event type
   * @param <S> the state type
   * @param <R> the reply value type
   * @param <Err> the domain error type
   * @return the behavior
   */
  public static <C, E, S, R, Err> Behavior<Object> create(
      EventSourced<C, E, S, R, Err> definition, String entityId, Consumer<EntityException> onStopped) {
    PersistenceId persistenceId = PersistenceId.of(definition.typeName(), entityId);
    return Behaviors.setup(
        context -> {
          try {
            return new EntityBehavior<>(context, definition, persistenceId, onStopped);
          } catch (RuntimeException | Error e) {
            // An AssertionError in the definition's handler factories is the application's, as
            // in its handlers; Pekko delivers no PostStop to a behavior that never started, so
            // it is reported here.
            rethrowIfFatal(e);
            EntityException error =
                new EntityException(
                    persistenceId, "cannot start entity [" + persistenceId + "]: " + e.getMessage(), e);
            log.error("{}", error.getMessage(), e);
            EventsourcedRuntime.get(context.getSystem()).failed(persistenceId, context.getSelf(), error);
            onStopped.accept(error);
            return Behaviors.stopped();
          }
        });
  }

  @Override
  @SuppressWarnings("unchecked")
  public Receive<Object> createReceive() {
    return newReceiveBuilder()
        .onMessage(Ask.class, ask -> same(onCommand((Ask<C, R, Err>) ask)))
        .onMessage(
            EntityCommand.class,
            command -> {
              EntityCommand<C, R, Err> typed = (EntityCommand<C, R, Err>) command;
              return same(onCommand(new Ask<>(persistenceId, typed.command(), typed.replyTo()::tell)));
            })
        .onMessage(WriteDone.class, done -> same(onWriteDone(done)))
        .onMessageEquals(STOP, () -> same(onStop()))
        .onMessage(SnapshotLoaded.class, loaded -> same(onSnapshotLoaded(loaded)))
        .onMessage(Recovered.class, recovered -> same(onRecovered(recovered)))
        .onSignal(PostStop.class, signal -> same(onPostStop()))
        .build();
  }

  /**
   * Handlers return {@code this} to stay; Pekko's {@code same()} lets the supervision
   * interceptor keep its wrapper instead of re-wrapping the behavior for every message.
   */
  private Behavior<Object> same(Behavior<Object> next) {
    return next == this ? Behaviors.same() : next;
  }

  // ------------------------------------------------------------------------------ recovery

  @SuppressWarnings("unchecked")
  private Behavior<Object> onSnapshotLoaded(SnapshotLoaded loaded) {
    if (loaded.error() != null) {
      return failRecovery(
          new JournalException(
              "cannot recover [" + persistenceId + "]: loading the latest snapshot failed",
              persistenceId,
              0,
              unwrap(loaded.error())));
    }
    S initial = state;
    long from = 1;
    if (loaded.snapshot().isPresent()) {
      SnapshotRecord snapshot = loaded.snapshot().get();
      try {
        initial = (S) serde.deserialize(snapshot.payload(), snapshot.serializerId(), snapshot.manifest());
      } catch (RuntimeException | Error e) {
        rethrowIfFatal(e);
        return failRecovery(
            new JournalException(
                "cannot recover ["
                    + persistenceId
                    + "]: snapshot at sequenceNr ["
                    + snapshot.sequenceNr()
                    + "] cannot be deserialized (serializer ["
                    + snapshot.serializerId()
                    + "], manifest ["
                    + snapshot.manifest()
                    + "])",
                persistenceId,
                snapshot.sequenceNr(),
                e));
      }
      from = snapshot.sequenceNr() + 1;
    }
    // The fold runs on the journal's thread, sequentially; the stage's completion publishes it.
    Fold fold = new Fold(initial, from - 1);
    CompletionStage<Done> replayed;
    try {
      replayed = journal.replay(persistenceId, from, Long.MAX_VALUE, Long.MAX_VALUE, fold);
    } catch (RuntimeException | Error e) {
      // A plugin that throws instead of failing its stage (an AssertionError included): the same
      // as a failed replay.
      rethrowIfFatal(e);
      replayed = CompletableFuture.failedFuture(e);
    }
    getContext().pipeToSelf(replayed, (done, error) -> new Recovered(fold.state, fold.sequenceNr, error));
    return this;
  }

  /** Folds replayed events into the state, checking that sequence numbers are contiguous. */
  private final class Fold implements Consumer<PersistentRepr> {
    S state;
    long sequenceNr;

    Fold(S state, long sequenceNr) {
      this.state = state;
      this.sequenceNr = sequenceNr;
    }

    @Override
    @SuppressWarnings("unchecked")
    public void accept(PersistentRepr repr) {
      if (repr.sequenceNr() != sequenceNr + 1) {
        throw new JournalException(
            "cannot recover ["
                + persistenceId
                + "]: expected sequenceNr ["
                + (sequenceNr + 1)
                + "], journal delivered ["
                + repr.sequenceNr()
                + "]",
            persistenceId,
            sequenceNr + 1,
            null);
      }
      E event;
      try {
        event = (E) serde.deserialize(repr.payload(), repr.serializerId(), repr.manifest());
      } catch (RuntimeException | Error e) {
        rethrowIfFatal(e);
        throw new JournalException(
            "cannot recover ["
                + persistenceId
                + "]: event at sequenceNr ["
                + repr.sequenceNr()
                + "] cannot be deserialized (serializer ["
                + repr.serializerId()
                + "], manifest ["
                + repr.manifest()
                + "]): "
                + e.getMessage(),
            persistenceId,
            repr.sequenceNr(),
            e);
      }
      try {
        state = eventHandler.apply(state, event);
      } catch (RuntimeException | Error e) {
        rethrowIfFatal(e);
        throw new JournalException(
            "cannot recover ["
                + persistenceId
                + "]: the event handler failed on ["
                + event.getClass().getName()
                + "] at sequenceNr ["
                + repr.sequenceNr()
                + "]",
            persistenceId,
            repr.sequenceNr(),
            e);
      }
      sequenceNr = repr.sequenceNr();
    }
  }

  @SuppressWarnings("unchecked")
  private Behavior<Object> onRecovered(Recovered recovered) {
    if (recovered.error() != null) {
      Throwable cause = unwrap(recovered.error());
      return failRecovery(
          cause instanceof JournalException je
              ? je
              : new JournalException(
                  "cannot recover [" + persistenceId + "]: replay failed",
                  persistenceId,
                  recovered.sequenceNr() + 1,
                  cause));
    }
    state = (S) recovered.state();
    sequenceNr = recovered.sequenceNr();
    mode = Mode.READY;
    log.debug("Recovered [{}] at sequenceNr [{}]", persistenceId, sequenceNr);
    return drainStash();
  }

  private Behavior<Object> failRecovery(JournalException error) {
    log.error("Recovery of [{}] failed; stopping: {}", persistenceId, error.getMessage(), error);
    return failAndStop(new EntityException(persistenceId, error.getMessage(), error));
  }

  // ------------------------------------------------------------------------------ commands

  private Behavior<Object> onCommand(Ask<C, R, Err> ask) {
    if (mode != Mode.READY) {
      if (stash.size() >= stashCapacity) {
        ask.replyTo()
            .accept(
                new Reply.Failed<>(
                    new EntityException(
                        persistenceId,
                        "stash overflow: ["
                            + persistenceId
                            + "] already holds ["
                            + stashCapacity
                            + "] commands while "
                            + (mode == Mode.RECOVERING ? "recovering" : "persisting")
                            + " (eventsourced.entity.stash-capacity)",
                        null)));
      } else {
        stash.add(ask);
      }
      return this;
    }
    return handle(ask);
  }

  /** Handles one command in the ready state; may switch to persisting. */
  private Behavior<Object> handle(Ask<C, R, Err> ask) {
    Effect<E, S, R, Err> effect;
    try {
      effect = commandHandler.apply(state, ask.command());
      if (effect == null) {
        throw new IllegalStateException("the command handler returned no effect (null)");
      }
    } catch (RuntimeException | Error e) {
      rethrowIfFatal(e);
      log.warn("Command handler of [{}] failed on [{}]", persistenceId, ask.command().getClass().getName(), e);
      ask.replyTo()
          .accept(
              new Reply.Failed<>(
                  new EntityException(
                      persistenceId,
                      "the command handler of ["
                          + persistenceId
                          + "] failed on ["
                          + ask.command().getClass().getName()
                          + "]: "
                          + e.getMessage(),
                      e)));
      return this;
    }
    List<E> events = effect.events();
    if (events.isEmpty()) {
      reply(ask, effect);
      return effect.stops() ? stop() : this;
    }
    List<PersistentRepr> reprs = new ArrayList<>(events.size());
    for (int i = 0; i < events.size(); i++) {
      E event = events.get(i);
      long eventSequenceNr = sequenceNr + 1 + i;
      try {
        // The serializer is application code too (a bound custom serializer may also return a
        // null manifest or payload, which the repr refuses): the caller must hear of a failure.
        Serde.Serialized serialized = serde.serialize(event);
        reprs.add(
            new PersistentRepr(
                persistenceId,
                eventSequenceNr,
                serialized.serializerId(),
                serialized.manifest(),
                serialized.bytes()));
      } catch (RuntimeException | Error e) {
        rethrowIfFatal(e);
        ask.replyTo()
            .accept(
                new Reply.Failed<>(
                    new EntityException(
                        persistenceId,
                        "cannot serialize event ["
                            + event.getClass().getName()
                            + "] of ["
                            + persistenceId
                            + "] at sequenceNr ["
                            + eventSequenceNr
                            + "]; nothing was stored: "
                            + e,
                        e)));
        return this;
      }
    }
    mode = Mode.PERSISTING;
    pendingCommand = ask;
    pendingEffect = effect;
    CompletionStage<Done> write;
    try {
      write = journal.append(new AtomicWrite(persistenceId, sequenceNr, reprs));
    } catch (RuntimeException | Error e) {
      // A plugin that throws instead of failing its stage (an AssertionError included): the same
      // as a failed write.
      rethrowIfFatal(e);
      write = CompletableFuture.failedFuture(e);
    }
    CompletableFuture<Done> written = completed(write);
    if (written != null) {
      // The journal confirmed synchronously (in-memory): skip the round trip through the mailbox.
      return finishWrite(written.isCompletedExceptionally() ? new WriteDone(failureOf(written)) : WRITE_OK);
    }
    getContext().pipeToSelf(write, (done, error) -> error == null ? WRITE_OK : new WriteDone(error));
    return this;
  }

  /**
   * Handler code is the application's: an {@link AssertionError} or another non-fatal error
   * there fails the command (or stops the entity) like an exception, so that its caller gets a
   * reply instead of waiting for the ask timeout. Errors the JVM cannot recover from go on up.
   */
  private static void rethrowIfFatal(Throwable e) {
    if (e instanceof VirtualMachineError || e instanceof LinkageError) {
      throw (Error) e;
    }
  }

  private static CompletableFuture<Done> completed(CompletionStage<Done> stage) {
    if (!(stage instanceof CompletableFuture<Done> future)) {
      return null;
    }
    try {
      return future.isDone() ? future : null;
    } catch (UnsupportedOperationException e) {
      // A minimal stage (CompletableFuture.completedStage, minimalCompletionStage) is a
      // CompletableFuture that refuses isDone: take the way through the mailbox.
      return null;
    }
  }

  private static Throwable failureOf(CompletableFuture<Done> future) {
    try {
      future.join();
      return new IllegalStateException("write reported failure without a cause");
    } catch (CompletionException | java.util.concurrent.CancellationException e) {
      return e.getCause() != null ? e.getCause() : e;
    }
  }

  private Behavior<Object> onWriteDone(WriteDone done) {
    Behavior<Object> next = finishWrite(done);
    return next == this ? drainStash() : next;
  }

  /** Applies and replies to the write in flight; returns to ready without draining the stash. */
  private Behavior<Object> finishWrite(WriteDone done) {
    Ask<C, R, Err> ask = pendingCommand;
    Effect<E, S, R, Err> effect = pendingEffect;
    pendingCommand = null;
    pendingEffect = null;
    if (done.error() != null) {
      Throwable cause = unwrap(done.error());
      String message;
      if (cause instanceof ConcurrencyConflictException conflict
          && conflict.actualSequenceNr() >= 0
          && conflict.actualSequenceNr() < conflict.expectedSequenceNr()) {
        // No other writer makes the journal fall behind: the recovered state came from a
        // snapshot newer than the journal's events.
        message =
            "conflict: the journal holds [" + persistenceId + "] up to sequenceNr ["
                + conflict.actualSequenceNr() + "] only, behind the state recovered at ["
                + conflict.expectedSequenceNr() + "]: its snapshot is newer than its events (was the"
                + " journal reset and the snapshot store kept?); stopping: " + cause.getMessage();
      } else if (cause instanceof ConcurrencyConflictException) {
        message = "conflict: another writer appended to [" + persistenceId + "]; stopping: " + cause.getMessage();
      } else {
        message =
            "cannot persist events of [" + persistenceId + "] at sequenceNr [" + (sequenceNr + 1) + "]; stopping: "
                + cause.getMessage();
      }
      log.error("{}", message, cause);
      EntityException error = new EntityException(persistenceId, message, cause);
      ask.replyTo().accept(new Reply.Failed<>(error));
      return failAndStop(error);
    }
    long before = sequenceNr;
    boolean snapshot = false;
    List<E> events = effect.events();
    try {
      for (int i = 0; i < events.size(); i++) {
        E event = events.get(i);
        state = eventHandler.apply(state, event);
        snapshot |= snapshotPolicy.shouldSnapshot(state, event, before + 1 + i);
      }
    } catch (RuntimeException | Error e) {
      rethrowIfFatal(e);
      // The events are stored but cannot be applied: this entity cannot go on consistently.
      EntityException error =
          new EntityException(
              persistenceId,
              "the event handler of [" + persistenceId + "] failed after sequenceNr [" + before + "]; stopping",
              e);
      log.error("{}", error.getMessage(), e);
      ask.replyTo().accept(new Reply.Failed<>(error));
      return failAndStop(error);
    }
    sequenceNr = before + events.size();
    if (snapshot) {
      saveSnapshot();
    }
    reply(ask, effect);
    if (effect.stops() || stopRequested) {
      return stop();
    }
    mode = Mode.READY;
    return this;
  }

  private Behavior<Object> drainStash() {
    Behavior<Object> next = this;
    while (mode == Mode.READY && !stash.isEmpty() && next == this) {
      next = handle(stash.poll());
    }
    return next;
  }

  private void reply(Ask<C, R, Err> ask, Effect<E, S, R, Err> effect) {
    if (!effect.hasReply()) {
      return;
    }
    Reply<R, Err> reply;
    try {
      reply = effect.reply(state);
    } catch (RuntimeException | Error e) {
      rethrowIfFatal(e);
      reply =
          new Reply.Failed<>(
              new EntityException(persistenceId, "computing the reply of [" + persistenceId + "] failed", e));
    }
    ask.replyTo().accept(reply);
  }

  private Behavior<Object> onStop() {
    if (mode == Mode.PERSISTING) {
      stopRequested = true;
      return this;
    }
    return stop();
  }

  private Behavior<Object> stop() {
    log.debug("Stopping [{}] at sequenceNr [{}]", persistenceId, sequenceNr);
    failAllWaiting(new EntityException(persistenceId, "entity [" + persistenceId + "] stopped", null));
    return Behaviors.stopped();
  }

  private void saveSnapshot() {
    long at = sequenceNr;
    Serde.Serialized serialized;
    try {
      serialized = serde.serialize(state);
    } catch (RuntimeException | Error e) {
      rethrowIfFatal(e);
      log.warn("Cannot serialize the state of [{}] at sequenceNr [{}] for a snapshot; skipped", persistenceId, at, e);
      return;
    }
    CompletionStage<Done> saved;
    try {
      saved =
          snapshotStore.save(
              new SnapshotRecord(persistenceId, at, serialized.serializerId(), serialized.manifest(), serialized.bytes()));
    } catch (RuntimeException | Error e) {
      // A plugin that throws instead of failing its stage (or a record refusing a null manifest
      // or payload from a custom serializer) must not take the reply with it.
      rethrowIfFatal(e);
      log.warn("Saving a snapshot of [{}] at sequenceNr [{}] failed", persistenceId, at, e);
      return;
    }
    saved
        .whenComplete(
            (done, error) -> {
              if (error != null) {
                log.warn("Saving a snapshot of [{}] at sequenceNr [{}] failed; recovery replays more events instead", persistenceId, at, unwrap(error));
              }
            });
  }

  // ------------------------------------------------------------------------------ stopping

  /** Stops after a failure: fails every waiting caller and remembers why for later callers. */
  private Behavior<Object> failAndStop(EntityException error) {
    runtime.failed(persistenceId, getContext().getSelf(), error);
    stoppedOn = error;
    failAllWaiting(error);
    return Behaviors.stopped();
  }

  private void failAllWaiting(EntityException error) {
    Reply<R, Err> failed = new Reply.Failed<>(error);
    Ask<C, R, Err> ask;
    while ((ask = stash.poll()) != null) {
      ask.replyTo().accept(failed);
    }
  }

  private Behavior<Object> onPostStop() {
    EntityException stopped =
        new EntityException(persistenceId, "entity [" + persistenceId + "] stopped", null);
    if (pendingCommand != null) {
      // Stopped from outside while a write was in flight: its outcome is unknown to the caller.
      pendingCommand.replyTo().accept(new Reply.Failed<>(stopped));
      pendingCommand = null;
    }
    failAllWaiting(stopped);
    onStopped.accept(stoppedOn);
    return this;
  }

  private static Throwable unwrap(Throwable error) {
    return error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
  }

  @Override
  public String toString() {
    return "Entity[" + persistenceId + ", " + definition.getClass().getSimpleName() + "]";
  }
}
