package io.eventsourced;

import java.util.Objects;

/**
 * Identity of an entity: its type name and its id (contract 1). Every journal and snapshot store
 * keys its records by both parts, so the same id under two type names is two entities.
 *
 * <p>Any non-empty string is a valid id, including dots, wildcards, slashes, spaces and non-ASCII
 * characters; journals encode it as their store requires. {@link #toString()} renders the
 * {@code typeName|entityId} form used in error messages and logs.
 *
 * @param typeName the entity type, e.g. {@code "counter"}; non-empty
 * @param entityId the entity id within its type, e.g. a UUID; non-empty
 */
public record PersistenceId(String typeName, String entityId) {

  /**
   * Validates both parts.
   *
   * @param typeName as in the record header
   * @param entityId as in the record header
   */
  public PersistenceId {
    Objects.requireNonNull(typeName, "typeName");
    Objects.requireNonNull(entityId, "entityId");
    if (typeName.isEmpty()) {
      throw new IllegalArgumentException("typeName must not be empty");
    }
    if (entityId.isEmpty()) {
      throw new IllegalArgumentException("entityId must not be empty (type [" + typeName + "])");
    }
  }

  /**
   * Shorthand for the constructor.
   *
   * @param typeName the entity type
   * @param entityId the entity id
   * @return the persistence id
   */
  public static PersistenceId of(String typeName, String entityId) {
    return new PersistenceId(typeName, entityId);
  }

  @Override
  public String toString() {
    return typeName + "|" + entityId;
  }
}
