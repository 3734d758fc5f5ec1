// The context's list of managers, kept current (issue 20): after a call succeeds, the cluster's own
// list of managers' API addresses (ClusterInfo) replaces the context's, so that a manager added
// later is known and a removed one forgotten, and the manager that answered is tried first next
// time. Pure: context.ts reads and writes the file.
import { MAX_CONTEXT_SERVERS, type CliContext } from './context-schema.js';

/** Every address the context knows, the one to try first first. */
export function contextServers(context: CliContext): string[] {
  return [...new Set([context.server, ...(context.servers ?? [])])];
}

const HOST_PORT = /^[A-Za-z0-9.\-:[\]]{1,300}:\d{1,5}$/;

/**
 * The addresses this context can use for the managers the cluster names (host:port, the leader's
 * first); undefined when the answer gives it nothing usable, and the context keeps what it has.
 * A context with a client certificate uses them as they are. A local netns cluster's context
 * (root, no certificate) reaches its managers through their unix sockets: each address is mapped
 * to the socket of the node with that underlay address, and one it has no socket for is left out.
 */
export function serversForManagers(context: CliContext, managers: readonly string[]): string[] | undefined {
  const valid = managers.filter((m) => HOST_PORT.test(m));
  let usable: string[];
  if (context.tls) usable = valid;
  else if (context.netns) {
    const byHost = new Map(context.netns.nodes.filter((n) => n.apiSocket !== undefined).map((n) => [n.underlayAddress, n.apiSocket!]));
    usable = valid.map((m) => byHost.get(m.slice(0, m.lastIndexOf(':')))).filter((s): s is string => s !== undefined);
  } else return undefined;
  const unique = [...new Set(usable)].slice(0, MAX_CONTEXT_SERVERS);
  return unique.length > 0 ? unique : undefined;
}

/**
 * The context with `answered` first and `servers` (when known) as its list; undefined when that is
 * what it holds already, so the file is rewritten only on a change. An answering address the
 * cluster does not list stays in the list, last (see below).
 */
export function updatedContext(context: CliContext, answered: string, servers: string[] | undefined): CliContext | undefined {
  // An address that answered but that the cluster does not list is kept (last): it may reach a
  // manager through NAT or a load balancer. A removed manager that no longer answers is dropped.
  const list = servers === undefined ? contextServers(context) : [...new Set([...servers, answered])].slice(0, MAX_CONTEXT_SERVERS);
  const first = list.includes(answered) ? answered : list[0]!;
  // Nothing learnt from the cluster: only which manager goes first may change.
  if (servers === undefined) return first === context.server ? undefined : { ...context, server: first, servers: list };
  const same = first === context.server && list.length === (context.servers ?? []).length && list.every((s, i) => s === context.servers![i]);
  if (same) return undefined;
  return { ...context, server: first, servers: list };
}
