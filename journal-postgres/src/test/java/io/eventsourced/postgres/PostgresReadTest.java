package io.eventsourced.postgres;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.PersistentRepr;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The PostgreSQL journal's reads")
class PostgresReadTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("read");
  private static ActorTestKit testKit;
  private static Journal journal;

  @BeforeAll
  static void start() {
    PostgresTestSupport.requireServer();
    testKit = PostgresTestSupport.testKit(SCHEMA, "eventsourced.postgres.replay-fetch-size = 50\n");
    journal = Persistence.get(testKit.system()).journal();
  }

  @AfterAll
  static void shutdown() {
    if (testKit != null) {
      testKit.shutdownTestKit();
      PostgresTestSupport.dropSchema(SCHEMA);
    }
  }

  private static PersistenceId stored(int events) throws Exception {
    PersistenceId id = PersistenceId.of("reads", UUID.randomUUID().toString());
    List<PersistentRepr> reprs = new ArrayList<>();
    for (int n = 1; n <= events; n++) {
      reprs.add(new PersistentRepr(id, n, 4, "", new byte[] {(byte) n}));
    }
    journal.append(new AtomicWrite(id, 0, reprs)).toCompletableFuture().get(10, TimeUnit.SECONDS);
    return id;
  }

  @Test
  @DisplayName("stop delivering events once the caller has cancelled the replay")
  void replayStopsWhenCancelled() throws Exception {
    PersistenceId id = stored(1_000);
    AtomicLong delivered = new AtomicLong();
    CountDownLatch reached = new CountDownLatch(1);
    CountDownLatch cancelled = new CountDownLatch(1);
    // The consumer holds event 75, in the middle of the second page of 50, until the caller
    // has cancelled the replay.
    CompletableFuture<?> replay =
        journal.replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, e -> {
          if (delivered.incrementAndGet() == 75) {
            reached.countDown();
            try {
              cancelled.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException interrupted) {
              Thread.currentThread().interrupt();
            }
          }
        }).toCompletableFuture();
    assertThat(reached.await(10, TimeUnit.SECONDS)).isTrue();
    assertThat(replay.cancel(false)).as("cancelled while under way").isTrue();
    cancelled.countDown();
    Thread.sleep(500);
    assertThat(delivered.get()).isEqualTo(75);
  }

  @Test
  @DisplayName("report the server's error, not the failed rollback, when a read's backend is terminated")
  void terminatedReadReportsServerError() throws Exception {
    PersistenceId id = stored(1);
    String table = Sql.quote(SCHEMA) + ".event_journal";
    try (Connection locker = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        Connection watcher = PostgresTestSupport.connect(PostgresTestSupport.defaults())) {
      locker.setAutoCommit(false);
      try (PreparedStatement lock = locker.prepareStatement("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE")) {
        lock.execute();
      }
      CompletableFuture<Long> highest = journal.highestSequenceNr(id).toCompletableFuture();
      // In autocommit: a transaction would see pg_stat_activity as of its first look.
      int pid = blockedBackend(watcher, "max(sequence_nr)");
      try (PreparedStatement kill = watcher.prepareStatement("SELECT pg_terminate_backend(?)")) {
        kill.setInt(1, pid);
        kill.execute();
      }
      Throwable failure = PostgresTestSupport.outcome(highest);
      locker.rollback();
      assertThat(failure).isNotNull().hasMessageContaining("cannot read the highest sequenceNr of [" + id + "]");
      assertThat(failure.getCause()).isInstanceOf(SQLException.class);
      assertThat(((SQLException) failure.getCause()).getSQLState()).isEqualTo("57P01");
    }
    // The pool replaced the terminated connection.
    assertThat(journal.highestSequenceNr(id).toCompletableFuture().get(10, TimeUnit.SECONDS)).isEqualTo(1);
  }

  /** The pid of the backend waiting for a lock while running a statement containing {@code text}. */
  private static int blockedBackend(Connection c, String text) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    try (PreparedStatement ps = c.prepareStatement(
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            + " AND position(? in query) > 0")) {
      ps.setString(1, text);
      while (System.nanoTime() < deadline) {
        try (ResultSet rs = ps.executeQuery()) {
          if (rs.next()) {
            return rs.getInt(1);
          }
        }
        Thread.sleep(20);
      }
    }
    throw new AssertionError("no backend waits for the lock with [" + text + "]");
  }
}
