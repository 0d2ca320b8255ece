package io.eventsourced.nats;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.eventsourced.Persistence;
import io.eventsourced.PersistenceId;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.ConcurrencyConflictException;
import io.eventsourced.journal.Journal;
import io.eventsourced.journal.JournalException;
import io.eventsourced.journal.PersistentRepr;
import io.eventsourced.snapshot.SnapshotRecord;
import io.eventsourced.snapshot.SnapshotStore;
import io.nats.client.Connection;
import io.nats.client.JetStreamSubscription;
import io.nats.client.Message;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.nats.client.PushSubscribeOptions;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/** What the TCK does not cover: the JetStream mapping, error paths and start errors. */
@DisplayName("The NATS journal on JetStream")
class NatsJournalTest {
  private static final TestNats.Names names = TestNats.Names.fresh("JOURNAL");
  private static ActorTestKit testKit;
  private static ActorTestKit otherProcess;

  @BeforeAll
  static void start() {
    TestNats.requireServer();
    testKit = ActorTestKit.create("NatsJournalTest", names.config(TestNats.URL, ""));
    otherProcess = ActorTestKit.create("NatsJournalTestOther", names.config(TestNats.URL, ""));
  }

  @AfterAll
  static void shutdown() throws Exception {
    if (testKit != null) {
      testKit.shutdownTestKit();
      otherProcess.shutdownTestKit();
      names.delete(TestNats.URL);
    }
  }

  private static Journal journal() {
    return Persistence.get(testKit.system()).journal("eventsourced.journal.nats");
  }

  private static PersistenceId freshId() {
    return PersistenceId.of("test", UUID.randomUUID() + ".*> |/ü");
  }

  @Test
  @DisplayName("stores one message per atomic write on the entity's subject with its sequenceNrs in headers")
  void messageLayout() throws Exception {
    PersistenceId id = freshId();
    await(journal().append(TestNats.write(id, 0, 1)));
    await(journal().append(TestNats.write(id, 1, 3)));
    String subject = names.prefix() + ".test." + Keys.encode(id.entityId());
    try (Connection nc = Nats.connect(Options.builder().server(TestNats.URL).build())) {
      JetStreamSubscription sub =
          nc.jetStream().subscribe(subject, PushSubscribeOptions.builder().stream(names.stream()).ordered(true).build());
      Message first = sub.nextMessage(Duration.ofSeconds(5));
      Message second = sub.nextMessage(Duration.ofSeconds(5));
      assertThat(sub.nextMessage(Duration.ofMillis(300))).as("one message per write").isNull();
      assertThat(first.getSubject()).isEqualTo(subject);
      assertThat(first.getHeaders().getFirst("Es-Seq")).isEqualTo("1");
      assertThat(second.getHeaders().getFirst("Es-Seq")).isEqualTo("2-4");
      assertThat(first.getHeaders().getFirst("Nats-Msg-Id")).startsWith("test." + Keys.encode(id.entityId()) + ":1:");
      assertThat(second.getHeaders().getFirst("Nats-Msg-Id")).startsWith("test." + Keys.encode(id.entityId()) + ":2:");
      assertThat(first.getHeaders().getFirst("Nats-Expected-Last-Subject-Sequence")).isEqualTo("0");
      assertThat(Envelope.eventCount(second.getData())).isEqualTo(3);
      sub.unsubscribe();
    }
  }

  @Test
  @DisplayName("guards the very first write with expected last subject sequence 0")
  void firstWriteIsGuarded() throws Exception {
    PersistenceId id = freshId();
    String subject = names.prefix() + "." + Keys.entityKey(id);
    try (Connection nc = Nats.connect(Options.builder().server(TestNats.URL).build())) {
      // Another writer got there first, without this journal knowing.
      nc.jetStream().publish(subject, new io.nats.client.impl.Headers().put("Es-Seq", "1"),
          Envelope.encodeEvents(List.of(new PersistentRepr(id, 1, 4, "", bytes("other")))));
    }
    Throwable error = failure(journal().append(TestNats.write(id, 0, 1)));
    assertThat(error).isInstanceOf(ConcurrencyConflictException.class);
    assertThat(((ConcurrencyConflictException) error).actualSequenceNr()).isEqualTo(1);
    assertThat(sequenceNrs(replay(id, 1))).containsExactly(1L);
    assertThat(new String(replay(id, 1).get(0).payload(), StandardCharsets.UTF_8)).isEqualTo("other");
  }

