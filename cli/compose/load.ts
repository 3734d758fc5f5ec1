// Loading a Compose project: each -c file is parsed (YAML with positions), interpolated with the
// environment and the .env beside the first file, checked against the Compose structure, and
// normalised; the files are merged in order and translated into native objects. All-or-nothing:
// every problem is collected, with file:line:col, and thrown as one ManifestError.

import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, type Document, type ScalarTag } from 'yaml';
import type { StackObject } from '../../common/resources/types.js';
import type { IssuePath, ValidationIssue } from '../../common/resources/schema.js';
import { firstIssues, formatIssue, ManifestError, MAX_REPORTED_ISSUES, NOT_SHOWN_PREFIX, yamlProblem, type ManifestIssue } from '../manifest/errors.js';
import { locate } from '../manifest/locate.js';
import { composeShape } from './compose-shape.js';
import { parseDotenv } from './dotenv.js';
import { interpolateTree, type Lookup } from './interpolate.js';
import { mergeModels } from './merge.js';
import { isDict, itemOrigins, normalizeFile, type Dict } from './normalize.js';
import { check } from './shape.js';
import { translate, type TranslateIssue } from './translate.js';
import type { ComposeBuildJob } from './build-plan.js';
import { readProjectFile, type CappedReader, type ProjectFileOptions } from './project-files.js';
import { keyProblems } from '../manifest/unique-keys.js';
import { inputFileProblem, MAX_INPUT_FILE_BYTES, positionOf, readCapped, yamlStructureProblem } from '../manifest/input-limits.js';

export interface LoadComposeOptions {
  /** The environment variables of this machine (process.env); they win over .env. */
  env: Record<string, string | undefined>;
  /** The stack the objects are put in (`tsctl stack deploy ... NAME`). */
  projectName: string;
  /** Reads a file of at most maxBytes. Defaults to the filesystem. */
  readFile?: CappedReader;
  /**
   * Read .env, env_file, secret and config files wherever they are (--allow-outside-files). By
   * default they must be inside the project directory, symbolic links resolved.
   */
  allowOutsideFiles?: boolean;
}

export interface ComposeProject {
  objects: StackObject[];
  /** The images to build (services with build:) before the objects are applied. */
  builds: ComposeBuildJob[];
  /** Things worth saying that do not stop the deploy, e.g. a variable that is not set. */
  warnings: string[];
}

interface ParsedFile {
  file: string;
  doc: Document.Parsed;
  lineCounter: LineCounter;
  /** The interpolated JSON value, before normalisation (for locating merged paths). */
  value: unknown;
}

/**
 * `mode: 0440` means octal in every Compose file written for Docker: YAML 1.1 read it so, and
 * compose-go's YAML library still does for compatibility. Plain YAML 1.2 would read decimal 440 —
 * permission bits nobody meant — so a leading-zero integer is read as octal here too.
 */
const LEGACY_OCTAL: ScalarTag = {
  identify: (value) => typeof value === 'number',
  default: true,
  tag: 'tag:yaml.org,2002:int',
  format: 'OCT',
  test: /^0[0-7]+$/,
  resolve: (text) => Number.parseInt(text, 8),
};

/** Reads the YAML of one file; problems go to `issues`. */
function parseFile(file: string, text: string, issues: ManifestIssue[]): { doc: Document.Parsed; lineCounter: LineCounter; value: unknown } | undefined {
  const nesting = yamlStructureProblem(text);
  if (nesting) {
    issues.push({ file, ...positionOf(text, nesting.offset), message: `YAML ${nesting.message}` });
    return undefined;
  }
  const lineCounter = new LineCounter();
  // merge: Compose files use `<<: *anchor` to share blocks (often from x- extension keys).
  // uniqueKeys: false, because keyProblems does the library's quadratic check in linear time.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: false, customTags: (tags) => [LEGACY_OCTAL, ...tags] });
  const problems = [
    ...[...doc.errors, ...doc.warnings.filter((w) => w.code === 'TAG_RESOLVE_FAILED')].map((error) => ({
      offset: error.pos[0],
      message:
        error.code === 'TAG_RESOLVE_FAILED'
          ? `YAML tag not supported (${yamlProblem(error.message)}); !reset and !override are not supported yet`
          : `YAML syntax error: ${yamlProblem(error.message)}`,
    })),
    ...keyProblems(doc).map(({ offset, message }) => ({ offset, message: `YAML syntax error: ${message}` })),
  ];
  for (const { offset, message } of problems) issues.push({ file, ...lineCounter.linePos(offset), message });
  if (problems.length > 0) return undefined;
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (error) {
    const { line, col } = lineCounter.linePos(doc.range[0]);
    issues.push({ file, line, col, message: `YAML error: ${(error as Error).message}` });
    return undefined;
  }
  if (value === null || value === undefined) {
    issues.push({ file, message: 'the file is empty: expected a Compose mapping with services:' });
    return undefined;
  }
  return { doc, lineCounter, value };
}

function at(parsed: { doc: Document.Parsed; lineCounter: LineCounter }, path: IssuePath, atKey: boolean) {
  return locate(parsed.doc, parsed.lineCounter, path, atKey);
}

/** Checks a parsed Compose document's structure; the same as the compose-spec schema decides. */
export function checkComposeStructure(value: unknown): ValidationIssue[] {
  return check(composeShape, value);
}

function has(value: unknown, path: IssuePath): number {
  let node = value;
  let depth = 0;
  for (const segment of path) {
    if (Array.isArray(node) && typeof segment === 'number' && segment < node.length) node = node[segment];
    else if (isDict(node) && typeof segment === 'string' && Object.hasOwn(node, segment)) node = node[segment];
    else return depth;
    depth++;
  }
  return depth;
}

