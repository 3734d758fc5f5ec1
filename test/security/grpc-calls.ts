// gRPC clients of a tsd's services as an attacker (or an honest user) would build them: any
// credentials, any address, nothing of tsctl in between. Calls come back as promises; a refusal is
// read as its gRPC code and message so a test can say exactly which refusal it expected.
import * as grpc from '@grpc/grpc-js';

import { loadApiPackage, loadDispatcherPackage } from '../../proto/load.js';
import type { TesseraClient } from '../../proto/gen/tessera/api/v1/Tessera.js';
import type { DispatcherClient } from '../../proto/gen/tessera/dispatcher/v1/Dispatcher.js';
import type { NodeCAClient } from '../../proto/gen/tessera/dispatcher/v1/NodeCA.js';
import type { AgentMessage } from '../../proto/gen/tessera/dispatcher/v1/AgentMessage.js';
import type { ManagerMessage__Output } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';
import { clientCredentials, LOCAL_INSECURE, type TransportSecurity } from '../../common/transport/credentials.js';

const CALL_TIMEOUT_MS = 10_000;

export function apiClient(address: string, security: TransportSecurity = LOCAL_INSECURE): TesseraClient {
  return new (loadApiPackage().tessera.api.v1.Tessera)(address, clientCredentials(security));
}

/** An API client with plaintext channel credentials, whatever the address (the attack on the TLS port). */
export function plaintextApiClient(address: string): TesseraClient {
  return new (loadApiPackage().tessera.api.v1.Tessera)(address, grpc.credentials.createInsecure());
}

export function dispatcherClient(address: string, security: TransportSecurity): DispatcherClient {
  return new (loadDispatcherPackage().tessera.dispatcher.v1.Dispatcher)(address, clientCredentials(security));
}

export function nodeCaClient(address: string, credentials: grpc.ChannelCredentials): NodeCAClient {
  return new (loadDispatcherPackage().tessera.dispatcher.v1.NodeCA)(address, credentials);
}

type Start<Res> = (options: grpc.CallOptions, callback: grpc.requestCallback<Res>) => unknown;

/** One unary call with a deadline: `unary((o, cb) => client.list(req, o, cb))`. */
export function unary<Res>(start: Start<Res>, timeoutMs = CALL_TIMEOUT_MS): Promise<Res> {
  return new Promise((resolve, reject) => {
    start({ deadline: Date.now() + timeoutMs }, (err, value) => {
      if (err) reject(err);
      else if (value === undefined) reject(new Error('the server answered with no message'));
      else resolve(value);
    });
  });
}

/** A status code's name (PERMISSION_DENIED), or the number when grpc-js knows no name for it. */
export function statusName(code: number): string {
  return (grpc.status as unknown as Record<number, string | undefined>)[code] ?? String(code);
}

export interface Refusal {
  code: grpc.status;
  /** The status name, e.g. PERMISSION_DENIED: what an assertion failure should show. */
  codeName: string;
  details: string;
}

/** The gRPC status a call was refused with; throws when the call succeeded (the attack worked). */
export async function refusalOf(what: string, call: Promise<unknown>): Promise<Refusal> {
  let answer: unknown;
  try {
    answer = await call;
  } catch (err) {
    const e = err as Partial<grpc.ServiceError>;
    if (typeof e.code !== 'number') throw new Error(`${what}: failed without a gRPC status: ${(err as Error).message}`, { cause: err });
    return { code: e.code, codeName: statusName(e.code), details: e.details ?? e.message ?? '' };
  }
  throw new Error(`${what} was NOT refused; the server answered ${JSON.stringify(answer).slice(0, 500)}`);
}

export interface SessionOutcome {
  /** Messages the manager sent before the stream ended (a refused session gets none). */
  received: ManagerMessage__Output[];
  /** How the stream ended: its status, or undefined when it was still open at the deadline. */
  error?: Refusal;
}

/**
 * Opens a Dispatcher session, sends `messages`, and waits for the stream to end (or for
 * `waitMs`, after which it is cancelled): a refused session ends with a status.
 */
export function dispatcherSession(client: DispatcherClient, messages: AgentMessage[], waitMs = 5000): Promise<SessionOutcome> {
  return new Promise((resolve) => {
    const stream = client.session();
    const received: ManagerMessage__Output[] = [];
    let settled = false;
    const settle = (error?: Refusal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(error ? { received, error } : { received });
    };
    const timer = setTimeout(() => {
      settle();
      stream.cancel();
    }, waitMs);
    stream.on('data', (message: ManagerMessage__Output) => received.push(message));
    stream.on('error', (err: grpc.ServiceError) => settle({ code: err.code, codeName: statusName(err.code), details: err.details }));
    stream.on('end', () => settle());
    for (const message of messages) stream.write(message);
  });
}
