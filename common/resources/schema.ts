// The authoritative validation of user-submitted objects. The CLI runs it before sending, and the API
// server runs it again on the JSON it receives, so both reject the same things with the same words.
//
// Input is the manifest form (durations as "5s", memory as "64Mi"); output is the normalised resource
// of types.ts (milliseconds, bytes, CPUs as a number). The normalised form is accepted as input too
// (`delayMs`, integer bytes...), so validateObject(normalised) returns it unchanged: the API server can
// validate what the CLI sends without caring which form it is.

import { z } from 'zod';
import { API_VERSION, isJobMode, KINDS, type Config, type Network, type Secret, type Service, type StackObject, type Volume } from './types.js';
import { parseCpuNanos, parseDurationMs, parseMemoryBytes, formatMemory, type ParseResult } from './quantity.js';
import { formatConstraint, LABEL_KEY_PATTERN, parseConstraint } from './constraints.js';
import { decodedSize, MAX_FILE_OBJECT_BYTES, MAX_REPLICAS, MAX_SUGGESTION_KEY_LENGTH, quoteName } from './limits.js';
import { DNS_LABEL, DNS_NAME, MAX_DNS_NAME_LENGTH } from './names.js';

export type IssuePath = (string | number)[];
export interface ValidationIssue {
  path: IssuePath;
  message: string;
  /** Set when the issue is about a key that should not be there, so a locator can point at the key. */
  unknownField?: boolean;
}
export type ValidationResult = { ok: true; object: Service } | { ok: false; issues: ValidationIssue[] };

/** Kinds a user may submit; Task and Node are written by Tessera itself. */
export const SUBMITTABLE_KINDS = ['Service'] as const;

// ---- describing what was found, for "expected X, got Y" messages ----

export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return typeof value;
}

// ---- field schemas ----

const DNS_LABEL_EXPECTED = 'expected a DNS label (lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters)';
// DNS_LABEL bounds the length too (a separate max(63) would report the same message twice).
const dnsLabel = z.string({ error: DNS_LABEL_EXPECTED }).regex(DNS_LABEL, { error: DNS_LABEL_EXPECTED });

const hostname = z.string().max(MAX_DNS_NAME_LENGTH).regex(DNS_NAME, { error: 'expected a hostname (letters, digits, "-" and ".")' });
/** They end up in /etc/hosts and /etc/resolv.conf: an address and nothing else. */
const ipAddress = z.union([z.ipv4(), z.ipv6()], { error: 'expected an IPv4 or IPv6 address' });

/** A string where YAML users often write a bare number or boolean: say how to fix it, don't coerce. */
function yamlString(what = 'a string') {
  return z.string({
    error: (issue) => {
      const input = issue.input;
      if (typeof input === 'number' || typeof input === 'boolean') {
        return `expected ${what}, got ${typeof input} ${String(input)} (quote it to make it a string: "${String(input)}")`;
      }
      return `expected ${what}`;
    },
  });
}

/** Strings that end up in execve(2)'s argv or envp, where a NUL byte would silently cut them short. */
const NO_NUL = /^[^\0]*$/;
const NUL_EXPECTED = 'expected no NUL byte (a process argument or environment value cannot hold one)';
const execString = () => yamlString().regex(NO_NUL, { error: NUL_EXPECTED });
const stringList = (example: string) => z.array(execString(), { error: `expected a list of strings, e.g. ${example}` });

/**
 * A mapping with keys of the user's choosing. A key "__proto__" is refused: zod skips it (putting
 * it into a JavaScript object would set the object's prototype), so the entry would silently vanish.
 */
function userMap<V extends z.ZodType>(key: z.ZodType<string>, value: V, error: string) {
  return z
    .unknown()
    .superRefine((input, ctx) => {
      if (isMapping(input) && Object.hasOwn(input, '__proto__')) {
        ctx.addIssue({
          code: 'custom',
          path: ['__proto__'],
          input: undefined,
          message: '"__proto__" cannot be used as a key (JavaScript gives that name a meaning of its own)',
        });
      }
    })
    .pipe(z.record(key, value, { error }));
}

