package io.eventsourced.nats;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.JournalException;
import io.eventsourced.journal.PersistentRepr;
import io.nats.client.Connection;
import io.nats.client.JetStreamManagement;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.nats.client.api.MessageGetRequest;
import io.nats.client.api.MessageInfo;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.apache.pekko.Done;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * The shared scan for mass recovery, against nats-server. Bursts of replays are made
 * deterministic by holding every dispatcher thread while they are requested, so one drain finds
 * them all queued.
 */
@DisplayName("The NATS journal's shared scan for many concurrent replays")
class NatsSharedScanTest {
  private static final TestNats.Names names = TestNats.Names.fresh("SCAN");
  private static final int THREADS = 4;
  private static final String CONFIG =
      "eventsourced.nats.dispatcher.thread-pool-executor.fixed-pool-size = "
          + THREADS
          + "\n"
          + "eventsourced.journal.nats.shared-scan { min-replays = 4, gather-window = 20ms }\n";
  private static final long ALL = Long.MAX_VALUE;
  private static ActorTestKit testKit;

  @BeforeAll
  static void start() {
    TestNats.requireServer();
    testKit = ActorTestKit.create("NatsSharedScanTest", names.config(TestNats.URL, CONFIG));
  }

  @AfterAll
  static void shutdown() throws Exception {
    if (testKit != null) {
      testKit.shutdownTestKit();
      names.delete(TestNats.URL);
    }
  }

  private static NatsJournal journal() {
    return journal(testKit);
  }

  private static NatsJournal journal(ActorTestKit kit) {
    return (NatsJournal) Persistence.get(kit.system()).journal("eventsourced.journal.nats");
  }

  @Test
  @DisplayName("serves a burst of replays on interleaved data with one scan, each getting exactly its own events in order")
  void burstOfReplays() throws Exception {
    List<PersistenceId> ids = TestNats.freshIds("member", 12);
    Map<PersistenceId, Long> last = writeInterleaved(ids, 15, true);
    long scans = journal().sharedScans();
    Map<PersistenceId, Recorder> recorders = new LinkedHashMap<>();
    ids.forEach(id -> recorders.put(id, new Recorder()));
    Map<PersistenceId, CompletableFuture<Done>> stages =
        burst(testKit, ids, id -> journal().replay(id, 1, ALL, ALL, recorders.get(id)));
    for (PersistenceId id : ids) {
      await(stages.get(id));
      Recorder recorder = recorders.get(id);
      assertThat(recorder.sequenceNrs()).as("events of %s", id).containsExactlyElementsOf(range(1, last.get(id)));
      assertThat(recorder.events).allSatisfy(e -> assertThat(e.persistenceId()).isEqualTo(id));
      assertThat(recorder.events).allSatisfy(e -> assertThat(e.payload()).isEqualTo(TestNats.payload(id, e.sequenceNr())));
      assertThat(recorder.threads).allSatisfy(t -> assertThat(t).contains("eventsourced.nats.dispatcher"));
      assertThat(recorder.overlapping.get()).as("concurrent consumer calls").isZero();
    }
    assertThat(journal().sharedScans()).as("shared scans").isEqualTo(scans + 1);
    // The scan deletes its consumer when it ends. Only the scan's own consumer is checked (by
    // its filter on this test's type): the per-entity replays of other tests leave ordered
    // consumers that the server removes on its own, some seconds after they were unsubscribed.
    String scanFilter = names.prefix() + "." + Keys.encode(ids.get(0).typeName()) + ".>";
    try (Connection nc = Nats.connect(Options.builder().server(TestNats.URL).build())) {
      JetStreamManagement jsm = nc.jetStreamManagement();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (!consumersFiltering(jsm, scanFilter).isEmpty() && System.nanoTime() < deadline) {
        Thread.sleep(100);
      }
      assertThat(consumersFiltering(jsm, scanFilter))
          .as("consumers of the scan left on the stream")
          .extracting(NatsSharedScanTest::describe)
          .isEmpty();
    }
  }

