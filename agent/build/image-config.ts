// Pure: the image config a build carries from step to step, and the config and manifest documents
// it commits. The `config` section uses the OCI/Docker key spelling, so it is written out as is.
import { z } from 'zod';
import type { ConfigPatch } from './exec-plan.js';
import { OCI_CONFIG, OCI_MANIFEST } from '../images/media-types.js';
import { sha256Digest } from '../../common/images/digest.js';

/** OCI image-spec config.config, the keys a Dockerfile sets. */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Healthcheck?: NonNullable<ConfigPatch['healthcheck']>;
  Shell?: string[];
  OnBuild?: string[];
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface BaseImageConfig {
  architecture: string;
  os: string;
  config: ContainerConfig;
  history: HistoryEntry[];
}

export interface BuiltLayer {
  diffId: string;
  digest: string;
  size: number;
  mediaType: string;
}

const stringList = z.array(z.string()).nullable().optional();
const keySet = z.record(z.string(), z.unknown()).nullable().optional();
// Lenient on what a Dockerfile does not set; a base image's other keys are not carried over.
const baseConfigSchema = z.object({
  architecture: z.string().optional(),
  os: z.string().optional(),
  config: z
    .object({
      User: z.string().optional(),
      ExposedPorts: keySet,
      Env: stringList,
      Entrypoint: stringList,
      Cmd: stringList,
      Volumes: keySet,
      WorkingDir: z.string().optional(),
      Labels: z.record(z.string(), z.string()).nullable().optional(),
      StopSignal: z.string().optional(),
      Healthcheck: z
        .object({
          Test: z.array(z.string()),
          Interval: z.number().optional(),
          Timeout: z.number().optional(),
          StartPeriod: z.number().optional(),
          StartInterval: z.number().optional(),
          Retries: z.number().optional(),
        })
        .nullable()
        .optional(),
      Shell: stringList,
      OnBuild: stringList,
    })
    .nullable()
    .optional(),
  history: z
    .array(z.object({ created: z.string().optional(), created_by: z.string().optional(), comment: z.string().optional(), empty_layer: z.boolean().optional() }))
    .nullable()
    .optional(),
});

/** The parts of a base image's config a build starts from; `what` names it in errors. */
export function parseBaseConfig(bytes: Uint8Array, what: string, platform: { architecture: string; os: string }): BaseImageConfig {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new Error(`${what}: config is not JSON: ${(error as Error).message}`);
  }
  const parsed = baseConfigSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${what}: config: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const c = parsed.data.config ?? {};
  const config: ContainerConfig = {};
  if (c.User) config.User = c.User;
  if (c.ExposedPorts) config.ExposedPorts = keysOf(Object.keys(c.ExposedPorts));
  if (c.Env) config.Env = [...c.Env];
  if (c.Entrypoint) config.Entrypoint = [...c.Entrypoint];
  if (c.Cmd) config.Cmd = [...c.Cmd];
  if (c.Volumes) config.Volumes = keysOf(Object.keys(c.Volumes));
  if (c.WorkingDir) config.WorkingDir = c.WorkingDir;
  if (c.Labels) config.Labels = { ...c.Labels };
  if (c.StopSignal) config.StopSignal = c.StopSignal;
  if (c.Healthcheck) config.Healthcheck = dropUndefined(c.Healthcheck);
  if (c.Shell) config.Shell = [...c.Shell];
  // ONBUILD triggers run in the image built FROM this one, not inherited by it.
  return {
    architecture: parsed.data.architecture ?? platform.architecture,
    os: parsed.data.os ?? platform.os,
    config,
    history: (parsed.data.history ?? []).map((h) => dropUndefined(h)),
  };
}

/** `config` with `patch` applied: ENV and LABEL merge by key, EXPOSE and VOLUME add, the rest replace. */
export function applyConfigPatch(config: ContainerConfig, patch: ConfigPatch): ContainerConfig {
  const next: ContainerConfig = structuredClone(config);
  if (patch.env) next.Env = mergeEnv(next.Env ?? [], patch.env);
  if (patch.labels) next.Labels = { ...next.Labels, ...patch.labels };
  if (patch.exposedPorts) next.ExposedPorts = keysOf([...Object.keys(next.ExposedPorts ?? {}), ...patch.exposedPorts]);
  if (patch.volumes) next.Volumes = keysOf([...Object.keys(next.Volumes ?? {}), ...patch.volumes]);
  if (patch.user !== undefined) next.User = patch.user;
  if (patch.workingDir !== undefined) next.WorkingDir = patch.workingDir;
  if (patch.entrypoint !== undefined) setOrClear(next, 'Entrypoint', patch.entrypoint);
  if (patch.cmd !== undefined) setOrClear(next, 'Cmd', patch.cmd);
  if (patch.healthcheck !== undefined) next.Healthcheck = { ...patch.healthcheck };
  if (patch.stopSignal !== undefined) next.StopSignal = patch.stopSignal;
  if (patch.shell !== undefined) next.Shell = [...patch.shell];
  if (patch.onBuild !== undefined) next.OnBuild = [...(next.OnBuild ?? []), ...patch.onBuild];
  return next;
}

/** Env entries with `values` set: an existing name keeps its place, a new one goes last. */
export function mergeEnv(env: readonly string[], values: Readonly<Record<string, string>>): string[] {
  const out = [...env];
  for (const [name, value] of Object.entries(values)) {
    const at = out.findIndex((e) => e.slice(0, e.indexOf('=')) === name);
    if (at >= 0) out[at] = `${name}=${value}`;
    else out.push(`${name}=${value}`);
  }
  return out;
}

/** The config document and the manifest of a built image, as bytes (their digests name them). */
export function imageDocuments(input: {
  base: Pick<BaseImageConfig, 'architecture' | 'os'>;
  config: ContainerConfig;
  layers: readonly BuiltLayer[];
  history: readonly HistoryEntry[];
  created: string;
}): { configBytes: Buffer; manifestBytes: Buffer; configDigest: string } {
  const configDoc = {
    created: input.created,
    architecture: input.base.architecture,
    os: input.base.os,
    config: input.config,
    rootfs: { type: 'layers', diff_ids: input.layers.map((l) => l.diffId) },
    history: input.history,
  };
  const configBytes = Buffer.from(JSON.stringify(configDoc));
  const configDigest = sha256Digest(configBytes);
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: configBytes.length },
    layers: input.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  return { configBytes, manifestBytes: Buffer.from(JSON.stringify(manifest)), configDigest };
}

/** A history entry as buildah writes them: RUN as its command, every other instruction as "#(nop)". */
export function historyFor(instruction: string, args: readonly string[] | undefined, emptyLayer: boolean): HistoryEntry {
  const createdBy = args !== undefined ? args.join(' ') : `/bin/sh -c #(nop) ${instruction}`;
  return emptyLayer ? { created_by: createdBy, empty_layer: true } : { created_by: createdBy };
}

function keysOf(keys: readonly string[]): Record<string, Record<string, never>> {
  return Object.fromEntries([...new Set(keys)].sort().map((k) => [k, {}]));
}

function setOrClear(config: ContainerConfig, key: 'Entrypoint' | 'Cmd', value: string[] | null): void {
  if (value === null) delete config[key];
  else config[key] = [...value];
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
