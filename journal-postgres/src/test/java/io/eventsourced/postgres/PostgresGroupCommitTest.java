package io.eventsourced.postgres;

import static io.eventsourced.postgres.PostgresTestSupport.outcome;
import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.ConcurrencyConflictException;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.JournalException;
import io.eventsourced.journal.PersistentRepr;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import javax.sql.DataSource;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The PostgreSQL journal's group commit")
class PostgresGroupCommitTest {
  private static final String SCHEMA = PostgresTestSupport.freshSchema("group_commit");
  private static ActorTestKit testKit;
  private static ActorTestKit secondProcess;

  @BeforeAll
  static void start() {
    PostgresTestSupport.requireServer();
    // One batch at a time, so that writes queued behind a blocked batch form the next batch.
    testKit = PostgresTestSupport.testKit(SCHEMA, "eventsourced.postgres.max-in-flight-batches = 1");
    secondProcess = PostgresTestSupport.testKit(SCHEMA, "");
  }

  @AfterAll
  static void shutdown() {
    if (testKit != null) {
      testKit.shutdownTestKit();
      secondProcess.shutdownTestKit();
      PostgresTestSupport.dropSchema(SCHEMA);
    }
  }

  private static Journal journal() {
    return Persistence.get(testKit.system()).journal();
  }

  private static PersistenceId freshId() {
    return PersistenceId.of("batch", UUID.randomUUID().toString());
  }

  private static AtomicWrite write(PersistenceId id, long expected, int count) {
    List<PersistentRepr> events = new ArrayList<>();
    for (int i = 1; i <= count; i++) {
      events.add(new PersistentRepr(id, expected + i, 4, "", (id + "#" + (expected + i)).getBytes(StandardCharsets.UTF_8)));
    }
    return new AtomicWrite(id, expected, events);
  }

