package io.eventsourced;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.typesafe.config.ConfigFactory;
import io.eventsourced.journal.InMemoryJournal;
import org.apache.pekko.actor.testkit.typed.annotations.JUnit5TestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.JUnit5TestKitBuilder;
import org.apache.pekko.actor.testkit.typed.javadsl.TestKitJUnit5Extension;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(TestKitJUnit5Extension.class)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@DisplayName("Plugin loading")
class PluginConfigTest {

  @JUnit5TestKit
  final ActorTestKit testKit =
      new JUnit5TestKitBuilder()
          .withCustomConfig(
              ConfigFactory.parseString(
                  """
                  second-journal = ${eventsourced.journal.in-memory}
                  no-class { plugin-dispatcher = "pekko.actor.default-dispatcher" }
                  bad-class { class = "com.example.Nope", plugin-dispatcher = "pekko.actor.default-dispatcher" }
                  wrong-type { class = "java.lang.String", plugin-dispatcher = "pekko.actor.default-dispatcher" }
                  no-dispatcher { class = "io.eventsourced.journal.InMemoryJournal", plugin-dispatcher = "no.such.dispatcher" }
                  throwing-journal { class = "io.eventsourced.ThrowingJournal", plugin-dispatcher = "pekko.actor.default-dispatcher" }
                  minimal-stage-journal { class = "io.eventsourced.MinimalStageJournal", plugin-dispatcher = "pekko.actor.default-dispatcher" }
                  asserting-snapshots { class = "io.eventsourced.AssertingSnapshotStore", plugin-dispatcher = "pekko.actor.default-dispatcher" }
                  """)
                  .withFallback(ConfigFactory.load())
                  .resolve())
          .build();

  /** The failure of an ask that must fail within 5 s: the cause its stage completed with. */
  private static Throwable askFailure(EntityRef<Tally.Command, java.util.List<String>, Tally.Error> ref, Tally.Command command) {
    Throwable failure =
        org.assertj.core.api.Assertions.catchThrowable(
            () -> ref.ask(command).toCompletableFuture().get(5, java.util.concurrent.TimeUnit.SECONDS));
    assertThat(failure).isInstanceOf(java.util.concurrent.ExecutionException.class);
    return failure.getCause();
  }

  @Test
  @DisplayName("creates each plugin once per actor system and keeps configured plugins apart")
  void oncePerSystem() {
    Persistence persistence = Persistence.get(testKit.system());
    assertThat(persistence.journal()).isSameAs(persistence.journal("eventsourced.journal.in-memory"));
    assertThat(persistence.journal("second-journal")).isInstanceOf(InMemoryJournal.class).isNotSameAs(persistence.journal());
  }

