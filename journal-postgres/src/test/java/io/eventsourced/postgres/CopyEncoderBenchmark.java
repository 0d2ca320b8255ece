package io.eventsourced.postgres;

import java.util.Locale;
import java.util.UUID;

/**
 * Times {@link CopyEncoder} on batches shaped like the counter sample's: 25 one-event writes of
 * 25 entities (UUID ids, the sample's protobuf manifest, a 2-byte payload), sized and encoded as
 * {@code GroupCommit} does. Not a test (surefire does not run it); see {@code
 * docs/benchmarks.md}.
 *
 * <p>Arguments: {@code [batches per round] [rounds]}, default 200 000 and 5.
 */
public final class CopyEncoderBenchmark {

  private CopyEncoderBenchmark() {}

  /**
   * Runs the rounds and prints the nanoseconds per encoded row of each.
   *
   * @param args batches per round, rounds
   */
  public static void main(String[] args) {
    int batches = args.length > 0 ? Integer.parseInt(args[0]) : 200_000;
    int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 5;
    int rows = 25;
    String type = "counter";
    String manifest = "io.eventsourced.sample.counter.CounterEvent$Increased";
    byte[] payload = {8, 1};
    String[] ids = new String[rows];
    for (int i = 0; i < rows; i++) {
      ids[i] = UUID.randomUUID().toString();
    }
    long bytes = 0; // consumed below, so the JIT cannot drop the work
    for (int round = 1; round <= rounds; round++) {
      long start = System.nanoTime();
      for (int b = 0; b < batches; b++) {
        int capacity = CopyEncoder.frameSize();
        for (int i = 0; i < rows; i++) {
          capacity += CopyEncoder.rowSize(type.length(), ids[i].length(), manifest.length(), payload.length);
        }
        CopyEncoder out = new CopyEncoder(capacity);
        for (int i = 0; i < rows; i++) {
          out.row(type, ids[i], b + 1, 33, manifest, payload);
        }
        out.finish();
        bytes += out.length();
      }
      double nanosPerRow = (System.nanoTime() - start) / ((double) batches * rows);
      System.out.printf(Locale.ROOT, "round %d: %.1f ns per row%n", round, nanosPerRow);
    }
    System.out.printf(Locale.ROOT, "SUMMARY copy-encoder rows_per_batch=%d batches=%d bytes=%d%n", rows, (long) batches * rounds, bytes);
  }
}
