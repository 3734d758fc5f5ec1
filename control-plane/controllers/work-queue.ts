// A keyed work queue for level-triggered controllers: a key queued many times is processed once,
// never concurrently with itself, and can be re-queued after a delay (back-off, timers).

export type ReconcileResult = { requeueAfterMs?: number } | void;

export class WorkQueue {
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private running = 0;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly reconcile: (key: string) => Promise<ReconcileResult>,
    private readonly onError: (key: string, err: unknown) => void,
    private readonly concurrency = 4,
    /** Retry delay after a failed reconcile. */
    private readonly errorRetryMs = 500,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    this.dirty.add(key);
    this.pump();
  }

  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing);
    const timer = setTimeout(
      () => {
        this.timers.delete(key);
        this.add(key);
      },
      Math.max(0, delayMs),
    );
    timer.unref();
    this.timers.set(key, timer);
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.dirty.clear();
  }

  /** Resolves when nothing is queued or running (timers excepted); for tests and shutdown. */
  idle(): Promise<void> {
    if (this.dirty.size === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (!this.stopped && this.running < this.concurrency) {
      const key = [...this.dirty].find((k) => !this.processing.has(k));
      if (key === undefined) break;
      this.dirty.delete(key);
      this.processing.add(key);
      this.running++;
      void this.run(key);
    }
    if (this.dirty.size === 0 && this.running === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async run(key: string): Promise<void> {
    try {
      const result = await this.reconcile(key);
      if (result && result.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      this.onError(key, err);
      this.addAfter(key, this.errorRetryMs);
    } finally {
      this.processing.delete(key);
      this.running--;
      this.pump();
    }
  }
}
