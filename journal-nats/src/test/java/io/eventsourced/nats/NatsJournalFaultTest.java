package io.eventsourced.nats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.JournalException;
import io.eventsourced.journal.PersistentRepr;
import io.eventsourced.snapshot.SnapshotRecord;
import io.eventsourced.tck.EntityFaultCheck;
import io.nats.client.Connection;
import io.nats.client.Nats;
import io.nats.client.Options;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Fault tests with a nats-server of their own that they kill, freeze and restart. */
@DisplayName("The NATS journal under server faults")
class NatsJournalFaultTest {
  private static final Logger log = LoggerFactory.getLogger(NatsJournalFaultTest.class);
  private static final String FAST_FAILURE =
      "eventsourced.nats.connection { request-timeout = 1s, connect-timeout = 2s, reconnect-wait = 100ms }\n"
          + "eventsourced.journal.nats.retry-backoff = 200ms\n";
  /** For the kill tests: one republish, so a write lost in the kill fails before the restart. */
  private static final String KILL = FAST_FAILURE + "eventsourced.journal.nats.publish-retries = 1\n";

  @Test
  @DisplayName("keeps every acknowledged event exactly once when the server is killed mid-run and restarted")
  void killAndRestart() throws Exception {
    try (NatsServerProcess server = NatsServerProcess.start()) {
      TestNats.Names names = TestNats.Names.fresh("KILL");
      ActorTestKit testKit =
          ActorTestKit.create("NatsKill", names.config(server.url(), KILL));
      try {
        Journal journal = Persistence.get(testKit.system()).journal("eventsourced.journal.nats");
        int writers = 16;
        AtomicBoolean stop = new AtomicBoolean();
        AtomicBoolean restarted = new AtomicBoolean();
        AtomicInteger failures = new AtomicInteger();
        AtomicInteger ackedAfterRestart = new AtomicInteger();
        List<Map<Long, String>> acked = new ArrayList<>();
        List<PersistenceId> ids = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        List<Throwable> problems = Collections.synchronizedList(new ArrayList<>());
        for (int w = 0; w < writers; w++) {
          PersistenceId id = PersistenceId.of("fault", UUID.randomUUID().toString());
          Map<Long, String> mine = new ConcurrentHashMap<>();
          ids.add(id);
          acked.add(mine);
          int writer = w;
          Thread thread =
              new Thread(
                  () -> {
                    long last = 0;
                    int attempt = 0;
                    while (!stop.get()) {
                      String payload = "w" + writer + "-a" + attempt++;
                      // Every second write carries two events, to check atomic envelopes too.
                      int count = attempt % 2 == 0 ? 2 : 1;
                      List<PersistentRepr> events = new ArrayList<>();
                      for (int i = 1; i <= count; i++) {
                        events.add(new PersistentRepr(id, last + i, 4, "", (payload + "/" + i).getBytes(StandardCharsets.UTF_8)));
                      }
                      try {
                        journal.append(new AtomicWrite(id, last, events)).toCompletableFuture().get(30, TimeUnit.SECONDS);
                        for (int i = 1; i <= count; i++) {
                          mine.put(last + i, payload + "/" + i);
                        }
                        last += count;
                        if (restarted.get()) {
                          ackedAfterRestart.incrementAndGet();
                        }
                      } catch (ExecutionException e) {
                        // Told it failed: re-read the highest sequenceNr, as a re-spawned entity does.
                        if (failures.incrementAndGet() <= 5) {
                          log.info("Write failed as reported to its caller: {}", e.getCause().getMessage());
                        }
                        last = highestWhenReachable(journal, id, stop);
                      } catch (TimeoutException e) {
                        problems.add(new AssertionError("a caller was not told the outcome of its write within 30s", e));
                        return;
                      } catch (InterruptedException e) {
                        return;
                      }
                    }
                  });
          threads.add(thread);
          thread.start();
        }
        Thread.sleep(1500);
        server.kill();
        Thread.sleep(1000);
        server.startProcess();
        restarted.set(true);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (ackedAfterRestart.get() < writers * 20 && System.nanoTime() < deadline) {
          Thread.sleep(50);
        }
        stop.set(true);
        for (Thread thread : threads) {
          thread.join(60_000);
        }
        assertThat(problems).isEmpty();
        assertThat(ackedAfterRestart.get()).as("writes acknowledged after the restart").isGreaterThanOrEqualTo(writers * 20);
        log.info(
            "Kill test: {} events acknowledged, {} writes failed and were re-read",
            acked.stream().mapToInt(Map::size).sum(),
            failures.get());
        for (int w = 0; w < writers; w++) {
          PersistenceId id = ids.get(w);
          List<PersistentRepr> events = replayWhenReachable(journal, id);
          for (int i = 0; i < events.size(); i++) {
            assertThat(events.get(i).sequenceNr()).as("contiguous, no duplicates, in [%s]", id).isEqualTo(i + 1);
          }
          for (Map.Entry<Long, String> e : acked.get(w).entrySet()) {
            assertThat(e.getKey()).as("acknowledged event present in [%s]", id).isLessThanOrEqualTo(events.size());
            assertThat(new String(events.get((int) (e.getKey() - 1)).payload(), StandardCharsets.UTF_8))
                .as("acknowledged event %s of [%s] stored as written", e.getKey(), id)
                .isEqualTo(e.getValue());
          }
          assertThat(journal.highestSequenceNr(id).toCompletableFuture().get(30, TimeUnit.SECONDS)).isEqualTo(events.size());
        }
      } finally {
        testKit.shutdownTestKit();
      }
    }
  }

