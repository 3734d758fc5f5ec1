// Fields the schema knows (Compose and the manifest share one model) but the cluster does not act
// on yet. Accepting them would silently ignore what the user asked for, so the API refuses a
// service that sets any of them, naming the field — and this list shrinks as the agent learns.
import type { Service } from '../../common/resources/types.js';

const NOT_YET: ReadonlyArray<[field: string, has: (s: Service['spec']) => boolean, why: string]> = [
  [
    'dependsOn.restart',
    (s) => (s.dependsOn ?? []).some((d) => d.restart === true),
    'restarting a service when its dependency is updated is not implemented yet',
  ],
  [
    'logging',
    (s) => s.logging?.driver !== undefined && s.logging.driver !== 'json-file' && s.logging.driver !== 'local',
    'only the json-file log driver exists',
  ],
  // Swarm picks a free node port for a host-mode port without one; the agent cannot report it back yet.
  [
    'ports.published',
    (s) => (s.ports ?? []).some((p) => p.mode === 'host' && p.published === undefined),
    'a host-mode port needs a published port: random host ports are not allocated yet',
  ],
];

/** Problems, one per unhonoured field the service sets. */
export function unhonouredFields(service: Service): string[] {
  return NOT_YET.filter(([, has]) => has(service.spec)).map(([field, , why]) => `spec.${field}: not supported by this cluster yet (${why})`);
}