  @Test
  @DisplayName("fails with a message naming the config path of a missing plugin")
  void missingPlugin() {
    assertThatThrownBy(() -> Persistence.get(testKit.system()).journal("no.such.plugin"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[no.such.plugin]");
  }

  @Test
  @DisplayName("treats a journal whose append throws as a failed write: the caller is told why and the entity stops")
  void appendThrows() throws Exception {
    var ref = Entity.spawn(testKit.system(), new Tally(0, "throwing-journal"), "t");
    assertThat(askFailure(ref, new Tally.Add("a")))
        .isInstanceOf(EntityException.class)
        .hasMessageContaining("cannot persist events of [tally|t] at sequenceNr [1]")
        .hasMessageContaining("append threw");
    ref.whenStopped().toCompletableFuture().get(5, java.util.concurrent.TimeUnit.SECONDS);
  }

  @Test
  @DisplayName("treats a journal whose replay throws as a failed recovery: the caller is told why and the entity stops")
  void replayThrows() throws Exception {
    var ref = Entity.spawn(testKit.system(), new Tally(0, "throwing-journal"), "replay-throws-1");
    assertThat(askFailure(ref, new Tally.Get()))
        .isInstanceOf(EntityException.class)
        .hasMessageContaining("cannot recover [tally|replay-throws-1]")
        .hasRootCauseMessage("replay threw for [tally|replay-throws-1]");
    ref.whenStopped().toCompletableFuture().get(5, java.util.concurrent.TimeUnit.SECONDS);
  }

  @Test
  @DisplayName("takes a journal's minimal completion stage (a CompletableFuture refusing isDone) as any other stage")
  void minimalStage() throws Exception {
    String id = java.util.UUID.randomUUID().toString();
    var ref = Entity.spawn(testKit.system(), new Tally(0, "minimal-stage-journal"), id);
    assertThat(ref.ask(new Tally.Add("a")).toCompletableFuture().get(5, java.util.concurrent.TimeUnit.SECONDS))
        .isEqualTo(new Reply.Accepted<>(java.util.List.of("a")));
    assertThat(ref.ask(new Tally.Add("b")).toCompletableFuture().get(5, java.util.concurrent.TimeUnit.SECONDS))
        .isEqualTo(new Reply.Accepted<>(java.util.List.of("a", "b")));
    ref.stop().toCompletableFuture().get(5, java.util.concurrent.TimeUnit.SECONDS);
    var again = Entity.spawn(testKit.system(), new Tally(0, "minimal-stage-journal"), id);
    assertThat(again.ask(new Tally.Get()).toCompletableFuture().get(5, java.util.concurrent.TimeUnit.SECONDS))
        .isEqualTo(new Reply.Accepted<>(java.util.List.of("a", "b")));
  }

  @Test
  @DisplayName("replies to a command whose snapshot save throws an AssertionError, and the entity goes on")
  void snapshotSaveAsserts() throws Exception {
    int before = AssertingSnapshotStore.saves.get();
    var ref = Entity.spawn(testKit.system(), new Tally(1, "", "asserting-snapshots"), java.util.UUID.randomUUID().toString());
    assertThat(ref.ask(new Tally.Add("a")).toCompletableFuture().get(5, java.util.concurrent.TimeUnit.SECONDS))
        .isEqualTo(new Reply.Accepted<>(java.util.List.of("a")));
    assertThat(ref.ask(new Tally.Add("b")).toCompletableFuture().get(5, java.util.concurrent.TimeUnit.SECONDS))
        .isEqualTo(new Reply.Accepted<>(java.util.List.of("a", "b")));
    assertThat(AssertingSnapshotStore.saves.get() - before).isEqualTo(2);
  }

  @Test
  @DisplayName("treats a journal whose append or replay throws an AssertionError as a failure with that cause")
  void journalAsserts() throws Exception {
    var writer = Entity.spawn(testKit.system(), new Tally(0, "throwing-journal"), "asserts-1");
    assertThat(askFailure(writer, new Tally.Add("a")))
        .isInstanceOf(EntityException.class)
        .hasMessageContaining("cannot persist events of [tally|asserts-1] at sequenceNr [1]")
        .hasRootCauseMessage("append asserted for [tally|asserts-1]");
    var reader = Entity.spawn(testKit.system(), new Tally(0, "throwing-journal"), "asserts-replay-1");
    assertThat(askFailure(reader, new Tally.Get()))
        .isInstanceOf(EntityException.class)
        .hasMessageContaining("cannot recover [tally|asserts-replay-1]")
        .hasRootCauseMessage("replay asserted for [tally|asserts-replay-1]");
  }

  @Test
  @DisplayName("fails with a message naming the missing class key")
  void missingClass() {
    assertThatThrownBy(() -> Persistence.get(testKit.system()).journal("no-class"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[no-class.class] is missing");
  }

  @Test
  @DisplayName("fails with a message naming a class that is not on the classpath")
  void unknownClass() {
    assertThatThrownBy(() -> Persistence.get(testKit.system()).journal("bad-class"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("com.example.Nope")
        .hasMessageContaining("[bad-class.class]");
  }

  @Test
  @DisplayName("fails with a message when the class is not a journal")
  void wrongType() {
    assertThatThrownBy(() -> Persistence.get(testKit.system()).journal("wrong-type"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("does not implement io.eventsourced.journal.Journal");
  }

  @Test
  @DisplayName("fails with a message naming an unconfigured dispatcher")
  void missingDispatcher() {
    assertThatThrownBy(() -> Persistence.get(testKit.system()).journal("no-dispatcher"))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("[no.such.dispatcher]")
        .hasMessageContaining("[no-dispatcher.plugin-dispatcher]");
  }

  @Test
  @DisplayName("lets an entity use a journal other than the default one")
  void entityNamesItsJournal() throws Exception {
    String id = java.util.UUID.randomUUID().toString();
    var ref = Entity.spawn(testKit.system(), new Tally(0, "second-journal"), id);
    assertThat(ref.ask(new Tally.Add("x")).toCompletableFuture().get(5, java.util.concurrent.TimeUnit.SECONDS).isAccepted()).isTrue();
    PersistenceId pid = PersistenceId.of("tally", id);
    Persistence persistence = Persistence.get(testKit.system());
    assertThat(persistence.journal("second-journal").highestSequenceNr(pid).toCompletableFuture().get()).isEqualTo(1L);
    assertThat(persistence.journal().highestSequenceNr(pid).toCompletableFuture().get()).isZero();
  }
}
