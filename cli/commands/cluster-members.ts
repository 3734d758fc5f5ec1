// `tsctl cluster members` (each manager of the replicated store: id, address, role, term, commit
// and applied index) and `tsctl cluster members remove NAME`.
import type { Command } from 'commander';

import { MembersApiClient, grpcMessage, type ClusterMemberRow } from '../../control-plane/raft/host/members-api.js';
import { readContext } from '../context.js';
import { candidateServers, securityFor } from '../connection.js';
import { failureReason, neverSent, noManagerMessage } from '../failover.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

export function formatMembers(rows: ClusterMemberRow[]): string[] {
  const header = ['ID', 'ADDRESS', 'ROLE', 'TERM', 'COMMIT', 'APPLIED'];
  const cells = rows.map((m) => [m.id, m.address, m.role, String(m.term), String(m.commit), String(m.applied)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  return [header, ...cells].map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd(),
  );
}

export function registerClusterMembersCommands(program: Command, cluster: Command): void {
  const withMembers = async <T>(fn: (c: MembersApiClient) => Promise<T>): Promise<T> => {
    const context = await readContext();
    // The context's managers in turn (issue 20): a listing is a read, and a change that reached no
    // manager (no connection) may go to the next; one that may have been received is not repeated.
    const addresses = candidateServers(program.opts<{ server?: string }>().server, context);
    const reasons = new Map<string, string>();
    for (const address of addresses) {
      // The root socket in plaintext, a manager's port with the context's certificate.
      const client = new MembersApiClient(address, securityFor(address, context?.tls));
      try {
        return await fn(client);
      } catch (err) {
        const failed = err as { code?: number; details?: string; message?: string };
        if (addresses.length === 1 || !neverSent(failed)) throw new Error(grpcMessage(err));
        reasons.set(address, failureReason(failed));
      } finally {
        client.close();
      }
    }
    throw new Error(noManagerMessage(reasons));
  };
  const members = cluster
    .command('members')
    .description('list the managers of the replicated store (role, term, commit and applied index)')
    .action(() => withMembers(async (c) => formatMembers(await c.members()).forEach((l) => out(l))));
  members
    .command('remove <name>')
    .description('remove a manager from the replicated store')
    .action((name: string) =>
      withMembers(async (c) => {
        const index = await c.change('remove', name);
        out(`manager ${name} removed (log index ${index})`);
      }),
    );
}
