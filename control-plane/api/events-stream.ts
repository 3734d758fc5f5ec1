// The Events call: the events this manager keeps that match, then (with follow) new ones as they
// happen. The request is checked here (filters, times) so the stream starts only for a valid one.
import * as grpc from '@grpc/grpc-js';

import { KINDS } from '../../common/resources/types.js';
import { isNameTooLong, quoteName } from '../../common/resources/limits.js';
import { matches, type ClusterEvent, type EventFilter } from '../events/cluster-events.js';
import type { EventLog } from '../events/event-log.js';
import type { ClusterEventMessage } from '../../proto/gen/tessera/api/v1/ClusterEventMessage.js';
import type { EventsRequest__Output } from '../../proto/gen/tessera/api/v1/EventsRequest.js';
import { ApiError, invalidArgument } from './errors.js';
import { atTime } from '../../common/timers/at-time.js';

const EVENT_TYPES: readonly string[] = KINDS.map((kind) => kind.toLowerCase());
/** More filters than this is not a question a person asks. */
const MAX_FILTERS = 32;
/**
 * Events queued for a client that reads slower than they come. Past this the stream ends with
 * RESOURCE_EXHAUSTED rather than holding a growing queue in the manager's memory.
 */
export const MAX_UNREAD_EVENTS = 10_000;

export interface EventsQuery {
  filter: EventFilter;
  from: number;
  until: number;
  follow: boolean;
  /** Only events after this one (store revision, place in it); revision 0: no such bound. */
  after: { revision: number; index: number };
}

/** Whether an event comes after a resume position; events without one (not from the store) always do. Pure. */
export function isAfter(event: Pick<ClusterEvent, 'revision' | 'index'>, after: { revision: number; index: number }): boolean {
  if (after.revision === 0 || event.revision === undefined) return true;
  return event.revision > after.revision || (event.revision === after.revision && (event.index ?? 0) > after.index);
}

/** The query a request asks; throws INVALID_ARGUMENT naming what is wrong. Pure. */
export function eventsQuery(
  request: Pick<EventsRequest__Output, 'sinceMs' | 'untilMs' | 'follow' | 'filters'> & Partial<Pick<EventsRequest__Output, 'afterRevision' | 'afterIndex'>>,
  now: number,
): EventsQuery {
  if (request.filters.length > MAX_FILTERS) throw invalidArgument(`events: ${request.filters.length} filters; at most ${MAX_FILTERS}`);
  const types: string[] = [];
  const filter: EventFilter = { types };
  for (const item of request.filters) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? '' : item.slice(eq + 1);
    if (value === '' || isNameTooLong(value)) throw invalidArgument(`events: filter ${quoteName(item)}: expected key=value with a name of at most 253 bytes`);
    if (key === 'type') {
      if (!EVENT_TYPES.includes(value)) throw invalidArgument(`events: filter type=${quoteName(value)}: not a type; one of ${EVENT_TYPES.join(', ')}`);
      types.push(value);
    } else if (key === 'stack') filter.stack = value;
    else if (key === 'name') filter.name = value;
    else throw invalidArgument(`events: filter ${quoteName(item)}: unknown key ${quoteName(key)}; filters are type=, stack= and name=`);
  }
  const from = request.sinceMs;
  const until = request.untilMs === 0 ? (request.follow ? Number.MAX_SAFE_INTEGER : now) : request.untilMs;
  if (from < 0 || until < 0) throw invalidArgument('events: since and until must not be before 1970');
  if (until < from) throw invalidArgument('events: until is before since');
  const after = { revision: request.afterRevision ?? 0, index: request.afterIndex ?? 0 };
  if (!Number.isSafeInteger(after.revision) || after.revision < 0) throw invalidArgument('events: after_revision is not a whole number');
  return { filter, from, until, follow: request.follow && until > now, after };
}

function message(event: ClusterEvent): ClusterEventMessage {
  return {
    timeMs: event.time,
    type: event.type,
    action: event.action,
    stack: event.stack,
    name: event.name,
    attributes: event.attributes,
    revision: event.revision ?? 0,
    index: event.index ?? 0,
  };
}

/**
 * Writes what the query asks to the call; resolves when it is done (without follow, at once; with
 * follow, at `until`, or when the client goes), rejects when the client cannot keep up.
 */
export function streamEvents(log: EventLog, query: EventsQuery, call: grpc.ServerWritableStream<unknown, ClusterEventMessage>): Promise<void> {
  if (query.from < log.since)
    call.write({ notice: `this manager keeps events from ${new Date(log.since).toISOString()} (when it started), the last ${log.capacity} at most` });
  // Read and subscribe in one turn of the event loop, so no event falls between the two or comes twice.
  for (const event of log.read(query.filter, query.from, query.until)) if (isAfter(event, query.after)) call.write(message(event));
  if (!query.follow) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let cancelEnd: (() => void) | undefined;
    const finish = (err?: Error) => {
      unfollow();
      cancelEnd?.();
      if (err === undefined) resolve();
      else reject(err);
    };
    const unfollow = log.follow((event) => {
      if (event.time < query.from || event.time > query.until || !matches(event, query.filter) || !isAfter(event, query.after)) return;
      if (call.writableLength > MAX_UNREAD_EVENTS)
        finish(new ApiError(grpc.status.RESOURCE_EXHAUSTED, `events: the client fell ${MAX_UNREAD_EVENTS} events behind; ask again with --since`));
      else call.write(message(event));
    });
    call.on('cancelled', () => finish());
    call.on('close', () => finish());
    if (query.until !== Number.MAX_SAFE_INTEGER) cancelEnd = atTime(query.until, () => finish());
  });
}
