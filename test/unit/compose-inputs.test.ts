// Hostile client inputs (issue 12 §5, client side), on real files in a temp dir: interpolation
// nested 20,000 deep in a Compose file and in its .env; secret, config, env_file and .env paths that
// leave the project directory (absolute, "..", through a symbolic link) with and without
// --allow-outside-files; files over their size caps (Compose and manifest files over one API
// request, secrets over 500 KiB), a FIFO that must not block the loader; YAML nested too deep.

import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCompose, type LoadComposeOptions } from '../../cli/compose/load.js';
import { interpolateString, MAX_INTERPOLATION_DEPTH } from '../../cli/compose/interpolate.js';
import { parseDotenv } from '../../cli/compose/dotenv.js';
import { ManifestError } from '../../cli/manifest/errors.js';
import { loadManifests, loadManifestText } from '../../cli/manifest/load.js';
import { MAX_YAML_NESTING, yamlStructureProblem } from '../../cli/manifest/input-limits.js';
import type { Secret } from '../../common/resources/types.js';

interface Project {
  dir: string;
  path: (name: string) => string;
  cleanup: () => void;
}

/** A temp dir holding a project directory "proj" and, beside it, a file that is not the project's. */
function project(files: Record<string, string | Buffer>): Project {
  const root = mkdtempSync(join(tmpdir(), 'tessera-compose-inputs-'));
  const dir = join(root, 'proj');
  mkdirSync(dir);
  // Not the project's file, though it is dotenv-shaped (so a .env linked to it would parse).
  writeFileSync(join(root, 'outside.txt'), 'OUTSIDE=1\n');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

function loadIn(p: Project, options: Partial<LoadComposeOptions> = {}) {
  return loadCompose([p.path('compose.yaml')], { env: {}, projectName: 'shop', ...options });
}

function refusal(fn: () => unknown): ManifestError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ManifestError) return error;
    throw error;
  }
  throw new Error('expected a ManifestError');
}

const nested = (depth: number) => `${'${X:-'.repeat(depth)}end${'}'.repeat(depth)}`;

// ---- interpolation nested deeply ----

test('interpolation nested 20,000 deep is a clear error, not a stack overflow; 32 deep still works', (t) => {
  t.is(interpolateString(nested(MAX_INTERPOLATION_DEPTH), () => undefined).value, 'end');
  const error = t.throws(() => interpolateString(nested(20_000), () => undefined));
  t.is(error.name, 'InterpolationError');
  t.regex(error.message, /nested more than 32 deep/);
  // Set or not, the expression is refused: depth is a property of the text, not of the values.
  t.throws(() => interpolateString(nested(20_000), () => 'set'), { message: /nested more than 32 deep/ });
});

test('a Compose value nested 20,000 deep names file, line, column and key', (t) => {
  const p = project({ 'compose.yaml': `services:\n  web:\n    image: busybox\n    environment:\n      DEEP: "${nested(20_000)}"\n` });
  try {
    const error = refusal(() => loadIn(p));
    t.is(error.issues.length, 1);
    t.is(
      error.message,
      `${p.path('compose.yaml')}:5:13: services.web.environment.DEEP: interpolation nested more than 32 deep (\${NAME:-\${...}} inside each other)`,
    );
  } finally {
    p.cleanup();
  }
});

test('a .env value nested 20,000 deep names the .env file, line and variable', (t) => {
  const p = project({ 'compose.yaml': 'services:\n  web:\n    image: busybox\n', '.env': `A=1\nDEEP=${nested(20_000)}\n` });
  try {
    const error = refusal(() => loadIn(p));
    t.is(error.message, `${p.path('.env')}:2:1: DEEP: interpolation nested more than 32 deep (\${NAME:-\${...}} inside each other)`);
  } finally {
    p.cleanup();
  }
  const parsed = parseDotenv(`B="${nested(20_000)}"\n`);
  t.deepEqual(
    parsed.issues.map((i) => i.line),
    [1],
  );
});

test('an unclosed double quote at the top of a long .env is one error, found in linear time', (t) => {
  const lines = ['OPEN="never closed', ...Array.from({ length: 200_000 }, (_, i) => `K${i}=value ${i}`)];
  const parsed = parseDotenv(lines.join('\n'));
  t.deepEqual(parsed.issues, [{ line: 1, message: 'OPEN: missing closing double quote (opened on line 1)' }]);
});

