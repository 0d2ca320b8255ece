package io.eventsourced.postgres;

import io.eventsourced.CommandHandler;
import io.eventsourced.EventHandler;
import io.eventsourced.EventSourced;
import io.eventsourced.serialization.JsonSerializable;

/** A test entity: a running total, its events stored as JSON through Pekko's Jackson serializer. */
final class Ledger implements EventSourced<Ledger.Command, Ledger.Event, Long, Long, String> {

  sealed interface Command {}

  record Add(long amount) implements Command {}

  record Get() implements Command {}

  sealed interface Event {}

  record Added(long amount) implements Event, JsonSerializable {}

  @Override
  public String typeName() {
    return "ledger";
  }

  @Override
  public Long emptyState() {
    return 0L;
  }

  @Override
  public CommandHandler<Command, Event, Long, Long, String> commandHandler() {
    return newCommandHandlerBuilder()
        .onCommand(Add.class, (total, add) -> effect().persist(new Added(add.amount())).thenReply(t -> t))
        .onCommand(Get.class, (total, get) -> effect().reply(total))
        .build();
  }

  @Override
  public EventHandler<Long, Event> eventHandler() {
    return newEventHandlerBuilder().onEvent(Added.class, (total, added) -> total + added.amount()).build();
  }
}
