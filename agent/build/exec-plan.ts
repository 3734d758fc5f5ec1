// What the executor runs: stages of steps, each step already resolved by the planner (ARG values
// substituted, shell form turned into argv, paths normalised) and with its canonical cacheText.
// These are the executor's own minimal types: the Dockerfile planner (common/build/, h/df-plan)
// produces a BuildPlan that the daemon's wiring maps onto them.
import type { BuildSourceLocation } from '../../common/build/builder.js';

export interface ExecPlan {
  stages: ExecStage[];
  /** Index of the stage whose result is the image (the last one unless --target). */
  target: number;
}

export type StageBase =
  | { kind: 'scratch' }
  /** An image reference: the local store first, else pulled. */
  | { kind: 'image'; reference: string }
  /** An earlier stage's result. */
  | { kind: 'stage'; index: number };

export interface ExecStage {
  /** `AS name`, or the stage's index as a string. */
  name: string;
  base: StageBase;
  steps: ExecStep[];
}

interface StepCommon {
  /** The instruction as written (continuations joined), for progress and history. */
  instruction: string;
  /** The step as the cache sees it: everything that decides its result besides its parent and the files it reads. */
  cacheText: string;
  location?: BuildSourceLocation;
}

/** Settings an instruction changes in the image config (ENV, LABEL, USER, EXPOSE, CMD, ...). */
export interface ConfigPatch {
  env?: Record<string, string>;
  labels?: Record<string, string>;
  /** "PORT/proto" keys. */
  exposedPorts?: string[];
  volumes?: string[];
  user?: string;
  /** Absolute (the planner resolves a relative WORKDIR against the previous one). */
  workingDir?: string;
  /** null clears (CMD after ENTRYPOINT resets Cmd as Docker does; the planner decides). */
  entrypoint?: string[] | null;
  cmd?: string[] | null;
  healthcheck?: { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; StartInterval?: number; Retries?: number };
  stopSignal?: string;
  shell?: string[];
  onBuild?: string[];
}

export type ExecStep =
  | (StepCommon & {
      kind: 'run';
      /** The program and its arguments (shell form already wrapped in the stage's SHELL). */
      args: string[];
      /** NAME=value set for this RUN only (build arguments in scope), over the config's Env. */
      env: string[];
    })
  | (StepCommon & {
      kind: 'copy';
      /** ADD instead of COPY: local tar archives are extracted. */
      add: boolean;
      /** Source paths or globs, relative to the context (or to the --from root). */
      sources: string[];
      /** Absolute, or relative to the working directory; a trailing "/" means a directory. */
      dest: string;
      from?: { kind: 'stage'; index: number } | { kind: 'image'; reference: string };
      /** "user[:group]", names looked up in the stage's /etc/passwd and /etc/group. */
      chown?: string;
      /** Permission bits for every copied file and directory. */
      chmod?: number;
    })
  | (StepCommon & { kind: 'workdir'; path: string })
  | (StepCommon & { kind: 'config'; patch: ConfigPatch });

/** The stages `target` needs (itself, its bases and every COPY --from source), in plan order. */
export function stagesNeeded(plan: ExecPlan): number[] {
  const needed = new Set<number>();
  const visit = (index: number): void => {
    if (needed.has(index)) return;
    const stage = plan.stages[index];
    if (stage === undefined) throw new Error(`build plan: stage ${index} does not exist`);
    needed.add(index);
    if (stage.base.kind === 'stage') visit(stage.base.index);
    for (const step of stage.steps) if (step.kind === 'copy' && step.from?.kind === 'stage') visit(step.from.index);
  };
  visit(plan.target);
  for (const index of needed) {
    const stage = plan.stages[index] as ExecStage;
    const uses = [...(stage.base.kind === 'stage' ? [stage.base.index] : [])];
    for (const step of stage.steps) if (step.kind === 'copy' && step.from?.kind === 'stage') uses.push(step.from.index);
    for (const used of uses) if (used >= index) throw new Error(`build plan: stage ${stage.name} uses stage ${used}, which is not an earlier one`);
  }
  return [...needed].sort((a, b) => a - b);
}
