// What the manager's requests to nodes' agents (logs, top, exec) have in common: each goes over
// the node's dispatcher session and waits, by request id, for that node's answer. The dispatcher
// attaches each registered session and detaches it when it ends; a request to a node without a
// session, or whose session ends while it runs, fails with NodeUnavailableError, which the API
// turns into a notice or an UNAVAILABLE naming the node. Only the node a request was sent to may
// answer it: an id is no proof of anything, another node could guess it. Pure (no I/O).
import type { ManagerMessage } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';

export type SendToNode = (message: ManagerMessage) => void;

/** A node cannot answer a request of this manager, and why; the message names the node. */
export class NodeUnavailableError extends Error {
  constructor(
    readonly node: string,
    why: string,
  ) {
    super(`node ${node}: ${why}`);
    this.name = 'NodeUnavailableError';
  }
}

/** What every request in flight knows: the node it was sent to, the only one that may answer it. */
export interface NodeRequest {
  node: string;
}

/** The sessions of nodes and the requests in flight to them; a subclass says what failing one means. */
export abstract class NodeRequests<Pending extends NodeRequest> {
  private readonly sessions = new Map<string, SendToNode>();
  private readonly inFlight = new Map<number, Pending>();
  private nextId = 1;

  /** A node's session registered: requests for it go there (a newer session replaces an older one). */
  attach(node: string, send: SendToNode): void {
    this.detach(node, 'its session was replaced');
    this.sessions.set(node, send);
  }

  /** A node's session ended (or was replaced): its requests in flight fail with `why`. */
  detach(node: string, why: string, send?: SendToNode): void {
    if (send !== undefined && this.sessions.get(node) !== send) return; // an older session, already replaced
    this.sessions.delete(node);
    for (const [id] of this.requestsTo(node)) this.fail(id, why);
  }

  /** Told a request can no longer be answered; it is already forgotten. */
  protected abstract failed(request: Pending, error: NodeUnavailableError, id: number): void;

  /** The session to send `node`'s requests on; throws NodeUnavailableError when it has none with this manager. */
  protected sessionOf(node: string): SendToNode {
    const send = this.sessions.get(node);
    if (send === undefined) throw new NodeUnavailableError(node, 'no session with this manager (the node is down, or connected to another manager)');
    return send;
  }

  /** Keeps `request` until it is settled or fails; returns its id (never reused). */
  protected track(request: Pending): number {
    const id = this.nextId++;
    this.inFlight.set(id, request);
    return id;
  }

  /** The request `id` when `node` may answer it; undefined when it is over, or not this node's to answer. */
  protected answerable(id: number, node: string): Pending | undefined {
    const request = this.inFlight.get(id);
    return request?.node === node ? request : undefined;
  }

  protected isInFlight(id: number): boolean {
    return this.inFlight.has(id);
  }

  /** Requests in flight, to every node. */
  protected get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** The requests in flight to `node`; each may be settled or failed while this is walked. */
  protected *requestsTo(node: string): Generator<[number, Pending]> {
    for (const entry of this.inFlight) if (entry[1].node === node) yield entry;
  }

  /** Forgets the request `id`; returns it when it was still in flight. */
  protected settle(id: number): Pending | undefined {
    const request = this.inFlight.get(id);
    this.inFlight.delete(id);
    return request;
  }

  /** Forgets the request `id` and, when it was still in flight, fails it with `why`. */
  protected fail(id: number, why: string): void {
    const request = this.settle(id);
    if (request !== undefined) this.failed(request, new NodeUnavailableError(request.node, why), id);
  }
}