  @Test
  @DisplayName("through entities and their asks: tells every caller of a lost write, stores each acknowledged event once, and lets re-spawned entities recover what was stored and go on")
  void killAndRestartUnderEntities() throws Exception {
    try (NatsServerProcess server = NatsServerProcess.start()) {
      TestNats.Names names = TestNats.Names.fresh("ENTITYKILL");
      ActorTestKit testKit =
          ActorTestKit.create("NatsEntityKill", names.config(server.url(), KILL));
      try {
        EntityFaultCheck.Outcome outcome =
            EntityFaultCheck.run(testKit.system(), server::kill, Duration.ofSeconds(4), server::startProcess);
        log.info("Entity fault run: {}", outcome);
      } finally {
        testKit.shutdownTestKit();
      }
    }
  }

  private static long highestWhenReachable(Journal journal, PersistenceId id, AtomicBoolean stop) {
    while (true) {
      try {
        return journal.highestSequenceNr(id).toCompletableFuture().get(30, TimeUnit.SECONDS);
      } catch (ExecutionException | TimeoutException e) {
        log.debug("Cannot read the highest sequenceNr of [{}] yet: {}", id, e.toString());
        if (stop.get()) {
          return -1;
        }
        try {
          Thread.sleep(100);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          return -1;
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return -1;
      }
    }
  }

  @Test
  @DisplayName("republishes a write whose acknowledgement was lost, and the server stores it once")
  void republishAfterLostAck() throws Exception {
    // The publish sits in the frozen server's socket until its acknowledgement times out; the
    // server stays frozen a second longer, so the republish of the same message id (after the
    // 200 ms backoff) meets it frozen too (the liveness check may also force a reconnect
    // meanwhile); the server deduplicates them.
    secondWriteWhileFrozen(
        "LOSTACK",
        "eventsourced.journal.nats.publish-retries = 20\n",
        1000,
        null,
        (server, names, journal, id) -> {
          try (Connection nc = Nats.connect(Options.builder().server(server.url()).build())) {
            assertThat(nc.jetStreamManagement().getStreamInfo(names.stream()).getStreamState().getMsgCount())
                .as("messages in the stream after at least two publishes of the second write")
                .isEqualTo(2);
          }
        });
  }

  @Test
  @DisplayName("confirms a write whose republish comes after the duplicate window, when the first publish was stored")
  void republishAfterDuplicateWindow() throws Exception {
    // The server resumes as soon as the acknowledgement has timed out and stores the publish;
    // the republish follows only after the 3 s backoff, when the 500 ms duplicate window no
    // longer knows the message id: the server rejects it as a stale expectation although the
    // write is stored.
    secondWriteWhileFrozen(
        "LATEDUP",
        "eventsourced.journal.nats.publish-retries = 5\n"
            + "eventsourced.journal.nats.retry-backoff = 3s\n"
            + "eventsourced.journal.nats.stream.duplicate-window = 500ms\n",
        0,
        null,
        (server, names, journal, id) -> {
          assertThat(((NatsJournal) journal).confirmedRepublishes()).as("republishes confirmed after the window").isEqualTo(1);
          assertThat(replayWhenReachable(journal, id)).hasSize(2);
          // A real conflict is still one: a stale write is rejected, nothing of it stored.
          assertThatThrownBy(() -> journal.append(write(id, 1, "stale")).toCompletableFuture().get(10, TimeUnit.SECONDS))
              .hasCauseInstanceOf(io.eventsourced.journal.ConcurrencyConflictException.class);
          assertThat(replayWhenReachable(journal, id)).hasSize(2);
        });
  }

  @Test
  @DisplayName("lets a replay that started alone join a mass recovery that begins while it prepares")
  void loneReplayJoinsGroup() throws Exception {
    try (NatsServerProcess server = NatsServerProcess.start()) {
      TestNats.Names names = TestNats.Names.fresh("JOIN");
      ActorTestKit testKit =
          ActorTestKit.create(
              "NatsJoin",
              names.config(
                  server.url(),
                  "eventsourced.nats.dispatcher.thread-pool-executor.fixed-pool-size = 4\n"
                      + "eventsourced.journal.nats.shared-scan.min-replays = 10\n"
                      + "eventsourced.journal.nats.shared-scan.gather-window = 1s\n"));
      try {
        NatsJournal journal = (NatsJournal) Persistence.get(testKit.system()).journal("eventsourced.journal.nats");
        List<PersistenceId> ids = TestNats.freshIds("join", 10);
        for (long seq = 0; seq < 20; seq++) {
          for (PersistenceId id : ids) {
            journal.append(write(id, seq, "e" + seq)).toCompletableFuture().get(10, TimeUnit.SECONDS);
          }
        }
        Map<PersistenceId, List<Long>> seen = new ConcurrentHashMap<>();
        Map<PersistenceId, CompletableFuture<?>> replays = new java.util.LinkedHashMap<>();
        for (PersistenceId id : ids) {
          seen.put(id, Collections.synchronizedList(new ArrayList<>()));
        }
        // The first replay is alone: it starts at once and waits in its preparation for the
        // frozen server; the other nine arrive meanwhile and gather (one at once, as a burst).
        server.signal("STOP");
        PersistenceId first = ids.get(0);
        replays.put(first, journal.replay(first, 1, Long.MAX_VALUE, Long.MAX_VALUE, e -> seen.get(first).add(e.sequenceNr())).toCompletableFuture());
        // Polled, not slept, so that a loaded machine changes nothing: the first replay has been
        // taken alone before the others are asked for, and the server resumes while they gather.
        awaitTrue(journal::replaysTaken, "the first replay taken alone");
        TestNats.whileDispatcherBusy(
            testKit.system(),
            3,
            () -> {
              for (PersistenceId id : ids.subList(1, ids.size())) {
                replays.put(id, journal.replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, e -> seen.get(id).add(e.sequenceNr())).toCompletableFuture());
              }
              return null;
            });
        awaitTrue(journal::gathering, "the other nine gathering");
        server.signal("CONT");
        CompletableFuture.allOf(replays.values().toArray(CompletableFuture[]::new)).get(30, TimeUnit.SECONDS);
        for (PersistenceId id : ids) {
          assertThat(seen.get(id)).as("events of [%s]", id).containsExactlyElementsOf(
              java.util.stream.LongStream.rangeClosed(1, 20).boxed().toList());
        }
        assertThat(journal.rejoinedReplays()).as("replays that started alone and joined the group").isEqualTo(1);
        assertThat(journal.sharedScans())
            .as("shared scans: nine alone are below min-replays = 10; with the first they reach it")
            .isEqualTo(1);
      } finally {
        testKit.shutdownTestKit();
      }
    }
  }

