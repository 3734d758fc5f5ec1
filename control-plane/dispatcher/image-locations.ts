// Where images are: the leader's view of every connected node's image inventory, as the agents
// report it over their sessions, and the choice of peers for a node that needs an image. Memory
// only and pure (no I/O): a node's entry comes with its session and goes with it, and a new leader
// hears every inventory again as the agents register with it.
import { isSha256Digest } from '../../common/images/digest.js';
import { MAX_LOCATION_PEERS, type ImageHolding, type ImageLocation, type PeerRef } from '../../common/images/peer-messages.js';
import { parseReference } from '../../common/images/reference.js';

interface NodeImages {
  /** The session the entry came with: an older session of the node ending must not drop a newer one's. */
  owner: object;
  /** Where the node serves its blobs; undefined: it holds images but serves none. */
  address: string | undefined;
  images: ImageHolding[];
}

/** One image (a reference and its manifest) with the nodes that hold it, for `tsctl image ls`. */
export interface HeldImage extends ImageHolding {
  nodes: string[];
}

export class ImageLocations {
  private readonly nodes = new Map<string, NodeImages>();

  /** `random` orders equal peers, so that nodes needing one image do not all ask the same holder. */
  constructor(private readonly random: () => number = Math.random) {}

  /** A node's session (`owner`) began: its inventory follows; until then it holds nothing here. */
  connected(node: string, address: string | undefined, owner: object): void {
    this.nodes.set(node, { owner, address, images: [] });
  }

  /** A node's whole inventory (already validated), replacing what it reported before on that session. */
  report(node: string, owner: object, images: ImageHolding[]): void {
    const entry = this.nodes.get(node);
    if (entry?.owner === owner) entry.images = images;
  }

  /** The node's session ended: it is no longer a peer, and its images are no longer counted. */
  disconnected(node: string, owner: object): void {
    if (this.nodes.get(node)?.owner === owner) this.nodes.delete(node);
  }

  /** This manager no longer holds the sessions (it stopped leading): the next leader hears the inventories. */
  clear(): void {
    this.nodes.clear();
  }

  /**
   * Who can give `reference` (normalised, or a manifest digest) to `asker`: the manifest digest and
   * the other nodes holding it that serve blobs. A tag that holders resolve differently goes to the
   * manifest most of them hold (the smallest digest on a tie), so every asker gets the same answer.
   */
  locate(reference: string, asker: string): ImageLocation | undefined {
    const wanted = matcher(reference);
    const byDigest = new Map<string, PeerRef[]>();
    for (const [nodeName, entry] of this.nodes) {
      if (nodeName === asker || entry.address === undefined) continue;
      const holding = entry.images.find(wanted);
      if (!holding) continue;
      const peers = byDigest.get(holding.manifestDigest) ?? [];
      peers.push({ nodeName, address: entry.address });
      byDigest.set(holding.manifestDigest, peers);
    }
    let best: [string, PeerRef[]] | undefined;
    for (const candidate of [...byDigest].sort(([a], [b]) => a.localeCompare(b))) {
      if (!best || candidate[1].length > best[1].length) best = candidate;
    }
    if (!best) return undefined;
    return { manifestDigest: best[0], peers: this.shuffled(best[1]).slice(0, MAX_LOCATION_PEERS) };
  }

  /** Every image some connected node holds, with the nodes holding it (sorted), by reference. */
  held(): HeldImage[] {
    const images = new Map<string, HeldImage>();
    for (const [nodeName, entry] of this.nodes) {
      for (const holding of entry.images) {
        const key = `${holding.reference}\n${holding.manifestDigest}`;
        const image = images.get(key) ?? { ...holding, nodes: [] };
        image.nodes.push(nodeName);
        images.set(key, image);
      }
    }
    return [...images.values()]
      .map((image) => ({ ...image, nodes: image.nodes.sort() }))
      .sort((a, b) => a.reference.localeCompare(b.reference) || a.manifestDigest.localeCompare(b.manifestDigest));
  }

  private shuffled(peers: PeerRef[]): PeerRef[] {
    const out = [...peers].sort((a, b) => a.nodeName.localeCompare(b.nodeName));
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}

/**
 * Which holding stands for the reference: by tag, the same normalised reference; by digest
 * ("name@sha256:…" or a bare digest), any holding of that manifest or index, whatever its name —
 * the content is the digest's, and the receiver verifies it.
 */
function matcher(reference: string): (holding: ImageHolding) => boolean {
  const digest = isSha256Digest(reference) ? reference : parseReference(reference).digest;
  if (digest !== undefined) return (h) => h.manifestDigest === digest || h.indexDigest === digest;
  return (h) => h.reference === reference;
}
