// Fetching one image's blobs from the peers the manager named: each blob from the first peer that
// gives it correctly, the next peer when one fails (unreachable, refusing, slow, or sending bytes
// that do not match the digest or the size), and an error naming every peer's failure when none
// did — the caller then goes to the registry. Nothing enters the store unverified.
import type { BlobStore } from '../blob-store.js';
import { DigestMismatchError, sha256Digest } from '../../../common/images/digest.js';
import type { ImageLocation, PeerRef } from '../../../common/images/peer-messages.js';
import type { BlobLimits } from './peer-blob-client.js';

/** What the image store needs to get an image from its peers. */
export interface PeerBlobSource {
  /** Which peers hold `reference` and the manifest it resolves to; undefined when none does. */
  locate(reference: string): Promise<ImageLocation | undefined>;
  open(peer: PeerRef, digest: string, limits: BlobLimits): AsyncIterable<Uint8Array>;
}

/**
 * Peers that may fail within one image before it goes to the registry: with the first-chunk
 * timeout this bounds the time spent on peers that are down (4 × 10 s), however many hold it.
 */
export const MAX_FAILED_PEERS = 4;

export class PeerBlobFetcher {
  /** Peers that failed once in this fetch are not asked again: a dead peer costs one timeout per image, not one per blob. */
  private readonly failed = new Set<string>();

  constructor(
    private readonly peers: readonly PeerRef[],
    private readonly source: Pick<PeerBlobSource, 'open'>,
    private readonly log: (message: string) => void,
  ) {}

  /** A small blob (manifest, index) in memory, at most `maxBytes`, checked against its digest. */
  bytes(digest: string, maxBytes: number, what: string): Promise<Uint8Array> {
    return this.fromSomePeer(what, async (peer) => {
      const parts: Uint8Array[] = [];
      for await (const chunk of this.source.open(peer, digest, { maxBytes })) parts.push(chunk);
      const bytes = Buffer.concat(parts);
      const actual = sha256Digest(bytes);
      if (actual !== digest) throw new DigestMismatchError(`${what} from peer ${peer.nodeName}`, digest, actual);
      return bytes;
    });
  }

  /** A blob streamed into the store, which checks digest and size before it keeps it. */
  async into(blobs: BlobStore, descriptor: { digest: string; size: number }, what: string): Promise<void> {
    await this.fromSomePeer(what, async (peer) => {
      const chunks = this.source.open(peer, descriptor.digest, { maxBytes: descriptor.size, expectedSize: descriptor.size });
      await blobs.ingest(descriptor, chunks, `${what} from peer ${peer.nodeName}`);
    });
  }

  private async fromSomePeer<T>(what: string, attempt: (peer: PeerRef) => Promise<T>): Promise<T> {
    const order = this.peers.filter((p) => !this.failed.has(p.nodeName));
    const failures: string[] = [];
    for (const peer of order) {
      if (this.failed.size >= MAX_FAILED_PEERS) {
        failures.push(`${this.failed.size} peers failed already, the most tried for one image`);
        break;
      }
      try {
        return await attempt(peer);
      } catch (err) {
        this.failed.add(peer.nodeName);
        const message = (err as Error).message;
        failures.push(message);
        this.log(`${what}: ${message}`);
      }
    }
    throw new Error(`${what}: no peer gave it (${failures.join('; ') || 'every peer had failed already'})`);
  }
}
