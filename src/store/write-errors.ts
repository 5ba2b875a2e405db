/** Writes the store refused: the adapters raise these; the Command maps them to API errors or retries. */

/** A fleet pinned to a target that does not exist (any more). */
export class UnknownTargetError extends Error {
  constructor(readonly target: string) {
    super(`target ${JSON.stringify(target)} does not exist`);
    this.name = 'UnknownTargetError';
  }
}

/** Raised by adapters; the Command maps these to API errors or retries. */
export class StoreConflictError extends Error {
  constructor(
    readonly field: 'id' | 'host' | 'schema',
    readonly value: string,
  ) {
    super(`${field} ${JSON.stringify(value)} is already in use`);
    this.name = 'StoreConflictError';
  }
}

/** A fenced write whose lease epoch is no longer the newest: another replica holds the lease now. */
export class FencedError extends Error {
  constructor(
    readonly lease: string,
    readonly epoch: number,
  ) {
    super(`lease ${lease} epoch ${epoch} was superseded; this replica no longer holds it`);
    this.name = 'FencedError';
  }
}

/** Another config version of the fleet was recorded since the apply read it: a concurrent apply. */
export class StaleFleetStateError extends Error {
  constructor(
    readonly fleet: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`fleet ${fleet} is at version ${actual}, not ${expected}: it was applied concurrently`);
    this.name = 'StaleFleetStateError';
  }
}

/** A row's rev moved since it was read: someone else wrote it. The writer re-reads and retries. */
export class StaleWriteError extends Error {
  constructor(readonly relayId: string) {
    super(`relay ${relayId} changed concurrently`);
    this.name = 'StaleWriteError';
  }
}
