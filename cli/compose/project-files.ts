// The files a Compose project reads on this machine besides the Compose files themselves: .env,
// env_file, and the file: of secrets and configs. Their content is sent to the cluster, so a Compose
// file from elsewhere must not be able to name /etc/shadow or ~/.ssh/id_ed25519: they are confined
// to the project directory (the first -c file's directory), after resolving symbolic links, unless
// the user says otherwise (`tsctl stack deploy --allow-outside-files`). Each is read with a size cap.

import { realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { cappedReadProblem, type CappedRead } from '../manifest/input-limits.js';

/** Reads a file of at most maxBytes; the filesystem (readCapped) unless a test gives its own. */
export type CappedReader = (path: string, maxBytes: number) => CappedRead;

export interface ProjectFileOptions {
  /** Absolute: the first Compose file's directory. */
  projectDir: string;
  /** Set by --allow-outside-files: read files wherever they are. */
  allowOutside: boolean;
  read: CappedReader;
}

export type ProjectFile =
  { ok: true; path: string; data: Buffer } | { ok: false; path: string; missing: true } | { ok: false; path: string; missing: false; problem: string };

const ALLOW_HINT = 'files are read only from the project directory (that of the first -c file) unless `tsctl stack deploy --allow-outside-files` is given';

function inside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!isAbsolute(rel) && rel !== '..' && !rel.startsWith('../'));
}

/** The real path; undefined when it does not exist (the read then reports it missing). */
function realPath(path: string): { real?: string; error?: string } {
  try {
    return { real: realpathSync(path) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return {};
    // ELOOP, EACCES...: the link cannot be followed, so where it leads cannot be checked.
    return { error: (error as Error).message };
  }
}

/** Why `path` may not be read, when it is outside the project directory (as written or as linked). */
function confinementProblem(given: string, path: string, projectDir: string): string | undefined {
  if (!inside(projectDir, path)) return `${JSON.stringify(given)} is ${path}, outside the project directory ${projectDir}: ${ALLOW_HINT}`;
  const { real, error } = realPath(path);
  if (error !== undefined) return `${JSON.stringify(given)}: cannot resolve ${path}: ${error}`;
  if (real === undefined) return undefined;
  const realDir = realPath(projectDir).real ?? projectDir;
  if (!inside(realDir, real))
    return `${JSON.stringify(given)} leads through a symbolic link to ${real}, outside the project directory ${realDir}: ${ALLOW_HINT}`;
  return undefined;
}

/**
 * `given` (relative to the project directory, or absolute) as an absolute path, or why it may not
 * be used: outside the project directory (as written or through a symbolic link) unless allowed.
 */
export function confinedPath(given: string, o: Pick<ProjectFileOptions, 'projectDir' | 'allowOutside'>): { path: string; problem?: string } {
  const path = resolve(o.projectDir, given);
  const problem = o.allowOutside ? undefined : confinementProblem(given, path, o.projectDir);
  return problem === undefined ? { path } : { path, problem };
}

/** Reads `given` (relative to the project directory, or absolute) within the confinement and the cap. */
export function readProjectFile(given: string, maxBytes: number, o: ProjectFileOptions): ProjectFile {
  const path = resolve(o.projectDir, given);
  if (!o.allowOutside) {
    const problem = confinementProblem(given, path, o.projectDir);
    if (problem) return { ok: false, path, missing: false, problem };
  }
  const read = o.read(path, maxBytes);
  if (read.ok) return { ok: true, path, data: read.data };
  if (read.reason === 'missing') return { ok: false, path, missing: true };
  return { ok: false, path, missing: false, problem: `${path}: ${cappedReadProblem(read, maxBytes)}` };
}
