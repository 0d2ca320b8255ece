package io.eventsourced.nats;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.PersistentRepr;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * W1 at the journal SPI level, without entities: {@code entities} writers, each appending one
 * event at a time with its expected sequence number and waiting for the acknowledgement before
 * the next, all writers at once; then every entity replayed, all at once, as a recovery does, in
 * four passes alternating between a journal with the shared scan off (one consumer per entity)
 * and one with the default shared scan. Writes to a fresh stream on the server at {@code
 * EVENTSOURCED_NATS_SERVERS} (default 127.0.0.1:4222) and deletes it afterwards.
 *
 * <p>Arguments: entities (default 50), events per entity (default 20000).
 */
public final class NatsJournalBenchmark {
  private NatsJournalBenchmark() {}

  /**
   * Runs the benchmark and prints one line per phase.
   *
   * @param args entities and events per entity
   * @throws Exception if the server is unreachable or a write fails
   */
  public static void main(String[] args) throws Exception {
    int entities = args.length > 0 ? Integer.parseInt(args[0]) : 50;
    int events = args.length > 1 ? Integer.parseInt(args[1]) : 20_000;
    String servers = System.getenv().getOrDefault("EVENTSOURCED_NATS_SERVERS", TestNats.URL);
    TestNats.Names names = TestNats.Names.fresh("BENCH");
    // A second journal on the same stream, without the shared scan, for the comparison.
    String perEntity =
        "eventsourced.journal.nats-per-entity = ${eventsourced.journal.nats}\n"
            + "eventsourced.journal.nats-per-entity.shared-scan.min-replays = off\n";
    ActorSystem<Void> system = ActorSystem.create(Behaviors.empty(), "bench", names.config(servers, perEntity));
    try {
      Journal journal = Persistence.get(system).journal("eventsourced.journal.nats");
      Journal perEntityJournal = Persistence.get(system).journal("eventsourced.journal.nats-per-entity");
      List<PersistenceId> ids = new ArrayList<>();
      for (int e = 0; e < entities; e++) {
        ids.add(PersistenceId.of("counter", java.util.UUID.randomUUID().toString()));
      }
      byte[] payload = new byte[12]; // about a protobuf counter event
      long t0 = System.nanoTime();
      List<CompletableFuture<Long>> writers = new ArrayList<>();
      for (PersistenceId id : ids) {
        CompletableFuture<Long> done = new CompletableFuture<>();
        writeNext(journal, id, 0, events, payload, done);
        writers.add(done);
      }
      CompletableFuture.allOf(writers.toArray(CompletableFuture[]::new)).get(30, TimeUnit.MINUTES);
      double writeSeconds = (System.nanoTime() - t0) / 1e9;
      long total = (long) entities * events;
      System.out.printf(
          "NATS journal W1 write: %d entities x %d events = %d events in %.2f s = %.0f events/s%n",
          entities, events, total, writeSeconds, total / writeSeconds);

      for (String mode : List.of("per-entity consumers", "shared scan", "per-entity consumers", "shared scan")) {
        Journal replaying = mode.equals("shared scan") ? journal : perEntityJournal;
        long scansBefore = ((NatsJournal) replaying).sharedScans();
        AtomicLong replayed = new AtomicLong();
        long t1 = System.nanoTime();
        List<CompletableFuture<?>> replays = new ArrayList<>();
        for (PersistenceId id : ids) {
          replays.add(
              replaying.replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, e -> replayed.incrementAndGet())
                  .toCompletableFuture());
        }
        CompletableFuture.allOf(replays.toArray(CompletableFuture[]::new)).get(30, TimeUnit.MINUTES);
        double replaySeconds = (System.nanoTime() - t1) / 1e9;
        if (replayed.get() != total) {
          throw new IllegalStateException("replayed " + replayed.get() + " events, expected " + total);
        }
        System.out.printf(
            "NATS journal W1 replay (%s, all entities at once, %d shared scans): %d events in %.2f s = %.0f events/s%n",
            mode, ((NatsJournal) replaying).sharedScans() - scansBefore, total, replaySeconds, total / replaySeconds);
      }
    } finally {
      system.terminate();
      system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
      names.delete(servers);
    }
  }

  private static void writeNext(
      Journal journal, PersistenceId id, long last, int events, byte[] payload, CompletableFuture<Long> done) {
    if (last == events) {
      done.complete(last);
      return;
    }
    AtomicWrite write =
        new AtomicWrite(id, last, List.of(new PersistentRepr(id, last + 1, 2, "", payload)));
    journal
        .append(write)
        .whenComplete(
            (ok, error) -> {
              if (error != null) {
                done.completeExceptionally(error);
              } else {
                writeNext(journal, id, last + 1, events, payload, done);
              }
            });
  }
}
