import type { Command } from '../command.js';
import type { Clock } from '../domain/clock.js';
import { Chore, defineChore } from '../lifecycle/chore.js';
import type { Store } from '../store/port.js';

const PAGE = 1000;

export const CREDENTIAL_EXPIRY = defineChore('credential_expiry', {
  interval: 60_000,
  timeout: 30_000,
});

/**
 * Expires tokens past their expiry and, given the Command, drops rotated relay credentials whose
 * grace period has ended (each such relay gets a new version; agents dropped them on their own
 * timers already).
 */
export class CredentialExpiry extends Chore {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly command?: Pick<Command, 'expireCredentials'>,
  ) {
    super(CREDENTIAL_EXPIRY);
  }

  async once(signal: AbortSignal): Promise<void> {
    await this.store.expireTokens(this.clock.now());
    if (!this.command) return;
    for (;;) {
      const due = await this.store.relaysWithExpiredCredentials(this.clock.now(), PAGE);
      let changed = 0;
      for (const relay of due) {
        if (signal.aborted) return;
        if (await this.command.expireCredentials(relay.id)) changed++;
      }
      // A page where nothing changed would come back the same (e.g. a clock behind the database).
      if (due.length < PAGE || changed === 0) return;
    }
  }
}
