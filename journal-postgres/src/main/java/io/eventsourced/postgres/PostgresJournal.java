package io.eventsourced.postgres;

import io.eventsourced.PersistenceId;
import io.eventsourced.PluginContext;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.JournalException;
import io.eventsourced.journal.PersistentRepr;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.apache.pekko.Done;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link Journal} on PostgreSQL: one row per event in a table keyed by (type name, entity id,
 * sequenceNr), written with group commit across entities, replayed page by page.
 *
 * <p>Configured at {@code eventsourced.journal.postgres} (see the module's {@code
 * reference.conf}); select it with {@code eventsourced.journal.plugin =
 * "eventsourced.journal.postgres"}. All JDBC runs on the block's {@code plugin-dispatcher}.
 *
 * <ul>
 *   <li><b>Group commit.</b> Appends of many entities that arrive together are stored in one
 *       transaction by one statement, up to {@code max-batch-size} events, with at most {@code
 *       max-in-flight-batches} such transactions at a time.
 *   <li><b>Atomicity and conflicts.</b> A write lands only if its expected sequenceNr is the
 *       entity's highest stored one; the primary key rejects a stale one and an existence check
 *       rejects one that would leave a gap. A conflicting write fails with {@link
 *       io.eventsourced.journal.ConcurrencyConflictException} and nothing of it is stored; the other
 *       writes of its batch are unaffected.
 *   <li><b>Uncertain outcomes.</b> If the connection fails, every write of the batch fails with a
 *       {@link JournalException}; nothing is retried, so a replay shows exactly what was
 *       committed.
 *   <li><b>Replay</b> streams pages of {@code replay-fetch-size} events, one query (a key range
 *       of the primary key) per page, never the whole history; concurrent replays advance page
 *       by page together and share PostgreSQL's buffer cache. The highest sequenceNr is one
 *       primary key lookup.
 * </ul>
 */
public final class PostgresJournal implements Journal {
  private static final Logger log = LoggerFactory.getLogger(PostgresJournal.class);

  /** Entities whose stored sequenceNr is remembered to skip gap checks (about 10 MB at most). */
  private static final int STORED_CAPACITY = 100_000;

  private final PostgresSettings settings;
  private final Executor dispatcher;
  private final ConnectionPool pool;
  private final Sql sql;
  private final GroupCommit writer;
  private final StoredSequenceNrs storedSequenceNrs = new StoredSequenceNrs(STORED_CAPACITY);
  private final AtomicBoolean closed = new AtomicBoolean();

  /**
   * Creates the journal: connects, and creates the schema objects if {@code setup = on}. Called
   * by the runtime.
   *
   * @param context the plugin context
   * @throws IllegalArgumentException naming the key if the configuration is invalid
   * @throws IllegalStateException naming URL and user if the server cannot be reached, refuses
   *     the login or the tables are missing
   */
  public PostgresJournal(PluginContext context) {
    this.settings = PostgresSettings.fromConfig(context.config(), context.configPath());
    this.dispatcher = context.dispatcher();
    this.sql = new Sql(settings);
    this.pool = ConnectionPool.acquire(context.system(), settings);
    try {
      ConnectionPool.prepareSchema(pool.dataSource(), settings, sql, sql.journal, context.configPath());
    } catch (RuntimeException e) {
      pool.release();
      throw e;
    }
    this.writer =
        new GroupCommit(
            pool.dataSource(),
            dispatcher,
            context.system().executionContext(),
            sql,
            settings.maxBatchSize(),
            settings.maxInFlightBatches(),
            settings.maxBatchWait(),
            storedSequenceNrs);
    log.info(
        "Started PostgreSQL journal [{}] on table [{}] at [{}]",
        context.configPath(), sql.journal, settings.safeUrl());
  }

  /**
   * The settings this journal was started with.
   *
   * @return the settings
   */
  public PostgresSettings settings() {
    return settings;
  }

  /** The connection pool, possibly shared with the other plugin; for tests. */
  ConnectionPool pool() {
    return pool;
  }

