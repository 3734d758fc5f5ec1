// A built image in a form two builders' results can be compared by (issue 18's differential tests):
// the final file tree (layers applied in order, OCI whiteouts honoured), the config fields a
// Dockerfile sets, and the layer count. Read from an OCI image layout (what `buildah push oci:`
// writes) or from our image store's blobs, through the same tar reader, so a difference found is
// a difference between the builders and not between two readers.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { readDecompressed } from '../../agent/images/decompress.js';
import { TarXattrScanner } from '../../agent/images/tar-xattrs.js';
import type { LocalImageStore } from '../../agent/images/image-store.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';

/** One path of the final root file system; timestamps are left out on purpose (builders differ). */
export interface TreeEntry {
  readonly type: EntryType;
  /** Permission bits with setuid/setgid/sticky (mode & 0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Bytes of a file's content; 0 for everything else. */
  readonly size: number;
  /** sha256 hex of a file's content. */
  readonly sha256?: string;
  /** A symlink's target. */
  readonly linkTarget?: string;
  /** Extended attributes from the layers' pax headers (name → value in hex), when there are any. */
  readonly xattrs?: Readonly<Record<string, string>>;
  /** The other paths of the final tree that are the same file (hard links), sorted; absent for one name. */
  readonly hardLinks?: readonly string[];
}

/** The config fields a Dockerfile sets, normalised: null, {}, [], "" and absent all read as absent. */
export interface ComparableConfig {
  env?: string[];
  cmd?: string[];
  entrypoint?: string[];
  workingDir?: string;
  user?: string;
  /** Sorted keys of ExposedPorts ("80/tcp"). */
  exposedPorts?: string[];
  /** Sorted keys of Volumes. */
  volumes?: string[];
  /** Without io.buildah.version, which only buildah writes. */
  labels?: Record<string, string>;
  healthcheck?: unknown;
  stopSignal?: string;
  shell?: string[];
  /** ONBUILD triggers recorded for images built FROM this one. */
  onBuild?: string[];
}

export interface ComparableImage {
  /** Where it was read from, for messages. */
  readonly source: string;
  /** Layers in the manifest (each a tar), base image layers included. */
  readonly layers: number;
  /** Diff-ids of those layers, bottom first (equal diff-ids = byte-identical uncompressed tars). */
  readonly diffIds: readonly string[];
  /** History entries marked empty_layer (config-only steps), informational. */
  readonly emptyLayerHistory: number;
  /** Path (no leading slash, e.g. "etc/passwd") → entry. The root directory itself is left out. */
  readonly tree: ReadonlyMap<string, TreeEntry>;
  readonly config: ComparableConfig;
}

interface Manifest {
  config: { digest: string };
  layers: Array<{ digest: string; mediaType: string }>;
}

interface ImageConfigDocument {
  config?: Record<string, unknown> | null;
  rootfs?: { diff_ids?: string[] };
  history?: Array<{ empty_layer?: boolean }>;
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

/** "./a/b/" → "a/b"; "" for the root. */
export function normalisePath(path: string): string {
  return path
    .replace(/^\.?\/+/, '')
    .replace(/^\.$/, '')
    .replace(/\/+$/, '');
}

/** Tar entry types that are paths; pax and GNU meta entries are folded into the next entry by the parser. */
const ENTRY_TYPES: Readonly<Record<string, EntryType | 'hardlink'>> = {
  File: 'file',
  OldFile: 'file',
  ContiguousFile: 'file',
  Directory: 'dir',
  SymbolicLink: 'symlink',
  Link: 'hardlink',
  CharacterDevice: 'char',
  BlockDevice: 'block',
  FIFO: 'fifo',
};

function typeOf(entry: ReadEntry): EntryType | 'hardlink' | undefined {
  return ENTRY_TYPES[entry.type];
}

interface LayerEntry {
  path: string;
  type: EntryType | 'hardlink';
  mode: number;
  uid: number;
  gid: number;
  size: number;
  sha256?: string;
  linkTarget?: string;
  xattrs?: Record<string, string>;
}

/** The entries of one layer blob (gzip, zstd or plain tar), in archive order, with content digests. */
export async function readLayerEntries(blobPath: string): Promise<LayerEntry[]> {
  const entries: LayerEntry[] = [];
  const parser = new Parser();
  // node-tar drops pax xattr records; the scanner (fed each chunk first) reads them by entry number.
  const scanner = new TarXattrScanner();
  let entryIndex = 0;
  const done = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', reject);
  });
  parser.on('entry', (entry: ReadEntry) => {
    const xattrs = scanner.take(entryIndex++);
    const type = typeOf(entry);
    if (type === undefined) {
      entry.resume();
      return;
    }
    const hash = createHash('sha256');
    let size = 0;
    entry.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      size += chunk.byteLength;
    });
    entry.on('end', () => {
      const item: LayerEntry = { path: normalisePath(entry.path), type, mode: (entry.mode ?? 0) & 0o7777, uid: entry.uid ?? 0, gid: entry.gid ?? 0, size: 0 };
      if (type === 'file') {
        item.size = size;
        item.sha256 = hash.digest('hex');
      }
      if (xattrs !== undefined) item.xattrs = Object.fromEntries([...xattrs].map(([name, value]) => [name, value.toString('hex')]));
      if (type === 'symlink' || type === 'hardlink') item.linkTarget = type === 'hardlink' ? normalisePath(entry.linkpath ?? '') : (entry.linkpath ?? '');
      entries.push(item);
    });
  });
  for await (const chunk of readDecompressed(blobPath, `layer ${blobPath}`)) {
    scanner.write(chunk);
    parser.write(chunk);
  }
  parser.end();
  await done;
  return entries;
}

