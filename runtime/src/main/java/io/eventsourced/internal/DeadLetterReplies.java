package io.eventsourced.internal;

import io.eventsourced.EntityCommand;
import io.eventsourced.EntityException;
import io.eventsourced.PersistenceId;
import io.eventsourced.Reply;
import java.util.function.Function;
import org.apache.pekko.actor.AllDeadLetters;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * Answers commands that reached a stopped entity (dead letters) with a technical failure, so a
 * caller learns at once that the entity is gone instead of waiting for its timeout. This costs
 * nothing per command: only undeliverable messages pass through here.
 */
final class DeadLetterReplies {

  private DeadLetterReplies() {}

  static void start(
      ActorSystem<?> system,
      Function<PersistenceId, EntityException> failures,
      Function<String, EntityException> failedActors) {
    ActorRef<AllDeadLetters> listener =
        system.systemActorOf(behavior(failures, failedActors), "eventsourced-dead-letter-replies", Props.empty());
    // Subscribed on the classic event stream, which subscribes before it returns: the typed
    // Subscribe message would let dead letters of the first entities, published before it is
    // processed, pass unanswered (their callers would wait for the ask timeout).
    Adapter.toClassic(system).eventStream().subscribe(Adapter.toClassic(listener), AllDeadLetters.class);
  }

  /**
   * The failure of a command that an entity did not handle because it had stopped.
   *
   * @param persistenceId the entity
   * @param cause why it stopped, or {@code null} if it was stopped on purpose
   */
  static EntityException stopped(PersistenceId persistenceId, EntityException cause) {
    String why = cause == null ? "" : " after a failure: " + cause.getMessage();
    return new EntityException(
        persistenceId, "entity [" + persistenceId + "] is stopped" + why + "; the command was not handled", cause);
  }

  @SuppressWarnings({"unchecked", "rawtypes"})
  private static Behavior<AllDeadLetters> behavior(
      Function<PersistenceId, EntityException> failures,
      Function<String, EntityException> failedActors) {
    return Behaviors.receive(AllDeadLetters.class)
        .onMessage(
            AllDeadLetters.class,
            dead -> {
              Object message = dead.message();
              if (message instanceof Ask ask) {
                // By actor first: once the entity was spawned again, its id no longer holds why
                // this incarnation stopped.
                EntityException cause = failedActors.apply(dead.recipient().path().toSerializationFormat());
                if (cause == null) {
                  cause = failures.apply(ask.persistenceId());
                }
                ask.replyTo().accept(new Reply.Failed<>(stopped(ask.persistenceId(), cause)));
              } else if (message instanceof EntityCommand command) {
                EntityException cause = failedActors.apply(dead.recipient().path().toSerializationFormat());
                String what =
                    cause == null
                        ? "entity at [" + dead.recipient().path() + "] is stopped"
                        : "entity [" + cause.persistenceId() + "] at [" + dead.recipient().path()
                            + "] is stopped after a failure: " + cause.getMessage();
                command
                    .replyTo()
                    .tell(
                        new Reply.Failed<>(
                            new EntityException(
                                cause == null ? null : cause.persistenceId(),
                                what + "; the command was not handled",
                                cause)));
              }
              return Behaviors.same();
            })
        .build();
  }
}
