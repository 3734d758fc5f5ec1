// The name-resolution files of a container: /etc/hosts with the service's extra hosts, and
// /etc/resolv.conf pointing at the overlay resolver or at the servers the service names. The
// contents are pure functions; writeNameFiles puts them into the rootfs before the container starts.
import { lstat, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { ServiceSpec } from '../../common/resources/types.js';

export interface NameFilesInput {
  /** The overlay network's resolver (on its gateway), when the task is on one. */
  resolver?: string | undefined;
  dns?: ServiceSpec['dns'];
  extraHosts?: ServiceSpec['extraHosts'];
}

/** /etc/hosts with localhost and the extra hosts, in the order given; undefined when there are none. */
export function hostsFile(extraHosts: ServiceSpec['extraHosts']): string | undefined {
  if (!extraHosts || extraHosts.length === 0) return undefined;
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  for (const { hostname, address } of extraHosts) lines.push(`${address}\t${hostname}`);
  return `${lines.join('\n')}\n`;
}

/**
 * /etc/resolv.conf, or undefined to leave the image's. Servers the service names replace the
 * overlay resolver (as in Docker, where they replace the daemon's); with the overlay resolver a
 * bare service name is asked as is (ndots:0) unless the service sets ndots itself.
 */
export function resolvConf(input: NameFilesInput): string | undefined {
  const own = input.dns?.servers ?? [];
  const servers = own.length > 0 ? own : input.resolver !== undefined ? [input.resolver] : [];
  const search = input.dns?.search ?? [];
  const options = [...(input.dns?.options ?? [])];
  if (servers.length === 0 && search.length === 0 && options.length === 0) return undefined;
  if (own.length === 0 && input.resolver !== undefined && !options.some((o) => o.startsWith('ndots:'))) options.push('ndots:0');
  const lines = servers.map((s) => `nameserver ${s}`);
  if (search.length > 0) lines.push(`search ${search.join(' ')}`);
  if (options.length > 0) lines.push(`options ${options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** Writes what hostsFile and resolvConf give into the container's rootfs (before it starts). */
export async function writeNameFiles(rootfs: string, input: NameFilesInput): Promise<void> {
  const hosts = hostsFile(input.extraHosts);
  const resolv = resolvConf(input);
  if (hosts === undefined && resolv === undefined) return;
  const etc = join(rootfs, 'etc');
  // The image decides what its /etc is: a symlink there (or at the file) must not make us write
  // outside the rootfs, so the directory must be real and the file is replaced, never followed.
  const stat = await lstat(etc).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  if (stat === undefined) await mkdir(etc, { mode: 0o755 });
  else if (!stat.isDirectory()) throw new Error(`the image's /etc is not a directory; cannot write /etc/hosts or /etc/resolv.conf`);
  const replace = async (name: string, content: string): Promise<void> => {
    const file = join(etc, name);
    await rm(file, { force: true });
    await writeFile(file, content, { flag: 'wx', mode: 0o644 });
  };
  if (hosts !== undefined) await replace('hosts', hosts);
  if (resolv !== undefined) await replace('resolv.conf', resolv);
}
