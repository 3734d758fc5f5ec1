// Pure: the image config a build carries from step to step, and the config and manifest documents
// it commits. The `config` section uses the OCI/Docker key spelling, so it is written out as is.
import { z } from 'zod';
import type { BuildImageConfig } from '../../common/build/plan-types.js';
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
  Healthcheck?: { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number; Retries?: number };
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
  // Kept for the planner, which runs them first in the stage built FROM this image and clears
  // them there (takeOnBuildTriggers), so they are not inherited further.
  if (c.OnBuild && c.OnBuild.length > 0) config.OnBuild = [...c.OnBuild];
  return {
    architecture: parsed.data.architecture ?? platform.architecture,
    os: parsed.data.os ?? platform.os,
    config,
    history: (parsed.data.history ?? []).map((h) => dropUndefined(h)),
  };
}

/** The plan's config in the image config's spelling (keys left out when unset, as Docker writes them). */
export function toContainerConfig(c: BuildImageConfig): ContainerConfig {
  const out: ContainerConfig = {};
  if (c.user !== '') out.User = c.user;
  if (c.exposedPorts.length > 0) out.ExposedPorts = keysOf(c.exposedPorts);
  if (c.env.length > 0) out.Env = [...c.env];
  if (c.entrypoint !== undefined) out.Entrypoint = [...c.entrypoint];
  if (c.cmd !== undefined) out.Cmd = [...c.cmd];
  if (c.volumes.length > 0) out.Volumes = keysOf(c.volumes);
  if (c.workingDir !== '') out.WorkingDir = c.workingDir;
  if (Object.keys(c.labels).length > 0) out.Labels = { ...c.labels };
  if (c.stopSignal !== undefined) out.StopSignal = c.stopSignal;
  if (c.healthcheck !== undefined) {
    const h = c.healthcheck;
    out.Healthcheck = dropZero({
      Test: [...h.test],
      Interval: h.intervalNs,
      Timeout: h.timeoutNs,
      StartPeriod: h.startPeriodNs,
      StartInterval: h.startIntervalNs,
      Retries: h.retries,
    });
  }
  if (c.shell !== undefined) out.Shell = [...c.shell];
  if (c.onBuild.length > 0) out.OnBuild = [...c.onBuild];
  return out;
}

/** A base image's config in the planner's form (what planSteps starts a stage from). */
export function toBuildImageConfig(c: ContainerConfig): BuildImageConfig {
  const h = c.Healthcheck;
  return {
    env: [...(c.Env ?? [])],
    ...(c.Cmd === undefined ? {} : { cmd: [...c.Cmd] }),
    ...(c.Entrypoint === undefined ? {} : { entrypoint: [...c.Entrypoint] }),
    workingDir: c.WorkingDir ?? '',
    user: c.User ?? '',
    exposedPorts: Object.keys(c.ExposedPorts ?? {}).sort(),
    volumes: Object.keys(c.Volumes ?? {}).sort(),
    labels: { ...c.Labels },
    ...(h === undefined
      ? {}
      : {
          healthcheck: {
            test: [...h.Test],
            intervalNs: h.Interval ?? 0,
            timeoutNs: h.Timeout ?? 0,
            startPeriodNs: h.StartPeriod ?? 0,
            startIntervalNs: h.StartInterval ?? 0,
            retries: h.Retries ?? 0,
          },
        }),
    ...(c.StopSignal === undefined ? {} : { stopSignal: c.StopSignal }),
    ...(c.Shell === undefined ? {} : { shell: [...c.Shell] }),
    onBuild: [...(c.OnBuild ?? [])],
  };
}

/** The config document and the manifest of a built image, as bytes (their digests name them). */
export function imageDocuments(input: {
  base: Pick<BaseImageConfig, 'architecture' | 'os'>;
  config: ContainerConfig;
  author?: string;
  layers: readonly BuiltLayer[];
  history: readonly HistoryEntry[];
  created: string;
}): { configBytes: Buffer; manifestBytes: Buffer; configDigest: string } {
  const configDoc = {
    created: input.created,
    ...(input.author === undefined ? {} : { author: input.author }),
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

/**
 * The built image's `created`: the newest step time in its history, not the commit's clock, so a
 * build taken wholly from the step cache gives the same config, hence the same digest, as the build
 * that filled the cache (a redeploy of an unchanged project then rolls nothing). `fallback` (the
 * clock) only when no history entry carries a valid time.
 */
export function imageCreated(history: readonly HistoryEntry[], fallback: string): string {
  let newest: { ms: number; text: string } | undefined;
  for (const entry of history) {
    if (entry.created === undefined) continue;
    const ms = Date.parse(entry.created);
    if (Number.isNaN(ms)) continue;
    if (newest === undefined || ms > newest.ms) newest = { ms, text: entry.created };
  }
  return newest?.text ?? fallback;
}

/** A history entry as buildah writes them: RUN as its command, every other instruction as "#(nop)". */
export function historyFor(instruction: string, args: readonly string[] | undefined, emptyLayer: boolean): { created_by: string; empty_layer?: boolean } {
  const createdBy = args !== undefined ? args.join(' ') : `/bin/sh -c #(nop) ${instruction}`;
  return emptyLayer ? { created_by: createdBy, empty_layer: true } : { created_by: createdBy };
}

function keysOf(keys: readonly string[]): Record<string, Record<string, never>> {
  return Object.fromEntries([...new Set(keys)].sort().map((k) => [k, {}]));
}

/** Zero durations and retries mean "the runtime's default": Docker leaves them out. */
function dropZero<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== 0)) as T;
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
