package io.eventsourced;

import io.eventsourced.internal.Ask;
import io.eventsourced.internal.EntityBehavior;
import io.eventsourced.internal.EventsourcedRuntime;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.Done;
import org.apache.pekko.actor.Cancellable;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Scheduler;
import scala.concurrent.ExecutionContextExecutor;

/**
 * A reference to a running entity for code outside actors: {@link #ask} sends a command and
 * returns its reply as a {@link CompletionStage}.
 *
 * <p>The stage completes with {@link Reply.Accepted} or {@link Reply.Rejected} (the typed domain
 * error), and fails with an {@link EntityException} on a technical failure: the write failed or
 * conflicted, the entity stopped, its stash overflowed, or no reply came within the timeout.
 * Continuations run on the actor system's dispatcher, never on the JDK's common pool.
 *
 * @param <C> the command type
 * @param <R> the reply value type
 * @param <Err> the domain error type
 */
public final class EntityRef<C, R, Err> {

  /** Tracks whether the entity has stopped and which asks still wait for it. */
  static final class Lifecycle {
    private final CompletableFuture<Done> stopped = new CompletableFuture<>();
    private final Set<CompletableFuture<?>> pending = ConcurrentHashMap.newKeySet();
    private volatile EntityException stopError;
    private PersistenceId persistenceId;

    void stopped() {
      stopError = new EntityException(persistenceId, "entity [" + persistenceId + "] stopped", null);
      // Asks whose command was still in the mailbox when the entity stopped are never answered by
      // it: fail them now rather than at their timeout.
      for (CompletableFuture<?> ask : pending) {
        ask.completeExceptionally(stopError);
      }
      stopped.complete(Done.getInstance());
    }
  }

  private final PersistenceId persistenceId;
  private final ActorRef<Object> ref;
  private final Lifecycle lifecycle;
  private final ExecutionContextExecutor executor;
  private final Scheduler scheduler;
  private final Duration defaultTimeout;

  EntityRef(ActorSystem<?> system, PersistenceId persistenceId, ActorRef<Object> ref, Lifecycle lifecycle) {
    this.persistenceId = persistenceId;
    this.ref = ref;
    this.lifecycle = lifecycle;
    lifecycle.persistenceId = persistenceId;
    this.executor = system.executionContext();
    this.scheduler = system.scheduler();
    this.defaultTimeout = EventsourcedRuntime.get(system).settings().askTimeout();
  }

  /**
   * The entity's identity.
   *
   * @return the persistence id
   */
  public PersistenceId persistenceId() {
    return persistenceId;
  }

  /**
   * The entity actor, for sending {@link EntityCommand}s from other actors.
   *
   * @return the actor ref
   */
  public ActorRef<EntityCommand<C, R, Err>> actorRef() {
    return ref.narrow();
  }

  /**
   * Sends a command and waits for its reply, at most {@code eventsourced.entity.ask-timeout}.
   *
   * @param command the command
   * @return the accepted or rejected reply; fails with {@link EntityException} on a technical
   *     failure
   */
  public CompletionStage<Reply<R, Err>> ask(C command) {
    return ask(command, defaultTimeout);
  }

  /**
   * Sends a command and waits for its reply, at most {@code timeout}.
   *
   * @param command the command
   * @param timeout how long to wait for the reply
   * @return the accepted or rejected reply; fails with {@link EntityException} on a technical
   *     failure
   */
  public CompletionStage<Reply<R, Err>> ask(C command, Duration timeout) {
    PendingAsk<R, Err> ask = new PendingAsk<>(lifecycle);
    lifecycle.pending.add(ask);
    EntityException stopError = lifecycle.stopError;
    if (stopError != null) {
      ask.completeExceptionally(stopError);
      return ask;
    }
    ask.timer =
        scheduler.scheduleOnce(
            timeout,
            () ->
                ask.completeExceptionally(
                    new EntityException(
                        persistenceId,
                        "no reply from [" + persistenceId + "] within [" + timeout.toMillis() + " ms]",
                        new TimeoutException())),
            executor);
    // The entity completes the stage on its dispatcher thread: continuations of the non-async
    // methods run there (never on the JDK's common pool), without an extra task hop.
    ref.tell(new Ask<C, R, Err>(command, ask::answer));
    return ask;
  }

  /**
   * Stops the entity once the write in flight (if any) is done and replied to; commands it holds
   * in its stash, and commands sent after this, fail with an {@link EntityException}.
   *
   * @return completes when the entity has stopped; a new one for the same id may then be spawned
   */
  public CompletionStage<Done> stop() {
    ref.tell(EntityBehavior.STOP);
    return lifecycle.stopped;
  }

  /**
   * Completes when the entity has stopped, for whatever reason.
   *
   * @return the stage
   */
  public CompletionStage<Done> whenStopped() {
    return lifecycle.stopped;
  }

  @Override
  public String toString() {
    return "EntityRef[" + persistenceId + "]";
  }

  /** One ask in flight: removes itself from the pending set and cancels its timer when done. */
  private static final class PendingAsk<R, Err> extends CompletableFuture<Reply<R, Err>> {
    private final Lifecycle lifecycle;
    volatile Cancellable timer;

    PendingAsk(Lifecycle lifecycle) {
      this.lifecycle = lifecycle;
    }

    void answer(Reply<R, Err> reply) {
      if (reply instanceof Reply.Failed<R, Err> failed) {
        completeExceptionally(failed.error());
      } else {
        complete(reply);
      }
    }

    @Override
    public boolean complete(Reply<R, Err> value) {
      cleanUp();
      return super.complete(value);
    }

    @Override
    public boolean completeExceptionally(Throwable ex) {
      cleanUp();
      return super.completeExceptionally(ex);
    }

    private void cleanUp() {
      lifecycle.pending.remove(this);
      Cancellable t = timer;
      if (t != null) {
        t.cancel();
      }
    }
  }
}
