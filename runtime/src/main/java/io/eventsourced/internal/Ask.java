package io.eventsourced.internal;

import io.eventsourced.PersistenceId;
import io.eventsourced.Reply;
import java.util.function.Consumer;
import org.apache.pekko.actor.DeadLetterSuppression;

/**
 * A command with a reply callback instead of an actor ref: how {@code EntityRef.ask} reaches the
 * entity without a temporary actor per ask. Not logged as a dead letter: the {@link
 * DeadLetterReplies} listener answers it with a failure instead.
 *
 * @param persistenceId the entity it is addressed to, for the failure if it never arrives
 * @param command the command
 * @param replyTo receives the reply, on the entity's thread; must not block
 * @param <C> the command type
 * @param <R> the reply value type
 * @param <Err> the domain error type
 */
public record Ask<C, R, Err>(
    PersistenceId persistenceId, C command, Consumer<Reply<R, Err>> replyTo)
    implements DeadLetterSuppression {}
