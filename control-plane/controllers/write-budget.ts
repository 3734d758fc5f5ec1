// A bound on the writes one controller pass makes, with a turn of the event loop every few writes.
// The manager's event loop also carries Raft heartbeats: a pass that wrote 100,000 tasks in one go
// (a memory store, or a leader's local proposals, resolve writes without ever yielding) held it for
// tens of seconds. Controllers are level-triggered, so a pass that stops at its bound loses
// nothing: the next one decides again from what the store holds and carries on.

/**
 * Time between two yields to the event loop. By time, not by a count of writes: each yield lets
 * other controllers' passes run too, and a service controller deciding over 20,000 tasks after
 * every 50 writes of the scheduler made placing them 30 times slower.
 */
const YIELD_AFTER_MS = 20;

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class WriteBudget<K extends string> {
  private used = 0;
  private lastYield = performance.now();

  constructor(
    private readonly limit: number,
    /** Writes made so far, by kind (for logs, metrics and tests). */
    readonly writes: Record<K, number>,
  ) {}

  /** The pass has made all the writes it may; the caller stops and asks for another pass. */
  get exhausted(): boolean {
    return this.used >= this.limit;
  }

  /** Counts one write, and lets the event loop run once YIELD_AFTER_MS have passed since it last did. */
  async spend(kind: K): Promise<void> {
    this.writes[kind]++;
    this.used++;
    if (performance.now() - this.lastYield >= YIELD_AFTER_MS) {
      await yieldToEventLoop();
      this.lastYield = performance.now();
    }
  }
}
