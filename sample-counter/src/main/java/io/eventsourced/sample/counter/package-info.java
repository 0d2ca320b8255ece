/**
 * The counter example: the {@link io.eventsourced.sample.counter.Counter} entity and the {@link
 * io.eventsourced.sample.counter.Main} program that drives and recovers many of them, which
 * doubles as the benchmark.
 */
package io.eventsourced.sample.counter;
