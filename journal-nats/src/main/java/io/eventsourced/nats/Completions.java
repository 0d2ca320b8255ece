package io.eventsourced.nats;

import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Runs completions of callers' stages on the plugin dispatcher instead of the NATS client's
 * threads, in bursts: acknowledgements arriving together are completed by one dispatcher task
 * instead of one task (and one thread wake-up) each.
 */
final class Completions {
  private static final int BURST = 256;

  private final Executor executor;
  private final Queue<Runnable> queue = new ConcurrentLinkedQueue<>();
  private final AtomicBoolean scheduled = new AtomicBoolean();

  Completions(Executor executor) {
    this.executor = executor;
  }

  /**
   * Runs the task soon on the executor.
   *
   * @param task a short, non-blocking completion
   */
  void submit(Runnable task) {
    queue.add(task);
    if (scheduled.compareAndSet(false, true)) {
      executor.execute(this::drain);
    }
  }

  private void drain() {
    try {
      for (int i = 0; i < BURST; i++) {
        Runnable task = queue.poll();
        if (task == null) {
          break;
        }
        task.run();
      }
    } finally {
      scheduled.set(false);
      if (!queue.isEmpty() && scheduled.compareAndSet(false, true)) {
        executor.execute(this::drain);
      }
    }
  }
}