  @Test
  @DisplayName("replays a group that is a small share of its type's messages one entity at a time, and the whole type with one scan")
  void smallShareReplaysEachEntity() throws Exception {
    String type = "share-" + UUID.randomUUID().toString().substring(0, 8);
    List<PersistenceId> ids = TestNats.freshIds(type, 30);
    Map<PersistenceId, Long> last = writeInterleaved(ids, 5, false);
    long scans = journal().sharedScans();
    // 4 of 30 entities: a scan would deliver about 87 % messages of others.
    List<PersistenceId> few = ids.subList(0, 4);
    Map<PersistenceId, Recorder> recorders = new LinkedHashMap<>();
    ids.forEach(id -> recorders.put(id, new Recorder()));
    Map<PersistenceId, CompletableFuture<Done>> stages =
        burst(testKit, few, id -> journal().replay(id, 1, ALL, ALL, recorders.get(id)));
    for (PersistenceId id : few) {
      await(stages.get(id));
      assertThat(recorders.get(id).sequenceNrs()).containsExactlyElementsOf(range(1, last.get(id)));
    }
    assertThat(journal().sharedScans()).as("shared scans for 4 of 30 entities").isEqualTo(scans);

    ids.forEach(id -> recorders.put(id, new Recorder()));
    stages = burst(testKit, ids, id -> journal().replay(id, 1, ALL, ALL, recorders.get(id)));
    for (PersistenceId id : ids) {
      await(stages.get(id));
      assertThat(recorders.get(id).sequenceNrs()).containsExactlyElementsOf(range(1, last.get(id)));
    }
    assertThat(journal().sharedScans()).as("shared scans for 30 of 30 entities").isEqualTo(scans + 1);
  }

  @Test
  @DisplayName("keeps each member's from, to and max, serves starts after 1, last-message-only ranges and empty entities")
  void boundsPerMember() throws Exception {
    List<PersistenceId> ids = TestNats.freshIds("bounds", 6);
    PersistenceId otherType = PersistenceId.of("bounds-other", UUID.randomUUID().toString());
    List<PersistenceId> written = new ArrayList<>(ids);
    written.add(otherType);
    Map<PersistenceId, Long> last = writeInterleaved(written, 15, true);
    PersistenceId unknown = PersistenceId.of("bounds", UUID.randomUUID().toString());
    PersistenceId a = ids.get(0);
    PersistenceId b = ids.get(1);
    PersistenceId c = ids.get(2);
    PersistenceId d = ids.get(3);
    PersistenceId e = ids.get(4);
    PersistenceId f = ids.get(5);
    record Ask(PersistenceId id, long from, long to, long max, List<Long> expected) {}
    List<Ask> asks =
        List.of(
            new Ask(a, 1, ALL, ALL, range(1, last.get(a))),
            new Ask(b, 7, ALL, ALL, range(7, last.get(b))),
            new Ask(c, 13, ALL, 5, range(13, 17)),
            new Ask(d, 1, 10, ALL, range(1, 10)),
            new Ask(e, 4, 9, 3, range(4, 6)),
            new Ask(f, 1, ALL, 1, range(1, 1)),
            new Ask(otherType, 2, ALL, ALL, range(2, last.get(otherType))),
            new Ask(unknown, 1, ALL, ALL, List.of()),
            new Ask(a, last.get(a), ALL, ALL, List.of(last.get(a))),
            new Ask(b, last.get(b) + 1, ALL, ALL, List.of()),
            new Ask(c, 1, ALL, 0, List.of()),
            new Ask(d, 5, 4, ALL, List.of()));
    long scans = journal().sharedScans();
    List<Recorder> recorders = new ArrayList<>();
    List<CompletableFuture<Done>> stages =
        TestNats.whileDispatcherBusy(
            testKit.system(),
            THREADS,
            () -> {
              List<CompletableFuture<Done>> list = new ArrayList<>();
              for (Ask ask : asks) {
                Recorder recorder = new Recorder();
                recorders.add(recorder);
                list.add(journal().replay(ask.id(), ask.from(), ask.to(), ask.max(), recorder).toCompletableFuture());
              }
              return list;
            });
    for (int i = 0; i < asks.size(); i++) {
      Ask ask = asks.get(i);
      await(stages.get(i));
      assertThat(recorders.get(i).sequenceNrs())
          .as("replay of %s from %s to %s max %s", ask.id(), ask.from(), ask.to(), ask.max())
          .containsExactlyElementsOf(ask.expected());
      assertThat(recorders.get(i).events).allSatisfy(ev -> assertThat(ev.payload()).isEqualTo(TestNats.payload(ask.id(), ev.sequenceNr())));
    }
    assertThat(journal().sharedScans()).as("shared scans").isEqualTo(scans + 1);
  }