const ENV_NAME = /^[^=\0]+$/;
const envMap = userMap(
  z.string().regex(ENV_NAME, { error: 'environment variable names must be non-empty and contain no "="' }),
  execString(),
  'expected a mapping of NAME: "value"',
);

const labelMap = userMap(
  z.string().max(253).regex(LABEL_KEY_PATTERN, { error: 'expected a label key (letters, digits, "-", "_", "." and "/")' }),
  yamlString().max(253, { error: 'expected a label value of at most 253 characters' }),
  'expected a mapping of key: "value"',
);

function boundedInt(min: number, max: number, expected: string) {
  return z.int({ error: expected }).min(min, { error: expected }).max(max, { error: expected });
}
const port = boundedInt(1, 65535, 'expected a port number between 1 and 65535');
const nonNegativeInt = boundedInt(0, Number.MAX_SAFE_INTEGER, 'expected an integer >= 0');
const replicaCount = z
  .int({ error: 'expected an integer >= 0' })
  .min(0, { error: 'expected an integer >= 0' })
  .max(MAX_REPLICAS, { error: `expected at most ${MAX_REPLICAS}, the most replicas a service may have` });

/** A quantity accepted as a string with unit or as a number, parsed into an integer. */
function quantity(parse: (v: string | number) => ParseResult<number>, expected: string, minimum = 0) {
  return z.unknown().transform((value, ctx): number => {
    if (typeof value !== 'string' && typeof value !== 'number') {
      ctx.addIssue({ code: 'custom', message: `expected ${expected}, got ${describeValue(value)}`, input: value });
      return z.NEVER;
    }
    const parsed = parse(value);
    if (!parsed.ok) {
      ctx.addIssue({ code: 'custom', message: parsed.message, input: value });
      return z.NEVER;
    }
    if (parsed.value < minimum) {
      ctx.addIssue({ code: 'custom', message: `expected more than 0, got ${describeValue(value)}`, input: value });
      return z.NEVER;
    }
    return parsed.value;
  });
}
const memory = quantity(parseMemoryBytes, 'a memory quantity like "64Mi" or a number of bytes', 1);
const cpus = quantity(parseCpuNanos, 'a number of CPUs like 0.5 or "500m"', 1).transform((nanos) => nanos / 1e9);
const duration = quantity(parseDurationMs, 'a duration like "5s", "500ms" or "1m30s"');

const constraint = z.string({ error: 'expected a constraint string like "node.labels.zone==a"' }).transform((text, ctx): string => {
  const parsed = parseConstraint(text);
  if (!parsed.ok) {
    ctx.addIssue({ code: 'custom', message: parsed.message, input: text });
    return z.NEVER;
  }
  return formatConstraint(parsed.value);
});

const portSpec = z.strictObject(
  {
    target: port,
    published: port.optional(),
    protocol: z.enum(['tcp', 'udp']).default('tcp'),
    mode: z.enum(['ingress', 'host']).optional(),
  },
  { error: 'expected a mapping like {target: 80, published: 8080}' },
);

const restartPolicy = z.strictObject({
  condition: z.enum(['any', 'on-failure', 'none']).optional(),
  delay: duration.optional(),
  delayMs: nonNegativeInt.optional(),
  maxDelay: duration.optional(),
  maxDelayMs: nonNegativeInt.optional(),
  maxAttempts: nonNegativeInt.optional(),
  window: duration.optional(),
  windowMs: nonNegativeInt.optional(),
});

const resources = z.strictObject({
  limits: z
    .strictObject({
      memory: memory.optional(),
      cpus: cpus.optional(),
      pids: boundedInt(1, Number.MAX_SAFE_INTEGER, 'expected an integer >= 1').optional(),
    })
    .optional(),
  reservations: z
    .strictObject({
      memory: memory.optional(),
      cpus: cpus.optional(),
    })
    .optional(),
});

