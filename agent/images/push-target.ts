// The name an image is pushed as: `tsctl image push REF [TARGET]` pushes REF under TARGET (Docker's
// `tag` and `push` in one), or under REF itself when no TARGET is given. Pure.
import { type ImageReference, InvalidReferenceError, namesRegistry, parseReference } from '../../common/images/reference.js';
import { isSha256Digest } from '../../common/images/digest.js';

/**
 * The registry, repository and tag to push to. A name without a registry is refused rather than
 * sent to Docker Hub by default: pushing is publishing, so where to is said outright.
 */
export function pushTarget(reference: string, target: string | undefined): ImageReference & { tag: string } {
  const name = target ?? reference;
  const which = target === undefined ? 'the image reference' : 'the target';
  if (isSha256Digest(name)) throw new InvalidReferenceError(name, `${which} is a bare digest; give a target such as 127.0.0.1:5000/team/app:v1`);
  const parsed = parseReference(name);
  if (!namesRegistry(name)) {
    throw new InvalidReferenceError(
      name,
      `${which} names no registry (it would go to Docker Hub); give a target with a registry, e.g. registry.example:5000/${parsed.repository.replace(/^library\//, '')}:${parsed.tag ?? 'latest'}, or docker.io/... to push to Docker Hub`,
    );
  }
  if (parsed.digest !== undefined) {
    if (target !== undefined) throw new InvalidReferenceError(name, 'a push target names a tag, not a digest (the digest is what the registry answers)');
    throw new InvalidReferenceError(name, 'an image named by digest is pushed under a tag: give a target such as 127.0.0.1:5000/team/app:v1');
  }
  return { registry: parsed.registry, repository: parsed.repository, tag: parsed.tag ?? 'latest' };
}

/**
 * The repository a push may mount blobs from: the one the image was pulled from, when it is on
 * the target's registry (a mount never crosses registries) and is not the target itself.
 */
export function mountSource(storedReference: string, target: ImageReference): string | undefined {
  // An image stored without a name (by digest) or under a name without a registry came from no registry we can name.
  if (isSha256Digest(storedReference) || !namesRegistry(storedReference)) return undefined;
  const source = parseReference(storedReference);
  return source.registry === target.registry && source.repository !== target.repository ? source.repository : undefined;
}
