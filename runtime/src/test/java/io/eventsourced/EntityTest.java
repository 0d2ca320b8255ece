package io.eventsourced;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.typesafe.config.ConfigFactory;
import io.eventsourced.journal.AtomicWrite;
import io.eventsourced.journal.ConcurrencyConflictException;
import io.eventsourced.journal.InMemoryJournal;
import io.eventsourced.journal.PersistentRepr;
import io.eventsourced.snapshot.InMemorySnapshotStore;
import io.eventsourced.snapshot.SnapshotRecord;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.actor.testkit.typed.annotations.JUnit5TestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.JUnit5TestKitBuilder;
import org.apache.pekko.actor.testkit.typed.javadsl.TestKitJUnit5Extension;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(TestKitJUnit5Extension.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@DisplayName("An entity")
class EntityTest {

  @JUnit5TestKit
  final ActorTestKit testKit =
      new JUnit5TestKitBuilder()
          .withCustomConfig(ConfigFactory.parseString("eventsourced.entity.stash-capacity = 5"))
          .build();

  private final Tally tally = new Tally();
  private String id;
  private PersistenceId pid;
  private TestProbe<Reply<List<String>, Tally.Error>> probe;

  @BeforeEach
  void freshEntity() {
    id = UUID.randomUUID().toString();
    pid = PersistenceId.of("tally", id);
    probe = testKit.createTestProbe();
  }

  private InMemoryJournal journal() {
    return (InMemoryJournal) Persistence.get(testKit.system()).journal();
  }

  private InMemorySnapshotStore snapshots() {
    return (InMemorySnapshotStore) Persistence.get(testKit.system()).snapshotStore();
  }

  @AfterEach
  void resetFaults() {
    journal().resumeWrites();
    journal().delayWrites(Duration.ZERO);
    journal().delayReplays(Duration.ZERO);
  }

  private ActorRef<EntityCommand<Tally.Command, List<String>, Tally.Error>> spawn(Tally definition) {
    return testKit.spawn(Entity.create(definition, id));
  }

  private void send(ActorRef<EntityCommand<Tally.Command, List<String>, Tally.Error>> entity, Tally.Command command) {
    entity.tell(new EntityCommand<>(command, probe.ref()));
  }

  private List<String> expectAccepted() {
    Reply<List<String>, Tally.Error> reply = probe.receiveMessage(Duration.ofSeconds(5));
    assertThat(reply).isInstanceOf(Reply.Accepted.class);
    return reply.acceptedValue();
  }

  private EntityException expectFailed() {
    Reply<List<String>, Tally.Error> reply = probe.receiveMessage(Duration.ofSeconds(3));
    assertThat(reply).isInstanceOf(Reply.Failed.class);
    return ((Reply.Failed<List<String>, Tally.Error>) reply).error();
  }

  private long storedEvents() {
    return await(journal().highestSequenceNr(pid));
  }

  private static <T> T await(CompletionStage<T> stage) {
    try {
      return stage.toCompletableFuture().get(5, TimeUnit.SECONDS);
    } catch (InterruptedException | ExecutionException | TimeoutException e) {
      throw new AssertionError(e);
    }
  }

  @Test
  @DisplayName("replies only after the journal confirmed the write")
  void persistBeforeReply() {
    var entity = spawn(tally);
    send(entity, new Tally.Get());
    expectAccepted();
    journal().pauseWrites();
    send(entity, new Tally.Add("a"));
    // Polled: on a loaded machine the entity may reach the journal later than any fixed wait.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
    while (journal().heldWrites() == 0 && System.nanoTime() < deadline) {
      java.util.concurrent.locks.LockSupport.parkNanos(5_000_000);
    }
    assertThat(journal().heldWrites()).isEqualTo(1);
    probe.expectNoMessage(Duration.ofMillis(300));
    assertThat(storedEvents()).isZero();
    journal().resumeWrites();
    assertThat(expectAccepted()).containsExactly("a");
    assertThat(storedEvents()).isEqualTo(1);
  }

  @Test
  @DisplayName("recovers its state from events only")
  void recoversFromEvents() {
    var entity = spawn(tally);
    for (String item : List.of("a", "b", "c")) {
      send(entity, new Tally.Add(item));
      expectAccepted();
    }
    testKit.stop(entity);
    var again = spawn(tally);
    send(again, new Tally.Get());
    assertThat(expectAccepted()).containsExactly("a", "b", "c");
    send(again, new Tally.Add("d"));
    assertThat(expectAccepted()).containsExactly("a", "b", "c", "d");
    assertThat(storedEvents()).isEqualTo(4);
  }

  @Test
  @DisplayName("saves snapshots by its policy and recovers from the latest snapshot plus the events after it")
  void recoversFromSnapshotAndEvents() {
    Tally snapshotting = new Tally(3);
    var entity = spawn(snapshotting);
    for (String item : List.of("a", "b", "c", "d", "e", "f", "g")) {
      send(entity, new Tally.Add(item));
      expectAccepted();
    }
    testKit.stop(entity);
    SnapshotRecord latest = await(snapshots().loadLatest(pid, Long.MAX_VALUE)).orElseThrow();
    assertThat(latest.sequenceNr()).isEqualTo(6);
    // Replace the snapshot with a state the events could never produce: recovery must start from
    // it and apply only event 7.
    Serde serde = new Serde();
    byte[] marked = serde.json(new Tally.State(List.of("from-snapshot")));
    await(snapshots().save(new SnapshotRecord(pid, 6, latest.serializerId(), latest.manifest(), marked)));
    var again = spawn(snapshotting);
    send(again, new Tally.Get());
    assertThat(expectAccepted()).containsExactly("from-snapshot", "g");
  }

  @Test
  @DisplayName("stashes commands while recovering and handles them in arrival order")
  void stashesDuringRecovery() {
    var first = spawn(tally);
    send(first, new Tally.Add("a"));
    expectAccepted();
    testKit.stop(first);
    journal().delayReplays(Duration.ofMillis(300));
    var entity = spawn(tally);
    send(entity, new Tally.Add("b"));
    send(entity, new Tally.Add("c"));
    send(entity, new Tally.Get());
    assertThat(expectAccepted()).containsExactly("a", "b");
    assertThat(expectAccepted()).containsExactly("a", "b", "c");
    assertThat(expectAccepted()).containsExactly("a", "b", "c");
  }

  @Test
  @DisplayName("stashes commands while persisting and handles them in arrival order")
  void stashesDuringPersist() {
    var entity = spawn(tally);
    send(entity, new Tally.Get());
    expectAccepted();
    journal().pauseWrites();
    send(entity, new Tally.Add("a"));
    send(entity, new Tally.Add("b"));
    send(entity, new Tally.Get());
    send(entity, new Tally.Add("c"));
    probe.expectNoMessage(Duration.ofMillis(200));
    journal().resumeWrites();
    assertThat(expectAccepted()).containsExactly("a");
    assertThat(expectAccepted()).containsExactly("a", "b");
    assertThat(expectAccepted()).containsExactly("a", "b");
    assertThat(expectAccepted()).containsExactly("a", "b", "c");
  }

  @Test
  @DisplayName("persists the events of one command atomically")
  void multiEventAtomicPersist() {
    var entity = spawn(tally);
    send(entity, new Tally.AddAll(List.of("a", "b", "c")));
    assertThat(expectAccepted()).containsExactly("a", "b", "c");
    assertThat(storedEvents()).isEqualTo(3);
    List<PersistentRepr> stored = new ArrayList<>();
    await(journal().replay(pid, 1, Long.MAX_VALUE, Long.MAX_VALUE, stored::add));
    assertThat(stored).extracting(PersistentRepr::sequenceNr).containsExactly(1L, 2L, 3L);
    journal().failNextWrite(pid);
    send(entity, new Tally.AddAll(List.of("d", "e")));
    expectFailed();
    assertThat(storedEvents()).isEqualTo(3);
  }

  @Test
  @DisplayName("tells a domain rejection apart from a technical failure")
  void rejectionVersusFailure() {
    var entity = spawn(tally);
    send(entity, new Tally.Add(""));
    Reply<List<String>, Tally.Error> rejected = probe.receiveMessage();
    assertThat(rejected).isEqualTo(new Reply.Rejected<>(new Tally.EmptyItem()));
    assertThat(storedEvents()).isZero();
    send(entity, new Tally.Explode());
    EntityException failure = expectFailed();
    assertThat(failure).hasMessageContaining("tally|" + id).hasMessageContaining("Explode");
    send(entity, new Tally.Add("a"));
    assertThat(expectAccepted()).containsExactly("a");
  }

  @Test
  @DisplayName("fails the writer and every stashed caller promptly when a write fails, stops, and recovers on re-spawn")
  void writeFailureFailsAllWaiting() {
    var entity = spawn(tally);
    send(entity, new Tally.Add("a"));
    expectAccepted();
    TestProbe<Object> watcher = testKit.createTestProbe();
    journal().pauseWrites();
    send(entity, new Tally.Add("b"));
    send(entity, new Tally.Add("c"));
    send(entity, new Tally.Get());
    probe.expectNoMessage(Duration.ofMillis(100));
    journal().failNextWrite(pid);
    journal().resumeWrites();
    for (int i = 0; i < 3; i++) {
      assertThat(expectFailed()).hasMessageContaining("tally|" + id);
    }
    watcher.expectTerminated(entity, Duration.ofSeconds(3));
    var again = spawn(tally);
    send(again, new Tally.Get());
    assertThat(expectAccepted()).containsExactly("a");
    send(again, new Tally.Add("b"));
    assertThat(expectAccepted()).containsExactly("a", "b");
  }

  @Test
  @DisplayName("stops with a conflict failure when another writer appended")
  void conflictStops() {
    var entity = spawn(tally);
    send(entity, new Tally.Add("a"));
    expectAccepted();
    Serde serde = new Serde();
    byte[] other = serde.json(new Tally.Added("other-writer"));
    await(journal().append(new AtomicWrite(pid, 1, List.of(new PersistentRepr(pid, 2, serde.jsonId(), Tally.Added.class.getName(), other)))));
    send(entity, new Tally.Add("b"));
    EntityException failure = expectFailed();
    assertThat(failure.getCause()).isInstanceOf(ConcurrencyConflictException.class);
    assertThat(failure).hasMessageContaining("conflict");
    TestProbe<Object> watcher = testKit.createTestProbe();
    watcher.expectTerminated(entity, Duration.ofSeconds(3));
    var again = spawn(tally);
    send(again, new Tally.Get());
    assertThat(expectAccepted()).containsExactly("a", "other-writer");
  }

  @Test
  @DisplayName("answers a command beyond the stash capacity with a stash overflow failure")
  void stashOverflow() {
    var entity = spawn(tally);
    send(entity, new Tally.Get());
    expectAccepted();
    journal().pauseWrites();
    send(entity, new Tally.Add("in-flight"));
    for (int i = 0; i < 5; i++) {
      send(entity, new Tally.Add("stashed-" + i));
    }
    send(entity, new Tally.Add("overflow"));
    EntityException overflow = expectFailed();
    assertThat(overflow).hasMessageContaining("stash overflow").hasMessageContaining("stash-capacity");
    journal().resumeWrites();
    for (int i = 0; i < 6; i++) {
      expectAccepted();
    }
    send(entity, new Tally.Get());
    assertThat(expectAccepted()).hasSize(6).doesNotContain("overflow");
  }

  @Test
  @DisplayName("fails a command whose event cannot be serialized, stores nothing and keeps serving")
  void serializationFailureKeepsEntityUsable() {
    var entity = spawn(tally);
    send(entity, new Tally.Add("a"));
    expectAccepted();
    send(entity, new Tally.EmitUnserializable());
    assertThat(expectFailed()).hasMessageContaining(Tally.NotSerializable.class.getName()).hasMessageContaining("nothing was stored");
    assertThat(storedEvents()).isEqualTo(1);
    send(entity, new Tally.Add("b"));
    assertThat(expectAccepted()).containsExactly("a", "b");
  }

  @Test
  @DisplayName("says the snapshot is newer than the journal when the first write finds the journal behind the recovered state")
  void snapshotAheadOfJournal() {
    var first = spawn(new Tally(2));
    for (String item : List.of("a", "b")) {
      send(first, new Tally.Add(item));
      expectAccepted();
    }
    testKit.stop(first);
    // The journal is reset (here: the entity's events go to a fresh id), the snapshot store kept.
    SnapshotRecord snapshot = await(snapshots().loadLatest(pid, Long.MAX_VALUE)).orElseThrow();
    String resetId = UUID.randomUUID().toString();
    PersistenceId reset = PersistenceId.of("tally", resetId);
    await(snapshots().save(new SnapshotRecord(reset, snapshot.sequenceNr(), snapshot.serializerId(), snapshot.manifest(), snapshot.payload())));
    var entity = testKit.spawn(Entity.create(new Tally(2), resetId));
    send(entity, new Tally.Add("c"));
    assertThat(expectFailed())
        .hasMessageContaining("the journal holds [" + reset + "] up to sequenceNr [0] only, behind the state recovered at [2]")
        .hasMessageContaining("snapshot is newer than its events");
  }

  @Test
  @DisplayName("keeps serving when a snapshot save fails")
  void snapshotFailureNotFatal() {
    var entity = spawn(new Tally(2));
    snapshots().failNextSave(pid);
    for (String item : List.of("a", "b", "c", "d")) {
      send(entity, new Tally.Add(item));
      expectAccepted();
    }
    assertThat(await(snapshots().loadLatest(pid, Long.MAX_VALUE)).orElseThrow().sequenceNr()).isEqualTo(4);
    assertThat(await(snapshots().loadLatest(pid, 3))).isEmpty();
  }

  @Test
  @DisplayName("fails stashed commands and stops when recovery fails, and recovers on re-spawn")
  void recoveryFailure() {
    var first = spawn(tally);
    send(first, new Tally.Add("a"));
    expectAccepted();
    testKit.stop(first);
    journal().failNextReplay(pid);
    journal().delayReplays(Duration.ofMillis(200));
    var entity = spawn(tally);
    send(entity, new Tally.Get());
    assertThat(expectFailed()).hasMessageContaining("tally|" + id);
    testKit.createTestProbe().expectTerminated(entity, Duration.ofSeconds(3));
    var again = spawn(tally);
    send(again, new Tally.Get());
    assertThat(expectAccepted()).containsExactly("a");
  }

  @Test
  @DisplayName("fails recovery naming entity and sequenceNr when a stored event cannot be deserialized")
  void corruptEventFailsRecovery() {
    var first = spawn(tally);
    send(first, new Tally.Add("a"));
    expectAccepted();
    testKit.stop(first);
    await(journal().append(new AtomicWrite(pid, 1, List.of(new PersistentRepr(pid, 2, 999_999, "nope", new byte[] {1, 2})))));
    // The command must reach the entity while it recovers (it is then stashed and failed with
    // the cause); a recovery failing first would leave it to the dead-letter reply.
    journal().delayReplays(Duration.ofMillis(300));
    var entity = spawn(tally);
    send(entity, new Tally.Get());
    assertThat(expectFailed()).hasMessageContaining("tally|" + id).hasMessageContaining("sequenceNr [2]").hasMessageContaining("999999");
  }

  @Test
  @DisplayName("stops on a stop effect after replying, and fails commands stashed behind it")
  void stopEffect() {
    var entity = spawn(tally);
    send(entity, new Tally.Get());
    expectAccepted();
    journal().pauseWrites();
    send(entity, new Tally.Add("a"));
    send(entity, new Tally.Finish());
    send(entity, new Tally.Get());
    probe.expectNoMessage(Duration.ofMillis(200));
    journal().resumeWrites();
    assertThat(expectAccepted()).containsExactly("a");
    assertThat(expectAccepted()).containsExactly("a");
    assertThat(expectFailed()).hasMessageContaining("stopped");
    testKit.createTestProbe().expectTerminated(entity, Duration.ofSeconds(3));
  }

  @Test
  @DisplayName("answers a command sent to a stopped entity with a failure instead of silence")
  void commandToStoppedEntityFails() {
    var entity = spawn(tally);
    send(entity, new Tally.Finish());
    expectAccepted();
    testKit.createTestProbe().expectTerminated(entity, Duration.ofSeconds(3));
    send(entity, new Tally.Get());
    assertThat(expectFailed()).hasMessageContaining("stopped");
  }

  @Test
  @DisplayName("tells a command that arrives after a failed recovery why the entity stopped")
  void lateCommandLearnsTheCause() throws Exception {
    var first = spawn(tally);
    send(first, new Tally.Add("a"));
    expectAccepted();
    testKit.stop(first);
    journal().failNextReplay(pid);
    EntityRef<Tally.Command, List<String>, Tally.Error> ref = Entity.spawn(testKit.system(), tally, id);
    await(ref.whenStopped());
    try {
      ref.ask(new Tally.Get()).toCompletableFuture().get(5, TimeUnit.SECONDS);
      throw new AssertionError("expected a failure");
    } catch (ExecutionException e) {
      assertThat(e.getCause())
          .isInstanceOf(EntityException.class)
          .hasMessageContaining("stopped after a failure")
          .hasMessageContaining("injected replay failure");
    }
  }

  @Test
  @DisplayName("tells a command sent to the actor of an entity that stopped after a failure why it stopped")
  void lateActorCommandLearnsTheCause() {
    var first = spawn(tally);
    send(first, new Tally.Add("a"));
    expectAccepted();
    testKit.stop(first);
    journal().failNextReplay(pid);
    var entity = spawn(tally);
    testKit.createTestProbe().expectTerminated(entity, Duration.ofSeconds(3));
    send(entity, new Tally.Get());
    EntityException error = expectFailed();
    assertThat(error)
        .hasMessageContaining("entity [tally|" + id + "]")
        .hasMessageContaining("stopped after a failure")
        .hasMessageContaining("injected replay failure");
    assertThat(error.persistenceId()).isEqualTo(pid);
    // A healthy entity's actor that was simply stopped still gets the plain answer.
    var other = spawn(tally);
    send(other, new Tally.Finish());
    expectAccepted();
    testKit.createTestProbe().expectTerminated(other, Duration.ofSeconds(3));
    send(other, new Tally.Get());
    assertThat(expectFailed()).hasMessageContaining("is stopped; the command was not handled").hasNoCause();
  }

  /** Serializes test fixtures the way the entity does, to write records by hand. */
  private final class Serde {
    private final org.apache.pekko.serialization.Serialization serialization =
        org.apache.pekko.serialization.SerializationExtension.get(
            org.apache.pekko.actor.typed.javadsl.Adapter.toClassic(testKit.system()));

    byte[] json(Object value) {
      return serialization.findSerializerFor(value).toBinary(value);
    }

    int jsonId() {
      return serialization.findSerializerFor(new Tally.Added("x")).identifier();
    }
  }
}
