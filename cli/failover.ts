// Failing over between managers (issue 20). A client with several managers' addresses talks to one
// at a time; a call that fails because that manager is down or does not lead goes to the next,
// if the call is safe to repeat (api-methods.ts), within a bounded wait for an election. When no
// manager answers in that time, one line names each address and what it said.
import * as grpc from '@grpc/grpc-js';

import { isFailoverError, retryClassOf } from './api-methods.js';

/** How long a call waits, in all, for some manager to answer (an election takes a few seconds). */
export const ELECTION_WAIT_MS = 10_000;
/** The pause after every manager has been tried once, before the next round. */
const ROUND_PAUSE_MS = 250;

/**
 * How long a manager's connection (TCP and TLS) may take to come up before the next is tried.
 * grpc-js has no connect timeout: a call to a powered-off host, whose SYNs go unanswered, waits
 * out its whole deadline (30 s) with the connection still connecting. A process that died refuses
 * at once, so this costs nothing there; a manager merely slow to accept gets its turn again in the
 * next round.
 */
export const CONNECT_WAIT_MS = 5000;

/** How a manager's connection stands once it is looked at: up, failed, or still not up after the wait. */
export type ConnectOutcome = 'ready' | 'failed' | 'timeout';

/** The start of the line a client prints when no manager answered; callErrorMessage passes it on as is. */
export const NO_MANAGER_ANSWERED = 'no manager answered';

/** What a failed attempt says about the manager, in a few words. */
export function failureReason(err: { code?: number; details?: string; message?: string }): string {
  const said = err.details || err.message || '';
  if (/ECONNREFUSED/.test(said)) return 'connection refused';
  if (/ENOENT/.test(said)) return 'no socket';
  if (/EHOSTUNREACH|ENETUNREACH/.test(said)) return 'unreachable';
  if (err.code === grpc.status.DEADLINE_EXCEEDED || /ETIMEDOUT|timed? ?out/i.test(said)) return 'timeout';
  if (/not the leader|no leader is known/i.test(said)) return 'no leader yet';
  const oneLine = said.replace(/\s+/g, ' ').trim();
  return oneLine.length > 80 ? `${oneLine.slice(0, 77)}...` : oneLine || `status ${err.code ?? '?'}`;
}

/** The one line a user sees when no manager answered in time. */
export function noManagerMessage(reasons: ReadonlyMap<string, string>): string {
  const each = [...reasons].map(([address, reason]) => `${address} (${reason})`).join(', ');
  return `${NO_MANAGER_ANSWERED}: ${each} — check \`tsctl cluster members\` from a manager host or pass --server`;
}

/** True when grpc-js failed the call before any connection carried it: the request was never sent. */
export function neverSent(err: { code?: number; details?: string }): boolean {
  return err.code === grpc.status.UNAVAILABLE && /No connection established/.test(err.details ?? '');
}

/** Whether a failed call of `method` may be made again on another manager. */
export function mayRetry(method: string, err: { code?: number; details?: string; message?: string }): boolean {
  if (!isFailoverError(err.code, err.details || err.message || '')) return false;
  return retryClassOf(method) !== 'once' || neverSent(err);
}

/**
 * The managers, in the order to try them, and which one is in use. `advance` moves on after a
 * failure; after a full round it waits a little, and once the election wait is over it gives up.
 */
export class ManagerRotation<C> {
  private index = 0;
  private readonly clients = new Map<string, C>();
  private readonly reasons = new Map<string, string>();
  /** When the current run of failures began; undefined while the current manager answers. */
  private failingSince: number | undefined;
  private triedThisRound = 0;

  constructor(
    readonly addresses: readonly string[],
    private readonly open: (address: string) => C,
    private readonly close: (client: C) => void,
    private readonly waitMs = ELECTION_WAIT_MS,
    private readonly now: () => number = Date.now,
  ) {
    if (addresses.length === 0) throw new Error('no manager address to connect to');
  }

