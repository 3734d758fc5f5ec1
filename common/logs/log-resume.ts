// Where a log stream goes on after it broke (tsctl logs on another manager; a manager asking a node
// again once its session is back). Every line carries its place in its task's log (the sequence the
// node's shim gives it), so a stream asked again names, per task, the last line already delivered,
// and drops any line at or below it that still comes: no gap, no repeat. Pure.

export interface LogResumePoint {
  /** Lines from the end of each task not named in afterSequence (its backlog was not yet delivered). */
  tail: number;
  /** Per task: only lines whose sequence is above this. */
  afterSequence: Map<string, number>;
}

export class LogResume {
  private readonly last = new Map<string, number>();
  private caughtUp = false;

  /** `tail`: the first request's; `after`: the positions that request already started from. */
  constructor(
    private readonly tail: number,
    after: ReadonlyMap<string, number> = new Map(),
  ) {
    for (const [task, sequence] of after) this.last.set(task, sequence);
  }

  /**
   * Whether to hand a line on: false for one at or below the last delivered of its task. A line
   * without a sequence (0: a log the node cannot number) cannot be checked and always goes on.
   */
  deliver(task: string, sequence: number): boolean {
    if (sequence <= 0) return true;
    if (sequence <= (this.last.get(task) ?? 0)) return false;
    this.last.set(task, sequence);
    return true;
  }

  /**
   * Every line already written has been delivered. From then on, a task with no line delivered had
   * none, so everything it writes later is new: the tail no longer applies.
   */
  markCaughtUp(): void {
    this.caughtUp = true;
  }

  /** What to ask for when the stream is asked again. */
  next(): LogResumePoint {
    return { tail: this.caughtUp ? 0 : this.tail, afterSequence: new Map(this.last) };
  }
}
