package io.eventsourced;

import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.PersistentRepr;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Consumer;
import org.apache.pekko.Done;

/**
 * A journal plugin that breaks its contract: {@code append} throws instead of failing its stage,
 * and so does {@code replay} for entities whose id starts with {@code replay-throws}; for ids
 * starting with {@code asserts} both throw an {@link AssertionError}, as a failed {@code assert}
 * would. It holds no events. For {@link PluginConfigTest}.
 */
public final class ThrowingJournal implements Journal {

  /**
   * Created by the plugin registry.
   *
   * @param context unused
   */
  public ThrowingJournal(PluginContext context) {}

  @Override
  public CompletionStage<Done> append(AtomicWrite write) {
    if (write.persistenceId().entityId().startsWith("asserts")) {
      throw new AssertionError("append asserted for [" + write.persistenceId() + "]");
    }
    throw new IllegalStateException("append threw for [" + write.persistenceId() + "]");
  }

  @Override
  public CompletionStage<Done> replay(
      PersistenceId persistenceId, long from, long to, long max, Consumer<PersistentRepr> onEvent) {
    if (persistenceId.entityId().startsWith("asserts-replay")) {
      throw new AssertionError("replay asserted for [" + persistenceId + "]");
    }
    if (persistenceId.entityId().startsWith("replay-throws")) {
      throw new IllegalStateException("replay threw for [" + persistenceId + "]");
    }
    return CompletableFuture.completedFuture(Done.getInstance());
  }

  @Override
  public CompletionStage<Long> highestSequenceNr(PersistenceId persistenceId) {
    return CompletableFuture.completedFuture(0L);
  }
}