  @Test
  @DisplayName("fails only the member whose consumer throws, with its own exception, while the others complete")
  void failingConsumerFailsAlone() throws Exception {
    List<PersistenceId> ids = TestNats.freshIds("failing", 6);
    Map<PersistenceId, Long> last = writeInterleaved(ids, 10, false);
    IllegalStateException boom = new IllegalStateException("cannot apply event 3");
    StackOverflowError deep = new StackOverflowError("deep event handler");
    List<Long> seenByFailing = Collections.synchronizedList(new ArrayList<>());
    Map<PersistenceId, Recorder> recorders = new ConcurrentHashMap<>();
    long scans = journal().sharedScans();
    Map<PersistenceId, CompletableFuture<Done>> stages =
        burst(
            testKit,
            ids,
            id -> {
              Consumer<PersistentRepr> consumer;
              if (id.equals(ids.get(1))) {
                consumer =
                    ev -> {
                      seenByFailing.add(ev.sequenceNr());
                      if (ev.sequenceNr() == 3) {
                        throw boom;
                      }
                    };
              } else if (id.equals(ids.get(4))) {
                consumer =
                    ev -> {
                      throw deep;
                    };
              } else {
                Recorder recorder = new Recorder();
                recorders.put(id, recorder);
                consumer = recorder;
              }
              return journal().replay(id, 1, ALL, ALL, consumer);
            });
    assertThat(failure(stages.get(ids.get(1)))).isSameAs(boom);
    assertThat(seenByFailing).containsExactly(1L, 2L, 3L);
    assertThat(failure(stages.get(ids.get(4)))).isSameAs(deep);
    for (PersistenceId id : recorders.keySet()) {
      await(stages.get(id));
      assertThat(recorders.get(id).sequenceNrs()).as("events of %s", id).containsExactlyElementsOf(range(1, last.get(id)));
    }
    assertThat(recorders).hasSize(4);
    assertThat(journal().sharedScans()).as("shared scans").isEqualTo(scans + 1);
  }

  @Test
  @DisplayName("fails a member with a missing event naming its persistence id and sequenceNr, and completes the others")
  void gapFailsOnlyThatMember() throws Exception {
    List<PersistenceId> ids = TestNats.freshIds("gap", 5);
    Map<PersistenceId, Long> last = writeInterleaved(ids, 12, false);
    PersistenceId holed = ids.get(2);
    deleteMessageHolding(holed, 5);
    Map<PersistenceId, Recorder> recorders = new LinkedHashMap<>();
    ids.forEach(id -> recorders.put(id, new Recorder()));
    long scans = journal().sharedScans();
    Map<PersistenceId, CompletableFuture<Done>> stages =
        burst(testKit, ids, id -> journal().replay(id, 1, ALL, ALL, recorders.get(id)));
    Throwable error = failure(stages.get(holed));
    assertThat(error).isInstanceOf(JournalException.class).hasMessageContaining("sequenceNr [5] is missing");
    assertThat(((JournalException) error).persistenceId()).isEqualTo(holed);
    assertThat(((JournalException) error).sequenceNr()).isEqualTo(5);
    assertThat(recorders.get(holed).sequenceNrs()).isSubsetOf(range(1, 4));
    for (PersistenceId id : ids) {
      if (!id.equals(holed)) {
        await(stages.get(id));
        assertThat(recorders.get(id).sequenceNrs()).containsExactlyElementsOf(range(1, last.get(id)));
      }
    }
    assertThat(journal().sharedScans()).as("shared scans").isEqualTo(scans + 1);
  }

