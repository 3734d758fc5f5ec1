// Loading manifests: multi-document YAML (or JSON) → validated, normalised objects.
// All-or-nothing: every problem in every document is collected and thrown as one ManifestError, and
// nothing is returned unless the whole input is good, so a rejected file is never half applied.
// Documents in Kubernetes' form (any apiVersion but tessera/v1) are translated together by
// cli/kube/ (a Service in one file may select a Deployment in another), and their problems are
// placed back at file:line:col here.

import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { StackObject } from '../../common/resources/types.js';
import { validateStackObject, type IssuePath } from '../../common/resources/schema.js';
import { isKubeDocument, translateKube } from '../kube/translate.js';
import type { KubeIssue } from '../kube/findings.js';
import { ManifestError, yamlProblem, type ManifestIssue } from './errors.js';
import { locate, type SourcePosition } from './locate.js';
import { keyProblems } from './unique-keys.js';
import { inputFileProblem, MAX_INPUT_FILE_BYTES, positionOf, readCapped, textSizeProblem, yamlStructureProblem } from './input-limits.js';

export { ManifestError, formatIssue, formatPath, type ManifestIssue } from './errors.js';

export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'] as const;

/** One validated object and where it came from, for duplicate detection and messages. */
interface LoadedObject {
  object: StackObject;
  file: string;
  position: SourcePosition;
}

/** A Kubernetes document waiting for translation, with what is needed to place its issues. */
interface KubeSource {
  value: unknown;
  file: string;
  doc: Document.Parsed;
  lineCounter: LineCounter;
  /** Where the object sits in its document (inside a List: ['items', i]). */
  prefix: IssuePath;
}

interface LoadOutcome {
  objects: LoadedObject[];
  issues: ManifestIssue[];
  kube: KubeSource[];
}

export interface LoadOptions {
  /** Kubernetes fields that cannot be honoured become warnings (and are dropped) instead of errors. */
  lenient?: boolean;
}

export interface LoadResult {
  objects: StackObject[];
  /** Problems that did not stop the load (only with lenient). */
  warnings: ManifestIssue[];
}

function objectsOfDocument(value: unknown): Array<{ value: unknown; prefix: IssuePath }> {
  // `kind: List` (what `tsctl get -o yaml` prints) is unpacked so its output can be applied again.
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && (value as Record<string, unknown>)['kind'] === 'List') {
    const items = (value as Record<string, unknown>)['items'];
    if (Array.isArray(items)) return items.map((item, index) => ({ value: item, prefix: ['items', index] }));
  }
  return [{ value, prefix: [] }];
}

/** YAML refused as a whole (nested too deep, too many documents) before the YAML library sees it. */
function structureProblem(text: string, fileName: string): ManifestIssue | undefined {
  const nesting = yamlStructureProblem(text);
  if (!nesting) return undefined;
  return { file: fileName, ...positionOf(text, nesting.offset), message: `YAML ${nesting.message}` };
}

function loadText(text: string, fileName: string): LoadOutcome {
  const outcome: LoadOutcome = { objects: [], issues: [], kube: [] };
  const refused = structureProblem(text, fileName);
  if (refused) {
    outcome.issues.push(refused);
    return outcome;
  }
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  // Kubernetes reads YAML 1.1 (`mode: 0400` is octal, `yes` is true); Tessera's own manifests are
  // YAML 1.2. The text is parsed again as 1.1 only when it holds a Kubernetes document.
  let legacy: Document.Parsed[] | undefined;
  const legacyValue = (index: number): unknown => {
    legacy ??= parseAllDocuments(text, { version: '1.1', prettyErrors: false });
    return legacy[index]?.toJS({ maxAliasCount: 100 });
  };
  for (const [index, doc] of documents.entries()) {
    const problems = [...doc.errors.map((error) => ({ offset: error.pos[0], message: yamlProblem(error.message) })), ...keyProblems(doc)];
    if (problems.length > 0) {
      for (const { offset, message } of problems) {
        const { line, col } = lineCounter.linePos(offset);
        outcome.issues.push({ file: fileName, line, col, message: `YAML syntax error: ${message}` });
      }
      continue;
    }
    if (doc.contents === null) continue; // an empty document, e.g. a trailing `---`
    validateDocument(doc, lineCounter, fileName, outcome, () => legacyValue(index));
  }
  // Schema order is not reading order; report top to bottom like a compiler.
  outcome.issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
  return outcome;
}

function validateDocument(doc: Document.Parsed, lineCounter: LineCounter, fileName: string, outcome: LoadOutcome, legacyValue: () => unknown): void {
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // Alias bombs and similar: refuse rather than expand.
    const { line, col } = lineCounter.linePos(doc.range[0]);
    outcome.issues.push({ file: fileName, line, col, message: `YAML error: ${(error as Error).message}` });
    return;
  }
  if (value === null || value === undefined) return; // a document holding only `---` or comments
  for (const [index, { value: item, prefix }] of objectsOfDocument(value).entries()) {
    if (isKubeDocument(item)) {
      const asKubernetesReadsIt = objectsOfDocument(legacyValue())[index]?.value ?? item;
      outcome.kube.push({ value: asKubernetesReadsIt, file: fileName, doc, lineCounter, prefix });
      continue;
    }
    const result = validateStackObject(item);
    if (!result.ok) {
      for (const issue of result.issues) {
        const path = [...prefix, ...issue.path];
        const { line, col } = locate(doc, lineCounter, path, issue.unknownField === true);
        outcome.issues.push({ file: fileName, line, col, path: issue.path, message: issue.message });
      }
      continue;
    }
    const position = locate(doc, lineCounter, [...prefix, 'metadata', 'name'], false);
    outcome.objects.push({ object: result.object, file: fileName, position });
  }
}

