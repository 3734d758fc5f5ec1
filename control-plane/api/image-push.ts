// ImagePush: the answering manager's node image store sends an image to a registry, and the call
// streams the store's progress events, then the pushed image. Pushing itself is the store's
// (agent/images/registry-push.ts); here the request is checked and the store's errors become
// API errors that say which node was asked.
import * as grpc from '@grpc/grpc-js';

import type { ImageStore } from '../../common/images/types.js';
import type { ImagePushEvent } from '../../proto/gen/tessera/api/v1/ImagePushEvent.js';
import type { ImagePushRequest__Output } from '../../proto/gen/tessera/api/v1/ImagePushRequest.js';
import { ApiError, invalidArgument, notFound } from './errors.js';

/** No valid image reference is longer (name, tag and digest); anything longer is refused before it is parsed. */
const MAX_REFERENCE_CHARS = 512;

function checkReference(value: string, what: string): void {
  if (value.length > MAX_REFERENCE_CHARS) throw invalidArgument(`image push: the ${what} is longer than ${MAX_REFERENCE_CHARS} characters`);
}

/** The store's and the registry's errors as API errors; `node` names the store that was asked ("node n1"). */
function pushError(err: unknown, node: string): unknown {
  if (!(err instanceof Error)) return err;
  if (err.name === 'ImageNotFoundError') {
    return notFound(`${err.message} of ${node} (image push sends from the image store of the manager that answers; pull or load the image there first)`);
  }
  if (err.name === 'InvalidReferenceError') return invalidArgument(`image push: ${err.message}`);
  if (err.name === 'PushError') {
    const status = (err.cause as { status?: unknown } | undefined)?.status;
    // The registry refused the node's credentials: not the caller's cluster permission, but said as plainly.
    if (status === 401 || status === 403) return new ApiError(grpc.status.PERMISSION_DENIED, `${err.message} (from ${node})`);
    // Not UNAVAILABLE, which says the API itself could not be reached: the registry is what failed.
    return new ApiError(grpc.status.FAILED_PRECONDITION, `${err.message} (from ${node})`);
  }
  return err;
}

export async function pushImage(
  images: ImageStore,
  node: string,
  request: ImagePushRequest__Output,
  write: (event: ImagePushEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  if (!request.reference) throw invalidArgument('image push: missing image reference');
  checkReference(request.reference, 'image reference');
  checkReference(request.target, 'target');
  const result = await images
    .push(request.reference, {
      ...(request.target ? { target: request.target } : {}),
      ...(signal === undefined ? {} : { signal }),
      onProgress: (e) => write({ status: e.status, digest: e.digest, kind: e.kind, current: e.current, total: e.total }),
    })
    .catch((err: unknown) => {
      throw pushError(err, node);
    });
  write({ image: { reference: result.reference, digest: result.digest, size: result.size, createdAt: '' } });
}
