// Waiting in tests for something that happens asynchronously: a server that starts, a controller that
// converges, a packet that gets through once ARP has settled. One place for the polling loops, so each
// test says only what it waits for and how long.

import { setTimeout as sleep } from 'node:timers/promises';

/** What is waited for, or a function giving it with what was seen at the time out (evaluated then). */
export type Waited = string | (() => string);

const describe = (what: Waited): string => (typeof what === 'string' ? what : what());

/**
 * Polls `probe` until it returns something other than undefined or false, and returns that. The probe
 * may fail while the thing it asks is not up yet (a daemon starting, a command refused during an
 * election): an error counts as "not yet", and the last one is in the message if time runs out.
 */
export async function eventually<T>(what: Waited, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: Error | undefined;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err instanceof Error ? err : new Error(String(err));
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe(what)}${last ? `: ${last.message}` : ''}`);
    await sleep(everyMs);
  }
}

/**
 * Polls in-process state until `check` returns something other than undefined or false, and returns
 * that. Unlike `eventually`, an error thrown by the check ends the wait at once: over in-process state
 * it is a bug, not a service still starting.
 */
export async function until<T>(what: Waited, check: () => T | undefined | false, timeoutMs = 15_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe(what)}`);
    await sleep(everyMs);
  }
}

/** Runs `attempt` until it succeeds, at most `tries` times; the last failure is thrown as it is. */
export async function retry<T>(attempt: () => Promise<T>, tries = 20, delayMs = 100): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      if (i >= tries) throw error;
      await sleep(delayMs);
    }
  }
}