function removeWithDescendants(tree: Map<string, TreeEntry>, path: string, keepSelf: boolean): void {
  if (!keepSelf) tree.delete(path);
  const prefix = path === '' ? '' : `${path}/`;
  // Deleting the entry just visited is safe while iterating a Map.
  for (const key of tree.keys()) if (key.startsWith(prefix) && key !== path) tree.delete(key);
}

/**
 * Applies one layer over the tree as the OCI image spec says: its whiteouts hide lower paths only
 * (so they go first), then its entries are added; a non-directory replacing a directory drops what
 * was under it; a hard link is the same TreeEntry object as its target (`withHardLinkGroups` names them).
 */
export function applyLayer(tree: Map<string, TreeEntry>, entries: readonly LayerEntry[]): void {
  for (const entry of entries) {
    const slash = entry.path.lastIndexOf('/');
    const dir = slash < 0 ? '' : entry.path.slice(0, slash);
    const base = entry.path.slice(slash + 1);
    if (base === OPAQUE_MARKER) removeWithDescendants(tree, dir, true);
    else if (base.startsWith(WHITEOUT_PREFIX)) removeWithDescendants(tree, join(dir, base.slice(WHITEOUT_PREFIX.length)).replace(/^\.$/, ''), false);
  }
  for (const entry of entries) {
    const base = entry.path.slice(entry.path.lastIndexOf('/') + 1);
    if (entry.path === '' || base.startsWith(WHITEOUT_PREFIX)) continue;
    const lower = tree.get(entry.path);
    if (lower?.type === 'dir' && entry.type !== 'dir') removeWithDescendants(tree, entry.path, true);
    if (entry.type === 'hardlink') {
      const target = tree.get(entry.linkTarget ?? '');
      if (target === undefined) throw new Error(`hard link ${entry.path} → ${entry.linkTarget}: no such path below it`);
      tree.set(entry.path, target);
      continue;
    }
    const item: TreeEntry = { type: entry.type, mode: entry.mode, uid: entry.uid, gid: entry.gid, size: entry.size };
    if (entry.sha256 !== undefined) Object.assign(item, { sha256: entry.sha256 });
    if (entry.linkTarget !== undefined) Object.assign(item, { linkTarget: entry.linkTarget });
    if (entry.xattrs !== undefined) Object.assign(item, { xattrs: entry.xattrs });
    tree.set(entry.path, item);
  }
}

/** A non-empty array of strings; [] reads as absent: buildah writes `"Entrypoint": []` where Docker writes null, and both mean none. */
function stringArray(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string') ? value : undefined;
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function sortedKeys(value: unknown): string[] | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const keys = Object.keys(value).sort();
  return keys.length === 0 ? undefined : keys;
}