// ---- fields added for Compose (issue 6): normalised form only (milliseconds, bytes) ----

const absolutePath = z.string({ error: 'expected an absolute path' }).startsWith('/', { error: 'expected an absolute path' });
/** Names of networks, volumes, secrets and configs: not DNS names, so Compose's charset is allowed. */
const OBJECT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const OBJECT_NAME_EXPECTED = 'expected a name of letters, digits, "_", "." and "-", starting with a letter or digit, at most 63 characters';
const objectName = z.string({ error: OBJECT_NAME_EXPECTED }).max(63, { error: OBJECT_NAME_EXPECTED }).regex(OBJECT_NAME, { error: OBJECT_NAME_EXPECTED });
const fileMode = boundedInt(0, 0o7777, 'expected permission bits between 0 and 0o7777 (e.g. 0o440 = 288)');
const stringMap = userMap(z.string(), yamlString(), 'expected a mapping of key: "value"');

const networkAttachment = z.strictObject({
  name: objectName,
  aliases: z.array(hostname).optional(),
});

const mount = z
  .strictObject({
    type: z.enum(['volume', 'bind', 'tmpfs']),
    source: z.string().min(1).optional(),
    target: absolutePath,
    readOnly: z.boolean().optional(),
    noCopy: z.boolean().optional(),
    subpath: z.string().optional(),
    propagation: z.enum(['rprivate', 'private', 'rshared', 'shared', 'rslave', 'slave']).optional(),
    createHostPath: z.boolean().optional(),
    sizeBytes: nonNegativeInt.optional(),
    mode: fileMode.optional(),
  })
  .superRefine((m, ctx) => {
    if (m.type === 'bind' && (m.source === undefined || !m.source.startsWith('/'))) {
      ctx.addIssue({ code: 'custom', path: ['source'], input: m.source, message: 'a bind mount needs an absolute host path as source' });
    }
    if (m.type === 'tmpfs' && m.source !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['source'], input: m.source, message: 'a tmpfs mount has no source' });
    }
    const only = (field: 'noCopy' | 'subpath' | 'propagation' | 'createHostPath' | 'sizeBytes' | 'mode', type: string) => {
      if (m[field] !== undefined && m.type !== type) {
        ctx.addIssue({ code: 'custom', path: [field], input: m[field], message: `${field} applies to ${type} mounts only` });
      }
    };
    only('noCopy', 'volume');
    only('subpath', 'volume');
    only('propagation', 'bind');
    only('createHostPath', 'bind');
    only('sizeBytes', 'tmpfs');
    only('mode', 'tmpfs');
  });

const fileReference = z.strictObject({
  source: objectName,
  target: z.string().min(1),
  uid: z.string().regex(/^\d+$/, { error: 'expected a numeric uid as a string, e.g. "1000"' }).optional(),
  gid: z.string().regex(/^\d+$/, { error: 'expected a numeric gid as a string, e.g. "1000"' }).optional(),
  mode: fileMode.optional(),
});

const healthcheck = z
  .strictObject({
    test: z.array(z.string()).min(1).optional(),
    intervalMs: nonNegativeInt.optional(),
    timeoutMs: nonNegativeInt.optional(),
    retries: nonNegativeInt.optional(),
    startPeriodMs: nonNegativeInt.optional(),
    startIntervalMs: nonNegativeInt.optional(),
    disable: z.boolean().optional(),
  })
  .superRefine((h, ctx) => {
    const first = h.test?.[0];
    if (first !== undefined && !['CMD', 'CMD-SHELL', 'NONE'].includes(first)) {
      ctx.addIssue({ code: 'custom', path: ['test', 0], input: first, message: 'a health check test starts with "CMD", "CMD-SHELL" or "NONE"' });
    }
  });

