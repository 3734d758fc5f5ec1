// Follows the services an apply wrote until each has converged (see convergence.ts), drawing the
// progress as it goes (progress.ts). One List per kind gives a snapshot and its revision; Watch
// streams from the next revision keep it current, so no change between the two is missed. A broken
// watch is re-established from a fresh List.
import type { ApplyResult__Output } from '../../proto/gen/tessera/api/v1/ApplyResult.js';
import type { WatchEvent__Output } from '../../proto/gen/tessera/api/v1/WatchEvent.js';
import type { Node, Service, Task } from '../../common/resources/types.js';
import { templateKey } from '../../control-plane/controllers/rollout.js';
import type { ApiClient } from '../client.js';
import { allSettled, DEFAULT_FAILURE_LIMIT, serviceConvergence, type ServiceConvergence } from './convergence.js';
import { progressRenderer, type ProgressStream, type ServiceLine } from './progress.js';

export const DEFAULT_FOLLOW_TIMEOUT_MS = 120_000;

/** A service to follow, and the spec template the apply wrote for it. */
export interface FollowTarget {
  stack: string;
  name: string;
  appliedTemplate: string;
  /** The apply created the service: every failure of its tasks is new. */
  created?: boolean;
}

export interface FollowOptions {
  /** Return at once without following. */
  detach?: boolean;
  timeoutMs?: number;
  out?: ProgressStream;
  isTTY?: boolean;
  /** New failures of one service's current tasks after which it is given up on. */
  failureLimit?: number;
}

/** The outcome per service, for callers that want more than the thrown error. */
export interface FollowResult {
  services: Array<{ target: FollowTarget; state: ServiceConvergence }>;
}

/** The services among an Apply RPC's results (others — networks, … — have nothing to converge). */
export function followTargets(results: readonly ApplyResult__Output[]): FollowTarget[] {
  const targets: FollowTarget[] = [];
  for (const r of results) {
    // A pruned service is gone on purpose: nothing to wait for.
    if (r.ref?.kind !== 'Service' || !r.objectJson || r.action === 'pruned') continue;
    const service = JSON.parse(r.objectJson) as Service;
    targets.push({
      stack: r.ref.stack,
      name: r.ref.name,
      appliedTemplate: templateKey(service.spec),
      ...(r.action === 'created' ? { created: true } : {}),
    });
  }
  return targets;
}

