package io.eventsourced.nats;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.Journal;
import io.nats.client.Connection;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.nats.client.api.StreamInfoOptions;
import io.nats.client.api.Subject;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Replay only, on an existing stream (for example the one {@code NatsJournalBenchmark} or the
 * sample wrote and kept): the first {@code entities} entities of the stream (by subject) replayed
 * all at once, in four passes alternating between one consumer per entity ({@code
 * shared-scan.min-replays = off}) and the shared scan ({@code min-replays = 2}, so a group of any
 * size uses it; the first request of a burst still runs alone). Shows when the shared scan pays
 * off: it reads every message of the type in the range, so a group that is a small part of its
 * type costs more than it saves.
 * Writes nothing; uses the server at {@code EVENTSOURCED_NATS_SERVERS} (default 127.0.0.1:4222).
 *
 * <p>Arguments: stream name, subject prefix, entities (default all).
 */
public final class NatsReplayBenchmark {
  private NatsReplayBenchmark() {}

  /**
   * Runs both passes and prints one line per pass.
   *
   * @param args stream name, subject prefix and optionally the number of entities
   * @throws Exception if the server is unreachable or a replay fails
   */
  public static void main(String[] args) throws Exception {
    String stream = args[0];
    String prefix = args[1];
    String servers = System.getenv().getOrDefault("EVENTSOURCED_NATS_SERVERS", TestNats.URL);
    List<PersistenceId> ids = new ArrayList<>();
    try (Connection nc = Nats.connect(Options.builder().server(servers).build())) {
      List<Subject> subjects =
          nc.jetStreamManagement()
              .getStreamInfo(stream, StreamInfoOptions.filterSubjects(prefix + ".>"))
              .getStreamState()
              .getSubjects();
      subjects.stream()
          .map(Subject::getName)
          .sorted()
          .forEach(
              name -> {
                String[] tokens = name.substring(prefix.length() + 1).split("\\.");
                ids.add(PersistenceId.of(Keys.decode(tokens[0]), Keys.decode(tokens[1])));
              });
    }
    int entities = args.length > 2 ? Math.min(Integer.parseInt(args[2]), ids.size()) : ids.size();
    List<PersistenceId> replayed = ids.subList(0, entities);
    String config =
        "eventsourced.journal.nats { setup = off, stream.name = \""
            + stream
            + "\", stream.subject-prefix = \""
            + prefix
            + "\", shared-scan.min-replays = 2 }\n"
            + "eventsourced.journal.nats-per-entity = ${eventsourced.journal.nats}\n"
            + "eventsourced.journal.nats-per-entity.shared-scan.min-replays = off\n";
    ActorSystem<Void> system =
        ActorSystem.create(
            Behaviors.empty(),
            "replay-bench",
            com.typesafe.config.ConfigFactory.load(
                com.typesafe.config.ConfigFactory.parseString(
                    "eventsourced.nats.connection.servers = [\"" + servers + "\"]\n" + config)));
    try {
      for (String mode : List.of("per-entity consumers", "shared scan", "per-entity consumers", "shared scan")) {
        Journal journal =
            Persistence.get(system)
                .journal(mode.equals("shared scan") ? "eventsourced.journal.nats" : "eventsourced.journal.nats-per-entity");
        long scans = ((NatsJournal) journal).sharedScans();
        AtomicLong events = new AtomicLong();
        long t0 = System.nanoTime();
        List<CompletableFuture<?>> replays = new ArrayList<>();
        for (PersistenceId id : replayed) {
          replays.add(
              journal.replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, e -> events.incrementAndGet()).toCompletableFuture());
        }
        CompletableFuture.allOf(replays.toArray(CompletableFuture[]::new)).get(30, TimeUnit.MINUTES);
        double seconds = (System.nanoTime() - t0) / 1e9;
        System.out.printf(
            "NATS replay of %d of %d entities in [%s] (%s, %d shared scans): %d events in %.2f s = %.0f events/s%n",
            entities,
            ids.size(),
            stream,
            mode,
            ((NatsJournal) journal).sharedScans() - scans,
            events.get(),
            seconds,
            events.get() / seconds);
      }
    } finally {
      system.terminate();
      system.getWhenTerminated().toCompletableFuture().get(30, TimeUnit.SECONDS);
    }
  }
}