  @Test
  @DisplayName("detects a conflict with a writer in another process, then continues from the stored position")
  void conflictWithAnotherProcess() throws Exception {
    PersistenceId id = freshId();
    Journal other = Persistence.get(otherProcess.system()).journal("eventsourced.journal.nats");
    await(journal().append(TestNats.write(id, 0, 2)));
    long seen = await(other.highestSequenceNr(id));
    await(other.append(TestNats.write(id, seen, 1)));
    Throwable error = failure(journal().append(TestNats.write(id, 2, 1)));
    assertThat(error).isInstanceOf(ConcurrencyConflictException.class);
    assertThat(((ConcurrencyConflictException) error).expectedSequenceNr()).isEqualTo(2);
    assertThat(((ConcurrencyConflictException) error).actualSequenceNr()).isEqualTo(3);
    await(journal().append(TestNats.write(id, 3, 2)));
    assertThat(sequenceNrs(replay(id, 1))).containsExactly(1L, 2L, 3L, 4L, 5L);
    assertThat(await(other.highestSequenceNr(id))).isEqualTo(5);
  }

  @Test
  @DisplayName("replays from any sequenceNr when entities' writes are interleaved and batched")
  void replayFromAnyPoint() throws Exception {
    List<PersistenceId> ids = List.of(freshId(), freshId(), freshId());
    long[] last = new long[ids.size()];
    for (int round = 0; round < 15; round++) {
      for (int e = 0; e < ids.size(); e++) {
        int count = 1 + (round + e) % 3;
        await(journal().append(TestNats.write(ids.get(e), last[e], count)));
        last[e] += count;
      }
    }
    for (int e = 0; e < ids.size(); e++) {
      PersistenceId id = ids.get(e);
      for (long from = 1; from <= last[e]; from++) {
        List<PersistentRepr> events = replay(id, from);
        assertThat(sequenceNrs(events)).as("replay of %s from %s", id, from).containsExactlyElementsOf(range(from, last[e]));
        assertThat(events.get(0).payload()).isEqualTo(TestNats.payload(id, from));
      }
      List<PersistentRepr> window = new ArrayList<>();
      await(journal().replay(id, 5, 9, 3, window::add));
      assertThat(sequenceNrs(window)).containsExactly(5L, 6L, 7L);
    }
  }

  @Test
  @DisplayName("keeps an id with a lone surrogate apart from the id with ? in its place")
  void loneSurrogateIdsStayApart() throws Exception {
    String base = UUID.randomUUID().toString();
    PersistenceId surrogate = PersistenceId.of("test", base + "\uD800");
    PersistenceId question = PersistenceId.of("test", base + "?");
    await(journal().append(TestNats.write(surrogate, 0, 2)));
    assertThat(await(journal().highestSequenceNr(question))).isZero();
    await(journal().append(TestNats.write(question, 0, 1)));
    assertThat(sequenceNrs(replay(surrogate, 1))).containsExactly(1L, 2L);
    assertThat(replay(question, 1)).extracting(e -> e.payload()).containsExactly(TestNats.payload(question, 1));
  }

  @Test
  @DisplayName("refuses an event or snapshot manifest with a lone surrogate instead of storing it changed")
  void loneSurrogateManifests() throws Exception {
    PersistenceId id = freshId();
    Throwable error =
        failure(journal().append(new AtomicWrite(id, 0, List.of(new PersistentRepr(id, 1, 4, "com.example.E\uD800v", bytes("x"))))));
    assertThat(error)
        .isInstanceOf(JournalException.class)
        .hasMessageContaining("cannot append events for [" + id + "] from sequenceNr [1]")
        .hasMessageContaining("lone surrogate")
        .hasMessageContaining("nothing was stored");
    assertThat(await(journal().highestSequenceNr(id))).isZero();
    SnapshotStore store = Persistence.get(testKit.system()).snapshotStore("eventsourced.snapshot-store.nats");
    assertThat(failure(store.save(new SnapshotRecord(id, 1, 4, "com.example.S\uDC00", bytes("s")))))
        .isInstanceOf(JournalException.class)
        .hasMessageContaining("[" + id + "]")
        .hasMessageContaining("lone surrogate");
    assertThat(await(store.loadLatest(id, Long.MAX_VALUE))).isEmpty();
    // A surrogate pair is a character like any other, and reads back unchanged.
    await(journal().append(new AtomicWrite(id, 0, List.of(new PersistentRepr(id, 1, 4, "event-😀", bytes("x"))))));
    assertThat(replay(id, 1)).extracting(PersistentRepr::manifest).containsExactly("event-😀");
    await(store.save(new SnapshotRecord(id, 1, 4, "state-😀", bytes("s"))));
    assertThat(await(store.loadLatest(id, Long.MAX_VALUE)).map(SnapshotRecord::manifest)).contains("state-😀");
  }