  @Test
  @DisplayName("confirms such a late republish also when another writer appended after the stored first attempt")
  void republishAfterDuplicateWindowAndAnotherWrite() throws Exception {
    String config =
        "eventsourced.journal.nats.publish-retries = 5\n"
            + "eventsourced.journal.nats.retry-backoff = 3s\n"
            + "eventsourced.journal.nats.stream.duplicate-window = 500ms\n";
    // As above; between the server storing the first attempt (on resuming) and the republish
    // (3 s later), a second journal (another process) appends the entity's next event, so the
    // stored write is no longer the entity's last message.
    secondWriteWhileFrozen(
        "LATEDUP2",
        config,
        0,
        (server, names, journal, id) -> {
          Thread.sleep(300);
          ActorTestKit other = ActorTestKit.create("NatsOtherWriter", names.config(server.url(), FAST_FAILURE + config));
          try {
            Persistence.get(other.system()).journal("eventsourced.journal.nats")
                .append(write(id, 2, "other")).toCompletableFuture().get(10, TimeUnit.SECONDS);
          } finally {
            other.shutdownTestKit();
          }
        },
        (server, names, journal, id) -> {
          assertThat(((NatsJournal) journal).confirmedRepublishes()).as("republishes confirmed after the window").isEqualTo(1);
          assertThat(replayWhenReachable(journal, id))
              .extracting(e -> new String(e.payload(), StandardCharsets.UTF_8))
              .containsExactly("first", "second", "other");
        });
  }

