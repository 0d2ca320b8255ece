package io.eventsourced.nats;

import io.eventsourced.PersistenceId;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The last known position of each recently written entity, so that an append needs no lookup.
 * Bounded, evicting the least recently used entity: an entity that keeps writing stays, and a
 * miss only costs one lookup. A lock guards it: every operation is a few hash-map steps, taken
 * by the appending threads and jnats' acknowledgement thread.
 *
 * <p>(A {@code ConcurrentHashMap} evicting its iterator's first key was tried: after many
 * evictions the iterator walks ever more empty bins, and the key it finds is often one just
 * inserted. With a few hundred thousand entities each eviction took hundreds of microseconds on
 * the acknowledgement thread.)
 */
final class PositionCache {
  private final int capacity;
  private final LinkedHashMap<PersistenceId, NatsJournal.Position> positions;

  PositionCache(int capacity) {
    this.capacity = capacity;
    this.positions =
        new LinkedHashMap<>(16, 0.75f, true) {
          @Override
          protected boolean removeEldestEntry(Map.Entry<PersistenceId, NatsJournal.Position> eldest) {
            return size() > PositionCache.this.capacity;
          }
        };
  }

  synchronized NatsJournal.Position get(PersistenceId id) {
    return positions.get(id);
  }

  /** Records a position, unless one of a later sequenceNr is known already. */
  synchronized void remember(PersistenceId id, NatsJournal.Position position) {
    if (capacity == 0) {
      return;
    }
    positions.merge(id, position, (old, now) -> now.sequenceNr() >= old.sequenceNr() ? now : old);
  }

  synchronized void remove(PersistenceId id) {
    positions.remove(id);
  }

  synchronized void clear() {
    positions.clear();
  }

  synchronized int size() {
    return positions.size();
  }
}
