// One long-lived `ip -force -batch -` (or `bridge -force -batch -`) process per node namespace,
// fed over stdin. Programming a container's links, forwarding and neighbour entries then costs
// no process start: the hot path is a write to a pipe and one netlink round trip per line.
//
// Why a batch process and not netlink in the native addon: iproute2 already speaks every netlink
// message we need (vxlan, fdb, neigh, veth) and its text interface is stable; the addon would need
// a few hundred lines of message building for the same effect. The cost of the batch process is
// framing: ip prints nothing on success, and on failure it prints the kernel's message and then
// "Command failed -:LINE" on stderr (unbuffered, so in order). Each submitted batch therefore ends
// with a marker line that always fails harmlessly (`link show dev <name longer than IFNAMSIZ>`):
// when its failure arrives, every line before it has been executed, and the failures seen in
// between belong to the batch's own lines by line number.
//
// Both tools (iproute2 6.1) resolve a device name to its ifindex once for many commands (`bridge
// fdb`, `ip addr`) and keep it for the life of the process, also after the device is deleted: a
// device re-created under the same name is then addressed by its dead ifindex ("unknown ifindex",
// "Device not found") for ever. Whoever re-creates devices should close() the sessions that
// addressed them; as a safety net a session whose batch failed starts a fresh process for the next
// batch once nothing is in flight, so a level-triggered caller's retry heals.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CommandError } from '../exec.js';

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const FAILED_LINE = /^Command failed -:(\d+)$/;
const DEFAULT_TIMEOUT_MS = 30_000;

export type BatchTool = 'ip' | 'bridge';

/** Markers fail with "does not exist"/"Cannot find device": the name is too long to ever exist. */
const MARKER: Record<BatchTool, string> = {
  ip: 'link show dev tessera-batch-marker',
  bridge: 'fdb show dev tessera-batch-marker',
};

export interface BatchLine {
  command: string;
  /** Kernel errors that mean "already in the wanted state" for this line (e.g. /File exists/). */
  tolerate?: RegExp;
}

export class BatchCommandError extends CommandError {
  override name = 'BatchCommandError';
  constructor(
    tool: BatchTool,
    readonly failures: Array<{ command: string; message: string }>,
  ) {
    super([tool, '-batch'], 1, failures.map((f) => `"${f.command}": ${f.message}`).join('; '));
  }
}

