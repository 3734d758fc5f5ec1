// tsctl apply / delete / diff -f FILE|DIR: native manifests and the Kubernetes subset (cli/kube/).
import type { Command } from 'commander';

import type { StackObject } from '../../common/resources/types.js';
import type { ApplyResult__Output } from '../../proto/gen/tessera/api/v1/ApplyResult.js';
import type { ApiClient } from '../client.js';
import { clientRunner } from '../with-client.js';
// The manifest reader (with the resource schemas) loads when a command reads files, not at every tsctl command's start.
import type { LoadResult } from '../manifest/load.js';
import { objectLabel, renderChange, type ObjectChange, type PlannedAction } from '../manifest/object-diff.js';
import { DEFAULT_FOLLOW_TIMEOUT_MS, followUntilConverged, parseDuration } from '../output/follow-services.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

interface FileOptions {
  filename: string;
  lenient?: boolean;
}

async function load(options: FileOptions): Promise<LoadResult> {
  const { formatIssue, loadManifests } = await import('../manifest/load.js');
  const result = await loadManifests(options.filename, { lenient: options.lenient === true });
  for (const warning of result.warnings) process.stderr.write(`warning: ${formatIssue(warning)}\n`);
  if (result.objects.length === 0) throw new Error(`${options.filename}: no objects to apply`);
  return result;
}

/** The stacks the files are about: --prune deletes what else is in them. */
export function stacksOf(objects: readonly StackObject[]): string[] {
  return [...new Set(objects.map((o) => o.metadata.stack ?? ''))].sort();
}

function resultLabel(r: ApplyResult__Output): string {
  return objectLabel({ kind: r.ref?.kind ?? '', stack: r.ref?.stack ?? '', name: r.ref?.name ?? '' });
}

export function registerApplyCommands(program: Command): void {
  const withClient = clientRunner(program);

  program
    .command('apply')
    .description('create or update the objects in manifest files (native or Kubernetes; a directory is read recursively)')
    .requiredOption('-f, --filename <path>', 'manifest file (multi-document YAML or JSON) or directory')
    .option('--dry-run', 'validate on the server and show what would change, without changing anything')
    .option('--prune', "also delete the objects of the files' stacks that the files no longer contain (in the same transaction)")
    .option('--lenient', 'Kubernetes fields that cannot be honoured become warnings and are dropped, instead of errors')
    .option('-d, --detach', 'return once the objects are applied, without following the services until they converge')
    .option('--timeout <duration>', 'give up waiting for the services to converge after this long (e.g. 90s, 5m)', `${DEFAULT_FOLLOW_TIMEOUT_MS / 1000}s`)
    .action(async (options: FileOptions & { dryRun?: boolean; prune?: boolean; detach?: boolean; timeout: string }) => {
      const timeoutMs = parseDuration(options.timeout);
      const { objects } = await load(options);
      await withClient(async (client) => {
        const res = await client.apply({
          objectsJson: objects.map((o) => JSON.stringify(o)),
          dryRun: options.dryRun === true,
          pruneStacks: options.prune ? stacksOf(objects) : [],
        });
        for (const r of res.results) out(`${resultLabel(r)} ${r.action}${options.dryRun ? ' (dry run)' : ''}`);
        if (options.dryRun) return;
        // Live progress: follow the services until they converge (throws naming those that do not).
        await followUntilConverged(client, res.results, {
          detach: options.detach === true,
          timeoutMs,
          out: process.stdout,
          isTTY: process.stdout.isTTY === true,
        });
      });
    });

  program
    .command('delete')
    .description('delete the objects named in manifest files (native or Kubernetes)')
    .requiredOption('-f, --filename <path>', 'manifest file or directory')
    .option('--lenient', 'Kubernetes fields that cannot be honoured become warnings instead of errors')
    .action(async (options: FileOptions) => {
      const { objects } = await load(options);
      await withClient(async (client) => {
        const res = await client.delete({
          refs: objects.map((o) => ({ kind: o.kind, stack: o.metadata.stack ?? '', name: o.metadata.name })),
        });
        for (const r of res.deleted) out(`${objectLabel({ kind: r.kind, stack: r.stack, name: r.name })} deleted`);
        for (const r of res.notFound) out(`${objectLabel({ kind: r.kind, stack: r.stack, name: r.name })} not found`);
      });
    });

  program
    .command('diff')
    .description("show what apply would change, as a diff of each object's spec; exit 0 when nothing would change, 1 when something would, 2 on errors")
    .requiredOption('-f, --filename <path>', 'manifest file or directory')
    .option('--prune', 'also show the objects apply --prune would delete')
    .option('--lenient', 'Kubernetes fields that cannot be honoured become warnings instead of errors')
    .action(async (options: FileOptions & { prune?: boolean }) => {
      try {
        const differs = await withClient((client) => diff(client, options));
        process.exitCode = differs ? 1 : 0;
      } catch (error) {
        // Like kubectl diff: 1 means "there are differences", so errors use 2.
        process.stderr.write(`error: ${(error as Error).message}\n`);
        process.exit(2);
      }
    });
}

async function diff(client: ApiClient, options: FileOptions & { prune?: boolean }): Promise<boolean> {
  const { objects } = await load(options);
  // The server validates and plans exactly as apply would; nothing is written.
  const res = await client.apply({
    objectsJson: objects.map((o) => JSON.stringify(o)),
    dryRun: true,
    pruneStacks: options.prune ? stacksOf(objects) : [],
  });
  const stored = new Map<string, StackObject>();
  const listed = new Set<string>();
  const current = async (kind: string, stack: string, name: string): Promise<StackObject | undefined> => {
    if (!listed.has(`${kind}/${stack}`)) {
      listed.add(`${kind}/${stack}`);
      const page = await client.list({ kind, stack, allStacks: false });
      for (const json of page.objectsJson) {
        const object = JSON.parse(json) as StackObject;
        stored.set(`${kind}/${stack}/${object.metadata.name}`, object);
      }
    }
    return stored.get(`${kind}/${stack}/${name}`);
  };
  let differs = false;
  for (const r of res.results) {
    const kind = r.ref?.kind ?? '';
    const stack = r.ref?.stack ?? '';
    const name = r.ref?.name ?? '';
    const action = r.action as PlannedAction;
    const change: ObjectChange = { kind, stack, name, action };
    if (action !== 'pruned') change.planned = JSON.parse(r.objectJson) as StackObject;
    if (action === 'configured' || action === 'pruned') {
      const now = await current(kind, stack, name);
      if (now) change.current = now;
    }
    const rendered = renderChange(change);
    process.stdout.write(rendered.text);
    differs ||= rendered.differs;
  }
  return differs;
}
