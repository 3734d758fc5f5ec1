import test from 'ava';
import {
  InvalidReferenceError,
  formatReference,
  isLoopbackRegistry,
  normaliseReference,
  parseReference,
  registryApiHost,
} from '../../common/images/reference.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

const cases: [string, string][] = [
  ['busybox', 'docker.io/library/busybox:latest'],
  ['busybox:1.36', 'docker.io/library/busybox:1.36'],
  ['library/busybox', 'docker.io/library/busybox:latest'],
  ['team/app', 'docker.io/team/app:latest'],
  ['docker.io/busybox', 'docker.io/library/busybox:latest'],
  ['index.docker.io/library/busybox:1', 'docker.io/library/busybox:1'],
  ['127.0.0.1:5000/busybox:v1', '127.0.0.1:5000/busybox:v1'],
  ['localhost/a/b/c', 'localhost/a/b/c:latest'],
  ['localhost:5000/app', 'localhost:5000/app:latest'],
  ['registry.example.com/a_b/c-d.e__f:tag-1.0', 'registry.example.com/a_b/c-d.e__f:tag-1.0'],
  [`busybox@${DIGEST}`, `docker.io/library/busybox@${DIGEST}`],
  [`127.0.0.1:5000/app:v2@${DIGEST}`, `127.0.0.1:5000/app:v2@${DIGEST}`],
  ['[::1]:5000/app', '[::1]:5000/app:latest'],
];

for (const [input, expected] of cases) {
  test(`normalises ${input}`, (t) => {
    t.is(normaliseReference(input), expected);
  });
}

test('splits a reference with port, tag and digest into its parts', (t) => {
  t.deepEqual(parseReference(`127.0.0.1:5000/team/app:v2@${DIGEST}`), {
    registry: '127.0.0.1:5000',
    repository: 'team/app',
    tag: 'v2',
    digest: DIGEST,
  });
  t.deepEqual(parseReference(`app@${DIGEST}`), { registry: 'docker.io', repository: 'library/app', digest: DIGEST });
});

test('format is the inverse of parse for normalised references', (t) => {
  for (const [, normalised] of cases) t.is(formatReference(parseReference(normalised)), normalised);
});

const invalid: [string, RegExp][] = [
  ['', /empty/],
  ['Busybox', /lowercase/],
  ['busybox:', /tag "" is not valid/],
  ['busybox:-x', /tag "-x"/],
  ['busybox@sha256:abc', /digest/],
  ['busybox@md5:d41d8cd98f00b204e9800998ecf8427e', /digest/],
  ['a//b', /repository component ""/],
  ['host:5000/', /missing|component/],
  [' busybox', /whitespace/],
  ['bad_host:x:5000/app', /not valid|registry/],
];

for (const [input, message] of invalid) {
  test(`rejects ${JSON.stringify(input)}`, (t) => {
    const error = t.throws(() => parseReference(input), { instanceOf: InvalidReferenceError });
    t.regex(error.message, message);
  });
}

test('docker.io is reached at its API host; loopback registries are recognised', (t) => {
  t.is(registryApiHost('docker.io'), 'registry-1.docker.io');
  t.is(registryApiHost('127.0.0.1:5000'), '127.0.0.1:5000');
  t.true(isLoopbackRegistry('127.0.0.1:5000'));
  t.true(isLoopbackRegistry('127.1.2.3'));
  t.true(isLoopbackRegistry('localhost:1234'));
  t.true(isLoopbackRegistry('[::1]:5000'));
  t.false(isLoopbackRegistry('docker.io'));
  t.false(isLoopbackRegistry('127.0.0.1.example.com'));
  t.false(isLoopbackRegistry('10.0.0.1:5000'));
});