/** The compared fields of an image config's `config` object. */
export function comparableConfig(config: Record<string, unknown> | null | undefined): ComparableConfig {
  const c = config ?? {};
  const out: ComparableConfig = {};
  const env = stringArray(c.Env);
  if (env) out.env = env;
  const cmd = stringArray(c.Cmd);
  if (cmd) out.cmd = cmd;
  const entrypoint = stringArray(c.Entrypoint);
  if (entrypoint) out.entrypoint = entrypoint;
  const workingDir = nonEmptyString(c.WorkingDir);
  if (workingDir !== undefined) out.workingDir = workingDir;
  const user = nonEmptyString(c.User);
  if (user !== undefined) out.user = user;
  const ports = sortedKeys(c.ExposedPorts);
  if (ports) out.exposedPorts = ports;
  const volumes = sortedKeys(c.Volumes);
  if (volumes) out.volumes = volumes;
  if (c.Labels !== null && typeof c.Labels === 'object') {
    const labels = Object.fromEntries(Object.entries(c.Labels as Record<string, string>).filter(([k]) => k !== 'io.buildah.version'));
    if (Object.keys(labels).length > 0) out.labels = labels;
  }
  if (c.Healthcheck !== undefined && c.Healthcheck !== null) out.healthcheck = c.Healthcheck;
  const stopSignal = nonEmptyString(c.StopSignal);
  if (stopSignal !== undefined) out.stopSignal = stopSignal;
  const shell = stringArray(c.Shell);
  if (shell) out.shell = shell;
  const onBuild = stringArray(c.OnBuild);
  if (onBuild) out.onBuild = onBuild;
  return out;
}

async function readJson<T>(path: string, what: string): Promise<T> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (error) {
    throw new Error(`${what} (${path}): ${(error as Error).message}`);
  }
}

async function assemble(source: string, manifest: Manifest, blobPath: (digest: string) => string): Promise<ComparableImage> {
  const config = await readJson<ImageConfigDocument>(blobPath(manifest.config.digest), `${source}: config`);
  const tree = new Map<string, TreeEntry>();
  for (const layer of manifest.layers) applyLayer(tree, await readLayerEntries(blobPath(layer.digest)));
  tree.delete('');
  withHardLinkGroups(tree);
  return {
    source,
    layers: manifest.layers.length,
    diffIds: config.rootfs?.diff_ids ?? [],
    emptyLayerHistory: (config.history ?? []).filter((h) => h.empty_layer === true).length,
    tree,
    config: comparableConfig(config.config),
  };
}

/**
 * Gives each path that shares its file with others (one TreeEntry object, as applyLayer leaves hard
 * links) the list of the others, so a comparison sees which names are one inode.
 */
export function withHardLinkGroups(tree: Map<string, TreeEntry>): void {
  const groups = new Map<TreeEntry, string[]>();
  for (const [path, entry] of tree) {
    const group = groups.get(entry);
    if (group === undefined) groups.set(entry, [path]);
    else group.push(path);
  }
  for (const [entry, paths] of groups) {
    if (paths.length < 2) continue;
    for (const path of paths) tree.set(path, { ...entry, hardLinks: paths.filter((p) => p !== path).sort() });
  }
}

function blobPathIn(layoutDir: string): (digest: string) => string {
  return (digest) => {
    const [algorithm, hex] = digest.split(':');
    if (algorithm === undefined || hex === undefined || !/^[a-z0-9]+$/.test(algorithm) || !/^[a-f0-9]+$/.test(hex)) throw new Error(`bad digest ${digest}`);
    return join(layoutDir, 'blobs', algorithm, hex);
  };
}

/** The image an OCI layout's index names `refName` (its only image when absent). */
export async function readOciLayoutImage(layoutDir: string, refName?: string): Promise<ComparableImage> {
  const index = await readJson<{ manifests: Array<{ digest: string; annotations?: Record<string, string> }> }>(
    join(layoutDir, 'index.json'),
    'OCI layout index',
  );
  const chosen =
    refName === undefined
      ? index.manifests.length === 1
        ? index.manifests[0]
        : undefined
      : index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === refName);
  if (chosen === undefined) throw new Error(`OCI layout ${layoutDir}: no single image${refName === undefined ? '' : ` named ${refName}`} in index.json`);
  const blobPath = blobPathIn(layoutDir);
  const manifest = await readJson<Manifest>(blobPath(chosen.digest), `OCI layout ${layoutDir}: manifest`);
  return assemble(`oci:${layoutDir}${refName === undefined ? '' : `:${refName}`}`, manifest, blobPath);
}

