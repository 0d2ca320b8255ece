package io.eventsourced;

import io.eventsourced.internal.Ask;
import io.eventsourced.internal.EntityBehavior;
import io.eventsourced.internal.EventsourcedRuntime;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
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
 * The stage is completed by a task on the actor system's dispatcher, never on the entity's own
 * thread. A non-async continuation runs in that task if it was attached before the reply came,
 * and otherwise at once on the thread that attaches it (as with any {@link CompletableFuture});
 * the {@code *Async} ones without an executor argument run on the dispatcher, never on the JDK's
 * common pool. So a loop that sends its next command from a non-async continuation must not
 * simply call itself: replies that come before the continuation is attached nest it one call
 * deeper each, until the stack overflows. Use {@code whenCompleteAsync}, or let the attaching
 * thread go on with the loop when the reply is already there.
 *
 * @param <C> the command type
 * @param <R> the reply value type
 * @param <Err> the domain error type
 */
public final class EntityRef<C, R, Err> {

  /** Completes when the entity has stopped, and keeps the failure it stopped on. */
  static final class Lifecycle {
    private final CompletableFuture<Done> stopped = new CompletableFuture<>();
    private volatile EntityException cause;

    void stopped(EntityException cause) {
      this.cause = cause;
      stopped.complete(Done.getInstance());
    }
  }

  private final PersistenceId persistenceId;
  private final ActorRef<Object> ref;
  private final Lifecycle lifecycle;
  private final ExecutionContextExecutor executor;
  private final Scheduler scheduler;
  private final Duration defaultTimeout;
  private final EventsourcedRuntime runtime;

  EntityRef(ActorSystem<?> system, PersistenceId persistenceId, ActorRef<Object> ref, Lifecycle lifecycle) {
    this.persistenceId = persistenceId;
    this.ref = ref;
    this.lifecycle = lifecycle;
    this.executor = system.executionContext();
    this.scheduler = system.scheduler();
    this.runtime = EventsourcedRuntime.get(system);
    this.defaultTimeout = runtime.settings().askTimeout();
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
    Objects.requireNonNull(command, "command");
    PendingAsk<Reply<R, Err>> ask = new PendingAsk<>(executor);
    if (lifecycle.stopped.isDone()) {
      // Answered here, not by the dead-letter listener: Pekko delivers dead letters on a
      // best-effort basis and may drop a message that arrives while the actor terminates, which
      // whenStopped() completing does not rule out.
      EntityException failure = runtime.stopped(persistenceId, lifecycle.cause);
      executor.execute(() -> ask.completeExceptionally(failure));
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
    // A command that reaches a stopped entity comes back as a failure through the dead-letter
    // listener, so no per-ask bookkeeping is needed for that case.
    ref.tell(new Ask<C, R, Err>(persistenceId, command, reply -> answer(ask, reply)));
    return ask;
  }

  /**
   * Completes an ask on the dispatcher, not on the entity's thread: a caller's continuation, even
   * a slow one, then never holds up the entity.
   */
  private void answer(PendingAsk<Reply<R, Err>> ask, Reply<R, Err> reply) {
    Cancellable timer = ask.timer;
    if (timer != null) {
      timer.cancel();
    }
    executor.execute(
        () -> {
          if (reply instanceof Reply.Failed<R, Err> failed) {
            ask.completeExceptionally(failed.error());
          } else {
            ask.complete(reply);
          }
        });
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
   * Completes when the entity has stopped, for whatever reason. Asks made after it completed
   * fail at once with an {@link EntityException} that carries the failure the entity stopped on.
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

  /**
   * One ask in flight. Its {@code *Async} continuations, and those of stages derived from it, run
   * on the actor system's dispatcher instead of the JDK's common pool.
   */
  private static final class PendingAsk<T> extends CompletableFuture<T> {
    private final Executor executor;
    volatile Cancellable timer;

    PendingAsk(Executor executor) {
      this.executor = executor;
    }

    @Override
    public Executor defaultExecutor() {
      return executor;
    }

    @Override
    public <U> CompletableFuture<U> newIncompleteFuture() {
      return new PendingAsk<>(executor);
    }
  }
}