const dependency = z.strictObject({
  service: dnsLabel,
  condition: z.enum(['service_started', 'service_healthy', 'service_completed_successfully']),
  restart: z.boolean().optional(),
  required: z.boolean().optional(),
});

const updatePolicy = z.strictObject({
  parallelism: nonNegativeInt.optional(),
  delayMs: nonNegativeInt.optional(),
  failureAction: z.enum(['pause', 'continue', 'rollback']).optional(),
  monitorMs: nonNegativeInt.optional(),
  maxFailureRatio: z.number().min(0).max(1).optional(),
  order: z.enum(['stop-first', 'start-first']).optional(),
});

const ulimit = z
  .strictObject({ soft: z.int(), hard: z.int() })
  .refine((u) => u.soft <= u.hard || u.hard === -1, { error: 'the soft limit must not be more than the hard limit' });

const serviceSpec = z
  .strictObject({
    image: z
      .string({ error: 'expected an image reference string' })
      // No spaces, and no control characters (a NUL would cut the reference short in the runtime).
      // oxlint-disable-next-line no-control-regex -- matching control characters (to refuse them) is this regex's purpose
      .regex(/^[^\s\x00-\x1f\x7f]+$/, { error: 'expected an image reference without spaces, e.g. "registry.local/busybox:latest"' }),
    command: stringList('["sh", "-c", "echo hi"]').optional(),
    args: stringList('["--port", "80"]').optional(),
    env: envMap.optional(),
    workdir: z.string().startsWith('/', { error: 'expected an absolute path' }).optional(),
    // A numeric uid is natural to write unquoted; unlike env values it has only one meaning.
    user: z
      .union([z.string(), z.int().min(0)], { error: 'expected a user name or uid, optionally "user:group"' })
      .transform((u) => String(u))
      .optional(),
    hostname: hostname.optional(),
    replicas: replicaCount.default(1),
    ports: z.array(portSpec, { error: 'expected a list of ports like [{target: 80, published: 8080}]' }).optional(),
    resources: resources.optional(),
    placement: z
      .strictObject({
        constraints: z.array(constraint).optional(),
        preferences: z
          .array(
            z.strictObject({
              spread: z
                .string()
                .trim()
                .refine((s) => s.startsWith('node.labels.') && LABEL_KEY_PATTERN.test(s.slice('node.labels.'.length)), {
                  error: 'expected node.labels.KEY, the node label whose values tasks are spread over',
                }),
            }),
          )
          .optional(),
        maxReplicasPerNode: nonNegativeInt.optional(),
      })
      .optional(),
    restart: restartPolicy.optional(),
    stopGracePeriod: duration.optional(),
    stopGracePeriodMs: nonNegativeInt.optional(),
    mode: z.enum(['replicated', 'global', 'replicated-job', 'global-job']).optional(),
    endpointMode: z.enum(['vip', 'dnsrr']).optional(),
    networks: z.array(networkAttachment).optional(),
    mounts: z.array(mount).optional(),
    secrets: z.array(fileReference).optional(),
    configs: z.array(fileReference).optional(),
    healthcheck: healthcheck.optional(),
    dependsOn: z.array(dependency).optional(),
    expose: z.array(z.strictObject({ port, protocol: z.enum(['tcp', 'udp']) })).optional(),
    readOnly: z.boolean().optional(),
    userns: z.enum(['auto', 'host']).optional(),
    capAdd: z.array(z.string().regex(/^[A-Z_]+$/, { error: 'expected a capability name like NET_ADMIN' })).optional(),
    capDrop: z.array(z.string().regex(/^[A-Z_]+$/, { error: 'expected a capability name like NET_ADMIN' })).optional(),
    ulimits: z.record(z.string().regex(/^[a-z]+$/), ulimit).optional(),
    sysctls: stringMap.optional(),
    extraHosts: z.array(z.strictObject({ hostname, address: ipAddress })).optional(),
    dns: z
      .strictObject({
        servers: z.array(ipAddress).optional(),
        search: z.array(hostname).optional(),
        options: z.array(z.string().regex(/^[a-z][a-z0-9-]*(:[0-9]+)?$/, { error: 'expected a resolver option like ndots:2 or rotate' })).optional(),
      })
      .optional(),
    stopSignal: z
      .string()
      .regex(/^(SIG)?[A-Z0-9+-]+$/, { error: 'expected a signal name like SIGTERM' })
      .optional(),
    init: z.boolean().optional(),
    tty: z.boolean().optional(),
    stdinOpen: z.boolean().optional(),
    logging: z.strictObject({ driver: z.string().optional(), options: stringMap.optional() }).optional(),
    containerLabels: stringMap.optional(),
    updateConfig: updatePolicy.optional(),
    rollbackConfig: updatePolicy.optional(),
  })
  .superRefine((spec, ctx) => {
    const seen = new Map<string, number>();
    spec.ports?.forEach((p, index) => {
      if (p.published === undefined) return;
      const key = `${p.published}/${p.protocol}`;
      const first = seen.get(key);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['ports', index, 'published'],
          input: p.published,
          message: `published port ${key} is already used by ports[${first}]`,
        });
      } else {
        seen.set(key, index);
      }
    });
    const limit = spec.resources?.limits;
    const reserve = spec.resources?.reservations;
    if (limit?.memory !== undefined && reserve?.memory !== undefined && reserve.memory > limit.memory) {
      ctx.addIssue({
        code: 'custom',
        path: ['resources', 'reservations', 'memory'],
        input: reserve.memory,
        message: `reservation ${formatMemory(reserve.memory)} is more than the limit ${formatMemory(limit.memory)}`,
      });
    }
    if (limit?.cpus !== undefined && reserve?.cpus !== undefined && reserve.cpus > limit.cpus) {
      ctx.addIssue({
        code: 'custom',
        path: ['resources', 'reservations', 'cpus'],
        input: reserve.cpus,
        message: `reservation ${reserve.cpus} CPUs is more than the limit ${limit.cpus}`,
      });
    }
    const both = (a: string, b: string, obj: Record<string, unknown> | undefined, path: IssuePath) => {
      if (obj?.[a] !== undefined && obj[b] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [...path, b], input: obj[b], message: `give either ${a} or ${b}, not both` });
      }
    };
    both('delay', 'delayMs', spec.restart, ['restart']);
    both('maxDelay', 'maxDelayMs', spec.restart, ['restart']);
    both('window', 'windowMs', spec.restart, ['restart']);
    if (isJobMode(spec.mode) && spec.restart?.condition === 'any') {
      ctx.addIssue({
        code: 'custom',
        path: ['restart', 'condition'],
        input: 'any',
        message: `a job (mode ${spec.mode}) runs to completion and restarts only failed tasks: use on-failure or none`,
      });
    }
    const global = spec.mode === 'global' || spec.mode === 'global-job';
    if (global && spec.replicas !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['replicas'],
        input: spec.replicas,
        message: `replicas does not apply to mode ${spec.mode}: it runs one task per node`,
      });
    }
    both('stopGracePeriod', 'stopGracePeriodMs', spec, []);
  });

