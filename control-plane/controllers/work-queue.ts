// A keyed work queue for level-triggered controllers: a key queued many times is processed once,
// never concurrently with itself, and can be re-queued after a delay (back-off, timers).

import { performance } from 'node:perf_hooks';

export type ReconcileResult = { requeueAfterMs?: number } | void;

/** How a reconcile ended: done, done and asking to run again later, or thrown (retried). */
export type ReconcileOutcome = 'success' | 'requeue' | 'error';

/** What the queue holds now, read by metrics when scraped. */
export interface WorkQueueView {
  /** Keys waiting for a worker. */
  depth(): number;
  /** performance.now() at which each running reconcile started. */
  runningSince(): Iterable<number>;
}

/** Told about a queue's work (control-plane/metrics/controller-metrics.ts); times in seconds. */
export interface WorkQueueObserver {
  attach(view: WorkQueueView): void;
  /** A key was queued that was not already waiting. */
  added(): void;
  /** A key failed and was queued again after the error delay. */
  retried(): void;
  /** A key left the queue for a worker after waiting this long. */
  started(waitedSeconds: number): void;
  finished(workedSeconds: number, outcome: ReconcileOutcome): void;
}

export class WorkQueue {
  private readonly dirty = new Set<string>();
  /** When each waiting key was queued (performance.now()); kept only with an observer. */
  private readonly queuedAt = new Map<string, number>();
  /** When each running key started (performance.now()). */
  private readonly processing = new Map<string, number>();
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
    private readonly observer?: WorkQueueObserver,
  ) {
    observer?.attach({ depth: () => this.dirty.size, runningSince: () => this.processing.values() });
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.observer && !this.dirty.has(key)) {
      this.queuedAt.set(key, performance.now());
      this.observer.added();
    }
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
    this.queuedAt.clear();
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
      const now = performance.now();
      const queuedAt = this.queuedAt.get(key);
      if (queuedAt !== undefined) {
        this.queuedAt.delete(key);
        this.observer?.started((now - queuedAt) / 1000);
      }
      this.processing.set(key, now);
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
    let outcome: ReconcileOutcome = 'success';
    try {
      const result = await this.reconcile(key);
      if (result && result.requeueAfterMs !== undefined) {
        outcome = 'requeue';
        this.addAfter(key, result.requeueAfterMs);
      }
    } catch (err) {
      outcome = 'error';
      this.onError(key, err);
      this.observer?.retried();
      this.addAfter(key, this.errorRetryMs);
    } finally {
      const started = this.processing.get(key);
      if (started !== undefined) this.observer?.finished((performance.now() - started) / 1000, outcome);
      this.processing.delete(key);
      this.running--;
      this.pump();
    }
  }
}
