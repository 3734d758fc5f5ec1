// `tsctl stack deploy -c FILE [-c OVERRIDE ...] NAME`: Compose files → the native objects of stack
// NAME. --dry-run prints them as multi-document YAML (with the builds it would run as comments); a
// real deploy first builds the images of services with build: (cli/compose/build-run.ts), then
// sends the objects, the built images pinned by digest, through the Apply RPC, and refuses (applying nothing) while the files need what the server cannot take yet,
// then follows the services until they converge (unless --detach).
// `tsctl stack ls|services|ps|rm`: the stacks, as `docker stack ...` shows and removes them.

import type { Command } from 'commander';
import { stringify } from 'yaml';
import type { StackObject } from '../../common/resources/types.js';
import { unhonouredFields } from '../../control-plane/api/unhonoured-fields.js';
import type { Node, Service, Task } from '../../common/resources/types.js';
import type { ApiClient } from '../client.js';
// The Compose reader and the build runner (with the resource schemas) load when deploy runs, not at
// every tsctl command's start.
import type { RunBuild } from '../compose/build-run.js';
import { renderBuildPlan } from '../compose/build-table.js';
import { clientRunner } from '../with-client.js';
import { DEFAULT_FOLLOW_TIMEOUT_MS, followUntilConverged, parseDuration } from '../output/follow-services.js';
import { listKind, listStackObjects, removeStacks, stackNotFound } from './stack-objects.js';
import { parsePsFilters, renderStackList, renderStackPs, renderStackServices } from './stack-tables.js';

/** Multi-document YAML, one object per document, in a stable order (kind, then name). */
export function renderStackYaml(objects: readonly StackObject[]): string {
  const order = ['Network', 'Volume', 'Secret', 'Config', 'Service'];
  const sorted = [...objects].sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind) || a.metadata.name.localeCompare(b.metadata.name));
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

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

export interface StackCommandDeps {
  /**
   * How `stack deploy` builds the images of services with build:, over the command's client (the
   * Build RPC; cli/build/run-build.ts). Without it a deploy that needs a build is refused before
   * anything is applied.
   */
  connectBuilder?: (client: ApiClient) => RunBuild;
}

