// Fuzzing the parsers tsctl runs on what a user (or a file from elsewhere) gives it: the manifest
// loader (cli/manifest/, with the Kubernetes translation behind it), the Compose loader and
// translator (cli/compose/) and the image reference parser (common/images/reference.ts). Inputs are
// seeded mutations of real files (test fixtures, examples, the awesome-compose and Kubernetes
// corpora) and hand-written nasties: interpolation 20,000 deep, huge keys, huge numbers, replicas
// 1e6 and 2^53-1, binary garbage, alias bombs, nesting millions deep. Every input must either load
// or be refused with our own error type and a message: no RangeError, TypeError or stack overflow,
// no hang. The seeds are fixed, so a failure names a case that reproduces; the case counts keep each
// test to a few seconds here (elapsed time is logged, not asserted).

import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Prng } from '../sim/prng.js';
import { loadManifestsFromText } from '../../cli/manifest/load.js';
import { ManifestError, MAX_PRINTED_ISSUES } from '../../cli/manifest/errors.js';
import { loadCompose } from '../../cli/compose/load.js';
import type { CappedRead } from '../../cli/manifest/input-limits.js';
import { formatReference, InvalidReferenceError, parseReference } from '../../common/images/reference.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CORPUS = fileURLToPath(new URL('../../../shared/corpus', import.meta.url));

/** Every *.yaml / *.yml under a directory, sorted, so the seed corpus is the same on every run. */
function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(entry)) out.push(path);
  }
  return out;
}

function texts(paths: readonly string[]): string[] {
  return paths.map((p) => readFileSync(p, 'utf8'));
}

// ---- mutations ----

/** Fragments that make YAML, interpolation and our parsers work hard or take odd paths. */
const SNIPPETS = [
  '${',
  '}',
  '${X:-',
  '$$',
  '$',
  '${X:?boom}',
  '[',
  ']',
  '{',
  '}',
  ': ',
  '- ',
  '? ',
  '&a ',
  '*a',
  '<<: *a\n',
  '!!binary ',
  '!!set ',
  '!!omap ',
  '!!timestamp ',
  '!custom ',
  '!reset ',
  '"',
  "'",
  '#',
  '|\n',
  '>-\n',
  '\t',
  '\0',
  '\uFEFF',
  '\uD800',
  '\n---\n',
  '\n...\n',
  '%YAML 1.1\n',
  '1e309',
  '-1',
  '0x',
  '0o777',
  '9007199254740993',
  '1000000',
  '.nan',
  '-.inf',
  '~',
  'null',
  '__proto__: {}\n',
  'constructor: 1\n',
  '"\\u0000"',
  '\r\n',
  '\u2028',
  '../',
  '/etc/hostname',
  'a'.repeat(300),
];

/** A number in the shapes that have broken integer handling elsewhere. */
const NUMBERS = ['1000000', '1e6', '9007199254740991', '9007199254740992', '1e309', '-1', '0.5', '1e-400', '-0', '0777', '99999999999999999999'];

function mutate(text: string, rng: Prng): string {
  let out = text;
  const rounds = rng.int(1, 4);
  for (let round = 0; round < rounds; round++) {
    const at = rng.int(0, out.length);
    switch (rng.int(0, 7)) {
      case 0: // flip a character
        out = out.slice(0, at) + String.fromCharCode(rng.int(0, 0x7f)) + out.slice(at + 1);
        break;
      case 1: // insert a snippet
        out = out.slice(0, at) + rng.pick(SNIPPETS) + out.slice(at);
        break;
      case 2: {
        // delete a range
        out = out.slice(0, at) + out.slice(at + rng.int(1, 40));
        break;
      }
      case 3: {
        // duplicate a range
        const length = rng.int(1, 200);
        out = out.slice(0, at + length) + out.slice(at, at + length) + out.slice(at + length);
        break;
      }
      case 4: {
        // swap two lines
        const lines = out.split('\n');
        const i = rng.int(0, lines.length - 1);
        const j = rng.int(0, lines.length - 1);
        [lines[i], lines[j]] = [lines[j] ?? '', lines[i] ?? ''];
        out = lines.join('\n');
        break;
      }
      case 5: {
        // replace a number with an awkward one
        const digits = [...out.matchAll(/\d+/g)];
        const m = digits.length > 0 ? rng.pick(digits) : undefined;
        if (m?.index !== undefined) out = out.slice(0, m.index) + rng.pick(NUMBERS) + out.slice(m.index + m[0].length);
        break;
      }
      case 6: {
        // re-indent a line
        const lines = out.split('\n');
        const i = rng.int(0, lines.length - 1);
        lines[i] = ' '.repeat(rng.int(0, 12)) + (lines[i] ?? '').trimStart();
        out = lines.join('\n');
        break;
      }
      default: // truncate
        out = out.slice(0, at);
    }
  }
  return out;
}

