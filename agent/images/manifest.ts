// Schemas for the JSON documents of an image (index, manifest, config), checked on every read
// because they come from registries and tarballs we do not control.
import { z } from 'zod';
import type { ImageHealthcheck, ImageRuntimeConfig } from '../../common/images/types.js';
import { INDEX_TYPES, MANIFEST_TYPES } from './media-types.js';

const digestSchema = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'expected "sha256:" followed by 64 lowercase hex digits');

const platformSchema = z.object({
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  'os.version': z.string().optional(),
});

export const descriptorSchema = z.object({
  mediaType: z.string(),
  digest: digestSchema,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: platformSchema.optional(),
});
export type Descriptor = z.infer<typeof descriptorSchema>;
export type Platform = z.infer<typeof platformSchema>;

export const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageManifest = z.infer<typeof imageManifestSchema>;

export const imageIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageIndex = z.infer<typeof imageIndexSchema>;

// Docker writes null for absent lists, so null is accepted wherever a list may be missing.
const stringList = z.array(z.string()).nullable().optional();

const EXPOSED_PORT = /^\d{1,5}(?:-\d{1,5})?(?:\/(?:tcp|udp|sctp))?$/;

// Durations in image configs are Go time.Duration values: integer nanoseconds.
const durationNs = z.number().int('must be whole nanoseconds').nonnegative().optional();

/** Docker's HEALTHCHECK: Test is [] (inherit), ["NONE"], ["CMD", arg…] or ["CMD-SHELL", command]. */
const healthcheckSchema = z
  .object({
    Test: z
      .array(z.string())
      .nullable()
      .optional()
      .refine(
        (test) => !test || test.length === 0 || test[0] === 'NONE' || ((test[0] === 'CMD' || test[0] === 'CMD-SHELL') && test.length >= 2),
        'must be [], ["NONE"], ["CMD", program, args…] or ["CMD-SHELL", command]',
      ),
    Interval: durationNs,
    Timeout: durationNs,
    StartPeriod: durationNs,
    StartInterval: durationNs,
    Retries: z.number().int().nonnegative().optional(),
  })
  .nullable()
  .optional();

export const imageConfigSchema = z.object({
  architecture: z.string().optional(),
  os: z.string().optional(),
  created: z.string().optional(),
  config: z
    .object({
      Entrypoint: stringList,
      Cmd: stringList,
      Env: stringList,
      WorkingDir: z.string().optional(),
      User: z.string().optional(),
      ExposedPorts: z
        .record(z.string(), z.unknown())
        .superRefine((ports, ctx) => {
          for (const key of Object.keys(ports)) {
            if (!EXPOSED_PORT.test(key)) ctx.addIssue({ code: 'custom', path: [key], message: 'expected "PORT[/tcp|udp|sctp]"' });
          }
        })
        .nullable()
        .optional(),
      Healthcheck: healthcheckSchema,
    })
    .nullable()
    .optional(),
  rootfs: z.object({
    type: z.literal('layers'),
    diff_ids: z.array(digestSchema),
  }),
});
export type ImageConfig = z.infer<typeof imageConfigSchema>;

export class InvalidDocumentError extends Error {
  constructor(what: string, reason: string) {
    super(`${what}: ${reason}`);
    this.name = 'InvalidDocumentError';
  }
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(document)'}: ${issue.message}`)
    .join('; ');
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new InvalidDocumentError(what, `not valid JSON (${(error as Error).message})`);
  }
}

export function parseWith<T>(schema: z.ZodType<T>, bytes: Uint8Array, what: string): T {
  const result = schema.safeParse(parseJson(bytes, what));
  if (!result.success) throw new InvalidDocumentError(what, describeIssues(result.error));
  return result.data;
}

export type ManifestDocument = { kind: 'manifest'; manifest: ImageManifest } | { kind: 'index'; index: ImageIndex };

/**
 * Reads a manifest or index. The body's own mediaType decides, then the HTTP Content-Type,
 * then the shape, because older registries and tools leave out one or the other.
 */
