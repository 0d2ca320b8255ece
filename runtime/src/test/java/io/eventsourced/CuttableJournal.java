package io.eventsourced;

import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.InMemoryJournal;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.JournalException;
import io.eventsourced.journal.PersistentRepr;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.apache.pekko.Done;

/**
 * An in-memory journal whose store can be cut off, for {@link EntityFaultCheckTest}. While cut,
 * every read fails, and so does every write: every second one after it was stored (its outcome
 * uncertain, as when a connection breaks at commit). A lying one confirms those every second
 * writes instead, without storing them; a tearing one stores only their first event.
 *
 * <p>Writes complete on the plugin's own dispatcher, as a journal doing I/O does. A journal that
 * confirms on the caller's thread lets callers that send the next command from each reply keep
 * Pekko's fork-join threads busy with tasks they queued themselves, and those threads then leave
 * tasks handed in from other threads (here: re-spawns) waiting until the load pauses (see
 * docs/getting-started.md, "A load that never waits").
 */
public final class CuttableJournal implements Journal {
  private final InMemoryJournal store;
  private final Executor dispatcher;
  private final AtomicLong writesWhileCut = new AtomicLong();
  private volatile boolean cut;
  private volatile boolean lying;
  private volatile boolean tearing;

  /**
   * Created by the plugin registry.
   *
   * @param context passed on to the in-memory journal
   */
  public CuttableJournal(PluginContext context) {
    this.store = new InMemoryJournal(context);
    this.dispatcher = context.dispatcher();
  }

  void cut() {
    cut = true;
  }

  void restore() {
    cut = false;
  }

  void lie() {
    lying = true;
  }

  void tear() {
    tearing = true;
  }

  private static <T> CompletionStage<T> unreachable(PersistenceId persistenceId, long sequenceNr) {
    return CompletableFuture.failedFuture(
        new JournalException("the store of [" + persistenceId + "] is cut off", persistenceId, sequenceNr, null));
  }

  @Override
  public CompletionStage<Done> append(AtomicWrite write) {
    return CompletableFuture.supplyAsync(() -> write, dispatcher).thenCompose(this::store);
  }

  private CompletionStage<Done> store(AtomicWrite write) {
    if (!cut) {
      return store.append(write);
    }
    if (writesWhileCut.incrementAndGet() % 2 == 0) {
      if (lying) {
        return CompletableFuture.completedFuture(Done.getInstance());
      }
      AtomicWrite stored =
          tearing ? new AtomicWrite(write.persistenceId(), write.expectedSequenceNr(), write.events().subList(0, 1)) : write;
      return store.append(stored).thenCompose(done -> unreachable(write.persistenceId(), write.expectedSequenceNr() + 1));
    }
    return unreachable(write.persistenceId(), write.expectedSequenceNr() + 1);
  }

  @Override
  public CompletionStage<Done> replay(
      PersistenceId persistenceId, long from, long to, long max, Consumer<PersistentRepr> onEvent) {
    return cut ? unreachable(persistenceId, from) : store.replay(persistenceId, from, to, max, onEvent);
  }

  @Override
  public CompletionStage<Long> highestSequenceNr(PersistenceId persistenceId) {
    return cut ? unreachable(persistenceId, 0) : store.highestSequenceNr(persistenceId);
  }
}
