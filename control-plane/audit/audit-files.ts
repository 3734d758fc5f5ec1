// The audit log's files: the current one (`audit.log`), opened for appending, and the rotated ones
// (`audit.log.1` newest … `audit.log.<keep>` oldest). Owner-only: entries name users and objects.
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

const FILE_MODE = 0o600;
const DIRECTORY_MODE = 0o700;
const NEWLINE = 0x0a;

/** The n-th rotated file; 0 is the current one. */
export function auditFilePath(path: string, n: number): string {
  return n === 0 ? path : `${path}.${n}`;
}

export interface AppendFile {
  handle: FileHandle;
  /** Bytes in the file, counting what this process appended. */
  size: number;
}

/**
 * The current file, opened for appending (created 0600; its directory 0700 if missing — an existing
 * directory is left as it is, it may hold other files). A last line left unfinished by a crash or a
 * failed write is ended first, so the next entry does not run into it and is not lost with it.
 */
export async function openAppendFile(path: string): Promise<AppendFile> {
  await mkdir(dirname(path), { recursive: true, mode: DIRECTORY_MODE });
  const handle = await open(path, 'a+', FILE_MODE);
  try {
    // The mode given to open() applies only to a new file, and through the umask: set it outright.
    await handle.chmod(FILE_MODE);
    let { size } = await handle.stat();
    if (size > 0 && !(await endsWithNewline(handle, size))) {
      await handle.appendFile(Buffer.from([NEWLINE]));
      size += 1;
    }
    return { handle, size };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

async function endsWithNewline(handle: FileHandle, size: number): Promise<boolean> {
  const last = Buffer.alloc(1);
  await handle.read(last, 0, 1, size - 1);
  return last[0] === NEWLINE;
}

/** current → .1, .1 → .2, …, .(keep-1) → .keep; the old .keep is replaced, so `keep` old files remain. */
export async function rotateAuditFiles(path: string, keep: number): Promise<void> {
  if (keep === 0) {
    await rm(path, { force: true });
    return;
  }
  for (let n = keep - 1; n >= 0; n--) await renameIfPresent(auditFilePath(path, n), auditFilePath(path, n + 1));
}

async function renameIfPresent(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    // A gap in the chain (fewer rotations so far than `keep`) is normal.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * The last `maxBytes` of a file as text, starting at a line (a partly read first line is dropped),
 * or undefined if there is no such file.
 */
export async function readFileTail(path: string, maxBytes: number): Promise<string | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - maxBytes);
    const buffer = Buffer.alloc(size - start);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    const text = buffer.subarray(0, bytesRead).toString('utf8');
    return start === 0 ? text : text.slice(text.indexOf('\n') + 1);
  } finally {
    await handle.close();
  }
}
