// Phase 2 of planning, for one stage: each instruction expanded in the stage's scope (its ARGs,
// the config's Env, which wins over an ARG of the same name) and turned into a step carrying the
// image config after it. Docker expands variables in ADD COPY ENV EXPOSE FROM LABEL STOPSIGNAL
// USER VOLUME WORKDIR (and ARG defaults); RUN, CMD, ENTRYPOINT and HEALTHCHECK are left to the shell.

import { posix } from 'node:path';
import { BuildError, type BuildSourceLocation } from './builder.js';
import type { CopyInstruction, RunInstruction, StageInstruction } from './dockerfile-instructions.js';
import type { RawHeredoc } from './dockerfile-lines.js';
import { MAX_EXPOSED_PORTS } from './dockerfile-limits.js';
import { ConfigBuilder, DEFAULT_SHELL } from './plan-config.js';
import { argValue, type ArgSources, type Expander } from './plan-expand.js';
import { PROXY_ARGS } from './plan-args.js';
import type { BuildImageConfig, BuildStep, CopySource, CopyStep, RunInlineFile, RunStep } from './plan-types.js';

export interface StageContext {
  readonly expander: Expander;
  readonly argSources: ArgSources;
  /** `COPY --from` as phase 1 resolved it; the step must agree. */
  readonly copySource: (instruction: CopyInstruction, value: string) => CopySource;
  /** Build-arg names an ARG consumed (filled in). */
  readonly consumed: Set<string>;
  /** Warnings (filled in). */
  readonly warnings: string[];
}

export class StagePlanner {
  private readonly config: ConfigBuilder;
  /** ARGs declared in this stage, with their values (undefined: declared without one). */
  private readonly args = new Map<string, string | undefined>();
  /** CMD was set in this stage: a later ENTRYPOINT keeps it (otherwise ENTRYPOINT clears the base's CMD). */
  private cmdSet = false;
  readonly steps: BuildStep[] = [];

  constructor(
    base: BuildImageConfig,
    private readonly context: StageContext,
  ) {
    this.config = new ConfigBuilder(base);
  }

  /** The base image's ONBUILD triggers run first and are not inherited further (as in Docker). */
  takeOnBuildTriggers(): string[] {
    const triggers = this.config.onBuild;
    this.config.onBuild = [];
    return triggers;
  }

  finalConfig(): BuildImageConfig {
    return this.config.snapshot();
  }

  /** Variables visible to expansion: the config's Env first, then this stage's ARGs. */
  private readonly lookup = (name: string): string | undefined => this.config.getEnv(name) ?? this.args.get(name);

  private expand(word: string, at: BuildSourceLocation): string {
    return this.context.expander.word(word, this.lookup, at);
  }

  add(instruction: StageInstruction): void {
    const common = { location: instruction.location, instruction: instruction.text };
    if (instruction.kind === 'run') {
      this.steps.push(this.run(instruction));
      return;
    }
    if (instruction.kind === 'copy') {
      this.steps.push(this.copy(instruction));
      return;
    }
    if (instruction.kind === 'workdir') {
      const path = this.expand(instruction.path, instruction.location);
      if (path === '') throw new BuildError('WORKDIR: the path is empty after expansion', instruction.location);
      this.config.workingDir = posix.resolve(this.config.workingDir === '' ? '/' : this.config.workingDir, path);
      const configAfter = this.config.snapshot();
      this.steps.push({ ...common, kind: 'workdir', path: this.config.workingDir, cacheText: `WORKDIR ${this.config.workingDir}`, configAfter });
      return;
    }
    const cacheText = this.configChange(instruction);
    const configAfter = this.config.snapshot();
    this.steps.push({ ...common, kind: 'config', keyword: instruction.keyword, cacheText: cacheText ?? `${instruction.keyword} ${JSON.stringify(configAfter)}`, configAfter });
  }