export function registerStackCommands(program: Command, deps: StackCommandDeps = {}): void {
  const withClient = clientRunner(program);
  const out = (text: string) => process.stdout.write(text);

  const stack = program.command('stack').description('deploy Compose files as stacks, list and remove stacks');
  stack
    .command('deploy')
    .description('deploy Compose files as stack NAME (every key is honoured or rejected; see docs/compose.md) and follow it until it converges')
    .argument('<name>', 'the stack name')
    .requiredOption('-c, --compose-file <file>', 'Compose file; repeat to merge overrides in order', collect)
    .option('--dry-run', 'print the native objects as multi-document YAML, and the builds it would run as comments; build and change nothing')
    .option('-d, --detach', 'return once the objects are applied, without waiting for the services to converge')
    .option('--timeout <duration>', 'give up waiting for convergence after this long (e.g. 90s, 5m)', `${DEFAULT_FOLLOW_TIMEOUT_MS / 1000}s`)
    .option(
      '--allow-outside-files',
      "read .env, env_file, secret and config files, build contexts and Dockerfiles outside the first Compose file's directory too (by default they must be inside it, symbolic links resolved)",
    )
    .option('--no-build', 'do not build: services with build: run their image (image:, or STACK-SERVICE) as it already is in the cluster')
    .action(
      async (
        name: string,
        options: { composeFile: string[]; dryRun?: boolean; detach?: boolean; timeout: string; allowOutsideFiles?: boolean; build: boolean },
      ) => {
        const timeoutMs = parseDuration(options.timeout);
        const [{ loadCompose }, { buildStackImages, prepareBuilds }] = await Promise.all([import('../compose/load.js'), import('../compose/build-run.js')]);
        const project = loadCompose(options.composeFile, { env: process.env, projectName: name, allowOutsideFiles: options.allowOutsideFiles === true });
        for (const warning of project.warnings) process.stderr.write(`warning: ${warning}\n`);
        if (options.dryRun) {
          // A dry run plans without the sources; what a real deploy would stop at is said, not fatal.
          if (options.build)
            for (const problem of prepareBuilds(project.builds).problems) process.stderr.write(`warning: a deploy would not build: ${problem}\n`);
          out(renderBuildPlan(project.builds, !options.build));
          out(renderStackYaml(project.objects));
          return;
        }
        const plan = planDeploy(project.objects);
        if ('refusal' in plan) throw new Error(plan.refusal);
        const builds = options.build ? project.builds : [];
        if (!options.build && project.builds.length > 0) {
          const services = project.builds.flatMap((job) => job.services).join(', ');
          process.stderr.write(`warning: --no-build: ${services} run their images as they already are in the cluster's image stores or registries\n`);
        }
        // Every input of every build is checked before connecting, so a missing Dockerfile costs nothing.
        const { problems } = prepareBuilds(builds);
        if (problems.length > 0) throw new Error(`nothing deployed: the builds cannot start:\n  ${problems.join('\n  ')}`);
        const connectBuilder = deps.connectBuilder;
        if (builds.length > 0 && connectBuilder === undefined) {
          throw new Error(
            'nothing deployed: this stack builds images (build:), and this tsctl has no image builder; build them with `tsctl build` and deploy with --no-build',
          );
        }
        await withClient(async (client) => {
          const objects =
            connectBuilder === undefined ? plan.objects : await buildStackImages(plan.objects, builds, connectBuilder(client), (line) => out(`${line}\n`));
          const res = await client.apply({ objectsJson: objects.map((o) => JSON.stringify(o)), dryRun: false });
          for (const r of res.results) out(`${(r.ref?.kind ?? '').toLowerCase()}/${name}/${r.ref?.name ?? ''} ${r.action}\n`);
          await followUntilConverged(client, res.results, {
            detach: options.detach === true,
            timeoutMs,
            out: process.stdout,
            isTTY: process.stdout.isTTY === true,
          });
        });
      },
    );

  stack
    .command('ls')
    .alias('list')
    .description('list the stacks and how many services each has')
    .action(() =>
      withClient(async (client) => {
        out(renderStackList(await listStackObjects(client, undefined)));
      }),
    );

  stack
    .command('services')
    .description('list the services of a stack with their running/desired replicas')
    .argument('<name>', 'the stack name')
    .action((name: string) =>
      withClient(async (client) => {
        const services = await listKind<Service>(client, 'Service', name);
        if (services.length === 0 && (await listStackObjects(client, name)).length === 0) throw stackNotFound(name);
        const tasks = await listKind<Task>(client, 'Task', name);
        const nodes = (await client.list({ kind: 'Node', allStacks: true })).objectsJson.map((j) => JSON.parse(j) as Node);
        out(renderStackServices(services, tasks, nodes));
      }),
    );

  stack
    .command('ps')
    .description("list the tasks of a stack's services")
    .argument('<name>', 'the stack name')
    .option('--no-trunc', 'do not shorten task errors')
    .option(
      '-f, --filter <key=value>',
      'only tasks that match: desired-state=running|shutdown|accepted, node=NAME, name=PREFIX, id=PREFIX (repeatable)',
      collect,
    )
    .action((name: string, options: { trunc: boolean; filter?: string[] }) =>
      withClient(async (client) => {
        const filters = parsePsFilters(options.filter ?? []);
        const tasks = await listKind<Task>(client, 'Task', name);
        if (tasks.length === 0 && (await listStackObjects(client, name)).length === 0) throw stackNotFound(name);
        out(renderStackPs(tasks, { now: new Date(), noTrunc: !options.trunc, filters }));
      }),
    );

  stack
    .command('rm')
    .alias('remove')
    .description('remove stacks: their services, networks, secrets, configs and volumes; waits until their tasks are gone')
    .argument('<name...>', 'stack names')
    .option('-d, --detach', 'return once the objects are deleted, without waiting for their tasks to stop')
    .option('--timeout <duration>', 'give up waiting for the tasks to stop after this long', `${DEFAULT_FOLLOW_TIMEOUT_MS / 1000}s`)
    .action((names: string[], options: { detach?: boolean; timeout: string }) =>
      withClient((client) =>
        removeStacks(client, names, { detach: options.detach === true, timeoutMs: parseDuration(options.timeout), out: (line) => out(`${line}\n`) }),
      ),
    );
}