  @Test
  @DisplayName("refuses an id too long for a NATS subject with a message naming the limit, and takes a long one that fits")
  void idTooLongForASubject() throws Exception {
    PersistenceId tooLong = PersistenceId.of("test", "a".repeat(5000));
    assertThat(failure(journal().append(TestNats.write(tooLong, 0, 1))))
        .isInstanceOf(JournalException.class)
        .hasMessageContaining("from sequenceNr [1]: its id is too long")
        .hasMessageContaining("fit in a NATS control line")
        .hasMessageContaining("nothing was stored");
    SnapshotStore store = Persistence.get(testKit.system()).snapshotStore("eventsourced.snapshot-store.nats");
    assertThat(failure(store.save(new SnapshotRecord(tooLong, 1, 4, "s", bytes("s")))))
        .isInstanceOf(JournalException.class)
        .hasMessageContaining("its id is too long");
    PersistenceId fits = PersistenceId.of("test", UUID.randomUUID() + "b".repeat(3000));
    await(journal().append(TestNats.write(fits, 0, 2)));
    assertThat(sequenceNrs(replay(fits, 1))).containsExactly(1L, 2L);
    await(store.save(new SnapshotRecord(fits, 2, 4, "s", bytes("s"))));
    assertThat(await(store.loadLatest(fits, Long.MAX_VALUE)).map(SnapshotRecord::sequenceNr)).contains(2L);
  }

  @Test
  @DisplayName("fails an oversized write at once with a clear message, stores nothing and stays usable")
  void oversizedWrite() throws Exception {
    PersistenceId id = freshId();
    long maxPayload = ((NatsJournal) journal()).connection().getMaxPayload();
    byte[] big = new byte[(int) maxPayload];
    Throwable error =
        failure(journal().append(new AtomicWrite(id, 0, List.of(new PersistentRepr(id, 1, 4, "big", big)))));
    assertThat(error)
        .isInstanceOf(JournalException.class)
        .hasMessageContaining("max_payload")
        .hasMessageContaining("nothing was stored");
    assertThat(((JournalException) error).persistenceId()).isEqualTo(id);
    assertThat(await(journal().highestSequenceNr(id))).isZero();
    await(journal().append(TestNats.write(id, 0, 1)));
    assertThat(await(journal().highestSequenceNr(id))).isEqualTo(1);
  }

  @Test
  @DisplayName("shares one connection between the journal and the snapshot store")
  void sharedConnection() {
    SnapshotStore store = Persistence.get(testKit.system()).snapshotStore("eventsourced.snapshot-store.nats");
    assertThat(((NatsSnapshotStore) store).connection()).isSameAs(((NatsJournal) journal()).connection());
  }

  @Test
  @DisplayName("skips a liveness check its dispatcher refuses (shutting down) without throwing, and runs the next one")
  void livenessCheckOnARefusingDispatcher() throws Exception {
    SharedConnection shared = ((NatsJournal) journal()).shared();
    shared.checkLiveness(task -> {
      throw new java.util.concurrent.RejectedExecutionException("shutting down");
    });
    CompletableFuture<Void> ran = new CompletableFuture<>();
    shared.checkLiveness(task -> {
      task.run();
      ran.complete(null);
    });
    ran.get(10, java.util.concurrent.TimeUnit.SECONDS);
  }