  /** More checks after {@link #secondWriteWhileFrozen}. */
  private interface AfterFreeze {
    void check(NatsServerProcess server, TestNats.Names names, Journal journal, PersistenceId id) throws Exception;
  }

  /**
   * Stores a first write, freezes the server ({@code SIGSTOP}) while a second write is in flight,
   * resumes it {@code frozenAfterLoss} milliseconds after the journal has seen the second write's
   * acknowledgement time out (waiting for that, not for a fixed time, keeps the test independent
   * of how loaded the machine is), and checks that the second write was confirmed and is stored
   * once, after the first.
   */
  private static void secondWriteWhileFrozen(
      String prefix, String config, long frozenAfterLoss, AfterFreeze afterResume, AfterFreeze more) throws Exception {
    try (NatsServerProcess server = NatsServerProcess.start()) {
      TestNats.Names names = TestNats.Names.fresh(prefix);
      ActorTestKit testKit = ActorTestKit.create("Nats" + prefix, names.config(server.url(), FAST_FAILURE + config));
      try {
        Journal journal = Persistence.get(testKit.system()).journal("eventsourced.journal.nats");
        PersistenceId id = PersistenceId.of("fault", UUID.randomUUID().toString());
        journal.append(write(id, 0, "first")).toCompletableFuture().get(10, TimeUnit.SECONDS);
        server.signal("STOP");
        var pending = journal.append(write(id, 1, "second")).toCompletableFuture();
        NatsJournal nats = (NatsJournal) journal;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (nats.lostAcknowledgements() == 0 && System.nanoTime() < deadline) {
          Thread.sleep(10);
        }
        assertThat(nats.lostAcknowledgements()).as("acknowledgements lost while the server is frozen").isPositive();
        assertThat(pending).as("the second write, still unconfirmed while the server is frozen").isNotDone();
        Thread.sleep(frozenAfterLoss);
        server.signal("CONT");
        if (afterResume != null) {
          afterResume.check(server, names, journal, id);
        }
        pending.get(30, TimeUnit.SECONDS);
        List<PersistentRepr> events = replayWhenReachable(journal, id);
        assertThat(events.subList(0, 2)).extracting(PersistentRepr::sequenceNr).containsExactly(1L, 2L);
        assertThat(new String(events.get(1).payload(), StandardCharsets.UTF_8)).isEqualTo("second");
        more.check(server, names, journal, id);
      } finally {
        testKit.shutdownTestKit();
      }
    }
  }

