package io.eventsourced;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.serialization.JsonSerializable;
import io.eventsourced.snapshot.InMemorySnapshotStore;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.testkit.typed.annotations.JUnit5TestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.JUnit5TestKitBuilder;
import org.apache.pekko.actor.testkit.typed.javadsl.TestKitJUnit5Extension;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(TestKitJUnit5Extension.class)
@DisplayName("An entity whose serializer throws an Error")
class EntitySerializationErrorTest {

  @JUnit5TestKit
  final ActorTestKit testKit = new JUnit5TestKitBuilder().build();

  /** A counter whose JSON serialization throws an {@link AssertionError} in two places. */
  static final class Gauge implements EventSourced<Gauge.Command, Gauge.Event, Gauge.State, String, Gauge.Refused> {
    /** The value whose state cannot be serialized, so its snapshot fails. */
    static final int UNSERIALIZABLE = 3;

    sealed interface Command {}

    record Bump() implements Command {}

    record BumpBrittle() implements Command {}

    sealed interface Event {}

    record Bumped(int by) implements Event, JsonSerializable {}

    /** Jackson reads the accessor, which throws. */
    record BrittleBumped(int by) implements Event, JsonSerializable {
      @Override
      public int by() {
        throw new AssertionError("assertion while serializing an event");
      }
    }

    record State(int value) implements JsonSerializable {
      @Override
      public int value() {
        if (value == UNSERIALIZABLE) {
          throw new AssertionError("assertion while serializing the state");
        }
        return value;
      }

      State plus(int by) {
        return new State(value + by);
      }
    }

    sealed interface Refused {}

    record Never() implements Refused {}

    @Override
    public String typeName() {
      return "gauge";
    }

    @Override
    public State emptyState() {
      return new State(0);
    }

    @Override
    public CommandHandler<Command, Event, State, String, Refused> commandHandler() {
      return newCommandHandlerBuilder()
          .onCommand(Bump.class, (state, bump) -> effect().persist(new Bumped(1)).thenReply(s -> "bumped"))
          .onCommand(BumpBrittle.class, (state, bump) -> effect().persist(new BrittleBumped(1)).thenReply(s -> "bumped"))
          .build();
    }

    @Override
    public EventHandler<State, Event> eventHandler() {
      return newEventHandlerBuilder()
          .onEvent(Bumped.class, (state, e) -> state.plus(1))
          .onEvent(BrittleBumped.class, (state, e) -> state.plus(1))
          .build();
    }

    @Override
    public SnapshotPolicy<State, Event> snapshotPolicy() {
      return SnapshotPolicy.every(1);
    }
  }

  private final String id = UUID.randomUUID().toString();
  private final TestProbe<Reply<String, Gauge.Refused>> probe = testKit.createTestProbe();

  private Reply<String, Gauge.Refused> ask(ActorRef<EntityCommand<Gauge.Command, String, Gauge.Refused>> gauge, Gauge.Command command) {
    gauge.tell(new EntityCommand<>(command, probe.ref()));
    return probe.receiveMessage(Duration.ofSeconds(3));
  }

  @Test
  @DisplayName("fails the command whose event it cannot serialize, naming entity and sequenceNr, and keeps serving")
  void eventSerializerError() {
    var gauge = testKit.spawn(Entity.create(new Gauge(), id));
    assertThat(ask(gauge, new Gauge.Bump())).isInstanceOf(Reply.Accepted.class);
    Reply<String, Gauge.Refused> failed = ask(gauge, new Gauge.BumpBrittle());
    assertThat(failed).isInstanceOf(Reply.Failed.class);
    assertThat(((Reply.Failed<String, Gauge.Refused>) failed).error())
        .hasMessageContaining("[gauge|" + id + "] at sequenceNr [2]")
        .hasMessageContaining("nothing was stored")
        .hasMessageContaining("assertion while serializing an event");
    assertThat(ask(gauge, new Gauge.Bump())).isInstanceOf(Reply.Accepted.class);
  }

  @Test
  @DisplayName("replies to the command whose snapshot it cannot serialize, skips that snapshot and keeps serving")
  void snapshotSerializerError() throws Exception {
    var gauge = testKit.spawn(Entity.create(new Gauge(), id));
    for (int n = 1; n <= Gauge.UNSERIALIZABLE + 1; n++) {
      assertThat(ask(gauge, new Gauge.Bump())).as("bump %d", n).isInstanceOf(Reply.Accepted.class);
    }
    InMemorySnapshotStore snapshots = (InMemorySnapshotStore) Persistence.get(testKit.system()).snapshotStore();
    PersistenceId pid = PersistenceId.of("gauge", id);
    assertThat(snapshots.loadLatest(pid, Gauge.UNSERIALIZABLE).toCompletableFuture().get(5, TimeUnit.SECONDS))
        .get().extracting(s -> s.sequenceNr()).as("the snapshot before the one that failed").isEqualTo(2L);
    assertThat(snapshots.loadLatest(pid, Long.MAX_VALUE).toCompletableFuture().get(5, TimeUnit.SECONDS))
        .get().extracting(s -> s.sequenceNr()).isEqualTo(4L);
  }
}
