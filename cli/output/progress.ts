// Shows where each followed service stands. On a terminal: one line per service with a bar,
// redrawn in place with ANSI cursor moves. Elsewhere (pipes, CI logs): a line only when a
// service's state changes, so the output reads as a log.
import type { ServiceConvergence } from './convergence.js';

/** The little of a stream the renderers need; process.stdout fits, and so does a fake in tests. */
export interface ProgressStream {
  write(text: string): unknown;
  /** Terminal width; lines are cut to it so a wrapped line never breaks the redraw. */
  columns?: number;
}

export interface ServiceLine {
  /** How the service is named on screen (NAME, or STACK/NAME when several stacks are followed). */
  name: string;
  state: ServiceConvergence;
}

export interface ProgressRenderer {
  update(lines: readonly ServiceLine[]): void;
  /** The last state; the renderer leaves the cursor on a fresh line. */
  finish(lines: readonly ServiceLine[]): void;
}

const BAR_WIDTH = 20;

/** "[=========>          ]": the share of desired tasks that are ready. */
export function progressBar(ready: number, desired: number, width = BAR_WIDTH): string {
  if (desired <= 0) return `[${'='.repeat(width)}]`;
  const filled = Math.min(width, Math.floor((Math.min(ready, desired) / desired) * width));
  const head = filled < width && filled > 0 ? '>' : '';
  return `[${'='.repeat(head ? filled - 1 : filled)}${head}${' '.repeat(width - filled)}]`;
}

function counts(state: ServiceConvergence): string {
  return `${state.ready}/${state.desired} running`;
}

function status(state: ServiceConvergence): string {
  switch (state.phase) {
    case 'converged':
      return 'converged';
    case 'failed':
      return `failed: ${state.detail}`;
    case 'pending':
    case 'converging':
      return state.detail;
  }
}

function cut(line: string, columns: number | undefined): string {
  if (!columns || columns < 10 || line.length < columns) return line;
  return `${line.slice(0, columns - 2)}…`;
}

/** One terminal line per service: "web   3/3 running  [====================]  converged". */
export function formatTtyLine(line: ServiceLine, nameWidth: number): string {
  const { state } = line;
  return `${line.name.padEnd(nameWidth)}  ${counts(state).padEnd(13)}  ${progressBar(state.ready, state.desired)}  ${status(state)}`.trimEnd();
}

/** The plain line for a state: "web: 2/3 running (starting)", "web: converged", "web: failed: …". */
export function formatPlainLine(line: ServiceLine): string {
  const { state } = line;
  if (state.phase === 'converged') return `${line.name}: converged (${counts(state)})`;
  if (state.phase === 'failed') return `${line.name}: failed: ${state.detail} (${counts(state)})`;
  return `${line.name}: ${counts(state)}${state.detail ? ` (${state.detail})` : ''}`;
}

const CURSOR_UP = (n: number) => `\x1b[${n}A`;
const CLEAR_LINE = '\r\x1b[2K';

export class TtyProgress implements ProgressRenderer {
  private drawn = 0;
  private lastFrame = '';

  constructor(private readonly stream: ProgressStream) {}

  update(lines: readonly ServiceLine[]): void {
    const nameWidth = Math.max(0, ...lines.map((l) => l.name.length));
    const frame = lines.map((line) => `${CLEAR_LINE}${cut(formatTtyLine(line, nameWidth), this.stream.columns)}\n`).join('');
    if (frame === this.lastFrame) return;
    this.lastFrame = frame;
    let text = this.drawn > 0 ? CURSOR_UP(this.drawn) : '';
    text += frame;
    // Lines left over from a longer earlier frame are cleared, then the cursor goes back up.
    const extra = Math.max(0, this.drawn - lines.length);
    if (extra > 0) text += `${`${CLEAR_LINE}\n`.repeat(extra)}${CURSOR_UP(extra)}`;
    this.stream.write(text);
    this.drawn = lines.length;
  }

  finish(lines: readonly ServiceLine[]): void {
    this.update(lines);
  }
}

export class PlainProgress implements ProgressRenderer {
  private readonly last = new Map<string, string>();

  constructor(private readonly stream: ProgressStream) {}

  update(lines: readonly ServiceLine[]): void {
    for (const line of lines) {
      const text = formatPlainLine(line);
      if (this.last.get(line.name) === text) continue;
      this.last.set(line.name, text);
      this.stream.write(`${text}\n`);
    }
  }

  finish(lines: readonly ServiceLine[]): void {
    this.update(lines);
  }
}

export function progressRenderer(stream: ProgressStream, isTTY: boolean): ProgressRenderer {
  return isTTY ? new TtyProgress(stream) : new PlainProgress(stream);
}
