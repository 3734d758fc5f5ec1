import test from 'ava';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatPath, loadManifestFile, loadManifestPath, loadManifestText, ManifestError, type ManifestIssue } from '../../cli/manifest/load.js';
import type { Service, StackObject } from '../../common/resources/types.js';

const FIXTURES = 'test/fixtures/manifests';

/** The loader returns any stack object; these tests load services only. */
function services(objects: readonly StackObject[]): Service[] {
  return objects.map((o) => {
    if (o.kind !== 'Service') throw new Error(`expected a Service, got ${o.kind}`);
    return o;
  });
}

function rejection(fn: () => unknown): readonly ManifestIssue[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ManifestError) return error.issues;
    throw error;
  }
  throw new Error('expected a ManifestError');
}

async function asyncRejection(promise: Promise<unknown>): Promise<readonly ManifestIssue[]> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ManifestError) return error.issues;
    throw error;
  }
  throw new Error('expected a ManifestError');
}

async function messageOf(file: string): Promise<string> {
  try {
    await loadManifestFile(join(FIXTURES, file));
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`${file} loaded`);
}

test('the hello example loads', async (t) => {
  const [hello, ...rest] = services(await loadManifestFile('examples/hello/stack.yaml'));
  t.is(rest.length, 0);
  t.like(hello, {
    kind: 'Service',
    metadata: { name: 'hello', stack: 'hello' },
    spec: {
      image: 'busybox:latest',
      replicas: 3,
      ports: [{ target: 80, published: 8080, protocol: 'tcp' }],
      resources: { limits: { memory: 32 * 1024 * 1024 } },
      restart: { condition: 'any' },
    },
  });
  t.regex(hello!.spec.command!.join(' '), /httpd -f -p 80/);
});

test('multi-document files, empty documents skipped', async (t) => {
  const objects = services(await loadManifestFile(join(FIXTURES, 'good-multi.yaml')));
  t.deepEqual(
    objects.map((o) => o.metadata.name),
    ['web', 'worker'],
  );
  t.is(objects[1]!.spec.replicas, 0);
  t.deepEqual(objects[0]!.spec.placement?.constraints, ['node.role==worker', 'node.labels.zone==a']);
  t.deepEqual(loadManifestText('', 'empty.yaml'), []);
  t.deepEqual(loadManifestText('# nothing\n---\n---\n', 'empty.yaml'), []);
});

test('YAML syntax errors name file, line and column', async (t) => {
  t.is(
    await messageOf('bad-yaml-syntax.yaml'),
    'test/fixtures/manifests/bad-yaml-syntax.yaml:8:3: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]',
  );
  const [issue] = rejection(() => loadManifestText('a: 1\na: 2\n', 'dup-keys.yaml'));
  t.like(issue, { file: 'dup-keys.yaml', line: 2, col: 1 });
  t.regex(issue!.message, /^YAML syntax error: Map keys must be unique/);
});

test('unknown fields point at the key', async (t) => {
  t.regex(
    await messageOf('bad-unknown-field.yaml'),
    /^test\/fixtures\/manifests\/bad-unknown-field\.yaml:8:3: spec\.replica: unknown field "replica"; did you mean "replicas"\?/,
  );
});

test('wrong types point at the value, and every issue is listed', async (t) => {
  t.is(
    await messageOf('bad-types.yaml'),
    [
      'test/fixtures/manifests/bad-types.yaml:7:13: spec.replicas: expected an integer >= 0, got "three"',
      'test/fixtures/manifests/bad-types.yaml:9:11: spec.env.PORT: expected a string, got number 8080 (quote it to make it a string: "8080")',
    ].join('\n'),
  );
});

test('bad quantity, bad constraint, unsupported kind', async (t) => {
  t.regex(await messageOf('bad-quantity.yaml'), /bad-quantity\.yaml:9:22: spec\.resources\.limits\.memory: invalid memory quantity "64Mx"/);
  t.regex(
    await messageOf('bad-constraint.yaml'),
    /bad-constraint\.yaml:10:9: spec\.placement\.constraints\[0\]: invalid placement constraint "node\.role==boss"/,
  );
  t.is(await messageOf('bad-kind.yaml'), 'test/fixtures/manifests/bad-kind.yaml:3:7: kind: unsupported kind "Deployment"; supported kinds: "Service"');
});