  /** The group-commit writer; for tests in this package. */
  GroupCommit writer() {
    return writer;
  }

  @Override
  public CompletionStage<Done> append(AtomicWrite write) {
    return writer.append(write);
  }

  @Override
  public CompletionStage<Done> replay(
      PersistenceId persistenceId,
      long fromSequenceNr,
      long toSequenceNr,
      long max,
      Consumer<PersistentRepr> onEvent) {
    if (max <= 0 || fromSequenceNr > toSequenceNr) {
      return CompletableFuture.completedFuture(Done.getInstance());
    }
    String unstorable = CopyEncoder.unstorable(persistenceId);
    if (unstorable != null) {
      // Queried as is, pgjdbc would read another entity's events.
      return CompletableFuture.failedFuture(
          new JournalException("cannot replay [" + persistenceId + "]: " + unstorable, persistenceId, fromSequenceNr, null));
    }
    CompletableFuture<Done> result = new CompletableFuture<>();
    long from = Math.max(fromSequenceNr, 1);
    execute(result, persistenceId, from, () -> replayPage(persistenceId, from, toSequenceNr, max, onEvent, result));
    return result;
  }

  /**
   * Delivers one page of at most {@code replay-fetch-size} events (one query, one round trip, a
   * keyset range of the primary key) and queues the next page behind whatever else waits for the
   * dispatcher. Concurrent replays thus advance page by page together. Group commit stores the
   * events of entities that write together on the same heap pages, so replays that move in step
   * share the pages PostgreSQL has just cached instead of each sweeping the whole table.
   */
  private void replayPage(
      PersistenceId id,
      long from,
      long to,
      long remaining,
      Consumer<PersistentRepr> onEvent,
      CompletableFuture<Done> result) {
    if (result.isDone()) {
      return; // cancelled between pages: spare the next page's query
    }
    int limit = (int) Math.min(remaining, settings.replayFetchSize());
    long delivered = 0;
    long next = from;
    try (Connection c = pool.dataSource().getConnection()) {
      // One statement, in autocommit: no transaction to end afterwards (saves a round trip a
      // page). Rows are never changed, so pages need no common snapshot.
      c.setAutoCommit(true);
      try (PreparedStatement ps = c.prepareStatement(sql.replay)) {
        ps.setString(1, id.typeName());
        ps.setString(2, id.entityId());
        ps.setLong(3, from);
        ps.setLong(4, to);
        ps.setLong(5, limit);
        try (ResultSet rs = ps.executeQuery()) {
          Manifests manifests = new Manifests();
          while (rs.next()) {
            if (result.isDone()) {
              return; // the caller cancelled the replay: deliver nothing more, read no next page
            }
            long sequenceNr = rs.getLong(1);
            PersistentRepr event;
            try {
              String manifest = manifests.of(rs.getBytes(3), rs, 3);
              event = new PersistentRepr(id, sequenceNr, rs.getInt(2), manifest, rs.getBytes(4));
            } catch (RuntimeException e) {
              throw new JournalException(
                  "cannot read event [" + id + "] sequenceNr [" + sequenceNr + "]: " + e.getMessage(),
                  id, sequenceNr, e);
            }
            try {
              onEvent.accept(event);
            } catch (RuntimeException e) {
              // The consumer's own failure (e.g. an event it cannot deserialize) fails the
              // replay as is.
              result.completeExceptionally(e);
              return;
            }
            delivered++;
            next = sequenceNr + 1;
          }
        }
      } finally {
        try {
          c.setAutoCommit(false);
        } catch (SQLException e) {
          // A broken connection; the pool discards it. The replay's own outcome stands.
          log.debug("Cannot reset autocommit [{}]", e.getSQLState());
        }
      }
    } catch (SQLException e) {
      result.completeExceptionally(
          new JournalException(
              "cannot replay events of [" + id + "] from sequenceNr [" + next + "]: " + e.getMessage(),
              id, next, e));
      return;
    }
    if (delivered > 0) {
      // Delivered events up to next - 1: those rows exist.
      storedSequenceNrs.stored(id, next - 1);
    }
    if (delivered < limit || delivered == remaining || next > to) {
      result.complete(Done.getInstance());
      return;
    }
    long nextFrom = next;
    long left = remaining - delivered;
    execute(result, id, nextFrom, () -> replayPage(id, nextFrom, to, left, onEvent, result));
  }

