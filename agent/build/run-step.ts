// Runs one RUN step's command in a container of our own runtime on the step's rootfs: the build's
// env, user and working directory; Docker's default capabilities, seccomp profile, masked paths
// and no_new_privs (buildOciSpec's defaults, as for any task); no host mounts; a network namespace
// of its own with only loopback (up); a memory and pids limit. Its output is streamed line by line.
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { buildOciSpec } from '../runtime/spec.js';
import type { ContainerRuntime, ExitStatus } from '../runtime/types.js';
import { createPrivateFile, writePrivateFile } from '../file-modes.js';
import { mkdirInRoot, readInRoot } from './copy-apply.js';
import { parseGroup, parsePasswd, resolveUser } from '../worker/container-config.js';
import { BuildError } from '../../common/build/builder.js';
import { NetlinkSocket, setLink, LOOPBACK_IFINDEX } from '../network/netlink/index.js';

export const LAST_LINES = 20;
/** Longest output line passed on; a longer one is cut (a progress bar without newlines would grow without end). */
const MAX_LINE = 4096;
const TAIL_INTERVAL_MS = 100;

export interface RunLimits {
  memoryBytes: number;
  pids: number;
}

export interface RunStepInput {
  runtime: ContainerRuntime;
  containerId: string;
  /** The step's directory (rootfs/ mounted in it); config.json and the output log go here. */
  dir: string;
  rootfs: string;
  argv: readonly string[];
  env: readonly string[];
  /** The config's User ("" = root), resolved against the rootfs's /etc/passwd and /etc/group. */
  user: string;
  workdir: string;
  cgroupParent: string;
  limits: RunLimits;
  /** Read-only files bound into the container (a RUN heredoc's script); they never reach the layer. */
  binds?: ReadonlyArray<{ source: string; destination: string }>;
  onLine: (line: string) => void;
  signal: AbortSignal;
}

export interface RunOutcome {
  exit: ExitStatus;
  lastLines: string[];
}

/** Runs the command to its end; the container is deleted afterwards, whatever happened. */
export async function runStepContainer(input: RunStepInput): Promise<RunOutcome> {
  const { runtime, containerId, rootfs } = input;
  if (input.argv.length === 0) throw new BuildError('RUN has no command');
  const passwd = parsePasswd(await readInRoot(rootfs, '/etc/passwd'));
  const groups = parseGroup(await readInRoot(rootfs, '/etc/group'));
  let ids: { uid: number; gid: number };
  try {
    ids = resolveUser(input.user === '' ? '0' : input.user, passwd, groups);
  } catch (error) {
    throw new BuildError(`USER ${input.user}: ${(error as Error).message}`);
  }
  // The runtime needs the working directory to exist; buildah and BuildKit make it too.
  await mkdirInRoot(rootfs, input.workdir);
  const spec = buildOciSpec({
    args: [...input.argv],
    env: [...input.env],
    cwd: input.workdir,
    uid: ids.uid,
    gid: ids.gid,
    hostname: 'tessera-build',
    rootfsPath: rootfs,
    cgroupsPath: `${input.cgroupParent}/${containerId}`,
    memoryLimit: input.limits.memoryBytes,
    pidsLimit: input.limits.pids,
    binds: (input.binds ?? []).map((b) => ({ ...b, readonly: true })),
  });
  // The environment may hold build arguments that are secrets to someone: the bundle is private.
  await writePrivateFile(join(input.dir, 'config.json'), JSON.stringify(spec));
  const logPath = join(input.dir, 'output.log');
  await createPrivateFile(logPath);
  const tail = new OutputTail(input.onLine);
  const log = await open(logPath, 'r');
  let created = false;
  let exited = false;
  const kill = (): void => {
    if (created) void runtime.kill(containerId, 'SIGKILL').catch(() => undefined); // it may have ended already
  };
  input.signal.addEventListener('abort', kill);
  // Output is passed on while the step runs; the read after its exit takes the rest.
  const timer = setInterval(() => tail.readInBackground(log), TAIL_INTERVAL_MS);
  try {
    const state = await runtime.create(containerId, input.dir, { logPath, logFormat: 'raw' });
    created = true;
    await bringLoopbackUp(`/proc/${state.pid}/ns/net`);
    if (input.signal.aborted) throw new BuildError('build cancelled');
    await runtime.start(containerId);
    const exit = await runtime.wait(containerId);
    exited = true;
    // Read through a function: the abort listener may have fired while the wait was pending.
    if (isAborted(input.signal)) throw new BuildError('build cancelled');
    await tail.readFrom(log);
    tail.flush();
    return { exit, lastLines: tail.lastLines };
  } finally {
    clearInterval(timer);
    input.signal.removeEventListener('abort', kill);
    // A read the timer queued must end before the file it reads is closed.
    await tail.idle();
    await log.close();
    if (created) {
      // A container left running by a failure above (or a cancel) is killed; its kill may race its exit.
      if (!exited) await runtime.kill(containerId, 'SIGKILL').catch(() => undefined);
      await runtime.wait(containerId);
      await runtime.delete(containerId);
    }
  }
}

function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** `ip link set lo up` in the container's fresh namespace: loopback works, nothing else exists. */
async function bringLoopbackUp(netnsPath: string): Promise<void> {
  const socket = NetlinkSocket.open(netnsPath);
  try {
    await socket.run([{ bytes: setLink({ index: LOOPBACK_IFINDEX, up: true }), what: 'link set lo up' }]);
  } finally {
    socket.close();
  }
}

/** Reads what the container wrote since the last read and passes it on as lines. */
class OutputTail {
  readonly lastLines: string[] = [];
  private offset = 0;
  private partial = '';
  /** Keeps a character split between two reads whole. */
  private readonly decoder = new StringDecoder('utf8');
  private reading: Promise<void> = Promise.resolve();

  constructor(private readonly onLine: (line: string) => void) {}

  /** Reads what is new; reads run one after another, and one that failed does not stop the next. */
  readFrom(file: FileHandle): Promise<void> {
    const read = this.reading.then(() => this.readMore(file));
    this.reading = read.catch(() => undefined); // the caller of this read gets its error
    return read;
  }

  /**
   * For the timer. A failed periodic read is deliberately dropped: the offset only moves past
   * what was read, so the final read after the container's exit reads the rest again and is the
   * one whose error the build reports.
   */
  readInBackground(file: FileHandle): void {
    this.reading = this.reading.then(() => this.readMore(file)).catch(() => undefined);
  }

  /** Resolves once no read is queued. */
  async idle(): Promise<void> {
    await this.reading;
  }

  flush(): void {
    if (this.partial !== '') this.emit(this.partial);
    this.partial = '';
  }

  private async readMore(file: FileHandle): Promise<void> {
    const buffer = Buffer.alloc(64 * 1024);
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, buffer.length, this.offset);
      if (bytesRead === 0) return;
      this.offset += bytesRead;
      const text = this.partial + this.decoder.write(buffer.subarray(0, bytesRead));
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      if (this.partial.length > MAX_LINE) {
        this.emit(this.partial);
        this.partial = '';
      }
      for (const line of lines) this.emit(line);
    }
  }

  private emit(line: string): void {
    const cut = line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line;
    const clean = cut.replace(/\r$/, '');
    this.lastLines.push(clean);
    if (this.lastLines.length > LAST_LINES) this.lastLines.shift();
    this.onLine(clean);
  }
}
