// `tsctl events [-f] [--since T] [--until T] [--filter key=value]...`: what happened in the cluster
// (objects created, updated, removed; tasks changing state; nodes up and down), as the manager it
// asks has seen it, one line per event or one JSON object per line with -o json.
import { InvalidArgumentError, type Command } from 'commander';

import type { ClusterEventMessage__Output } from '../../proto/gen/tessera/api/v1/ClusterEventMessage.js';
import type { WithClient } from '../with-client.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A time as `--since`/`--until` take it, in ms since the epoch: a duration back from now (90s,
 * 10m, 2h, 1d), an RFC 3339 time (2026-12-06T10:00:00Z), or seconds since the epoch. Pure.
 */
export function parseEventTime(value: string, now: number): number {
  const duration = /^(\d+(?:\.\d+)?)([smhd])$/.exec(value);
  if (duration) return now - Math.round(Number(duration[1]) * UNIT_MS[duration[2]!]!);
  if (/^\d{1,12}(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const time = /^\d{4}-\d\d-\d\dT/.test(value) ? Date.parse(value) : NaN;
  if (Number.isFinite(time)) return time;
  throw new InvalidArgumentError(`expected a duration (10m, 2h), an RFC 3339 time or seconds since the epoch, got "${value}"`);
}

/** One event as a line: time, type, action, stack/name, then its attributes as key=value. Pure. */
export function eventLine(event: ClusterEventMessage__Output): string {
  const name = event.stack ? `${event.stack}/${event.name}` : event.name;
  const attributes = Object.entries(event.attributes)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => `${key}=${/\s/.test(value) ? JSON.stringify(value) : value}`);
  return [new Date(event.timeMs).toISOString(), event.type, event.action, name, ...attributes].join(' ');
}

interface EventsOptions {
  follow?: boolean;
  since?: string;
  until?: string;
  filter: string[];
  output: string;
}

export function registerEventsCommand(program: Command, withClient: WithClient): void {
  program
    .command('events')
    .description('show cluster events: objects created, updated or removed, task states, nodes up and down')
    .option('-f, --follow', 'keep printing events as they happen')
    .option('--since <time>', 'events from this time: a duration back (10m, 2h), an RFC 3339 time, or epoch seconds')
    .option('--until <time>', 'events up to this time (with -f, stop then)')
    .option(
      '--filter <key=value>',
      'type=task|service|node|..., stack=NAME or name=NAME (repeatable; several types are or-ed)',
      (v: string, all: string[]) => [...all, v],
      [],
    )
    .option('-o, --output <format>', 'text or json (one object per line)', 'text')
    .action(async (options: EventsOptions) => {
      if (!['text', 'json'].includes(options.output)) throw new InvalidArgumentError(`--output must be text or json, got "${options.output}"`);
      const now = Date.now();
      const sinceMs = options.since === undefined ? (options.follow ? now : 0) : parseEventTime(options.since, now);
      const untilMs = options.until === undefined ? 0 : parseEventTime(options.until, now);
      await withClient(async (client) => {
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        await client.events(
          { sinceMs, untilMs, follow: options.follow === true, filters: options.filter },
          (event) => {
            if (event.notice) process.stderr.write(`note: ${event.notice}\n`);
            else process.stdout.write(`${options.output === 'json' ? JSON.stringify(event) : eventLine(event)}\n`);
          },
          abort.signal,
        );
      });
    });
}
