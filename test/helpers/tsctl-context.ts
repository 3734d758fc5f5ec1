// tsctl from the sources against an API server a test runs on 127.0.0.1: a context file holding a
// user certificate the test PKI issues, and tsctl run with it (TESSERA_CONTEXT, never a server from
// the caller's environment).
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { contextText, type CliContext } from '../../cli/context.js';
import type { UserRole } from '../../common/identity/certificate.js';
import type { TestPki } from './test-pki.js';

const run = promisify(execFile);
const TSCTL = new URL('../../cli/main.ts', import.meta.url).pathname;

export interface TsctlOutput {
  stdout: string;
  stderr: string;
  code: number;
}

/** Writes `<dir>/<name>.json` (0600): a context for `address` with a certificate of user `name` in `role`; returns its path. */
export async function writeUserContext(where: { pki: TestPki; dir: string; address: string }, name: string, role: UserRole): Promise<string> {
  const { pki, dir, address } = where;
  const { material } = (await pki.user(name, role)).identity;
  const context: CliContext = {
    server: address,
    tls: {
      clusterId: pki.clusterId,
      trustedRootPems: [...material.trustedRootPems],
      certChainPem: material.certChainPem,
      keyPem: material.keyPem,
      user: name,
    },
  };
  const path = join(dir, `${name}.json`);
  await writeFile(path, contextText(context), { mode: 0o600 });
  return path;
}

/** tsctl with this context file; resolves with its output and exit code, whatever the code. */
export async function tsctlWithContext(contextFile: string, args: string[]): Promise<TsctlOutput> {
  const env: NodeJS.ProcessEnv = { ...process.env, TESSERA_CONTEXT: contextFile };
  delete env['TESSERA_SERVER'];
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', TSCTL, ...args], { env });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const failed = err as Error & { stdout: string; stderr: string; code: number };
    return { stdout: failed.stdout, stderr: failed.stderr, code: failed.code };
  }
}
