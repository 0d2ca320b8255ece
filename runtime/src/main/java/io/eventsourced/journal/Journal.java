package io.eventsourced.journal;

import io.eventsourced.PersistenceId;
import java.util.concurrent.CompletionStage;
import java.util.function.Consumer;
import org.apache.pekko.Done;

/**
 * The event log SPI. One instance per actor system and config path, shared by all entities, so
 * every method may be called concurrently for different entities. The runtime never calls
 * {@link #append} concurrently for the same entity, but a second process may (contract 5).
 *
 * <p>Implementations are created by the runtime through a public constructor taking a {@link
 * io.eventsourced.PluginContext}, and run blocking I/O on the context's dispatcher, never on the
 * caller's thread.
 *
 * <h2>Contract</h2>
 *
 * <ul>
 *   <li><b>Sequence numbers</b> are per entity, contiguous and start at 1. A store with global
 *       offsets maps them; it never exposes its own numbering as a sequence number.
 *   <li><b>Atomic writes.</b> All events of one {@link AtomicWrite} are stored together or not at
 *       all; replay never sees part of one.
 *   <li><b>Optimistic concurrency.</b> An append succeeds only if the entity's highest stored
 *       sequence number equals {@link AtomicWrite#expectedSequenceNr()} at the moment of the
 *       write. Otherwise the stage fails with {@link ConcurrencyConflictException}, nothing of the
 *       write is stored and nothing stored changes.
 *   <li><b>Uncertain outcome.</b> When the journal cannot tell whether a write was stored (a lost
 *       acknowledgement, a connection cut at commit), the stage fails with a {@link
 *       JournalException}; it never reports success unless the events are durably stored in the
 *       store's terms. A later replay shows exactly what was stored: no duplicates, no gaps.
 *   <li><b>Replay</b> delivers the events of one entity in ascending sequence number order,
 *       streamed, never materialising the whole history.
 *   <li>Failures are reported as failed stages carrying a {@link JournalException}, never thrown
 *       from the method itself.
 *   <li>Stages may complete on any thread, including the plugin's own I/O threads. The runtime
 *       only hands the outcome to the entity; other callers must not block in dependent stages.
 * </ul>
 */
public interface Journal extends AutoCloseable {

  /**
   * Stores the events of one write atomically, if the entity's highest stored sequence number is
   * the expected one.
   *
   * @param write the events and the expected last sequence number
   * @return completes when the events are durably stored; fails with {@link
   *     ConcurrencyConflictException} on a conflict, with {@link JournalException} on any other
   *     failure or uncertain outcome
   */
  CompletionStage<Done> append(AtomicWrite write);

  /**
   * Streams stored events of one entity to {@code onEvent}, in ascending sequence number order,
   * from {@code fromSequenceNr} to {@code toSequenceNr} inclusive, at most {@code max} of them.
   *
   * <p>{@code onEvent} is called sequentially (never concurrently) and each call happens-before the
   * next call and before the returned stage completes. If it throws, the replay stops and the
   * stage fails with that exception. Nothing is delivered if {@code fromSequenceNr > toSequenceNr}
   * or {@code max == 0}. A journal may stop delivering once the caller has completed or cancelled
   * the returned stage (the PostgreSQL journal does); the caller must not rely on either.
   *
   * @param persistenceId the entity
   * @param fromSequenceNr lowest sequence number to deliver, at least 1
   * @param toSequenceNr highest sequence number to deliver, {@code Long.MAX_VALUE} for all
   * @param max most events to deliver, {@code Long.MAX_VALUE} for no limit
   * @param onEvent receives each event
   * @return completes after the last event was delivered
   */
  CompletionStage<Done> replay(
      PersistenceId persistenceId,
      long fromSequenceNr,
      long toSequenceNr,
      long max,
      Consumer<PersistentRepr> onEvent);

  /**
   * The highest stored sequence number of an entity.
   *
   * @param persistenceId the entity
   * @return the highest sequence number, 0 for an entity with no events
   */
  CompletionStage<Long> highestSequenceNr(PersistenceId persistenceId);

  /** Releases connections and pools; idempotent. The runtime calls it on actor system shutdown. */
  @Override
  default void close() {}
}