export function parseManifestDocument(bytes: Uint8Array, what: string, contentType?: string): ManifestDocument {
  const json = parseJson(bytes, what);
  const bodyType = typeof json === 'object' && json !== null && 'mediaType' in json && typeof json.mediaType === 'string' ? json.mediaType : undefined;
  const headerType = contentType?.split(';')[0]?.trim();
  const declared = bodyType ?? (headerType && [...MANIFEST_TYPES, ...INDEX_TYPES].includes(headerType) ? headerType : undefined);
  let isIndex: boolean;
  if (declared !== undefined) {
    if (INDEX_TYPES.includes(declared)) isIndex = true;
    else if (MANIFEST_TYPES.includes(declared)) isIndex = false;
    else throw new InvalidDocumentError(what, `unsupported media type ${JSON.stringify(declared)}`);
  } else {
    isIndex = typeof json === 'object' && json !== null && 'manifests' in json;
  }
  if (isIndex) {
    const result = imageIndexSchema.safeParse(json);
    if (!result.success) throw new InvalidDocumentError(what, `invalid image index: ${describeIssues(result.error)}`);
    return { kind: 'index', index: result.data };
  }
  const result = imageManifestSchema.safeParse(json);
  if (!result.success) throw new InvalidDocumentError(what, `invalid image manifest: ${describeIssues(result.error)}`);
  return { kind: 'manifest', manifest: result.data };
}

const NODE_ARCH_TO_OCI: Record<string, { architecture: string; variant?: string }> = {
  x64: { architecture: 'amd64' },
  arm64: { architecture: 'arm64', variant: 'v8' },
  arm: { architecture: 'arm', variant: 'v7' },
  ia32: { architecture: '386' },
  ppc64: { architecture: 'ppc64le' },
  s390x: { architecture: 's390x' },
  riscv64: { architecture: 'riscv64' },
};

export function hostPlatform(): Platform {
  const arch = NODE_ARCH_TO_OCI[process.arch] ?? { architecture: process.arch };
  return { os: 'linux', ...arch };
}

/** Picks the manifest for `platform` from an index; a missing variant in the index matches any. */
export function selectManifest(index: ImageIndex, platform: Platform, what: string): Descriptor {
  const candidates = index.manifests.filter(
    (d) =>
      MANIFEST_TYPES.includes(d.mediaType) && d.platform !== undefined && d.platform.os === platform.os && d.platform.architecture === platform.architecture,
  );
  const exact = candidates.find((d) => platform.variant === undefined || d.platform?.variant === platform.variant);
  const chosen = exact ?? candidates.find((d) => d.platform?.variant === undefined) ?? candidates[0];
  if (chosen) return chosen;
  // An index without any platform fields (e.g. a single-image OCI layout) has one obvious answer.
  const manifests = index.manifests.filter((d) => MANIFEST_TYPES.includes(d.mediaType));
  const only = manifests[0];
  if (manifests.length === 1 && only && only.platform === undefined) return only;
  const available = index.manifests
    .map((d) => (d.platform ? `${d.platform.os}/${d.platform.architecture}${d.platform.variant ? `/${d.platform.variant}` : ''}` : '(no platform)'))
    .join(', ');
  throw new InvalidDocumentError(what, `no image for ${platform.os}/${platform.architecture} in index (available: ${available || 'none'})`);
}

export function runtimeConfigOf(config: ImageConfig): ImageRuntimeConfig {
  const c = config.config ?? {};
  const out: ImageRuntimeConfig = {};
  if (c.Entrypoint) out.entrypoint = c.Entrypoint;
  if (c.Cmd) out.cmd = c.Cmd;
  if (c.Env) out.env = c.Env;
  if (c.WorkingDir) out.workingDir = c.WorkingDir;
  if (c.User) out.user = c.User;
  if (c.ExposedPorts) out.exposedPorts = Object.keys(c.ExposedPorts);
  const h = c.Healthcheck;
  if (h && h.Test && h.Test.length > 0) {
    const healthcheck: ImageHealthcheck = { test: h.Test };
    const ms = (ns: number | undefined): number | undefined => (ns === undefined || ns === 0 ? undefined : ns / 1e6);
    const interval = ms(h.Interval);
    const timeout = ms(h.Timeout);
    const startPeriod = ms(h.StartPeriod);
    const startInterval = ms(h.StartInterval);
    if (interval !== undefined) healthcheck.intervalMs = interval;
    if (timeout !== undefined) healthcheck.timeoutMs = timeout;
    if (startPeriod !== undefined) healthcheck.startPeriodMs = startPeriod;
    if (startInterval !== undefined) healthcheck.startIntervalMs = startInterval;
    if (h.Retries !== undefined && h.Retries !== 0) healthcheck.retries = h.Retries;
    out.healthcheck = healthcheck;
  }
  return out;
}
