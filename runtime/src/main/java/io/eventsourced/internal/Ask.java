package io.eventsourced.internal;

import io.eventsourced.Reply;
import java.util.function.Consumer;

/**
 * A command with a reply callback instead of an actor ref: how {@code EntityRef.ask} reaches the
 * entity without a temporary actor per ask.
 *
 * @param command the command
 * @param replyTo receives the reply, on the entity's thread; must not block
 * @param <C> the command type
 * @param <R> the reply value type
 * @param <Err> the domain error type
 */
public record Ask<C, R, Err>(C command, Consumer<Reply<R, Err>> replyTo) {}