  @Test
  @DisplayName("fails to start naming stream and servers when setup is off and the stream is missing")
  void missingStreamWithoutSetup() {
    ActorTestKit kit =
        ActorTestKit.create("NatsNoSetup", names.config(TestNats.URL, "eventsourced.journal.nats { setup = off, stream.name = MISSING_" + UUID.randomUUID().toString().substring(0, 8) + " }"));
    try {
      assertThatThrownBy(() -> Persistence.get(kit.system()).journal("eventsourced.journal.nats"))
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining("MISSING_")
          .hasMessageContaining(TestNats.URL)
          .hasMessageContaining("eventsourced.journal.nats.setup");
    } finally {
      kit.shutdownTestKit();
    }
  }

  @Test
  @DisplayName("fails to start when an existing stream does not capture the subject prefix")
  void existingStreamWithOtherSubjects() {
    journal(); // creates this class's stream with its own prefix
    ActorTestKit kit =
        ActorTestKit.create(
            "NatsOtherPrefix",
            names.config(TestNats.URL, "eventsourced.journal.nats.stream.subject-prefix = other" + UUID.randomUUID().toString().substring(0, 8)));
    try {
      assertThatThrownBy(() -> Persistence.get(kit.system()).journal("eventsourced.journal.nats"))
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining(names.stream())
          .hasMessageContaining("does not capture subjects")
          .hasMessageContaining("eventsourced.journal.nats.stream.subject-prefix");
    } finally {
      kit.shutdownTestKit();
    }
  }

  @Test
  @DisplayName("fails to start the snapshot store naming the bucket when setup is off and it is missing")
  void missingBucketWithoutSetup() {
    String bucket = "missing-" + UUID.randomUUID().toString().substring(0, 8);
    ActorTestKit kit =
        ActorTestKit.create(
            "NatsNoBucket",
            names.config(TestNats.URL, "eventsourced.snapshot-store.nats { setup = off, bucket.name = " + bucket + " }"));
    try {
      assertThatThrownBy(() -> Persistence.get(kit.system()).snapshotStore("eventsourced.snapshot-store.nats"))
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining(bucket)
          .hasMessageContaining(TestNats.URL)
          .hasMessageContaining("eventsourced.snapshot-store.nats.setup");
    } finally {
      kit.shutdownTestKit();
    }
  }

  @Test
  @DisplayName("fails to start naming the servers, never the password, when they are unreachable")
  void unreachableServers() throws Exception {
    int port;
    try (ServerSocket socket = new ServerSocket(0)) {
      port = socket.getLocalPort();
    }
    String url = "nats://127.0.0.1:" + port;
    ActorTestKit kit =
        ActorTestKit.create(
            "NatsUnreachable",
            names.config(url, "eventsourced.nats.connection { user = app, password = s3cret-pw, connect-timeout = 1s }"));
    try {
      assertThatThrownBy(() -> Persistence.get(kit.system()).journal("eventsourced.journal.nats"))
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining(url)
          .hasMessageContaining("eventsourced.journal.nats.connection.servers")
          .hasMessageNotContaining("s3cret-pw");
    } finally {
      kit.shutdownTestKit();
    }
  }

  // ---------------------------------------------------------------- helpers

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static List<PersistentRepr> replay(PersistenceId id, long from) throws Exception {
    List<PersistentRepr> events = Collections.synchronizedList(new ArrayList<>());
    await(journal().replay(id, from, Long.MAX_VALUE, Long.MAX_VALUE, events::add));
    return List.copyOf(events);
  }

  private static List<Long> sequenceNrs(List<PersistentRepr> events) {
    return events.stream().map(PersistentRepr::sequenceNr).toList();
  }

  private static List<Long> range(long from, long to) {
    List<Long> list = new ArrayList<>();
    for (long i = from; i <= to; i++) {
      list.add(i);
    }
    return list;
  }

  private static <T> T await(CompletionStage<T> stage) throws Exception {
    return stage.toCompletableFuture().get(30, TimeUnit.SECONDS);
  }

  private static Throwable failure(CompletionStage<?> stage) throws Exception {
    try {
      stage.toCompletableFuture().get(30, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      return e.getCause();
    }
    throw new AssertionError("expected the operation to fail");
  }
}