  @Test
  @DisplayName("fails every unfinished replay of a shared scan with a JournalException when the server stops answering mid-scan")
  void sharedScanTimeout() throws Exception {
    try (NatsServerProcess server = NatsServerProcess.start()) {
      TestNats.Names names = TestNats.Names.fresh("SCANFAULT");
      int threads = 4;
      ActorTestKit testKit =
          ActorTestKit.create(
              "NatsScanFault",
              names.config(
                  server.url(),
                  FAST_FAILURE
                      + "eventsourced.nats.dispatcher.thread-pool-executor.fixed-pool-size = "
                      + threads
                      + "\neventsourced.journal.nats.shared-scan.min-replays = 2\n"));
      try {
        NatsJournal journal = (NatsJournal) Persistence.get(testKit.system()).journal("eventsourced.journal.nats");
        List<PersistenceId> ids = TestNats.freshIds("scanfault", 4);
        // About 8 MB of interleaved events: far more than the client holds when the server freezes.
        byte[] payload = new byte[1024];
        for (long seq = 0; seq < 2000; seq++) {
          List<CompletableFuture<?>> round = new ArrayList<>();
          for (PersistenceId id : ids) {
            round.add(
                journal
                    .append(new AtomicWrite(id, seq, List.of(new PersistentRepr(id, seq + 1, 4, "", payload))))
                    .toCompletableFuture());
          }
          CompletableFuture.allOf(round.toArray(CompletableFuture[]::new)).get(30, TimeUnit.SECONDS);
        }
        AtomicBoolean frozen = new AtomicBoolean();
        Map<PersistenceId, CompletableFuture<?>> stages =
            TestNats.whileDispatcherBusy(
                testKit.system(),
                threads,
                () -> {
                  Map<PersistenceId, CompletableFuture<?>> map = new java.util.LinkedHashMap<>();
                  for (PersistenceId id : ids) {
                    map.put(
                        id,
                        journal
                            .replay(
                                id,
                                1,
                                Long.MAX_VALUE,
                                Long.MAX_VALUE,
                                e -> {
                                  if (frozen.compareAndSet(false, true)) {
                                    try {
                                      server.signal("STOP");
                                    } catch (Exception ex) {
                                      throw new IllegalStateException(ex);
                                    }
                                  }
                                })
                            .toCompletableFuture());
                  }
                  return map;
                });
        try {
          for (PersistenceId id : ids) {
            Throwable error = null;
            try {
              stages.get(id).get(30, TimeUnit.SECONDS);
            } catch (ExecutionException e) {
              error = e.getCause();
            }
            assertThat(error).as("outcome of the replay of [%s]", id).isInstanceOf(JournalException.class);
            assertThat(((JournalException) error).persistenceId()).isEqualTo(id);
            assertThat(error.getMessage()).contains("no event arrived within").contains("shared scan").contains(id.toString());
          }
        } finally {
          server.signal("CONT");
        }
        assertThat(frozen.get()).isTrue();
        assertThat(journal.sharedScans()).isEqualTo(1);
      } finally {
        testKit.shutdownTestKit();
      }
    }
  }

