// Turns a validated OciSpec into the addon's spawn plan: everything resolved up front, because
// the cloned init may not allocate memory.

import fs from 'node:fs/promises';
import path from 'node:path';
import { planMounts } from './mount-plan.js';
import type { NamespaceKind, NativeSpawnPlan } from './native.js';
import type { OciSpec } from './types.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const DEFAULT_NAMESPACES: NamespaceKind[] = ['pid', 'mount', 'uts', 'ipc', 'network'];

/** Resolves root.path against the bundle and insists on a real directory. */
export async function resolveRootfs(spec: OciSpec, bundleDir: string, source: string): Promise<string> {
  const rootfs = path.resolve(bundleDir, spec.root.path);
  let real: string;
  try {
    real = await fs.realpath(rootfs);
  } catch (err) {
    throw new Error(`${source}: root.path ${rootfs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!(await fs.stat(real)).isDirectory()) throw new Error(`${source}: root.path ${rootfs} is not a directory`);
  return real;
}

export function namespacesOf(spec: OciSpec, source: string): NamespaceKind[] {
  const listed = spec.linux?.namespaces;
  if (listed === undefined) return DEFAULT_NAMESPACES;
  const kinds: NamespaceKind[] = [];
  for (const [i, ns] of listed.entries()) {
    const field = `${source}: linux.namespaces[${i}]`;
    if (ns.path !== undefined) throw new Error(`${field}: joining an existing namespace (path) is not supported yet`);
    if (ns.type === 'user') throw new Error(`${field}: user namespaces are not supported yet`);
    kinds.push(ns.type);
  }
  if (!kinds.includes('mount')) throw new Error(`${source}: linux.namespaces: a mount namespace is required`);
  if (spec.hostname !== undefined && !kinds.includes('uts')) {
    throw new Error(`${source}: hostname is set but linux.namespaces has no uts namespace`);
  }
  return kinds;
}

/** Paths inside the container to try for args[0], following PATH from the spec's env like execvp. */
export function executableCandidates(args0: string, env: string[]): string[] {
  if (args0.includes('/')) return [args0];
  const pathEntry = [...env].reverse().find((e) => e.startsWith('PATH='));
  const searchPath = pathEntry === undefined ? DEFAULT_PATH : pathEntry.slice('PATH='.length);
  return searchPath.split(':').map((dir) => (dir === '' ? `./${args0}` : `${dir.replace(/\/+$/, '')}/${args0}`));
}

export interface SpawnPlanInputs {
  spec: OciSpec;
  rootfs: string;
  cgroupProcsFiles: string[];
  logPath: string;
  /** Names the config in error messages. */
  source: string;
}

export async function buildSpawnPlan(inputs: SpawnPlanInputs): Promise<NativeSpawnPlan> {
  const { spec, source } = inputs;
  if (spec.process.terminal === true) throw new Error(`${source}: process.terminal is not supported yet`);
  const env = spec.process.env ?? [`PATH=${DEFAULT_PATH}`];
  const args0 = spec.process.args[0];
  if (args0 === undefined || args0 === '') throw new Error(`${source}: process.args[0] must name the program to run`);
  return {
    rootfs: inputs.rootfs,
    rootReadonly: spec.root.readonly ?? false,
    namespaces: namespacesOf(spec, source),
    hostname: spec.hostname ?? '',
    cgroupProcsFiles: inputs.cgroupProcsFiles,
    mounts: await planMounts(spec.mounts ?? [], `${source}: mounts`),
    maskedPaths: spec.linux?.maskedPaths ?? [],
    readonlyPaths: spec.linux?.readonlyPaths ?? [],
    logPath: inputs.logPath,
    uid: spec.process.user.uid,
    gid: spec.process.user.gid,
    additionalGids: spec.process.user.additionalGids ?? [],
    cwd: spec.process.cwd,
    executableCandidates: executableCandidates(args0, env),
    args: spec.process.args,
    env,
    noNewPrivileges: spec.process.noNewPrivileges ?? false,
  };
}
