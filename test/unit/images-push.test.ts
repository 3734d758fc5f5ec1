// `tsctl image push` pieces that need no registry: which name an image is pushed as, how an upload
// Location is resolved and checked, how the digest joins its query, and the push progress lines.
// The push itself against a real registry: test/integration/images-push.test.ts.
import test from 'ava';

import { mountSource, pushTarget } from '../../agent/images/push-target.js';
import { uploadLocation, withDigest } from '../../agent/images/registry-push.js';
import { InvalidReferenceError, namesRegistry } from '../../common/images/reference.js';
import { PUSH_WORDS, PullProgressDisplay } from '../../cli/commands/image.js';

const DIGEST = `sha256:${'d'.repeat(64)}`;

test('a name names its registry only when its first component looks like a host', (t) => {
  for (const name of ['127.0.0.1:5000/app', 'localhost/app', 'registry.example/team/app:v1', 'docker.io/library/busybox', '[::1]:5000/app'])
    t.true(namesRegistry(name), name);
  for (const name of ['busybox', 'busybox:latest', 'team/app', `app@${DIGEST}`]) t.false(namesRegistry(name), name);
});

test('the push target: TARGET when given (tag defaults to latest), else the reference, which must name a registry', (t) => {
  t.deepEqual(pushTarget('busybox:latest', '127.0.0.1:5000/team/busybox:v1'), { registry: '127.0.0.1:5000', repository: 'team/busybox', tag: 'v1' });
  t.deepEqual(pushTarget('busybox', 'registry.example/busybox'), { registry: 'registry.example', repository: 'busybox', tag: 'latest' });
  t.deepEqual(pushTarget('registry.example/team/app:v2', undefined), { registry: 'registry.example', repository: 'team/app', tag: 'v2' });
  t.deepEqual(pushTarget(DIGEST, 'docker.io/someone/app:v1'), { registry: 'docker.io', repository: 'someone/app', tag: 'v1' });

  const noRegistry = t.throws(() => pushTarget('busybox:1.36', undefined), { instanceOf: InvalidReferenceError });
  t.regex(noRegistry.message, /names no registry \(it would go to Docker Hub\); give a target with a registry, e\.g\. registry\.example:5000\/busybox:1\.36/);
  t.throws(() => pushTarget('busybox', 'team/busybox:v1'), { message: /the target names no registry/ });
  t.throws(() => pushTarget('busybox', `127.0.0.1:5000/app@${DIGEST}`), { message: /names a tag, not a digest/ });
  t.throws(() => pushTarget(`127.0.0.1:5000/app@${DIGEST}`, undefined), { message: /pushed under a tag/ });
  t.throws(() => pushTarget(DIGEST, undefined), { message: /bare digest/ });
  t.throws(() => pushTarget('busybox', '127.0.0.1:5000/Team/App'), { instanceOf: InvalidReferenceError });
});

test('blobs are mounted only from another repository of the same registry the image came from', (t) => {
  const target = pushTarget('x', 'registry.example/team/app:v1');
  t.is(mountSource('registry.example/origin/app:v1', target), 'origin/app');
  t.is(mountSource('registry.example/team/app:v0', target), undefined, 'the same repository: the blobs are there or not');
  t.is(mountSource('other.example/origin/app:v1', target), undefined, 'another registry');
  t.is(mountSource(DIGEST, target), undefined, 'an image without a name');
  t.is(mountSource('busybox:latest', target), undefined);
});

test('an upload Location is resolved against the request, over http(s) only, never downgraded from https', (t) => {
  const post = 'https://registry.example/v2/team/app/blobs/uploads/';
  t.is(uploadLocation('/v2/team/app/blobs/uploads/abc?_state=x%3D', post).toString(), 'https://registry.example/v2/team/app/blobs/uploads/abc?_state=x%3D');
  t.is(uploadLocation('https://storage.example/upload/1#frag', post).toString(), 'https://storage.example/upload/1');
  t.is(uploadLocation('/up/1', 'http://127.0.0.1:5000/v2/a/blobs/uploads/').toString(), 'http://127.0.0.1:5000/up/1');
  t.throws(() => uploadLocation(null, post), { message: /202 without a Location header/ });
  t.throws(() => uploadLocation('http://registry.example/up/1', post), { message: /over plain HTTP .* refused/ });
  t.throws(() => uploadLocation('file:///etc/passwd', post), { message: /scheme file:/ });
  t.throws(() => uploadLocation('x'.repeat(9000), post), { message: /longer than 8192 characters/ });
  t.throws(() => uploadLocation('http://[bad', post), { message: /is not a URL/ });
});

test('the digest joins the query the registry put in the Location, which is kept as it is', (t) => {
  const base = new URL('http://127.0.0.1:5000/v2/a/blobs/uploads/u1');
  t.is(withDigest(base, DIGEST), `http://127.0.0.1:5000/v2/a/blobs/uploads/u1?digest=sha256%3A${'d'.repeat(64)}`);
  const stated = new URL('http://127.0.0.1:5000/v2/a/blobs/uploads/u1?_state=a%2Bb%3D&x=1');
  t.is(withDigest(stated, DIGEST), `http://127.0.0.1:5000/v2/a/blobs/uploads/u1?_state=a%2Bb%3D&x=1&digest=sha256%3A${'d'.repeat(64)}`);
});

test('push progress without a terminal: pushing at each quarter, then pushed; blobs the registry has say so', (t) => {
  let text = '';
  const display = new PullProgressDisplay(false, (s) => (text += s), PUSH_WORDS);
  const total = 4 * 1024 * 1024;
  for (let i = 0; i <= 8; i++) display.update({ digest: DIGEST, kind: 'layer', status: 'pushing', current: (total * i) / 8, total });
  display.update({ digest: DIGEST, kind: 'layer', status: 'pushed', current: total, total });
  display.update({ digest: `sha256:${'e'.repeat(64)}`, kind: 'layer', status: 'exists', current: 5, total: 5 });
  display.update({ digest: `sha256:${'f'.repeat(64)}`, kind: 'config', status: 'pushed', current: 5, total: 5 });
  t.is(
    text,
    [
      'dddddddddddd: pushing 0 B / 4.0 MiB',
      'dddddddddddd: pushing 1.0 MiB / 4.0 MiB',
      'dddddddddddd: pushing 2.0 MiB / 4.0 MiB',
      'dddddddddddd: pushing 3.0 MiB / 4.0 MiB',
      'dddddddddddd: pushing 4.0 MiB / 4.0 MiB',
      'dddddddddddd: pushed',
      'eeeeeeeeeeee: already in the registry',
      '',
    ].join('\n'),
  );
});