  @Test
  @DisplayName("completes each member as soon as it has its events, not at the end of the scan")
  void memberCompletesEarly() throws Exception {
    PersistenceId early = PersistenceId.of("early", UUID.randomUUID().toString());
    for (long seq = 0; seq < 10; seq++) {
      await(journal().append(TestNats.write(early, seq, 1)));
    }
    List<PersistenceId> later = TestNats.freshIds("early", 4);
    writeInterleaved(later, 10, false);
    List<PersistenceId> ids = new ArrayList<>(later);
    ids.add(0, early);
    long scans = journal().sharedScans();
    AtomicReference<CompletableFuture<Done>> earlyStage = new AtomicReference<>();
    AtomicReference<String> earlyWhenLaterStarted = new AtomicReference<>();
    Map<PersistenceId, CompletableFuture<Done>> stages =
        burst(
            testKit,
            ids,
            id -> {
              if (id.equals(early)) {
                CompletableFuture<Done> stage = journal().replay(id, 1, ALL, ALL, ev -> {}).toCompletableFuture();
                earlyStage.set(stage);
                return stage;
              }
              AtomicInteger calls = new AtomicInteger();
              return journal()
                  .replay(
                      id,
                      1,
                      ALL,
                      ALL,
                      ev -> {
                        if (id.equals(later.get(0)) && calls.getAndIncrement() == 0) {
                          // The scan thread is here: the early member can only be complete if it
                          // was completed before the scan reached this message.
                          try {
                            earlyStage.get().get(10, TimeUnit.SECONDS);
                            earlyWhenLaterStarted.set("complete");
                          } catch (TimeoutException | ExecutionException | InterruptedException e) {
                            earlyWhenLaterStarted.set("not complete: " + e);
                          }
                        }
                      });
            });
    for (CompletableFuture<Done> stage : stages.values()) {
      await(stage);
    }
    assertThat(earlyWhenLaterStarted.get()).isEqualTo("complete");
    assertThat(journal().sharedScans()).as("shared scans").isEqualTo(scans + 1);
  }