function garbage(rng: Prng, length: number): string {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = rng.int(0, 255);
  return bytes.toString('latin1');
}

// ---- hand-written nasties ----

const deepInterpolation = (depth: number) => `${'${X:-'.repeat(depth)}x${'}'.repeat(depth)}`;

function aliasBomb(levels: number): string {
  const lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < levels; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 9 }, () => `*a${i - 1}`).join(',')}]`);
  return `${lines.join('\n')}\n`;
}

const serviceManifest = (spec: string) => `apiVersion: tessera/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  image: busybox\n${spec}`;
const composeService = (body: string) => `services:\n  web:\n    image: busybox\n${body}`;

/** Inputs for both YAML loaders: each must load or be refused with a message. */
function yamlNasties(): Array<[string, string]> {
  const rng = new Prng(0x5eed);
  const bigKey = 'k'.repeat(3 * 1024 * 1024);
  return [
    ['flow sequences 2,000,000 deep', `a: ${'['.repeat(2_000_000)}${']'.repeat(2_000_000)}\n`],
    ['flow mappings 500,000 deep, unclosed', `a: ${'{a: '.repeat(500_000)}\n`],
    ['compact sequences 1,000,000 deep', `a:\n${'- '.repeat(1_000_000)}x\n`],
    ['block mappings 2,800 deep (the most that fits in 4 MiB)', `${Array.from({ length: 2800 }, (_, i) => `${' '.repeat(i)}k:`).join('\n')} x\n`],
    ['billion laughs', aliasBomb(10)],
    [
      'merge-key bomb',
      `${aliasBomb(1).trimEnd()}\nb: &b {x: 1}\n${Array.from({ length: 8 }, (_, i) => `c${i}: &c${i} {<<: [${i === 0 ? '*b' : `*c${i - 1}, *c${i - 1}`}]}`).join('\n')}\n`,
    ],
    ['a 3 MiB key', serviceManifest(`  ${bigKey}: 1\n`)],
    // JSON keys have no length limit in YAML: this one reaches the schema's unknown-field check.
    ['a 3 MiB key in JSON', JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Service', metadata: { name: 'web' }, spec: { image: 'busybox', [bigKey]: 1 } })],
    [
      'a 1 MiB label key and an unknown 1 MiB key in JSON',
      JSON.stringify({
        apiVersion: 'tessera/v1',
        kind: 'Service',
        metadata: { name: 'web', labels: { [bigKey.slice(0, 1 << 20)]: 'x' } },
        spec: { image: 'busybox', [`x${bigKey.slice(0, 1 << 20)}`]: 1 },
      }),
    ],
    ['a 3 MiB Compose key in JSON', JSON.stringify({ services: { web: { image: 'busybox', [bigKey]: 1 } } })],
    ['a 1 MiB environment name in JSON', JSON.stringify({ services: { web: { image: 'busybox', environment: { [bigKey.slice(0, 1 << 20)]: 'x' } } } })],
    ['a 3 MiB value', serviceManifest(`  command: ["${'v'.repeat(3 * 1024 * 1024)}"]\n`)],
    ['just over 4 MiB', `# ${'z'.repeat(4 * 1024 * 1024)}\n`],
    ['binary garbage', garbage(rng, 64 * 1024)],
    ['binary garbage after a document', `${serviceManifest('')}---\n${garbage(rng, 4096)}`],
    ['a million empty documents', '---\n'.repeat(1_000_000)],
    // Enough that a check comparing every key with every other (as the YAML library's own does) hangs.
    ['60,000 keys', `${Array.from({ length: 60_000 }, (_, i) => `k${i}: ${i}`).join('\n')}\n`],
    [
      '60,000 list items',
      `a: [${Array.from({ length: 60_000 }, (_, i) => `x${i % 7}`).join(', ')}]\nservices: {web: {image: busybox, dns: [${Array.from({ length: 60_000 }, (_, i) => `"10.0.${i % 250}.${i % 200}"`).join(', ')}]}}\n`,
    ],
    ['keys that are collections or binary', serviceManifest('  ? [a, b]\n  : 1\n  {c: d}: 2\n  env: {[x]: y}\n  !!binary aGk=: 3\n')],
    ['odd keys', serviceManifest('  __proto__: {polluted: true}\n  constructor: 1\n  toString: 2\n')],
    ['unknown tags', serviceManifest('  replicas: !!js/function "return 1"\n  env: !custom {a: b}\n')],
    ['NUL and lone surrogates', serviceManifest(`  hostname: "a\\0b"\n  user: "\\uD800"\n`)],
    ['interpolation 20,000 deep', composeService(`    environment:\n      A: "${deepInterpolation(20_000)}"\n`)],
    ['an unclosed ${ of 3 MiB', composeService(`    environment:\n      A: "\${X:-${'y'.repeat(3 * 1024 * 1024)}"\n`)],
  ];
}

