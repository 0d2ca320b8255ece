package io.eventsourced.nats;

import static org.assertj.core.api.Assertions.assertThat;

import io.eventsourced.PersistenceId;
import io.eventsourced.journal.JournalException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.pekko.Done;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

@DisplayName("The NATS journal's hand-off of a publish follow-up")
class HandOffTest {

  @Test
  @DisplayName("runs the follow-up on the executor, and fails the write as uncertain if the executor refuses it")
  void refusedHandOffFailsTheWrite() {
    PersistenceId id = PersistenceId.of("t", "e");
    CompletableFuture<Done> accepted = new CompletableFuture<>();
    AtomicBoolean ran = new AtomicBoolean();
    NatsJournal.handOff(Runnable::run, () -> ran.set(true), TestNats.write(id, 3, 1), accepted, new IllegalStateException("lost ack"));
    assertThat(ran).isTrue();
    assertThat(accepted).isNotDone();

    CompletableFuture<Done> refused = new CompletableFuture<>();
    NatsJournal.handOff(
        task -> {
          throw new RejectedExecutionException("shut down");
        },
        () -> ran.set(false),
        TestNats.write(id, 3, 1),
        refused,
        new IllegalStateException("lost ack"));
    assertThat(ran).as("the refused task did not run").isTrue();
    assertThat(refused).isCompletedExceptionally();
    try {
      refused.get();
    } catch (ExecutionException | InterruptedException e) {
      assertThat(e.getCause())
          .isInstanceOf(JournalException.class)
          .hasMessageContaining("[t|e] from sequenceNr [4]")
          .hasMessageContaining("may or may not be stored");
      assertThat(((JournalException) e.getCause()).getSuppressed()).hasAtLeastOneElementOfType(RejectedExecutionException.class);
    }
  }

  @Test
  @DisplayName("republishes after a 503 No Responders, and never says nothing was stored after a republish")
  void outcomes() {
    Throwable noResponders =
        NatsJournal.unwrap(
            new java.util.concurrent.CompletionException(
                new RuntimeException(new java.io.IOException("Error Publishing: 503 No Responders Available For Request"))));
    assertThat(NatsJournal.isUncertain(noResponders)).isTrue();
    Throwable apiError = new io.nats.client.JetStreamApiException(io.nats.client.api.Error.JsBadRequestErr);
    assertThat(NatsJournal.isUncertain(apiError)).isFalse();
    assertThat(NatsJournal.outcome(apiError, 0)).isEqualTo("nothing was stored");
    assertThat(NatsJournal.outcome(apiError, 1)).contains("may or may not be stored");
    assertThat(NatsJournal.outcome(noResponders, 0)).contains("may or may not be stored");
  }
}
