// V8's --trace-gc-nvp lines (one per garbage collection, on the process's stdout) as figures (pure):
// the pause, the kind, and the bytes allocated since the collection before. A benchmark starts a
// process with the flag and reads the lines its log gained during a window.

export interface GcEvent {
  /** The time the main thread stood still for this collection, in ms. */
  pauseMs: number;
  /** V8's short name: s (scavenge), mc (mark-compact), ms (minor mark-sweep), … */
  kind: string;
  /** Heap bytes allocated between the previous collection and this one. */
  allocatedBytes: number;
}

export interface GcSummary {
  count: number;
  maxPauseMs: number;
  totalPauseMs: number;
  /** Collections whose pause was over the threshold given to summariseGc. */
  over: number;
  allocatedBytes: number;
  /** The largest `allocated` of one collection: how far a window's allocation total can be off at its edges. */
  maxAllocatedBytes: number;
  byKind: Map<string, number>;
}

const FIELD = /(?:^|\s)(pause|gc|allocated)=(\S+)/g;

/** The collections in `text`; lines that are not --trace-gc-nvp lines are skipped. */
export function parseGcTrace(text: string): GcEvent[] {
  const events: GcEvent[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes(' pause=')) continue;
    const fields = new Map<string, string>();
    for (const m of line.matchAll(FIELD)) fields.set(m[1]!, m[2]!);
    const pauseMs = Number(fields.get('pause'));
    const allocatedBytes = Number(fields.get('allocated') ?? 0);
    const kind = fields.get('gc');
    if (!Number.isFinite(pauseMs) || !Number.isFinite(allocatedBytes) || kind === undefined) continue;
    events.push({ pauseMs, kind, allocatedBytes });
  }
  return events;
}

export function summariseGc(events: readonly GcEvent[], thresholdMs: number): GcSummary {
  const byKind = new Map<string, number>();
  for (const e of events) byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1);
  return {
    count: events.length,
    maxPauseMs: Math.max(0, ...events.map((e) => e.pauseMs)),
    totalPauseMs: events.reduce((sum, e) => sum + e.pauseMs, 0),
    over: events.filter((e) => e.pauseMs > thresholdMs).length,
    allocatedBytes: events.reduce((sum, e) => sum + e.allocatedBytes, 0),
    maxAllocatedBytes: Math.max(0, ...events.map((e) => e.allocatedBytes)),
    byKind,
  };
}
