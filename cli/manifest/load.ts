// Loading manifests: multi-document YAML (or JSON) → validated, normalised objects.
// All-or-nothing: every problem in every document is collected and thrown as one ManifestError, and
// nothing is returned unless the whole input is good, so a rejected file is never half applied.

import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { Service } from '../../control-plane/resources/types.js';
import { validateObject, type IssuePath } from '../../control-plane/resources/schema.js';
import { ManifestError, type ManifestIssue } from './errors.js';
import { locate, type SourcePosition } from './locate.js';

export { ManifestError, formatIssue, formatPath, type ManifestIssue } from './errors.js';

export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'] as const;

/** One validated object and where it came from, for duplicate detection and messages. */
interface LoadedObject {
  object: Service;
  file: string;
  position: SourcePosition;
}

interface LoadOutcome {
  objects: LoadedObject[];
  issues: ManifestIssue[];
}

// The yaml package appends " at line L, column C:" and a code frame; we print our own position.
function yamlProblem(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '');
}

function objectsOfDocument(value: unknown): Array<{ value: unknown; prefix: IssuePath }> {
  // `kind: List` (what `tsctl get -o yaml` prints) is unpacked so its output can be applied again.
  if (value !== null && typeof value === 'object' && !Array.isArray(value)
    && (value as Record<string, unknown>)['kind'] === 'List') {
    const items = (value as Record<string, unknown>)['items'];
    if (Array.isArray(items)) return items.map((item, index) => ({ value: item, prefix: ['items', index] }));
  }
  return [{ value, prefix: [] }];
}

function loadText(text: string, fileName: string): LoadOutcome {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  const outcome: LoadOutcome = { objects: [], issues: [] };
  for (const doc of documents) {
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        outcome.issues.push({ file: fileName, line, col, message: `YAML syntax error: ${yamlProblem(error.message)}` });
      }
      continue;
    }
    if (doc.contents === null) continue; // an empty document, e.g. a trailing `---`
    validateDocument(doc, lineCounter, fileName, outcome);
  }
  // Schema order is not reading order; report top to bottom like a compiler.
  outcome.issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
  return outcome;
}

function validateDocument(doc: Document.Parsed, lineCounter: LineCounter, fileName: string, outcome: LoadOutcome): void {
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
  for (const { value: item, prefix } of objectsOfDocument(value)) {
    const result = validateObject(item);
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

function objectKey(object: Service): string {
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
      file: loaded.file, ...loaded.position, path: ['metadata', 'name'],
      message: `duplicate ${kind} ${JSON.stringify(metadata.name)}${stack}: already defined at ${earlier.file}:${earlier.position.line}:${earlier.position.col}`,
    });
  }
  return issues;
}

function finish(outcomes: readonly LoadOutcome[]): Service[] {
  const objects = outcomes.flatMap((o) => o.objects);
  const issues = [...outcomes.flatMap((o) => o.issues), ...duplicateIssues(objects)];
  if (issues.length > 0) throw new ManifestError(issues);
  return objects.map((o) => o.object);
}

/** Parses and validates manifest text; `fileName` is only used in messages. Throws ManifestError. */
export function loadManifestText(text: string, fileName: string): Service[] {
  return finish([loadText(text, fileName)]);
}

async function readText(path: string): Promise<LoadOutcome | string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    return { objects: [], issues: [{ file: path, message: `cannot read: ${(error as Error).message}` }] };
  }
}

async function loadFileOutcome(path: string): Promise<LoadOutcome> {
  const text = await readText(path);
  return typeof text === 'string' ? loadText(text, path) : text;
}

/** Loads one manifest file. Throws ManifestError. */
export async function loadManifestFile(path: string): Promise<Service[]> {
  return finish([await loadFileOutcome(path)]);
}

async function manifestFilesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...await manifestFilesUnder(full));
    else if (MANIFEST_EXTENSIONS.some((ext) => entry.name.endsWith(ext))) files.push(full);
  }
  return files;
}

/**
 * Loads a file, or every *.yaml, *.yml and *.json under a directory (recursively, in sorted path
 * order). Duplicates are detected across files too. Throws ManifestError.
 */
export async function loadManifestPath(path: string): Promise<Service[]> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch (error) {
    throw new ManifestError([{ file: path, message: `cannot read: ${(error as Error).message}` }]);
  }
  if (!isDirectory) return loadManifestFile(path);
  const files = (await manifestFilesUnder(path)).sort();
  if (files.length === 0) {
    throw new ManifestError([{ file: path, message: `no manifest files (${MANIFEST_EXTENSIONS.join(', ')}) in this directory` }]);
  }
  const outcomes: LoadOutcome[] = [];
  for (const file of files) outcomes.push(await loadFileOutcome(file));
  return finish(outcomes);
}
