// The image side of one agent session on the leader's dispatcher: the node's inventory goes into
// ImageLocations, its locate requests are answered from it, and it is sent the cluster's revoked
// serials (its own blob service refuses them). A message that does not validate is logged and
// dropped: the session, and the node's tasks, go on.
import type { AgentMessage__Output } from '../../proto/gen/tessera/dispatcher/v1/AgentMessage.js';
import type { ManagerMessage } from '../../proto/gen/tessera/dispatcher/v1/ManagerMessage.js';
import { parseInventory, parsePeerAddress, parsePeerReference } from '../../common/images/peer-messages.js';
import type { ImageLocations } from './image-locations.js';

export interface ImageDispatchDeps {
  locations: ImageLocations;
  /** The cluster's revoked certificate serials and their changes; absent: none are sent. */
  revocations?: { serials(): string[]; subscribe(listener: () => void): () => void };
  log: (message: string) => void;
}

export interface ImageSession {
  onMessage(message: AgentMessage__Output): void;
  end(): void;
}

export function startImageSession(
  deps: ImageDispatchDeps,
  node: string,
  peerAddress: string,
  owner: object,
  send: (message: ManagerMessage) => void,
): ImageSession {
  let address: string | undefined;
  try {
    address = peerAddress === '' ? undefined : parsePeerAddress(peerAddress, `register of ${node}`);
  } catch (err) {
    deps.log(`dispatcher: ${(err as Error).message}; the node is not used as an image peer`);
  }
  deps.locations.connected(node, address, owner);
  let lastRevocations: string | undefined;
  const sendRevocations = (): void => {
    const serials = deps.revocations?.serials() ?? [];
    const key = serials.join(',');
    if (key === lastRevocations) return;
    lastRevocations = key;
    send({ peerRevocations: { serials } });
  };
  sendRevocations();
  const unsubscribe = deps.revocations?.subscribe(sendRevocations);
  return {
    onMessage: (message) => {
      if (message.kind === 'imageInventory' && message.imageInventory) {
        try {
          deps.locations.report(node, owner, parseInventory(message.imageInventory.images, `image inventory of ${node}`));
        } catch (err) {
          // Nothing of a bad report is kept: the node counts as holding nothing until a good one.
          deps.locations.report(node, owner, []);
          deps.log(`dispatcher: ${(err as Error).message}`);
        }
      }
      if (message.kind === 'imageLocate' && message.imageLocate) {
        const { requestId } = message.imageLocate;
        let location;
        try {
          location = deps.locations.locate(parsePeerReference(message.imageLocate.reference, `image locate from ${node}`), node);
        } catch (err) {
          deps.log(`dispatcher: ${(err as Error).message}`);
        }
        // An empty answer (no digest, no peers) sends the node to its registry.
        send({ imageLocation: { requestId, manifestDigest: location?.manifestDigest ?? '', peers: location?.peers ?? [] } });
      }
    },
    end: () => {
      unsubscribe?.();
      deps.locations.disconnected(node, owner);
    },
  };
}