  get currentAddress(): string {
    return this.addresses[this.index]!;
  }

  current(): C {
    const address = this.currentAddress;
    let client = this.clients.get(address);
    if (client === undefined) {
      client = this.open(address);
      this.clients.set(address, client);
    }
    return client;
  }

  /** The current manager answered: a later failure starts a new wait. */
  answered(): void {
    this.failingSince = undefined;
    this.triedThisRound = 0;
    this.reasons.clear();
  }

  /**
   * Records why the current manager failed and moves to the next. Resolves to the pause before
   * trying it (0 within a round), or to an Error with the one-line message when the wait is over.
   */
  advance(reason: string): number | Error {
    const now = this.now();
    this.failingSince ??= now;
    this.reasons.set(this.currentAddress, reason);
    // The failed manager's channel is dropped: a fresh one reconnects at once when it is tried again.
    const client = this.clients.get(this.currentAddress);
    if (client !== undefined) {
      this.clients.delete(this.currentAddress);
      this.close(client);
    }
    this.index = (this.index + 1) % this.addresses.length;
    this.triedThisRound++;
    const roundDone = this.triedThisRound >= this.addresses.length;
    if (roundDone) this.triedThisRound = 0;
    if (now - this.failingSince >= this.waitMs) return new Error(noManagerMessage(this.reasons));
    return roundDone ? ROUND_PAUSE_MS : 0;
  }

  closeAll(): void {
    for (const client of this.clients.values()) this.close(client);
    this.clients.clear();
  }
}

type UnaryCallback = (err: grpc.ServiceError | null, value?: unknown) => void;

/** A ServiceError carrying the one-line message, as the callback of a failed call expects. */
function gaveUp(error: Error): grpc.ServiceError {
  return Object.assign(new Error(error.message), { code: grpc.status.UNAVAILABLE, details: error.message, metadata: new grpc.Metadata() });
}

/**
 * A stand-in for the generated client that sends each unary call to the rotation's current manager
 * and, when it fails in a way mayRetry allows, makes it again on the next one. Streaming methods
 * and the channel go to the current manager's client as they are (ApiClient.watch resumes itself).
 */
export function failoverClient<C extends object>(
  rotation: ManagerRotation<C>,
  unaryMethods: ReadonlySet<string>,
  connected: (client: C) => Promise<ConnectOutcome> = () => Promise.resolve('ready'),
): C {
  return new Proxy({} as C, {
    get(_target, property) {
      const client = rotation.current();
      const value: unknown = Reflect.get(client, property);
      if (typeof property !== 'string' || typeof value !== 'function') return value;
      if (!unaryMethods.has(property)) return (value as (...a: unknown[]) => unknown).bind(client);
      return (...args: unknown[]) => {
        const callback = args.at(-1) as UnaryCallback;
        const head = args.slice(0, -1);
        const failed = (reason: string): void => {
          const next = rotation.advance(reason);
          if (next instanceof Error) return callback(gaveUp(next));
          setTimeout(attempt, next);
        };
        const attempt = (): void => {
          const target = rotation.current();
          connected(target).then(
            // A failed connection is sent the call all the same: grpc-js fails it at once, never
            // sent, with the reason (refused, no socket) that the user is told.
            (outcome) => (outcome === 'timeout' ? failed(`no connection within ${CONNECT_WAIT_MS / 1000} s`) : send(target)),
            (err: unknown) => failed(failureReason(err as Error)),
          );
        };
        // Only once the connection is up or has failed, so that a request that may not be repeated
        // is never left queued on a manager that then turns out unreachable.
        const send = (target: C): void => {
          (Reflect.get(target, property) as (...a: unknown[]) => unknown).apply(target, [
            ...head,
            (err: grpc.ServiceError | null, response?: unknown) => {
              if (!err) {
                rotation.answered();
                return callback(null, response);
              }
              if (!mayRetry(property, err)) return callback(err);
              failed(failureReason(err));
            },
          ]);
        };
        attempt();
      };
    },
  });
}
