import { describe, expect, it } from 'vitest';
import { BosunError } from '../../src/domain/errors.js';
import { checkFleetName, fleetNameSchema } from '../../src/domain/relay.js';

describe('the fleet-name rule', () => {
  it('accepts lowercase names of up to 64 characters and refuses others with a 400 naming the fleet', () => {
    for (const ok of ['eu', '0-a_b', 'a'.repeat(64)]) {
      expect(() => checkFleetName(ok)).not.toThrow();
      expect(fleetNameSchema.safeParse(ok).success).toBe(true);
    }
    for (const bad of ['', 'EU', '-eu', 'e u', 'eu/1', 'a'.repeat(65)]) {
      expect(fleetNameSchema.safeParse(bad).success).toBe(false);
      let err: unknown;
      try {
        checkFleetName(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BosunError);
      expect((err as BosunError).toJSON()).toEqual({
        error: expect.objectContaining({
          code: 'invalid_request',
          message: 'fleet: must match ^[a-z0-9][a-z0-9_-]{0,63}$',
        }),
      });
      expect((err as BosunError).status).toBe(400);
    }
  });
});
