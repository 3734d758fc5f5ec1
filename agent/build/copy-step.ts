// COPY and ADD: what they read (for the cache key) and how they run. Sources come from the build
// context, from an earlier stage's result (COPY --from=stage) or from an image (COPY --from=image);
// the latter two are read through a mount of their layers, so the view is the merged one.
import { mkdir, writeFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError } from '../../common/build/builder.js';
import type { CopyStep } from '../../common/build/plan-types.js';
import { combineDigests } from './cache-key.js';
import { applyCopy, lookupOwner } from './copy-apply.js';
import { digestOfMatches, directorySource, expandSources, type MatchedSource } from './copy-sources.js';
import { detectArchive, unpackArchive } from './add-archive.js';
import type { DownloadedFile } from './add-url.js';
import { mountStepRootfs, removeStepRootfs, type StepRootfs } from './step-rootfs.js';
import type { ResolvedImage, StageLayer, StageState } from './build-run.js';

export interface CopyContext {
  contextDir: string;
  stage: (index: number) => StageState;
  image: (reference: string) => Promise<ResolvedImage>;
  /** A fresh directory path for a source mount, named after `name` and the step. */
  mountDir: (name: string) => string;
  emptyLower: string;
  state: StageState;
  /** ADD of a URL: the file fetched once per build (and URL). */
  download: (url: string, checksum: string | undefined) => Promise<DownloadedFile>;
}

/** The digest of what the step reads: the context files' contents, or the source stage's or image's identity. */
export async function copyInputsDigest(step: CopyStep, context: CopyContext): Promise<string> {
  return withLocation(step, async () => {
    const heredocs = combineDigests(step.heredocFiles.map((f) => combineDigests([f.name, f.content])));
    if (step.url !== undefined) {
      // With --checksum the content is known without fetching it; without, it is fetched to find out.
      const content = step.url.checksum ?? (await context.download(step.url.url, undefined)).sha256;
      return combineDigests(['url', content, heredocs]);
    }
    switch (step.from.kind) {
      case 'context':
        return combineDigests(['context', await digestOfMatches(await expandSources(context.contextDir, step.sources, false, step.instruction)), heredocs]);
      case 'stage':
        return combineDigests(['stage', context.stage(step.from.index).cacheKey, heredocs]);
      case 'image':
        return combineDigests(['image', (await context.image(step.from.reference)).record.configDigest, heredocs]);
    }
  });
}

/** Copies the step's sources into `rootfs` (mounted); `scratch` is a directory path the step may use. */
export async function executeCopy(step: CopyStep, rootfs: StepRootfs, context: CopyContext, scratch: string): Promise<void> {
  await withLocation(step, async () => {
    let source: StepRootfs | undefined;
    try {
      let matches: MatchedSource[];
      if (step.url !== undefined) {
        matches = [urlSource(await context.download(step.url.url, step.url.checksum), step.url.url)];
      } else if (step.from.kind === 'context') {
        matches = await expandSources(context.contextDir, step.sources, false, step.instruction);
      } else {
        const layers = step.from.kind === 'stage' ? context.stage(step.from.index).layers : (await context.image(step.from.reference)).layers;
        source = await mountLayers(layers, context);
        matches = await expandSources(source.rootfs, step.sources, true, step.instruction);
      }
      if (step.extractArchives) matches = await unpackArchives(matches, scratch, step.instruction);
      if (step.heredocFiles.length > 0) matches.push(...(await heredocSources(step, scratch)));
      const owner = step.chown === undefined ? undefined : await lookupOwner(rootfs.rootfs, step.chown);
      await applyCopy(matches, {
        rootfs: rootfs.rootfs,
        dest: step.dest,
        ...(owner === undefined ? {} : { owner }),
        ...(step.chmod === undefined ? {} : { chmod: step.chmod }),
        what: step.instruction,
      });
    } finally {
      if (source !== undefined) await removeStepRootfs(source);
    }
  });
}

async function mountLayers(layers: readonly StageLayer[], context: CopyContext): Promise<StepRootfs> {
  return mountStepRootfs(
    layers.map((l) => l.dir),
    context.mountDir('from'),
    context.emptyLower,
  );
}

/** A fetched file as ADD copies it: root's, mode 0600 (as Docker leaves it), named after the URL. */
function urlSource(file: DownloadedFile, url: string): MatchedSource {
  return {
    pattern: url,
    path: file.name,
    entries: [{ rel: '', hostPath: file.path, type: 'file', mode: 0o600, uid: 0, gid: 0, mtime: file.mtime, size: 0 }],
    keepOwners: false,
  };
}

/** ADD: every source file that is a tar archive is replaced by its unpacked contents. */
async function unpackArchives(matches: MatchedSource[], scratch: string, what: string): Promise<MatchedSource[]> {
  const out: MatchedSource[] = [];
  for (const [i, match] of matches.entries()) {
    const top = match.entries[0];
    const kind = top?.type === 'file' ? await detectArchive(top.hostPath) : undefined;
    if (top === undefined || kind === undefined) {
      out.push(match);
      continue;
    }
    const target = join(scratch, `archive-${i}`);
    await unpackArchive(top.hostPath, kind, target, join(scratch, `archive-${i}`), `${what}: ${match.path}`);
    // An unpacked archive is a directory whose contents land in the destination, owners as the archive has them.
    out.push(await directorySource(target, match.pattern, true));
  }
  return out;
}

/**
 * `COPY <<EOF /dest`: each heredoc is a source file named after its delimiter, owned by root, mode
 * 0644, so COPY's own rules place it: one heredoc to "/dest" is the file /dest, as in BuildKit.
 */
async function heredocSources(step: CopyStep, scratch: string): Promise<MatchedSource[]> {
  const dir = join(scratch, 'heredoc');
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const now = new Date();
  for (const file of step.heredocFiles) {
    if (file.name === '' || file.name.includes('/') || file.name === '.' || file.name === '..') {
      throw new BuildError(`heredoc name ${JSON.stringify(file.name)} cannot be a file name`);
    }
    const path = join(dir, file.name);
    await writeFile(path, file.content, { mode: 0o644 });
    await utimes(path, now, now);
  }
  return Promise.all(
    step.heredocFiles.map(async (file) => {
      const source = await directorySource(join(dir, file.name), file.name, false);
      return { ...source, path: file.name };
    }),
  );
}

/** Errors of the step name its place in the Dockerfile. */
async function withLocation<T>(step: CopyStep, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof BuildError && error.location === undefined) throw new BuildError(error.message, step.location, error.run);
    throw error;
  }
}
