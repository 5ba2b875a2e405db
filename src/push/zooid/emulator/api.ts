/**
 * The management API's request pipeline: log the request, read the body, apply faults, route and
 * authenticate in the variant's order, run the handler, and record what zooid accepted.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../../domain/clock.js';
import { authenticate } from './auth.js';
import type { Delays, FaultInjector } from './faults.js';
import { logBody, readBody, send } from './io.js';
import type { RequestLog } from './record.js';
import { errorReply, type Reply } from './reply.js';
import {
  createRelay,
  deleteRelay,
  listMembers,
  patchRelay,
  type RequestBody,
  type RouteContext,
  replaceRelay,
} from './routes.js';
import { type Action, type Route, relayIdOf, route, routesBeforeAuth } from './routing.js';
import type { ZooidRequestRecord } from './types.js';

/** The handlers of the routes that write a relay's file. */
const WRITES: Record<
  Exclude<Action, 'members'>,
  (ctx: RouteContext, id: string, body: RequestBody) => Reply
> = {
  POST: createRelay,
  PUT: replaceRelay,
  PATCH: patchRelay,
  DELETE: (ctx, id) => deleteRelay(ctx, id),
};

export interface ManagementApiDeps extends RouteContext {
  clock: Clock;
  log: RequestLog;
  faults: FaultInjector;
  delays: Delays;
  /** Read on each request: `setWhitelist` replaces it. */
  whitelist: () => ReadonlySet<string>;
  isClosed: () => boolean;
}

export class ManagementApi {
  constructor(private readonly deps: ManagementApiDeps) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { clock, log, faults } = this.deps;
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').replace(/[?#].*$/, '');
    const id = relayIdOf(path);
    const rec: ZooidRequestRecord = {
      method,
      path,
      id,
      body: null,
      at: clock.now(),
      status: 0,
      pubkey: null,
      fault: null,
    };
    log.arrived(rec);
    if (id !== null) log.track(id, res);
    const body = await readBody(req);
    rec.body = body.tooLarge ? '<body over 1 MiB>' : body.body.length === 0 ? null : logBody(body.body);
    if (faults.latencyMs > 0) await this.deps.delays.wait(faults.latencyMs);
    if (this.deps.isClosed()) {
      req.socket.destroy();
      return;
    }
    const verdict = faults.decide(method);
    if (verdict) {
      rec.fault = verdict.fault;
      if (verdict.fault === 'drop') {
        req.socket.destroy();
        return;
      }
      rec.status = verdict.reply.status;
      return send(res, verdict.reply, false);
    }
    const reply = this.dispatch(req, method, path, body, rec);
    rec.status = reply.status;
    send(res, reply, method === 'HEAD');
  }

  private dispatch(
    req: IncomingMessage,
    method: string,
    path: string,
    body: RequestBody,
    rec: ZooidRequestRecord,
  ): Reply {
    const { variant } = this.deps;
    let target: Route | null = null;
    if (routesBeforeAuth(variant)) {
      target = route(variant, method, path);
      if ('reply' in target) return target.reply;
    }
    const auth = authenticate(
      { clock: this.deps.clock, variant, whitelist: this.deps.whitelist() },
      req,
      path,
    );
    if ('reply' in auth) return auth.reply;
    rec.pubkey = auth.pubkey;
    target ??= route(variant, method, path);
    if ('reply' in target) return target.reply;
    return this.run(target, body, rec);
  }

  private run(
    { id, action }: { id: string; action: Action },
    body: RequestBody,
    rec: ZooidRequestRecord,
  ): Reply {
    if (action === 'members') return listMembers(this.deps, id);
    let reply: Reply;
    try {
      reply = WRITES[action](this.deps, id, body);
    } catch (err) {
      return errorReply(500, `failed to write config: ${(err as Error).message}`);
    }
    if (reply.status >= 200 && reply.status < 300) {
      const config = this.deps.configs.get(id);
      this.deps.log.accepted({
        id,
        method: action,
        body: rec.body,
        config: config ?? null,
        at: this.deps.clock.now(),
      });
    }
    return reply;
  }
}
