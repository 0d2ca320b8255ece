package io.eventsourced;

import java.util.Objects;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The message an entity actor accepts from other actors: a command and where to send its {@link
 * Reply}. Code outside actors uses {@link EntityRef#ask} instead.
 *
 * @param command the command
 * @param replyTo receives exactly one reply, unless the command handler chose {@code
 *     thenNoReply()} or the entity is gone before it reads the message
 * @param <C> the command type
 * @param <R> the reply value type
 * @param <Err> the domain error type
 */
public record EntityCommand<C, R, Err>(C command, ActorRef<Reply<R, Err>> replyTo) {

  /**
   * Validates that both parts are present.
   *
   * @param command as in the record header
   * @param replyTo as in the record header
   */
  public EntityCommand {
    Objects.requireNonNull(command, "command");
    Objects.requireNonNull(replyTo, "replyTo");
  }
}
