// The compose-spec JSON schema (read from ../shared, never copied into the repo) is the oracle for
// our Compose structure check: both must accept and reject the same documents, on every corpus file
// and on mutations of them generated here from a seeded PRNG (wrong types, unknown keys, bad enum
// values, removed keys, duplicates), and on every schema key given values of every JSON type.

import { fileURLToPath } from 'node:url';
import test from 'ava';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { checkComposeStructure } from '../../cli/compose/load.js';
import { seededRandom } from '../helpers/seeded-random.js';

// The corpus lives in ../shared beside the checkout (never copied into the repo).
const CORPUS = fileURLToPath(new URL('../../../shared/corpus/compose', import.meta.url));
const SCHEMA_PATH = join(CORPUS, 'compose-spec.schema.json');

/** CI always has ../shared beside the checkout: without it the set-up is broken, which must fail, not pass. */
function requireCorpus(): void {
  if (!existsSync(SCHEMA_PATH)) throw new Error(`the Compose corpus is missing: ${SCHEMA_PATH} (../shared must be beside the checkout)`);
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type SchemaNode = { [key: string]: unknown };

export function corpusFiles(): string[] {
  const root = join(CORPUS, 'awesome-compose');
  return readdirSync(root)
    .sort()
    .flatMap((dir) => ['compose.yaml', 'compose.yml'].map((f) => join(root, dir, f)).filter((p) => existsSync(p)));
}

function oracle(): (value: unknown) => boolean {
  const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as SchemaNode;
  // The file names draft-07 by an https URL ajv does not know; ajv's default dialect is draft-07.
  const { $schema: _dialect, ...body } = schema;
  const ajv = new Ajv({ strict: false, allErrors: false });
  const validate = ajv.compile(body);
  return (value) => validate(value) === true;
}

type Path = Array<string | number>;

function paths(value: Json, prefix: Path = []): Path[] {
  const out: Path[] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  return out;
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function parentOf(doc: Json, path: Path): Json | undefined {
  let node: Json | undefined = doc;
  for (const segment of path.slice(0, -1)) {
    if (node === null || typeof node !== 'object') return undefined;
    node = Array.isArray(node) ? node[segment as number] : node[segment as string];
  }
  return node;
}

const SAMPLE_VALUES: Json[] = ['bogus', '', 0, 7, -3, 1.5, true, false, null, [], ['a'], ['a', 'a'], [1], {}, { a: 'b' }, { 'x-a': 1 }, [{ a: 1 }]];
const KEYS_TO_ADD = ['bogus_key', 'x-extension', 'Image', 'restart_policy', 'aliases', 'condition', 'soft'];
const ENUM_WORDS = ['bogus', 'start-first', 'service_healthy', 'bind', 'host', 'all', 'z', 'rebuild'];

/** One random mutation of `doc`, described for failure messages. */
function mutate(doc: Json, random: () => number): { value: Json; what: string } {
  const value = clone(doc);
  const all = paths(value).filter((p) => p.length > 0);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  if (all.length === 0) return { value: { services: {} }, what: 'restart from an empty project' };
  const path = pick(all);
  const parent = parentOf(value, path);
  const last = path[path.length - 1] as string | number;
  const where = path.join('.');
  const op = Math.floor(random() * 5);
  if (parent === null || parent === undefined || typeof parent !== 'object') return { value, what: 'no-op' };
  const set = (v: Json) => {
    if (Array.isArray(parent)) parent[last as number] = v;
    else parent[last as string] = v;
  };
  switch (op) {
    case 0: {
      const v = pick(SAMPLE_VALUES);
      set(v);
      return { value, what: `${where} := ${JSON.stringify(v)}` };
    }
    case 1: {
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete parent[last as string];
      return { value, what: `remove ${where}` };
    }
    case 2: {
      if (Array.isArray(parent)) {
        parent.push(clone(parent[last as number] as Json));
        return { value, what: `duplicate ${where}` };
      }
      const key = pick(KEYS_TO_ADD);
      parent[key] = pick(SAMPLE_VALUES);
      return { value, what: `add ${path.slice(0, -1).join('.')}.${key}` };
    }
    case 3: {
      const v = pick(ENUM_WORDS);
      set(v);
      return { value, what: `${where} := ${JSON.stringify(v)}` };
    }
    default: {
      // Turn a scalar into a list of it, or a list into its first item: the shapes people confuse.
      const current = Array.isArray(parent) ? parent[last as number] : parent[last as string];
      set(Array.isArray(current) ? (current[0] ?? null) : [current ?? null]);
      return { value, what: `reshape ${where}` };
    }
  }
}

const agree = (ours: boolean, theirs: boolean) => ours === theirs;

test('the corpus: our structure check and the compose-spec schema agree on every file', (t) => {
  requireCorpus();
  const valid = oracle();
  for (const file of corpusFiles()) {
    const doc = parse(readFileSync(file, 'utf8'), { merge: true }) as Json;
    const ours = checkComposeStructure(doc);
    t.is(ours.length === 0, valid(doc), `${file}: ours ${JSON.stringify(ours)}`);
  }
});

test('generated mutations of the corpus: same verdict as the schema', (t) => {
  requireCorpus();
  const valid = oracle();
  const random = seededRandom(20240607);
  const disagreements: string[] = [];
  let accepted = 0;
  let rejected = 0;
  for (const file of corpusFiles()) {
    const doc = parse(readFileSync(file, 'utf8'), { merge: true }) as Json;
    for (let i = 0; i < 150; i++) {
      // Up to three mutations at once, so combinations are tried too.
      let current = doc;
      const what: string[] = [];
      for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
        const m = mutate(current, random);
        current = m.value;
        what.push(m.what);
      }
      const theirs = valid(current);
      const ours = checkComposeStructure(current).length === 0;
      if (theirs) accepted++;
      else rejected++;
      if (!agree(ours, theirs)) disagreements.push(`${file} [${what.join('; ')}]: schema ${theirs ? 'accepts' : 'rejects'}, we ${ours ? 'accept' : 'reject'}`);
    }
  }
  t.deepEqual(disagreements.slice(0, 20), []);
  // The generator must exercise both verdicts, or the test proves little.
  t.true(accepted > 500 && rejected > 2000, `accepted ${accepted}, rejected ${rejected}`);
});

/** Every named key of the schema reachable from a service, network, volume... with its parent path. */
function schemaKeyPaths(schema: SchemaNode): Path[] {
  const defs = schema['definitions'] as Record<string, SchemaNode>;
  const out: Path[] = [];
  const seen = new Set<SchemaNode>();
  const walk = (node: SchemaNode | undefined, path: Path, depth: number): void => {
    if (!node || depth > 8) return;
    if (typeof node['$ref'] === 'string') {
      walk(defs[node['$ref'].split('/').pop() ?? ''], path, depth);
      return;
    }
    if (seen.has(node) && depth > 3) return;
    seen.add(node);
    for (const option of (node['oneOf'] as SchemaNode[] | undefined) ?? []) walk(option, path, depth);
    const props = node['properties'] as Record<string, SchemaNode> | undefined;
    for (const [key, child] of Object.entries(props ?? {})) {
      out.push([...path, key]);
      walk(child, [...path, key], depth + 1);
    }
    const patterns = node['patternProperties'] as Record<string, SchemaNode> | undefined;
    for (const [pattern, child] of Object.entries(patterns ?? {})) if (pattern !== '^x-') walk(child, [...path, 'k'], depth + 1);
    if (node['items']) walk(node['items'] as SchemaNode, [...path, 0], depth + 1);
  };
  walk(schema, [], 0);
  return out;
}

/** Builds a document in which `path` holds `value`, creating mappings/lists on the way. */
function documentWith(path: Path, value: Json): Json {
  const base: Json = { services: { k: { image: 'busybox' } } };
  let node: Json = base;
  path.forEach((segment, index) => {
    const next = path[index + 1];
    const isLast = index === path.length - 1;
    const child: Json = isLast ? value : typeof next === 'number' ? [] : {};
    const container = node as Record<string, Json> | Json[];
    const existing = Array.isArray(container) ? container[segment as number] : container[segment as string];
    if (existing !== undefined && !isLast && typeof existing === 'object' && existing !== null) {
      node = existing;
      return;
    }
    if (Array.isArray(container)) container[segment as number] = child;
    else container[segment as string] = child;
    node = child;
  });
  return base;
}

test('every key of the schema, given a value of every JSON type: same verdict as the schema', (t) => {
  requireCorpus();
  const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as SchemaNode;
  const valid = oracle();
  const disagreements: string[] = [];
  const keyPaths = schemaKeyPaths(schema);
  t.true(keyPaths.length > 300, `only ${keyPaths.length} key paths found`);
  for (const path of keyPaths) {
    for (const value of SAMPLE_VALUES) {
      const doc = documentWith(path, value);
      const theirs = valid(doc);
      const ours = checkComposeStructure(doc).length === 0;
      if (theirs !== ours) disagreements.push(`${path.join('.')} := ${JSON.stringify(value)}: schema ${theirs}, ours ${ours}`);
    }
  }
  t.deepEqual(disagreements.slice(0, 20), []);
});
