package io.eventsourced.postgres;

import io.eventsourced.PersistenceId;
import io.eventsourced.PluginContext;
import io.eventsourced.journal.JournalException;
import io.eventsourced.snapshot.SnapshotRecord;
import io.eventsourced.snapshot.SnapshotStore;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.pekko.Done;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link SnapshotStore} on PostgreSQL: one row per snapshot keyed by (type name, entity id,
 * sequenceNr). Saving the same entity and sequenceNr again overwrites (an upsert); with {@code
 * snapshot-keep-last = K > 0} a save also deletes all but the entity's K latest snapshots, in the
 * same transaction.
 *
 * <p>Configured at {@code eventsourced.snapshot-store.postgres} (see the module's {@code
 * reference.conf}); select it with {@code eventsourced.snapshot-store.plugin =
 * "eventsourced.snapshot-store.postgres"}. It shares the connection pool with the journal when
 * both name the same connection settings. Failures fail the stage with a {@link
 * JournalException} naming the entity and sequenceNr.
 */
public final class PostgresSnapshotStore implements SnapshotStore {
  private static final Logger log = LoggerFactory.getLogger(PostgresSnapshotStore.class);

  private final PostgresSettings settings;
  private final Executor dispatcher;
  private final ConnectionPool pool;
  private final Sql sql;
  private final AtomicBoolean closed = new AtomicBoolean();

  /** A unit of blocking JDBC work. */
  @FunctionalInterface
  private interface Work<T> {
    T run(Connection c) throws SQLException;
  }

  /**
   * Creates the store: connects, and creates the schema objects if {@code setup = on}. Called by
   * the runtime.
   *
   * @param context the plugin context
   * @throws IllegalArgumentException naming the key if the configuration is invalid
   * @throws IllegalStateException naming URL and user if the server cannot be reached, refuses
   *     the login or the table is missing
   */
  public PostgresSnapshotStore(PluginContext context) {
    this.settings = PostgresSettings.fromConfig(context.config(), context.configPath());
    this.dispatcher = context.dispatcher();
    this.sql = new Sql(settings);
    this.pool = ConnectionPool.acquire(context.system(), settings);
    try {
      ConnectionPool.prepareSchema(pool.dataSource(), settings, sql, sql.snapshot, context.configPath());
    } catch (RuntimeException e) {
      pool.release();
      throw e;
    }
    log.info(
        "Started PostgreSQL snapshot store [{}] on table [{}] at [{}]",
        context.configPath(), sql.snapshot, settings.safeUrl());
  }

