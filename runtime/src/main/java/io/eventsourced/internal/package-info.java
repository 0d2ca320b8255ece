/**
 * Internal machinery: the entity actor, plugin loading, settings and serialization helpers.
 * <b>Not API</b>: anything here may change without notice.
 */
package io.eventsourced.internal;