/** Numbers that must be refused as replicas, or taken exactly. */
const REPLICAS = ['1000000', '1e6', '9007199254740991', '9007199254740992', '1e309', '-1', '0.5', '"3"', '.inf', '.nan', '100000'];

// ---- the properties ----

interface Failure {
  label: string;
  error: unknown;
}

function describeFailure({ label, error }: Failure): string {
  const what = error instanceof Error ? `${error.name}: ${error.message.slice(0, 300)}` : `non-error ${String(error)}`;
  return `${label}: ${what}`;
}

/** Why a refusal's message is unusable: empty, or not bounded (a line over 4 KiB, over 201 lines). */
function messageProblem(message: string): string | undefined {
  if (message.trim() === '') return 'an empty message';
  const lines = message.split('\n');
  if (lines.length > MAX_PRINTED_ISSUES + 1) return `a message of ${lines.length} lines`;
  const longest = Math.max(...lines.map((line) => Buffer.byteLength(line)));
  return longest > MAX_LINE_BYTES ? `a message line of ${longest} bytes` : undefined;
}

const MAX_LINE_BYTES = 4096;

/** Runs one input; records it unless it loaded or was refused with `ours` and a bounded message. */
function attempt(failures: Failure[], label: string, ours: (error: unknown) => boolean, run: () => unknown): 'loaded' | 'refused' | 'failed' {
  try {
    run();
    return 'loaded';
  } catch (error) {
    const problem = error instanceof Error ? messageProblem(error.message) : 'not an Error';
    if (ours(error) && problem === undefined) return 'refused';
    failures.push({ label, error: ours(error) ? new Error(`our error, but ${problem ?? ''}: ${(error as Error).message.slice(0, 200)}`) : error });
    return 'failed';
  }
}

function report(t: ExecutionContext, name: string, failures: readonly Failure[], counts: Record<string, number>, started: number): void {
  t.log(`${name}: ${JSON.stringify(counts)} in ${Date.now() - started} ms`);
  t.deepEqual(failures.map(describeFailure), [], `${failures.length} inputs ended in an error that is not ours`);
}

const isManifestError = (error: unknown) => error instanceof ManifestError;

/** The Compose project read from memory: no file of the fuzz ever touches the disk. */
function composeFrom(files: Record<string, string>) {
  const dir = '/nonexistent-fuzz-project';
  const read = (path: string, maxBytes: number): CappedRead => {
    const name = path.startsWith(`${dir}/`) ? path.slice(dir.length + 1) : undefined;
    const text = name === undefined ? undefined : files[name];
    if (text === undefined) return { ok: false, reason: 'missing' };
    const data = Buffer.from(text, 'utf8');
    return data.length > maxBytes ? { ok: false, reason: 'too-large', size: data.length } : { ok: true, data };
  };
  return loadCompose([`${dir}/compose.yaml`], { env: { SET: 'v' }, projectName: 'fuzz', readFile: read });
}

