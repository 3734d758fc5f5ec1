// A Dockerfile's instructions, typed, as dockerfile-parse.ts reads them: forms told apart (exec or
// shell, JSON array or word list), flags checked, but words not yet expanded, because the values
// of ARG and ENV depend on the stage, the build args and the base image's config (the planner
// expands them, common/build/plan.ts).

import type { BuildHealthcheck } from './plan-types.js';
import type { BuildSourceLocation } from './builder.js';
import type { RawHeredoc } from './dockerfile-lines.js';

interface InstructionBase {
  /** Upper-case keyword. */
  readonly keyword: string;
  readonly location: BuildSourceLocation;
  /** As written, continuations joined: "RUN make all". */
  readonly text: string;
}

/** Exec form (a JSON array, as given) or shell form (the command text, run by SHELL). */
export type CommandForm = { readonly kind: 'exec'; readonly argv: readonly string[] } | { readonly kind: 'shell'; readonly command: string };

/** A key and a value as written (quotes and escapes still in, both expanded by the planner). */
export interface RawPair {
  readonly key: string;
  readonly value: string;
}

export interface FromInstruction extends InstructionBase {
  readonly kind: 'from';
  /** The image, "scratch" or an earlier stage's name, unexpanded. */
  readonly image: string;
  /** `AS name`, lower-cased (not expanded, as in Docker). */
  readonly stageName?: string;
  /** --platform, unexpanded. */
  readonly platform?: string;
}

export interface ArgDeclaration {
  readonly name: string;
  /** The default as written, unexpanded; absent for `ARG NAME`. */
  readonly defaultValue?: string;
}

export interface ArgInstruction extends InstructionBase {
  readonly kind: 'arg';
  readonly declarations: readonly ArgDeclaration[];
}

export interface EnvInstruction extends InstructionBase {
  readonly kind: 'env';
  readonly pairs: readonly RawPair[];
}

export interface LabelInstruction extends InstructionBase {
  readonly kind: 'label';
  readonly pairs: readonly RawPair[];
}

export interface MaintainerInstruction extends InstructionBase {
  readonly kind: 'maintainer';
  readonly name: string;
}

export interface RunInstruction extends InstructionBase {
  readonly kind: 'run';
  readonly command: CommandForm;
  readonly heredocs: readonly RawHeredoc[];
}

export interface CopyInstruction extends InstructionBase {
  readonly kind: 'copy';
  readonly add: boolean;
  /** --from, unexpanded (COPY only). */
  readonly from?: string;
  /** --chown, unexpanded. */
  readonly chown?: string;
  /** --chmod, unexpanded. */
  readonly chmod?: string;
  /** --checksum (ADD of a URL only), unexpanded. */
  readonly checksum?: string;
  /** --link was given: accepted and ignored (the files land the same; only BuildKit's layer rebasing differs). */
  readonly link: boolean;
  /** Sources, unexpanded (raw words, or the JSON array's strings), and `<<NAME` heredoc files. */
  readonly sources: readonly CopySourceWord[];
  /** The destination, unexpanded. */
  readonly dest: string;
}

export type CopySourceWord = { readonly kind: 'path'; readonly word: string } | { readonly kind: 'heredoc'; readonly heredoc: RawHeredoc };

export interface WorkdirInstruction extends InstructionBase {
  readonly kind: 'workdir';
  readonly path: string;
}

export interface UserInstruction extends InstructionBase {
  readonly kind: 'user';
  readonly user: string;
}

export interface ExposeInstruction extends InstructionBase {
  readonly kind: 'expose';
  /** Raw words: "80", "53/udp", "8000-8010/tcp", "$PORT". */
  readonly ports: readonly string[];
}

export interface CommandInstruction extends InstructionBase {
  readonly kind: 'cmd' | 'entrypoint';
  readonly command: CommandForm;
}

export interface HealthcheckInstruction extends InstructionBase {
  readonly kind: 'healthcheck';
  /** ["NONE"] with zero durations, or a CMD / CMD-SHELL test with its options. */
  readonly healthcheck: BuildHealthcheck;
}

export interface StopsignalInstruction extends InstructionBase {
  readonly kind: 'stopsignal';
  readonly signal: string;
}

export interface VolumeInstruction extends InstructionBase {
  readonly kind: 'volume';
  /** Raw words or the JSON array's strings, unexpanded. */
  readonly paths: readonly string[];
}

export interface ShellInstruction extends InstructionBase {
  readonly kind: 'shell';
  readonly argv: readonly string[];
}

export interface OnbuildInstruction extends InstructionBase {
  readonly kind: 'onbuild';
  /** The trigger as written after ONBUILD, e.g. "RUN make"; checked to parse. */
  readonly trigger: string;
}

export type StageInstruction =
  | ArgInstruction
  | EnvInstruction
  | LabelInstruction
  | MaintainerInstruction
  | RunInstruction
  | CopyInstruction
  | WorkdirInstruction
  | UserInstruction
  | ExposeInstruction
  | CommandInstruction
  | HealthcheckInstruction
  | StopsignalInstruction
  | VolumeInstruction
  | ShellInstruction
  | OnbuildInstruction;

export interface ParsedStage {
  readonly from: FromInstruction;
  readonly instructions: readonly StageInstruction[];
}

export interface ParsedDockerfile {
  readonly escape: string;
  readonly syntax?: string;
  /** ARGs before the first FROM: usable in FROM lines, and in a stage that declares them again. */
  readonly globalArgs: readonly ArgInstruction[];
  readonly stages: readonly ParsedStage[];
}
