// One build: runs a BuildPlan's stages in order, each step either taken from the step cache or
// executed (RUN in a container, COPY/ADD and WORKDIR from the host side into the step's rootfs,
// config steps in memory), turns each step's upper directory into a layer, and commits the output
// stage as an image. Everything it stores is pinned until it ends (BuildPins), so a garbage
// collection in between cannot take a layer a later step or the commit needs.
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BuildProgress, BuildRequest, BuildResult } from '../../common/build/builder.js';
import { BuildError } from '../../common/build/builder.js';
import type { BuildImageConfig, BuildPlan, BuildStep, StagePlan } from '../../common/build/plan-types.js';
import type { BuildCacheEntry, BuildPins } from '../images/build-cache.js';
import type { LocalImageStore } from '../images/image-store.js';
import type { ContainerRuntime } from '../runtime/types.js';
import type { ImageRecord } from '../../common/images/types.js';
import { hostPlatform } from '../images/manifest.js';
import { baseCacheKey, stepCacheKey } from './cache-key.js';
import { historyFor, imageDocuments, parseBaseConfig, toBuildImageConfig, toContainerConfig, type BaseImageConfig, type BuiltLayer, type HistoryEntry } from './image-config.js';
import { layerTar } from './layer-diff.js';
import { writeLayerBlob } from './layer-blob.js';
import { mountStepRootfs, removeStepRootfs, unmountStepRootfs, upperIsEmpty, type StepRootfs } from './step-rootfs.js';
import { runStepContainer, type RunLimits } from './run-step.js';
import { downloadUrl, type DownloadedFile } from './add-url.js';
import { mkdirInRoot, readInRoot } from './copy-apply.js';
import { executeCopy, copyInputsDigest, type CopyContext } from './copy-step.js';
import { parseGroup, parsePasswd, resolveUser } from '../worker/container-config.js';

export interface BuildRunOptions {
  images: LocalImageStore;
  runtime: ContainerRuntime;
  workDir: string;
  cgroupParent: string;
  insecureRegistries: string[];
  limits: RunLimits;
  log: (message: string) => void;
  now: () => Date;
  request: BuildRequest;
  contextDir: string;
  onProgress: (event: BuildProgress) => void;
  signal: AbortSignal;
  buildId: string;
}

/** A layer of a stage's file system, with its unpacked directory. */
export interface StageLayer extends BuiltLayer {
  dir: string;
}

/** Where a stage stands after its last step so far. */
export interface StageState {
  architecture: string;
  os: string;
  layers: StageLayer[];
  history: HistoryEntry[];
  /** The cache key of the last step (or of the base): the stage's result id. */
  cacheKey: string;
}

/** An image a build uses (FROM or COPY --from), resolved once per build. */
export interface ResolvedImage {
  record: ImageRecord;
  base: BaseImageConfig;
  layers: StageLayer[];
}

export class BuildRun {
  private readonly pins: BuildPins;
  private readonly dir: string;
  private readonly images = new Map<string, Promise<ResolvedImage>>();
  private readonly stages = new Map<number, StageState>();
  private readonly cacheKeys: string[] = [];
  private readonly downloads = new Map<string, Promise<DownloadedFile>>();
  private stepNumber = 0;
  private totalSteps = 0;
  private cachedSteps = 0;
  private ranSteps = 0;

  constructor(private readonly o: BuildRunOptions) {
    this.pins = o.images.holdForBuild();
    this.dir = join(o.workDir, `build-${o.buildId}`);
  }

  /** A base image's config for the planner; pulls the image when the store does not have it. */
  async baseConfigOf(reference: string): Promise<BuildImageConfig> {
    return toBuildImageConfig((await this.image(reference)).base.config);
  }

