package io.eventsourced.nats;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.PersistenceId;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The NATS journal's position cache")
class PositionCacheTest {

  private static PersistenceId id(int n) {
    return PersistenceId.of("cached", "e" + n);
  }

  @Test
  @DisplayName("stays within its capacity and keeps the most recently used entities")
  void keepsTheRecentlyUsed() {
    PositionCache cache = new PositionCache(1_000);
    for (int n = 0; n < 5_000; n++) {
      cache.remember(id(n), new NatsJournal.Position(1, n + 1));
    }
    assertThat(cache.size()).isEqualTo(1_000);
    for (int n = 4_000; n < 5_000; n++) {
      assertThat(cache.get(id(n))).as("entity %d, among the last 1 000 written", n).isNotNull();
    }
    // An entity that keeps writing stays while newer ones arrive.
    cache.remember(id(4_000), new NatsJournal.Position(2, 5_001));
    for (int n = 5_000; n < 5_999; n++) {
      cache.remember(id(n), new NatsJournal.Position(1, n + 2));
    }
    assertThat(cache.get(id(4_000))).isEqualTo(new NatsJournal.Position(2, 5_001));
    assertThat(cache.get(id(4_001))).as("the least recently used").isNull();
  }

  @Test
  @DisplayName("keeps the later of two positions of an entity, and remembers nothing with capacity 0")
  void keepsTheLaterPosition() {
    PositionCache cache = new PositionCache(10);
    cache.remember(id(1), new NatsJournal.Position(5, 50));
    cache.remember(id(1), new NatsJournal.Position(4, 40));
    assertThat(cache.get(id(1))).isEqualTo(new NatsJournal.Position(5, 50));
    cache.remove(id(1));
    assertThat(cache.get(id(1))).isNull();
    PositionCache none = new PositionCache(0);
    none.remember(id(1), new NatsJournal.Position(1, 1));
    assertThat(none.get(id(1))).isNull();
  }
}
