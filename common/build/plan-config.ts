// The image config while a stage is planned: mutable inside the planner, frozen into the plain
// BuildImageConfig every step records.

import type { BuildHealthcheck, BuildImageConfig } from './plan-types.js';

export const EMPTY_CONFIG: BuildImageConfig = { env: [], workingDir: '', user: '', exposedPorts: [], volumes: [], labels: {}, onBuild: [] };

/** Docker's default SHELL. */
export const DEFAULT_SHELL: readonly string[] = ['/bin/sh', '-c'];

export class ConfigBuilder {
  /** Keys in first-set order, as Docker keeps Env. */
  private readonly env = new Map<string, string>();
  cmd: readonly string[] | undefined;
  entrypoint: readonly string[] | undefined;
  workingDir: string;
  user: string;
  private readonly exposedPorts: Set<string>;
  private readonly volumes: Set<string>;
  private readonly labels: Map<string, string>;
  healthcheck: BuildHealthcheck | undefined;
  stopSignal: string | undefined;
  shell: readonly string[] | undefined;
  onBuild: string[];
  author: string | undefined;

  constructor(base: BuildImageConfig) {
    for (const entry of base.env) {
      const equals = entry.indexOf('=');
      // An entry without "=" (possible in a registry's config) is a name with an empty value.
      if (equals === -1) this.env.set(entry, '');
      else this.env.set(entry.slice(0, equals), entry.slice(equals + 1));
    }
    this.cmd = base.cmd;
    this.entrypoint = base.entrypoint;
    this.workingDir = base.workingDir;
    this.user = base.user;
    this.exposedPorts = new Set(base.exposedPorts);
    this.volumes = new Set(base.volumes);
    this.labels = new Map(Object.entries(base.labels));
    this.healthcheck = base.healthcheck;
    this.stopSignal = base.stopSignal;
    this.shell = base.shell;
    this.onBuild = [...base.onBuild];
    this.author = base.author;
  }

  getEnv(name: string): string | undefined {
    return this.env.get(name);
  }

  setEnv(name: string, value: string): void {
    this.env.set(name, value);
  }

  envList(): string[] {
    return [...this.env].map(([key, value]) => `${key}=${value}`);
  }

  expose(port: string): void {
    this.exposedPorts.add(port);
  }

  addVolume(path: string): void {
    this.volumes.add(path);
  }

  setLabel(key: string, value: string): void {
    this.labels.set(key, value);
  }

  snapshot(): BuildImageConfig {
    return {
      env: this.envList(),
      ...(this.cmd === undefined ? {} : { cmd: [...this.cmd] }),
      ...(this.entrypoint === undefined ? {} : { entrypoint: [...this.entrypoint] }),
      workingDir: this.workingDir,
      user: this.user,
      exposedPorts: [...this.exposedPorts].sort(),
      volumes: [...this.volumes].sort(),
      // fromEntries defines own properties, so a label named "__proto__" stays a label.
      labels: Object.fromEntries([...this.labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
      ...(this.healthcheck === undefined ? {} : { healthcheck: this.healthcheck }),
      ...(this.stopSignal === undefined ? {} : { stopSignal: this.stopSignal }),
      ...(this.shell === undefined ? {} : { shell: [...this.shell] }),
      onBuild: [...this.onBuild],
      ...(this.author === undefined ? {} : { author: this.author }),
    };
  }
}

/** The config with extra labels (the request's --label), which win over the Dockerfile's. */
export function withLabels(config: BuildImageConfig, labels: Readonly<Record<string, string>>): BuildImageConfig {
  const builder = new ConfigBuilder(config);
  for (const [key, value] of Object.entries(labels)) builder.setLabel(key, value);
  return builder.snapshot();
}
