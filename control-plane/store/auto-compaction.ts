// Keeps the store's history bounded. Without it every revision since the cluster began stays in
// memory (each key's versions and the event log watches replay from) and in every Raft snapshot.
// Like etcd's revision-mode auto-compaction, it keeps the newest `retainRevisions` revisions, so a
// watcher that fell behind by less than that resumes without a relist.
import { CompactedError, type Store } from './store.js';

/** The revision to compact at, or undefined when nothing new would be dropped. Pure. */
export function compactionTarget(current: number, lastCompacted: number, retainRevisions: number): number | undefined {
  if (retainRevisions <= 0) return undefined;
  const target = current - retainRevisions;
  return target > lastCompacted ? target : undefined;
}

export interface AutoCompactorOptions {
  retainRevisions: number;
  checkEveryMs: number;
  log: (line: string) => void;
}

export class AutoCompactor {
  private lastCompacted = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly options: AutoCompactorOptions,
  ) {}

  start(): void {
    if (this.timer || this.options.retainRevisions <= 0) return;
    this.timer = setInterval(() => void this.runOnce(), this.options.checkEveryMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check; resolves when it is done. Errors are logged, never thrown: the next check retries. */
  runOnce(): Promise<void> {
    this.running ??= this.check().finally(() => (this.running = undefined));
    return this.running;
  }

  private async check(): Promise<void> {
    try {
      const target = compactionTarget(await this.store.currentRevision(), this.lastCompacted, this.options.retainRevisions);
      if (target === undefined) return;
      await this.store.compact(target);
      this.lastCompacted = target;
    } catch (err) {
      // Another manager (a former leader) compacted further already: remember its point.
      if (err instanceof CompactedError) this.lastCompacted = err.compactRevision;
      else this.options.log(`store auto-compaction: ${(err as Error).message}`);
    }
  }
}
