// Pure parsing of the runc-style arguments tessera-runtime accepts.
import os from 'node:os';

/** "KILL", "SIGKILL", "kill" or "9" to a signal number. */
export function parseSignal(text: string): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n >= 1 && n <= 64) return n;
    throw new Error(`signal ${text}: out of range 1-64`);
  }
  const name = text.toUpperCase().startsWith('SIG') ? text.toUpperCase() : `SIG${text.toUpperCase()}`;
  const n = (os.constants.signals as Record<string, number | undefined>)[name];
  if (n === undefined) throw new Error(`unknown signal '${text}'`);
  return n;
}

/** "uid" or "uid:gid" (numeric, as runc exec -u takes them). */
export function parseUser(text: string): { uid: number; gid: number } {
  const match = /^(\d+)(?::(\d+))?$/.exec(text);
  if (match === null) throw new Error(`--user ${text}: expected <uid>[:<gid>] (numbers)`);
  const uid = Number(match[1]);
  return { uid, gid: match[2] === undefined ? 0 : Number(match[2]) };
}

/** The state JSON runc prints for `runc state`. */
export interface RuncState {
  ociVersion: string;
  id: string;
  pid: number;
  status: string;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  /** Ours only: what the container runs without that its spec asked for; absent when nothing. */
  warnings?: string[];
}
