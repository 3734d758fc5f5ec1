// Runs the iproute2 / nftables commands of the agent's networking that is not on the per-container
// hot path (set-up, reads, nftables). Configuring a container's own namespace goes through netlink
// in the native addon (./netlink/), with no process; every method here batches its work so one
// logical step costs one process.

import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';

export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    readonly command: string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${command.join(' ')} failed (${exitCode === null ? 'killed' : `exit ${exitCode}`}): ${stderr.trim()}`);
  }
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;

// System tools only: under npm/npx, PATH starts with node_modules/.bin, where for example
// @vercel/nft installs an unrelated `nft`. `ip netns exec` passes this PATH on to what it runs.
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function runCommand(argv: string[], input?: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error('runCommand needs a command'));
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: timeoutMs,
      env: { ...process.env, PATH: SYSTEM_PATH },
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const result = { stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() };
      if (code === 0) resolve(result);
      else reject(new CommandError(argv, code, result.stderr));
    });
    // A command that exits before reading stdin makes the write fail with EPIPE; its exit code
    // is the meaningful error, so the stream error is ignored.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/**
 * The network namespace a BridgeNetwork works in: the caller's own (production) or a named one
 * under /run/netns (tests, and `tsctl cluster up` nodes), so one class serves both.
 */
export class NamespaceCommands {
  constructor(readonly netns?: string) {}

  /** `ip` switches namespace itself with -n, so this costs no extra process. */
  ip(args: string[], input?: string): Promise<CommandResult> {
    return runCommand(['ip', ...(this.netns ? ['-n', this.netns] : []), ...args], input);
  }

  /** Runs many `ip` commands in one process; stops at the first failure. */
  ipBatch(lines: string[]): Promise<CommandResult> {
    return this.ip(['-batch', '-'], lines.join('\n') + '\n');
  }

  /** Applies an nft script as one atomic transaction. */
  nftApply(script: string): Promise<CommandResult> {
    return this.run(['nft', '-f', '-'], script);
  }

  async nftRuleset(): Promise<unknown> {
    const { stdout } = await this.run(['nft', '-j', 'list', 'ruleset']);
    // nft 1.0.6 prints nothing at all, not an empty document, when there is no table.
    return stdout.trim() === '' ? { nftables: [] } : (JSON.parse(stdout) as unknown);
  }

  /**
   * Writes /proc/sys values. /proc/sys/net shows the writer's namespace, so inside a named netns
   * one shell does all writes; in our own namespace no process is needed.
   */
  async writeSysctls(values: Array<[path: string, value: string]>): Promise<void> {
    if (!this.netns) {
      for (const [path, value] of values) await writeFile(path, value);
      return;
    }
    // Paths and values travel as positional parameters so nothing is interpolated into shell text.
    const script = values.map((_, i) => 'echo "${' + String(2 * i + 2) + '}" > "${' + String(2 * i + 1) + '}"').join(' && ');
    await this.run(['sh', '-c', script, 'sh', ...values.flat()]);
  }

  private run(argv: string[], input?: string): Promise<CommandResult> {
    return runCommand(this.netns ? ['ip', 'netns', 'exec', this.netns, ...argv] : argv, input);
  }
}

export function isNoSuchDevice(error: unknown): boolean {
  return error instanceof CommandError && /Cannot find device|does not exist/i.test(error.stderr);
}

export function isAlreadyExists(error: unknown): boolean {
  return error instanceof CommandError && /File exists/i.test(error.stderr);
}
