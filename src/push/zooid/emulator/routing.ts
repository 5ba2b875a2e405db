/** Which handler a management request reaches, per variant (docs/zooid-contract.md §1). */
import { errorReply, type Reply, textReply } from './reply.js';
import type { ZooidVariant } from './types.js';

export type Action = 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'members';
export type Route = { id: string; action: Action } | { reply: Reply };

const safeDecode = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

const isWrite = (method: string): method is 'POST' | 'PUT' | 'PATCH' | 'DELETE' =>
  method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE';

/** V1: the caller authenticates first, then the path's segments are checked. */
function routeV1(method: string, path: string): Route {
  const parts = safeDecode(path).replace(/^\//, '').split('/');
  if (parts[0] !== 'relay' || parts.length < 2) return { reply: errorReply(404, 'not found') };
  const id = parts[1]!;
  if (id === '') return { reply: errorReply(400, 'relay id is required') };
  if (isWrite(method)) return { id, action: method };
  return { reply: errorReply(405, 'method not allowed') };
}

/** V2: Go 1.22 ServeMux patterns; unmatched → plain 404, wrong method → plain 405 + Allow. */
function routeV2(method: string, path: string): Route {
  const segs = path.split('/');
  if (segs.length === 3 && segs[1] === 'relay' && segs[2] !== '') {
    const id = safeDecode(segs[2]!);
    if (isWrite(method)) return { id, action: method };
    return { reply: textReply(405, 'Method Not Allowed', { allow: 'DELETE, PATCH, POST, PUT' }) };
  }
  if (segs.length === 4 && segs[1] === 'relay' && segs[2] !== '' && segs[3] === 'members') {
    if (method === 'GET' || method === 'HEAD') return { id: safeDecode(segs[2]!), action: 'members' };
    return { reply: textReply(405, 'Method Not Allowed', { allow: 'GET, HEAD' }) };
  }
  return { reply: textReply(404, '404 page not found') };
}

export const route = (variant: ZooidVariant, method: string, path: string): Route =>
  variant === 'v2' ? routeV2(method, path) : routeV1(method, path);

/** V2 routes before auth, V1 after (an unauthenticated V1 request never learns the route is wrong). */
export const routesBeforeAuth = (variant: ZooidVariant): boolean => variant === 'v2';

/** The relay id a path names, for the request log, before routing decides anything. */
export function relayIdOf(path: string): string | null {
  const segs = path.split('/');
  return segs[1] === 'relay' && segs[2] ? safeDecode(segs[2]) : null;
}
