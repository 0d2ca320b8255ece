package io.eventsourced.postgres;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The "raw JDBC group commit" reference for W1, with no framework: {@code entities}
 * logical writers, each with one event outstanding at a time; {@code connections} threads, each
 * with its own plain JDBC connection, take whatever events are waiting (up to {@code entities /
 * connections}) and insert them with one multi-row statement in autocommit mode; an acknowledged
 * entity queues its next event at once. Then every entity is read back with one streaming query
 * per entity on {@code connections} threads. Same table layout as the journal; a fresh schema,
 * dropped afterwards. Not a test (surefire does not run it); see {@code docs/postgres.md}.
 *
 * <p>Arguments: {@code [entities] [commands] [connections]}, default 50, 20 000 and 2.
 */
public final class RawJdbcBaseline {

  private RawJdbcBaseline() {}

  /**
   * Runs the baseline and prints one SUMMARY line.
   *
   * @param args entities, commands per entity, connections
   * @throws Exception on failure
   */
  public static void main(String[] args) throws Exception {
    int entities = args.length > 0 ? Integer.parseInt(args[0]) : 50;
    int commands = args.length > 1 ? Integer.parseInt(args[1]) : 20_000;
    int connections = args.length > 2 ? Integer.parseInt(args[2]) : 2;
    int maxBatch = (entities + connections - 1) / connections;
    String schema = PostgresTestSupport.freshSchema("raw");
    String table = Sql.quote(schema) + ".event_journal";
    for (String ddl :
        Sql.render(
            Map.of(
                "schema", schema,
                "journal_table", "event_journal",
                "snapshot_table", "snapshot",
                "journal_ordering_index", "event_journal_type_ordering_idx"),
            Map.of("ordering_index", false))) {
      PostgresTestSupport.execute(ddl);
    }
    String insert =
        "INSERT INTO " + table + " (type_name, entity_id, sequence_nr, serializer_id, manifest, payload)"
            + " SELECT 'counter', w.entity_id, w.sequence_nr, 33, 'io.eventsourced.sample.counter.CounterEvent$Increased', w.payload"
            + " FROM unnest(?::text[], ?::int8[], ?::bytea[]) AS w(entity_id, sequence_nr, payload)";
    ExecutorService pool = Executors.newFixedThreadPool(connections);
    try {
      // The queue holds each waiting entity's index; its next sequenceNr is in nextSeq.
      BlockingQueue<Integer> waiting = new ArrayBlockingQueue<>(entities);
      long[] nextSeq = new long[entities];
      for (int e = 0; e < entities; e++) {
        nextSeq[e] = 1;
        waiting.add(e);
      }
      AtomicLong remaining = new AtomicLong((long) entities * commands);
      long writeStart = System.nanoTime();
      List<Future<?>> writers = new ArrayList<>();
      for (int k = 0; k < connections; k++) {
        writers.add(
            pool.submit(
                () -> {
                  try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
                      PreparedStatement ps = c.prepareStatement(insert)) {
                    c.setAutoCommit(true);
                    List<Integer> batch = new ArrayList<>(maxBatch);
                    while (remaining.get() > 0) {
                      Integer first = waiting.poll(10, TimeUnit.MILLISECONDS);
                      if (first == null) {
                        continue;
                      }
                      batch.clear();
                      batch.add(first);
                      waiting.drainTo(batch, maxBatch - 1);
                      String[] ids = new String[batch.size()];
                      Long[] seqs = new Long[batch.size()];
                      byte[][] payloads = new byte[batch.size()][];
                      for (int i = 0; i < batch.size(); i++) {
                        int e = batch.get(i);
                        ids[i] = "e" + e;
                        seqs[i] = nextSeq[e];
                        payloads[i] = new byte[] {8, 1};
                      }
                      ps.setArray(1, c.createArrayOf("text", ids));
                      ps.setArray(2, c.createArrayOf("int8", seqs));
                      ps.setArray(3, c.createArrayOf("bytea", payloads));
                      ps.executeUpdate();
                      for (int e : batch) {
                        remaining.decrementAndGet();
                        if (++nextSeq[e] <= commands) {
                          waiting.add(e);
                        }
                      }
                    }
                  }
                  return null;
                }));
      }
      for (Future<?> w : writers) {
        w.get(30, TimeUnit.MINUTES);
      }
      double writeSeconds = (System.nanoTime() - writeStart) / 1e9;
      long total = (long) entities * commands;

      String select =
          "SELECT sequence_nr, serializer_id, manifest, payload FROM " + table
              + " WHERE type_name = 'counter' AND entity_id = ? ORDER BY sequence_nr";
      AtomicLong read = new AtomicLong();
      BlockingQueue<Integer> toRead = new ArrayBlockingQueue<>(entities);
      for (int e = 0; e < entities; e++) {
        toRead.add(e);
      }
      long readStart = System.nanoTime();
      List<Future<?>> readers = new ArrayList<>();
      for (int k = 0; k < connections; k++) {
        readers.add(
            pool.submit(
                () -> {
                  try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
                      PreparedStatement ps = c.prepareStatement(select)) {
                    c.setAutoCommit(false); // a cursor (fetch size) needs a transaction
                    ps.setFetchSize(10_000);
                    Integer e;
                    while ((e = toRead.poll()) != null) {
                      ps.setString(1, "e" + e);
                      long expected = 1;
                      try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                          if (rs.getLong(1) != expected++) {
                            throw new IllegalStateException("gap in e" + e);
                          }
                          rs.getInt(2);
                          rs.getString(3);
                          rs.getBytes(4);
                          read.incrementAndGet();
                        }
                      }
                      c.commit();
                    }
                  }
                  return null;
                }));
      }
      for (Future<?> r : readers) {
        r.get(30, TimeUnit.MINUTES);
      }
      double readSeconds = (System.nanoTime() - readStart) / 1e9;
      if (read.get() != total) {
        throw new IllegalStateException("read " + read.get() + " of " + total + " events");
      }
      System.out.printf(
          Locale.ROOT,
          "SUMMARY raw-jdbc entities=%d commands=%d connections=%d events=%d write=%.1fs %.0f events/s"
              + " read=%.2fs %.0f events/s%n",
          entities, commands, connections, total, writeSeconds, total / writeSeconds, readSeconds,
          total / readSeconds);
    } finally {
      pool.shutdownNow();
      PostgresTestSupport.dropSchema(schema);
    }
  }
}
