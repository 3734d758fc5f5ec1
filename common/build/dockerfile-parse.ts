// Parses a Dockerfile into typed instructions grouped by stage (common/build/dockerfile-instructions.ts),
// checking every instruction's form and flags. Nothing is expanded here: that needs the build's
// args and the base images' configs, which the planner has. Pure: text in, data or BuildError out.

import { BuildError, type BuildSourceLocation } from './builder.js';
import type {
  ArgInstruction,
  CommandForm,
  CopyInstruction,
  CopySourceWord,
  FromInstruction,
  HealthcheckInstruction,
  ParsedDockerfile,
  ParsedStage,
  RawPair,
  StageInstruction,
} from './dockerfile-instructions.js';
import { MAX_STAGES } from './dockerfile-limits.js';
import { isHeredocOpener, readDockerfileLines, type RawInstruction } from './dockerfile-lines.js';
import { parseFlags } from './dockerfile-flags.js';
import { parseGoDuration } from './durations.js';
import { splitRawWords } from './shell-lexer.js';

const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;
const ARG_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function parseDockerfile(text: string, file: string): ParsedDockerfile {
  const lines = readDockerfileLines(text, file);
  const globalArgs: ArgInstruction[] = [];
  const stages: { from: FromInstruction; instructions: StageInstruction[] }[] = [];
  for (const raw of lines.instructions) {
    const instruction = parseInstruction(raw, lines.escape);
    if (instruction.kind === 'from') {
      if (stages.length >= MAX_STAGES) throw new BuildError(`more than the limit of ${MAX_STAGES} stages (MAX_STAGES)`, raw.location);
      stages.push({ from: instruction, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (stage !== undefined) stage.instructions.push(instruction);
    else if (instruction.kind === 'arg') globalArgs.push(instruction);
    else throw new BuildError(`${raw.keyword} before the first FROM: only ARG may come before it`, raw.location);
  }
  if (stages.length === 0) throw new BuildError('the Dockerfile has no FROM instruction', { file, line: 1, column: 1 });
  const parsedStages: ParsedStage[] = stages;
  return lines.syntax === undefined
    ? { escape: lines.escape, globalArgs, stages: parsedStages }
    : { escape: lines.escape, syntax: lines.syntax, globalArgs, stages: parsedStages };
}

/** Parses one instruction (also used for ONBUILD triggers, given as one line). */
export function parseInstruction(raw: RawInstruction, escape: string): FromInstruction | StageInstruction {
  const base = { keyword: raw.keyword, location: raw.location, text: raw.text };
  const at = raw.location;
  const rest = (rules: Parameters<typeof parseFlags>[3]): ReturnType<typeof parseFlags> => parseFlags(raw.keyword, raw.args, escape, rules, at);
  if (raw.heredocs.length > 0 && raw.keyword !== 'RUN' && raw.keyword !== 'COPY' && raw.keyword !== 'ADD') {
    throw new BuildError(`${raw.keyword} does not take heredocs`, at);
  }
  switch (raw.keyword) {
    case 'FROM':
      return parseFrom(base, rest({ values: ['platform'] }), escape);
    case 'ARG':
      return { ...base, kind: 'arg', declarations: parseArgDeclarations(noFlags(raw, escape), escape, at) };
    case 'ENV':
      return { ...base, kind: 'env', pairs: parsePairs('ENV', noFlags(raw, escape), escape, at) };
    case 'LABEL':
      return { ...base, kind: 'label', pairs: parsePairs('LABEL', noFlags(raw, escape), escape, at) };
    case 'MAINTAINER':
      return { ...base, kind: 'maintainer', name: required('MAINTAINER', noFlags(raw, escape), at) };
    case 'RUN':
      return parseRun(base, raw, escape);
    case 'COPY':
    case 'ADD':
      return parseCopy(base, raw, escape);
    case 'WORKDIR':
      return { ...base, kind: 'workdir', path: required('WORKDIR', noFlags(raw, escape), at) };
    case 'USER':
      return { ...base, kind: 'user', user: single('USER', noFlags(raw, escape), escape, at) };
    case 'EXPOSE': {
      const ports = splitRawWords(noFlags(raw, escape), escape);
      if (ports.length === 0) throw new BuildError('EXPOSE requires at least one argument', at);
      return { ...base, kind: 'expose', ports };
    }
    case 'CMD':
    case 'ENTRYPOINT': {
      const kind = raw.keyword === 'CMD' ? 'cmd' : 'entrypoint';
      return { ...base, kind, command: commandForm(raw.keyword, noFlags(raw, escape), at, kind === 'cmd') };
    }
    case 'HEALTHCHECK':
      return parseHealthcheck(base, raw, escape);
    case 'STOPSIGNAL':
      return { ...base, kind: 'stopsignal', signal: single('STOPSIGNAL', noFlags(raw, escape), escape, at) };
    case 'VOLUME': {
      const args = noFlags(raw, escape);
      const paths = jsonStrings(args) ?? splitRawWords(args, escape);
      if (paths.length === 0) throw new BuildError('VOLUME requires at least one argument', at);
      if (paths.some((path) => path.trim() === '')) throw new BuildError('VOLUME specified can not be an empty string', at);
      return { ...base, kind: 'volume', paths };
    }
    case 'SHELL': {
      const argv = jsonStrings(noFlags(raw, escape));
      if (argv === undefined) throw new BuildError('SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/bash", "-c"]', at);
      if (argv.length === 0) throw new BuildError('SHELL requires at least one argument', at);
      return { ...base, kind: 'shell', argv };
    }
    case 'ONBUILD':
      return parseOnbuild(base, noFlags(raw, escape), escape);
    default:
      throw new BuildError(`unknown instruction: ${raw.text.split(/\s/, 1)[0] ?? raw.keyword}`, at);
  }
}

type Base = { readonly keyword: string; readonly location: BuildSourceLocation; readonly text: string };

function noFlags(raw: RawInstruction, escape: string): string {
  return parseFlags(raw.keyword, raw.args, escape, {}, raw.location).rest;
}

function required(keyword: string, args: string, at: BuildSourceLocation): string {
  if (args === '') throw new BuildError(`${keyword} requires an argument`, at);
  return args;
}

function single(keyword: string, args: string, escape: string, at: BuildSourceLocation): string {
  const words = splitRawWords(args, escape);
  const word = words[0];
  if (words.length !== 1 || word === undefined) throw new BuildError(`${keyword} requires exactly one argument`, at);
  return word;
}

function parseFrom(base: Base, flags: ReturnType<typeof parseFlags>, escape: string): FromInstruction {
  const words = splitRawWords(flags.rest, escape);
  const image = words[0];
  if (image === undefined || (words.length !== 1 && words.length !== 3)) {
    throw new BuildError('FROM requires either one or three arguments: FROM image [AS name]', base.location);
  }
  let stageName: string | undefined;
  if (words.length === 3) {
    if (words[1]?.toLowerCase() !== 'as') throw new BuildError(`FROM: expected "AS" before the stage name, found "${words[1] ?? ''}"`, base.location);
    stageName = (words[2] ?? '').toLowerCase();
    if (!STAGE_NAME.test(stageName)) {
      throw new BuildError(`invalid stage name "${words[2] ?? ''}": it must start with a letter and hold only letters, digits, "-", "_" and "."`, base.location);
    }
  }
  const platform = flags.values.get('platform');
  return {
    ...base,
    kind: 'from',
    image,
    ...(stageName === undefined ? {} : { stageName }),
    ...(platform === undefined ? {} : { platform }),
  };
}

function parseArgDeclarations(args: string, escape: string, at: BuildSourceLocation): ArgInstruction['declarations'] {
  const words = splitRawWords(args, escape);
  if (words.length === 0) throw new BuildError('ARG requires at least one argument', at);
  return words.map((word) => {
    const equals = word.indexOf('=');
    const name = equals === -1 ? word : word.slice(0, equals);
    if (!ARG_NAME.test(name)) throw new BuildError(`ARG: invalid name "${name}"`, at);
    return equals === -1 ? { name } : { name, defaultValue: word.slice(equals + 1) };
  });
}

/** ENV and LABEL: `KEY=VALUE ...`, or the legacy `KEY VALUE` (the value being the rest of the line). */
function parsePairs(keyword: string, args: string, escape: string, at: BuildSourceLocation): RawPair[] {
  const words = splitRawWords(args, escape);
  const first = words[0];
  if (first === undefined) throw new BuildError(`${keyword} requires at least one argument`, at);
  if (!first.includes('=')) {
    const value = args.slice(first.length).trim();
    if (value === '') throw new BuildError(`${keyword} must have two arguments: ${keyword} ${first} value (or ${first}=value)`, at);
    return [{ key: first, value }];
  }
  return words.map((word) => {
    const equals = word.indexOf('=');
    if (equals === -1) throw new BuildError(`${keyword}: can't find = in "${word}": it must be of the form name=value`, at);
    if (equals === 0) throw new BuildError(`${keyword}: empty name in "${word}"`, at);
    return { key: word.slice(0, equals), value: word.slice(equals + 1) };
  });
}

/** A JSON array of strings, or undefined when `args` is not one (then it is shell form, as in Docker). */
export function jsonStrings(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    // Not JSON: Docker takes the text as shell form, so do we.
    return undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((item): item is string => typeof item === 'string')) return undefined;
  return parsed;
}

function commandForm(keyword: string, args: string, at: BuildSourceLocation, allowEmptyExec: boolean): CommandForm {
  const argv = jsonStrings(args);
  if (argv !== undefined) {
    if (argv.length === 0 && !allowEmptyExec) throw new BuildError(`${keyword} requires at least one argument`, at);
    return { kind: 'exec', argv };
  }
  if (args === '') throw new BuildError(`${keyword} requires at least one argument`, at);
  return { kind: 'shell', command: args };
}

const RUN_REFUSED = {
  mount: 'cache, secret, ssh and bind mounts are not available to builds here (a build has no host mounts)',
  network: 'a build step always runs on the build network',
  security: 'a build step never runs with more privilege than a default container',
  device: 'a build step gets no host devices',
};

function parseRun(base: Base, raw: RawInstruction, escape: string): StageInstruction {
  const flags = parseFlags('RUN', raw.args, escape, { refused: RUN_REFUSED }, raw.location);
  const command = commandForm('RUN', flags.rest, raw.location, false);
  if (command.kind === 'exec' && raw.heredocs.length > 0) throw new BuildError('RUN: heredocs need the shell form', raw.location);
  return { ...base, kind: 'run', command, heredocs: raw.heredocs };
}

const COPY_REFUSED = {
  parents: 'not supported by this builder (a labs feature of BuildKit)',
  exclude: 'not supported by this builder; use .dockerignore',
};
const ADD_REFUSED = {
  ...COPY_REFUSED,
  'keep-git-dir': 'ADD of a Git repository is not supported',
  unpack: 'not supported by this builder',
  from: 'ADD has no --from; use COPY --from',
};

function parseCopy(base: Base, raw: RawInstruction, escape: string): CopyInstruction {
  const add = raw.keyword === 'ADD';
  const flags = parseFlags(
    raw.keyword,
    raw.args,
    escape,
    add
      ? { values: ['chown', 'chmod', 'checksum'], booleans: ['link'], refused: ADD_REFUSED }
      : { values: ['from', 'chown', 'chmod'], booleans: ['link'], refused: COPY_REFUSED },
    raw.location,
  );
  const json = jsonStrings(flags.rest);
  const words = json ?? splitRawWords(flags.rest, escape);
  const dest = words.at(-1);
  if (dest === undefined || words.length < 2) throw new BuildError(`${raw.keyword} requires at least two arguments: source(s) and destination`, raw.location);
  let heredocIndex = 0;
  const sources: CopySourceWord[] = words.slice(0, -1).map((word) => {
    const heredoc = json === undefined && isHeredocOpener(word) ? raw.heredocs[heredocIndex++] : undefined;
    return heredoc === undefined ? { kind: 'path', word } : { kind: 'heredoc', heredoc };
  });
  const value = (name: string): { [key: string]: string } => {
    const v = flags.values.get(name);
    return v === undefined ? {} : { [name]: v };
  };
  return {
    ...base,
    kind: 'copy',
    add,
    ...value('from'),
    ...value('chown'),
    ...value('chmod'),
    ...value('checksum'),
    link: flags.booleans.has('link'),
    sources,
    dest,
  };
}

const MS = 1e6;

function parseHealthcheck(base: Base, raw: RawInstruction, escape: string): HealthcheckInstruction {
  const at = raw.location;
  const flags = parseFlags('HEALTHCHECK', raw.args, escape, { values: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'] }, at);
  const words = splitRawWords(flags.rest, escape);
  const type = words[0]?.toUpperCase();
  if (type === 'NONE') {
    if (words.length > 1 || flags.values.size > 0) throw new BuildError('HEALTHCHECK NONE takes no other arguments', at);
    return { ...base, kind: 'healthcheck', healthcheck: { test: ['NONE'], intervalNs: 0, timeoutNs: 0, startPeriodNs: 0, startIntervalNs: 0, retries: 0 } };
  }
  if (type !== 'CMD') throw new BuildError(`unknown type "${words[0] ?? ''}" in HEALTHCHECK (try CMD or NONE)`, at);
  const commandText = flags.rest.slice((words[0] ?? '').length).trim();
  const command = commandForm('HEALTHCHECK CMD', commandText, at, false);
  const test = command.kind === 'exec' ? ['CMD', ...command.argv] : ['CMD-SHELL', command.command];
  const duration = (name: string): number => {
    const text = flags.values.get(name);
    if (text === undefined) return 0;
    const ns = parseGoDuration(text);
    if (ns === undefined) throw new BuildError(`HEALTHCHECK --${name}: "${text}" is not a duration (e.g. 30s, 1m30s, 500ms)`, at);
    if (ns !== 0 && ns < MS) throw new BuildError(`HEALTHCHECK --${name} cannot be less than 1ms`, at);
    return ns;
  };
  const retriesText = flags.values.get('retries');
  let retries = 0;
  if (retriesText !== undefined) {
    if (!/^[0-9]{1,9}$/.test(retriesText)) throw new BuildError(`HEALTHCHECK --retries: "${retriesText}" is not a whole number of at most 9 digits`, at);
    retries = Number(retriesText);
  }
  return {
    ...base,
    kind: 'healthcheck',
    healthcheck: {
      test,
      intervalNs: duration('interval'),
      timeoutNs: duration('timeout'),
      startPeriodNs: duration('start-period'),
      startIntervalNs: duration('start-interval'),
      retries,
    },
  };
}

const ONBUILD_FORBIDDEN: Readonly<Record<string, string>> = {
  ONBUILD: 'chaining ONBUILD via `ONBUILD ONBUILD` is not allowed',
  FROM: 'FROM is not allowed as an ONBUILD trigger',
  MAINTAINER: 'MAINTAINER is not allowed as an ONBUILD trigger',
};

function parseOnbuild(base: Base, trigger: string, escape: string): StageInstruction {
  if (trigger === '') throw new BuildError('ONBUILD requires an instruction', base.location);
  const raw = triggerInstruction(trigger, base.location);
  const forbidden = ONBUILD_FORBIDDEN[raw.keyword];
  if (forbidden !== undefined) throw new BuildError(forbidden, base.location);
  // Parsed now so a bad trigger fails this build, not the builds FROM this image.
  parseInstruction(raw, escape);
  return { ...base, kind: 'onbuild', trigger };
}

/** An ONBUILD trigger ("RUN make") as an instruction of one line at `location`. */
export function triggerInstruction(trigger: string, location: BuildSourceLocation): RawInstruction {
  const trimmed = trigger.trim();
  const space = trimmed.search(/\s/);
  const written = space === -1 ? trimmed : trimmed.slice(0, space);
  const args = space === -1 ? '' : trimmed.slice(space).trim();
  return { keyword: written.toUpperCase(), location, args, text: trimmed, heredocs: [] };
}