  /** Applies a config-only instruction; returns its cache text when the config does not show the change (ARG). */
  private configChange(instruction: Exclude<StageInstruction, RunInstruction | CopyInstruction | { kind: 'workdir' }>): string | undefined {
    const at = instruction.location;
    switch (instruction.kind) {
      case 'arg': {
        const values: string[] = [];
        for (const declaration of instruction.declarations) {
          // ENV before the ARG is visible to its default, as every expansion sees it.
          const value = argValue(declaration, this.context.argSources, (word) => this.expand(word, at));
          this.args.set(declaration.name, value);
          if (Object.hasOwn(this.context.argSources.buildArgs, declaration.name)) this.context.consumed.add(declaration.name);
          if (!PROXY_ARGS.has(declaration.name)) values.push(value === undefined ? declaration.name : `${declaration.name}=${value}`);
        }
        return `ARG ${JSON.stringify(values)}`;
      }
      case 'env': {
        // Every pair sees the variables as they were before this ENV (Docker expands the whole instruction first).
        const pairs = instruction.pairs.map((pair) => [this.expand(pair.key, at), this.expand(pair.value, at)] as const);
        for (const [key, value] of pairs) {
          if (key === '' || key.includes('=')) throw new BuildError(`ENV: invalid name "${key}"`, at);
          this.config.setEnv(key, value);
        }
        return undefined;
      }
      case 'label': {
        const pairs = instruction.pairs.map((pair) => [this.expand(pair.key, at), this.expand(pair.value, at)] as const);
        for (const [key, value] of pairs) {
          if (key === '') throw new BuildError('LABEL: empty name', at);
          this.config.setLabel(key, value);
        }
        return undefined;
      }
      case 'maintainer':
        this.config.author = instruction.name;
        this.context.warnings.push(`${where(at)}: MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors=...`);
        return undefined;
      case 'user': {
        const user = this.expand(instruction.user, at);
        if (user === '') throw new BuildError('USER: the user is empty after expansion', at);
        this.config.user = user;
        return undefined;
      }
      case 'expose':
        for (const word of instruction.ports) {
          for (const spec of this.expand(word, at).split(/\s+/).filter((part) => part !== '')) {
            for (const port of exposedPorts(spec, at)) this.config.expose(port);
          }
        }
        return undefined;
      case 'cmd':
        this.config.cmd = this.commandArgv(instruction.command);
        this.cmdSet = true;
        return undefined;
      case 'entrypoint':
        this.config.entrypoint = this.commandArgv(instruction.command);
        if (!this.cmdSet) this.config.cmd = undefined;
        return undefined;
      case 'healthcheck':
        this.config.healthcheck = instruction.healthcheck;
        return undefined;
      case 'stopsignal': {
        const signal = this.expand(instruction.signal, at);
        if (!/^(?:[0-9]{1,2}|(?:SIG)?[A-Z][A-Z0-9+-]{0,15})$/i.test(signal)) throw new BuildError(`STOPSIGNAL: invalid signal "${signal}"`, at);
        this.config.stopSignal = signal;
        return undefined;
      }
      case 'volume':
        for (const word of instruction.paths) {
          const path = this.expand(word, at);
          if (path.trim() === '') throw new BuildError('VOLUME specified can not be an empty string', at);
          this.config.addVolume(path);
        }
        return undefined;
      case 'shell':
        this.config.shell = instruction.argv;
        return undefined;
      case 'onbuild':
        this.config.onBuild.push(instruction.trigger);
        return undefined;
    }
  }

  private shell(): readonly string[] {
    return this.config.shell ?? DEFAULT_SHELL;
  }

  private commandArgv(command: RunInstruction['command']): string[] {
    return command.kind === 'exec' ? [...command.argv] : [...this.shell(), command.command];
  }

  /** The ARGs in scope that RUN sees: declared, with a value, not shadowed by ENV; plus the proxy args given. */
  private runArgs(): [string, string][] {
    const args: [string, string][] = [];
    for (const [name, value] of this.args) {
      if (value !== undefined && this.config.getEnv(name) === undefined) args.push([name, value]);
    }
    for (const name of PROXY_ARGS) {
      const value = this.context.argSources.buildArgs[name];
      if (value !== undefined && !this.args.has(name) && this.config.getEnv(name) === undefined) {
        args.push([name, value]);
        this.context.consumed.add(name);
      }
    }
    return args;
  }