  @Test
  @DisplayName("fails a snapshot save to a frozen server after request-timeout, not connect-timeout, and an append whose position lookup fails naming its sequenceNr")
  void snapshotRequestTimeout() throws Exception {
    try (NatsServerProcess server = NatsServerProcess.start()) {
      TestNats.Names names = TestNats.Names.fresh("SNAPTIMEOUT");
      // jnats' own default for key-value requests is the connection's connect-timeout.
      ActorTestKit testKit =
          ActorTestKit.create(
              "NatsSnapshotTimeout",
              names.config(server.url(), "eventsourced.nats.connection { request-timeout = 1s, connect-timeout = 30s }\n"));
      try {
        var snapshots = Persistence.get(testKit.system()).snapshotStore("eventsourced.snapshot-store.nats");
        PersistenceId id = PersistenceId.of("snap", UUID.randomUUID().toString());
        snapshots.save(new SnapshotRecord(id, 1, 4, "", new byte[] {1})).toCompletableFuture().get(10, TimeUnit.SECONDS);
        // The journal of a second system has no cached position: its append must look one up.
        Journal journal = Persistence.get(testKit.system()).journal("eventsourced.journal.nats");
        journal.append(write(id, 0, "first")).toCompletableFuture().get(10, TimeUnit.SECONDS);
        ActorTestKit other = ActorTestKit.create("NatsSnapshotTimeoutOther", names.config(server.url(), FAST_FAILURE));
        Journal cold = Persistence.get(other.system()).journal("eventsourced.journal.nats");
        server.signal("STOP");
        try {
          assertThat(org.assertj.core.api.Assertions.catchThrowable(
                  () -> cold.append(write(id, 1, "second")).toCompletableFuture().get(30, TimeUnit.SECONDS)))
              .isInstanceOf(ExecutionException.class)
              .cause()
              .isInstanceOf(JournalException.class)
              .hasMessageContaining("cannot append events for [" + id + "] from sequenceNr [2]; nothing was stored");
          long start = System.nanoTime();
          Throwable failure =
              org.assertj.core.api.Assertions.catchThrowable(
                  () -> snapshots.save(new SnapshotRecord(id, 2, 4, "", new byte[] {2})).toCompletableFuture().get(60, TimeUnit.SECONDS));
          long seconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start);
          assertThat(failure).isInstanceOf(ExecutionException.class);
          assertThat(failure.getCause()).hasMessageContaining(id.toString());
          assertThat(seconds).as("seconds until the save failed").isLessThan(15);
        } finally {
          server.signal("CONT");
          other.shutdownTestKit();
        }
      } finally {
        testKit.shutdownTestKit();
      }
    }
  }

  @Test
  @DisplayName("fails to start with a message naming the servers, not the password, when credentials are wrong")
  void wrongCredentials() throws Exception {
    try (NatsServerProcess server = NatsServerProcess.start("--user", "es", "--pass", "right-secret")) {
      TestNats.Names names = TestNats.Names.fresh("AUTH");
      ActorTestKit wrong =
          ActorTestKit.create(
              "NatsWrongAuth",
              names.config(server.url(), FAST_FAILURE + "eventsourced.nats.connection { user = es, password = wrong-secret }\n"));
      try {
        assertThatThrownBy(() -> Persistence.get(wrong.system()).journal("eventsourced.journal.nats"))
            .isInstanceOf(IllegalStateException.class)
            .hasMessageContaining(server.url())
            .hasMessageNotContaining("wrong-secret")
            .hasMessageNotContaining("right-secret");
      } finally {
        wrong.shutdownTestKit();
      }
      ActorTestKit right =
          ActorTestKit.create(
              "NatsRightAuth",
              names.config(server.url(), FAST_FAILURE + "eventsourced.nats.connection { user = es, password = right-secret }\n"));
      try {
        Journal journal = Persistence.get(right.system()).journal("eventsourced.journal.nats");
        PersistenceId id = PersistenceId.of("auth", UUID.randomUUID().toString());
        journal.append(write(id, 0, "ok")).toCompletableFuture().get(10, TimeUnit.SECONDS);
        assertThat(journal.highestSequenceNr(id).toCompletableFuture().get(10, TimeUnit.SECONDS)).isEqualTo(1L);
      } finally {
        right.shutdownTestKit();
      }
    }
  }

  /** Replays all events, retrying while the connection recovers from the fault. */
  private static List<PersistentRepr> replayWhenReachable(Journal journal, PersistenceId id) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (true) {
      List<PersistentRepr> events = Collections.synchronizedList(new ArrayList<>());
      try {
        journal.replay(id, 1, Long.MAX_VALUE, Long.MAX_VALUE, events::add).toCompletableFuture().get(10, TimeUnit.SECONDS);
        return List.copyOf(events);
      } catch (ExecutionException e) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
        log.info("Replay failed while the connection recovers, retrying: {}", e.getCause().getMessage());
        Thread.sleep(200);
      }
    }
  }

  /** Polls {@code condition} for up to 10 s, failing the test with {@code what} if it never holds. */
  private static void awaitTrue(java.util.function.BooleanSupplier condition, String what) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (!condition.getAsBoolean() && System.nanoTime() < deadline) {
      Thread.sleep(1);
    }
    assertThat(condition.getAsBoolean()).as(what).isTrue();
  }

  private static AtomicWrite write(PersistenceId id, long expected, String text) {
    return new AtomicWrite(
        id, expected, List.of(new PersistentRepr(id, expected + 1, 4, "", text.getBytes(StandardCharsets.UTF_8))));
  }
}
