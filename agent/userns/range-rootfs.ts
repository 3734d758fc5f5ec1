// The rootfs of a task with a range of its own: image layers owned by the range either through
// idmapped mounts (nothing on disk changes) or through a chowned copy per layer and range
// (shifted-layers.ts), for kernels or file systems that refuse the first. Which one is decided once
// per agent by a real probe under the userns directory: an idmapped bind of a scratch directory as
// an overlay lower layer, its owner seen shifted and kept by a copy-up.
import { randomBytes } from 'node:crypto';
import { appendFile, lstat, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { mountOverlayRootfs, unmountRootfs } from '../runtime/rootfs.js';
import type { ServiceIdRange } from './id-ranges.js';
import { clearIdmappedLeftovers, mountIdmappedRootfs, PROBE_PREFIX } from './idmapped-layers.js';
import type { ShiftedLayers } from './shifted-layers.js';

/** auto: idmapped mounts when the probe shows they work, else copies. The others force one (idmapped: fail without). */
export type LayerOwnership = 'auto' | 'idmapped' | 'copy';

export interface LayerChoice {
  mode: 'idmapped' | 'copy';
  /** Why copies are used (the probe's failure, or forced); absent with idmapped mounts. */
  reason?: string;
}

/** Pure: the log line of a choice. */
export function describeChoice(choice: LayerChoice): string {
  return choice.mode === 'idmapped'
    ? 'userns: image layers are idmapped mounts per range (nothing chowned on disk)'
    : `userns: image layers are chowned copies per range (${choice.reason ?? 'idmapped mounts not used'})`;
}

/** Throws, naming the step, unless an idmapped overlay lower behaves here as the rootfs needs. */
async function probeIdmappedOverlay(root: string, range: ServiceIdRange): Promise<void> {
  const dir = join(root, `${PROBE_PREFIX}${randomBytes(6).toString('hex')}`);
  const layer = join(dir, 'layer');
  await mkdir(layer, { recursive: true, mode: 0o700 });
  await writeFile(join(layer, 'file'), 'probe');
  const owner = async (path: string) => {
    const info = await lstat(path);
    return `${info.uid}:${info.gid}`;
  };
  const want = `${range.uidStart}:${range.gidStart}`;
  try {
    const rootfs = await mountIdmappedRootfs(join(dir, 'staging'), [layer], dir, range);
    if ((await owner(join(rootfs, 'file'))) !== want) throw new Error(`a layer file shows owner ${await owner(join(rootfs, 'file'))}, not ${want}`);
    await appendFile(join(rootfs, 'file'), '+');
    if ((await owner(join(dir, 'upper', 'file'))) !== want)
      throw new Error(`a copied-up file got owner ${await owner(join(dir, 'upper', 'file'))}, not ${want}`);
    if ((await owner(join(layer, 'file'))) !== '0:0') throw new Error('the layer file itself changed owner');
  } finally {
    await unmountRootfs(dir);
    // Only once nothing is mounted under it (a failed unmount threw above and leaves it); the
    // staging binds are gone by now (mountIdmappedRootfs detaches them, failing or not).
    await rm(dir, { recursive: true, force: true });
  }
}

export class RangeRootfs {
  private choice: Promise<LayerChoice> | undefined;
  private leftoversCleared = false;

  /** `root`: <userns dir>/idmapped, where binds are staged and the probe runs. */
  constructor(
    private readonly root: string,
    private readonly copies: ShiftedLayers,
    private readonly ownership: LayerOwnership = 'auto',
  ) {}

  /** How this node gives layers to a range; probed (and logged) at the first call only. */
  chosen(range: ServiceIdRange, log: (message: string) => void): Promise<LayerChoice> {
    this.choice ??= this.decide(range, log).then(
      (choice) => {
        log(describeChoice(choice));
        return choice;
      },
      (err: unknown) => {
        // Not kept: the next task asks again.
        this.choice = undefined;
        throw err;
      },
    );
    return this.choice;
  }

  private async decide(range: ServiceIdRange, log: (message: string) => void): Promise<LayerChoice> {
    if (this.ownership === 'copy') return { mode: 'copy', reason: 'configured' };
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    if (!this.leftoversCleared) {
      this.leftoversCleared = true;
      // A leftover costs a mount, not correctness: said, and the probe goes on.
      await clearIdmappedLeftovers(this.root).catch((err: Error) => log(`userns: clearing ${this.root}: ${err.message}`));
    }
    try {
      await probeIdmappedOverlay(this.root, range);
      return { mode: 'idmapped' };
    } catch (err) {
      const reason = `idmapped overlay layers do not work here: ${(err as Error).message}`;
      if (this.ownership === 'idmapped') throw new Error(`userns: ${reason}`);
      return { mode: 'copy', reason };
    }
  }

  /** Mounts <containerDir>/rootfs of `layerDirs` (bottom first) owned by the range; upper/ is the range root's. */
  async mount(layerDirs: readonly string[], containerDir: string, range: ServiceIdRange, log: (message: string) => void): Promise<string> {
    const owner = { uid: range.uidStart, gid: range.gidStart };
    const copied = async () => mountOverlayRootfs(await this.copies.layersFor(layerDirs, range), containerDir, owner);
    if ((await this.chosen(range, log)).mode === 'copy') return copied();
    try {
      return await mountIdmappedRootfs(this.root, layerDirs, containerDir, range);
    } catch (err) {
      // The probe passed, so this is about these layers (another file system, say): copies serve them.
      if (this.ownership === 'idmapped') throw err;
      log(`userns: idmapped layers for ${containerDir} failed (${(err as Error).message}); using chowned copies`);
      await unmountRootfs(containerDir);
      return copied();
    }
  }
}
