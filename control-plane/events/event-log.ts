// The recent cluster events a manager has seen, for `tsctl events`: a ring of the last `capacity`
// (older ones fall off, as with `docker events`), and the listeners that follow new ones. In memory
// only: a manager knows the events since it started, and the ring bounds what a client can ask for.
import { matches, type ClusterEvent, type EventFilter } from './cluster-events.js';

export const DEFAULT_EVENT_CAPACITY = 10_000;

export type EventListener = (event: ClusterEvent) => void;

export class EventLog {
  private readonly ring: ClusterEvent[] = [];
  private start = 0;
  private readonly listeners = new Set<EventListener>();
  /** When this log began: events before it are not here (the manager had not started). */
  readonly since = Date.now();

  constructor(readonly capacity = DEFAULT_EVENT_CAPACITY) {}

  add(event: ClusterEvent): void {
    if (this.ring.length < this.capacity) this.ring.push(event);
    else {
      this.ring[this.start] = event;
      this.start = (this.start + 1) % this.capacity;
    }
    for (const listener of this.listeners) listener(event);
  }

  /** The kept events in the order they were seen that match, with a time in [from, until]. */
  read(filter: EventFilter, from: number, until: number): ClusterEvent[] {
    const out: ClusterEvent[] = [];
    for (let i = 0; i < this.ring.length; i++) {
      const event = this.ring[(this.start + i) % this.ring.length]!;
      if (event.time >= from && event.time <= until && matches(event, filter)) out.push(event);
    }
    return out;
  }

  /** Calls listener with every event added from now on; returns the unsubscribe. */
  follow(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
