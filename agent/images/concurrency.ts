// Small concurrency tools for the image store: a bounded parallel map (layer downloads) and a
// readers-writer lock (pulls, loads and saves share the store; garbage collection needs it alone).

/** Like Promise.all(items.map(fn)) with at most `limit` calls running; results keep their order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`concurrency limit must be a positive integer, got ${limit}`);
  const results: R[] = [];
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    // After one failure no new item starts; those already running finish (they clean up after themselves).
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T, index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const workers = Array.from({ length: Math.min(limit, items.length) }, () => worker());
  const settled = await Promise.allSettled(workers);
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected) throw rejected.reason;
  return results;
}

/**
 * Many readers or one writer. A waiting writer holds back readers that come after it, so a
 * stream of pulls cannot keep garbage collection waiting for ever.
 */
export class ReadWriteLock {
  private readers = 0;
  private writing = false;
  private readonly queue: Array<{ write: boolean; grant: () => void }> = [];

  async read<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(false);
    try {
      return await fn();
    } finally {
      this.readers--;
      this.drain();
    }
  }

  async write<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(true);
    try {
      return await fn();
    } finally {
      this.writing = false;
      this.drain();
    }
  }

  private acquire(write: boolean): Promise<void> {
    if (this.queue.length === 0 && !this.writing && (!write || this.readers === 0)) {
      if (write) this.writing = true;
      else this.readers++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push({ write, grant: resolve }));
  }

  private drain(): void {
    while (this.queue.length > 0 && !this.writing) {
      const head = this.queue[0] as { write: boolean; grant: () => void };
      if (head.write) {
        if (this.readers > 0) return;
        this.queue.shift();
        this.writing = true;
        head.grant();
        return;
      }
      this.queue.shift();
      this.readers++;
      head.grant();
    }
  }
}