// ---- files outside the project directory ----

const SECRET_COMPOSE = (file: string) => `services:\n  web:\n    image: busybox\n    secrets: [token]\nsecrets:\n  token:\n    file: ${file}\n`;

test('secret, config and env_file paths outside the project directory are refused, naming key and path', (t) => {
  const p = project({
    'compose.yaml': [
      'services:',
      '  web:',
      '    image: busybox',
      '    env_file: ../outside.txt',
      '    secrets: [a, b]',
      '    configs: [c]',
      'secrets:',
      '  a:',
      '    file: /etc/hostname',
      '  b:',
      '    file: ./sub/../../outside.txt',
      'configs:',
      '  c:',
      '    file: ../outside.txt',
      '',
    ].join('\n'),
  });
  try {
    const error = refusal(() => loadIn(p));
    const lines = error.message.split('\n');
    t.is(lines.length, 4, error.message);
    const outside = join(p.dir, '..', 'outside.txt');
    t.is(
      lines[0],
      `${p.path('compose.yaml')}:4:5: services.web.env_file[0]: env_file "../outside.txt" is ${outside}, outside the project directory ${p.dir}: files are read only from the project directory (that of the first -c file) unless \`tsctl stack deploy --allow-outside-files\` is given`,
    );
    t.regex(
      lines[1] ?? '',
      /compose\.yaml:9:5: secrets\.a\.file: secret file "\/etc\/hostname" is \/etc\/hostname, outside the project directory .*--allow-outside-files/,
    );
    t.regex(
      lines[2] ?? '',
      /compose\.yaml:11:5: secrets\.b\.file: secret file "\.\/sub\/\.\.\/\.\.\/outside\.txt" is .*\/outside\.txt, outside the project directory/,
    );
    t.regex(lines[3] ?? '', /compose\.yaml:14:5: configs\.c\.file: config file "\.\.\/outside\.txt" is .*\/outside\.txt, outside the project directory/);
    // The same project with --allow-outside-files reads them.
    const allowed = loadIn(p, { allowOutsideFiles: true });
    t.is(allowed.objects.filter((o) => o.kind === 'Secret' || o.kind === 'Config').length, 3);
  } finally {
    p.cleanup();
  }
});

test('a symbolic link inside the project that leads outside is refused; one that stays inside is read', (t) => {
  const p = project({ 'compose.yaml': SECRET_COMPOSE('./link'), 'real/token': 'inside' });
  try {
    symlinkSync(join(p.dir, '..', 'outside.txt'), p.path('link'));
    const error = refusal(() => loadIn(p));
    t.regex(
      error.message,
      /compose\.yaml:7:5: secrets\.token\.file: secret file "\.\/link" leads through a symbolic link to \/.*\/outside\.txt, outside the project directory .*--allow-outside-files/,
    );
    t.is(loadIn(p, { allowOutsideFiles: true }).objects.filter((o) => o.kind === 'Secret').length, 1);
    rmSync(p.path('link'));
    symlinkSync('real/token', p.path('link'));
    const secret = loadIn(p).objects.find((o): o is Secret => o.kind === 'Secret');
    t.is(Buffer.from(secret?.spec.data ?? '', 'base64').toString(), 'inside');
  } finally {
    p.cleanup();
  }
});

test('a .env that is a symbolic link to a file outside the project is refused', (t) => {
  const p = project({ 'compose.yaml': 'services:\n  web:\n    image: busybox:${OUTSIDE}\n' });
  try {
    symlinkSync(join(p.dir, '..', 'outside.txt'), p.path('.env'));
    const error = refusal(() => loadIn(p));
    t.regex(error.message, /\.env: "\.env" leads through a symbolic link to .*outside\.txt, outside the project directory/);
    const allowed = loadIn(p, { allowOutsideFiles: true });
    t.is(allowed.objects.find((o) => o.kind === 'Service')?.spec.image, 'busybox:1');
  } finally {
    p.cleanup();
  }
});

