// Where a watch (and an events stream, below) goes on after its manager went away (issue 20). The API's watch sends every change
// with a revision >= from_revision, and several changes may share a revision (one transaction), so
// resuming from "last + 1" could skip the rest of a revision cut off half way, and resuming from
// "last" repeats what was delivered. This resumes from the last revision and drops the changes of
// that revision already delivered, and anything older. Pure.
import type { ClusterEventMessage__Output } from '../proto/gen/tessera/api/v1/ClusterEventMessage.js';
import type { WatchEvent__Output } from '../proto/gen/tessera/api/v1/WatchEvent.js';

/** Which object a change is about, within a watch of one kind. */
function objectKey(event: WatchEvent__Output): string {
  try {
    const parsed = JSON.parse(event.objectJson) as { metadata?: { stack?: unknown; name?: unknown } };
    return `${event.type}\u0000${JSON.stringify(parsed.metadata?.stack ?? '')}\u0000${JSON.stringify(parsed.metadata?.name ?? '')}`;
  } catch {
    // Not JSON: the consumer will say so; for de-duplication the text itself names the change.
    return `${event.type}\u0000${event.objectJson}`;
  }
}

export class WatchResume {
  private last: number;
  private readonly seenAtLast = new Set<string>();

  /** `from`: the revision the watch began at (0: from now on, which a resumed watch cannot know). */
  constructor(private readonly from: number) {
    this.last = 0;
  }

  /** The from_revision to ask the next manager for. */
  fromRevision(): number {
    return this.last > 0 ? this.last : this.from;
  }

  /** Whether to hand this change on: false for one delivered before, on this or an earlier manager. */
  deliver(event: WatchEvent__Output): boolean {
    const revision = Number(event.revision);
    if (revision < this.last) return false;
    const key = objectKey(event);
    if (revision === this.last) {
      if (this.seenAtLast.has(key)) return false;
    } else {
      this.last = revision;
      this.seenAtLast.clear();
    }
    this.seenAtLast.add(key);
    return true;
  }
}

/**
 * Where an events stream goes on after its manager went away: every event names the store revision
 * it came from and its place among that revision's events, the same on every manager; the next
 * manager is asked for the events after the last one delivered, and any at or before it is dropped.
 */
export class EventResume {
  private revision = 0;
  private index = 0;

  /** The after_revision / after_index to ask the next manager for (0: none delivered yet). */
  position(): { afterRevision: number; afterIndex: number } {
    return { afterRevision: this.revision, afterIndex: this.index };
  }

  /** Whether to hand this event on: false for one delivered before. Events without a revision (notices, older managers) always go on. */
  deliver(event: Pick<ClusterEventMessage__Output, 'revision' | 'index'>): boolean {
    const revision = Number(event.revision);
    if (revision === 0) return true;
    if (revision < this.revision || (revision === this.revision && event.index <= this.index)) return false;
    this.revision = revision;
    this.index = event.index;
    return true;
  }
}
