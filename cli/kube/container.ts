// One container's process, environment, ports and resources.
import { describeValue, type IssuePath } from '../../common/resources/schema.js';
import type { PortSpec, ServiceSpec } from '../../common/resources/types.js';
import { checkFields, type DocContext } from './findings.js';
import { parseKubeQuantity } from './quantity.js';
import { isMap, readBool, readInt, readList, readMap, readProtocol, readString, readStringList } from './read.js';
import type { ContainerPort, KubeLookup } from './types.js';

export const CONTAINER_FIELDS = {
  name: true,
  image: true,
  command: true,
  args: true,
  workingDir: true,
  env: true,
  envFrom: true,
  ports: true,
  resources: true,
  livenessProbe: true,
  readinessProbe: true,
  securityContext: true,
  volumeMounts: true,
  imagePullPolicy: true,
  // Tessera writes no termination-message file; these only say where Kubernetes would read it.
  terminationMessagePath: true,
  terminationMessagePolicy: true,
  startupProbe: 'startup probes are not implemented; a livenessProbe with initialDelaySeconds gives a start period',
  lifecycle: 'no post-start or pre-stop hooks',
  stdin: true,
  // Closes stdin after the first attach ends; nothing attaches to a Tessera task, so stdin: true
  // alone gives the same container (open, never delivering data).
  stdinOnce: true,
  tty: true,
  volumeDevices: 'no raw block devices',
  resizePolicy: 'resources are changed by a rolling update',
  restartPolicy: 'per-container restart policies belong to sidecar init containers, which are not supported',
} as const;

type ProcessSpec = Pick<ServiceSpec, 'image' | 'command' | 'args' | 'workdir' | 'env' | 'tty' | 'stdinOpen'>;

export function translateProcess(
  ctx: DocContext,
  container: Readonly<Record<string, unknown>>,
  path: IssuePath,
  stack: string,
  lookup: KubeLookup,
): Partial<ProcessSpec> {
  const out: Partial<ProcessSpec> = {};
  const image = readString(ctx, container['image'], [...path, 'image']);
  if (image === undefined) {
    if (container['image'] === undefined) ctx.invalid([...path, 'image'], 'required field is missing: Tessera does not default images');
  } else out.image = image;
  const pull = readString(ctx, container['imagePullPolicy'], [...path, 'imagePullPolicy']);
  if (pull !== undefined && pull !== 'IfNotPresent') {
    ctx.refuse([...path, 'imagePullPolicy'], `only IfNotPresent: a node pulls an image when it does not have it, got ${JSON.stringify(pull)}`);
  }
  const command = readStringList(ctx, container['command'], [...path, 'command']);
  const args = readStringList(ctx, container['args'], [...path, 'args']);
  for (const [key, list] of [
    ['command', command],
    ['args', args],
  ] as const) {
    list?.forEach((item, i) => {
      if (/\$\([A-Za-z_][A-Za-z0-9_]*\)/.test(item)) ctx.refuse([...path, key, i], '$(VAR) references are not expanded');
    });
  }
  if (command && command.length > 0) out.command = command;
  if (args && args.length > 0) out.args = args;
  const workdir = readString(ctx, container['workingDir'], [...path, 'workingDir']);
  if (workdir !== undefined) out.workdir = workdir;
  const env = translateEnv(ctx, container, path, stack, lookup);
  if (Object.keys(env).length > 0) out.env = env;
  // Absent and false are the same container: only true is written.
  if (readBool(ctx, container['tty'], [...path, 'tty']) === true) out.tty = true;
  if (readBool(ctx, container['stdin'], [...path, 'stdin']) === true) out.stdinOpen = true;
  readBool(ctx, container['stdinOnce'], [...path, 'stdinOnce']);
  return out;
}

function keyRef(
  ctx: DocContext,
  value: unknown,
  path: IssuePath,
  what: 'ConfigMap' | 'Secret',
  find: (name: string) => { text: ReadonlyMap<string, string> } | undefined,
): string | undefined {
  const ref = readMap(ctx, value, path);
  if (!ref) return undefined;
  checkFields(ctx, ref, path, { name: true, key: true, optional: true });
  const name = readString(ctx, ref['name'], [...path, 'name']);
  const key = readString(ctx, ref['key'], [...path, 'key']);
  if (name === undefined || key === undefined) {
    ctx.invalid(path, 'expected name and key');
    return undefined;
  }
  const text = find(name)?.text.get(key);
  if (text === undefined && ref['optional'] !== true) {
    ctx.refuse(
      path,
      `${what} ${JSON.stringify(name)} with key ${JSON.stringify(key)} is not in the files applied together: values are resolved when translating`,
    );
  }
  return text;
}