// ---- the tests ----

test('manifest loader: mutated fixtures, examples and Kubernetes corpus, and the nasties, load or are refused with ManifestError', (t) => {
  const k8s = join(CORPUS, 'k8s');
  t.true(existsSync(k8s), `the Kubernetes corpus is missing at ${k8s}`);
  const seeds = texts([
    ...yamlFiles(join(ROOT, 'test/fixtures/manifests')),
    ...yamlFiles(join(ROOT, 'test/fixtures/kube')),
    ...yamlFiles(join(ROOT, 'examples')),
    ...yamlFiles(k8s).slice(0, 60),
  ]);
  const started = Date.now();
  const failures: Failure[] = [];
  const counts = { loaded: 0, refused: 0, failed: 0 };
  const rng = new Prng(12);
  for (let i = 0; i < 800; i++) {
    const seed = rng.int(0, seeds.length - 1);
    const text = mutate(seeds[seed] ?? '', rng);
    counts[attempt(failures, `seed 12 case ${i} (corpus file ${seed})`, isManifestError, () => loadManifestsFromText(text, 'fuzz.yaml'))]++;
  }
  for (const [name, text] of yamlNasties()) counts[attempt(failures, name, isManifestError, () => loadManifestsFromText(text, 'nasty.yaml'))]++;
  for (const replicas of REPLICAS) {
    const label = `replicas: ${replicas}`;
    const outcome = attempt(failures, label, isManifestError, () => loadManifestsFromText(serviceManifest(`  replicas: ${replicas}\n`), 'replicas.yaml'));
    counts[outcome]++;
    // Only a whole number up to the cluster's limit is a replica count.
    t.is(outcome, ['"3"', '100000'].includes(replicas) ? (replicas === '"3"' ? 'refused' : 'loaded') : 'refused', label);
  }
  report(t, 'manifest loader', failures, counts, started);
});

test('Compose loader: mutated corpus and fixtures, and the nasties, load or are refused with ManifestError', (t) => {
  const awesome = join(CORPUS, 'compose/awesome-compose');
  t.true(existsSync(awesome), `the Compose corpus is missing at ${awesome}`);
  const seeds = texts([
    ...yamlFiles(awesome).filter((p) => /\/(compose|docker-compose)\.ya?ml$/.test(p)),
    ...yamlFiles(join(ROOT, 'test/fixtures/compose-stack-cli')),
    ...yamlFiles(join(ROOT, 'test/fixtures/three-tier')),
  ]);
  const started = Date.now();
  const failures: Failure[] = [];
  const counts = { loaded: 0, refused: 0, failed: 0 };
  const rng = new Prng(34);
  // Files the projects may name (.env, env_file, secrets): present, so translation goes deep.
  const side = { '.env': 'SET=from-dotenv\nPORT=8080\n', 'db/password.txt': 'pw', 'greeting.txt': 'hi' };
  for (let i = 0; i < 400; i++) {
    const seed = rng.int(0, seeds.length - 1);
    const text = mutate(seeds[seed] ?? '', rng);
    counts[attempt(failures, `seed 34 case ${i} (corpus file ${seed})`, isManifestError, () => composeFrom({ ...side, 'compose.yaml': text }))]++;
  }
  for (let i = 0; i < 150; i++) {
    const dotenv = mutate('A=1\nexport B="two\nlines ${A}"\nC=\'${A}\'\nD=${A:-${B:-x}} # c\n', rng);
    counts[
      attempt(failures, `seed 34 .env case ${i}`, isManifestError, () =>
        composeFrom({ '.env': dotenv, 'compose.yaml': composeService('    environment: {D: "${D}"}\n') }),
      )
    ]++;
  }
  const composeNasties: Array<[string, Record<string, string>]> = [
    ...yamlNasties().map(([name, text]): [string, Record<string, string>] => [name, { 'compose.yaml': text }]),
    ['.env nested 20,000 deep', { '.env': `A=${deepInterpolation(20_000)}\n`, 'compose.yaml': composeService('') }],
    ['.env with an unclosed quote and 200,000 lines', { '.env': `A="${'\nB=1'.repeat(200_000)}`, 'compose.yaml': composeService('') }],
    ['expose a range of 10^11 ports', { 'compose.yaml': composeService('    expose: ["1-99999999999"]\n') }],
    ['publish a range of 10^11 ports', { 'compose.yaml': composeService('    ports: ["1-99999999999:1-99999999999"]\n') }],
    ['every port', { 'compose.yaml': composeService('    ports: ["1-65535:1-65535"]\n    expose: ["1-65535"]\n') }],
    [
      'huge quantities',
      {
        'compose.yaml': composeService(
          '    mem_limit: 1e400G\n    cpus: 1e308\n    stop_grace_period: 99999999999999999h\n    ulimits: {nofile: 99999999999999999999}\n',
        ),
      },
    ],
    ['a secret of 600 KiB', { 'compose.yaml': `${composeService('    secrets: [s]\n')}secrets:\n  s: {file: ./s}\n`, s: 'x'.repeat(600 * 1024) }],
    ['a secret outside the project', { 'compose.yaml': `${composeService('    secrets: [s]\n')}secrets:\n  s: {file: /etc/shadow}\n` }],
  ];
  for (const [name, files] of composeNasties) counts[attempt(failures, name, isManifestError, () => composeFrom(files))]++;
  for (const replicas of REPLICAS) {
    const label = `deploy.replicas: ${replicas}`;
    const outcome = attempt(failures, label, isManifestError, () => composeFrom({ 'compose.yaml': composeService(`    deploy: {replicas: ${replicas}}\n`) }));
    counts[outcome]++;
    // Compose takes "3" (interpolated values are strings); a count over the cluster's limit is refused.
    t.is(outcome, ['"3"', '100000'].includes(replicas) ? 'loaded' : 'refused', label);
  }
  report(t, 'Compose loader', failures, counts, started);
});

