package io.eventsourced;

import io.eventsourced.serialization.JsonSerializable;

/** A test entity: counts hits, its events stored as JSON through Pekko's Jackson serializer. */
final class Hits implements EventSourced<Hits.Command, Hits.Counted, Long, Long, String> {

  sealed interface Command {}

  record Hit() implements Command {}

  record Get() implements Command {}

  record Counted() implements JsonSerializable {}

  @Override
  public String typeName() {
    return "hits";
  }

  @Override
  public Long emptyState() {
    return 0L;
  }

  @Override
  public CommandHandler<Command, Counted, Long, Long, String> commandHandler() {
    return newCommandHandlerBuilder()
        .onCommand(Hit.class, (n, hit) -> effect().persist(new Counted()).thenReply(s -> s))
        .onCommand(Get.class, (n, get) -> effect().reply(n))
        .build();
  }

  @Override
  public EventHandler<Long, Counted> eventHandler() {
    return newEventHandlerBuilder().onEvent(Counted.class, (n, counted) -> n + 1).build();
  }
}