  /**
   * The settings this store was started with.
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

  @Override
  public CompletionStage<Done> save(SnapshotRecord snapshot) {
    PersistenceId id = snapshot.persistenceId();
    if (!CopyEncoder.storable(snapshot.manifest())) {
      // pgjdbc would store a lone surrogate as '?', and the snapshot would not load as saved.
      return CompletableFuture.failedStage(
          new JournalException(
              "cannot save the snapshot of [" + id + "] at sequenceNr [" + snapshot.sequenceNr()
                  + "]: its manifest contains a NUL character or a lone surrogate, which PostgreSQL"
                  + " text cannot hold; nothing was stored",
              id, snapshot.sequenceNr(), null));
    }
    return run("save the snapshot of", id, snapshot.sequenceNr(), c -> {
      if (settings.snapshotKeepLast() > 0) {
        try (PreparedStatement ps = c.prepareStatement(sql.snapshotSaveLock)) {
          ps.setString(1, id.typeName());
          ps.setString(2, id.entityId());
          ps.execute();
        }
      }
      try (PreparedStatement ps = c.prepareStatement(sql.snapshotUpsert)) {
        ps.setString(1, id.typeName());
        ps.setString(2, id.entityId());
        ps.setLong(3, snapshot.sequenceNr());
        ps.setInt(4, snapshot.serializerId());
        ps.setString(5, snapshot.manifest());
        ps.setBytes(6, snapshot.payload());
        ps.executeUpdate();
      }
      if (settings.snapshotKeepLast() > 0) {
        try (PreparedStatement ps = c.prepareStatement(sql.snapshotRetain)) {
          ps.setString(1, id.typeName());
          ps.setString(2, id.entityId());
          ps.setString(3, id.typeName());
          ps.setString(4, id.entityId());
          ps.setInt(5, settings.snapshotKeepLast() - 1);
          ps.executeUpdate();
        }
      }
      c.commit();
      return Done.getInstance();
    });
  }

  @Override
  public CompletionStage<Optional<SnapshotRecord>> loadLatest(
      PersistenceId persistenceId, long maxSequenceNr) {
    if (maxSequenceNr < 1) {
      return CompletableFuture.completedFuture(Optional.empty());
    }
    return run("load the snapshot of", persistenceId, maxSequenceNr, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.snapshotLoadLatest)) {
        ps.setString(1, persistenceId.typeName());
        ps.setString(2, persistenceId.entityId());
        ps.setLong(3, maxSequenceNr);
        try (ResultSet rs = ps.executeQuery()) {
          Optional<SnapshotRecord> found = Optional.empty();
          if (rs.next()) {
            long sequenceNr = rs.getLong(1);
            try {
              found = Optional.of(
                  new SnapshotRecord(persistenceId, sequenceNr, rs.getInt(2), rs.getString(3), rs.getBytes(4)));
            } catch (RuntimeException e) {
              throw new JournalException(
                  "cannot read the snapshot of [" + persistenceId + "] at sequenceNr [" + sequenceNr
                      + "]: " + e.getMessage(),
                  persistenceId, sequenceNr, e);
            }
          }
          // The snapshot was read: a rollback failing after that must not fail the read.
          ConnectionPool.rollbackQuietly(c);
          return found;
        }
      }
    });
  }

  @Override
  public CompletionStage<Done> delete(PersistenceId persistenceId, long maxSequenceNr) {
    return run("delete the snapshots of", persistenceId, maxSequenceNr, c -> {
      try (PreparedStatement ps = c.prepareStatement(sql.snapshotDelete)) {
        ps.setString(1, persistenceId.typeName());
        ps.setString(2, persistenceId.entityId());
        ps.setLong(3, maxSequenceNr);
        ps.executeUpdate();
      }
      c.commit();
      return Done.getInstance();
    });
  }

  /** Runs JDBC work in its own transaction on the plugin dispatcher. */
  private <T> CompletionStage<T> run(String what, PersistenceId id, long sequenceNr, Work<T> work) {
    CompletableFuture<T> result = new CompletableFuture<>();
    String unstorable = CopyEncoder.unstorable(id);
    if (unstorable != null) {
      result.completeExceptionally(
          new JournalException("cannot " + what + " [" + id + "]: " + unstorable, id, sequenceNr, null));
      return result;
    }
    if (closed.get()) {
      result.completeExceptionally(
          new JournalException("cannot " + what + " [" + id + "]: the snapshot store is closed", id, sequenceNr, null));
      return result;
    }
    try {
      dispatcher.execute(() -> {
        try (Connection c = pool.dataSource().getConnection()) {
          try {
            result.complete(work.run(c));
          } catch (SQLException | RuntimeException | Error e) {
            ConnectionPool.rollbackQuietly(c);
            throw e;
          }
        } catch (SQLException e) {
          result.completeExceptionally(
              new JournalException(
                  "cannot " + what + " [" + id + "] at sequenceNr [" + sequenceNr + "]: " + e.getMessage(),
                  id, sequenceNr, e));
        } catch (RuntimeException e) {
          result.completeExceptionally(e);
        } catch (Error e) {
          // An Error from the driver or the pool: the entity waiting for this (a recovery, a
          // snapshot) must still hear of it.
          result.completeExceptionally(
              new JournalException(
                  "cannot " + what + " [" + id + "] at sequenceNr [" + sequenceNr + "]: " + e,
                  id, sequenceNr, e));
          ConnectionPool.rethrowIfFatal(e);
        }
      });
    } catch (RuntimeException e) {
      result.completeExceptionally(
          new JournalException("cannot " + what + " [" + id + "]: " + e, id, sequenceNr, e));
    }
    return result;
  }

  /** Releases the connection pool; idempotent. */
  @Override
  public void close() {
    if (closed.compareAndSet(false, true)) {
      pool.release();
      log.info("Stopped PostgreSQL snapshot store on table [{}]", sql.snapshot);
    }
  }
}
