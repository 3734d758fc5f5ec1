// `tsctl stack deploy -c FILE [-c OVERRIDE ...] NAME`: Compose files → the native objects of stack
// NAME. --dry-run prints them as multi-document YAML; a real deploy sends the Services through the
// Apply RPC, and refuses (applying nothing) while the files need what the server cannot take yet.

import type { Command } from 'commander';
import { stringify } from 'yaml';
import type { Service, ServiceSpec, StackObject } from '../../control-plane/resources/types.js';
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

/** ServiceSpec fields the cluster acts on today; the rest are recorded only, so deploying would drop them. */
const SERVED_FIELDS: ReadonlySet<keyof ServiceSpec> = new Set<keyof ServiceSpec>([
  'image', 'command', 'args', 'env', 'workdir', 'user', 'hostname', 'replicas', 'ports', 'resources',
  'placement', 'restart', 'stopGracePeriodMs', 'networks',
]);

function isImplicitDefaultNetwork(o: StackObject): boolean {
  return o.kind === 'Network' && o.metadata.name === 'default' && Object.keys(o.spec).every((k) => k === 'driver');
}

/**
 * The Services to apply, or why the stack cannot be deployed yet. The implicit default network is
 * the cluster's one network, which every service is on already.
 */
export function planDeploy(objects: readonly StackObject[]): { services: Service[] } | { refusal: string } {
  const problems: string[] = [];
  const unsupportedKinds = objects.filter((o) => o.kind !== 'Service' && !isImplicitDefaultNetwork(o));
  for (const o of unsupportedKinds) {
    problems.push(`${o.kind} ${o.metadata.name}: the server does not take ${o.kind} objects yet`);
  }
  const services = objects.filter((o): o is Service => o.kind === 'Service');
  for (const s of services) {
    const fields = Object.keys(s.spec).filter((k) => !SERVED_FIELDS.has(k as keyof ServiceSpec));
    const placement = s.spec.placement;
    if (placement?.preferences || placement?.maxReplicasPerNode !== undefined) fields.push('placement.preferences/maxReplicasPerNode');
    if (s.spec.restart?.windowMs !== undefined) fields.push('restart.windowMs');
    if (s.spec.ports?.some((p) => p.mode === 'host')) fields.push('ports[].mode: host');
    const networks = s.spec.networks ?? [];
    if (networks.some((n) => n.name !== 'default' || n.aliases)) fields.push('networks other than default, or aliases');
    if (fields.length > 0) problems.push(`Service ${s.metadata.name}: the cluster does not act on ${fields.join(', ')} yet`);
  }
  if (problems.length > 0) {
    return { refusal: `nothing deployed: this stack needs what the server cannot do yet (see it with --dry-run):\n  ${problems.join('\n  ')}` };
  }
  // The default network is implied; drop the field so the Service is what today's server expects.
  return { services: services.map((s) => ({ ...s, spec: Object.fromEntries(Object.entries(s.spec).filter(([k]) => k !== 'networks')) as unknown as ServiceSpec })) };
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
        const res = await client.apply({ objectsJson: plan.services.map((s) => JSON.stringify(s)), dryRun: false });
        for (const r of res.results) process.stdout.write(`service/${name}/${r.ref?.name ?? ''} ${r.action}\n`);
      } finally {
        client.close();
      }
    });
}
