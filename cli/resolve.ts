// Finds the service a user means by "NAME", "STACK/NAME" or "STACK_NAME" (Swarm's spelling).
import type { Service } from '../common/resources/types.js';

export function resolveServiceName(services: Service[], query: string, stackFlag: string | undefined): Service {
  const describe = (s: Service) => (s.metadata.stack ? `${s.metadata.stack}/${s.metadata.name}` : s.metadata.name);
  let matches: Service[];
  if (stackFlag !== undefined) {
    matches = services.filter((s) => (s.metadata.stack ?? '') === stackFlag && s.metadata.name === query);
  } else if (query.includes('/')) {
    const [stack, name] = query.split('/', 2) as [string, string];
    matches = services.filter((s) => (s.metadata.stack ?? '') === stack && s.metadata.name === name);
  } else {
    matches = services.filter((s) => s.metadata.name === query);
    if (matches.length === 0) {
      matches = services.filter((s) => s.metadata.stack && `${s.metadata.stack}_${s.metadata.name}` === query);
    }
  }
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new Error(`service "${query}" not found${stackFlag !== undefined ? ` in stack "${stackFlag}"` : ''}`);
  throw new Error(`service name "${query}" is ambiguous: ${matches.map(describe).join(', ')}; give STACK/NAME or --stack`);
}