const objectMeta = z.strictObject(
  {
    name: dnsLabel,
    stack: dnsLabel.optional(),
    labels: labelMap.optional(),
    // Set by the server; accepted so `tsctl get -o yaml` output can be applied again.
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    generation: nonNegativeInt.optional(),
    createdAt: z.string().optional(),
  },
  { error: 'expected a mapping with at least name' },
);

const serviceManifest = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Service'),
  metadata: objectMeta,
  spec: serviceSpec,
  // Read-only; accepted (and dropped) so that `get -o yaml` output round-trips through apply.
  status: z
    .strictObject({
      observedGeneration: z.number().optional(),
      runningTasks: z.number().optional(),
      desiredTasks: z.number().optional(),
    })
    .optional(),
});

type ServiceManifest = z.output<typeof serviceManifest>;

/** Removes keys whose value is undefined, so normalised objects compare and serialise cleanly. */
function compact<T extends object>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue;
    out[key] = v !== null && typeof v === 'object' && !Array.isArray(v) ? compact(v) : v;
  }
  return out as T;
}

/** Manifest form (after parsing) → the stored Service of types.ts. */
export function normalizeService(manifest: ServiceManifest): Service {
  const { spec } = manifest;
  const restart = spec.restart && {
    condition: spec.restart.condition,
    delayMs: spec.restart.delay ?? spec.restart.delayMs,
    maxDelayMs: spec.restart.maxDelay ?? spec.restart.maxDelayMs,
    maxAttempts: spec.restart.maxAttempts,
    windowMs: spec.restart.window ?? spec.restart.windowMs,
  };
  return compact<Service>({
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: manifest.metadata,
    spec: {
      image: spec.image,
      command: spec.command,
      args: spec.args,
      env: spec.env,
      workdir: spec.workdir,
      user: spec.user,
      hostname: spec.hostname,
      replicas: spec.replicas,
      ports: spec.ports,
      resources: spec.resources,
      placement: spec.placement,
      restart,
      stopGracePeriodMs: spec.stopGracePeriod ?? spec.stopGracePeriodMs,
      mode: spec.mode,
      endpointMode: spec.endpointMode,
      networks: spec.networks,
      mounts: spec.mounts,
      secrets: spec.secrets,
      configs: spec.configs,
      healthcheck: spec.healthcheck,
      dependsOn: spec.dependsOn,
      expose: spec.expose,
      readOnly: spec.readOnly,
      userns: spec.userns,
      capAdd: spec.capAdd,
      capDrop: spec.capDrop,
      ulimits: spec.ulimits,
      sysctls: spec.sysctls,
      extraHosts: spec.extraHosts,
      dns: spec.dns,
      stopSignal: spec.stopSignal,
      init: spec.init,
      tty: spec.tty,
      stdinOpen: spec.stdinOpen,
      logging: spec.logging,
      containerLabels: spec.containerLabels,
      updateConfig: spec.updateConfig,
      rollbackConfig: spec.rollbackConfig,
    },
  });
}

