// The image side of the agent's dispatcher session: reports this node's image inventory (whole,
// at every new session and after every change), asks where an image is (ImageLocate →
// ImageLocation), and takes the cluster's revoked serials for this node's blob service.
// Everything the manager sends is validated before it is believed.
import type { AgentMessage } from '../../proto/gen/tessera/dispatcher/v1/AgentMessage.js';
import type { ImageHolding as ImageHoldingMessage } from '../../proto/gen/tessera/dispatcher/v1/ImageHolding.js';
import type { ManagerMessage__Output } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';
import { type ImageHolding, type ImageLocation, parseLocation, parseRevocations } from '../../common/images/peer-messages.js';

export interface ImageChannelOptions {
  /** What the node's store holds now. */
  inventory: () => Promise<ImageHolding[]>;
  /** The cluster's revoked serials, each time a manager sends them. */
  onRevocations?: (serials: string[]) => void;
  log: (message: string) => void;
  /** How long a locate waits for the manager's answer (default 15 s); then the node goes to the registry. */
  locateTimeoutMs?: number;
}

// Long enough for a busy manager: on the VMs (QEMU without KVM) 5 s ran out while the image sat on
// a peer, and the task failed on a registry the nodes cannot reach. Without a session a locate
// fails at once, so a manager that is gone costs nothing here.
const LOCATE_TIMEOUT_MS = 15_000;

interface PendingLocate {
  resolve: (location: ImageLocation | undefined) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class ImageChannel {
  private send: ((message: AgentMessage) => void) | undefined;
  private nextRequestId = 1;
  private readonly pending = new Map<number, PendingLocate>();
  /** Inventory reports go out one at a time, the latest state last. */
  private reporting: Promise<void> = Promise.resolve();
  private reportQueued = false;

  constructor(private readonly options: ImageChannelOptions) {}

  /** A session was established: the manager hears this node's inventory at once. */
  attach(send: (message: AgentMessage) => void): void {
    this.send = send;
    this.inventoryChanged();
  }

  /** The session ended: locates waiting on it fail now rather than at their timeout. */
  detach(reason: string): void {
    this.send = undefined;
    for (const [id, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`the session with the manager ended (${reason})`));
      this.pending.delete(id);
    }
  }

  /** The store's images changed: one report with the state after the burst. */
  inventoryChanged(): void {
    if (this.reportQueued) return;
    this.reportQueued = true;
    this.reporting = this.reporting
      .then(async () => {
        this.reportQueued = false;
        const send = this.send;
        if (!send) return; // the next session's attach reports it
        const images = await this.options.inventory();
        // The session may have changed while the store was read; the new one gets its own report.
        if (this.send === send) send({ imageInventory: { images: images.map(toWire) } });
      })
      .catch((err: unknown) => this.options.log(`image inventory not reported: ${(err as Error).message}`));
  }

  /** Which peers hold `reference`; undefined when none does; rejects without a session or an answer in time. */
  locate(reference: string): Promise<ImageLocation | undefined> {
    const send = this.send;
    if (!send) return Promise.reject(new Error('no session with a manager to ask which nodes hold it'));
    const requestId = this.nextRequestId++;
    const timeoutMs = this.options.locateTimeoutMs ?? LOCATE_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new Error(`the manager did not say within ${timeoutMs} ms which nodes hold it`));
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      send({ imageLocate: { requestId, reference } });
    });
  }

  /** Handles the manager's image messages; others are not its business. */
  onMessage(message: ManagerMessage__Output): void {
    if (message.kind === 'imageLocation' && message.imageLocation) {
      const answer = message.imageLocation;
      const requestId = Number(answer.requestId);
      const waiter = this.pending.get(requestId);
      if (!waiter) return; // timed out meanwhile, or not ours: nothing waits for it
      this.pending.delete(requestId);
      clearTimeout(waiter.timer);
      try {
        waiter.resolve(parseLocation(answer, 'image location from the manager'));
      } catch (err) {
        waiter.reject(err as Error);
      }
    }
    if (message.kind === 'peerRevocations' && message.peerRevocations) {
      try {
        this.options.onRevocations?.(parseRevocations(message.peerRevocations.serials, 'revocation list from the manager'));
      } catch (err) {
        this.options.log(`ignoring a revocation list: ${(err as Error).message}`);
      }
    }
  }
}

function toWire(holding: ImageHolding): ImageHoldingMessage {
  return {
    reference: holding.reference,
    manifestDigest: holding.manifestDigest,
    indexDigest: holding.indexDigest ?? '',
    size: holding.size,
    createdAt: holding.createdAt,
  };
}