/** "90s", "5m", "1500ms", "2h" (a bare number is seconds) → milliseconds. */
export function parseDuration(value: string, option = '--timeout'): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) throw new Error(`${option}: expected a duration like 90s, 5m or 1500ms, got "${value}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(match[1]) * unit);
}

function formatDuration(ms: number): string {
  return ms % 60_000 === 0 && ms >= 60_000 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

const keyOf = (stack: string | undefined, name: string) => `${stack ?? ''}/${name}`;

/** Objects of one kind as the watch keeps them: stack/name → object. */
class Mirror<T extends Service | Task | Node> {
  readonly byKey = new Map<string, T>();

  reset(objects: readonly T[]): void {
    this.byKey.clear();
    for (const o of objects) this.byKey.set(keyOf(o.metadata.stack, o.metadata.name), o);
  }

  apply(event: WatchEvent__Output): void {
    const parsed = JSON.parse(event.objectJson) as Partial<T> & { key?: string };
    let key: string | undefined;
    if (parsed.metadata) key = keyOf(parsed.metadata.stack, parsed.metadata.name);
    else if (parsed.key) {
      // A deletion without the old value: /tessera/objects/<kind>/<stack or _>/<name>.
      const [stack, name] = parsed.key.split('/').slice(-2) as [string, string];
      key = keyOf(stack === '_' ? '' : stack, name);
    }
    if (key === undefined) return;
    if (event.type === 'deleted') this.byKey.delete(key);
    else this.byKey.set(key, parsed as T);
  }

  values(): T[] {
    return [...this.byKey.values()];
  }
}

function displayNames(targets: readonly FollowTarget[]): string[] {
  const oneStack = new Set(targets.map((t) => t.stack)).size <= 1;
  return targets.map((t) => (oneStack || !t.stack ? t.name : `${t.stack}/${t.name}`));
}

/**
 * Follows `services` (Apply results, or targets) until every one has converged; throws an Error
 * naming each service that failed or had not converged when the timeout passed.
 */
export async function followUntilConverged(
  client: ApiClient,
  services: readonly ApplyResult__Output[] | readonly FollowTarget[],
  options: FollowOptions = {},
): Promise<FollowResult> {
  const targets = services.map((s) => ('appliedTemplate' in s ? [s] : followTargets([s]))).flat();
  if (options.detach || targets.length === 0) return { services: [] };
  const out = options.out ?? process.stdout;
  const timeoutMs = options.timeoutMs ?? DEFAULT_FOLLOW_TIMEOUT_MS;
  const follower = new Follower(client, targets, options.failureLimit ?? DEFAULT_FAILURE_LIMIT);
  const renderer = progressRenderer(out, options.isTTY ?? false);
  const names = displayNames(targets);
  const lines = (states: ServiceConvergence[]): ServiceLine[] => states.map((state, i) => ({ name: names[i]!, state }));

  const states = await follower.run(timeoutMs, (s) => renderer.update(lines(s)));
  renderer.finish(lines(states.states));
  const result: FollowResult = { services: targets.map((target, i) => ({ target, state: states.states[i]! })) };
  const unsettled = states.states.map((state, i) => ({ name: names[i]!, state })).filter(({ state }) => state.phase !== 'converged');
  if (unsettled.length === 0) return result;
  const why = (s: ServiceConvergence) =>
    s.phase === 'failed'
      ? s.detail
      : `${s.ready}/${s.desired} running${s.detail ? `, ${s.detail}` : ''}${s.lastError && !s.detail.includes(s.lastError) ? `; last task error: ${s.lastError}` : ''}`;
  const head = states.timedOut ? `not converged after ${formatDuration(timeoutMs)}` : 'did not converge';
  const list = unsettled.map(({ name, state }) => `${name} (${why(state)})`);
  throw new Error(`${unsettled.length === 1 ? 'service' : 'services'} ${head}: ${list.join('; ')}`);
}

class Follower {
  private readonly services = new Mirror<Service>();
  private readonly tasks = new Mirror<Task>();
  private readonly nodes = new Mirror<Node>();
  private readonly stacks: string[];
  private endedBefore: Set<string> | undefined;

  constructor(
    private readonly client: ApiClient,
    private readonly targets: readonly FollowTarget[],
    private readonly failureLimit: number,
  ) {
    this.stacks = [...new Set(targets.map((t) => t.stack))];
  }

  private states(): ServiceConvergence[] {
    const tasks = this.tasks.values();
    const nodes = this.nodes.values();
    return this.targets.map((target) =>
      serviceConvergence({
        service: this.services.byKey.get(keyOf(target.stack, target.name)),
        appliedTemplate: target.appliedTemplate,
        tasks: tasks.filter((t) => t.spec.serviceName === target.name && t.spec.serviceStack === target.stack),
        nodes,
        endedBefore: target.created ? new Set() : (this.endedBefore ?? new Set()),
        failureLimit: this.failureLimit,
      }),
    );
  }

  /** Lists everything followed and watches it from the next revision; resolves when a watch ends or fails. */
  private async listAndWatch(signal: AbortSignal, changed: () => void): Promise<void> {
    const watches: Array<{ kind: string; stack?: string; from: number; mirror: Mirror<Service> | Mirror<Task> | Mirror<Node> }> = [];
    const services: Service[] = [];
    const tasks: Task[] = [];
    for (const stack of this.stacks) {
      const s = await this.client.list({ kind: 'Service', stack });
      services.push(...s.objectsJson.map((j) => JSON.parse(j) as Service));
      watches.push({ kind: 'Service', stack, from: Number(s.revision) + 1, mirror: this.services });
      const t = await this.client.list({ kind: 'Task', stack });
      tasks.push(...t.objectsJson.map((j) => JSON.parse(j) as Task));
      watches.push({ kind: 'Task', stack, from: Number(t.revision) + 1, mirror: this.tasks });
    }
    // Nodes, for the desired count of global services (one task per eligible node).
    const n = await this.client.list({ kind: 'Node', allStacks: true });
    watches.push({ kind: 'Node', from: Number(n.revision) + 1, mirror: this.nodes });
    this.services.reset(services);
    this.tasks.reset(tasks);
    this.nodes.reset(n.objectsJson.map((j) => JSON.parse(j) as Node));
    // Tasks that had ended before following began are history, not a sign of this apply failing.
    this.endedBefore ??= new Set(tasks.filter((t) => ['complete', 'failed', 'rejected'].includes(t.status.state)).map((t) => t.metadata.name));
    changed();
    const local = new AbortController();
    const stop = () => local.abort();
    signal.addEventListener('abort', stop, { once: true });
    try {
      // The first watch to end (or fail) ends them all; the caller lists again.
      await Promise.race(
        watches.map((w) =>
          this.client.watch(
            { kind: w.kind, ...(w.stack !== undefined ? { stack: w.stack } : { allStacks: true }), fromRevision: w.from },
            (event) => {
              w.mirror.apply(event);
              changed();
            },
            local.signal,
          ),
        ),
      );
    } finally {
      signal.removeEventListener('abort', stop);
      local.abort();
    }
  }

  async run(timeoutMs: number, draw: (states: ServiceConvergence[]) => void): Promise<{ states: ServiceConvergence[]; timedOut: boolean }> {
    const abort = new AbortController();
    let latest: ServiceConvergence[] = [];
    let finish: (timedOut: boolean) => void = () => {};
    const finished = new Promise<boolean>((resolve) => (finish = resolve));
    let pending: NodeJS.Timeout | undefined;
    const evaluate = () => {
      pending = undefined;
      if (this.endedBefore === undefined) return;
      latest = this.states();
      draw(latest);
      if (allSettled(latest)) finish(false);
    };
    // Bursts of events (a scale of 50 tasks) are drawn once.
    const changed = () => (pending ??= setTimeout(evaluate, 50));
    const deadline = setTimeout(() => finish(true), timeoutMs);
    const tick = setInterval(changed, 1000);
    let failure: Error | undefined;
    // A function, not the property itself: the abort comes from outside while the loop awaits, and a
    // narrowed `abort.signal.aborted` would read as if it could not change.
    const stopped = (): boolean => abort.signal.aborted;
    const loop = (async () => {
      let attempts = 0;
      while (!stopped()) {
        try {
          await this.listAndWatch(abort.signal, changed);
          attempts = 0;
        } catch (err) {
          if (stopped()) return;
          if (++attempts >= 5) {
            failure = err instanceof Error ? err : new Error(String(err));
            finish(false);
            return;
          }
        }
        if (!stopped()) await new Promise((r) => setTimeout(r, 500));
      }
    })();
    const timedOut = await finished;
    abort.abort();
    clearTimeout(deadline);
    clearInterval(tick);
    if (pending) clearTimeout(pending);
    await loop;
    if (failure !== undefined) throw failure;
    if (this.endedBefore !== undefined) latest = this.states();
    return { states: latest, timedOut };
  }
}
