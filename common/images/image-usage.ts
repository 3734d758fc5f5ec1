// Whether an image reference as a user wrote it (a task's `image`, e.g. "busybox" or
// "host:5000/app@sha256:…") names a stored image record. Pure, so the API server can ask it
// about every task without touching the image store.
import { isSha256Digest } from './digest.js';
import { formatReference, parseReference, repositoryName } from './reference.js';
import type { ImageRecord } from './types.js';

export function referenceNamesImage(reference: string, record: ImageRecord): boolean {
  if (isSha256Digest(reference)) return record.digest === reference || record.indexDigest === reference || record.reference === reference;
  let ref;
  try {
    ref = parseReference(reference);
  } catch {
    return false; // an invalid reference names nothing (the task will fail on its own)
  }
  if (formatReference(ref) === record.reference) return true;
  if (ref.digest === undefined || isSha256Digest(record.reference)) return record.reference === ref.digest;
  // "name@sha256:…" also runs an image pulled by tag whose manifest or index has that digest.
  return repositoryName(parseReference(record.reference)) === repositoryName(ref) && (record.digest === ref.digest || record.indexDigest === ref.digest);
}
