// The build planner's two entry points (see plan-types.ts for the shapes and why two phases):
//
//   const graph = planStages(input);            // which stages, which images to resolve
//   ...resolve graph.baseImages, read each config...
//   const plan = planSteps(input, baseConfigs); // every step, expanded, with its config
//
// Both are pure and throw BuildError (with file:line:column where there is one) for anything the
// Dockerfile, the build args or the target get wrong.

import { BuildError, type BuildSourceLocation } from './builder.js';
import { MAX_INSTRUCTIONS, MAX_ONBUILD_TRIGGERS } from './dockerfile-limits.js';
import { parseInstruction, triggerInstruction } from './dockerfile-parse.js';
import { PROXY_ARGS } from './plan-args.js';
import { EMPTY_CONFIG, withLabels } from './plan-config.js';
import { analyseStages, resolveCopyFrom, type StageAnalysis } from './plan-stages.js';
import { StagePlanner, type StageContext } from './plan-steps.js';
import type { StageInstruction } from './dockerfile-instructions.js';
import type { BaseImageConfig, BuildImageConfig, BuildPlan, CopySource, PlanInput, StageGraph, StagePlan } from './plan-types.js';

export function planStages(input: PlanInput): StageGraph {
  const analysis = analyseStages(input);
  const stages = analysis.needed.map((index) => analysis.headers[index]).filter((header) => header !== undefined);
  const baseImages = new Set<string>();
  for (const stage of stages) if (stage.base.kind === 'image') baseImages.add(stage.base.reference);
  const copyFromImages = new Set<string>();
  for (const { source, stage } of analysis.copySources.values()) {
    if (source.kind === 'image' && analysis.needed.includes(stage)) copyFromImages.add(source.reference);
  }
  return { stages, outputStage: analysis.outputStage, baseImages: [...baseImages], copyFromImages: [...copyFromImages] };
}

export function planSteps(input: PlanInput, baseConfigs: Readonly<Record<string, BaseImageConfig>>): BuildPlan {
  const analysis = analyseStages(input);
  const consumed = new Set<string>();
  const warnings: string[] = [];
  if (analysis.parsed.syntax !== undefined && !/^(?:docker\.io\/)?docker\/dockerfile(?::|@|$)/.test(analysis.parsed.syntax)) {
    warnings.push(`${input.fileName}: the syntax directive "${analysis.parsed.syntax}" is ignored: this builder reads the Dockerfile itself`);
  }
  for (const instruction of analysis.parsed.globalArgs) {
    for (const declaration of instruction.declarations) if (Object.hasOwn(input.request.buildArgs, declaration.name)) consumed.add(declaration.name);
  }

  const finalConfigs = new Map<number, BuildImageConfig>();
  const stages: StagePlan[] = [];
  let instructionCount = 0;
  for (const index of analysis.needed) {
    const header = analysis.headers[index];
    const parsedStage = analysis.parsed.stages[index];
    if (header === undefined || parsedStage === undefined) continue;
    const baseConfig = baseConfigOf(header.base, baseConfigs, finalConfigs, header.location);
    const context: StageContext = {
      expander: analysis.expander,
      argSources: { buildArgs: input.request.buildArgs, globalArgs: analysis.globalArgs, automatic: analysis.automatic },
      copySource: (instruction, value) => {
        const phase1 = analysis.copySources.get(instruction);
        // Triggers from a base image were not seen in phase 1: resolve them now (an image there
        // could not have been resolved by the executor, so only stages are allowed).
        if (phase1 === undefined) return triggerCopySource(value, index, analysis, instruction.location);
        if (phase1.value !== value) {
          throw new BuildError(`COPY --from=${value}: the value depends on an ENV (it was "${phase1.value}" with the ARGs alone); --from may only use ARGs`, instruction.location);
        }
        return phase1.source;
      },
      consumed,
      warnings,
    };
    const planner = new StagePlanner(baseConfig, context);
    const triggers = planner.takeOnBuildTriggers();
    if (triggers.length > MAX_ONBUILD_TRIGGERS) {
      throw new BuildError(`the base image has ${triggers.length} ONBUILD triggers, more than the limit of ${MAX_ONBUILD_TRIGGERS} (MAX_ONBUILD_TRIGGERS)`, header.location);
    }
    for (const trigger of triggers) planner.add(parseTrigger(trigger, analysis.parsed.escape, header.location));
    for (const instruction of parsedStage.instructions) planner.add(instruction);
    instructionCount += planner.steps.length;
    if (instructionCount > MAX_INSTRUCTIONS) throw new BuildError(`more than the limit of ${MAX_INSTRUCTIONS} steps (MAX_INSTRUCTIONS)`, header.location);
    const finalConfig = planner.finalConfig();
    finalConfigs.set(index, finalConfig);
    stages.push({
      index,
      ...(header.name === undefined ? {} : { name: header.name }),
      base: header.base,
      ...(header.platform === undefined ? {} : { platform: header.platform }),
      baseConfig,
      steps: planner.steps,
      finalConfig,
    });
  }

  const output = finalConfigs.get(analysis.outputStage) ?? EMPTY_CONFIG;
  const given = Object.keys(input.request.buildArgs).sort();
  const buildArgsUsed = given.filter((name) => consumed.has(name) || PROXY_ARGS.has(name));
  const buildArgsUnused = given.filter((name) => !consumed.has(name) && !PROXY_ARGS.has(name));
  if (buildArgsUnused.length > 0) warnings.push(`one or more build args [${buildArgsUnused.join(' ')}] were not consumed`);
  return {
    stages,
    outputStage: analysis.outputStage,
    outputConfig: withLabels(output, input.request.labels),
    buildArgsUsed,
    buildArgsUnused,
    warnings,
  };
}

