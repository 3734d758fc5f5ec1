// Persists IPAM leases in the network's state directory so addresses survive a tsd restart.

import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ipam } from './ipam.js';
import { isNotFound } from '../fs-errors.js';
import { NetworkInputError } from '../../common/network/ipv4.js';

export class LeaseFile {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, 'leases.json');
  }

  /** Loads the saved leases, or an empty allocator when there are none yet. */
  async load(subnet: string): Promise<Ipam> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if (isNotFound(error)) return new Ipam(subnet);
      throw error;
    }
    let state: unknown;
    try {
      state = JSON.parse(text);
    } catch (error) {
      throw new NetworkInputError(`lease file ${this.path} is damaged: ${(error as Error).message}`);
    }
    const ipam = Ipam.restore(state);
    if (ipam.subnet !== new Ipam(subnet).subnet) {
      // Silently dropping leases would hand running containers' addresses to new ones.
      throw new NetworkInputError(
        `lease file ${this.path} is for subnet ${ipam.subnet} but the network is configured with ${subnet}; ` +
          'stop its containers and remove the file to change the subnet',
      );
    }
    return ipam;
  }

  /** Write-then-rename, so a crash never leaves a half-written lease file. */
  async save(ipam: Ipam): Promise<void> {
    await mkdir(join(this.path, '..'), { recursive: true });
    const temporary = `${this.path}.${process.pid}.tmp`;
    await writeFile(temporary, JSON.stringify(ipam.serialise(), null, 2) + '\n');
    await rename(temporary, this.path);
  }

  async remove(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