// ---- the other kinds a stack is made of (Compose, issue 6) ----

const stackObjectMeta = objectMeta.extend({ name: objectName });

function envelope<K extends string, S extends z.ZodType>(kind: K, spec: S) {
  return z.strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(kind),
    metadata: stackObjectMeta,
    spec,
  });
}

const base64 = z
  .string({ error: 'expected base64 data' })
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, { error: 'expected base64 data' })
  .refine((d) => d.length % 4 === 0, { error: 'expected base64 data (length a multiple of 4)' });
/** A Secret's or Config's data: base64 of at most 500 KiB once decoded (Swarm's limit). */
function fileObject<K extends 'Secret' | 'Config'>(kind: K) {
  return envelope(kind, z.strictObject({ data: base64 })).superRefine((o, ctx) => {
    const size = decodedSize(o.spec.data);
    if (size > MAX_FILE_OBJECT_BYTES) {
      ctx.addIssue({
        code: 'custom',
        path: ['spec', 'data'],
        input: size,
        message: `${kind} ${o.metadata.name} holds ${size} bytes; at most ${MAX_FILE_OBJECT_BYTES} (500 KiB) are allowed`,
      });
    }
  });
}
const CIDR4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const cidr = z.string().refine(
  (c) => {
    const m = CIDR4.exec(c);
    return m !== null && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
  },
  { error: 'expected an IPv4 subnet in CIDR form, e.g. "10.20.0.0/24"' },
);