test('image reference parser: mutated references and the nasties parse (and round-trip) or throw InvalidReferenceError', (t) => {
  const DIGEST = `sha256:${'a'.repeat(64)}`;
  const seeds = [
    'busybox',
    'busybox:1.36',
    'library/busybox',
    'team/app',
    'docker.io/busybox',
    'index.docker.io/library/busybox:1',
    '127.0.0.1:5000/busybox:v1',
    'localhost/a/b/c',
    'localhost:5000/app',
    'registry.example.com/a_b/c-d.e__f:tag-1.0',
    `busybox@${DIGEST}`,
    `127.0.0.1:5000/app:v2@${DIGEST}`,
    '[::1]:5000/app',
    'ghcr.io/o/r/s:t',
  ];
  const started = Date.now();
  const failures: Failure[] = [];
  const counts = { loaded: 0, refused: 0, failed: 0 };
  const ours = (error: unknown) => error instanceof InvalidReferenceError;
  const rng = new Prng(56);
  const inputs: Array<[string, string]> = [];
  for (let i = 0; i < 4000; i++) inputs.push([`seed 56 case ${i}`, mutate(rng.pick(seeds), rng)]);
  inputs.push(
    ['16 MiB of "a"', 'a'.repeat(16 * 1024 * 1024)],
    ['a long run of separators', `a${'-'.repeat(1_000_000)}!`],
    ['a long run of path components', `${'a/'.repeat(500_000)}a`],
    ['many "@"', '@'.repeat(100_000)],
    ['many ":"', `host${':'.repeat(100_000)}/a`],
    ['a long tag', `a:${'t'.repeat(1_000_000)}`],
    ['a long IPv6 host', `[${':'.repeat(100_000)}]/a`],
    ['binary garbage', garbage(rng, 4096)],
    ['unicode', 'bu\u0301sybox:\uD800'],
  );
  for (const [label, input] of inputs) {
    const outcome = attempt(failures, label, ours, () => {
      const parsed = parseReference(input);
      // What parses must print to a reference that parses to the same thing.
      const again = parseReference(formatReference(parsed));
      if (JSON.stringify(again) !== JSON.stringify(parsed)) throw new Error(`${JSON.stringify(input)} does not round-trip`);
    });
    counts[outcome]++;
  }
  report(t, 'image reference parser', failures, counts, started);
});
