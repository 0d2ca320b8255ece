package io.eventsourced;

import io.eventsourced.serialization.JsonSerializable;
import java.util.ArrayList;
import java.util.List;

/**
 * A test entity: a list of items. Its events are stored as JSON through Pekko's Jackson
 * serializer, so the entity tests exercise real serialization.
 */
final class Tally implements EventSourced<Tally.Command, Tally.Event, Tally.State, List<String>, Tally.Error> {

  sealed interface Command {}

  record Add(String item) implements Command {}

  record AddAll(List<String> items) implements Command {}

  record Get() implements Command {}

  record EmitUnserializable() implements Command {}

  record Silent() implements Command {}

  record Finish() implements Command {}

  record Explode() implements Command {}

  /** The command handler throws an {@link AssertionError}, as a failed {@code assert} would. */
  record Assert() implements Command {}

  /** Persists an event whose handler throws an {@link AssertionError}. */
  record PersistPoison() implements Command {}

  /** Persists an event, then computing the reply throws an {@link AssertionError}. */
  record BadReply(String item) implements Command {}

  sealed interface Event {}

  record Added(String item) implements Event, JsonSerializable {}

  /** Deliberately not bound to any serializer. */
  record NotSerializable(String item) implements Event {}

  record Poisoned(String item) implements Event, JsonSerializable {}

  record State(List<String> items) implements JsonSerializable {
    State add(String item) {
      List<String> next = new ArrayList<>(items);
      next.add(item);
      return new State(List.copyOf(next));
    }
  }

  sealed interface Error {}

  record EmptyItem() implements Error {}

  private final long snapshotEvery;
  private final String journalPluginId;
  private final String snapshotPluginId;

  Tally() {
    this(0);
  }

  Tally(long snapshotEvery) {
    this(snapshotEvery, "");
  }

  Tally(long snapshotEvery, String journalPluginId) {
    this(snapshotEvery, journalPluginId, "");
  }

  Tally(long snapshotEvery, String journalPluginId, String snapshotPluginId) {
    this.snapshotEvery = snapshotEvery;
    this.journalPluginId = journalPluginId;
    this.snapshotPluginId = snapshotPluginId;
  }

  @Override
  public String journalPluginId() {
    return journalPluginId;
  }

  @Override
  public String snapshotPluginId() {
    return snapshotPluginId;
  }

  @Override
  public String typeName() {
    return "tally";
  }

  @Override
  public State emptyState() {
    return new State(List.of());
  }

  @Override
  public CommandHandler<Command, Event, State, List<String>, Error> commandHandler() {
    return newCommandHandlerBuilder()
        .onCommand(
            Add.class,
            (state, add) ->
                add.item().isEmpty()
                    ? effect().reject(new EmptyItem())
                    : effect().persist(new Added(add.item())).thenReply(State::items))
        .onCommand(
            AddAll.class,
            (state, all) ->
                effect().persist(all.items().stream().<Event>map(Added::new).toList()).thenReply(State::items))
        .onCommand(Get.class, (state, get) -> effect().reply(state.items()))
        .onCommand(
            EmitUnserializable.class,
            (state, cmd) -> effect().persist(new NotSerializable("x")).thenReply(State::items))
        .onCommand(Silent.class, (state, cmd) -> effect().none().thenNoReply())
        .onCommand(Finish.class, (state, cmd) -> effect().stop().thenReply(State::items))
        .onCommand(
            Explode.class,
            (state, cmd) -> {
              throw new IllegalStateException("boom");
            })
        .onCommand(
            Assert.class,
            (state, cmd) -> {
              throw new AssertionError("assertion in the command handler");
            })
        .onCommand(PersistPoison.class, (state, cmd) -> effect().persist(new Poisoned("p")).thenReply(State::items))
        .onCommand(
            BadReply.class,
            (state, cmd) ->
                effect()
                    .persist(new Added(cmd.item()))
                    .thenReply(
                        s -> {
                          throw new AssertionError("assertion in the reply");
                        }))
        .build();
  }

  @Override
  public EventHandler<State, Event> eventHandler() {
    return newEventHandlerBuilder()
        .onEvent(Added.class, (state, added) -> state.add(added.item()))
        .onEvent(NotSerializable.class, (state, e) -> state.add(e.item()))
        .onEvent(
            Poisoned.class,
            (state, e) -> {
              throw new AssertionError("assertion in the event handler");
            })
        .build();
  }

  @Override
  public SnapshotPolicy<State, Event> snapshotPolicy() {
    return snapshotEvery > 0 ? SnapshotPolicy.every(snapshotEvery) : SnapshotPolicy.never();
  }
}
