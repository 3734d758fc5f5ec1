// How `tsctl build` shows a build's progress. Elsewhere than on a terminal (pipes, CI logs), plain
// lines in the manner of BuildKit's plain output, each once: `#3 [build 3/10] RUN make`,
// `#3 CACHED`, `#3 make: Nothing to be done` (a RUN's output), `#3 DONE 1.2s`. On a terminal, a
// frame of one line per step, redrawn in place: a spinner and the running time on the steps that
// run, with their last output lines under them, a bar for image pulls and pushes.
import type { BuildResult } from '../../common/build/builder.js';
import { progressBar, type ProgressStream } from '../output/progress.js';
import { mib, type BuildEvent } from './run-build.js';

export interface BuildProgressRenderer {
  event(event: BuildEvent): void;
  /** Redraws what changes with time alone (the terminal's spinners and clocks); nothing for plain output. */
  tick(): void;
  /** The build is over: the frame's last state, and the cursor on a fresh line. */
  finish(): void;
}

/** "build 3/10", or "stage-0 3/10" for a stage without a name. Pure. */
export function stepLabel(stage: string, step: number, totalSteps: number): string {
  return `${/^\d+$/.test(stage) ? `stage-${stage}` : stage} ${step}/${totalSteps}`;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function transferText(kind: 'pull' | 'push', reference: string, bytes: number, totalBytes: number | undefined): string {
  const verb = kind === 'pull' ? 'pulling' : 'pushing';
  return totalBytes === undefined ? `${verb} ${reference} ${mib(bytes)}` : `${verb} ${reference} ${mib(bytes)}/${mib(totalBytes)}`;
}

/** The lines that say a build succeeded: the digest first (what scripts take), then the names. Pure. */
export function resultLines(result: BuildResult): string[] {
  return [
    `${result.manifestDigest}`,
    ...result.tags.map((tag) => `tagged ${tag}`),
    `${result.layers} layers; ${result.ranSteps} steps run, ${result.cachedSteps} from the cache`,
  ];
}

/** Plain lines, one per event that says something new. */
export class PlainBuildProgress implements BuildProgressRenderer {
  /** Per pull or push: the last quarter reported, so a transfer is a few lines, not thousands. */
  private readonly transfers = new Map<string, number>();

  constructor(private readonly out: ProgressStream) {}

  private line(text: string): void {
    this.out.write(`${text}\n`);
  }

  event(event: BuildEvent): void {
    switch (event.kind) {
      case 'context':
        if (event.phase === 'walked') this.line(`#0 context: ${event.entries} entries, ${mib(event.totalBytes)} to send`);
        if (event.phase === 'received') this.line(`#0 context sent: ${mib(event.bytes)}`);
        return;
      case 'accepted':
        return this.line(`#0 building on ${event.node}`);
      case 'step':
        return this.line(`#${event.step} [${stepLabel(event.stage, event.step, event.totalSteps)}] ${event.instruction}`);
      case 'cached':
        return this.line(`#${event.step} CACHED`);
      case 'output':
        return this.line(`#${event.step} ${event.line}`);
      case 'done':
        return this.line(`#${event.step} DONE ${seconds(event.durationMs)}`);
      case 'pull':
      case 'push': {
        const key = `${event.kind} ${event.reference}`;
        const quarter = event.totalBytes ? Math.floor((Math.min(event.bytes, event.totalBytes) / event.totalBytes) * 4) : 0;
        if (this.transfers.get(key) === quarter) return;
        this.transfers.set(key, quarter);
        return this.line(`#0 ${transferText(event.kind, event.reference, event.bytes, event.totalBytes)}`);
      }
    }
  }

  tick(): void {}

  finish(): void {}
}

interface StepState {
  label: string;
  totalSteps: number;
  instruction: string;
  startedAt: number;
  state: 'running' | 'cached' | 'done';
  durationMs: number;
  lastLines: string[];
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/** Output lines shown under a running step. */
const TAIL_LINES = 5;
/** Finished steps kept on screen; earlier ones scroll away as plain lines so the frame stays shorter than a terminal. */
const FINISHED_IN_FRAME = 12;
const CURSOR_UP = (n: number) => `\x1b[${n}A`;
const CLEAR_LINE = '\r\x1b[2K';

function cut(line: string, columns: number | undefined): string {
  if (!columns || columns < 10 || line.length < columns) return line;
  return `${line.slice(0, columns - 2)}…`;
}

/** The live frame on a terminal. */
export class TtyBuildProgress implements BuildProgressRenderer {
  private readonly steps = new Map<number, StepState>();
  private readonly transfers = new Map<string, { text: string; bytes: number; totalBytes?: number }>();
  private context = '';
  private drawn = 0;
  private frameNumber = 0;
  private readonly startedAt: number;

  constructor(
    private readonly out: ProgressStream,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  event(event: BuildEvent): void {
    switch (event.kind) {
      case 'context':
        this.context =
          event.phase === 'received'
            ? `context: ${event.entries} entries, ${mib(event.bytes)} sent`
            : `context: ${event.entries} entries, ${mib(event.bytes)}/${mib(event.totalBytes)}`;
        break;
      case 'accepted':
        break;
      case 'step':
        this.steps.set(event.step, {
          label: stepLabel(event.stage, event.step, event.totalSteps),
          totalSteps: event.totalSteps,
          instruction: event.instruction,
          startedAt: this.now(),
          state: 'running',
          durationMs: 0,
          lastLines: [],
        });
        break;
      case 'cached':
      case 'done': {
        const step = this.steps.get(event.step);
        if (step === undefined) break;
        step.state = event.kind;
        step.durationMs = event.kind === 'done' ? event.durationMs : 0;
        step.lastLines = [];
        break;
      }
      case 'output': {
        const step = this.steps.get(event.step);
        if (step === undefined) break;
        step.lastLines = [...step.lastLines, event.line].slice(-TAIL_LINES);
        break;
      }
      case 'pull':
      case 'push':
        this.transfers.set(`${event.kind} ${event.reference}`, {
          text: `${event.kind === 'pull' ? 'pulling' : 'pushing'} ${event.reference}`,
          bytes: event.bytes,
          ...(event.totalBytes === undefined ? {} : { totalBytes: event.totalBytes }),
        });
        break;
    }
    this.draw();
  }

  /** The lines of the frame as it stands. */
  frame(): string[] {
    const now = this.now();
    const steps = [...this.steps.entries()].sort(([a], [b]) => a - b).map(([, s]) => s);
    const finished = steps.filter((s) => s.state !== 'running');
    const doneCount = finished.length;
    const total = Math.max(0, ...steps.map((s) => s.totalSteps));
    const lines = [`[+] Building ${seconds(now - this.startedAt)} (${doneCount}/${total})`];
    if (this.context !== '') lines.push(` => ${this.context}`);
    const hidden = new Set(finished.slice(0, Math.max(0, finished.length - FINISHED_IN_FRAME)));
    if (hidden.size > 0) lines.push(` => … ${hidden.size} earlier steps`);
    const spinner = SPINNER[this.frameNumber % SPINNER.length]!;
    for (const step of steps) {
      if (hidden.has(step)) continue;
      const head = ` => [${step.label}] ${step.instruction}`;
      if (step.state === 'cached') lines.push(`${head}  CACHED`);
      else if (step.state === 'done') lines.push(`${head}  DONE ${seconds(step.durationMs)}`);
      else {
        lines.push(`${head}  ${spinner} ${seconds(now - step.startedAt)}`);
        for (const line of step.lastLines) lines.push(`    | ${line}`);
      }
    }
    for (const t of this.transfers.values()) {
      const bar = t.totalBytes === undefined ? '' : ` ${progressBar(t.bytes, t.totalBytes)}`;
      lines.push(` => ${t.text}${bar} ${mib(t.bytes)}${t.totalBytes === undefined ? '' : `/${mib(t.totalBytes)}`}`);
    }
    return lines;
  }

  private draw(): void {
    const lines = this.frame().map((l) => cut(l, this.out.columns));
    let text = this.drawn > 0 ? CURSOR_UP(this.drawn) : '';
    text += lines.map((l) => `${CLEAR_LINE}${l}\n`).join('');
    const extra = Math.max(0, this.drawn - lines.length);
    if (extra > 0) text += `${`${CLEAR_LINE}\n`.repeat(extra)}${CURSOR_UP(extra)}`;
    this.out.write(text);
    this.drawn = lines.length;
  }

  tick(): void {
    this.frameNumber++;
    this.draw();
  }

  finish(): void {
    this.draw();
  }
}

export function buildProgressRenderer(out: ProgressStream, isTTY: boolean): BuildProgressRenderer {
  return isTTY ? new TtyBuildProgress(out) : new PlainBuildProgress(out);
}