function baseConfigOf(
  base: StagePlan['base'],
  baseConfigs: Readonly<Record<string, BaseImageConfig>>,
  finalConfigs: ReadonlyMap<number, BuildImageConfig>,
  at: BuildSourceLocation,
): BuildImageConfig {
  if (base.kind === 'scratch') return EMPTY_CONFIG;
  if (base.kind === 'stage') {
    const config = finalConfigs.get(base.index);
    if (config === undefined) throw new BuildError(`stage ${base.index} was not planned before the stage built on it`, at);
    return config;
  }
  const config = Object.hasOwn(baseConfigs, base.reference) ? baseConfigs[base.reference] : undefined;
  if (config === undefined) throw new BuildError(`no config was given for the base image ${base.reference} (planStages lists it in baseImages)`, at);
  return config;
}

/** A base image's ONBUILD trigger, parsed as an instruction located at the FROM that inherited it. */
function parseTrigger(trigger: string, escape: string, from: BuildSourceLocation): StageInstruction {
  const raw = triggerInstruction(trigger, from);
  if (raw.keyword === 'ONBUILD' || raw.keyword === 'FROM' || raw.keyword === 'MAINTAINER') {
    throw new BuildError(`the base image's ONBUILD trigger "${trigger.slice(0, 200)}" is not allowed (${raw.keyword} cannot be a trigger)`, from);
  }
  const instruction = parseInstruction(raw, escape);
  if (instruction.kind === 'from') throw new BuildError('FROM is not allowed as an ONBUILD trigger', from);
  return instruction;
}

function triggerCopySource(value: string, current: number, analysis: StageAnalysis, at: BuildSourceLocation): CopySource {
  const source = resolveCopyFrom(value, current, analysis.parsed, analysis.headers, at);
  if (source.kind !== 'stage' || !analysis.needed.includes(source.index)) {
    throw new BuildError(`the base image's ONBUILD trigger copies --from=${value}, which is not a stage this build runs`, at);
  }
  return source;
}
