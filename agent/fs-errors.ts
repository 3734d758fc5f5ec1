// Telling "absent" from "failed": a file that does not exist is an answer, any other error from the
// file system (EACCES, EIO, ELOOP, ...) is a failure that must surface, not pass for "not there".

import { access } from 'node:fs/promises';

/** The error's errno code (ENOENT, EIO, ...), when it has one. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
}

/** The path (or a component of it) does not exist. */
export function isNotFound(error: unknown): boolean {
  return errnoCode(error) === 'ENOENT';
}

/** The path does not exist, or one of its directories is not a directory (so nothing can be there). */
export function isAbsent(error: unknown): boolean {
  const code = errnoCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** What `promise` resolves to, or `fallback` when it fails because the path is absent; other errors are thrown. */
export async function unlessAbsent<T, F>(promise: Promise<T>, fallback: F): Promise<T | F> {
  try {
    return await promise;
  } catch (error) {
    if (isAbsent(error)) return fallback;
    throw error;
  }
}

/** Whether something is at `p`; errors other than "absent" are thrown. */
export async function exists(p: string): Promise<boolean> {
  return unlessAbsent(
    access(p).then(() => true),
    false,
  );
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs `cleanup` after `error` ended an operation, then throws `error`. The clean-up cannot change
 * the outcome, but its failure is not dropped: it is added to the message of the error thrown (the
 * original error is its cause), so the caller learns what was left behind.
 */
export async function throwAfterCleanup(error: unknown, what: string, cleanup: () => Promise<unknown>): Promise<never> {
  try {
    await cleanup();
  } catch (cleanupError) {
    throw new Error(`${errorMessage(error)} (and ${what} failed: ${errorMessage(cleanupError)})`, { cause: error });
  }
  throw error;
}
