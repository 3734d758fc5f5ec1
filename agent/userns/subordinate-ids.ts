// The node's subordinate-id range for user namespaces: the `tessera` entry of /etc/subuid and
// /etc/subgid, recorded there (like Docker's `dockremap`) when the node has none, so that useradd
// and other container engines leave those ids alone. No `tessera` user is made: root writes the
// containers' id maps itself, and no tool checks the entry's owner against /etc/passwd.
import { appendFile, readFile, stat } from 'node:fs/promises';

import { unlessAbsent } from '../fs-errors.js';
import { chooseNodeRange, parseSubidFile, SUBORDINATE_NAME, type SubordinateRange } from './id-ranges.js';

/** Larger subordinate-id files are refused (a real one has a line per user). */
const MAX_SUBID_BYTES = 1024 * 1024;

export interface SubidFiles {
  subuid: string;
  subgid: string;
}

export const HOST_SUBID_FILES: SubidFiles = { subuid: '/etc/subuid', subgid: '/etc/subgid' };

async function readSubidText(path: string): Promise<string> {
  const size = await unlessAbsent(
    stat(path).then((s) => s.size),
    0,
  );
  if (size > MAX_SUBID_BYTES) throw new Error(`${path}: ${size} bytes, more than the ${MAX_SUBID_BYTES} a subordinate-id file may have`);
  return unlessAbsent(readFile(path, 'utf8'), '');
}

/** The range of one file, appending the default entry when it has none. */
async function ensureEntry(path: string): Promise<SubordinateRange> {
  const text = await readSubidText(path);
  const { range, record } = chooseNodeRange(parseSubidFile(text, path), path);
  if (record) {
    const separator = text === '' || text.endsWith('\n') ? '' : '\n';
    // A file made here gets the mode shadow's tools give it.
    await appendFile(path, `${separator}${SUBORDINATE_NAME}:${range.start}:${range.count}\n`, { mode: 0o644 });
  }
  return range;
}

/** The node's uid and gid ranges for containers, recording the default where an entry is missing. */
export async function ensureSubordinateRanges(files: SubidFiles = HOST_SUBID_FILES): Promise<{ uids: SubordinateRange; gids: SubordinateRange }> {
  return { uids: await ensureEntry(files.subuid), gids: await ensureEntry(files.subgid) };
}