  @Test
  @DisplayName("stops the scan as soon as every member is done")
  void scanStopsWhenAllAreDone() throws Exception {
    List<PersistenceId> ids = TestNats.freshIds("stops", 6);
    writeInterleaved(ids, 20, true); // 7 messages per round, 140 in the group's range
    long messages = journal().sharedScanMessages();
    Map<PersistenceId, Recorder> recorders = new LinkedHashMap<>();
    ids.forEach(id -> recorders.put(id, new Recorder()));
    Map<PersistenceId, CompletableFuture<Done>> stages =
        burst(testKit, ids, id -> journal().replay(id, 1, 2, ALL, recorders.get(id)));
    for (PersistenceId id : ids) {
      await(stages.get(id));
      assertThat(recorders.get(id).sequenceNrs()).containsExactly(1L, 2L);
    }
    // The scan adds its count when it ends, just after its last member completed.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (journal().sharedScanMessages() == messages && System.nanoTime() < deadline) {
      Thread.sleep(10);
    }
    // Every member has sequenceNr 2 within the first two rounds (14 messages).
    assertThat(journal().sharedScanMessages() - messages).as("messages read by the scan").isBetween(1L, 30L);
  }

  @Test
  @DisplayName("serves a lone replay on its own at once, and makes a group wait the gather window")
  void loneReplayDoesNotWait() throws Exception {
    ActorTestKit kit =
        ActorTestKit.create(
            "NatsSharedScanWindow",
            names.config(TestNats.URL, CONFIG + "eventsourced.journal.nats.shared-scan { min-replays = 2, gather-window = 1s }\n"));
    try {
      NatsJournal journal = journal(kit);
      List<PersistenceId> ids = TestNats.freshIds("lone", 2);
      Map<PersistenceId, Long> last = writeInterleaved(ids, 5, false);
      PersistenceId id = ids.get(0);
      Recorder warmUp = new Recorder();
      await(journal.replay(id, 1, ALL, ALL, warmUp));
      Recorder lone = new Recorder();
      long started = System.nanoTime();
      await(journal.replay(id, 1, ALL, ALL, lone));
      long loneMillis = (System.nanoTime() - started) / 1_000_000;
      assertThat(lone.sequenceNrs()).containsExactlyElementsOf(range(1, last.get(id)));
      assertThat(loneMillis).as("milliseconds for a lone replay, gather window 1s").isLessThan(1000);
      assertThat(journal.sharedScans()).as("shared scans after lone replays").isZero();

      Map<PersistenceId, Recorder> recorders = new LinkedHashMap<>();
      ids.forEach(i -> recorders.put(i, new Recorder()));
      started = System.nanoTime();
      Map<PersistenceId, CompletableFuture<Done>> stages =
          burst(kit, ids, i -> journal.replay(i, 1, ALL, ALL, recorders.get(i)));
      for (PersistenceId i : ids) {
        await(stages.get(i));
        assertThat(recorders.get(i).sequenceNrs()).containsExactlyElementsOf(range(1, last.get(i)));
      }
      assertThat((System.nanoTime() - started) / 1_000_000).as("milliseconds for a group of two").isGreaterThanOrEqualTo(1000);
      assertThat(journal.sharedScans()).as("shared scans after a group of two").isEqualTo(1);
    } finally {
      kit.shutdownTestKit();
    }
  }

  @Test
  @DisplayName("replays each entity on its own when min-replays is off")
  void disabled() throws Exception {
    ActorTestKit kit =
        ActorTestKit.create(
            "NatsSharedScanOff", names.config(TestNats.URL, CONFIG + "eventsourced.journal.nats.shared-scan.min-replays = off\n"));
    try {
      NatsJournal journal = journal(kit);
      List<PersistenceId> ids = TestNats.freshIds("off", 8);
      Map<PersistenceId, Long> last = writeInterleaved(ids, 5, false);
      Map<PersistenceId, Recorder> recorders = new LinkedHashMap<>();
      ids.forEach(i -> recorders.put(i, new Recorder()));
      Map<PersistenceId, CompletableFuture<Done>> stages =
          burst(kit, ids, i -> journal.replay(i, 1, ALL, ALL, recorders.get(i)));
      for (PersistenceId i : ids) {
        await(stages.get(i));
        assertThat(recorders.get(i).sequenceNrs()).containsExactlyElementsOf(range(1, last.get(i)));
      }
      assertThat(journal.sharedScans()).isZero();
    } finally {
      kit.shutdownTestKit();
    }
  }

  // ---------------------------------------------------------------- helpers

  /** Records what a replay delivers, and on which threads, and whether calls overlapped. */
  static final class Recorder implements Consumer<PersistentRepr> {
    final List<PersistentRepr> events = Collections.synchronizedList(new ArrayList<>());
    final Set<String> threads = ConcurrentHashMap.newKeySet();
    final AtomicInteger inside = new AtomicInteger();
    final AtomicInteger overlapping = new AtomicInteger();

    @Override
    public void accept(PersistentRepr event) {
      if (inside.incrementAndGet() > 1) {
        overlapping.incrementAndGet();
      }
      events.add(event);
      threads.add(Thread.currentThread().getName());
      inside.decrementAndGet();
    }

    List<Long> sequenceNrs() {
      synchronized (events) {
        return events.stream().map(PersistentRepr::sequenceNr).toList();
      }
    }
  }

  /** Requests one replay per id as one burst, so they are gathered into one group. */
  static Map<PersistenceId, CompletableFuture<Done>> burst(
      ActorTestKit kit,
      List<PersistenceId> ids,
      java.util.function.Function<PersistenceId, java.util.concurrent.CompletionStage<Done>> replay)
      throws Exception {
    return TestNats.whileDispatcherBusy(
        kit.system(),
        THREADS,
        () -> {
          Map<PersistenceId, CompletableFuture<Done>> stages = new LinkedHashMap<>();
          for (PersistenceId id : ids) {
            stages.put(id, replay.apply(id).toCompletableFuture());
          }
          return stages;
        });
  }

  /**
   * Writes {@code rounds} rounds in which every entity appends one message of 1 to 3 events (and,
   * with {@code noise}, an entity of another type too, which no replay asks for).
   *
   * @return the highest sequenceNr of each entity
   */
  private static Map<PersistenceId, Long> writeInterleaved(List<PersistenceId> ids, int rounds, boolean noise)
      throws Exception {
    PersistenceId other = PersistenceId.of("noise", UUID.randomUUID().toString());
    Map<PersistenceId, Long> last = new LinkedHashMap<>();
    ids.forEach(id -> last.put(id, 0L));
    long otherLast = 0;
    for (int round = 0; round < rounds; round++) {
      for (int e = 0; e < ids.size(); e++) {
        PersistenceId id = ids.get(e);
        int count = 1 + (round + e) % 3;
        await(journal().append(TestNats.write(id, last.get(id), count)));
        last.put(id, last.get(id) + count);
      }
      if (noise) {
        await(journal().append(TestNats.write(other, otherLast, 1)));
        otherLast++;
      }
    }
    return last;
  }

  /** Deletes the stored message holding {@code sequenceNr} of the entity, leaving a gap. */
  private static void deleteMessageHolding(PersistenceId id, long sequenceNr) throws Exception {
    String subject = names.prefix() + "." + Keys.entityKey(id);
    try (Connection nc = Nats.connect(Options.builder().server(TestNats.URL).build())) {
      JetStreamManagement jsm = nc.jetStreamManagement();
      long seq = 1;
      while (true) {
        MessageInfo m = jsm.getMessage(names.stream(), MessageGetRequest.nextForSubject(seq, subject));
        long[] r = NatsJournal.range(m.getHeaders(), id);
        if (r[0] <= sequenceNr && sequenceNr <= r[1]) {
          assertThat(r[0]).as("a message that starts at the deleted sequenceNr").isEqualTo(sequenceNr);
          jsm.deleteMessage(names.stream(), m.getSeq());
          return;
        }
        seq = m.getSeq() + 1;
      }
    }
  }

  private static List<io.nats.client.api.ConsumerInfo> consumersFiltering(JetStreamManagement jsm, String filter)
      throws Exception {
    return jsm.getConsumers(names.stream()).stream()
        .filter(c -> filter.equals(c.getConsumerConfiguration().getFilterSubject()))
        .toList();
  }

  /** A consumer as a failure message should show it: what made it and why it may still be there. */
  private static String describe(io.nats.client.api.ConsumerInfo info) {
    io.nats.client.api.ConsumerConfiguration c = info.getConsumerConfiguration();
    return info.getName()
        + " filter=" + c.getFilterSubject()
        + " deliverSubject=" + c.getDeliverSubject()
        + " created=" + info.getCreationTime()
        + " delivered=" + info.getDelivered().getStreamSequence()
        + " pending=" + info.getNumPending()
        + " waiting=" + info.getNumWaiting()
        + " pushBound=" + info.isPushBound()
        + " inactiveThreshold=" + c.getInactiveThreshold()
        + " memStorage=" + c.isMemStorage();
  }

  private static List<Long> range(long from, long to) {
    List<Long> list = new ArrayList<>();
    for (long i = from; i <= to; i++) {
      list.add(i);
    }
    return list;
  }

  private static <T> T await(java.util.concurrent.CompletionStage<T> stage) throws Exception {
    return stage.toCompletableFuture().get(30, TimeUnit.SECONDS);
  }

  private static Throwable failure(java.util.concurrent.CompletionStage<?> stage) throws Exception {
    try {
      stage.toCompletableFuture().get(30, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      return e.getCause();
    }
    throw new AssertionError("expected the replay to fail");
  }
}
