// ImageList across nodes: the answering node's own records, each with the nodes that hold it, and
// the images only other nodes hold (as their agents reported them to the leader). Pure.
import type { ImageSummary } from '../../proto/gen/tessera/api/v1/ImageSummary.js';
import type { ImageRecord } from '../../common/images/types.js';
import type { HeldImage } from '../dispatcher/image-locations.js';

/**
 * `held` is undefined where the inventories are not known (a manager that does not lead): the
 * local records are listed with this node alone.
 */
export function imageListOf(local: ImageRecord[], held: HeldImage[] | undefined, selfNode: string | undefined): ImageSummary[] {
  const self = selfNode === undefined ? [] : [selfNode];
  const key = (reference: string, digest: string): string => `${reference}\n${digest}`;
  const holders = new Map((held ?? []).map((image) => [key(image.reference, image.manifestDigest), image]));
  const listed = new Set<string>();
  const images: ImageSummary[] = local.map((record) => {
    const k = key(record.reference, record.digest);
    listed.add(k);
    const nodes = new Set([...self, ...(holders.get(k)?.nodes ?? [])]);
    return { reference: record.reference, digest: record.digest, size: record.size, createdAt: record.createdAt, nodes: [...nodes].sort() };
  });
  for (const image of held ?? []) {
    if (listed.has(key(image.reference, image.manifestDigest))) continue;
    images.push({ reference: image.reference, digest: image.manifestDigest, size: image.size, createdAt: image.createdAt, nodes: image.nodes });
  }
  return images.sort((a, b) => (a.reference ?? '').localeCompare(b.reference ?? '') || (a.digest ?? '').localeCompare(b.digest ?? ''));
}