test('an optional env_file outside the project is still refused (optional means it may be missing)', (t) => {
  const p = project({
    'compose.yaml': 'services:\n  web:\n    image: busybox\n    env_file: [{path: /etc/hostname, required: false}, {path: gone.env, required: false}]\n',
  });
  try {
    const error = refusal(() => loadIn(p));
    t.is(error.issues.length, 1);
    t.regex(error.message, /services\.web\.env_file\[0\]: env_file "\/etc\/hostname" is \/etc\/hostname, outside the project directory/);
  } finally {
    p.cleanup();
  }
});

// ---- size caps ----

test('a secret file over 500 KiB is refused by its size, naming the key; 500 KiB exactly is read', (t) => {
  const p = project({ 'compose.yaml': SECRET_COMPOSE('big'), big: Buffer.alloc(500 * 1024 + 1, 'x') });
  try {
    const error = refusal(() => loadIn(p));
    t.regex(
      error.message,
      /compose\.yaml:7:5: secrets\.token\.file: secret file \/.*\/big: 512001 bytes or more, larger than the 512000 bytes \(500 KiB\) allowed$/,
    );
    writeFileSync(p.path('big'), Buffer.alloc(500 * 1024, 'x'));
    t.is(loadIn(p).objects.filter((o) => o.kind === 'Secret').length, 1);
  } finally {
    p.cleanup();
  }
});

test('config content over 500 KiB is refused at its key', (t) => {
  const p = project({ 'compose.yaml': `services:\n  web:\n    image: busybox\n    configs: [c]\nconfigs:\n  c:\n    content: "${'y'.repeat(600 * 1024)}"\n` });
  try {
    t.regex(
      refusal(() => loadIn(p)).message,
      /compose\.yaml:7:5: configs\.c\.content: the content is 614400 bytes, larger than the 512000 bytes \(500 KiB\) a config may hold/,
    );
  } finally {
    p.cleanup();
  }
});

test('a secret that is a FIFO is refused at once, without blocking on it', (t) => {
  const p = project({ 'compose.yaml': SECRET_COMPOSE('fifo') });
  try {
    execFileSync('mkfifo', [p.path('fifo')]);
    t.regex(refusal(() => loadIn(p)).message, /secrets\.token\.file: secret file \/.*\/fifo: not a regular file/);
  } finally {
    p.cleanup();
  }
});

test('a Compose file or manifest over 4 MiB is refused before parsing, with a clear error', async (t) => {
  const big = `services:\n  web:\n    image: busybox\n# ${'z'.repeat(4 * 1024 * 1024)}\n`;
  const p = project({ 'compose.yaml': big, 'big.yaml': big });
  try {
    const error = refusal(() => loadIn(p));
    t.is(
      error.message,
      `${p.path('compose.yaml')}: refused before parsing: 4194304 bytes or more, larger than the 4194304 bytes (4 MiB) allowed (one API request's limit)`.replace(
        '4194304 bytes or more',
        `${Buffer.byteLength(big)} bytes or more`,
      ),
    );
    const manifest = await loadManifests(p.path('big.yaml')).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.true(manifest instanceof ManifestError);
    t.regex((manifest as Error).message, /big\.yaml: refused before parsing: \d+ bytes or more, larger than the 4194304 bytes \(4 MiB\) allowed/);
    t.regex(refusal(() => loadManifestText(big, 'stdin.yaml')).message, /^stdin\.yaml: refused before parsing: /);
  } finally {
    p.cleanup();
  }
});

// ---- nesting ----

