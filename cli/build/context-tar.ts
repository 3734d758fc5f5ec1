// The walked context as a tar stream, read from disk as it is sent (never whole in memory), in
// messages of at most BUILD_LIMITS.maxChunkBytes. node-tar writes it: portable (no uid, gid or
// user names: COPY makes files root's unless --chown says otherwise), symlinks as links, and
// only the entries the walk chose (no recursion of its own).
import { create } from 'tar';

import { BUILD_LIMITS } from '../../common/build/request-limits.js';
import type { ContextEntry } from './context-walk.js';

/** Small pieces are gathered up to this size before they are sent. */
const GATHER_BYTES = 256 * 1024;

/** node-tar reads a path that starts with @ as an archive to copy in; ./ keeps it a file name. */
function tarPathOf(entry: ContextEntry): string {
  return entry.path.startsWith('@') ? `./${entry.path}` : entry.path;
}

/** Cuts and gathers a byte stream into messages of GATHER_BYTES to `max` bytes (the last may be smaller). */
export async function* messagesOf(source: AsyncIterable<Buffer>, max: number = BUILD_LIMITS.maxChunkBytes): AsyncGenerator<Buffer> {
  let gathered: Buffer[] = [];
  let size = 0;
  for await (const chunk of source) {
    for (let at = 0; at < chunk.length; at += max) {
      const piece = chunk.subarray(at, at + max);
      if (size + piece.length > max) {
        yield Buffer.concat(gathered, size);
        gathered = [];
        size = 0;
      }
      gathered.push(piece);
      size += piece.length;
      if (size >= GATHER_BYTES) {
        yield Buffer.concat(gathered, size);
        gathered = [];
        size = 0;
      }
    }
  }
  if (size > 0) yield Buffer.concat(gathered, size);
}

/** The tar of `entries` under `dir`, in wire-sized messages. */
export async function* contextTar(dir: string, entries: readonly ContextEntry[]): AsyncGenerator<Buffer> {
  // node-tar makes no archive of nothing; an empty one is its two zero blocks.
  if (entries.length === 0) {
    yield Buffer.alloc(1024);
    return;
  }
  const pack = create({ cwd: dir, portable: true, noDirRecurse: true, follow: false }, entries.map(tarPathOf));
  yield* messagesOf(pack as unknown as AsyncIterable<Buffer>);
}
