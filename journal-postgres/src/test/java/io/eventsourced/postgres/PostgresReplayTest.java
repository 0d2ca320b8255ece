package io.eventsourced.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.PersistentRepr;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The PostgreSQL journal's replay")
class PostgresReplayTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("replay");
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() {
    PostgresTestSupport.requireServer();
    testKit = PostgresTestSupport.testKit(SCHEMA, "");
  }

  @AfterAll
  static void shutdown() {
    if (testKit != null) {
      testKit.shutdownTestKit();
      PostgresTestSupport.dropSchema(SCHEMA);
    }
  }

  @Test
  @DisplayName("gives every event its own manifest when an entity's events cycle through more types than a page decodes once")
  void manifestsOfManyTypes() throws Exception {
    Journal journal = Persistence.get(testKit.system()).journal();
    PersistenceId id = PersistenceId.of("replay", UUID.randomUUID().toString());
    List<PersistentRepr> events = new ArrayList<>();
    List<String> manifests = new ArrayList<>();
    for (int seq = 1; seq <= 60; seq++) {
      // 12 types, more than the 8 a page keeps decoded, in a cycle, then one type a few times
      String manifest = seq <= 48 ? "type-" + (seq % 12) + "-é" : "last";
      manifests.add(manifest);
      events.add(new PersistentRepr(id, seq, 4, manifest, new byte[] {(byte) seq}));
    }
    journal.append(new AtomicWrite(id, 0, events)).toCompletableFuture().get(10, TimeUnit.SECONDS);
    List<PersistentRepr> read = new ArrayList<>();
    journal.replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, read::add).toCompletableFuture().get(10, TimeUnit.SECONDS);
    assertThat(read).extracting(PersistentRepr::manifest).containsExactlyElementsOf(manifests);
    assertThat(read).extracting(e -> (long) e.payload()[0]).containsExactlyElementsOf(
        read.stream().map(PersistentRepr::sequenceNr).toList());
  }
}
