// `tsctl image pull|push|ls|rm|load|save|prune`: the node's image store through the API.
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type Command, InvalidArgumentError, Option } from 'commander';

import { unlessAbsent } from '../../agent/fs-errors.js';
import { formatMemory } from '../../common/resources/quantity.js';
import type { ApiClient } from '../client.js';
import { renderTable } from '../output/table.js';

type WithClient = <T>(fn: (client: ApiClient) => Promise<T>) => Promise<T>;

export interface PullEvent {
  status: string;
  digest: string;
  kind: string;
  current: number;
  total: number;
}

/** "sha256:0123456789abcdef…" → "0123456789ab", the short form Docker shows too. */
export function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

/** Bytes for people: "512 B", "1.5 MiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function describe(event: PullEvent): string {
  const id = shortDigest(event.digest);
  switch (event.status) {
    case 'downloading':
      return `${id}: downloading ${formatBytes(event.current)} / ${formatBytes(event.total)}`;
    case 'exists':
      return `${id}: already present`;
    case 'retrying':
      return `${id}: download interrupted, starting again`;
    case 'unpacking':
      return `${id}: unpacking`;
    case 'done':
      return `${id}: done`;
    default:
      return `${id}: ${event.status}`;
  }
}

function describePush(event: PullEvent): string {
  const id = shortDigest(event.digest);
  switch (event.status) {
    case 'pushing':
      return `${id}: pushing ${formatBytes(event.current)} / ${formatBytes(event.total)}`;
    case 'exists':
      return `${id}: already in the registry`;
    case 'mounted':
      return `${id}: mounted from the repository it came from`;
    case 'pushed':
      return `${id}: pushed`;
    default:
      return `${id}: ${event.status}`;
  }
}

/** How a display words the events of one kind of transfer, and which status is the one with a byte count. */
export interface TransferWords {
  describe: (event: PullEvent) => string;
  inFlight: string;
}

export const PULL_WORDS: TransferWords = { describe, inFlight: 'downloading' };
export const PUSH_WORDS: TransferWords = { describe: describePush, inFlight: 'pushing' };

/**
 * Shows pull (or push) progress. On a terminal one line per layer is redrawn in place; otherwise
 * (logs, CI) plain lines, transfers only at each quarter, so output stays readable when captured.
 */
export class PullProgressDisplay {
  private readonly order: string[] = [];
  private readonly lines = new Map<string, string>();
  private readonly quarters = new Map<string, number>();
  private drawn = 0;

  constructor(
    private readonly tty: boolean,
    private readonly write: (text: string) => void,
    private readonly words: TransferWords = PULL_WORDS,
  ) {}

  update(event: PullEvent): void {
    if (event.kind === 'config') return; // a few hundred bytes: not worth a line
    const key = event.digest;
    if (!this.lines.has(key)) this.order.push(key);
    this.lines.set(key, this.words.describe(event));
    if (this.tty) {
      this.redraw();
      return;
    }
    if (event.status === this.words.inFlight) {
      const quarter = event.total > 0 ? Math.floor((event.current / event.total) * 4) : 4;
      const seen = this.quarters.get(key);
      if (seen !== undefined && quarter <= seen) return;
      this.quarters.set(key, quarter);
    }
    this.write(`${this.words.describe(event)}\n`);
  }

  private redraw(): void {
    // Move to the first line we drew, then rewrite every line, clearing what was there.
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const key of this.order) text += `\r\x1b[2K${this.lines.get(key) ?? ''}\n`;
    this.drawn = this.order.length;
    this.write(text);
  }
}

function archiveFormat(value: string): 'oci' | 'docker' {
  if (value === 'oci' || value === 'docker') return value;
  throw new InvalidArgumentError(`expected oci or docker, got "${value}"`);
}

