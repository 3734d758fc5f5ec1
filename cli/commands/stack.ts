// `tsctl stack deploy -c FILE [-c OVERRIDE ...] NAME`: Compose files → the native objects of stack
// NAME. --dry-run prints them as multi-document YAML; a real deploy sends the Services through the
// Apply RPC, and refuses (applying nothing) while the files need what the server cannot take yet.

import type { Command } from 'commander';
import { stringify } from 'yaml';
import type { StackObject } from '../../control-plane/resources/types.js';
import { unhonouredFields } from '../../control-plane/api/unhonoured-fields.js';
import { loadCompose } from '../compose/load.js';
import { connect } from '../client.js';
import { serverAddress } from '../context.js';

/** Multi-document YAML, one object per document, in a stable order (kind, then name). */
export function renderStackYaml(objects: readonly StackObject[]): string {
  const order = ['Network', 'Volume', 'Secret', 'Config', 'Service'];
  const sorted = [...objects].sort((a, b) =>
    order.indexOf(a.kind) - order.indexOf(b.kind) || a.metadata.name.localeCompare(b.metadata.name));
  return sorted.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}

/** Kinds the API server takes today; the others are translated (see --dry-run) but not deployable yet. */
const DEPLOYABLE_KINDS: ReadonlySet<StackObject['kind']> = new Set<StackObject['kind']>(['Service', 'Network', 'Secret', 'Config', 'Volume']);

/**
 * The objects to apply, or why the stack cannot be deployed yet. Which service fields the cluster
 * acts on is decided in one place, the API server's own check (unhonoured-fields.ts), so the CLI
 * refuses exactly what the server would, before anything is sent.
 */
export function planDeploy(objects: readonly StackObject[]): { objects: StackObject[] } | { refusal: string } {
  const problems: string[] = [];
  for (const o of objects) {
    if (!DEPLOYABLE_KINDS.has(o.kind)) problems.push(`${o.kind} ${o.metadata.name}: the server does not take ${o.kind} objects yet`);
    if (o.kind === 'Service') for (const problem of unhonouredFields(o)) problems.push(`Service ${o.metadata.name}: ${problem}`);
  }
  if (problems.length > 0) {
    return { refusal: `nothing deployed: this stack needs what the server cannot do yet (see it with --dry-run):\n  ${problems.join('\n  ')}` };
  }
  return { objects: [...objects] };
}

export function registerStackCommands(program: Command): void {
  const stack = program.command('stack').description('deploy Compose files as stacks');
  stack
    .command('deploy')
    .description('deploy Compose files as stack NAME (every key is honoured or rejected; see docs/compose.md)')
    .argument('<name>', 'the stack name')
    .requiredOption('-c, --compose-file <file>', 'Compose file; repeat to merge overrides in order',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .option('--dry-run', 'print the native objects as multi-document YAML and change nothing')
    .action(async (name: string, options: { composeFile: string[]; dryRun?: boolean }) => {
      const project = loadCompose(options.composeFile, { env: process.env, projectName: name });
      for (const warning of project.warnings) process.stderr.write(`warning: ${warning}\n`);
      if (options.dryRun) {
        process.stdout.write(renderStackYaml(project.objects));
        return;
      }
      const plan = planDeploy(project.objects);
      if ('refusal' in plan) throw new Error(plan.refusal);
      const client = connect(await serverAddress(program.opts<{ server?: string }>().server));
      try {
        const res = await client.apply({ objectsJson: plan.objects.map((o) => JSON.stringify(o)), dryRun: false });
        for (const r of res.results) process.stdout.write(`${(r.ref?.kind ?? '').toLowerCase()}/${name}/${r.ref?.name ?? ''} ${r.action}\n`);
      } finally {
        client.close();
      }
    });
}