  async execute(plan: BuildPlan): Promise<BuildResult> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.totalSteps = plan.stages.reduce((sum, s) => sum + s.steps.length, 0);
    for (const stage of plan.stages) {
      this.stages.set(stage.index, await this.runStage(stage));
    }
    const output = this.stages.get(plan.outputStage);
    if (output === undefined) throw new BuildError(`build plan: output stage ${plan.outputStage} was not built`);
    return this.commit(output, plan.outputConfig);
  }

  /** Removes the build's scratch directories and lets the collector see its pins as garbage again. */
  async release(): Promise<void> {
    try {
      await rm(this.dir, { recursive: true, force: true });
    } finally {
      this.o.images.releaseBuild(this.pins);
    }
  }

  image(reference: string): Promise<ResolvedImage> {
    let resolved = this.images.get(reference);
    if (resolved === undefined) {
      resolved = this.resolveImage(reference);
      this.images.set(reference, resolved);
    }
    return resolved;
  }

  stageResult(index: number): StageState {
    const state = this.stages.get(index);
    if (state === undefined) throw new BuildError(`stage ${index} is used before it was built`);
    return state;
  }

  private async resolveImage(reference: string): Promise<ResolvedImage> {
    const { images } = this.o;
    const pulled =
      (await images.get(reference)) ??
      (await images.ensure(reference, {
        insecureRegistries: this.o.insecureRegistries,
        onProgress: (event) => {
          if (event.kind === 'layer') this.o.onProgress({ kind: 'pull', reference, bytes: event.current, totalBytes: event.total });
        },
      }));
    const { config, manifest } = await images.imageDocuments(pulled, this.pins);
    const what = `image ${reference}`;
    const base = parseBaseConfig(config, what, hostPlatform());
    if (manifest.layers.length !== pulled.layerDirs.length) throw new BuildError(`${what}: its manifest and its record disagree on the layers`);
    const layers = manifest.layers.map((layer, i) => ({
      diffId: pulled.layers[i] as string,
      digest: layer.digest,
      size: layer.size,
      mediaType: layer.mediaType,
      dir: pulled.layerDirs[i] as string,
    }));
    return { record: pulled, base, layers };
  }

  private async runStage(stage: StagePlan): Promise<StageState> {
    let state = await this.stageStart(stage);
    const stageName = stage.name ?? String(stage.index);
    for (const step of stage.steps) {
      if (this.o.signal.aborted) throw new BuildError('build cancelled');
      this.stepNumber += 1;
      const started = performance.now();
      this.o.onProgress({ kind: 'step', stage: stageName, step: this.stepNumber, totalSteps: this.totalSteps, instruction: step.instruction });
      state = await this.runStep(step, state);
      this.cacheKeys.push(state.cacheKey);
      this.o.onProgress({ kind: 'done', step: this.stepNumber, durationMs: Math.round(performance.now() - started) });
    }
    return state;
  }

  private async stageStart(stage: StagePlan): Promise<StageState> {
    const platform = hostPlatform();
    switch (stage.base.kind) {
      case 'scratch':
        return { architecture: platform.architecture, os: platform.os, layers: [], history: [], cacheKey: baseCacheKey({ kind: 'scratch' }) };
      case 'image': {
        const image = await this.image(stage.base.reference);
        return {
          architecture: image.base.architecture,
          os: image.base.os,
          layers: [...image.layers],
          history: [...image.base.history],
          cacheKey: baseCacheKey({ kind: 'image', configDigest: image.record.configDigest }),
        };
      }
      case 'stage': {
        const from = this.stageResult(stage.base.index);
        return { ...from, layers: [...from.layers], history: [...from.history] };
      }
    }
  }

  private async runStep(step: BuildStep, state: StageState): Promise<StageState> {
    const inputs = step.kind === 'copy' ? await copyInputsDigest(step, this.copyContext(state)) : '';
    const key = stepCacheKey(state.cacheKey, step.cacheText, inputs);
    if (!this.o.request.noCache) {
      const cached = await this.fromCache(key, state);
      if (cached !== undefined) {
        this.cachedSteps += 1;
        this.o.onProgress({ kind: 'cached', step: this.stepNumber });
        return cached;
      }
    }
    this.ranSteps += 1;
    const layer = step.kind === 'config' ? undefined : await this.executeOnRootfs(step, state);
    const createdAt = this.o.now().toISOString();
    const stepHistory = historyFor(step.instruction, step.kind === 'run' ? step.argv : undefined, layer === undefined);
    const history: HistoryEntry = { created: createdAt, ...stepHistory };
    const entry: BuildCacheEntry = { key, config: { ...toContainerConfig(step.configAfter) }, history: stepHistory, createdAt };
    if (layer !== undefined) entry.layer = { diffId: layer.diffId, digest: layer.digest, size: layer.size, mediaType: layer.mediaType };
    await this.o.images.putBuildCacheEntry(entry, this.pins);
    return { ...state, layers: layer === undefined ? state.layers : [...state.layers, layer], history: [...state.history, history], cacheKey: key };
  }

  /** The stage after a cached step, or undefined when the entry is missing or its layer is gone. */
  private async fromCache(key: string, state: StageState): Promise<StageState | undefined> {
    const entry = await this.o.images.buildCacheEntry(key, this.pins);
    if (entry === undefined) return undefined;
    const history: HistoryEntry = { created: entry.createdAt, ...entry.history };
    if (entry.layer === undefined) return { ...state, history: [...state.history, history], cacheKey: key };
    const dir = await this.o.images.storedLayerDir(entry.layer, this.pins);
    if (dir === undefined) return undefined;
    return { ...state, layers: [...state.layers, { ...entry.layer, dir }], history: [...state.history, history], cacheKey: key };
  }

  /** Runs a filesystem step on a fresh upper over the stage's layers; returns its layer (none when WORKDIR made nothing). */
  private async executeOnRootfs(step: Exclude<BuildStep, { kind: 'config' }>, state: StageState): Promise<StageLayer | undefined> {
    const stepDir = join(this.dir, `step-${this.stepNumber}`);
    const rootfs = await mountStepRootfs(
      state.layers.map((l) => l.dir),
      stepDir,
      join(this.dir, 'empty'),
    );
    try {
      switch (step.kind) {
        case 'run':
          await this.run(step, rootfs);
          break;
        case 'copy':
          await executeCopy(step, rootfs, this.copyContext(state), join(this.dir, `scratch-${this.stepNumber}`));
          break;
        case 'workdir':
          await mkdirInRoot(rootfs.rootfs, step.path, await ownerOf(rootfs.rootfs, step.configAfter.user));
          break;
      }
      await unmountStepRootfs(rootfs);
      if (step.kind === 'workdir' && (await upperIsEmpty(rootfs))) return undefined;
      return await this.storeLayer(rootfs, step.instruction);
    } finally {
      await removeStepRootfs(rootfs);
    }
  }

  private async run(step: Extract<BuildStep, { kind: 'run' }>, rootfs: StepRootfs): Promise<void> {
    const binds: Array<{ source: string; destination: string }> = [];
    for (const [i, file] of step.inlineFiles.entries()) {
      if (!file.path.startsWith('/dev/')) throw new BuildError(`RUN heredoc file ${file.path}: expected a path under /dev/ (it would land in the layer)`, step.location);
      // Beside the rootfs, not in it: bound read-only for this RUN only.
      const source = join(rootfs.dir, `inline-${i}`);
      await writeFile(source, file.content, { mode: file.mode & 0o777 });
      await chmod(source, file.mode & 0o777);
      binds.push({ source, destination: file.path });
    }
    const outcome = await runStepContainer({
      runtime: this.o.runtime,
      containerId: `build-${this.o.buildId}-${this.stepNumber}`,
      dir: rootfs.dir,
      rootfs: rootfs.rootfs,
      argv: step.argv,
      env: step.env,
      user: step.user,
      workdir: step.workdir,
      cgroupParent: this.o.cgroupParent,
      limits: this.o.limits,
      onLine: (line) => this.o.onProgress({ kind: 'output', step: this.stepNumber, line }),
      signal: this.o.signal,
      binds,
    });
    const { exit } = outcome;
    if (exit.exitCode !== 0 || exit.oomKilled) {
      const how = exit.oomKilled
        ? `was killed: out of memory (limit ${this.o.limits.memoryBytes} bytes)`
        : exit.signal !== undefined
          ? `was killed by ${exit.signal}`
          : `exited with code ${exit.exitCode}`;
      throw new BuildError(`${step.instruction}: the command ${how}`, step.location, { exitCode: exit.exitCode, lastLines: outcome.lastLines });
    }
  }

  private async storeLayer(rootfs: StepRootfs, what: string): Promise<StageLayer> {
    const temp = await this.o.images.buildTempPath('build');
    try {
      const blob = await writeLayerBlob(layerTar(rootfs.upper, { mountPoints: rootfs.mountPoints, what }), temp, this.o.request.compression);
      const dir = await this.o.images.addBuiltLayer(temp, blob, this.pins);
      return { ...blob, dir };
    } finally {
      await rm(temp, { force: true }); // moved into the store on success; only a failure leaves it
    }
  }

  private copyContext(state: StageState): CopyContext {
    return {
      contextDir: this.o.contextDir,
      stage: (index) => this.stageResult(index),
      image: (reference) => this.image(reference),
      mountDir: (name) => join(this.dir, `${name}-${this.stepNumber}`),
      emptyLower: join(this.dir, 'empty'),
      state,
      download: (url, checksum) => this.download(url, checksum),
    };
  }

  /** Fetches a URL once per build; a later step's --checksum is checked against the same bytes. */
  private async download(url: string, checksum: string | undefined): Promise<DownloadedFile> {
    let fetched = this.downloads.get(url);
    if (fetched === undefined) {
      fetched = downloadUrl(url, join(this.dir, `download-${this.downloads.size}`), undefined, this.o.signal);
      this.downloads.set(url, fetched);
    }
    const file = await fetched;
    if (checksum !== undefined && checksum !== file.sha256) throw new BuildError(`ADD ${url}: checksum mismatch: --checksum=${checksum}, the content is ${file.sha256}`);
    return file;
  }

  private async commit(output: StageState, config: BuildImageConfig): Promise<BuildResult> {
    const { request } = this.o;
    const documents = imageDocuments({
      base: output,
      config: toContainerConfig(config),
      ...(config.author === undefined ? {} : { author: config.author }),
      layers: output.layers,
      history: output.history,
      created: this.o.now().toISOString(),
    });
    const records = await this.o.images.commitBuiltImage({
      references: [...request.tags],
      configBytes: documents.configBytes,
      manifestBytes: documents.manifestBytes,
      buildCacheKeys: [...new Set(this.cacheKeys)],
      pins: this.pins,
    });
    const first = records[0];
    if (first === undefined) throw new BuildError('the built image was not stored');
    if (request.push) {
      const tag = request.tags[0] as string;
      await this.o.images.push(tag, {
        insecureRegistries: this.o.insecureRegistries,
        signal: this.o.signal,
        onProgress: (event) => this.o.onProgress({ kind: 'push', reference: tag, bytes: event.current, totalBytes: event.total }),
      });
    }
    return {
      manifestDigest: first.digest,
      configDigest: documents.configDigest,
      tags: records.map((r) => r.reference),
      layers: output.layers.length,
      cachedSteps: this.cachedSteps,
      ranSteps: this.ranSteps,
    };
  }
}

/** The config user's ids in the stage (WORKDIR makes its directory theirs, as BuildKit does); root when unset. */
async function ownerOf(rootfs: string, user: string): Promise<{ uid: number; gid: number }> {
  if (user === '') return { uid: 0, gid: 0 };
  try {
    return resolveUser(user, parsePasswd(await readInRoot(rootfs, '/etc/passwd')), parseGroup(await readInRoot(rootfs, '/etc/group')));
  } catch (error) {
    throw new BuildError(`USER ${user}: ${(error as Error).message}`);
  }
}

