package io.eventsourced.nats;

import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.JetStreamManagement;
import io.nats.client.JetStreamSubscription;
import io.nats.client.Message;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.nats.client.PublishOptions;
import io.nats.client.PushSubscribeOptions;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import io.nats.client.impl.Headers;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The reference the journal is measured against: W1 with plain jnats and no framework, on the same
 * server and machine. Writes: each of {@code entities} subjects gets {@code events} messages, one
 * at a time, each published asynchronously with the expected last subject sequence and awaited
 * before the next (all subjects at once). Replay: each subject read through a filtered ordered
 * consumer, one subject after another (the "naive filtered consumer"). Uses a fresh stream and
 * deletes it afterwards.
 *
 * <p>Arguments: entities (default 50), events per entity (default 20000).
 */
public final class RawJnatsBaseline {
  private RawJnatsBaseline() {}

  /**
   * Runs the baseline and prints one line per phase.
   *
   * @param args entities and events per entity
   * @throws Exception if the server is unreachable
   */
  public static void main(String[] args) throws Exception {
    int entities = args.length > 0 ? Integer.parseInt(args[0]) : 50;
    int events = args.length > 1 ? Integer.parseInt(args[1]) : 20_000;
    String servers = System.getenv().getOrDefault("EVENTSOURCED_NATS_SERVERS", TestNats.URL);
    String stream = "RAW_" + Long.toHexString(System.nanoTime());
    try (Connection nc = Nats.connect(Options.builder().server(servers).errorListener(new io.nats.client.ErrorListener() {}).build())) {
      JetStreamManagement jsm = nc.jetStreamManagement();
      JetStream js = nc.jetStream();
      jsm.addStream(StreamConfiguration.builder().name(stream).subjects(stream + ".>").storageType(StorageType.File).build());
      try {
        byte[] payload = new byte[12];
        long t0 = System.nanoTime();
        CountDownLatch done = new CountDownLatch(entities);
        for (int e = 0; e < entities; e++) {
          new Writer(js, stream + ".counter.e" + e, events, payload, done).next(0, 0);
        }
        if (!done.await(30, TimeUnit.MINUTES)) {
          throw new IllegalStateException("writes did not finish");
        }
        double writeSeconds = (System.nanoTime() - t0) / 1e9;
        long total = (long) entities * events;
        System.out.printf(
            "raw jnats W1 write (publishAsync + expected last subject sequence): %d events in %.2f s = %.0f events/s%n",
            total, writeSeconds, total / writeSeconds);
        long t1 = System.nanoTime();
        long read = 0;
        for (int e = 0; e < entities; e++) {
          JetStreamSubscription sub =
              js.subscribe(stream + ".counter.e" + e, PushSubscribeOptions.builder().stream(stream).ordered(true).build());
          for (int i = 0; i < events; i++) {
            Message m = sub.nextMessage(Duration.ofSeconds(10));
            if (m == null) {
              throw new IllegalStateException("replay stalled");
            }
            read++;
          }
          sub.unsubscribe();
        }
        double readSeconds = (System.nanoTime() - t1) / 1e9;
        System.out.printf(
            "raw jnats W1 replay (filtered ordered consumer, one subject after another): %d events in %.2f s = %.0f events/s%n",
            read, readSeconds, read / readSeconds);
      } finally {
        jsm.deleteStream(stream);
      }
    }
  }

  /** With {@code -Dbench.msgId=true}, every publish also carries a message id like the journal's. */
  private static final boolean MESSAGE_IDS = Boolean.getBoolean("bench.msgId");

  /** One subject's writer: the next publish starts when the previous is acknowledged. */
  private record Writer(JetStream js, String subject, int events, byte[] payload, CountDownLatch done) {
    void next(int written, long lastStreamSequence) {
      if (written == events) {
        done.countDown();
        return;
      }
      PublishOptions.Builder builder = PublishOptions.builder().expectedLastSubjectSequence(lastStreamSequence);
      if (MESSAGE_IDS) {
        // As long as the journal's: entity key, first sequenceNr, writer and write counter.
        builder.messageId(subject + ":" + (written + 1) + ":w1a2b3c4d5e6f7g8-" + Integer.toString(written, 36));
      }
      PublishOptions options = builder.build();
      js.publishAsync(subject, new Headers().put("Es-Seq", Integer.toString(written + 1)), payload, options)
          .whenComplete(
              (ack, error) -> {
                if (error != null) {
                  System.err.println("raw write failed: " + error);
                  System.exit(1);
                }
                next(written + 1, ack.getSeqno());
              });
    }
  }

}
