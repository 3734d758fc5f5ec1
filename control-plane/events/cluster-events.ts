// What `tsctl events` shows, derived from changes of the replicated store: an object created,
// updated (its spec: the generation moved) or removed; a task entering a state; a node going up or
// down; a service's rollout changing state. Every manager derives the same events from the same
// log of changes, so whichever manager a client asks, it sees the whole cluster. Pure: the
// recorder (event-recorder.ts) feeds it what the store says.

export interface ClusterEvent {
  /** When it happened: the task's own state time when it has one, else when this manager saw it (ms since the epoch). */
  time: number;
  /** The kind in lower case: task, service, node, network, secret, config, volume, ... */
  type: string;
  /** create, update, remove; a task's new state (running, failed, ...); up or down for a node; rollout-<state> for a service. */
  action: string;
  stack: string;
  name: string;
  /** What else the event says: a task's node, service, previous state and message; a node's previous state. */
  attributes: Record<string, string>;
  /**
   * The store revision it came from and its place among that revision's events (set by the
   * recorder): the same on every manager, so a stream resumed elsewhere can start after it.
   */
  revision?: number;
  index?: number;
}

/** The part of an object that events are made from; the rest of it is not kept. */
export interface EventSubject {
  type: string;
  stack: string;
  name: string;
  generation?: number;
  /** A task's or a node's state; a service's rollout state. */
  state?: string;
  stateTime?: string;
  node?: string;
  service?: string;
  message?: string;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
/** Messages are shown on one line each; a long one is the agent's, cut here rather than by every client. */
const MAX_MESSAGE = 512;

/** The event-relevant part of a stored object (its kind segment, stack and name come from its key). */
export function subjectOf(type: string, stack: string, name: string, object: unknown): EventSubject {
  const subject: EventSubject = { type, stack, name };
  if (!isObject(object)) return subject;
  const metadata = isObject(object['metadata']) ? object['metadata'] : {};
  const spec = isObject(object['spec']) ? object['spec'] : {};
  const status = isObject(object['status']) ? object['status'] : {};
  if (typeof metadata['generation'] === 'number') subject.generation = metadata['generation'];
  if (type === 'task') {
    subject.state = text(status['state']);
    subject.stateTime = text(status['timestamp']);
    subject.node = text(object['nodeName']);
    subject.service = text(spec['serviceName']);
    subject.message = text(status['error'] ?? status['message'])?.slice(0, MAX_MESSAGE);
  } else if (type === 'node') {
    subject.state = text(status['state']);
  } else if (type === 'service' && isObject(status['update'])) {
    subject.state = text(status['update']['state']);
    subject.message = text(status['update']['message'])?.slice(0, MAX_MESSAGE);
  }
  return subject;
}

function attributesOf(subject: EventSubject, previousState: string | undefined): Record<string, string> {
  const attributes: Record<string, string> = {};
  if (subject.node !== undefined) attributes['node'] = subject.node;
  if (subject.service !== undefined) attributes['service'] = subject.service;
  if (previousState !== undefined) attributes['from'] = previousState;
  if (subject.message !== undefined) attributes['message'] = subject.message;
  return attributes;
}

function stateAction(subject: EventSubject): string {
  if (subject.type === 'node') return subject.state === 'ready' ? 'up' : 'down';
  if (subject.type === 'service') return `rollout-${subject.state ?? 'none'}`;
  return subject.state ?? 'unknown';
}

/** The events one change makes: `before` absent for a new object, `after` absent for a removed one. */
export function eventsOf(before: EventSubject | undefined, after: EventSubject | undefined, seenAt: number): ClusterEvent[] {
  const subject = after ?? before;
  if (subject === undefined) return [];
  const event = (action: string, attributes: Record<string, string>, time = seenAt): ClusterEvent => ({
    time,
    type: subject.type,
    action,
    stack: subject.stack,
    name: subject.name,
    attributes,
  });
  if (after === undefined) return [event('remove', attributesOf(subject, undefined))];
  const events: ClusterEvent[] = [];
  if (before === undefined) events.push(event('create', attributesOf(after, undefined)));
  else if (after.generation !== undefined && after.generation !== before.generation) events.push(event('update', {}));
  const stateChanged = after.state !== undefined && after.state !== before?.state;
  // A node's first report is its "up"; a new service has no rollout yet; a task's first state is news.
  if (stateChanged && !(before === undefined && after.type === 'service')) {
    const at = after.stateTime !== undefined ? Date.parse(after.stateTime) : NaN;
    events.push(event(stateAction(after), attributesOf(after, before?.state), Number.isFinite(at) ? at : seenAt));
  }
  return events;
}

export interface EventFilter {
  /** Only these types (kinds in lower case); empty: every type. */
  types: readonly string[];
  /** Only this stack; undefined: every stack. */
  stack?: string;
  /** Only events with this name, or whose service or node attribute is this name. */
  name?: string;
}

export function matches(event: ClusterEvent, filter: EventFilter): boolean {
  if (filter.types.length > 0 && !filter.types.includes(event.type)) return false;
  if (filter.stack !== undefined && event.stack !== filter.stack) return false;
  if (filter.name !== undefined && ![event.name, event.attributes['service'], event.attributes['node']].includes(filter.name)) return false;
  return true;
}
