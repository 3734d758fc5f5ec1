// Per-service id ranges on this node, kept across agent restarts in <dir>/allocations.json (dir
// 0700, file 0600): a container adopted after a restart keeps the ids its files carry, and a
// restarted service finds its shifted layers again. A range is freed when no task of its service
// remains on the node (retain), and its shifted layer copies go with it.
import { chmod, mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';

import { unlessAbsent } from '../fs-errors.js';
import { allocateBlock, blockCount, blockRange, retainBlocks, type Allocations, type ServiceIdRange, type SubordinateRange } from './id-ranges.js';
import { revokeSearchUnder } from './search-acl.js';
import { RangeRootfs, type LayerOwnership } from './range-rootfs.js';
import { ShiftedLayers } from './shifted-layers.js';
import { ensureSubordinateRanges, HOST_SUBID_FILES, type SubidFiles } from './subordinate-ids.js';

const MAX_STATE_BYTES = 4 * 1024 * 1024;
const range = z.object({ start: z.number().int().min(1).max(0xffff_fffe), count: z.number().int().min(1).max(0xffff_ffff) }).strict();
const stateSchema = z
  .object({
    version: z.literal(1),
    uids: range,
    gids: range,
    services: z.record(z.string().min(1).max(600), z.number().int().min(0).max(65_535)),
  })
  .strict();
type StoredState = z.infer<typeof stateSchema>;

export interface UsernsAllocatorOptions {
  /** <dataRoot>/userns: allocations.json and layers/. A freed range's search grants are revoked under <dataRoot>. */
  dir: string;
  subidFiles?: SubidFiles;
  /** How image layers come to be owned by a range (default auto: idmapped mounts where they work, else copies). */
  layerOwnership?: LayerOwnership;
}

function sameRange(a: SubordinateRange, b: SubordinateRange): boolean {
  return a.start === b.start && a.count === b.count;
}

export class UsernsAllocator {
  private state: StoredState | undefined;
  /** Every read-modify-write of the state runs after the previous one. */
  private chain: Promise<unknown> = Promise.resolve();
  readonly layers: ShiftedLayers;
  /** Mounts a range's rootfs over its layers (idmapped or copied). */
  readonly rootfs: RangeRootfs;

  constructor(private readonly options: UsernsAllocatorOptions) {
    this.layers = new ShiftedLayers(join(options.dir, 'layers'));
    this.rootfs = new RangeRootfs(join(options.dir, 'idmapped'), this.layers, options.layerOwnership);
  }

  private get statePath(): string {
    return join(this.options.dir, 'allocations.json');
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async load(): Promise<StoredState> {
    if (this.state !== undefined) return this.state;
    await mkdir(this.options.dir, { recursive: true, mode: 0o700 });
    await chmod(this.options.dir, 0o700);
    const { uids, gids } = await ensureSubordinateRanges(this.options.subidFiles ?? HOST_SUBID_FILES);
    const text = await unlessAbsent(readFile(this.statePath, 'utf8'), undefined);
    let stored: StoredState = { version: 1, uids, gids, services: {} };
    if (text !== undefined) {
      if (text.length > MAX_STATE_BYTES) throw new Error(`${this.statePath}: larger than ${MAX_STATE_BYTES} bytes`);
      const parsed = stateSchema.safeParse(JSON.parse(text));
      if (!parsed.success) throw new Error(`${this.statePath}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      stored = parsed.data;
      // Blocks are offsets into the node's range: a changed range would move running services' ids.
      if (!sameRange(stored.uids, uids) || !sameRange(stored.gids, gids)) {
        throw new Error(
          `${this.statePath}: recorded for uids ${stored.uids.start}+${stored.uids.count} and gids ${stored.gids.start}+${stored.gids.count}, ` +
            `but the node's ${'tessera'} entries are now ${uids.start}+${uids.count} and ${gids.start}+${gids.count}`,
        );
      }
    }
    this.state = stored;
    return stored;
  }

  private async save(state: StoredState): Promise<void> {
    const tmp = `${this.statePath}.tmp`;
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.chmod(0o600);
      await file.writeFile(JSON.stringify(state));
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.statePath);
    this.state = state;
  }

  /** The range of `service` ("stack/name"), allocated and recorded when it has none. */
  acquire(service: string): Promise<ServiceIdRange> {
    return this.serial(async () => {
      const state = await this.load();
      const { block, allocations } = allocateBlock(state.services, service, blockCount(state.uids, state.gids));
      if (allocations !== state.services) await this.save({ ...state, services: { ...allocations } });
      return blockRange(block, state.uids, state.gids);
    });
  }

  /** The range `service` holds, if any (no allocation). */
  held(service: string): Promise<ServiceIdRange | undefined> {
    return this.serial(async () => {
      const state = await this.load();
      const block = state.services[service];
      return block === undefined ? undefined : blockRange(block, state.uids, state.gids);
    });
  }

  /** Frees the ranges of services not in `keep`, with their shifted layers. Returns what was freed. */
  retain(keep: ReadonlySet<string>): Promise<Array<{ service: string; range: ServiceIdRange }>> {
    return this.serial(async () => {
      // Nothing was ever allocated on this node: the subordinate-id files are not even read.
      if (this.state === undefined && (await unlessAbsent(stat(this.statePath), undefined)) === undefined) return [];
      const state = await this.load();
      const { allocations, freed } = retainBlocks(state.services, keep);
      if (freed.length === 0) return [];
      const gone = Object.entries(state.services)
        .filter(([service]) => !keep.has(service))
        .map(([service, block]) => ({ service, range: blockRange(block, state.uids, state.gids) }));
      await this.save({ ...state, services: { ...(allocations as Allocations) } });
      // Inside the serial section: the block may be handed out again right after, and its new
      // holder's grants must not be taken away by this release.
      for (const { range } of gone) {
        await this.layers.remove(range);
        await revokeSearchUnder(dirname(this.options.dir), range.gidStart);
      }
      return gone;
    });
  }
}
