import { randomBytes } from 'node:crypto';

/** Randomness is injected where it shapes timing (jitter), so tests can pin it. Returns r ∈ [0, 1). */
export type Random = () => number;

export const systemRandom: Random = () => randomBytes(4).readUInt32BE(0) / 2 ** 32;