const networkManifest = envelope(
  'Network',
  z.strictObject({
    driver: z.enum(['overlay', 'bridge']).optional(),
    internal: z.boolean().optional(),
    attachable: z.boolean().optional(),
    subnets: z.array(cidr).optional(),
    enableIpv6: z.boolean().optional(),
  }),
);
const volumeManifest = envelope(
  'Volume',
  z.strictObject({
    driver: z.literal('local').optional(),
    driverOpts: stringMap.optional(),
  }),
);
const secretManifest = fileObject('Secret');
const configManifest = fileObject('Config');

export type StackValidationResult = { ok: true; object: StackObject } | { ok: false; issues: ValidationIssue[] };

function parseStackObject(schema: z.ZodType, input: unknown): StackValidationResult {
  const result = schema.safeParse(input, { error: errorMap, reportInput: true });
  if (!result.success) return { ok: false, issues: toIssues(result.error.issues) };
  return { ok: true, object: compact(result.data as Network | Volume | Secret | Config) };
}

/**
 * Validates any object a stack is made of (Service, Network, Volume, Secret, Config). The API
 * server does not take the last four yet, so validateObject still refuses them.
 */
export function validateStackObject(input: unknown): StackValidationResult {
  if (!isMapping(input)) return validateObject(input);
  switch (input['kind']) {
    case 'Network':
      return parseStackObject(networkManifest, input);
    case 'Volume':
      return parseStackObject(volumeManifest, input);
    case 'Secret':
      return parseStackObject(secretManifest, input);
    case 'Config':
      return parseStackObject(configManifest, input);
    default:
      return validateObject(input);
  }
}

// ---- turning zod issues into "expected X, got Y" messages ----

const TYPE_NOUNS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  record: 'a mapping',
};

function knownKeysOf(inst: unknown): string[] {
  if (inst instanceof z.ZodObject) return Object.keys(inst.shape as Record<string, unknown>);
  return [];
}

