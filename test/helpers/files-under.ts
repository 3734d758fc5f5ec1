// Every regular file under a directory, recursively (the at-rest tests read each byte on disk).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

export async function filesUnder(dir: string): Promise<string[]> {
  const found = await readdir(dir, { recursive: true, withFileTypes: true });
  return found.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}
