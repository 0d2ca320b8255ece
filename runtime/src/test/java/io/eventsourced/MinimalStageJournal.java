package io.eventsourced;

import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.InMemoryJournal;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.PersistentRepr;
import java.util.concurrent.CompletionStage;
import java.util.function.Consumer;
import org.apache.pekko.Done;

/**
 * An in-memory journal whose {@code append} returns a minimal stage ({@link
 * java.util.concurrent.CompletableFuture#minimalCompletionStage}): a legal {@link CompletionStage}
 * that is a {@code CompletableFuture} refusing {@code isDone}. For {@link PluginConfigTest}.
 */
public final class MinimalStageJournal implements Journal {
  private final InMemoryJournal events;

  /**
   * Created by the plugin registry.
   *
   * @param context the plugin context
   */
  public MinimalStageJournal(PluginContext context) {
    events = new InMemoryJournal(context);
  }

  @Override
  public CompletionStage<Done> append(AtomicWrite write) {
    return events.append(write).toCompletableFuture().minimalCompletionStage();
  }

  @Override
  public CompletionStage<Done> replay(
      PersistenceId persistenceId, long from, long to, long max, Consumer<PersistentRepr> onEvent) {
    return events.replay(persistenceId, from, to, max, onEvent);
  }

  @Override
  public CompletionStage<Long> highestSequenceNr(PersistenceId persistenceId) {
    return events.highestSequenceNr(persistenceId);
  }
}