/** Messages for issues whose schema gave none; schema-level messages take precedence. */
const errorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return `required field is missing (expected ${TYPE_NOUNS[issue.expected] ?? issue.expected})`;
      return `expected ${TYPE_NOUNS[issue.expected] ?? issue.expected}`;
    case 'invalid_value':
      return issue.values.length === 1
        ? `expected ${JSON.stringify(issue.values[0])}`
        : `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
      return issue.origin === 'string' && issue.minimum === 1
        ? 'expected a non-empty string'
        : `expected ${issue.origin === 'array' ? 'a list of length ' : ''}${issue.inclusive ? '>=' : '>'} ${String(issue.minimum)}`;
    case 'too_big':
      return issue.origin === 'string'
        ? `expected at most ${String(issue.maximum)} characters`
        : `expected ${issue.origin === 'array' ? 'a list of length ' : ''}${issue.inclusive ? '<=' : '<'} ${String(issue.maximum)}`;
    case 'unrecognized_keys':
      return knownKeysOf(issue.inst).join(', ');
    // Zod's own message is clear enough for these (and our schemas give custom checks their own).
    case 'custom':
    case 'invalid_element':
    case 'invalid_format':
    case 'invalid_key':
    case 'invalid_union':
    case 'not_multiple_of':
      return undefined;
  }
};

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] ?? 0;
      row[j] = Math.min(above + 1, (row[j - 1] ?? 0) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}

/** Known keys within edit distance 2 of `key`; none for a long key, which no typo explains. */
function suggestionsFor(key: string, known: string[]): string[] {
  if (key.length > MAX_SUGGESTION_KEY_LENGTH) return [];
  return known.filter((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
}

function unknownFieldMessage(key: string, known: string[]): string {
  const close = suggestionsFor(key, known);
  const hint = close.length > 0 ? `; did you mean ${close.map((k) => JSON.stringify(k)).join(' or ')}?` : '';
  const list = known.length > 0 ? ` (known fields here: ${known.join(', ')})` : '';
  return `unknown field ${quoteName(key)}${hint}${list}`;
}

/** An issue path as messages print it ("spec.ports.0.target"), long keys shortened. */
export function formatIssuePath(path: IssuePath): string {
  if (path.length === 0) return '(root)';
  return path.map((p) => (typeof p === 'string' && p.length > MAX_SUGGESTION_KEY_LENGTH ? quoteName(p) : String(p))).join('.');
}

/**
 * Issues reported per object. A mapping with a million unknown keys is one mistake repeated;
 * listing (and spelling out hints for) every one would cost more than the request did.
 */
export const MAX_ISSUES_PER_OBJECT = 50;

function toPath(path: PropertyKey[]): IssuePath {
  return path.map((p) => (typeof p === 'number' ? p : String(p)));
}

function toIssues(zodIssues: readonly z.core.$ZodIssue[]): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  let total = 0;
  for (const issue of zodIssues) total += issue.code === 'unrecognized_keys' ? issue.keys.length : 1;
  for (const issue of zodIssues) {
    if (issues.length >= MAX_ISSUES_PER_OBJECT) break;
    const path = toPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      const known = issue.message === '' ? [] : issue.message.split(', ');
      for (const key of issue.keys.slice(0, MAX_ISSUES_PER_OBJECT - issues.length)) {
        issues.push({ path: [...path, key], message: unknownFieldMessage(key, known), unknownField: true });
      }
      continue;
    }
    if (issue.code === 'invalid_key' || issue.code === 'invalid_element') {
      issues.push({ path, message: issue.issues[0]?.message ?? issue.message, unknownField: true });
      continue;
    }
    let message = issue.message;
    if (issue.code === 'invalid_type' && issue.input === undefined && !message.startsWith('required')) {
      message = `required field is missing (${message})`;
    }
    // Every "expected ..." message says what was found too, unless the field was missing.
    if (message.startsWith('expected') && !message.includes(', got ') && 'input' in issue && issue.input !== undefined) {
      message = `${message}, got ${describeValue(issue.input)}`;
    }
    issues.push({ path, message });
  }
  if (total > issues.length) issues.push({ path: [], message: `${total - issues.length} more problem(s) in this object not listed` });
  return issues;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Validates a Service (manifest or normalised form) and returns it normalised. */
export function validateService(input: unknown): ValidationResult {
  const result = serviceManifest.safeParse(input, { error: errorMap, reportInput: true });
  if (!result.success) return { ok: false, issues: toIssues(result.error.issues) };
  return { ok: true, object: normalizeService(result.data) };
}

/** Validates any user-submitted object, dispatching on `kind`. */
export function validateObject(input: unknown): ValidationResult {
  if (!isMapping(input)) {
    return { ok: false, issues: [{ path: [], message: `expected a mapping with apiVersion, kind, metadata and spec, got ${describeValue(input)}` }] };
  }
  const kind = input['kind'];
  if (kind === 'Service') return validateService(input);
  const issues: ValidationIssue[] = [];
  const apiVersion = input['apiVersion'];
  if (apiVersion === undefined) {
    issues.push({ path: ['apiVersion'], message: `required field is missing (expected ${JSON.stringify(API_VERSION)})` });
  } else if (apiVersion !== API_VERSION) {
    issues.push({ path: ['apiVersion'], message: `expected ${JSON.stringify(API_VERSION)}, got ${describeValue(apiVersion)}` });
  }
  const supported = SUBMITTABLE_KINDS.map((k) => JSON.stringify(k)).join(', ');
  const systemKinds: readonly string[] = KINDS.filter((k) => !(SUBMITTABLE_KINDS as readonly string[]).includes(k));
  const why =
    kind === undefined
      ? 'required field is missing'
      : typeof kind === 'string' && systemKinds.includes(kind)
        ? `kind ${kind} is managed by Tessera and cannot be submitted`
        : `unsupported kind ${describeValue(kind)}`;
  issues.push({ path: ['kind'], message: `${why}; supported kinds: ${supported}` });
  return { ok: false, issues };
}