function translateEnv(
  ctx: DocContext,
  container: Readonly<Record<string, unknown>>,
  path: IssuePath,
  stack: string,
  lookup: KubeLookup,
): Record<string, string> {
  const env: Record<string, string> = {};
  readList(ctx, container['envFrom'], [...path, 'envFrom'])?.forEach((entry, i) => {
    const at: IssuePath = [...path, 'envFrom', i];
    const from = readMap(ctx, entry, at);
    if (!from) return;
    checkFields(ctx, from, at, { configMapRef: true, secretRef: true, prefix: true });
    const prefix = readString(ctx, from['prefix'], [...at, 'prefix']) ?? '';
    for (const [key, what] of [
      ['configMapRef', 'ConfigMap'],
      ['secretRef', 'Secret'],
    ] as const) {
      const ref = readMap(ctx, from[key], [...at, key]);
      if (!ref) continue;
      checkFields(ctx, ref, [...at, key], { name: true, optional: true });
      const name = readString(ctx, ref['name'], [...at, key, 'name']) ?? '';
      const data = what === 'ConfigMap' ? lookup.configMap(stack, name) : lookup.secret(stack, name);
      if (!data) {
        if (ref['optional'] !== true)
          ctx.refuse([...at, key], `${what} ${JSON.stringify(name)} is not in the files applied together: values are resolved when translating`);
        continue;
      }
      for (const [k, v] of data.text) env[`${prefix}${k}`] = v;
    }
  });
  readList(ctx, container['env'], [...path, 'env'])?.forEach((entry, i) => {
    const at: IssuePath = [...path, 'env', i];
    const item = readMap(ctx, entry, at);
    if (!item) return;
    checkFields(ctx, item, at, { name: true, value: true, valueFrom: true });
    const name = readString(ctx, item['name'], [...at, 'name']);
    if (name === undefined) {
      ctx.invalid([...at, 'name'], 'required field is missing');
      return;
    }
    const raw = item['value'];
    if (raw !== undefined && raw !== null) {
      if (typeof raw !== 'string') {
        ctx.invalid([...at, 'value'], `expected a string (quote numbers in env values), got ${describeValue(raw)}`);
        return;
      }
      if (/\$\([A-Za-z_][A-Za-z0-9_]*\)/.test(raw)) {
        ctx.refuse([...at, 'value'], '$(VAR) references are not expanded');
        return;
      }
      env[name] = raw;
      return;
    }
    const from = readMap(ctx, item['valueFrom'], [...at, 'valueFrom']);
    if (!from) {
      env[name] = '';
      return;
    }
    checkFields(ctx, from, [...at, 'valueFrom'], {
      configMapKeyRef: true,
      secretKeyRef: true,
      fieldRef: 'the downward API is not available: pod fields are not known when translating',
      resourceFieldRef: 'the downward API is not available: pod fields are not known when translating',
    });
    const value =
      from['configMapKeyRef'] !== undefined
        ? keyRef(ctx, from['configMapKeyRef'], [...at, 'valueFrom', 'configMapKeyRef'], 'ConfigMap', (n) => lookup.configMap(stack, n))
        : from['secretKeyRef'] !== undefined
          ? keyRef(ctx, from['secretKeyRef'], [...at, 'valueFrom', 'secretKeyRef'], 'Secret', (n) => lookup.secret(stack, n))
          : undefined;
    if (value !== undefined) env[name] = value;
  });
  return env;
}

export function translatePorts(
  ctx: DocContext,
  container: Readonly<Record<string, unknown>>,
  path: IssuePath,
): { containerPorts: ContainerPort[]; hostPorts: PortSpec[] } {
  const containerPorts: ContainerPort[] = [];
  const hostPorts: PortSpec[] = [];
  readList(ctx, container['ports'], [...path, 'ports'])?.forEach((entry, i) => {
    const at: IssuePath = [...path, 'ports', i];
    const port = readMap(ctx, entry, at);
    if (!port) return;
    checkFields(ctx, port, at, {
      containerPort: true,
      name: true,
      protocol: true,
      hostPort: true,
      hostIP: 'host ports listen on every address of the node',
    });
    const target = readInt(ctx, port['containerPort'], [...at, 'containerPort'], 1);
    if (target === undefined) {
      if (port['containerPort'] === undefined) ctx.invalid([...at, 'containerPort'], 'required field is missing');
      return;
    }
    const protocol = readProtocol(ctx, port['protocol'], [...at, 'protocol']);
    if (protocol === undefined) return;
    const name = readString(ctx, port['name'], [...at, 'name']);
    containerPorts.push({ port: target, protocol, ...(name !== undefined ? { name } : {}) });
    const hostPort = readInt(ctx, port['hostPort'], [...at, 'hostPort'], 1);
    if (hostPort !== undefined) hostPorts.push({ target, published: hostPort, protocol, mode: 'host' });
  });
  return { containerPorts, hostPorts };
}

function quantity(ctx: DocContext, value: unknown, path: IssuePath): number | undefined {
  if (value === undefined || value === null) return undefined;
  const parsed = typeof value === 'string' || typeof value === 'number' ? parseKubeQuantity(value) : undefined;
  if (parsed === undefined) ctx.invalid(path, `expected a Kubernetes quantity like "100m", "128Mi" or 2, got ${describeValue(value)}`);
  return parsed;
}

/** requests → reservations, limits → limits (cpu in CPUs, memory in bytes). */
export function translateResources(ctx: DocContext, container: Readonly<Record<string, unknown>>, path: IssuePath): ServiceSpec['resources'] {
  const at: IssuePath = [...path, 'resources'];
  const resources = readMap(ctx, container['resources'], at);
  if (!resources) return undefined;
  checkFields(ctx, resources, at, { requests: true, limits: true, claims: 'dynamic resource claims do not exist in Tessera' });
  const out: NonNullable<ServiceSpec['resources']> = {};
  for (const [key, into] of [
    ['requests', 'reservations'],
    ['limits', 'limits'],
  ] as const) {
    const group = readMap(ctx, resources[key], [...at, key]);
    if (!group) continue;
    checkFields(ctx, group, [...at, key], { cpu: true, memory: true });
    const cpu = quantity(ctx, group['cpu'], [...at, key, 'cpu']);
    const memory = quantity(ctx, group['memory'], [...at, key, 'memory']);
    const target: { cpus?: number; memory?: number } = {};
    if (cpu !== undefined && cpu > 0) target.cpus = cpu;
    if (memory !== undefined && memory > 0) target.memory = Math.ceil(memory);
    if (Object.keys(target).length > 0) out[into] = target;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

export function isContainerList(value: unknown): value is ReadonlyArray<Readonly<Record<string, unknown>>> {
  return Array.isArray(value) && value.every(isMap);
}