  private run(instruction: RunInstruction): RunStep {
    const { argv, inlineFiles } = this.runCommand(instruction);
    const args = this.runArgs();
    const configAfter = this.config.snapshot();
    const cacheArgs = args.filter(([name]) => !PROXY_ARGS.has(name)).map(([name, value]) => `${name}=${value}`);
    return {
      kind: 'run',
      location: instruction.location,
      instruction: instruction.text,
      cacheText: `RUN ${JSON.stringify({ argv, args: cacheArgs.sort(), inlineFiles })}`,
      configAfter,
      argv,
      env: [...configAfter.env, ...args.map(([name, value]) => `${name}=${value}`)],
      user: configAfter.user,
      workdir: configAfter.workingDir === '' ? '/' : configAfter.workingDir,
      inlineFiles,
    };
  }

  /**
   * BuildKit's heredoc forms: `RUN <<EOF` alone runs the body as the script (by its `#!` line if
   * it has one, from a file under /dev/pipes/); heredocs after a command are handed to the shell
   * with the command, which reads them itself.
   */
  private runCommand(instruction: RunInstruction): { argv: string[]; inlineFiles: RunInlineFile[] } {
    const command = instruction.command;
    if (command.kind === 'exec') return { argv: [...command.argv], inlineFiles: [] };
    const heredocs = instruction.heredocs;
    const only = heredocs[0];
    if (heredocs.length === 1 && only !== undefined && /^[0-9]*<<-?\s*["']?[^\s"']+["']?$/.test(command.command.trim())) {
      if (only.content.startsWith('#!')) {
        const path = `/dev/pipes/${only.name}`;
        return { argv: [path], inlineFiles: [{ path, content: only.content, mode: 0o755 }] };
      }
      return { argv: [...this.shell(), only.content], inlineFiles: [] };
    }
    if (heredocs.length === 0) return { argv: [...this.shell(), command.command], inlineFiles: [] };
    const bodies = heredocs.map((heredoc) => `${heredoc.content}${heredoc.name}\n`).join('');
    return { argv: [...this.shell(), `${command.command}\n${bodies}`], inlineFiles: [] };
  }

