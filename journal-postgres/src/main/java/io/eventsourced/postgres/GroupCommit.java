package io.eventsourced.postgres;

import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.ConcurrencyConflictException;
import io.eventsourced.journal.JournalException;
import io.eventsourced.journal.PersistentRepr;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.LongAdder;
import javax.sql.DataSource;
import org.apache.pekko.Done;
import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.HikariPoolMXBean;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyIn;
import org.postgresql.util.PSQLException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The group-commit writer: appends arriving concurrently from many entities are queued, and up to
 * {@code maxInFlight} writers each take their share of what is queued and being stored (at most
 * {@code maxBatchSize} events) and store it in one transaction with one statement, so that many
 * entities share one WAL flush, and batches pipeline: one is stored while the entities of
 * another prepare their next writes.
 *
 * <p>A COPY, and an insert of one-event writes, run in autocommit mode, PostgreSQL committing
 * them as they execute; other batches run the insert and the commit in an explicit transaction.
 *
 * <p>Each batch is first stored the fastest way that fails as a whole if any write is stale: a
 * binary COPY ({@link Sql#copyIn}) when no write needs the gap check, else a plain insert ({@link
 * Sql#appendFast}). Only after a unique violation is it stored with the slower statement that
 * skips stale writes ({@link Sql#appendBatch}). After an error one row can cause (an id too long
 * for the index, say), which stored nothing, each write of the batch is stored alone, so that
 * only the write at fault fails.
 *
 * <p>Per entity the contracts still hold: a write lands only if its expected sequence number is
 * the stored highest (see {@link Sql#appendBatch}); a write whose rows did not all land is a
 * conflict, and if some of them did land the transaction is rolled back and retried without it,
 * so nothing of a conflicting write is ever committed. A batch never holds two writes of the same
 * entity; a second one waits for the next batch.
 *
 * <p>Uncertain outcomes: an error before the commit leaves nothing stored (PostgreSQL discards an
 * uncommitted transaction when the connection drops); an error during the commit may or may not
 * have stored the batch. Either way every write of the batch fails with a {@link
 * JournalException}, and nothing is retried behind the caller's back, so a re-spawned entity sees
 * exactly what was committed. A COPY opened ahead of its batch (see {@link #drainLoop}) whose
 * connection was lost while it waited may only show the loss at its end: that batch then fails as
 * "may or may not be stored", although the server had ended the COPY before any row reached it.
 *
 * <p>A writer settles the outcome of each write of its batch while storing it, and then completes
 * all of the batch's stages in one task on the {@code completions} executor (the actor system's
 * dispatcher), not on its own thread: the callers' continuations (typically one message to each
 * entity of the batch) then run where the entities run, and the writer goes on to its next batch
 * at once. Completing 25 stages from the writer's thread was 25 hand-offs to the entities'
 * dispatcher, each a possible thread wake-up; one task is one (see docs/benchmarks.md).
 */
final class GroupCommit {
  private static final Logger log = LoggerFactory.getLogger(GroupCommit.class);

  /** Retries of a batch the server aborted as a deadlock or serialization failure. */
  private static final int MAX_RETRIES = 3;

  /**
   * A batch takes no further write once it holds this many bytes, so that large events are not
   * encoded into one huge buffer: memory stays bounded and a COPY stays far below PostgreSQL's
   * message limit. A single larger write is a batch of its own.
   */
  static final long MAX_BATCH_BYTES = 8L << 20;

  /**
   * The largest write: a write travels in one protocol message (a COPY's data or a statement's
   * arrays), and PostgreSQL takes at most 1 GB in one message. Leaves room for the framing.
   */
  static final long MAX_WRITE_BYTES = (1L << 30) - (1L << 20);

  /**
   * A queued write. Its outcome is settled by the writer that stores it and delivered to the
   * caller later, with the rest of its batch ({@link #deliver}); the first settlement wins.
   */
  private static final class Pending {
    final AtomicWrite write;
    /** About the bytes the write takes on the wire; counted once, on append, off the lock. */
    final long bytes;
    final CompletableFuture<Done> promise = new CompletableFuture<>();
    private boolean settled; // written and read by the writer; published by the delivery task
    private Throwable failure;

    Pending(AtomicWrite write) {
      this.write = write;
      this.bytes = bytes(write);
    }

    void succeed() {
      settled = true; // keeps an earlier failure
    }

    void fail(Throwable error) {
      if (!settled) {
        settled = true;
        failure = error;
      }
    }

    /** Completes the caller's stage with the settled outcome. */
    void complete() {
      if (!settled) {
        // Every path of store() settles every write; if a bug skipped one, fail it, never strand it.
        promise.completeExceptionally(
            new JournalException(
                "cannot confirm the append of events for [" + write.persistenceId()
                    + "] from sequenceNr [" + (write.expectedSequenceNr() + 1)
                    + "]: the journal lost track of the write, the events may or may not be stored",
                write.persistenceId(), write.expectedSequenceNr() + 1, null));
      } else if (failure == null) {
        promise.complete(Done.getInstance());
      } else {
        promise.completeExceptionally(failure);
      }
    }
  }

  private final DataSource dataSource;
  private final Executor executor;
  private final Executor completions;
  private final Sql sql;
  private final int maxBatchSize;
  private final int maxInFlight;
  private final StoredSequenceNrs storedSequenceNrs;

  private final ArrayDeque<Pending> queue = new ArrayDeque<>(); // guarded by this
  private int inFlight; // writers running; guarded by this
  private boolean closed; // guarded by this
  private final long maxWaitNanos;
  private int lastBatchWrites; // size of the latest batch; guarded by this
  private int storingWrites; // writes in batches being stored; guarded by this
  private int waiting; // writers waiting for a fuller batch; guarded by this
  private final LongAdder copiedBatches = new LongAdder();
  private final LongAdder copiedAhead = new LongAdder();
  /** The pool's counts, to see whether anyone waits for a connection; null if not HikariCP. */
  private final HikariPoolMXBean poolStats;
  private final LongAdder startedWriters = new LongAdder();

  GroupCommit(
      DataSource dataSource,
      Executor executor,
      Executor completions,
      Sql sql,
      int maxBatchSize,
      int maxInFlight,
      Duration maxWait,
      StoredSequenceNrs storedSequenceNrs) {
    this.maxWaitNanos = maxWait.toNanos();
    this.dataSource = dataSource;
    this.storedSequenceNrs = storedSequenceNrs;
    this.executor = executor;
    this.completions = completions;
    this.sql = sql;
    this.maxBatchSize = maxBatchSize;
    this.maxInFlight = maxInFlight;
    this.poolStats = poolStats(dataSource);
  }

  private static HikariPoolMXBean poolStats(DataSource dataSource) {
    try {
      return dataSource.isWrapperFor(HikariDataSource.class)
          ? dataSource.unwrap(HikariDataSource.class).getHikariPoolMXBean()
          : null;
    } catch (SQLException e) {
      return null;
    }
  }

  /**
   * Whether a writer may keep its connection while it waits for its next batch: only while
   * nobody waits for one and the pool has as many idle as there may be writers, so that one stays
   * for a replay or a snapshot even if every other writer takes one. (One that asks while the
   * writer waits may still wait for it, at most {@code max-batch-wait}.)
   */
  private boolean poolCanSpare() {
    return poolStats != null
        && poolStats.getThreadsAwaitingConnection() == 0
        && poolStats.getIdleConnections() >= maxInFlight;
  }

  CompletionStage<Done> append(AtomicWrite write) {
    Pending pending = new Pending(write);
    String unstorable = unstorable(pending);
    if (unstorable != null) {
      // Fails this write alone, before it could fail or corrupt a batch.
      pending.promise.completeExceptionally(
          new JournalException(
              "cannot append events for [" + write.persistenceId() + "] from sequenceNr ["
                  + (write.expectedSequenceNr() + 1) + "]: " + unstorable + "; nothing was stored",
              write.persistenceId(), write.expectedSequenceNr() + 1, null));
      return pending.promise;
    }
    boolean startWriter;
    synchronized (this) {
      if (closed) {
        pending.promise.completeExceptionally(closedError(write));
        return pending.promise;
      }
      queue.addLast(pending);
      if (waiting > 0 && queue.size() >= lastBatchWrites) {
        notifyAll();
      }
      startWriter = inFlight < maxInFlight;
      if (startWriter) {
        inFlight++;
      }
    }
    if (startWriter) {
      startWriter();
    }
    return pending.promise;
  }

  /** Starts a writer counted in {@code inFlight} already. */
  private void startWriter() {
    // Counted first: the new writer may be done before execute returns here.
    startedWriters.increment();
    try {
      executor.execute(this::drainLoop);
    } catch (RuntimeException e) {
      startedWriters.decrement();
      // The dispatcher is shutting down (or refuses for another reason): nobody will write what
      // is queued.
      List<Pending> orphans;
      synchronized (this) {
        inFlight--;
        idleIfDone();
        orphans = inFlight == 0 ? takeAll() : List.of();
      }
      for (Pending p : orphans) {
        p.promise.completeExceptionally(
            new JournalException(
                "cannot append events for [" + p.write.persistenceId() + "] from sequenceNr ["
                    + (p.write.expectedSequenceNr() + 1) + "]: the journal's dispatcher rejected the write",
                p.write.persistenceId(), p.write.expectedSequenceNr() + 1, e));
      }
    }
  }

  private static String unstorable(Pending pending) {
    AtomicWrite write = pending.write;
    String problem = CopyEncoder.unstorable(write.persistenceId());
    if (problem != null) {
      return problem;
    }
    if (pending.bytes > MAX_WRITE_BYTES) {
      return "its " + write.events().size() + " events take " + pending.bytes + " bytes, more than the "
          + MAX_WRITE_BYTES + " that fit in one message to PostgreSQL (1 GB at most)";
    }
    for (PersistentRepr e : write.events()) {
      if (!CopyEncoder.storable(e.manifest())) {
        return "the manifest of the event at sequenceNr [" + e.sequenceNr()
            + "] contains a NUL character or a lone surrogate, which PostgreSQL text cannot hold";
      }
    }
    return null;
  }

  /** How many batches were stored by COPY; for tests. */
  long copiedBatches() {
    return copiedBatches.sum();
  }

  /** How many batches were sent through a COPY opened before the batch was taken; for tests. */
  long copiedAhead() {
    return copiedAhead.sum();
  }

  /** Whether no writer runs; for tests. */
  synchronized boolean idle() {
    return inFlight == 0;
  }

  /** How many writers (drain loops) were started on the dispatcher; for tests. */
  long startedWriters() {
    return startedWriters.sum();
  }

  /**
   * Fails every queued write and lets no writer take another batch; the batches being stored
   * go on (see {@link #awaitIdle}).
   */
  void close() {
    List<Pending> orphans;
    synchronized (this) {
      closed = true;
      orphans = takeAll();
      notifyAll();
    }
    for (Pending p : orphans) {
      p.promise.completeExceptionally(closedError(p.write));
    }
  }

  /**
   * After {@link #close}, waits up to {@code timeout} for the batches being stored to finish, so
   * that closing the pool does not cut them off in the middle of a commit.
   *
   * @return whether every writer had finished
   */
  boolean awaitIdle(Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    synchronized (this) {
      try {
        while (inFlight > 0) {
          long left = deadline - System.nanoTime();
          if (left <= 0) {
            return false;
          }
          wait(left / 1_000_000, (int) (left % 1_000_000));
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return false;
      }
      return true;
    }
  }

  /** Wakes {@link #awaitIdle} once the last writer has ended; called under the lock. */
  private void idleIfDone() {
    if (inFlight == 0 && closed) {
      notifyAll();
    }
  }

  /**
   * A writer: takes batches until the queue is empty.
   *
   * <p>After a batch of several writes stored by COPY, it opens the COPY of the next batch
   * before it waits for that batch to fill: the COPY's first round trip (the statement and the
   * server's go-ahead) then overlaps the entities' turnaround instead of adding to it. The
   * connection stays with the writer meanwhile; see {@link Session}.
   */
  private void drainLoop() {
    Session session = new Session();
    boolean mayWait = true;
    boolean openAhead = false;
    List<Pending> batch = null; // taken and counted in storingWrites
    boolean handedOff = false; // batch given to the delivery task
    try {
      while (true) {
        if (openAhead && !session.heldTooLong()) {
          session.openCopy();
        } else {
          session.release();
        }
        List<Pending> next;
        synchronized (this) {
          if (mayWait) {
            awaitFullerBatch();
          }
          next = nextBatch();
          if (next.isEmpty() && !session.holding()) {
            inFlight--;
            if (inFlight == 0) {
              // The journal went idle: the next write does not belong to the last burst, and
              // must not wait for a batch as full as its last one.
              lastBatchWrites = 0;
            }
            idleIfDone();
            return;
          }
          if (!next.isEmpty()) {
            lastBatchWrites = next.size();
            storingWrites += next.size();
            batch = next;
            handedOff = false;
          }
        }
        if (next.isEmpty()) {
          // Hands the connection back before ending; the next round ends the writer unless a
          // write came in meanwhile, which nobody else would store (this writer still counts).
          session.release();
          mayWait = false;
          openAhead = false;
          continue;
        }
        mayWait = true;
        Error fatal = null;
        try {
          store(session, batch);
        } catch (RuntimeException | Error e) {
          // A bug must not strand callers: whatever is not settled yet fails. The connection
          // may be anywhere in the protocol (even inside a COPY): the pool must not get it back.
          failUnsettled(batch, e);
          session.discard();
          if (e instanceof Error error) {
            fatal = error;
          }
        }
        // The only delivery of the batch: every outcome is settled by now, and nothing touches
        // the batch's writes after they are handed to the delivery task.
        deliver(batch);
        handedOff = true;
        boolean spare = poolCanSpare();
        synchronized (this) {
          storingWrites -= batch.size();
          openAhead = !closed && spare && maxWaitNanos > 0 && batch.size() > 1 && session.copiedCleanly();
        }
        batch = null;
        if (fatal != null) {
          throw fatal;
        }
      }
    } catch (RuntimeException | Error e) {
      // This writer ends with the error (from store(), or a bug or an Error around it): its
      // connection must not leak, its batch's callers must hear, and a new writer takes what is
      // queued, which would otherwise wait for the next append while its entities wait for it.
      session.discard();
      if (batch != null && !handedOff) {
        failUnsettled(batch, e);
        for (Pending p : batch) {
          p.complete();
        }
      }
      boolean replace;
      synchronized (this) {
        if (batch != null) {
          storingWrites -= batch.size();
        }
        replace = !closed && !queue.isEmpty();
        if (!replace) {
          inFlight--;
          idleIfDone();
        }
      }
      if (replace) {
        startWriter();
      }
      throw e;
    }
  }

  private static void failUnsettled(List<Pending> batch, Throwable e) {
    for (Pending p : batch) {
      p.fail(
          new JournalException(
              "cannot append events for [" + p.write.persistenceId() + "] from sequenceNr ["
                  + (p.write.expectedSequenceNr() + 1) + "]: " + e,
              p.write.persistenceId(), p.write.expectedSequenceNr() + 1, e));
    }
  }

  /**
   * When the latest batch held several writes but fewer are queued now, waits up to {@code
   * max-batch-wait} for as many: the entities of the latest batch are typically about to write
   * again, and one fuller batch costs one round trip and one WAL flush instead of two. A single
   * writer (latest batch of one) never waits, nor the first writer after the journal went idle,
   * so a lone entity sees no added latency.
   *
   * <p>It waits with an empty queue too, right after storing a batch: the writer then stores the
   * next batch on the same thread, with the same pooled connection. Ending instead leaves the
   * next batch to a new task, which the thread pool gives to its longest idle thread, and so to
   * a connection and server backend idle for as long; on a small machine that cost the counter
   * sample about 15 % of its write rate (see docs/benchmarks.md).
   */
  private void awaitFullerBatch() {
    if (maxWaitNanos <= 0 || lastBatchWrites <= 1 || queue.size() >= lastBatchWrites) {
      return;
    }
    long deadline = System.nanoTime() + maxWaitNanos;
    waiting++;
    try {
      while (!closed && queue.size() < lastBatchWrites) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          break;
        }
        wait(left / 1_000_000, (int) (left % 1_000_000));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      waiting--;
    }
  }

  private List<Pending> nextBatch() {
    if (closed) {
      return new ArrayList<>();
    }
    // This writer's share of the writes waiting or being stored: with a few writers in flight,
    // the writes split evenly between them, so one batch is stored while the entities of the
    // other prepare their next writes (W1: two batches of 25 rather than one of 50).
    int share = Math.max(1, (queue.size() + storingWrites + maxInFlight - 1) / maxInFlight);
    // Sized for the batch: this runs under the lock every append takes.
    int expected = Math.min(share, queue.size());
    List<Pending> batch = new ArrayList<>(expected);
    Set<PersistenceId> entities = new HashSet<>(expected * 4 / 3 + 1);
    ArrayDeque<Pending> later = null;
    int events = 0;
    long bytes = 0;
    while (!queue.isEmpty() && batch.size() < share) {
      Pending next = queue.peekFirst();
      int size = next.write.events().size();
      if (!batch.isEmpty() && (events + size > maxBatchSize || bytes + next.bytes > MAX_BATCH_BYTES)) {
        break;
      }
      queue.pollFirst();
      if (entities.add(next.write.persistenceId())) {
        batch.add(next);
        events += size;
        bytes += next.bytes;
      } else {
        if (later == null) {
          later = new ArrayDeque<>();
        }
        later.addLast(next);
      }
    }
    if (later != null) {
      // Same-entity writes go back to the front, in their order.
      while (!later.isEmpty()) {
        queue.addFirst(later.pollLast());
      }
    }
    return batch;
  }

  private List<Pending> takeAll() {
    List<Pending> all = new ArrayList<>(queue);
    queue.clear();
    return all;
  }

  private void store(Session session, List<Pending> batch) {
    long start = System.nanoTime();
    List<Pending> todo = batch;
    List<Pending> conflicts = new ArrayList<>();
    List<Pending> isolate = new ArrayList<>();
    session.copied = false;
    try {
      CopyEncoder copy = copyData(batch);
      CopyIn opened = session.takeCopy();
      if (opened != null && copy == null) {
        session.endEmpty(opened);
        opened = null;
      }
      Connection c = session.connection();
      boolean fast = true;
      if (copy != null) {
        if (storeByCopy(session, batch, copy, isolate, opened)) {
          todo = List.of();
        } else {
          // A stale write: the plain insert would fail the same way.
          fast = false;
        }
      }
      if (fast && !todo.isEmpty() && singleEvents(todo)) {
        storeSingleEvents(c, todo, conflicts, isolate);
        todo = List.of();
      }
      int retries = 0;
      while (!todo.isEmpty()) {
        boolean committing = false;
        try {
          int rows = events(todo);
          if (insert(c, todo, fast) == rows) {
            committing = true;
            c.commit();
            succeed(todo);
            break;
          }
          // Some write did not land whole: find out which, in a fresh attempt.
          c.rollback();
          Map<PersistenceId, Integer> landed = insertReturning(c, todo, false);
          List<Pending> whole = new ArrayList<>();
          boolean partial = false;
          for (Pending p : todo) {
            int n = landed.getOrDefault(p.write.persistenceId(), 0);
            if (n == p.write.events().size()) {
              whole.add(p);
            } else {
              conflicts.add(p);
              partial |= n > 0;
            }
          }
          // From here on the conflicts are settled as such, whatever happens to the rest.
          todo = whole;
          if (!partial) {
            committing = true;
            c.commit();
            succeed(whole);
            break;
          }
          // Part of a conflicting write landed: undo everything and store the rest again.
          c.rollback();
        } catch (SQLException e) {
          ConnectionPool.rollbackQuietly(c);
          if (fast && !committing && isUniqueViolation(e)) {
            // Some write's expected sequenceNr is stale: find out which, without the fast path.
            fast = false;
            continue;
          }
          if (!committing && isTransient(e) && retries++ < MAX_RETRIES) {
            log.debug("Retrying a batch of {} writes after [{}]", todo.size(), e.getSQLState());
            continue;
          }
          if (committing) {
            fail(todo, e, true);
          } else {
            failOrIsolate(todo, e, isolate);
          }
          break;
        }
      }
      if (!conflicts.isEmpty()) {
        reportConflicts(c, conflicts);
      }
    } catch (SQLException e) {
      // No connection (pool timeout, server down) or closing it failed. Conflicts found before
      // are still conflicts: settled first, as the first settlement wins.
      for (Pending p : conflicts) {
        p.fail(new ConcurrencyConflictException(p.write.persistenceId(), p.write.expectedSequenceNr(), -1));
      }
      fail(batch, e, false);
    }
    if (log.isDebugEnabled()) {
      log.debug(
          "Stored a batch of {} writes ({} events, {} conflicts) in {} µs",
          batch.size(), events(batch), conflicts.size(), (System.nanoTime() - start) / 1000);
    }
    if (!isolate.isEmpty()) {
      log.debug("Storing {} writes one by one to find the row the server refused", isolate.size());
      for (Pending p : isolate) {
        store(session, List.of(p)); // a batch of one is never isolated again
      }
    }
    for (Pending p : batch) {
      if (p.failure != null) {
        // Not reused for the next batch: the pool checks or replaces a connection that failed.
        session.release();
        break;
      }
    }
  }

  /**
   * Fails the writes with an error that stored nothing, unless it is an error one row can cause
   * in a batch of several writes: then they are set aside, to be stored one by one, so that one
   * entity's bad row (an id too long for the primary key's index, say) fails its own write only.
   */
  private static void failOrIsolate(List<Pending> writes, SQLException e, List<Pending> isolate) {
    if (writes.size() > 1 && isRowError(e)) {
      isolate.addAll(writes);
    } else {
      fail(writes, e, false);
    }
  }

  /**
   * An error the server reported for a statement, of a class that one row can cause: data
   * exception (22), integrity constraint violation (23; a duplicate key, 23505, is handled before
   * as a conflict) or program limit exceeded (54, e.g. an index row too large). Errors of other
   * classes (a missing table, missing rights, a full disk, a read-only server) would fail every
   * write alone as well, so they fail the batch at once.
   */
  private static boolean isRowError(SQLException e) {
    String state = e.getSQLState();
    return reportedByServer(e) && !endsSession(e) && state != null
        && (state.startsWith("22") || state.startsWith("23") || state.startsWith("54"));
  }

  /**
   * The common case: a batch whose writes need no gap check, stored with one COPY in autocommit
   * mode (one statement, so all of it or nothing is stored). Returns false, having stored
   * nothing, if a row exists already (some write is stale): the caller then stores the batch in
   * a way that skips the stale writes. Otherwise every write of the batch is settled, or set
   * aside in {@code isolate} to be stored alone (see {@link #failOrIsolate}).
   */
  private boolean storeByCopy(
      Session session, List<Pending> batch, CopyEncoder data, List<Pending> isolate, CopyIn opened)
      throws SQLException {
    int retries = 0;
    boolean ahead = false;
    Connection c = session.connection();
    c.setAutoCommit(true);
    try {
      while (true) {
        boolean ending = false;
        try {
          ahead = opened != null;
          CopyIn copy = ahead ? opened : startCopy(c);
          opened = null;
          if (ahead) {
            copiedAhead.increment();
          }
          try {
            copy.writeToCopy(data.buffer(), 0, data.length());
            ending = true;
            copy.endCopy();
          } finally {
            cancelQuietly(copy);
          }
          copiedBatches.increment();
          session.copied = true;
          succeed(batch);
          return true;
        } catch (SQLException e) {
          if (!reportedByServer(e) || endsSession(e)) {
            // The COPY ran on the driver's connection, past the pool's error tracking, and the
            // connection is broken, ended by the server, or out of step with it: never reuse
            // it. Before the end of the copy nothing can have been committed; after it, anything
            // could.
            session.discard();
            fail(batch, e, ending);
            return true;
          }
          if (isUniqueViolation(e)) {
            return false;
          }
          if ((isTransient(e) || ahead && !isRowError(e)) && retries++ < MAX_RETRIES) {
            // Also once after an error of a COPY opened ahead that the rows cannot have caused
            // (a statement_timeout shorter than the wait, say): a fresh COPY may well succeed.
            log.debug("Retrying a batch of {} writes after [{}]", batch.size(), e.getSQLState());
            continue;
          }
          // The server reported the error: nothing of the COPY was committed.
          failOrIsolate(batch, e, isolate);
          return true;
        }
      }
    } finally {
      if (session.holds(c)) {
        try {
          c.setAutoCommit(false);
        } catch (SQLException e) {
          // A broken connection; the pool discards it.
          log.debug("Cannot reset autocommit [{}]", e.getSQLState());
        }
      }
    }
  }

  /**
   * A writer's connection, kept from one batch to the next while the writer opens each next
   * batch's COPY ahead of it, and the COPY so opened. Used by its writer's thread only.
   *
   * <p>The writer gives the connection back to the pool whenever it does not open a COPY ahead,
   * after a batch that failed in any way (the pool then checks or replaces it), and after it has
   * kept it for {@link #HOLD_NANOS} (plus the batch and the wait under way): the pool retires a
   * connection at its maximum lifetime only when it is given back.
   */
  private final class Session {
    /** Longest a writer keeps a connection across batches. */
    private static final long HOLD_NANOS = 1_000_000_000L;

    private Connection connection;
    private long since;
    private CopyIn copy;
    /** Whether the latest batch was stored by COPY. */
    boolean copied;

    Connection connection() throws SQLException {
      if (connection == null) {
        connection = dataSource.getConnection();
        since = System.nanoTime();
      }
      return connection;
    }

    boolean holding() {
      return connection != null;
    }

    /** Whether {@code c} is still this session's connection (not dropped since). */
    boolean holds(Connection c) {
      return connection == c;
    }

    boolean heldTooLong() {
      return connection != null && System.nanoTime() - since > HOLD_NANOS;
    }

    boolean copiedCleanly() {
      return copied && connection != null;
    }

    /**
     * Opens the next batch's COPY. On an error nothing is lost (no write is taken yet): the
     * connection is dropped, and the batch gets another one.
     */
    void openCopy() {
      if (copy != null) {
        return;
      }
      try {
        Connection c = connection();
        c.setAutoCommit(true);
        copy = startCopy(c);
      } catch (SQLException e) {
        log.debug("Cannot open the next batch's COPY [{}]", e.getSQLState());
        discard();
      }
    }

    /** The COPY opened ahead, if any; the caller ends it. */
    CopyIn takeCopy() {
      CopyIn open = copy;
      copy = null;
      return open;
    }

    /**
     * Ends a COPY opened ahead with no rows. It stores nothing, and unlike a cancelled COPY it
     * writes no error into the server's log each time the journal goes idle; a transaction that
     * wrote nothing commits without a WAL flush.
     */
    void endEmpty(CopyIn open) {
      try {
        CopyEncoder empty = new CopyEncoder(CopyEncoder.frameSize());
        empty.finish();
        open.writeToCopy(empty.buffer(), 0, empty.length());
        open.endCopy();
        connection.setAutoCommit(false);
      } catch (SQLException | RuntimeException e) {
        log.debug("Cannot end the next batch's COPY: {}", e.toString());
        discard();
      }
    }

    /** Ends a COPY opened ahead and gives the connection back to the pool. */
    void release() {
      CopyIn open = takeCopy();
      if (open != null) {
        endEmpty(open);
      }
      if (connection != null) {
        try {
          connection.close();
        } catch (SQLException e) {
          log.debug("Cannot give a connection back to the pool [{}]", e.getSQLState());
        }
        connection = null;
      }
    }

    /**
     * Drops the connection: it is broken or out of step with the server, and a COPY ran on it
     * past the pool's own error tracking, so the pool must not hand it out again.
     */
    void discard() {
      copy = null;
      Connection c = connection;
      connection = null;
      if (c == null) {
        return;
      }
      try {
        HikariDataSource pool = dataSource.unwrap(HikariDataSource.class);
        if (!pool.isClosed()) {
          // Closes it at once; it is not given back afterwards, which the pool would refuse.
          pool.evictConnection(c);
          return;
        }
      } catch (SQLException | RuntimeException e) {
        log.debug("Cannot evict a connection: {}", e.toString());
      }
      try {
        c.close();
      } catch (SQLException | RuntimeException e) {
        // Best effort on a connection already known to be broken.
        log.debug("Cannot close a broken connection: {}", e.toString());
      }
    }
  }

  /** Sends the journal's COPY statement and waits until the server is ready for rows. */
  private CopyIn startCopy(Connection c) throws SQLException {
    return c.unwrap(PGConnection.class).getCopyAPI().copyIn(sql.copyIn);
  }

  private static void cancelQuietly(CopyIn copy) {
    if (copy.isActive()) {
      try {
        copy.cancelCopy();
      } catch (SQLException e) {
        log.debug("Cannot cancel a COPY [{}]", e.getSQLState());
      }
    }
  }

  /** An error the server sent (the connection is in step), not one of the client or the wire. */
  private static boolean reportedByServer(SQLException e) {
    return e instanceof PSQLException p && p.getServerErrorMessage() != null;
  }


  /**
   * The batch in PostgreSQL's binary COPY format, or null if it cannot be copied because some
   * write needs the gap check (its expected sequenceNr is not known to be stored). Its text was
   * checked on {@link #append}.
   */
  private CopyEncoder copyData(List<Pending> batch) {
    int capacity = CopyEncoder.frameSize();
    for (Pending p : batch) {
      AtomicWrite w = p.write;
      if (!storedSequenceNrs.isStored(w.persistenceId(), w.expectedSequenceNr())) {
        return null;
      }
      for (PersistentRepr e : w.events()) {
        capacity += CopyEncoder.rowSize(
            w.persistenceId().typeName().length(), w.persistenceId().entityId().length(),
            e.manifest().length(), e.payload().length);
      }
    }
    CopyEncoder out = new CopyEncoder(capacity);
    for (Pending p : batch) {
      AtomicWrite w = p.write;
      for (PersistentRepr e : w.events()) {
        out.row(w.persistenceId().typeName(), w.persistenceId().entityId(), e.sequenceNr(),
            e.serializerId(), e.manifest(), e.payload());
      }
    }
    out.finish();
    return out;
  }

  /**
   * The common case, a batch of one-event writes, in one round trip: the insert runs in
   * autocommit mode, so PostgreSQL commits it as it executes. A one-event write cannot land in
   * part, and a batch holds one write per entity, so a write whose row did not land is a
   * conflict and nothing needs undoing.
   */
  private void storeSingleEvents(
      Connection c, List<Pending> batch, List<Pending> conflicts, List<Pending> isolate)
      throws SQLException {
    int retries = 0;
    boolean fast = true;
    c.setAutoCommit(true);
    try {
      while (true) {
        try {
          Map<PersistenceId, Integer> landed = insertReturning(c, batch, fast);
          List<Pending> stored = new ArrayList<>(batch.size());
          for (Pending p : batch) {
            (landed.containsKey(p.write.persistenceId()) ? stored : conflicts).add(p);
          }
          succeed(stored);
          return;
        } catch (SQLException e) {
          if (fast && isUniqueViolation(e)) {
            // Nothing of the failed statement is stored; the next one skips the stale writes.
            fast = false;
            continue;
          }
          if (isTransient(e) && retries++ < MAX_RETRIES) {
            log.debug("Retrying a batch of {} writes after [{}]", batch.size(), e.getSQLState());
            continue;
          }
          // The server reports an error before it commits; a broken connection leaves the
          // outcome unknown.
          if (isConnectionError(e)) {
            fail(batch, e, true);
          } else {
            failOrIsolate(batch, e, isolate);
          }
          return;
        }
      }
    } finally {
      try {
        c.setAutoCommit(false);
      } catch (SQLException e) {
        // A broken connection; the pool discards it.
        log.debug("Cannot reset autocommit [{}]", e.getSQLState());
      }
    }
  }

  private static boolean singleEvents(List<Pending> writes) {
    for (Pending p : writes) {
      if (p.write.events().size() != 1) {
        return false;
      }
    }
    return true;
  }

  /** SQLState class 08 (connection exception), or none: the connection failed mid-way. */
  private static boolean isConnectionError(SQLException e) {
    String state = e.getSQLState();
    return state == null || state.startsWith("08") || endsSession(e);
  }

  /**
   * A server error that ends the session (severity FATAL or PANIC, e.g. 57P01 when an
   * administrator terminates the backend). The server may send it after an autocommit statement
   * committed and before it reported completion, so the statement's outcome is unknown, and the
   * connection is gone.
   */
  private static boolean endsSession(SQLException e) {
    if (e instanceof PSQLException p && p.getServerErrorMessage() != null) {
      String severity = p.getServerErrorMessage().getSeverity();
      return "FATAL".equals(severity) || "PANIC".equals(severity);
    }
    return false;
  }

  private int insert(Connection c, List<Pending> writes, boolean fast) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(fast ? sql.appendFast : sql.appendBatch)) {
      bind(c, ps, writes);
      return ps.executeUpdate();
    }
  }

  private Map<PersistenceId, Integer> insertReturning(
      Connection c, List<Pending> writes, boolean fast) throws SQLException {
    Map<PersistenceId, Integer> landed = new HashMap<>();
    try (PreparedStatement ps =
        c.prepareStatement(fast ? sql.appendFastReturning : sql.appendBatchReturning)) {
      bind(c, ps, writes);
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) {
          landed.merge(PersistenceId.of(rs.getString(1), rs.getString(2)), 1, Integer::sum);
        }
      }
    }
    return landed;
  }

  private void bind(Connection c, PreparedStatement ps, List<Pending> writes)
      throws SQLException {
    int n = events(writes);
    String[] types = new String[n];
    String[] ids = new String[n];
    Long[] sequenceNrs = new Long[n];
    Long[] checks = new Long[n];
    Integer[] serializerIds = new Integer[n];
    String[] manifests = new String[n];
    byte[][] payloads = new byte[n][];
    int i = 0;
    for (Pending p : writes) {
      AtomicWrite w = p.write;
      long check =
          storedSequenceNrs.isStored(w.persistenceId(), w.expectedSequenceNr()) ? 0 : w.expectedSequenceNr();
      for (PersistentRepr e : w.events()) {
        types[i] = w.persistenceId().typeName();
        ids[i] = w.persistenceId().entityId();
        sequenceNrs[i] = e.sequenceNr();
        checks[i] = check;
        serializerIds[i] = e.serializerId();
        manifests[i] = e.manifest();
        payloads[i] = e.payload();
        i++;
      }
    }
    ps.setArray(1, c.createArrayOf("text", types));
    ps.setArray(2, c.createArrayOf("text", ids));
    ps.setArray(3, c.createArrayOf("int8", sequenceNrs));
    ps.setArray(4, c.createArrayOf("int8", checks));
    ps.setArray(5, c.createArrayOf("int4", serializerIds));
    ps.setArray(6, c.createArrayOf("text", manifests));
    ps.setArray(7, c.createArrayOf("bytea", payloads));
  }

  private void reportConflicts(Connection c, List<Pending> conflicts) {
    for (Pending p : conflicts) {
      long actual = -1;
      try (PreparedStatement ps = c.prepareStatement(sql.highestSequenceNr)) {
        ps.setString(1, p.write.persistenceId().typeName());
        ps.setString(2, p.write.persistenceId().entityId());
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          actual = rs.getLong(1);
        }
        storedSequenceNrs.stored(p.write.persistenceId(), actual);
        c.rollback();
      } catch (SQLException e) {
        // Only the message loses the actual value; the conflict itself is certain.
        ConnectionPool.rollbackQuietly(c);
      }
      log.debug(
          "Conflict for [{}]: expected sequenceNr [{}], found [{}]",
          p.write.persistenceId(), p.write.expectedSequenceNr(), actual);
      p.fail(new ConcurrencyConflictException(p.write.persistenceId(), p.write.expectedSequenceNr(), actual));
    }
  }

  private void succeed(List<Pending> writes) {
    for (Pending p : writes) {
      storedSequenceNrs.stored(p.write.persistenceId(), p.write.highestSequenceNr());
      p.succeed();
    }
  }

  private static void fail(List<Pending> writes, SQLException e, boolean atCommit) {
    if (!writes.isEmpty()) {
      log.debug("A batch of {} writes failed [{}]{}", writes.size(), e.getSQLState(),
          atCommit ? " at commit, outcome unknown" : "");
    }
    for (Pending p : writes) {
      AtomicWrite w = p.write;
      String what =
          atCommit
              ? "cannot confirm the append of events for [" + w.persistenceId()
                  + "] from sequenceNr [" + (w.expectedSequenceNr() + 1)
                  + "]: the commit failed, the events may or may not be stored: "
              : "cannot append events for [" + w.persistenceId() + "] from sequenceNr ["
                  + (w.expectedSequenceNr() + 1) + "]: ";
      p.fail(new JournalException(what + e.getMessage(), w.persistenceId(), w.expectedSequenceNr() + 1, e));
    }
  }

  /**
   * Completes the stages of a stored batch with their settled outcomes, in one task on the
   * completions executor; on the writer's thread if that executor no longer takes tasks (the
   * actor system is shutting down), so that no caller is left waiting.
   */
  private void deliver(List<Pending> batch) {
    Runnable completeAll = () -> {
      for (Pending p : batch) {
        p.complete();
      }
    };
    try {
      completions.execute(completeAll);
    } catch (RejectedExecutionException e) {
      completeAll.run();
    }
  }

  /** About the bytes a write takes on the wire: its events' payloads, manifests and keys. */
  private static long bytes(AtomicWrite write) {
    long keys = write.persistenceId().typeName().length() + write.persistenceId().entityId().length();
    long n = 0;
    for (PersistentRepr e : write.events()) {
      n += e.payload().length + e.manifest().length() + keys + 48;
    }
    return n;
  }

  private static int events(List<Pending> writes) {
    int n = 0;
    for (Pending p : writes) {
      n += p.write.events().size();
    }
    return n;
  }

  /** A row of the batch exists already: some write's expected sequenceNr is stale. */
  private static boolean isUniqueViolation(SQLException e) {
    return "23505".equals(e.getSQLState());
  }

  /** Deadlock or serialization failure: the server rolled the transaction back, retry is safe. */
  private static boolean isTransient(SQLException e) {
    String state = e.getSQLState();
    return "40P01".equals(state) || "40001".equals(state);
  }

  private static JournalException closedError(AtomicWrite write) {
    return new JournalException(
        "cannot append events for [" + write.persistenceId() + "] from sequenceNr ["
            + (write.expectedSequenceNr() + 1) + "]: the journal is closed",
        write.persistenceId(), write.expectedSequenceNr() + 1, null);
  }
}
