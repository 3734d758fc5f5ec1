// Feeds a manager's EventLog from its store: one watch over every object, each change turned into
// events by comparing the stored value before and after it (every backend's watch carries the
// previous value). Runs on every manager, leader or not, so any manager can answer `tsctl events`.
import { OBJECTS_PREFIX, parseObjectKey } from '../store/keys.js';
import type { KeyValue, Store, Watch, WatchEvent } from '../store/store.js';
import { eventsOf, subjectOf, type EventSubject } from './cluster-events.js';
import type { EventLog } from './event-log.js';

function parsed(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return undefined; // not JSON: no fields to read, the change still counts as one of the object
  }
}

function subject(kv: KeyValue | undefined): EventSubject | undefined {
  if (kv === undefined) return undefined;
  const key = parseObjectKey(kv.key);
  return key === undefined ? undefined : subjectOf(key.kindSegment, key.stack, key.name, parsed(kv.value));
}

/** Records the events of one change of `revision`; `index` is the place of the first among that revision's events. Returns the next index. */
function record(log: EventLog, change: WatchEvent, now: number, revision: number, index: number): number {
  const before = subject(change.prev);
  const after = change.type === 'put' ? subject(change.kv) : undefined;
  let next = index;
  for (const event of eventsOf(before, after, now)) log.add({ ...event, revision, index: next++ });
  return next;
}

export class EventRecorder {
  private watch: Watch | undefined;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly log: EventLog,
    private readonly onError: (message: string) => void,
  ) {}

  async start(): Promise<void> {
    const watch = await this.store.watch(
      OBJECTS_PREFIX,
      0,
      (changes, revision) => {
        const now = Date.now();
        // One call carries every change of one revision, so the places count from 0 here.
        let index = 0;
        for (const change of changes) index = record(this.log, change, now, revision, index);
      },
      (err) => this.restart(err),
    );
    if (this.stopped) watch.cancel();
    else this.watch = watch;
  }

  /** A watch that ended (the store closed, or compaction overtook it): follow on from now, saying what may be missing. */
  private restart(err: Error): void {
    if (this.stopped) return;
    this.onError(`cluster events: the store watch ended (${err.message}); following again from now, events in between are not recorded`);
    this.start().catch((retryErr: unknown) => this.onError(`cluster events: no longer recorded: ${(retryErr as Error).message}`));
  }

  stop(): void {
    this.stopped = true;
    this.watch?.cancel();
  }
}