  private copy(instruction: CopyInstruction): CopyStep {
    const at = instruction.location;
    const keyword = instruction.add ? 'ADD' : 'COPY';
    const from: CopySource = instruction.from === undefined ? { kind: 'context' } : this.context.copySource(instruction, this.expand(instruction.from, at));
    const paths: string[] = [];
    const heredocFiles: { name: string; content: string }[] = [];
    for (const source of instruction.sources) {
      if (source.kind === 'heredoc') heredocFiles.push({ name: source.heredoc.name, content: this.heredocContent(source.heredoc, at) });
      else paths.push(this.expand(source.word, at));
    }
    if (paths.some((path) => path === '')) throw new BuildError(`${keyword}: a source is empty after expansion`, at);
    const urls = instruction.add ? paths.filter((path) => /^[a-z][a-z0-9+.-]*:\/\//i.test(path) || path.startsWith('git@')) : [];
    let url: CopyStep['url'];
    if (urls.length > 0) url = this.addUrl(urls, paths, instruction, at);
    else if (instruction.checksum !== undefined) throw new BuildError('ADD --checksum is only for a source that is an http(s) URL', at);
    const rawDest = this.expand(instruction.dest, at);
    if (rawDest === '') throw new BuildError(`${keyword}: the destination is empty after expansion`, at);
    const dest = this.destination(rawDest);
    const sourceCount = paths.length + heredocFiles.length;
    if (sourceCount > 1 && !dest.endsWith('/')) {
      throw new BuildError(`${keyword} with more than one source needs a destination that is a directory ending in "/" (got "${rawDest}")`, at);
    }
    const chown = instruction.chown === undefined ? undefined : this.expand(instruction.chown, at);
    if (chown !== undefined && !/^[^:\s]+(?::[^:\s]+)?$/.test(chown)) throw new BuildError(`${keyword} --chown: "${chown}" is not user, user:group, uid or uid:gid`, at);
    const chmod = instruction.chmod === undefined ? undefined : this.chmod(instruction.chmod, keyword, at);
    const sources = url === undefined ? paths : [];
    const configAfter = this.config.snapshot();
    const resolved = { from, sources, dest, chown, chmod, url, heredocFiles, extract: instruction.add && url === undefined };
    return {
      kind: 'copy',
      location: at,
      instruction: instruction.text,
      cacheText: `${keyword} ${JSON.stringify(resolved)}`,
      configAfter,
      add: instruction.add,
      from,
      sources,
      dest,
      ...(chown === undefined ? {} : { chown }),
      ...(chmod === undefined ? {} : { chmod }),
      extractArchives: resolved.extract,
      ...(url === undefined ? {} : { url }),
      heredocFiles,
    };
  }

  private heredocContent(heredoc: RawHeredoc, at: BuildSourceLocation): string {
    return heredoc.expand ? this.context.expander.heredoc(heredoc.content, this.lookup, at) : heredoc.content;
  }

  private addUrl(urls: readonly string[], paths: readonly string[], instruction: CopyInstruction, at: BuildSourceLocation): NonNullable<CopyStep['url']> {
    const first = urls[0] ?? '';
    if (!/^https?:\/\//i.test(first) || /\.git(?:#.*)?$/i.test(first)) {
      throw new BuildError(`ADD ${first}: only http(s) URLs of files can be added (Git repositories and other schemes are not supported)`, at);
    }
    if (urls.length > 1 || paths.length > 1) throw new BuildError('ADD of a URL takes that one source only (split it into one ADD per URL)', at);
    if (instruction.checksum === undefined) return { url: first };
    const checksum = this.expand(instruction.checksum, at);
    if (!/^(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/.test(checksum)) {
      throw new BuildError(`ADD --checksum: "${checksum}" is not sha256:, sha384: or sha512: followed by the lowercase hex digest`, at);
    }
    return { url: first, checksum };
  }

  /** Absolute, against WORKDIR; a trailing "/" (or a final "." or "..") means "into this directory" and is kept as "/". */
  private destination(dest: string): string {
    const directory = dest.endsWith('/') || dest === '.' || dest === '..' || dest.endsWith('/.') || dest.endsWith('/..');
    const absolute = posix.resolve(this.config.workingDir === '' ? '/' : this.config.workingDir, dest);
    return directory && absolute !== '/' ? `${absolute}/` : absolute;
  }

  private chmod(raw: string, keyword: string, at: BuildSourceLocation): number {
    const value = this.expand(raw, at);
    if (!/^[0-7]{3,4}$/.test(value)) throw new BuildError(`${keyword} --chmod: "${value}" is not an octal mode such as 755 or 0644 (symbolic modes are not supported)`, at);
    return Number.parseInt(value, 8);
  }
}

function where(at: BuildSourceLocation): string {
  return `${at.file}:${at.line}:${at.column}`;
}

const PROTOCOLS = new Set(['tcp', 'udp', 'sctp']);

/** "80", "53/udp", "8000-8010/tcp" as the "PORT/PROTO" keys of ExposedPorts. */
function exposedPorts(spec: string, at: BuildSourceLocation): string[] {
  const match = /^([0-9]{1,5})(?:-([0-9]{1,5}))?(?:\/([A-Za-z]+))?$/.exec(spec);
  const first = Number(match?.[1]);
  const last = match?.[2] === undefined ? first : Number(match[2]);
  const protocol = (match?.[3] ?? 'tcp').toLowerCase();
  if (match === null || first < 1 || last > 65535 || last < first) throw new BuildError(`EXPOSE: invalid port "${spec}" (want PORT, PORT/PROTO or FIRST-LAST/PROTO, ports 1-65535)`, at);
  if (!PROTOCOLS.has(protocol)) throw new BuildError(`EXPOSE: invalid protocol "${protocol}" in "${spec}" (tcp, udp or sctp)`, at);
  if (last - first + 1 > MAX_EXPOSED_PORTS) throw new BuildError(`EXPOSE: the range "${spec}" has more than the limit of ${MAX_EXPOSED_PORTS} ports (MAX_EXPOSED_PORTS)`, at);
  const ports: string[] = [];
  for (let port = first; port <= last; port++) ports.push(`${port}/${protocol}`);
  return ports;
}
