package io.eventsourced.postgres;

import io.eventsourced.PersistenceId;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Per entity, a sequence number this journal knows to be stored because it committed or read
 * it. Events are never deleted, so such a row stays; an append whose expected sequenceNr is known
 * here needs no gap check in SQL (see {@link Sql#appendBatch}). A miss only costs that check.
 *
 * <p>Bounded: when it holds {@code capacity} entities it starts over, which is cheaper than LRU
 * bookkeeping on every append and only costs a few probes afterwards.
 */
final class StoredSequenceNrs {
  private final int capacity;
  private final Map<PersistenceId, Long> known = new ConcurrentHashMap<>();

  StoredSequenceNrs(int capacity) {
    this.capacity = capacity;
  }

  /** Whether the row {@code sequenceNr} of the entity is known to exist; 0 always "exists". */
  boolean isStored(PersistenceId id, long sequenceNr) {
    if (sequenceNr == 0) {
      return true;
    }
    Long stored = known.get(id);
    return stored != null && stored >= sequenceNr;
  }

  /** Records that rows up to {@code sequenceNr} of the entity exist. */
  void stored(PersistenceId id, long sequenceNr) {
    if (sequenceNr <= 0) {
      return;
    }
    if (known.size() >= capacity && !known.containsKey(id)) {
      known.clear();
    }
    known.merge(id, sequenceNr, Math::max);
  }
}