export function registerImageCommands(program: Command, withClient: WithClient): void {
  const out = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  const image = program.command('image').description('manage images on the node');

  image
    .command('pull')
    .description('pull an image from its registry, showing progress per layer')
    .argument('<reference>', 'image reference')
    .option('-q, --quiet', 'print only the result')
    .action(async (reference: string, options: { quiet?: boolean }) => {
      await withClient(async (client) => {
        const display = new PullProgressDisplay(process.stderr.isTTY === true, (text) => process.stderr.write(text));
        const res = await client.imagePullProgress(reference, (event) => {
          if (!options.quiet) display.update(event);
        });
        out(`pulled ${res.reference} (${res.digest})`);
      });
    });

  image
    .command('push')
    .description("push an image of the node's store to a registry, under TARGET if given (like docker tag and push in one)")
    .argument('<reference>', "image in the node's store")
    .argument('[target]', 'name to push as, registry/repository[:tag]; default: the reference, which must then name a registry')
    .option('-q, --quiet', 'print only the result')
    .action(async (reference: string, target: string | undefined, options: { quiet?: boolean }) => {
      await withClient(async (client) => {
        const display = new PullProgressDisplay(process.stderr.isTTY === true, (text) => process.stderr.write(text), PUSH_WORDS);
        const res = await client.imagePush(reference, target ?? '', (event) => {
          if (!options.quiet) display.update(event);
        });
        out(`pushed ${res.reference} (${res.digest})`);
      });
    });

  image
    .command('ls')
    .description('list images, with the nodes that hold each')
    .action(async () => {
      await withClient(async (client) => {
        const res = await client.imageList();
        out(
          renderTable(
            ['REFERENCE', 'DIGEST', 'SIZE', 'CREATED', 'NODES'],
            // NODES: where the image is, as the nodes' agents report it (a server without that says nothing: "-").
            res.images.map((i) => [i.reference, i.digest.slice(0, 19), formatMemory(Number(i.size)), i.createdAt, i.nodes.join(',') || '-']),
          ),
        );
      });
    });

  image
    .command('rm')
    .description('remove images (by reference, or every name of a digest), then unreferenced blobs and layers; refused while a task uses one')
    .argument('<references...>', 'image references or digests (at least 12 hex digits)')
    .action(async (references: string[]) => {
      await withClient(async (client) => {
        for (const reference of references) {
          const res = await client.imageRemove(reference);
          for (const removed of res.removed) out(`removed ${removed}`);
          if (res.gc && res.gc.blobsRemoved + res.gc.layersRemoved > 0) {
            out(`freed ${formatBytes(Number(res.gc.bytesFreed))} (${res.gc.blobsRemoved} blobs, ${res.gc.layersRemoved} layers)`);
          }
        }
      });
    });

  image
    .command('prune')
    .description('delete blobs and unpacked layers no image refers to')
    .action(async () => {
      await withClient(async (client) => {
        const res = await client.imagePrune();
        out(`freed ${formatBytes(Number(res.bytesFreed))} (${res.blobsRemoved} blobs, ${res.layersRemoved} layers)`);
      });
    });

  image
    .command('load')
    .description('load an OCI image layout or `docker save` tarball')
    .argument('<file>', 'tarball')
    .action(async (file: string) => {
      // Only a missing file is "no such file"; EACCES and the like are thrown as they are.
      const info = await unlessAbsent(stat(file), undefined);
      if (info === undefined) throw new Error(`${file}: no such file`);
      if (!info.isFile()) throw new Error(`${file}: not a file`);
      await withClient(async (client) => {
        const res = await client.imageLoad(createReadStream(file, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>);
        for (const img of res.images) out(`loaded ${img.reference} (${img.digest})`);
      });
    });

  image
    .command('save')
    .description('write images to a tarball that `tsctl image load` (and docker/skopeo) can read')
    .argument('<references...>', 'image references')
    .option('-o, --output <file>', 'tarball to write (default: standard output, unless it is a terminal)')
    .addOption(new Option('--format <format>', 'oci (OCI image layout) or docker (`docker save` layout)').default('oci').argParser(archiveFormat))
    .action(async (references: string[], options: { output?: string; format: 'oci' | 'docker' }) => {
      if (options.output === undefined && process.stdout.isTTY)
        throw new Error('refusing to write a tarball to a terminal; give -o FILE or redirect standard output');
      await withClient(async (client) => {
        const chunks = client.imageSave(references, options.format);
        if (options.output === undefined) {
          await pipeline(chunks, process.stdout);
          return;
        }
        // Written beside the target and renamed, so a failed save leaves no half tarball behind.
        const temp = join(dirname(options.output), `.${process.pid}.tsctl-save.tmp`);
        try {
          await pipeline(chunks, createWriteStream(temp, { flags: 'wx' }));
          await rename(temp, options.output);
        } catch (error) {
          await rm(temp, { force: true });
          throw error;
        }
        out(`saved ${references.join(', ')} to ${options.output} (${options.format})`);
      });
    });
}
