package io.eventsourced.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.JournalException;
import io.eventsourced.journal.PersistentRepr;
import io.eventsourced.tck.EntityFaultCheck;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

@DisplayName("The PostgreSQL journal when the connection to the server is cut")
class PostgresConnectionFaultTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("fault");
  private static TcpProxy proxy;
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() throws Exception {
    PostgresTestSupport.requireServer();
    proxy = PostgresTestSupport.proxyToServer();
    testKit = PostgresTestSupport.testKitThrough(proxy, SCHEMA);
  }

  @AfterAll
  static void shutdown() {
    if (testKit != null) {
      testKit.shutdownTestKit();
      proxy.close();
      PostgresTestSupport.dropSchema(SCHEMA);
    }
  }

  /**
   * Writes like an entity: one write at a time with the expected sequenceNr; on a failure it
   * "re-spawns" by reading the highest stored sequenceNr (retrying while the server is away) and
   * continues from there.
   */
  private static final class Writer {
    final PersistenceId id;
    final Journal journal;
    final Map<Long, String> acknowledged = new ConcurrentHashMap<>();
    final AtomicInteger failures = new AtomicInteger();
    /** Failures of another type than JournalException; asserted after the run, not here. */
    final List<Throwable> unexpected = new CopyOnWriteArrayList<>();
    final AtomicInteger acksAfterRestore = new AtomicInteger();
    final CompletableFuture<Void> done = new CompletableFuture<>();
    volatile boolean stop;
    volatile boolean restored;
    long last;
    int attempt;

    Writer(Journal journal, PersistenceId id) {
      this.journal = journal;
      this.id = id;
    }

    void step() {
      if (stop) {
        done.complete(null);
        return;
      }
      attempt++;
      int count = 1 + attempt % 3;
      List<PersistentRepr> events = new ArrayList<>();
      List<String> payloads = new ArrayList<>();
      for (int i = 1; i <= count; i++) {
        String payload = id.entityId() + "#" + (last + i) + "@" + attempt;
        payloads.add(payload);
        events.add(new PersistentRepr(id, last + i, 4, "", payload.getBytes(StandardCharsets.UTF_8)));
      }
      journal
          .append(new AtomicWrite(id, last, events))
          .whenComplete(
              (ok, error) -> {
                if (error == null) {
                  for (int i = 0; i < count; i++) {
                    acknowledged.put(last + 1 + i, payloads.get(i));
                  }
                  last += count;
                  if (restored) {
                    acksAfterRestore.incrementAndGet();
                  }
                  step();
                } else {
                  Throwable cause = error instanceof CompletionException ? error.getCause() : error;
                  if (!(cause instanceof JournalException)) {
                    unexpected.add(cause);
                  }
                  failures.incrementAndGet();
                  respawn();
                }
              });
    }

    void respawn() {
      journal
          .highestSequenceNr(id)
          .whenComplete(
              (highest, error) -> {
                if (error != null) {
                  CompletableFuture.delayedExecutor(200, TimeUnit.MILLISECONDS).execute(this::respawn);
                } else {
                  last = highest;
                  step();
                }
              });
    }
  }

  @Test
  @DisplayName("stores every acknowledged event exactly once, fails the cut writes, and lets entities continue after a restore")
  void cutAndRestore() throws Exception {
    Journal journal = Persistence.get(testKit.system()).journal();
    List<Writer> writers = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      writers.add(new Writer(journal, PersistenceId.of("fault", "entity-" + i)));
    }
    writers.forEach(Writer::step);

    Thread.sleep(500);
    proxy.cut();
    Thread.sleep(1500);
    proxy.restore();
    writers.forEach(w -> w.restored = true);
    // Every entity must get writes through again; give the pool time to reconnect.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (writers.stream().anyMatch(w -> w.acksAfterRestore.get() < 3) && System.nanoTime() < deadline) {
      Thread.sleep(100);
    }
    writers.forEach(w -> w.stop = true);
    CompletableFuture.allOf(writers.stream().map(w -> w.done).toArray(CompletableFuture[]::new))
        .get(60, TimeUnit.SECONDS);

    int failures = writers.stream().mapToInt(w -> w.failures.get()).sum();
    LoggerFactory.getLogger(PostgresConnectionFaultTest.class)
        .info(
            "Fault run: {} events acknowledged, {} writes failed",
            writers.stream().mapToInt(w -> w.acknowledged.size()).sum(),
            failures);
    assertThat(failures).as("writes failed while the connection was cut").isPositive();
    try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        PreparedStatement ps =
            c.prepareStatement(
                "SELECT sequence_nr, payload FROM " + Sql.quote(SCHEMA) + ".event_journal"
                    + " WHERE type_name = ? AND entity_id = ? ORDER BY sequence_nr")) {
      for (Writer w : writers) {
        ps.setString(1, w.id.typeName());
        ps.setString(2, w.id.entityId());
        Map<Long, String> stored = new ConcurrentHashMap<>();
        Map<Integer, Integer> rowsOfAttempt = new HashMap<>();
        long expectedNext = 1;
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) {
            assertThat(rs.getLong(1)).as("contiguous sequenceNrs of %s", w.id).isEqualTo(expectedNext++);
            String payload = new String(rs.getBytes(2), StandardCharsets.UTF_8);
            stored.put(rs.getLong(1), payload);
            rowsOfAttempt.merge(Integer.parseInt(payload.substring(payload.lastIndexOf('@') + 1)), 1, Integer::sum);
          }
        }
        assertThat(w.unexpected).as("failures of %s other than JournalException", w.id).isEmpty();
        assertThat(stored).as("every acknowledged event of %s, exactly as written", w.id).containsAllEntriesOf(w.acknowledged);
        // A write whose outcome was uncertain may have landed, but only whole: every attempt
        // found in the table has all of its 1 + attempt % 3 events.
        rowsOfAttempt.forEach(
            (attempt, rows) ->
                assertThat(rows).as("events of %s stored by its write attempt %d", w.id, attempt).isEqualTo(1 + attempt % 3));
        assertThat(w.acksAfterRestore.get()).as("%s continued after the restore", w.id).isPositive();
      }
    }
  }

  @Test
  @DisplayName("through entities and their asks: tells every caller of a cut write, stores each acknowledged event once, and lets re-spawned entities recover what was stored and go on")
  void cutAndRestoreUnderEntities() throws Exception {
    EntityFaultCheck.Outcome outcome =
        EntityFaultCheck.run(testKit.system(), proxy::cut, Duration.ofMillis(1500), proxy::restore);
    LoggerFactory.getLogger(PostgresConnectionFaultTest.class).info("Entity fault run: {}", outcome);
  }
}
