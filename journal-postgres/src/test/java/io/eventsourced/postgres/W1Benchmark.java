package io.eventsourced.postgres;

import com.typesafe.config.Config;
import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.PersistentRepr;
import java.nio.ByteBuffer;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * W1 at the journal SPI level, without actors or serialization: {@code entities} concurrent
 * writers, each appending one event at a time with its expected sequenceNr and waiting for the
 * acknowledgement, {@code commands} times; then every entity replayed concurrently. Not a test
 * (surefire does not run it); run it as described in {@code docs/postgres.md}.
 *
 * <p>Arguments: {@code [entities] [commands]}, default 50 and 20 000. System property {@code
 * bench.config} adds HOCON overrides (e.g. {@code eventsourced.postgres.max-in-flight-batches=1}).
 */
public final class W1Benchmark {

  private W1Benchmark() {}

  /**
   * Runs the benchmark and prints one SUMMARY line.
   *
   * @param args entities and commands per entity
   * @throws Exception on failure
   */
  public static void main(String[] args) throws Exception {
    int entities = args.length > 0 ? Integer.parseInt(args[0]) : 50;
    int commands = args.length > 1 ? Integer.parseInt(args[1]) : 20_000;
    // -Dbench.replaySchema=NAME replays the entities already stored in that schema (e.g. the
    // sample's) instead of writing; the schema is kept.
    String replaySchema = System.getProperty("bench.replaySchema");
    String schema = replaySchema != null ? replaySchema : PostgresTestSupport.freshSchema("bench");
    Config config =
        PostgresTestSupport.config(
            "eventsourced.postgres.schema = \"" + schema + "\"\n"
                + System.getProperty("bench.config", ""));
    ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "w1", config);
    try {
      Journal journal = Persistence.get(system).journal("eventsourced.journal.postgres");
      String run = Long.toString(System.nanoTime(), 36);
      List<PersistenceId> ids = new ArrayList<>();
      if (replaySchema != null) {
        long stored = storedEntities(schema, ids);
        double seconds = replayAll(journal, ids, stored);
        System.out.printf(
            Locale.ROOT,
            "SUMMARY spi-replay schema=%s entities=%d events=%d recovery=%.2fs %.0f events/s config=[%s]%n",
            schema, ids.size(), stored, seconds, stored / seconds,
            System.getProperty("bench.config", "").replace('\n', ' '));
        return;
      }
      for (int e = 0; e < entities; e++) {
        ids.add(PersistenceId.of("counter", run + "-" + e));
      }

      long writeStart = System.nanoTime();
      List<CompletableFuture<Void>> writers = new ArrayList<>();
      for (PersistenceId id : ids) {
        CompletableFuture<Void> done = new CompletableFuture<>();
        writeNext(journal, id, 0, commands, done);
        writers.add(done);
      }
      CompletableFuture.allOf(writers.toArray(CompletableFuture[]::new)).get(30, TimeUnit.MINUTES);
      double writeSeconds = (System.nanoTime() - writeStart) / 1e9;
      long total = (long) entities * commands;

      // Several rounds with -Dbench.replays=N, to profile replay; the last round is reported.
      int rounds = Integer.getInteger("bench.replays", 1);
      for (int round = 1; round < rounds; round++) {
        replayAll(journal, ids, total);
      }
      double replaySeconds = replayAll(journal, ids, total);
      System.out.printf(
          Locale.ROOT,
          "SUMMARY spi-w1 entities=%d commands=%d events=%d write=%.1fs %.0f events/s"
              + " recovery=%.2fs %.0f events/s config=[%s]%n",
          entities, commands, total, writeSeconds, total / writeSeconds, replaySeconds,
          total / replaySeconds, System.getProperty("bench.config", "").replace('\n', ' '));
    } finally {
      system.terminate();
      system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
      if (replaySchema == null) {
        PostgresTestSupport.dropSchema(schema);
      }
    }
  }

  /** Adds the entities stored in a schema to {@code ids}; returns how many events they have. */
  private static long storedEntities(String schema, List<PersistenceId> ids) throws Exception {
    long events = 0;
    try (Connection c = PostgresTestSupport.connect(PostgresTestSupport.defaults());
        PreparedStatement ps =
            c.prepareStatement(
                "SELECT type_name, entity_id, max(sequence_nr) FROM " + Sql.quote(schema)
                    + ".event_journal GROUP BY type_name, entity_id");
        ResultSet rs = ps.executeQuery()) {
      while (rs.next()) {
        ids.add(PersistenceId.of(rs.getString(1), rs.getString(2)));
        events += rs.getLong(3);
      }
    }
    return events;
  }

  /** Replays every entity concurrently, checking contiguity; returns the seconds it took. */
  private static double replayAll(Journal journal, List<PersistenceId> ids, long total) throws Exception {
      long replayStart = System.nanoTime();
      AtomicLong replayed = new AtomicLong();
      List<CompletableFuture<?>> replays = new ArrayList<>();
      for (PersistenceId id : ids) {
        AtomicLong last = new AtomicLong();
        replays.add(
            journal.highestSequenceNr(id)
                .thenCompose(highest -> journal.replay(id, 1, highest, Long.MAX_VALUE, event -> {
                  if (event.sequenceNr() != last.get() + 1) {
                    throw new IllegalStateException("gap in " + id + " at " + event.sequenceNr());
                  }
                  last.set(event.sequenceNr());
                  replayed.incrementAndGet();
                }))
                .toCompletableFuture());
      }
      CompletableFuture.allOf(replays.toArray(CompletableFuture[]::new)).get(30, TimeUnit.MINUTES);
      double replaySeconds = (System.nanoTime() - replayStart) / 1e9;
      if (replayed.get() != total) {
        throw new IllegalStateException("replayed " + replayed.get() + " of " + total + " events");
      }
      return replaySeconds;
  }

  private static void writeNext(
      Journal journal, PersistenceId id, long last, int commands, CompletableFuture<Void> done) {
    if (last == commands) {
      done.complete(null);
      return;
    }
    long seq = last + 1;
    // About the size of the sample's CBOR "Increased" event.
    byte[] payload = ByteBuffer.allocate(16).putLong(seq).putLong(1).array();
    PersistentRepr event =
        new PersistentRepr(id, seq, 33, "io.eventsourced.sample.counter.CounterEvent$Increased", payload);
    journal
        .append(new AtomicWrite(id, last, List.of(event)))
        .whenComplete((ok, error) -> {
          if (error != null) {
            done.completeExceptionally(error);
          } else {
            writeNext(journal, id, seq, commands, done);
          }
        });
  }
}
