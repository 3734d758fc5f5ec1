// Watch delivery over an MvccState: registration replays history in the same synchronous step as
// it subscribes (so no write falls between history and live events), and delivery always happens
// on a later turn of the event loop: a writer never runs handlers inside its own call, and a slow
// handler delays only its own queue.
import type { Watch, WatchHandler } from '../store.js';
import type { LogEntry, MvccState } from './mvcc-state.js';

interface Watcher {
  prefix: string;
  handler: WatchHandler;
  onError: ((err: Error) => void) | undefined;
  queue: LogEntry[];
  active: boolean;
  drainScheduled: boolean;
}

export class WatchHub {
  private readonly watchers = new Set<Watcher>();

  /** fromRevision 0: from the next write on. Throws CompactedError. */
  watch(state: MvccState, prefix: string, fromRevision: number, handler: WatchHandler, onError?: (err: Error) => void): Watch {
    const start = fromRevision > 0 ? fromRevision : state.revision + 1;
    const watcher: Watcher = { prefix, handler, onError, queue: state.historyFrom(prefix, start), active: true, drainScheduled: false };
    this.watchers.add(watcher);
    this.scheduleDrain(watcher);
    return {
      cancel: () => {
        watcher.active = false;
        watcher.queue = [];
        this.watchers.delete(watcher);
      },
    };
  }

  notify(entry: LogEntry): void {
    for (const w of this.watchers) {
      const matching = entry.events.filter((e) => e.kv.key.startsWith(w.prefix));
      if (matching.length === 0) continue;
      w.queue.push({ revision: entry.revision, events: matching });
      this.scheduleDrain(w);
    }
  }

  /** Ends every watch; onError gets `err` on a later turn. */
  endAll(err: Error): void {
    const ended = [...this.watchers];
    this.watchers.clear();
    for (const w of ended) {
      w.active = false;
      w.queue = [];
    }
    setImmediate(() => {
      for (const w of ended) w.onError?.(err);
    });
  }

  private scheduleDrain(w: Watcher): void {
    if (w.drainScheduled || w.queue.length === 0) return;
    w.drainScheduled = true;
    setImmediate(() => {
      w.drainScheduled = false;
      let delivered = 0;
      try {
        while (w.active && delivered < w.queue.length) {
          const entry = w.queue[delivered++] as LogEntry;
          w.handler(entry.events, entry.revision);
        }
      } catch (err) {
        // A handler that throws has lost track of the stream; end the watch so its owner re-lists.
        w.active = false;
        this.watchers.delete(w);
        w.onError?.(err instanceof Error ? err : new Error(String(err)));
      }
      w.queue.splice(0, delivered);
    });
  }
}