test('YAML nested deeper than the limit is refused before the YAML library recurses into it', (t) => {
  const flow = `a: ${'['.repeat(2_000_000)}${']'.repeat(2_000_000)}\n`;
  const error = refusal(() => loadManifestText(flow, 'deep.yaml'));
  // `a:` is two levels (its line, its mapping value); the bracket that makes it 129 is the 127th.
  t.is(
    error.message,
    `deep.yaml:1:${3 + MAX_YAML_NESTING - 1}: YAML nested more than ${MAX_YAML_NESTING} levels deep; manifests and Compose files nest far less, so this file is refused before it is parsed`,
  );
  t.truthy(yamlStructureProblem(`a:\n${'- '.repeat(1_000_000)}x\n`), 'compact block sequences');
  t.truthy(yamlStructureProblem(Array.from({ length: 200 }, (_, i) => `${' '.repeat(i)}k:`).join('\n')), 'indented mappings');
  t.truthy(yamlStructureProblem(`{"a": ${'{"a": '.repeat(200)}1${'}'.repeat(201)}`), 'JSON');
  // Brackets in quotes, comments, block scalars and plain scalars are not nesting.
  const harmless = `a: "${'['.repeat(500)}"\nb: '${'{'.repeat(500)}'\n# ${'['.repeat(500)}\nc: |\n  ${'['.repeat(500)}\nd: x${'['.repeat(500)}\n`;
  t.is(yamlStructureProblem(harmless), undefined);
  const p = project({ 'compose.yaml': `services:\n  web:\n    image: busybox\n    command: ${'['.repeat(300)}${']'.repeat(300)}\n` });
  try {
    t.regex(refusal(() => loadIn(p)).message, /compose\.yaml:4:\d+: YAML nested more than 128 levels deep/);
  } finally {
    p.cleanup();
  }
});

// ---- found by test/unit/fuzz-client-inputs.test.ts ----

test('keys that are lists, mappings or binary are refused at the key, not turned into text', (t) => {
  const error = refusal(() =>
    loadManifestText(
      'apiVersion: tessera/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  image: busybox\n  env: {[x]: y}\n  !!binary aGk=: 1\n',
      'keys.yaml',
    ),
  );
  t.deepEqual(error.message.split('\n'), [
    'keys.yaml:6:9: YAML syntax error: a key must be a plain value (a string or number), not a list, mapping or binary data',
    'keys.yaml:7:12: YAML syntax error: a key must be a plain value (a string or number), not a list, mapping or binary data',
  ]);
});

test('a duplicate key among 60,000 is found (in linear time) and named where it is', (t) => {
  const keys = Array.from({ length: 60_000 }, (_, i) => `  k${i}: x`);
  keys.push('  k17: again');
  const p = project({ 'compose.yaml': `services:\n  web:\n    image: busybox\n    labels:\n  ${keys.join('\n  ')}\n` });
  try {
    t.is(refusal(() => loadIn(p)).message, `${p.path('compose.yaml')}:60005:5: YAML syntax error: Map keys must be unique`);
  } finally {
    p.cleanup();
  }
});

test('port ranges beyond 65535 are refused before they are expanded', (t) => {
  const p = project({
    'compose.yaml': 'services:\n  web:\n    image: busybox\n    ports: ["1-99999999999:1-99999999999"]\n    expose: ["1-99999999999", "9000-8000"]\n',
  });
  try {
    const lines = refusal(() => loadIn(p)).message.split('\n');
    t.is(lines.length, 1, 'ports are checked first; expose after them');
    t.regex(
      lines[0] ?? '',
      /compose\.yaml:4:13: services\.web\.ports\[0\]: invalid port "1-99999999999:1-99999999999": target "1-99999999999" is not a port or range/,
    );
    writeFileSync(p.path('compose.yaml'), 'services:\n  web:\n    image: busybox\n    expose: ["1-99999999999", "9000-8000"]\n');
    const expose = refusal(() => loadIn(p)).message.split('\n');
    t.is(expose.length, 2);
    t.regex(expose[0] ?? '', /services\.web\.expose\[0\]: expected a port \(at most 65535\) like 80 or 8000-8010\/udp, got "1-99999999999"/);
    t.regex(expose[1] ?? '', /services\.web\.expose\[1\]: expected a port \(at most 65535\) like 80 or 8000-8010\/udp, got "9000-8000"/);
  } finally {
    p.cleanup();
  }
});

test('100,000 unknown keys are reported as the first 100 and a count, quickly', (t) => {
  const keys = Array.from({ length: 100_000 }, (_, i) => `bogus${i}: 1`).join('\n');
  const p = project({ 'compose.yaml': `services:\n  web:\n    image: busybox\n${keys}\n` });
  try {
    const error = refusal(() => loadIn(p));
    t.is(error.issues.length, 101);
    t.regex(error.message.split('\n')[0] ?? '', /compose\.yaml:4:1: bogus0: unknown key "bogus0"/);
    t.is(error.message.split('\n').at(-1), `${p.path('compose.yaml')}: ... and 99900 more problems of this kind in this file, not shown`);
  } finally {
    p.cleanup();
  }
});