  private static List<Long> stored(Journal journal, PersistenceId id) throws Exception {
    List<Long> seqs = new ArrayList<>();
    journal.replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, e -> seqs.add(e.sequenceNr()))
        .toCompletableFuture().get(10, TimeUnit.SECONDS);
    return seqs;
  }

  /** Stores events 1..n of an entity directly, so the journal has not seen them. */
  private static void storeDirectly(Connection c, PersistenceId id, int n) throws Exception {
    storeDirectly(c, id, 1, n);
  }

  /** Stores events from..to of an entity directly, so the journal has not seen them. */
  private static void storeDirectly(Connection c, PersistenceId id, long from, long to) throws Exception {
    try (PreparedStatement ps =
        c.prepareStatement(
            "INSERT INTO " + Sql.quote(SCHEMA) + ".event_journal"
                + " (type_name, entity_id, sequence_nr, serializer_id, manifest, payload)"
                + " VALUES (?, ?, ?, 4, '', ?)")) {
      for (long seq = from; seq <= to; seq++) {
        ps.setString(1, id.typeName());
        ps.setString(2, id.entityId());
        ps.setLong(3, seq);
        ps.setBytes(4, (id + "#" + seq).getBytes(StandardCharsets.UTF_8));
        ps.addBatch();
      }
      ps.executeBatch();
    }
  }

  /** This class's journal backends waiting on a lock (not those of anything else on the server). */
  private static final String LOCK_WAITERS =
      " FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'eventsourced'"
          + " AND wait_event_type = 'Lock' AND query LIKE '%" + SCHEMA + "%'";

  /**
   * Waits until one of the journal's backends waits on a row lock: its batch is then in flight,
   * and whatever is appended next queues for a later batch. Polled rather than slept, so the
   * tests mean the same on a loaded machine.
   */
  private static void awaitBatchWaitingOnLock() throws Exception {
    try (Connection admin = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        PreparedStatement ps =
            admin.prepareStatement(
                "SELECT count(*)" + LOCK_WAITERS)) {
      long waiting = 0;
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (waiting == 0 && System.nanoTime() < deadline) {
        try (var rs = ps.executeQuery()) {
          rs.next();
          waiting = rs.getLong(1);
        }
        if (waiting == 0) {
          Thread.sleep(10);
        }
      }
      assertThat(waiting).as("journal backends waiting on the blocker's row lock").isEqualTo(1);
    }
  }

  /**
   * A batch held up by the test: an uncommitted row of a fresh entity in an open transaction, and
   * the journal's append of that entity's first event, which waits on the row's lock. Whatever is
   * appended meanwhile queues for the batch after it; {@link #release} commits the row, so the
   * blocked write fails as a conflict and the queued writes are stored together.
   */
  private static final class BlockedBatch implements AutoCloseable {
    final PersistenceId id = freshId();
    private final Connection c;
    private final CompletableFuture<?> blocked;

    BlockedBatch(Journal journal) throws Exception {
      journal.highestSequenceNr(id).toCompletableFuture().get(10, TimeUnit.SECONDS); // table exists
      c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
      c.setAutoCommit(false);
      storeDirectly(c, id, 1);
      blocked = journal.append(write(id, 0, 1)).toCompletableFuture();
      awaitBatchWaitingOnLock();
    }

    void release() throws Exception {
      assertThat(blocked).as("the blocked batch").isNotDone();
      c.commit();
      assertThat(outcome(blocked)).isInstanceOf(ConcurrencyConflictException.class);
    }

    @Override
    public void close() throws SQLException {
      c.close();
    }
  }

  @Test
  @DisplayName("fails only the conflicting writes of a batch, stores none of their events, and stores the others")
  void conflictsInOneBatch() throws Exception {
    List<PersistenceId> good = new ArrayList<>();
    List<PersistenceId> seen = new ArrayList<>();
    List<PersistenceId> unseen = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      good.add(freshId());
    }
    for (int i = 0; i < 4; i++) {
      seen.add(freshId());
      unseen.add(freshId());
    }
    // Five events each: through the journal (it knows they are stored) and behind its back.
    for (PersistenceId id : seen) {
      journal().append(write(id, 0, 5)).toCompletableFuture().get(10, TimeUnit.SECONDS);
    }
    try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults())) {
      for (PersistenceId id : unseen) {
        storeDirectly(c, id, 5);
      }
    }
    try (BlockedBatch blocked = new BlockedBatch(journal())) {
      List<CompletableFuture<?>> goodWrites = new ArrayList<>();
      for (PersistenceId id : good) {
        goodWrites.add(journal().append(write(id, 0, 2)).toCompletableFuture());
      }
      List<CompletableFuture<?>> conflicting = new ArrayList<>();
      for (List<PersistenceId> ids : List.of(seen, unseen)) {
        // stale: 4 and 5 exist
        conflicting.add(journal().append(write(ids.get(0), 3, 2)).toCompletableFuture());
        // stale, and its last event 6 would be new: must not land partly
        conflicting.add(journal().append(write(ids.get(1), 3, 3)).toCompletableFuture());
        // ahead: 8 would leave a gap after 5
        conflicting.add(journal().append(write(ids.get(2), 7, 1)).toCompletableFuture());
        // fresh writer on an existing entity
        conflicting.add(journal().append(write(ids.get(3), 0, 1)).toCompletableFuture());
      }
      blocked.release();
      for (CompletableFuture<?> f : goodWrites) {
        assertThat(outcome(f)).isNull();
      }
      for (CompletableFuture<?> f : conflicting) {
        assertThat(outcome(f)).isInstanceOf(ConcurrencyConflictException.class);
      }
    }
    for (PersistenceId id : good) {
      assertThat(stored(journal(), id)).containsExactly(1L, 2L);
    }
    for (PersistenceId id : seen) {
      assertThat(stored(journal(), id)).containsExactly(1L, 2L, 3L, 4L, 5L);
    }
    for (PersistenceId id : unseen) {
      assertThat(stored(journal(), id)).containsExactly(1L, 2L, 3L, 4L, 5L);
    }
    // The conflict reports what is stored.
    Throwable stale = outcome(journal().append(write(seen.get(0), 2, 1)).toCompletableFuture());
    assertThat(((ConcurrencyConflictException) stale).actualSequenceNr()).isEqualTo(5);
  }

  @Test
  @DisplayName("reports a stale write as a conflict even when the commit of the rest of its batch fails")
  void conflictStaysAConflictWhenTheCommitFails() throws Exception {
    String table = Sql.quote(SCHEMA) + ".event_journal";
    String function = Sql.quote(SCHEMA) + ".refuse_poison";
    PersistenceId stale = freshId();
    PersistenceId poison = PersistenceId.of("batch", "poison-" + UUID.randomUUID());
    startJournal();
    try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults())) {
      storeDirectly(c, stale, 2);
    }
    // A deferred constraint trigger: the poison entity's rows fail the commit, not the insert.
    PostgresTestSupport.execute("CREATE FUNCTION " + function + "() RETURNS trigger LANGUAGE plpgsql AS"
        + " $$ BEGIN IF NEW.entity_id LIKE 'poison-%' THEN RAISE EXCEPTION 'poisoned at commit'; END IF;"
        + " RETURN NULL; END $$");
    PostgresTestSupport.execute("CREATE CONSTRAINT TRIGGER refuse_poison AFTER INSERT ON " + table
        + " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION " + function + "()");
    try (BlockedBatch blocked = new BlockedBatch(journal())) {
      // One batch: the COPY fails on the stale write's existing rows; the insert that skips them
      // leaves the stale write out and commits the poison write's rows, and that commit fails.
      CompletableFuture<?> staleWrite = journal().append(write(stale, 0, 2)).toCompletableFuture();
      CompletableFuture<?> poisonWrite = journal().append(write(poison, 0, 2)).toCompletableFuture();
      blocked.release();
      assertThat(outcome(staleWrite)).isInstanceOf(ConcurrencyConflictException.class);
      assertThat(outcome(poisonWrite)).isInstanceOf(JournalException.class)
          .hasMessageContaining("[" + poison + "] from sequenceNr [1]")
          .hasMessageContaining("may or may not be stored")
          .hasMessageContaining("poisoned at commit");
    } finally {
      PostgresTestSupport.execute("DROP TRIGGER refuse_poison ON " + table);
      PostgresTestSupport.execute("DROP FUNCTION " + function + "()");
    }
    assertThat(stored(journal(), stale)).containsExactly(1L, 2L);
    assertThat(stored(journal(), poison)).isEmpty();
  }

  @Test
  @DisplayName("keeps storing on the same writer while the entities of its last batch write again")
  void writerStaysWhileEntitiesWriteAgain() throws Exception {
    // Ten entities write twenty rounds; each writes again 2 ms after its acknowledgement, from
    // another thread, so the queue is empty for a moment after every batch. The writer waits
    // for them (max-batch-wait) instead of ending and leaving the next batch to a new task on
    // another thread, with another connection.
    String schema = PostgresTestSupport.freshSchema("group_commit_stay");
    ActorTestKit kit =
        PostgresTestSupport.testKit(
            schema,
            "eventsourced.postgres.max-in-flight-batches = 1\n"
                + "eventsourced.postgres.max-batch-wait = 500ms\n");
    try {
      PostgresJournal journal = (PostgresJournal) Persistence.get(kit.system()).journal();
      List<PersistenceId> ids = new ArrayList<>();
      for (int i = 0; i < 10; i++) {
        ids.add(freshId());
      }
      int rounds = 20;
      Executor later =
          CompletableFuture.delayedExecutor(2, TimeUnit.MILLISECONDS);
      List<CompletableFuture<Void>> done = new ArrayList<>();
      for (PersistenceId id : ids) {
        CompletableFuture<Void> finished = new CompletableFuture<>();
        done.add(finished);
        writeRounds(journal, id, 0, rounds, later, finished);
      }
      CompletableFuture.allOf(done.toArray(CompletableFuture[]::new)).get(60, TimeUnit.SECONDS);
      for (PersistenceId id : ids) {
        assertThat(stored(journal, id)).hasSize(rounds);
      }
      assertThat(journal.writer().startedWriters())
          .as("writers started for %s rounds of batches (one per round if each batch's writer ended)", rounds)
          .isLessThanOrEqualTo(3);
    } finally {
      kit.shutdownTestKit();
      PostgresTestSupport.dropSchema(schema);
    }
  }

  private static void writeRounds(
      Journal journal, PersistenceId id, long expected, int rounds, Executor later,
      CompletableFuture<Void> finished) {
    journal.append(write(id, expected, 1)).whenComplete((ok, error) -> {
      if (error != null) {
        finished.completeExceptionally(error);
      } else if (expected + 1 == rounds) {
        finished.complete(null);
      } else {
        later.execute(() -> writeRounds(journal, id, expected + 1, rounds, later, finished));
      }
    });
  }

  @Test
  @DisplayName("fails only the conflicting writes of a batch of one-event writes (stored in one round trip)")
  void conflictsInOneSingleEventBatch() throws Exception {
    List<PersistenceId> good = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      good.add(freshId());
    }
    PersistenceId seen = freshId();
    PersistenceId unseen = freshId();
    journal().append(write(seen, 0, 5)).toCompletableFuture().get(10, TimeUnit.SECONDS);
    PersistenceId ahead = freshId();
    PersistenceId existing = freshId();
    try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults())) {
      storeDirectly(c, unseen, 5);
      storeDirectly(c, ahead, 5);
      storeDirectly(c, existing, 2);
    }
    try (BlockedBatch blocked = new BlockedBatch(journal())) {
      List<CompletableFuture<?>> goodWrites = new ArrayList<>();
      for (PersistenceId id : good) {
        goodWrites.add(journal().append(write(id, 0, 1)).toCompletableFuture());
      }
      List<CompletableFuture<?>> conflicting = new ArrayList<>();
      for (PersistenceId id : List.of(seen, unseen)) {
        conflicting.add(journal().append(write(id, 3, 1)).toCompletableFuture());
      }
      // ahead: 8 would leave a gap after 5; and a fresh writer on an existing entity
      conflicting.add(journal().append(write(ahead, 7, 1)).toCompletableFuture());
      conflicting.add(journal().append(write(existing, 0, 1)).toCompletableFuture());
      blocked.release();
      for (CompletableFuture<?> f : goodWrites) {
        assertThat(outcome(f)).isNull();
      }
      for (CompletableFuture<?> f : conflicting) {
        assertThat(outcome(f)).isInstanceOf(ConcurrencyConflictException.class);
      }
    }
    assertThat(stored(journal(), ahead)).containsExactly(1L, 2L, 3L, 4L, 5L);
    assertThat(stored(journal(), existing)).containsExactly(1L, 2L);
    for (PersistenceId id : good) {
      assertThat(stored(journal(), id)).containsExactly(1L);
    }
    assertThat(stored(journal(), seen)).containsExactly(1L, 2L, 3L, 4L, 5L);
    assertThat(stored(journal(), unseen)).containsExactly(1L, 2L, 3L, 4L, 5L);
  }

  @Test
  @DisplayName("lets exactly one of two journals (two processes) win each race for the same entity")
  void twoProcessesRace() throws Exception {
    Journal other = Persistence.get(secondProcess.system()).journal();
    for (int round = 0; round < 20; round++) {
      PersistenceId id = freshId();
      journal().append(write(id, 0, 1)).toCompletableFuture().get(10, TimeUnit.SECONDS);
      other.highestSequenceNr(id).toCompletableFuture().get(10, TimeUnit.SECONDS);
      CompletableFuture<?> a = journal().append(write(id, 1, 2)).toCompletableFuture();
      CompletableFuture<?> b = other.append(write(id, 1, 1)).toCompletableFuture();
      Throwable errorA = outcome(a);
      Throwable errorB = outcome(b);
      assertThat(errorA == null ^ errorB == null).as("exactly one wins: %s / %s", errorA, errorB).isTrue();
      assertThat(errorA == null ? errorB : errorA).isInstanceOf(ConcurrencyConflictException.class);
      assertThat(stored(other, id)).containsExactlyElementsOf(errorA == null ? List.of(1L, 2L, 3L) : List.of(1L, 2L));
    }
  }

  @Test
  @DisplayName("completes a batch's writes together on the actor system's dispatcher, not on the writer's thread")
  void completesBatchOnSystemDispatcher() throws Exception {
    // Writes queued behind a blocked batch form one batch (see conflictsInOneBatch). Their
    // continuations (not async) run where the stages complete.
    List<PersistenceId> ids = List.of(freshId(), freshId(), freshId(), freshId(), freshId());
    Map<PersistenceId, String> threads = new java.util.concurrent.ConcurrentHashMap<>();
    Journal journal = journal();
    try (BlockedBatch blocked = new BlockedBatch(journal)) {
      List<CompletableFuture<?>> writes = new ArrayList<>();
      for (PersistenceId id : ids) {
        writes.add(
            journal.append(write(id, 0, 1))
                .whenComplete((ok, error) -> threads.put(id, Thread.currentThread().getName()))
                .toCompletableFuture());
      }
      blocked.release();
      CompletableFuture.allOf(writes.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
    }
    assertThat(threads).hasSize(ids.size());
    assertThat(threads.values())
        .as("threads that completed the writes of one batch")
        .allSatisfy(name -> assertThat(name).contains("pekko.actor.default-dispatcher"))
        .containsOnly(threads.get(ids.get(0)));
    for (PersistenceId id : ids) {
      assertThat(stored(journal, id)).containsExactly(1L);
    }
  }

  @Test
  @DisplayName("stores 200 concurrent single-event writes of 200 entities in far fewer transactions")
  void batchesConcurrentWrites() throws Exception {
    String type = "batch-" + UUID.randomUUID();
    List<CompletableFuture<?>> writes = new ArrayList<>();
    for (int i = 0; i < 200; i++) {
      writes.add(journal().append(write(PersistenceId.of(type, "e" + i), 0, 1)).toCompletableFuture());
    }
    CompletableFuture.allOf(writes.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
    Rows rows = rows(type);
    assertThat(rows.count()).isEqualTo(200);
    assertThat(rows.transactions()).as("transactions that stored 200 writes").isLessThan(50);
  }

  /** What is stored under a type: rows, the transactions that stored them, the smallest payload. */
  private record Rows(long count, long transactions, long smallestPayload) {}

  private static Rows rows(String type) throws Exception {
    // Rows inserted by one transaction share its id (xmin).
    try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        PreparedStatement ps =
            c.prepareStatement(
                "SELECT count(*), count(DISTINCT xmin::text), coalesce(min(length(payload)), 0) FROM "
                    + Sql.quote(SCHEMA) + ".event_journal WHERE type_name = ?")) {
      ps.setString(1, type);
      try (var rs = ps.executeQuery()) {
        rs.next();
        return new Rows(rs.getLong(1), rs.getLong(2), rs.getLong(3));
      }
    }
  }

  @Test
  @DisplayName("copies batches of writes it knows to be current, storing every field exactly, and falls back when one is stale")
  void copiesCurrentWrites() throws Exception {
    PostgresJournal journal = (PostgresJournal) journal();
    long copiedBefore = journal.writer().copiedBatches();
    String type = "copy-" + UUID.randomUUID();
    // Non-ASCII ids and manifests (incl. a surrogate pair), an empty and a large payload.
    byte[] large = new byte[300_000];
    new Random(7).nextBytes(large);
    List<PersistenceId> ids = List.of(
        PersistenceId.of(type, "plain"), PersistenceId.of(type, "ünïcödé 😀 id"), PersistenceId.of(type, "tab\tand\nnewline"));
    List<CompletableFuture<?>> writes = new ArrayList<>();
    for (PersistenceId id : ids) {
      List<PersistentRepr> events = List.of(
          new PersistentRepr(id, 1, 4, "manifest-ä-😀", new byte[0]),
          new PersistentRepr(id, 2, Integer.MAX_VALUE, "", large),
          new PersistentRepr(id, 3, -5, "m", id.entityId().getBytes(StandardCharsets.UTF_8)));
      writes.add(journal.append(new AtomicWrite(id, 0, events)).toCompletableFuture());
    }
    CompletableFuture.allOf(writes.toArray(CompletableFuture[]::new)).get(20, TimeUnit.SECONDS);
    assertThat(journal.writer().copiedBatches()).as("batches stored by COPY").isGreaterThan(copiedBefore);
    for (PersistenceId id : ids) {
      List<PersistentRepr> read = new ArrayList<>();
      journal.replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, read::add).toCompletableFuture().get(10, TimeUnit.SECONDS);
      assertThat(read).extracting(PersistentRepr::sequenceNr).containsExactly(1L, 2L, 3L);
      assertThat(read).extracting(PersistentRepr::serializerId).containsExactly(4, Integer.MAX_VALUE, -5);
      assertThat(read).extracting(PersistentRepr::manifest).containsExactly("manifest-ä-😀", "", "m");
      assertThat(read.get(0).payload()).isEmpty();
      assertThat(read.get(1).payload()).isEqualTo(large);
      assertThat(read.get(2).payload()).isEqualTo(id.entityId().getBytes(StandardCharsets.UTF_8));
    }

    // A stale write in a batch the journal would copy: the COPY fails as a whole, the batch is
    // stored again without it, and the stale write alone is a conflict. A blocked batch ahead
    // (see conflictsInOneBatch) makes both writes queue for the same next batch.
    PersistenceId stale = ids.get(0);
    PersistenceId current = ids.get(1);
    PersistenceId blocker;
    try (BlockedBatch blocked = new BlockedBatch(journal)) {
      blocker = blocked.id;
      CompletableFuture<?> staleWrite = journal.append(write(stale, 1, 1)).toCompletableFuture();
      CompletableFuture<?> currentWrite = journal.append(write(current, 3, 1)).toCompletableFuture();
      blocked.release();
      assertThat(outcome(staleWrite)).isInstanceOf(ConcurrencyConflictException.class);
      assertThat(outcome(currentWrite)).isNull();
    }
    assertThat(stored(journal, stale)).containsExactly(1L, 2L, 3L);
    assertThat(stored(journal, current)).containsExactly(1L, 2L, 3L, 4L);
    assertThat(stored(journal, blocker)).containsExactly(1L);
  }

  @Test
  @DisplayName("fails a write whose id or manifest PostgreSQL text cannot hold, alone and naming the problem, storing nothing under another id")
  void unstorableText() throws Exception {
    String type = "text-" + UUID.randomUUID();
    PersistenceId loneSurrogate = PersistenceId.of(type, "a\uD800b");
    PersistenceId nul = PersistenceId.of(type, "a\u0000b");
    PersistenceId lookalike = PersistenceId.of(type, "a?b");
    PersistenceId fine = PersistenceId.of(type, "fine");
    CompletableFuture<?> surrogateWrite = journal().append(write(loneSurrogate, 0, 1)).toCompletableFuture();
    CompletableFuture<?> nulWrite = journal().append(write(nul, 0, 1)).toCompletableFuture();
    AtomicWrite badManifest =
        new AtomicWrite(fine, 0, List.of(new PersistentRepr(fine, 1, 4, "m\uDC00", new byte[] {1})));
    CompletableFuture<?> manifestWrite = journal().append(badManifest).toCompletableFuture();
    CompletableFuture<?> fineWrite = journal().append(write(fine, 0, 1)).toCompletableFuture();
    assertThat(outcome(surrogateWrite)).isInstanceOf(JournalException.class)
        .hasMessageContaining("lone surrogate").hasMessageContaining("nothing was stored");
    assertThat(outcome(nulWrite)).isInstanceOf(JournalException.class)
        .hasMessageContaining("NUL");
    assertThat(outcome(manifestWrite)).isInstanceOf(JournalException.class)
        .hasMessageContaining("manifest of the event at sequenceNr [1]");
    assertThat(outcome(fineWrite)).isNull();
    assertThat(stored(journal(), fine)).containsExactly(1L);
    assertThat(stored(journal(), lookalike)).isEmpty();
    assertThat(outcome(journal().highestSequenceNr(loneSurrogate).toCompletableFuture()))
        .isInstanceOf(JournalException.class);
    assertThat(outcome(journal().replay(loneSurrogate, 1, Long.MAX_VALUE, Long.MAX_VALUE, e -> {}).toCompletableFuture()))
        .isInstanceOf(JournalException.class);
  }

  @Test
  @DisplayName("reports a copied write whose backend the server terminated mid-statement as uncertain, and goes on with a new connection")
  void terminatedBackendIsUncertain() throws Exception {
    terminatedMidStatement(false);
  }

  @Test
  @DisplayName("reports an inserted write whose backend the server terminated mid-statement as uncertain, and goes on with a new connection")
  void terminatedBackendIsUncertainOnInsert() throws Exception {
    terminatedMidStatement(true);
  }

  /** With {@code unseen}, the journal does not know the entity's rows: it inserts with the gap probe. */
  private void terminatedMidStatement(boolean unseen) throws Exception {
    PersistenceId blocker = freshId();
    PersistenceId after = freshId();
    long expected = 0;
    if (unseen) {
      try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults())) {
        storeDirectly(c, blocker, 1);
      }
      expected = 1;
    }
    try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        Connection admin = PostgresTestSupport.connect(PostgresTestSupport.defaults())) {
      // The journal's statement waits on this uncommitted row of the same key.
      c.setAutoCommit(false);
      storeDirectly(c, blocker, expected + 1, expected + 1);
      CompletableFuture<?> blocked = journal().append(write(blocker, expected, 1)).toCompletableFuture();
      admin.setAutoCommit(true);
      int terminated = 0;
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (terminated == 0 && System.nanoTime() < deadline) {
        try (PreparedStatement ps =
                admin.prepareStatement(
                    "SELECT pg_terminate_backend(pid)" + LOCK_WAITERS);
            var rs = ps.executeQuery()) {
          while (rs.next()) {
            terminated++;
          }
        }
        if (terminated == 0) {
          Thread.sleep(20);
        }
      }
      assertThat(terminated).as("journal backends waiting on the lock").isEqualTo(1);
      Throwable error = outcome(blocked);
      assertThat(error).isInstanceOf(JournalException.class)
          .isNotInstanceOf(ConcurrencyConflictException.class)
          .hasMessageContaining("may or may not be stored");
      c.rollback();
    }
    assertThat(outcome(journal().append(write(after, 0, 2)).toCompletableFuture())).isNull();
    assertThat(stored(journal(), after)).containsExactly(1L, 2L);
  }

  /** An id too long for an entry of the primary key's index: PostgreSQL refuses its rows (54000). */
  private static PersistenceId tooLongForTheIndex() {
    byte[] random = new byte[6000];
    new Random().nextBytes(random);
    return PersistenceId.of("batch", Base64.getEncoder().encodeToString(random));
  }

  @Test
  @DisplayName("fails only the write whose row the server refuses (an id too long for the index) when the batch is copied")
  void refusedRowFailsAloneInACopy() throws Exception {
    long copiedBefore = ((PostgresJournal) journal()).writer().copiedBatches();
    refusedRowFailsAlone(2, false);
    assertThat(((PostgresJournal) journal()).writer().copiedBatches()).as("batches stored by COPY").isGreaterThan(copiedBefore);
  }

  @Test
  @DisplayName("fails only the write whose row the server refuses in a batch of one-event writes")
  void refusedRowFailsAloneInSingleEventInsert() throws Exception {
    refusedRowFailsAlone(1, true);
  }

  @Test
  @DisplayName("fails only the write whose row the server refuses in a batch stored in a transaction")
  void refusedRowFailsAloneInTransaction() throws Exception {
    refusedRowFailsAlone(2, true);
  }

  /**
   * One batch of good writes and a write PostgreSQL refuses. With {@code gapCheck}, one write's
   * history was stored behind the journal's back, so the batch cannot be copied and takes the
   * insert (autocommit for one-event writes, a transaction otherwise).
   */
  private void refusedRowFailsAlone(int events, boolean gapCheck) throws Exception {
    PersistenceId bad = tooLongForTheIndex();
    PersistenceId unseen = freshId();
    List<PersistenceId> good = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      good.add(freshId());
    }
    if (gapCheck) {
      startJournal();
      try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults())) {
        storeDirectly(c, unseen, 2);
      }
    }
    try (BlockedBatch blocked = new BlockedBatch(journal())) {
      List<CompletableFuture<?>> goodWrites = new ArrayList<>();
      for (PersistenceId id : good) {
        goodWrites.add(journal().append(write(id, 0, events)).toCompletableFuture());
      }
      CompletableFuture<?> badWrite = journal().append(write(bad, 0, events)).toCompletableFuture();
      CompletableFuture<?> unseenWrite =
          gapCheck ? journal().append(write(unseen, 2, events)).toCompletableFuture() : null;
      blocked.release();
      Throwable refused = outcome(badWrite);
      assertThat(refused).isInstanceOf(JournalException.class)
          .hasMessageContaining("cannot append events for [" + bad + "] from sequenceNr [1]");
      assertThat(refused.getCause()).isInstanceOf(SQLException.class);
      assertThat(((SQLException) refused.getCause()).getSQLState()).isEqualTo("54000");
      for (CompletableFuture<?> f : goodWrites) {
        assertThat(outcome(f)).isNull();
      }
      if (gapCheck) {
        assertThat(outcome(unseenWrite)).isNull();
        assertThat(stored(journal(), unseen)).hasSize(2 + events);
      }
    }
    for (PersistenceId id : good) {
      assertThat(stored(journal(), id)).hasSize(events);
    }
    assertThat(stored(journal(), bad)).isEmpty();
  }

  @Test
  @DisplayName("stores large events in several batches of at most 8 MB")
  void largeEventsSplitIntoSeveralBatches() throws Exception {
    String type = "large-" + UUID.randomUUID();
    byte[] payload = new byte[1 << 20];
    List<PersistenceId> ids = new ArrayList<>();
    try (BlockedBatch blocked = new BlockedBatch(journal())) {
      // 12 MB queued behind the blocked batch: one batch without the byte limit.
      List<CompletableFuture<?>> writes = new ArrayList<>();
      for (int i = 0; i < 12; i++) {
        PersistenceId id = PersistenceId.of(type, "e" + i);
        ids.add(id);
        writes.add(journal().append(new AtomicWrite(id, 0, List.of(new PersistentRepr(id, 1, 4, "", payload))))
            .toCompletableFuture());
      }
      blocked.release();
      for (CompletableFuture<?> f : writes) {
        assertThat(outcome(f)).isNull();
      }
    }
    Rows rows = rows(type);
    assertThat(rows.count()).isEqualTo(12);
    assertThat(rows.transactions()).as("transactions that stored 12 MB").isGreaterThanOrEqualTo(2);
    assertThat(rows.smallestPayload()).isEqualTo(1 << 20);
  }

  @Test
  @DisplayName("refuses a write larger than one message to PostgreSQL can carry, alone and naming the limit")
  void refusesWriteOverOneGigabyte() throws Exception {
    PersistenceId id = freshId();
    byte[] megabyte = new byte[1 << 20];
    List<PersistentRepr> events = new ArrayList<>();
    for (int i = 1; i <= 1030; i++) {
      events.add(new PersistentRepr(id, i, 4, "", megabyte)); // one array, 1030 MB on the wire
    }
    Throwable refused = outcome(journal().append(new AtomicWrite(id, 0, events)).toCompletableFuture());
    assertThat(refused).isInstanceOf(JournalException.class)
        .hasMessageContaining("cannot append events for [" + id + "] from sequenceNr [1]")
        .hasMessageContaining("1 GB");
    assertThat(stored(journal(), id)).isEmpty();
    assertThat(outcome(journal().append(write(id, 0, 1)).toCompletableFuture())).isNull();
  }

  @Test
  @DisplayName("after an Error in one batch, a new writer stores the writes queued behind it")
  void errorInOneBatchStrandsNoQueuedWrite() throws Exception {
    PostgresJournal journal = (PostgresJournal) journal();
    DataSource real = journal.pool().dataSource();
    AtomicBoolean fail = new AtomicBoolean(true);
    DataSource failingOnce =
        (DataSource) Proxy.newProxyInstance(
            getClass().getClassLoader(), new Class<?>[] {DataSource.class},
            (proxy, method, args) -> {
              if (method.getName().equals("getConnection") && fail.getAndSet(false)) {
                throw new AssertionError("simulated");
              }
              try {
                return method.invoke(real, args);
              } catch (InvocationTargetException e) {
                throw e.getCause();
              }
            });
    // Writers run on threads of their own, started only once all three writes are queued.
    List<Runnable> held = new ArrayList<>();
    AtomicBoolean open = new AtomicBoolean();
    Executor gated = task -> {
      synchronized (held) {
        if (!open.get()) {
          held.add(task);
          return;
        }
      }
      startQuietly(task);
    };
    GroupCommit writer = new GroupCommit(failingOnce, gated, Runnable::run, new Sql(journal.settings()),
        1, 1, Duration.ZERO, new StoredSequenceNrs(100));
    PersistenceId a = freshId();
    PersistenceId b = freshId();
    PersistenceId c = freshId();
    CompletableFuture<?> first = writer.append(write(a, 0, 1)).toCompletableFuture();
    CompletableFuture<?> second = writer.append(write(b, 0, 1)).toCompletableFuture();
    CompletableFuture<?> third = writer.append(write(c, 0, 1)).toCompletableFuture();
    List<Runnable> start;
    synchronized (held) {
      start = new ArrayList<>(held);
      open.set(true);
    }
    assertThat(start).as("writers started before the gate opened").hasSize(1);
    startQuietly(start.get(0));
    assertThat(outcome(first)).isInstanceOf(JournalException.class)
        .hasMessageContaining("[" + a + "] from sequenceNr [1]")
        .hasRootCauseInstanceOf(AssertionError.class);
    assertThat(outcome(second)).isNull();
    assertThat(outcome(third)).isNull();
    assertThat(writer.startedWriters()).isEqualTo(2);
    assertThat(stored(journal, a)).isEmpty();
    assertThat(stored(journal, b)).containsExactly(1L);
    assertThat(stored(journal, c)).containsExactly(1L);
    writer.close();
  }

  @Test
  @DisplayName("on close, waits for the batch being stored to commit before it closes the pool")
  void closeWaitsForTheBatchBeingStored() throws Exception {
    closeWhileABatchIsStored("20s", true);
  }

  @Test
  @DisplayName("on close, waits at most close-timeout, and the write being stored still gets its outcome")
  void closeWaitsAtMostCloseTimeout() throws Exception {
    closeWhileABatchIsStored("200ms", false);
  }

  /**
   * Closes a journal of its own while its batch waits for a table lock that the test holds, and
   * releases the lock before ({@code releaseFirst}) or after close returns.
   */
  private void closeWhileABatchIsStored(String closeTimeout, boolean releaseFirst) throws Exception {
    ActorTestKit kit =
        PostgresTestSupport.testKit(SCHEMA, "eventsourced.postgres.close-timeout = " + closeTimeout);
    try {
      Journal journal = Persistence.get(kit.system()).journal();
      PersistenceId id = freshId();
      assertThat(outcome(journal.append(write(id, 0, 1)).toCompletableFuture())).isNull();
      CompletableFuture<?> write;
      CompletableFuture<Void> closing;
      try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults())) {
        c.setAutoCommit(false);
        try (var st = c.createStatement()) {
          st.execute("LOCK TABLE " + Sql.quote(SCHEMA) + ".event_journal IN SHARE MODE");
        }
        write = journal.append(write(id, 1, 1)).toCompletableFuture();
        awaitBatchWaitingOnLock();
        closing = CompletableFuture.runAsync(journal::close);
        if (releaseFirst) {
          Thread.sleep(300);
          assertThat(closing).as("close, while the batch waits for the lock").isNotDone();
          assertThat(write).isNotDone();
        } else {
          closing.get(10, TimeUnit.SECONDS); // returns although the batch is still waiting
        }
        c.commit();
      }
      closing.get(20, TimeUnit.SECONDS);
      Throwable outcome = outcome(write);
      long rows;
      try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
          PreparedStatement ps = c.prepareStatement(
              "SELECT count(*) FROM " + Sql.quote(SCHEMA) + ".event_journal WHERE type_name = ? AND entity_id = ?")) {
        ps.setString(1, id.typeName());
        ps.setString(2, id.entityId());
        try (var rs = ps.executeQuery()) {
          rs.next();
          rows = rs.getLong(1);
        }
      }
      if (releaseFirst) {
        assertThat(outcome).as("the write stored before the pool closed").isNull();
        assertThat(rows).isEqualTo(2);
      } else if (outcome == null) {
        // The pool is shared with the snapshot store, which still holds it: the batch finished.
        assertThat(rows).isEqualTo(2);
      } else {
        assertThat(outcome).isInstanceOf(JournalException.class);
        assertThat(rows).isBetween(1L, 2L);
      }
      assertThat(outcome(journal.append(write(id, 2, 1)).toCompletableFuture()))
          .isInstanceOf(JournalException.class)
          .hasMessageContaining("[" + id + "] from sequenceNr [3]")
          .hasMessageContaining("closed");
    } finally {
      kit.shutdownTestKit();
    }
  }

  /** Starts the plugin, which creates the tables, before a test stores rows behind its back. */
  private static void startJournal() throws Exception {
    journal().highestSequenceNr(freshId()).toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  /** Runs a writer on a thread of its own; the Error the test injects ends that thread quietly. */
  private static void startQuietly(Runnable writer) {
    Thread t = new Thread(writer, "test-writer");
    t.setUncaughtExceptionHandler((thread, error) -> { });
    t.start();
  }
}