/** Where a problem found in the merged model was written: the last file that set that key. */
function locateMerged(files: readonly ParsedFile[], issue: TranslateIssue): ManifestIssue {
  const origin = issue.item ? itemOrigins.get(issue.item) : undefined;
  if (origin) {
    const file = files.find((f) => f.file === origin.file);
    const tail = issue.path.slice(origin.path.length);
    if (file) return { file: file.file, ...at(file, [...origin.path, ...tail], true), path: issue.path, message: issue.message };
  }
  let best: ParsedFile | undefined;
  let bestDepth = -1;
  for (const file of [...files].reverse()) {
    const depth = has(file.value, issue.path);
    if (depth > bestDepth) {
      best = file;
      bestDepth = depth;
    }
  }
  if (!best) return { file: files[0]?.file ?? '', path: issue.path, message: issue.message };
  return { file: best.file, ...at(best, issue.path, true), path: issue.path, message: issue.message };
}

/**
 * Loads the Compose files (in -c order) as the objects of stack `projectName`.
 * Throws ManifestError listing every problem.
 */
export function loadCompose(files: readonly string[], options: LoadComposeOptions): ComposeProject {
  if (files.length === 0) throw new ManifestError([{ file: '(none)', message: 'no Compose file given (-c FILE)' }]);
  const readFile = options.readFile ?? readCapped;
  const issues: ManifestIssue[] = [];
  const warnings: string[] = [];
  const projectDir = dirname(resolve(files[0] ?? '.'));
  const projectFiles: ProjectFileOptions = { projectDir, allowOutside: options.allowOutsideFiles === true, read: readFile };

  // .env beside the first file supplies variables; this machine's environment wins over it.
  const shellEnv: Lookup = (name) => options.env[name];
  const dotenvFile = readProjectFile('.env', MAX_INPUT_FILE_BYTES, projectFiles);
  if (!dotenvFile.ok && !dotenvFile.missing) issues.push({ file: dotenvFile.path, message: dotenvFile.problem });
  const dotenv = dotenvFile.ok ? parseDotenv(dotenvFile.data.toString('utf8'), shellEnv) : { values: new Map<string, string>(), issues: [] };
  for (const issue of dotenv.issues) issues.push({ file: dotenvFile.path, line: issue.line, col: 1, message: issue.message });
  const env: Lookup = (name) => options.env[name] ?? dotenv.values.get(name);

  const parsedFiles: ParsedFile[] = [];
  const models: Dict[] = [];
  for (const file of files) {
    const data = readFile(file, MAX_INPUT_FILE_BYTES);
    if (!data.ok) {
      issues.push({ file, message: inputFileProblem(data) });
      continue;
    }
    const text = data.data.toString('utf8');
    const parsed = parseFile(file, text, issues);
    if (!parsed) continue;
    const interpolated = interpolateTree(parsed.value, env);
    issues.push(...firstIssues(interpolated.issues, file, (issue) => ({ file, ...at(parsed, issue.path, false), path: issue.path, message: issue.message })));
    const unset = [...interpolated.unset];
    for (const [name, path] of unset.slice(0, MAX_REPORTED_ISSUES)) {
      const { line, col } = at(parsed, path, false);
      warnings.push(`${file}:${line}:${col}: variable ${name} is not set; using an empty string`);
    }
    if (unset.length > MAX_REPORTED_ISSUES) warnings.push(`${file}: ... and ${unset.length - MAX_REPORTED_ISSUES} more variables that are not set`);
    if (interpolated.issues.length > 0) continue;
    const structure = checkComposeStructure(interpolated.value);
    issues.push(
      ...firstIssues(structure, file, (issue) => ({ file, ...at(parsed, issue.path, issue.unknownField === true), path: issue.path, message: issue.message })),
    );
    if (structure.length > 0) continue;
    parsedFiles.push({ file, doc: parsed.doc, lineCounter: parsed.lineCounter, value: interpolated.value });
    const normalized = normalizeFile(interpolated.value as Dict, file);
    issues.push(...firstIssues(normalized.issues, file, (issue) => ({ file, ...at(parsed, issue.path, false), path: issue.path, message: issue.message })));
    models.push(normalized.model);
  }
  if (issues.length > 0) throw new ManifestError(sorted(issues));

  const merged = models.slice(1).reduce((base, over) => mergeModels(base, over), models[0] ?? {});
  const translation = translate(merged, { stack: options.projectName, projectDir, env, files: projectFiles });
  const firstFile = files[0] ?? '';
  if (translation.issues.length > 0) throw new ManifestError(sorted(firstIssues(translation.issues, firstFile, (i) => locateMerged(parsedFiles, i))));
  for (const warning of sorted(firstIssues(translation.warnings, firstFile, (w) => locateMerged(parsedFiles, w)))) warnings.push(formatIssue(warning));
  return { objects: translation.objects, builds: translation.builds, warnings };
}

function sorted(issues: ManifestIssue[]): ManifestIssue[] {
  // Whole-file problems first, the note of problems not shown last.
  const line = (i: ManifestIssue) => i.line ?? (i.message.startsWith(NOT_SHOWN_PREFIX) ? Number.MAX_SAFE_INTEGER : 0);
  return [...issues].sort((a, b) => a.file.localeCompare(b.file) || line(a) - line(b) || (a.col ?? 0) - (b.col ?? 0));
}
