// The native NETLINK_ROUTE transport (native/netlink*.cc) with errors that say what failed where.
// Opening a socket in a namespace is synchronous (about 20 µs, npm run bench:netlink; setns is per
// thread). Batches run on the libuv pool: most take about 0.1 ms, but creating a veth pair takes
// about 1 ms of kernel time, which would otherwise stall the event loop.

import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { getSystemErrorName } from 'node:util';
import { SHIM_PATH } from '../../runtime/native.js';

/** The kernel's answer to one request. */
export interface NetlinkOutcome {
  /** 0 on success, else a positive errno. */
  errno: number;
  /** strerror text of errno ('' on success). */
  message: string;
  /** The kernel's extended-ack text, e.g. "Nexthop has invalid gateway" ('' when none). */
  extack: string;
  /** Messages the request produced (a RTM_GETLINK's RTM_NEWLINK); usually none. */
  replies: Buffer[];
}

interface NetlinkBinding {
  netlinkOpen?(netnsPath: string | null): number;
  netlinkTransact?(fd: number, requests: Buffer[]): NetlinkOutcome[];
  netlinkTransactAsync?(fd: number, requests: Buffer[]): Promise<NetlinkOutcome[]>;
}

// The addon is already loaded by the runtime's face (agent/runtime/native.ts) from the directory
// the shim sits in; require returns that same module instance.
const binding = createRequire(import.meta.url)(path.join(path.dirname(SHIM_PATH), 'tessera_native.node')) as NetlinkBinding;

function native<K extends keyof NetlinkBinding>(name: K): NonNullable<NetlinkBinding[K]> {
  const fn = binding[name];
  if (fn === undefined) throw new Error(`tessera_native addon lacks ${name}: rebuild it with \`npx node-gyp rebuild\``);
  return fn as NonNullable<NetlinkBinding[K]>;
}

/** A request together with what to call it in an error ("addr add 10.0.0.2/24 dev eth0"). */
export interface NetlinkRequest {
  bytes: Buffer;
  what: string;
  /** Errnos that mean "already as wanted" for this request (e.g. EEXIST); not reported as failures. */
  tolerate?: string[];
}

export class NetlinkError extends Error {
  override name = 'NetlinkError';
  constructor(
    /** Where the requests ran: a netns path, or "the agent's namespace". */
    readonly namespace: string,
    readonly what: string,
    /** errno name, e.g. 'EEXIST'. */
    readonly code: string,
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

export function describeNamespace(netnsPath: string | null): string {
  return netnsPath === null ? "the agent's network namespace" : `network namespace ${netnsPath}`;
}

/** A NETLINK_ROUTE socket bound to one network namespace for its whole life. */
export class NetlinkSocket {
  private fd: number | undefined;
  /** Batches in flight on the pool; close() waits for them, as they use the fd. */
  private inFlight = 0;
  private closeRequested = false;
  /**
   * Batches on one socket run one after another: each reads answers until its own are in, and
   * would swallow another's if two read at once.
   */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    fd: number,
    readonly netnsPath: string | null,
  ) {
    this.fd = fd;
  }

  /** Opens the socket inside the namespace at netnsPath (e.g. /proc/PID/ns/net), or in ours when null. */
  static open(netnsPath: string | null): NetlinkSocket {
    try {
      return new NetlinkSocket(native('netlinkOpen')(netnsPath), netnsPath);
    } catch (error) {
      const e = error as Error & { code?: string; errno?: number };
      throw new NetlinkError(
        describeNamespace(netnsPath),
        'open netlink socket',
        e.code ?? 'EUNKNOWN',
        e.errno ?? 0,
        `netlink in ${describeNamespace(netnsPath)}: ${e.message}`,
      );
    }
  }

  /** Sends the requests as one batch (on the libuv pool) and returns the kernel's answer to each; all are attempted. */
  async transact(requests: Buffer[]): Promise<NetlinkOutcome[]> {
    const fd = this.openFd();
    this.inFlight++;
    const work = (): Promise<NetlinkOutcome[]> => native('netlinkTransactAsync')(fd, requests);
    const result = this.queue.then(work, work);
    // The caller gets the error through `result`; the queue only orders the next work after it.
    this.queue = result.catch(() => undefined);
    try {
      return await result;
    } finally {
      this.inFlight--;
      if (this.closeRequested && this.inFlight === 0) this.close();
    }
  }

  /** transact on the calling thread, for batches known to be cheap (tests, benchmarks). */
  transactSync(requests: Buffer[]): NetlinkOutcome[] {
    const fd = this.openFd();
    if (this.inFlight > 0) throw new Error(`netlink socket in ${describeNamespace(this.netnsPath)} has batches in flight`);
    return native('netlinkTransact')(fd, requests);
  }

  /**
   * Sends the requests as one batch; throws a NetlinkError naming the first failed request (not
   * counting tolerated errnos), the namespace and the errno text. Returns every outcome.
   */
  async run(requests: NetlinkRequest[]): Promise<NetlinkOutcome[]> {
    return this.check(requests, await this.transact(requests.map((r) => r.bytes)));
  }

  runSync(requests: NetlinkRequest[]): NetlinkOutcome[] {
    return this.check(requests, this.transactSync(requests.map((r) => r.bytes)));
  }

  /** Closes the socket now, or once the batches in flight are answered. */
  close(): void {
    if (this.fd === undefined) return;
    if (this.inFlight > 0) {
      this.closeRequested = true;
      return;
    }
    closeSync(this.fd);
    this.fd = undefined;
  }

  private openFd(): number {
    if (this.fd === undefined || this.closeRequested) throw new Error(`netlink socket in ${describeNamespace(this.netnsPath)} is closed`);
    return this.fd;
  }

  private check(requests: NetlinkRequest[], outcomes: NetlinkOutcome[]): NetlinkOutcome[] {
    const failures = outcomes.flatMap((o, i) => {
      const request = requests[i];
      if (o.errno === 0 || request === undefined) return [];
      const code = getSystemErrorName(-o.errno);
      return request.tolerate?.includes(code) ? [] : [{ request, outcome: o, code }];
    });
    const first = failures[0];
    if (first !== undefined) {
      const where = describeNamespace(this.netnsPath);
      const detail = first.outcome.extack ? ` (${first.outcome.extack})` : '';
      const more =
        failures.length > 1
          ? `; also failed: ${failures
              .slice(1)
              .map((f) => `${f.request.what}: ${f.outcome.message}`)
              .join('; ')}`
          : '';
      throw new NetlinkError(
        where,
        first.request.what,
        first.code,
        first.outcome.errno,
        `${first.request.what} in ${where}: ${first.outcome.message} (${first.code})${detail}${more}`,
      );
    }
    return outcomes;
  }
}

/** Opens a socket in the namespace, sends one batch, closes it: the per-call form of NetlinkSocket. */
export async function netlinkBatch(netnsPath: string | null, requests: Buffer[]): Promise<NetlinkOutcome[]> {
  const socket = NetlinkSocket.open(netnsPath);
  try {
    return await socket.transact(requests);
  } finally {
    socket.close();
  }
}

/** netlinkBatch on the calling thread. */
export function netlinkBatchSync(netnsPath: string | null, requests: Buffer[]): NetlinkOutcome[] {
  const socket = NetlinkSocket.open(netnsPath);
  try {
    return socket.transactSync(requests);
  } finally {
    socket.close();
  }
}