  @Override
  public CompletionStage<Long> highestSequenceNr(PersistenceId persistenceId) {
    CompletableFuture<Long> result = new CompletableFuture<>();
    String unstorable = CopyEncoder.unstorable(persistenceId);
    if (unstorable != null) {
      result.completeExceptionally(
          new JournalException(
              "cannot read the highest sequenceNr of [" + persistenceId + "]: " + unstorable, persistenceId, 0, null));
      return result;
    }
    execute(result, persistenceId, 0, () -> {
      try (Connection c = pool.dataSource().getConnection()) {
        try (PreparedStatement ps = c.prepareStatement(sql.highestSequenceNr)) {
          ps.setString(1, persistenceId.typeName());
          ps.setString(2, persistenceId.entityId());
          try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            long highest = rs.getLong(1);
            storedSequenceNrs.stored(persistenceId, highest);
            result.complete(highest);
          }
        } finally {
          ConnectionPool.rollbackQuietly(c);
        }
      } catch (SQLException e) {
        result.completeExceptionally(
            new JournalException(
                "cannot read the highest sequenceNr of [" + persistenceId + "]: " + e.getMessage(),
                persistenceId, 0, e));
      }
    });
    return result;
  }

  /** Runs blocking work on the plugin dispatcher; any escaping exception fails the stage. */
  private void execute(CompletableFuture<?> result, PersistenceId id, long sequenceNr, Runnable work) {
    if (closed.get()) {
      result.completeExceptionally(
          new JournalException("cannot read [" + id + "]: the journal is closed", id, sequenceNr, null));
      return;
    }
    try {
      dispatcher.execute(() -> {
        try {
          work.run();
        } catch (RuntimeException e) {
          result.completeExceptionally(e);
        } catch (Error e) {
          // e.g. a StackOverflowError in the replay consumer: the caller must still hear of it.
          result.completeExceptionally(e);
          ConnectionPool.rethrowIfFatal(e);
        }
      });
    } catch (RuntimeException e) {
      result.completeExceptionally(
          new JournalException("cannot read [" + id + "]: " + e, id, sequenceNr, e));
    }
  }

  /**
   * The manifests of one replay page, each decoded once. An entity's events mostly cycle through
   * a few types (the counter's alternate between two), and one String per type also lets a
   * serializer's lookup by manifest use the String's cached hash instead of hashing every row.
   */
  private static final class Manifests {
    private static final int SLOTS = 8;
    private final byte[][] raw = new byte[SLOTS][];
    private final String[] decoded = new String[SLOTS];
    private int size;
    private int evict;

    String of(byte[] bytes, ResultSet rs, int column) throws SQLException {
      for (int i = 0; i < size; i++) {
        if (Arrays.equals(raw[i], bytes)) {
          return decoded[i];
        }
      }
      String manifest = rs.getString(column);
      int slot = size < SLOTS ? size++ : evict++ % SLOTS;
      raw[slot] = bytes;
      decoded[slot] = manifest;
      return manifest;
    }
  }

  /**
   * Fails queued writes, waits up to {@code close-timeout} for the batches being stored, and
   * releases the connection pool; idempotent.
   */
  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      writer.close();
      if (!writer.awaitIdle(settings.closeTimeout())) {
        log.warn(
            "Closing the PostgreSQL journal on table [{}] after close-timeout [{}] with batches still"
                + " being stored; their writes fail as may or may not be stored",
            sql.journal, settings.closeTimeout());
      }
      pool.release();
      log.info("Stopped PostgreSQL journal on table [{}]", sql.journal);
    }
  }
}