/**
 * The image in a containers/image `dir:` directory (manifest.json, blobs named by their hex digest),
 * which keeps a Docker v2s2 manifest and config as they are: `oci:` re-encodes the config as OCI's,
 * which has no Healthcheck (nor OnBuild, Shell), so it cannot carry what a Dockerfile sets.
 */
export async function readDirTransportImage(dir: string): Promise<ComparableImage> {
  const manifest = await readJson<Manifest>(join(dir, 'manifest.json'), `dir:${dir} manifest`);
  return assemble(`dir:${dir}`, manifest, (digest) => {
    const hex = digest.replace(/^sha256:/, '');
    if (!/^[a-f0-9]{64}$/.test(hex)) throw new Error(`bad digest ${digest}`);
    return join(dir, hex);
  });
}

/** The image our store holds under `reference`, read from its stored manifest, config and layer blobs. */
export async function readStoreImage(store: LocalImageStore, reference: string): Promise<ComparableImage> {
  const record = await store.get(reference);
  if (record === undefined) throw new Error(`image ${reference} is not in the store at ${store.root}`);
  const manifest = await readJson<Manifest>(store.blobPath(record.digest), `store image ${reference}: manifest`);
  return assemble(`store:${reference}`, manifest, (digest) => store.blobPath(digest));
}

function describe(entry: TreeEntry, digestChars = 12): string {
  const parts = [entry.type, `mode ${entry.mode.toString(8).padStart(4, '0')}`, `uid ${entry.uid}`, `gid ${entry.gid}`];
  if (entry.type === 'file') parts.push(`${entry.size} B`, `sha256 ${entry.sha256?.slice(0, digestChars)}`);
  if (entry.linkTarget !== undefined) parts.push(`→ ${entry.linkTarget}`);
  if (entry.hardLinks !== undefined) parts.push(`hard-linked with ${entry.hardLinks.join(' ')}`);
  if (entry.xattrs !== undefined) {
    for (const name of Object.keys(entry.xattrs).sort()) parts.push(`xattr ${name}=${entry.xattrs[name]?.slice(0, digestChars * 4)}`);
  }
  return parts.join(', ');
}

/** JSON with object keys sorted, so key order (which builders do not agree on) is no difference. */
function stableJson(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : v,
  );
}

export interface CompareOptions {
  /** Paths (and everything under them) left out of the tree comparison, each with its reason in the caller. */
  ignorePaths?: readonly string[];
}

/**
 * Every difference between two images as one readable line each ("ours" first, "theirs"
 * second); empty when they agree on the tree, the config fields and the layer count.
 */
export function compareImages(ours: ComparableImage, theirs: ComparableImage, options: CompareOptions = {}): string[] {
  const diffs: string[] = [];
  if (ours.layers !== theirs.layers) diffs.push(`layers: ours ${ours.layers}, theirs ${theirs.layers}`);
  const ignored = (path: string): boolean => (options.ignorePaths ?? []).some((p) => path === p || path.startsWith(`${p}/`));
  const paths = new Set([...ours.tree.keys(), ...theirs.tree.keys()]);
  for (const path of [...paths].sort()) {
    if (ignored(path)) continue;
    const a = ours.tree.get(path);
    const b = theirs.tree.get(path);
    if (a === undefined && b !== undefined) diffs.push(`/${path}: only in theirs (${describe(b)})`);
    else if (b === undefined && a !== undefined) diffs.push(`/${path}: only in ours (${describe(a)})`);
    else if (a !== undefined && b !== undefined && describe(a, 64) !== describe(b, 64)) diffs.push(`/${path}: ours ${describe(a)}; theirs ${describe(b)}`);
  }
  const keys = new Set([...Object.keys(ours.config), ...Object.keys(theirs.config)] as Array<keyof ComparableConfig>);
  for (const key of [...keys].sort()) {
    const a = stableJson(ours.config[key]);
    const b = stableJson(theirs.config[key]);
    if (a !== b) diffs.push(`config ${key}: ours ${a ?? 'absent'}, theirs ${b ?? 'absent'}`);
  }
  return diffs;
}
