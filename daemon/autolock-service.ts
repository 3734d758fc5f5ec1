// The Autolock service of a running (unlocked) manager, on its root-only socket and its TLS port:
// Status for any user and root; UnlockKey and SetAutolock for admins and root only, each recorded
// in the audit log (the request, never the key: the audit log keeps a digest of `{rotate}` or
// `{enabled}`, and the response is not recorded). Unlock answers that this manager is not locked.
import * as grpc from '@grpc/grpc-js';

import { describeCaller, type Caller } from '../control-plane/auth/caller.js';
import type { Authenticate } from '../control-plane/auth/authenticate.js';
import type { AuditRecord } from '../control-plane/api/server.js';
import type { AutolockKeeper } from './autolock-keeper.js';
import type { AutolockHandlers, AutolockMethod } from './autolock-proto.js';

export interface AutolockServiceDeps {
  keeper: AutolockKeeper;
  authenticate: Authenticate;
  audit: (record: AuditRecord) => void;
  node: string;
}

function serviceError(err: unknown): grpc.ServiceError {
  const e = err as Error & { code?: unknown };
  const code = typeof e.code === 'number' ? (e.code as grpc.status) : grpc.status.INTERNAL;
  const message = e instanceof Error ? e.message : String(err);
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() });
}

/** Admins and root only: the unlock key opens every manager's keyring. */
function requireAdmin(caller: Caller, method: AutolockMethod): void {
  if (caller.kind === 'local-root' || (caller.kind === 'user' && caller.role === 'admin')) return;
  throw Object.assign(new Error(`${describeCaller(caller)} may not call ${method}: the unlock key and autolock are for admins only`), {
    code: grpc.status.PERMISSION_DENIED,
  });
}

/** Runs an admin-only call: authenticates, authorizes, runs `act`, and audits the outcome, refusals included. */
function adminCall<Req extends object, Res>(
  deps: AutolockServiceDeps,
  method: AutolockMethod,
  act: (request: Req) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let caller: Caller | undefined;
    const request = { ...call.request };
    const finish = (error: unknown, response?: Res): void => {
      const who = caller ?? { kind: 'unauthenticated' as const, who: `no verified certificate from ${call.getPeer()}` };
      deps.audit({ caller: who, method, request, ...(error === undefined ? {} : { error }) });
      if (error === undefined) callback(null, response);
      else callback(serviceError(error));
    };
    try {
      caller = deps.authenticate(call);
      requireAdmin(caller, method);
    } catch (err) {
      finish(err);
      return;
    }
    void (async () => {
      let response: Res;
      try {
        response = await act(request);
      } catch (err) {
        finish(err);
        return;
      }
      finish(undefined, response);
    })();
  };
}

export function autolockHandlers(deps: AutolockServiceDeps): AutolockHandlers {
  return {
    Status: (call, callback) => {
      try {
        const caller = deps.authenticate(call);
        if (caller.kind === 'node') throw Object.assign(new Error(`${describeCaller(caller)} may not call Status`), { code: grpc.status.PERMISSION_DENIED });
        callback(null, { locked: false, autolock: deps.keeper.autolock, node: deps.node });
      } catch (err) {
        callback(serviceError(err));
      }
    },
    Unlock: (_call, callback) =>
      callback(serviceError(Object.assign(new Error(`manager ${deps.node} is not locked`), { code: grpc.status.FAILED_PRECONDITION }))),
    UnlockKey: adminCall(deps, 'UnlockKey', async (request: { rotate: boolean }) => ({ unlockKey: await deps.keeper.unlockKey(request.rotate === true) })),
    SetAutolock: adminCall(deps, 'SetAutolock', async (request: { enabled: boolean }) => {
      const result = await deps.keeper.setEnabled(request.enabled === true);
      return { changed: result.changed, unlockKey: result.unlockKey ?? '' };
    }),
  };
}