interface PendingBatch {
  firstLine: number;
  markerLine: number;
  lines: BatchLine[];
  failures: Array<{ command: string; message: string }>;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class BatchSession {
  private child: ChildProcessWithoutNullStreams | undefined;
  private nextLine = 1;
  private readonly pending: PendingBatch[] = [];
  private stderrTail = '';
  private messageLines: string[] = [];
  /** A batch failed: its failure may come from a stale name cache, so the next batch gets a new process. */
  private restartWhenIdle = false;

  constructor(
    readonly tool: BatchTool,
    private readonly netns?: string,
    private readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {}

  /**
   * Runs the lines in order. Every line runs even when an earlier one fails (-force); the
   * promise rejects with all failures that were not tolerated.
   */
  run(lines: BatchLine[]): Promise<void> {
    if (lines.length === 0) return Promise.resolve();
    for (const line of lines) {
      if (/[\n\r]/.test(line.command)) throw new Error(`batch command must be one line: ${JSON.stringify(line.command)}`);
    }
    const child = this.ensureChild();
    return new Promise<void>((resolve, reject) => {
      const firstLine = this.nextLine;
      const markerLine = firstLine + lines.length;
      this.nextLine = markerLine + 1;
      const timer = setTimeout(() => {
        // A wedged process would leave every later batch waiting too: restart it.
        this.fail(new Error(`${this.tool} -batch did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      timer.unref();
      this.pending.push({ firstLine, markerLine, lines, failures: [], resolve, reject, timer });
      this.setReferenced(child, true);
      child.stdin.write(lines.map((l) => l.command).join('\n') + '\n' + MARKER[this.tool] + '\n');
    });
  }

  /** Ends the process; later runs start a new one. */
  close(): void {
    const child = this.child;
    this.child = undefined;
    if (child) {
      child.stdin.end();
      if (child.exitCode === null) child.kill('SIGTERM');
    }
    this.rejectAll(new Error(`${this.tool} -batch session closed`));
  }

  private ensureChild(): ChildProcessWithoutNullStreams {
    if (this.restartWhenIdle && this.pending.length === 0 && this.child) {
      const stale = this.child;
      this.child = undefined;
      stale.stdin.end();
      if (stale.exitCode === null) stale.kill('SIGTERM');
    }
    if (this.child && this.child.exitCode === null && !this.child.killed) return this.child;
    this.restartWhenIdle = false;
    const args = [...(this.netns ? ['-n', this.netns] : []), '-force', '-batch', '-'];
    const child = spawn(this.tool, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PATH: SYSTEM_PATH } });
    this.child = child;
    this.nextLine = 1;
    this.stderrTail = '';
    this.messageLines = [];
    // Successful show commands would print here; nothing we send needs their output.
    child.stdout.resume();
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => this.onStderr(chunk));
    // A write to a tool that died fails with EPIPE; its exit (below) is what gets reported.
    child.stdin.on('error', () => undefined);
    child.on('error', (error) => this.onExit(child, error));
    child.on('exit', (code, signal) => this.onExit(child, new Error(`${this.tool} -batch exited (${signal ?? `code ${String(code)}`})`)));
    this.setReferenced(child, false);
    return child;
  }

  /** An idle session must not keep tsd (or a test) alive; one with work in flight must. */
  private setReferenced(child: ChildProcessWithoutNullStreams, referenced: boolean): void {
    const handles: Array<{ ref?: () => void; unref?: () => void }> = [
      child,
      child.stdin as unknown as { ref?: () => void; unref?: () => void },
      child.stdout as unknown as { ref?: () => void; unref?: () => void },
      child.stderr as unknown as { ref?: () => void; unref?: () => void },
    ];
    for (const handle of handles) {
      if (referenced) handle.ref?.();
      else handle.unref?.();
    }
  }

  private onStderr(chunk: string): void {
    const text = this.stderrTail + chunk;
    const parts = text.split('\n');
    this.stderrTail = parts.pop() ?? '';
    for (const line of parts) {
      const failed = FAILED_LINE.exec(line);
      if (!failed) {
        if (line.trim() !== '') this.messageLines.push(line.trim());
        continue;
      }
      const lineNumber = Number(failed[1]);
      const message = this.messageLines.join(' ');
      this.messageLines = [];
      this.onFailure(lineNumber, message);
    }
  }

  private onFailure(lineNumber: number, message: string): void {
    const batch = this.pending[0];
    if (!batch) return;
    if (lineNumber === batch.markerLine) {
      this.pending.shift();
      clearTimeout(batch.timer);
      if (this.pending.length === 0 && this.child) this.setReferenced(this.child, false);
      if (batch.failures.length === 0) batch.resolve();
      else {
        this.restartWhenIdle = true;
        batch.reject(new BatchCommandError(this.tool, batch.failures));
      }
      return;
    }
    const line = batch.lines[lineNumber - batch.firstLine];
    if (!line) return;
    if (line.tolerate?.test(message)) return;
    batch.failures.push({ command: line.command, message });
  }

  private onExit(child: ChildProcessWithoutNullStreams, error: Error): void {
    if (this.child !== child) return;
    this.child = undefined;
    this.rejectAll(error);
  }

  private fail(error: Error): void {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) child.kill('SIGKILL');
    this.rejectAll(error);
  }

  private rejectAll(error: Error): void {
    for (const batch of this.pending.splice(0)) {
      clearTimeout(batch.timer);
      batch.reject(error);
    }
  }
}
