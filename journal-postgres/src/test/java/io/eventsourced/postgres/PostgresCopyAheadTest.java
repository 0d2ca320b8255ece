package io.eventsourced.postgres;

import static io.eventsourced.postgres.PostgresTestSupport.outcome;
import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.ConcurrencyConflictException;
import io.eventsourced.journal.JournalException;
import io.eventsourced.journal.PersistentRepr;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.util.ArrayList;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * The writer's COPY opened ahead of its next batch. A long {@code max-batch-wait} keeps the
 * opened COPY waiting long enough for a test to act while it waits.
 */
@DisplayName("The PostgreSQL journal's COPY opened ahead of the next batch")
class PostgresCopyAheadTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("copy_ahead");
  /** The statement_timeout system's own schema, so neither system's COPYs are counted as the other's. */
  private static final String TIMEOUT_SCHEMA = PostgresTestSupport.freshSchema("copy_ahead_timeout");
  private static final int ENTITIES = 5;
  private static ActorTestKit testKit;
  /** A server that cancels any statement after 300ms, so also a COPY opened ahead that waits. */
  private static ActorTestKit statementTimeout;

  @BeforeAll
  static void start() {
    PostgresTestSupport.requireServer();
    String settings = "eventsourced.postgres { max-in-flight-batches = 1, max-batch-wait = 1s, pool-size = 3 }\n";
    testKit = PostgresTestSupport.testKit(SCHEMA, settings);
    // Tables created without the statement timeout, which a slow setup statement could exceed.
    ActorTestKit setup = PostgresTestSupport.testKit(TIMEOUT_SCHEMA, settings);
    try {
      journal(setup);
    } finally {
      setup.shutdownTestKit();
    }
    String url = PostgresTestSupport.defaults().url();
    statementTimeout = PostgresTestSupport.testKit(TIMEOUT_SCHEMA, settings + "eventsourced.postgres.url = \""
        + url + (url.contains("?") ? "&" : "?") + "options=-c%20statement_timeout%3D300\"");
  }

  @AfterAll
  static void shutdown() {
    if (testKit == null) {
      return; // No server: nothing was started or created.
    }
    try {
      testKit.shutdownTestKit();
      if (statementTimeout != null) {
        statementTimeout.shutdownTestKit();
      }
    } finally {
      PostgresTestSupport.dropSchema(SCHEMA);
      PostgresTestSupport.dropSchema(TIMEOUT_SCHEMA);
    }
  }

  private static PostgresJournal journal(ActorTestKit kit) {
    return (PostgresJournal) Persistence.get(kit.system()).journal();
  }

  private static List<PersistenceId> entities() {
    String type = "ahead-" + UUID.randomUUID();
    List<PersistenceId> ids = new ArrayList<>();
    for (int i = 0; i < ENTITIES; i++) {
      ids.add(PersistenceId.of(type, "e" + i));
    }
    return ids;
  }

  private static AtomicWrite write(PersistenceId id, long expected) {
    long seq = expected + 1;
    return new AtomicWrite(id, expected,
        List.of(new PersistentRepr(id, seq, 4, "", (id + "#" + seq).getBytes(StandardCharsets.UTF_8))));
  }

  /** Appends the next event of every entity at once; returns the outcomes, null for success. */
  private static List<Throwable> round(PostgresJournal journal, List<PersistenceId> ids, long[] expected)
      throws Exception {
    List<CompletableFuture<?>> writes = new ArrayList<>();
    for (int i = 0; i < ids.size(); i++) {
      writes.add(journal.append(write(ids.get(i), expected[i])).toCompletableFuture());
    }
    List<Throwable> outcomes = new ArrayList<>();
    for (int i = 0; i < ids.size(); i++) {
      Throwable error = outcome(writes.get(i));
      outcomes.add(error);
      if (error == null) {
        expected[i]++;
      }
    }
    return outcomes;
  }

  /**
   * Writes rounds until one was stored in one batch and the writer then opened the next COPY:
   * the writer now waits, its COPY open, for as many writes as that round had (up to
   * max-batch-wait, 1s).
   */
  private static long[] untilCopyOpenedAhead(PostgresJournal journal, List<PersistenceId> ids)
      throws Exception {
    return untilCopyOpenedAhead(SCHEMA, journal, ids);
  }

  private static long[] untilCopyOpenedAhead(String schema, PostgresJournal journal, List<PersistenceId> ids)
      throws Exception {
    long[] expected = new long[ids.size()];
    for (int r = 0; r < 20; r++) {
      long copied = journal.writer().copiedBatches();
      assertThat(round(journal, ids, expected)).containsOnlyNulls();
      if (journal.writer().copiedBatches() - copied == 1 && awaitBackendsInCopy(schema, 1, 500)) {
        return expected;
      }
    }
    throw new AssertionError("the writer opened no COPY ahead in 20 rounds");
  }

  @Test
  @DisplayName("stores the first write after the journal went idle at once, not waiting for a batch as full as the last")
  void loneWriteAfterIdle() throws Exception {
    PostgresJournal journal = journal(testKit);
    List<PersistenceId> ids = entities();
    long[] expected = untilCopyOpenedAhead(journal, ids);
    // The writer waits up to max-batch-wait (1s) for the next round, then ends.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (!journal.writer().idle() && System.nanoTime() < deadline) {
      Thread.sleep(10);
    }
    assertThat(journal.writer().idle()).as("the writer ended").isTrue();
    long start = System.nanoTime();
    assertThat(outcome(journal.append(write(ids.get(0), expected[0])).toCompletableFuture())).isNull();
    // Waiting for the last batch's five writes would take the whole second.
    assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)).as("ms to store a lone write").isLessThan(700);
  }

  /** The part of pg_stat_activity that shows the COPYs being sent into a schema's table. */
  private static String inCopy(String schema) {
    return " FROM pg_stat_activity WHERE datname = current_database() AND state = 'active'"
        + " AND query LIKE 'COPY %' AND query LIKE '%" + schema + "%'";
  }

  /** Polls until {@code n} of the backends writing to the schema are in a COPY, for up to {@code millis}. */
  private static boolean awaitBackendsInCopy(String schema, long n, long millis) throws Exception {
    try (Connection admin = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        PreparedStatement ps = admin.prepareStatement("SELECT count(*)" + inCopy(schema))) {
      long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
      while (true) {
        try (var rs = ps.executeQuery()) {
          rs.next();
          if (rs.getLong(1) == n) {
            return true;
          }
        }
        if (System.nanoTime() > deadline) {
          return false;
        }
        Thread.sleep(5);
      }
    }
  }

  private static List<Long> stored(PostgresJournal journal, PersistenceId id) throws Exception {
    List<Long> seqs = new ArrayList<>();
    journal.replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, e -> seqs.add(e.sequenceNr()))
        .toCompletableFuture().get(10, TimeUnit.SECONDS);
    return seqs;
  }

  /** Sends a round and checks that it went through the COPY the writer had opened ahead. */
  private static List<Throwable> roundThroughCopyAhead(PostgresJournal journal, List<PersistenceId> ids, long[] expected)
      throws Exception {
    long ahead = journal.writer().copiedAhead();
    List<Throwable> outcomes = round(journal, ids, expected);
    assertThat(journal.writer().copiedAhead()).as("batches sent through a COPY opened ahead").isEqualTo(ahead + 1);
    return outcomes;
  }

  /** Checks that entity i has exactly its events 1 to {@code counts[i]} stored. */
  private static void assertStored(PostgresJournal journal, List<PersistenceId> ids, long[] counts) throws Exception {
    for (int i = 0; i < ids.size(); i++) {
      assertThat(stored(journal, ids.get(i))).as("events of " + ids.get(i)).containsExactlyElementsOf(upTo(counts[i]));
    }
  }

  private static List<Long> upTo(long n) {
    List<Long> seqs = new ArrayList<>();
    for (long s = 1; s <= n; s++) {
      seqs.add(s);
    }
    return seqs;
  }

  @Test
  @DisplayName("stores the next batch through the COPY it opened, and ends that COPY when writes stop")
  void storesThroughItAndEndsItWhenIdle() throws Exception {
    PostgresJournal journal = journal(testKit);
    List<PersistenceId> ids = entities();
    long[] expected = untilCopyOpenedAhead(journal, ids);
    assertThat(roundThroughCopyAhead(journal, ids, expected)).containsOnlyNulls();
    assertThat(awaitBackendsInCopy(SCHEMA, 1, 500)).as("the next COPY opened while the writer waits").isTrue();
    // No writes come: after max-batch-wait (1s) the writer ends its COPY (storing nothing) and stops.
    assertThat(awaitBackendsInCopy(SCHEMA, 0, 10_000)).as("no COPY left once the journal is idle").isTrue();
    assertStored(journal, ids, expected);
  }

  @Test
  @DisplayName("fails only the stale write of a batch sent through a COPY opened ahead, and stores the others")
  void staleWriteThroughIt() throws Exception {
    PostgresJournal journal = journal(testKit);
    List<PersistenceId> ids = entities();
    long[] expected = untilCopyOpenedAhead(journal, ids);
    long[] sent = expected.clone();
    sent[2] = expected[2] - 1; // known to be stored, so the batch is copied; the COPY then fails
    List<Throwable> outcomes = roundThroughCopyAhead(journal, ids, sent);
    for (int i = 0; i < ids.size(); i++) {
      if (i == 2) {
        assertThat(outcomes.get(i)).isInstanceOf(ConcurrencyConflictException.class);
      } else {
        assertThat(outcomes.get(i)).isNull();
        expected[i]++;
      }
    }
    assertStored(journal, ids, expected);
  }

  @Test
  @DisplayName("fails the batch sent through a COPY whose backend was terminated while it waited, then goes on with a new connection")
  void terminatedWhileItWaits() throws Exception {
    PostgresJournal journal = journal(testKit);
    List<PersistenceId> ids = entities();
    long[] expected = untilCopyOpenedAhead(journal, ids);
    int terminated = 0;
    try (Connection admin = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        PreparedStatement ps = admin.prepareStatement("SELECT pg_terminate_backend(pid)" + inCopy(SCHEMA));
        var rs = ps.executeQuery()) {
      while (rs.next()) {
        terminated++;
      }
    }
    assertThat(terminated).as("backends terminated in their COPY").isEqualTo(1);
    // The batch sent through the dead COPY fails, and nothing of it is stored: the server ended
    // the COPY before it got any row. Every caller whose write failed is told so (the driver may
    // only learn it at the end of the COPY, so the message may call the outcome unknown); a
    // write that succeeded went in a later batch. round() counts only the successes.
    List<Throwable> outcomes = roundThroughCopyAhead(journal, ids, expected);
    assertThat(outcomes).as("failed writes").anyMatch(error -> error != null);
    for (Throwable error : outcomes) {
      if (error != null) {
        assertThat(error).isInstanceOf(JournalException.class).isNotInstanceOf(ConcurrencyConflictException.class);
      }
    }
    assertStored(journal, ids, expected);
    // The writer goes on with a new connection.
    assertThat(round(journal, ids, expected)).containsOnlyNulls();
    assertStored(journal, ids, expected);
  }

  @Test
  @DisplayName("stores the batch through a fresh COPY when the server cancelled the one opened ahead (statement_timeout)")
  void cancelledWhileItWaits() throws Exception {
    PostgresJournal journal = journal(statementTimeout);
    List<PersistenceId> ids = entities();
    long[] expected = untilCopyOpenedAhead(TIMEOUT_SCHEMA, journal, ids);
    // Past the server's statement_timeout: the server cancels the COPY as soon as rows reach it.
    Thread.sleep(400);
    assertThat(roundThroughCopyAhead(journal, ids, expected)).containsOnlyNulls();
    assertStored(journal, ids, expected);
  }

  @Test
  @DisplayName("keeps no connection while it waits for writes when the pool has none to spare, so others never wait for it")
  void neverKeepsThePoolsLastConnection() throws Exception {
    journal(testKit); // creates the schema
    PostgresSettings settings = PostgresSettings.fromConfig(
        PostgresTestSupport.config(
                "eventsourced.postgres { schema = \"" + SCHEMA + "\", pool-size = 2, max-in-flight-batches = 1,"
                    + " connection-timeout = 250ms }")
            .getConfig("eventsourced.journal.postgres"),
        "eventsourced.journal.postgres");
    ConnectionPool pool = ConnectionPool.acquire(testKit.system(), settings);
    // Writers on threads of their own, so that the test's own use of the pool's one connection
    // runs while a writer waits for its next batch (up to max-batch-wait, 1s).
    GroupCommit writer = new GroupCommit(pool.dataSource(), task -> new Thread(task).start(), Runnable::run,
        new Sql(settings), 1000, 1, Duration.ofSeconds(1), new StoredSequenceNrs(100));
    // Someone else holds one of the two connections throughout: the writer's is the last one.
    try (Connection held = pool.dataSource().getConnection()) {
      List<PersistenceId> ids = entities();
      long[] expected = new long[ids.size()];
      for (int r = 0; r < 10; r++) {
        List<CompletableFuture<?>> writes = new ArrayList<>();
        for (int i = 0; i < ids.size(); i++) {
          writes.add(writer.append(write(ids.get(i), expected[i]++)).toCompletableFuture());
        }
        for (CompletableFuture<?> w : writes) {
          assertThat(outcome(w)).isNull();
        }
        // Fails after connection-timeout (250ms) if the writer kept the connection.
        try (Connection c = pool.dataSource().getConnection()) {
          assertThat(c.isValid(1)).isTrue();
        }
      }
      assertThat(writer.copiedAhead()).as("batches stored by a COPY opened ahead").isZero();
      assertThat(writer.copiedBatches()).as("batches stored by COPY").isPositive();
    } finally {
      writer.close();
      writer.awaitIdle(Duration.ofSeconds(5));
      pool.release();
    }
  }
}