function objectKey(object: StackObject): string {
  return `${object.kind}/${object.metadata.stack ?? ''}/${object.metadata.name}`;
}

function duplicateIssues(objects: readonly LoadedObject[]): ManifestIssue[] {
  const first = new Map<string, LoadedObject>();
  const issues: ManifestIssue[] = [];
  for (const loaded of objects) {
    const key = objectKey(loaded.object);
    const earlier = first.get(key);
    if (!earlier) {
      first.set(key, loaded);
      continue;
    }
    const { kind, metadata } = loaded.object;
    const stack = metadata.stack ? ` in stack ${JSON.stringify(metadata.stack)}` : '';
    issues.push({
      file: loaded.file,
      ...loaded.position,
      path: ['metadata', 'name'],
      message: `duplicate ${kind} ${JSON.stringify(metadata.name)}${stack}: already defined at ${earlier.file}:${earlier.position.line}:${earlier.position.col}`,
    });
  }
  return issues;
}

function placeKubeIssue(sources: readonly KubeSource[], issue: KubeIssue): ManifestIssue {
  const source = sources[issue.doc]!;
  const { line, col } = locate(source.doc, source.lineCounter, [...source.prefix, ...issue.path], false);
  return { file: source.file, line, col, path: issue.path, message: issue.message };
}

function byPosition(a: ManifestIssue, b: ManifestIssue): number {
  return a.file.localeCompare(b.file) || (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0);
}

function finish(outcomes: readonly LoadOutcome[], options: LoadOptions = {}): LoadResult {
  const objects = outcomes.flatMap((o) => o.objects);
  const sources = outcomes.flatMap((o) => o.kube);
  const kubeIssues: ManifestIssue[] = [];
  const warnings: ManifestIssue[] = [];
  if (sources.length > 0) {
    const translation = translateKube(
      sources.map((s) => s.value),
      { lenient: options.lenient === true },
    );
    kubeIssues.push(...translation.errors.map((i) => placeKubeIssue(sources, i)).sort(byPosition));
    warnings.push(...translation.warnings.map((i) => placeKubeIssue(sources, i)).sort(byPosition));
    for (const { object, doc } of translation.objects) {
      const source = sources[doc]!;
      objects.push({ object, file: source.file, position: locate(source.doc, source.lineCounter, [...source.prefix, 'metadata', 'name'], false) });
    }
  }
  const issues = [...outcomes.flatMap((o) => o.issues), ...kubeIssues, ...duplicateIssues(objects)];
  if (issues.length > 0) throw new ManifestError(issues);
  return { objects: objects.map((o) => o.object), warnings };
}

/** Parses, validates (and translates) manifest text; `fileName` is only used in messages. Throws ManifestError. */
export function loadManifestsFromText(text: string, fileName: string, options: LoadOptions = {}): LoadResult {
  // A file is capped when read (readText); text given directly is measured here, once.
  const tooLarge = textSizeProblem(text);
  if (tooLarge) throw new ManifestError([{ file: fileName, message: `refused before parsing: ${tooLarge} (one API request's limit)` }]);
  return finish([loadText(text, fileName)], options);
}

/** loadManifestsFromText without options or warnings. Throws ManifestError. */
export function loadManifestText(text: string, fileName: string): StackObject[] {
  return loadManifestsFromText(text, fileName).objects;
}

async function readText(path: string): Promise<LoadOutcome | string> {
  const read = readCapped(path, MAX_INPUT_FILE_BYTES);
  if (read.ok) return read.data.toString('utf8');
  return { objects: [], issues: [{ file: path, message: inputFileProblem(read) }], kube: [] };
}

async function loadFileOutcome(path: string): Promise<LoadOutcome> {
  const text = await readText(path);
  return typeof text === 'string' ? loadText(text, path) : text;
}

/** Loads one manifest file. Throws ManifestError. */
export async function loadManifestFile(path: string): Promise<StackObject[]> {
  return finish([await loadFileOutcome(path)]).objects;
}

async function manifestFilesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await manifestFilesUnder(full)));
    else if (MANIFEST_EXTENSIONS.some((ext) => entry.name.endsWith(ext))) files.push(full);
  }
  return files;
}

/**
 * Loads a file, or every *.yaml, *.yml and *.json under a directory (recursively, in sorted path
 * order). Duplicates are detected across files too, and Kubernetes documents of all the files are
 * translated together. Throws ManifestError.
 */
export async function loadManifests(path: string, options: LoadOptions = {}): Promise<LoadResult> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch (error) {
    throw new ManifestError([{ file: path, message: `cannot read: ${(error as Error).message}` }]);
  }
  if (!isDirectory) return finish([await loadFileOutcome(path)], options);
  const files = (await manifestFilesUnder(path)).sort();
  if (files.length === 0) {
    throw new ManifestError([{ file: path, message: `no manifest files (${MANIFEST_EXTENSIONS.join(', ')}) in this directory` }]);
  }
  const outcomes: LoadOutcome[] = [];
  for (const file of files) outcomes.push(await loadFileOutcome(file));
  return finish(outcomes, options);
}

/** loadManifests without options or warnings. Throws ManifestError. */
export async function loadManifestPath(path: string): Promise<StackObject[]> {
  return (await loadManifests(path)).objects;
}
