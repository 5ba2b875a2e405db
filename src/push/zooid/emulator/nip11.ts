/** What the emulator answers on a relay's own host. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { publicKeyOf } from '../../../domain/keys.js';
import { send } from './io.js';
import { goJson, textReply } from './reply.js';
import type { RelayConfigs } from './state.js';
import { secretKeyError } from './validate.js';

export function serveRelayHost(req: IncomingMessage, res: ServerResponse, configs: RelayConfigs): void {
  req.resume();
  const host = req.headers.host ?? '';
  const relay = [...configs.entries()].map(([, c]) => c).find((c) => c.host === host && !c.inactive);
  if (!relay) {
    send(res, textReply(404, 'relay not found'), req.method === 'HEAD');
    return;
  }
  const secret = relay.secret.padStart(64, '0');
  send(
    res,
    {
      status: 200,
      contentType: 'application/nostr+json',
      body: goJson({
        name: relay.info.name,
        icon: relay.info.icon,
        description: relay.info.description,
        pubkey: relay.info.pubkey,
        self: secretKeyError(secret) ? '' : publicKeyOf(secret.toLowerCase()),
        software: 'zooid-emulator',
      }),
    },
    req.method === 'HEAD',
  );
}
