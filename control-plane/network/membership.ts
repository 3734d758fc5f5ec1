// Which overlay networks a service (and so each of its tasks) is on. Shared by the allocator, which
// hands out addresses, and the dispatcher, which tells nodes what to program: both must agree.
import type { Network, ServiceSpec } from '../../common/resources/types.js';
import { INGRESS_NETWORK_ID } from '../../common/network/node-network-view.js';
import { networkId } from './types.js';

export interface ResolvedNetworks {
  /** Network ids in attachment order: declared/default networks first, ingress last. */
  ids: string[];
  problems: string[];
}

/** Ports published through the routing mesh (mode ingress, the default). */
export function meshPorts(spec: ServiceSpec): Array<{ published: number; target: number; protocol: 'tcp' | 'udp' }> {
  return (spec.ports ?? [])
    .filter((p): p is typeof p & { published: number } => p.published !== undefined && (p.mode ?? 'ingress') === 'ingress')
    .map((p) => ({ published: p.published, target: p.target, protocol: p.protocol ?? 'tcp' }));
}

/**
 * A service's networks: the ones it names (a Network of its stack, else one of the default stack,
 * like an external network), or its stack's default network when it names none; plus ingress
 * when it publishes ports through the routing mesh.
 */
export function resolveServiceNetworks(stack: string, serviceName: string, spec: ServiceSpec, declared: ReadonlySet<string>): ResolvedNetworks {
  const ids: string[] = [];
  const problems: string[] = [];
  const attachments = spec.networks ?? [];
  if (attachments.length === 0) {
    ids.push(networkId(stack, 'default'));
  } else {
    for (const attachment of attachments) {
      const own = networkId(stack, attachment.name);
      const external = networkId('', attachment.name);
      const id = declared.has(own) ? own : declared.has(external) ? external : undefined;
      if (id === undefined) {
        problems.push(
          `service ${stack ? `${stack}/` : ''}${serviceName}: network "${attachment.name}" is not defined in stack "${stack}" (nor in the default stack)`,
        );
      } else if (!ids.includes(id)) {
        ids.push(id);
      }
    }
  }
  if (meshPorts(spec).length > 0) ids.push(INGRESS_NETWORK_ID);
  return { ids, problems };
}

export function declaredNetworkIds(networks: readonly Network[]): Set<string> {
  return new Set(networks.map((n) => networkId(n.metadata.stack, n.metadata.name)));
}