test('duplicates in one file are rejected, pointing at both', async (t) => {
  t.is(
    await messageOf('bad-duplicate.yaml'),
    'test/fixtures/manifests/bad-duplicate.yaml:12:9: metadata.name: duplicate Service "twice": already defined at test/fixtures/manifests/bad-duplicate.yaml:5:9',
  );
  // The same name in different stacks is two objects.
  const text = ['name: a\n  stack: one', 'name: a\n  stack: two']
    .map((meta) => `apiVersion: tessera/v1\nkind: Service\nmetadata:\n  ${meta}\nspec:\n  image: x\n`)
    .join('---\n');
  t.is(loadManifestText(text, 'stacks.yaml').length, 2);
});

test('a missing field points at its parent', (t) => {
  const [issue] = rejection(() => loadManifestText('apiVersion: tessera/v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  replicas: 1\n', 'f.yaml'));
  t.like(issue, { line: 5, col: 1, path: ['spec', 'image'] });
});

test('all-or-nothing: one bad document rejects the whole file', async (t) => {
  const issues = await asyncRejection(loadManifestFile(join(FIXTURES, 'bad-second-document.yaml')));
  t.is(issues.length, 1);
  t.like(issues[0], { line: 13, col: 1, path: ['spec', 'image'] });
});

test('JSON manifests and kind: List (the output of get -o json|yaml) load', (t) => {
  const object = { apiVersion: 'tessera/v1', kind: 'Service', metadata: { name: 'j' }, spec: { image: 'x' } };
  t.is(loadManifestText(JSON.stringify(object), 'one.json')[0]!.metadata.name, 'j');
  const list = { apiVersion: 'tessera/v1', kind: 'List', items: [object, { ...object, metadata: { name: 'k' } }] };
  t.deepEqual(
    loadManifestText(JSON.stringify(list), 'list.json').map((o) => o.metadata.name),
    ['j', 'k'],
  );
  const [issue] = rejection(() =>
    loadManifestText(
      `apiVersion: tessera/v1\nkind: List\nitems:\n  - apiVersion: tessera/v1\n    kind: Service\n    metadata: {name: j}\n    spec: {image: x, bogus: 1}\n`,
      'list.yaml',
    ),
  );
  t.like(issue, { line: 7, col: 22, path: ['spec', 'bogus'] });
});

test('directories: recursive, sorted, duplicates across files, all-or-nothing', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-manifest-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const svc = (name: string) => `apiVersion: tessera/v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  image: x\n`;
  await mkdir(join(dir, 'sub'));
  await writeFile(join(dir, 'b.yaml'), svc('b'));
  await writeFile(join(dir, 'a.yml'), svc('a'));
  await writeFile(join(dir, 'sub', 'c.json'), JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Service', metadata: { name: 'c' }, spec: { image: 'x' } }));
  await writeFile(join(dir, 'notes.txt'), 'not a manifest');
  t.deepEqual(
    (await loadManifestPath(dir)).map((o) => o.metadata.name),
    ['a', 'b', 'c'],
  );

  await writeFile(join(dir, 'sub', 'd.yaml'), svc('a'));
  const issues = await asyncRejection(loadManifestPath(dir));
  t.is(issues.length, 1);
  t.regex(issues[0]!.message, /duplicate Service "a": already defined at .*a\.yml:4:9/);

  const empty = await mkdtemp(join(tmpdir(), 'tessera-manifest-empty-'));
  t.teardown(() => rm(empty, { recursive: true, force: true }));
  t.regex((await asyncRejection(loadManifestPath(empty)))[0]!.message, /no manifest files/);
  t.regex((await asyncRejection(loadManifestPath(join(dir, 'missing.yaml'))))[0]!.message, /^cannot read: /);
});

test("the fixture directory as a whole is rejected with every file's problems", async (t) => {
  const issues = await asyncRejection(loadManifestPath(FIXTURES));
  const files = new Set(issues.map((i) => i.file.replace(/^.*\//, '')));
  t.true(
    [
      'bad-constraint.yaml',
      'bad-duplicate.yaml',
      'bad-kind.yaml',
      'bad-quantity.yaml',
      'bad-second-document.yaml',
      'bad-types.yaml',
      'bad-unknown-field.yaml',
      'bad-yaml-syntax.yaml',
    ].every((f) => files.has(f)),
  );
  t.false(files.has('good-multi.yaml'));
});

test('paths are printed like code', (t) => {
  t.is(formatPath(['spec', 'ports', 0, 'published']), 'spec.ports[0].published');
  t.is(formatPath(['metadata', 'labels', 'example.com/zone']), 'metadata.labels["example.com/zone"]');
});
