// Phase 1 of planning: the stage graph. Global ARGs and FROM lines expanded, stage bases and
// `COPY --from` sources resolved to stages or images, the --target found, and the stages it needs
// picked (unused stages are skipped, as BuildKit does; buildah's default builds them all).

import { BuildError, type BuildSourceLocation } from './builder.js';
import type { CopyInstruction, ParsedDockerfile } from './dockerfile-instructions.js';
import { parseDockerfile } from './dockerfile-parse.js';
import { argValue, Expander } from './plan-expand.js';
import { automaticArgs, formatPlatform, platformMatches } from './plan-args.js';
import type { CopySource, PlanInput, StageBase, StageHeader } from './plan-types.js';
import { InvalidReferenceError, parseReference } from '../images/reference.js';

export interface StageAnalysis {
  readonly parsed: ParsedDockerfile;
  readonly expander: Expander;
  /** Every stage of the file, needed or not. */
  readonly headers: readonly StageHeader[];
  readonly globalArgs: ReadonlyMap<string, string | undefined>;
  readonly automatic: ReadonlyMap<string, string>;
  readonly outputStage: number;
  /** Indexes of the stages the output needs, ascending. */
  readonly needed: readonly number[];
  /** `COPY --from` of each copy instruction, as expanded with the ARGs in scope (phase 2 checks ENV did not change it). */
  readonly copySources: ReadonlyMap<CopyInstruction, ResolvedCopyFrom>;
}

export interface ResolvedCopyFrom {
  readonly value: string;
  readonly source: CopySource;
  /** The stage the COPY is in. */
  readonly stage: number;
}

export function analyseStages(input: PlanInput): StageAnalysis {
  const parsed = parseDockerfile(input.dockerfile, input.fileName);
  const expander = new Expander(parsed.escape);
  const automatic = automaticArgs(input.platform);
  const buildArgs = input.request.buildArgs;

  const globalArgs = new Map<string, string | undefined>();
  const globalLookup = (name: string): string | undefined => (globalArgs.has(name) ? globalArgs.get(name) : automatic.get(name));
  for (const instruction of parsed.globalArgs) {
    for (const declaration of instruction.declarations) {
      globalArgs.set(declaration.name, argValue(declaration, { buildArgs, automatic }, (word) => expander.word(word, globalLookup, instruction.location)));
    }
  }

  const headers: StageHeader[] = [];
  const copySources = new Map<CopyInstruction, ResolvedCopyFrom>();
  const dependencies: number[][] = [];
  parsed.stages.forEach((stage, index) => {
    const at = stage.from.location;
    const image = expander.word(stage.from.image, globalLookup, at);
    if (image === '') throw new BuildError(`FROM: the base name (${stage.from.image}) should not be blank`, at);
    const base = resolveBase(image, headers, at);
    let platform: string | undefined;
    if (stage.from.platform !== undefined) {
      platform = expander.word(stage.from.platform, globalLookup, at);
      if (!platformMatches(platform, input.platform)) {
        throw new BuildError(`FROM --platform=${platform}: this node builds for ${formatPlatform(input.platform)} only (no emulation of other platforms)`, at);
      }
    }
    headers.push({
      index,
      ...(stage.from.stageName === undefined ? {} : { name: stage.from.stageName }),
      base,
      ...(platform === undefined ? {} : { platform }),
      location: at,
    });
    const deps = base.kind === 'stage' ? [base.index] : [];
    // --from with the ARGs in scope at that point (ENV is only known in phase 2, which checks it agrees).
    const stageArgs = new Map<string, string | undefined>();
    const lookup = (name: string): string | undefined => stageArgs.get(name);
    for (const instruction of stage.instructions) {
      if (instruction.kind === 'arg') {
        for (const declaration of instruction.declarations) {
          stageArgs.set(declaration.name, argValue(declaration, { buildArgs, globalArgs, automatic }, (word) => expander.word(word, lookup, instruction.location)));
        }
      } else if (instruction.kind === 'copy' && instruction.from !== undefined) {
        const value = expander.word(instruction.from, lookup, instruction.location);
        const source = resolveCopyFrom(value, index, parsed, headers, instruction.location);
        copySources.set(instruction, { value, source, stage: index });
        if (source.kind === 'stage') deps.push(source.index);
      }
    }
    dependencies.push(deps);
  });

  const outputStage = findTarget(input.request.target, headers, input.fileName);
  const needed = new Set<number>();
  const visit = (index: number): void => {
    if (needed.has(index)) return;
    needed.add(index);
    for (const dep of dependencies[index] ?? []) visit(dep);
  };
  visit(outputStage);
  return {
    parsed,
    expander,
    headers,
    globalArgs,
    automatic,
    outputStage,
    needed: [...needed].sort((a, b) => a - b),
    copySources,
  };
}

function resolveBase(image: string, earlier: readonly StageHeader[], at: BuildSourceLocation): StageBase {
  if (image === 'scratch') return { kind: 'scratch' };
  const stage = earlier.find((header) => header.name === image.toLowerCase());
  if (stage !== undefined) return { kind: 'stage', index: stage.index };
  checkReference(image, at);
  return { kind: 'image', reference: image };
}

/** `COPY --from=`: an earlier stage's index or name, else an image. */
export function resolveCopyFrom(value: string, current: number, parsed: ParsedDockerfile, earlier: readonly StageHeader[], at: BuildSourceLocation): CopySource {
  if (value === '') throw new BuildError('COPY --from is empty', at);
  if (/^[0-9]+$/.test(value)) {
    const index = Number(value);
    if (index >= current) throw new BuildError(`COPY --from=${value} refers to the current or a later stage; only earlier stages can be copied from`, at);
    return { kind: 'stage', index };
  }
  const name = value.toLowerCase();
  const stage = earlier.find((header) => header.index < current && header.name === name);
  if (stage !== undefined) return { kind: 'stage', index: stage.index };
  if (parsed.stages.some((s, index) => index >= current && s.from.stageName === name)) {
    throw new BuildError(`COPY --from=${value} refers to the current or a later stage; only earlier stages can be copied from`, at);
  }
  checkReference(value, at);
  return { kind: 'image', reference: value };
}

function checkReference(image: string, at: BuildSourceLocation): void {
  try {
    parseReference(image);
  } catch (error) {
    if (error instanceof InvalidReferenceError) throw new BuildError(error.message, at);
    throw error;
  }
}

function findTarget(target: string | undefined, headers: readonly StageHeader[], file: string): number {
  if (target === undefined || target === '') return headers.length - 1;
  const found = headers.find((header) => header.name === target.toLowerCase());
  if (found !== undefined) return found.index;
  const names = headers.map((header) => header.name ?? `(unnamed ${header.index})`).join(', ');
  throw new BuildError(`target stage "${target}" could not be found in ${file}; its stages are: ${names}`);
}
