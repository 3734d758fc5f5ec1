// What the hollow nodes saw, put together from every fleet process: which tasks ran where and when,
// and so whether any service slot ever ran twice at once. Each event carries its fleet's wall clock
// (sub-millisecond, one machine), so runs reported by different processes line up.
import type { HollowEvent } from './hollow-worker.js';

export interface TaskRun {
  task: string;
  slot: string;
  node: string;
  start: number;
  /** Undefined while it runs. */
  end: number | undefined;
}

export interface SlotOverlap {
  slot: string;
  first: TaskRun;
  second: TaskRun;
}

/** Pure: every pair of runs of one slot that overlap in time (an end at the very start of the next is no overlap). */
export function slotOverlaps(runs: Iterable<TaskRun>): SlotOverlap[] {
  const bySlot = new Map<string, TaskRun[]>();
  for (const run of runs) {
    const list = bySlot.get(run.slot);
    if (list) list.push(run);
    else bySlot.set(run.slot, [run]);
  }
  const overlaps: SlotOverlap[] = [];
  for (const [slot, list] of bySlot) {
    if (list.length < 2) continue;
    list.sort((a, b) => a.start - b.start);
    let latest = list[0]!;
    for (const run of list.slice(1)) {
      if (run.start < (latest.end ?? Infinity)) overlaps.push({ slot, first: latest, second: run });
      if ((run.end ?? Infinity) > (latest.end ?? Infinity)) latest = run;
    }
  }
  return overlaps;
}

export class HollowView {
  readonly runs = new Map<string, TaskRun>();
  assignedCount = 0;
  failedCount = 0;
  firstAssignedAt: number | undefined;
  lastAssignedAt: number | undefined;
  lastRunAt: number | undefined;
  private running = 0;
  private readonly waiters = new Set<() => void>();

  add(events: readonly HollowEvent[]): void {
    for (const e of events) {
      if (e.kind === 'assigned') {
        this.assignedCount++;
        this.firstAssignedAt ??= e.at;
        this.lastAssignedAt = Math.max(this.lastAssignedAt ?? 0, e.at);
      } else if (e.kind === 'run') {
        this.runs.set(e.task, { task: e.task, slot: e.slot, node: e.node, start: e.at, end: undefined });
        this.running++;
        this.lastRunAt = Math.max(this.lastRunAt ?? 0, e.at);
      } else if (e.kind === 'end') {
        const run = this.runs.get(e.task);
        if (run && run.end === undefined) {
          run.end = e.at;
          this.running--;
        }
      } else {
        this.failedCount++;
      }
    }
    // A waiter that is done removes itself; deleting from a Set while iterating it is safe.
    for (const wake of this.waiters) wake();
  }

  runningCount(): number {
    return this.running;
  }

  /** Runs still going, per slot, leaving out nodes in `except`. */
  runningBySlot(except: ReadonlySet<string> = new Set()): Map<string, TaskRun[]> {
    const slots = new Map<string, TaskRun[]>();
    for (const run of this.runs.values()) {
      if (run.end !== undefined || except.has(run.node)) continue;
      const list = slots.get(run.slot);
      if (list) list.push(run);
      else slots.set(run.slot, [run]);
    }
    return slots;
  }

  /** Overlapping runs of one slot, leaving out nodes in `except` (ones the test silenced or cut on purpose). */
  overlaps(except: ReadonlySet<string> = new Set()): SlotOverlap[] {
    return slotOverlaps([...this.runs.values()].filter((r) => !except.has(r.node)));
  }

  /** Resolves when `done()` holds after some batch of events; rejects after timeoutMs. */
  until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${what}: not within ${Math.round(timeoutMs / 1000)} s (running ${this.running}, assigned ${this.assignedCount})`));
      }, timeoutMs);
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }
}
