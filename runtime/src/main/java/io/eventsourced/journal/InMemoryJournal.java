package io.eventsourced.journal;

import io.eventsourced.PersistenceId;
import io.eventsourced.PluginContext;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.apache.pekko.Done;

/**
 * A journal that keeps events in this JVM's memory: the default plugin, for tests and demos. It
 * honours the whole {@link Journal} contract (it passes the TCK) but keeps nothing across
 * restarts of the JVM.
 *
 * <p>For testing failure paths without a server it offers fault injection: make the next write or
 * replay of an entity fail, delay every write or replay, or hold writes until released. Obtain the instance
 * with {@code Persistence.get(system).journal()} and cast.
 *
 * <p>It confirms a write on the caller's thread. Callers that send each next command from the
 * previous reply then keep the threads of Pekko's fork-join default dispatcher busy with tasks they
 * queued themselves, and the fork-join pool leaves tasks handed in from other threads waiting until
 * that load pauses (see "Test it" in docs/getting-started.md for the workaround).
 */
public final class InMemoryJournal implements Journal {

  private final Map<PersistenceId, List<PersistentRepr>> logs = new ConcurrentHashMap<>();
  private final Map<PersistenceId, RuntimeException> failNextWrite = new ConcurrentHashMap<>();
  private final Map<PersistenceId, RuntimeException> failNextReplay = new ConcurrentHashMap<>();
  private final Executor dispatcher;
  private final Object gate = new Object();
  private Queue<Runnable> held; // non-null while writes are paused; guarded by gate
  private volatile boolean paused; // lets the common case skip the lock
  private volatile Duration writeDelay = Duration.ZERO;
  private volatile Duration replayDelay = Duration.ZERO;

  /**
   * Creates the journal; called by the runtime.
   *
   * @param context the plugin context
   */
  public InMemoryJournal(PluginContext context) {
    this.dispatcher = context.dispatcher();
  }

  @Override
  public CompletionStage<Done> append(AtomicWrite write) {
    CompletableFuture<Done> result = new CompletableFuture<>();
    Runnable doWrite = () -> complete(result, write);
    if (paused) {
      synchronized (gate) {
        if (held != null) {
          held.add(doWrite);
          return result;
        }
      }
    }
    Duration delay = writeDelay;
    if (delay.isZero()) {
      doWrite.run();
    } else {
      CompletableFuture.delayedExecutor(delay.toNanos(), TimeUnit.NANOSECONDS, dispatcher)
          .execute(doWrite);
    }
    return result;
  }

  private void complete(CompletableFuture<Done> result, AtomicWrite write) {
    try {
      store(write);
      result.complete(Done.getInstance());
    } catch (RuntimeException e) {
      result.completeExceptionally(e);
    }
  }

  private void store(AtomicWrite write) {
    PersistenceId id = write.persistenceId();
    RuntimeException injected = failNextWrite.remove(id);
    if (injected != null) {
      throw injected;
    }
    List<PersistentRepr> log = logs.computeIfAbsent(id, k -> new ArrayList<>());
    synchronized (log) {
      if (log.size() != write.expectedSequenceNr()) {
        throw new ConcurrencyConflictException(id, write.expectedSequenceNr(), log.size());
      }
      log.addAll(write.events());
    }
  }

  @Override
  public CompletionStage<Done> replay(
      PersistenceId persistenceId,
      long fromSequenceNr,
      long toSequenceNr,
      long max,
      Consumer<PersistentRepr> onEvent) {
    Duration delay = replayDelay;
    Executor executor =
        delay.isZero()
            ? dispatcher
            : CompletableFuture.delayedExecutor(delay.toNanos(), TimeUnit.NANOSECONDS, dispatcher);
    return CompletableFuture.supplyAsync(
        () -> {
          RuntimeException injected = failNextReplay.remove(persistenceId);
          if (injected != null) {
            throw injected;
          }
          List<PersistentRepr> log = logs.get(persistenceId);
          if (log == null || max <= 0 || fromSequenceNr > toSequenceNr) {
            return Done.getInstance();
          }
          List<PersistentRepr> range;
          synchronized (log) {
            int from = (int) Math.min(Math.max(fromSequenceNr, 1) - 1, log.size());
            int to = (int) Math.min(toSequenceNr, log.size());
            int end = (int) Math.min(to, from + Math.min(max, Integer.MAX_VALUE));
            // The list only grows, so a copy of the references is a consistent view.
            range = List.copyOf(log.subList(from, Math.max(from, end)));
          }
          range.forEach(onEvent);
          return Done.getInstance();
        },
        executor);
  }

  @Override
  public CompletionStage<Long> highestSequenceNr(PersistenceId persistenceId) {
    List<PersistentRepr> log = logs.get(persistenceId);
    if (log == null) {
      return CompletableFuture.completedFuture(0L);
    }
    synchronized (log) {
      return CompletableFuture.completedFuture((long) log.size());
    }
  }

  /**
   * Makes the next append for an entity fail with a {@link JournalException}, storing nothing.
   *
   * @param persistenceId the entity whose next write fails
   */
  public void failNextWrite(PersistenceId persistenceId) {
    failNextWrite.put(
        persistenceId,
        new JournalException(
            "injected write failure for [" + persistenceId + "]", persistenceId, 0, null));
  }

  /**
   * Makes the next replay of an entity fail with a {@link JournalException}.
   *
   * @param persistenceId the entity whose next replay fails
   */
  public void failNextReplay(PersistenceId persistenceId) {
    failNextReplay.put(
        persistenceId,
        new JournalException(
            "injected replay failure for [" + persistenceId + "]", persistenceId, 0, null));
  }

  /**
   * Delays every subsequent write by the given duration before it is stored and confirmed.
   *
   * @param delay the delay, {@link Duration#ZERO} to switch it off
   */
  public void delayWrites(Duration delay) {
    this.writeDelay = delay;
  }

  /**
   * Delays the start of every subsequent replay, so tests can send commands to a recovering entity.
   *
   * @param delay the delay, {@link Duration#ZERO} to switch it off
   */
  public void delayReplays(Duration delay) {
    this.replayDelay = delay;
  }

  /** Holds every subsequent write, neither stored nor confirmed, until {@link #resumeWrites()}. */
  public void pauseWrites() {
    synchronized (gate) {
      if (held == null) {
        held = new ArrayDeque<>();
        paused = true;
      }
    }
  }

  /** Stores and confirms the held writes in arrival order, and lets new writes through again. */
  public void resumeWrites() {
    Queue<Runnable> released;
    synchronized (gate) {
      released = held;
      held = null;
      paused = false;
    }
    if (released != null) {
      released.forEach(Runnable::run);
    }
  }

  /**
   * How many writes are being held by {@link #pauseWrites()}.
   *
   * @return the number of held writes
   */
  public int heldWrites() {
    synchronized (gate) {
      return held == null ? 0 : held.size();
    }
  }
}
