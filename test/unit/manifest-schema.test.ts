import test from 'ava';
import { MAX_ISSUES_PER_OBJECT, validateObject, validateStackObject, type ValidationIssue } from '../../common/resources/schema.js';
import { capErrorMessage, MAX_ERROR_MESSAGE_BYTES, MAX_FILE_OBJECT_BYTES, MAX_REPLICAS, quoteName } from '../../common/resources/limits.js';
import { formatConstraint, parseConstraint, type PlacementConstraint } from '../../common/resources/constraints.js';

function service(spec: Record<string, unknown>, metadata: Record<string, unknown> = { name: 'web' }): Record<string, unknown> {
  return { apiVersion: 'tessera/v1', kind: 'Service', metadata, spec: { image: 'tessera.local/busybox:latest', ...spec } };
}

function issuesOf(input: unknown): ValidationIssue[] {
  const result = validateObject(input);
  if (result.ok) throw new Error(`expected issues, got a valid object ${JSON.stringify(result.object)}`);
  return result.issues;
}

function onlyIssue(input: unknown): ValidationIssue {
  const issues = issuesOf(input);
  if (issues.length !== 1) throw new Error(`expected one issue, got ${JSON.stringify(issues)}`);
  return issues[0]!;
}

test('a full manifest is normalised to the stored form', (t) => {
  const result = validateObject(
    service(
      {
        command: ['sh', '-c', 'echo hi'],
        env: { A: 'b' },
        replicas: 3,
        ports: [
          { target: 80, published: 8080 },
          { target: 53, protocol: 'udp' },
        ],
        resources: { limits: { memory: '32Mi', cpus: '500m', pids: 64 }, reservations: { memory: 1048576, cpus: 0.25 } },
        placement: { constraints: ['node.labels.zone == a', 'node.role!=manager'] },
        restart: { condition: 'on-failure', delay: '5s', maxDelay: '1m', maxAttempts: 3 },
        stopGracePeriod: '10s',
        user: 1000,
      },
      { name: 'web', stack: 'shop', labels: { tier: 'front' } },
    ),
  );
  t.deepEqual(result, {
    ok: true,
    object: {
      apiVersion: 'tessera/v1',
      kind: 'Service',
      metadata: { name: 'web', stack: 'shop', labels: { tier: 'front' } },
      spec: {
        image: 'tessera.local/busybox:latest',
        command: ['sh', '-c', 'echo hi'],
        env: { A: 'b' },
        user: '1000',
        replicas: 3,
        ports: [
          { target: 80, published: 8080, protocol: 'tcp' },
          { target: 53, protocol: 'udp' },
        ],
        resources: { limits: { memory: 32 * 1024 * 1024, cpus: 0.5, pids: 64 }, reservations: { memory: 1048576, cpus: 0.25 } },
        placement: { constraints: ['node.labels.zone==a', 'node.role!=manager'] },
        restart: { condition: 'on-failure', delayMs: 5000, maxDelayMs: 60_000, maxAttempts: 3 },
        stopGracePeriodMs: 10_000,
      },
    },
  });
});

test('replicas defaults to 1', (t) => {
  const result = validateObject(service({}));
  t.true(result.ok);
  t.is(result.ok && result.object.spec.replicas, 1);
});

test('the normalised form validates to itself, so the API server can re-check what the CLI sent', (t) => {
  const first = validateObject(
    service(
      {
        restart: { delay: '1s' },
        stopGracePeriod: '2s',
        resources: { limits: { memory: '1Gi', cpus: 2 } },
      },
      { name: 'web', uid: 'u-1', resourceVersion: '7', generation: 2, createdAt: '2024-01-01T00:00:00Z' },
    ),
  );
  if (!first.ok) return t.fail(JSON.stringify(first.issues));
  const second = validateObject(JSON.parse(JSON.stringify(first.object)));
  t.deepEqual(second, first);
});

test('status is accepted and dropped, so get -o yaml output can be applied again', (t) => {
  const result = validateObject({ ...service({}), status: { runningTasks: 1, desiredTasks: 1 } });
  t.true(result.ok);
  t.false(result.ok && 'status' in result.object);
});

test('unknown fields are errors at their own path, with a suggestion', (t) => {
  const issue = onlyIssue(service({ replica: 3 }));
  t.deepEqual(issue.path, ['spec', 'replica']);
  t.true(issue.unknownField);
  t.regex(issue.message, /^unknown field "replica"; did you mean "replicas"\? \(known fields here: image, /);
  t.deepEqual(onlyIssue({ ...service({}), extra: 1 }).path, ['extra']);
  t.deepEqual(onlyIssue(service({ resources: { limits: { memroy: '1Gi' } } })).path, ['spec', 'resources', 'limits', 'memroy']);
});

test('wrong types say what was expected and what was found', (t) => {
  t.deepEqual(onlyIssue(service({ replicas: 'three' })), { path: ['spec', 'replicas'], message: 'expected an integer >= 0, got "three"' });
  t.deepEqual(onlyIssue(service({ replicas: -1 })).message, 'expected an integer >= 0, got number -1');
  t.deepEqual(onlyIssue(service({ replicas: 1.5 })).message, 'expected an integer >= 0, got number 1.5');
  t.regex(onlyIssue(service({ command: 'sh -c x' })).message, /^expected a list of strings, e\.g\. .*, got "sh -c x"$/);
  t.deepEqual(onlyIssue(service({ command: ['sleep', 5] })).path, ['spec', 'command', 1]);
  t.regex(onlyIssue(service({ ports: ['8080:80'] })).message, /^expected a mapping like \{target: 80, published: 8080\}, got "8080:80"$/);
  t.regex(onlyIssue(service({ ports: [{ target: 70000 }] })).message, /^expected a port number between 1 and 65535, got number 70000$/);
  t.regex(onlyIssue(service({ ports: [{ target: 80, protocol: 'sctp' }] })).message, /^expected one of "tcp", "udp", got "sctp"$/);
  t.regex(onlyIssue(service({ restart: { condition: 'always' } })).message, /^expected one of "any", "on-failure", "none", got "always"$/);
  t.regex(onlyIssue(service({ workdir: 'app' })).message, /absolute path/);
  t.deepEqual(onlyIssue(service({}, { name: 'web', labels: { a: true } })).path, ['metadata', 'labels', 'a']);
});

test('tty and stdinOpen: booleans kept in the stored form, anything else refused at its path', (t) => {
  const result = validateObject(service({ tty: true, stdinOpen: true }));
  t.true(result.ok);
  if (result.ok) t.like(result.object.spec, { tty: true, stdinOpen: true });
  const absent = validateObject(service({}));
  t.true(absent.ok);
  if (absent.ok) t.false('tty' in absent.object.spec || 'stdinOpen' in absent.object.spec);
  t.deepEqual(onlyIssue(service({ tty: 'yes' })).path, ['spec', 'tty']);
  t.deepEqual(onlyIssue(service({ stdinOpen: 1 })).path, ['spec', 'stdinOpen']);
});

test('env values must be strings: a number names the key and is not coerced', (t) => {
  const issue = onlyIssue(service({ env: { PORT: 8080, DEBUG: 'yes' } }));
  t.deepEqual(issue.path, ['spec', 'env', 'PORT']);
  t.is(issue.message, 'expected a string, got number 8080 (quote it to make it a string: "8080")');
  t.regex(onlyIssue(service({ env: { DEBUG: true } })).message, /got boolean true/);
  t.deepEqual(onlyIssue(service({ env: { 'A=B': 'x' } })).path, ['spec', 'env', 'A=B']);
});

test('names are DNS labels', (t) => {
  for (const name of ['Web', 'web_1', '-web', 'web-', 'a'.repeat(64), '']) {
    const issue = onlyIssue(service({}, { name }));
    t.deepEqual(issue.path, ['metadata', 'name'], name);
    t.regex(issue.message, /^expected a DNS label/);
  }
  t.true(validateObject(service({}, { name: 'a'.repeat(63), stack: 'my-stack-2' })).ok);
  t.deepEqual(onlyIssue(service({}, { name: 'ok', stack: 'Bad' })).path, ['metadata', 'stack']);
});

test('missing required fields', (t) => {
  const issues = issuesOf({ apiVersion: 'tessera/v1', kind: 'Service', metadata: {}, spec: {} });
  t.deepEqual(
    issues.map((i) => i.path),
    [
      ['metadata', 'name'],
      ['spec', 'image'],
    ],
  );
  t.regex(issues[1]!.message, /^required field is missing/);
});

test('bad quantities carry the parser message', (t) => {
  const issue = onlyIssue(service({ resources: { limits: { memory: '64Mx' } } }));
  t.deepEqual(issue.path, ['spec', 'resources', 'limits', 'memory']);
  t.regex(issue.message, /^invalid memory quantity "64Mx": expected a number with an optional unit Ki, Mi, Gi, Ti, K, M, G, T/);
  t.regex(onlyIssue(service({ resources: { limits: { memory: 0 } } })).message, /expected more than 0/);
  t.regex(onlyIssue(service({ resources: { limits: { cpus: 'lots' } } })).message, /^invalid CPU quantity "lots"/);
  t.regex(onlyIssue(service({ restart: { delay: 5 } })).message, /needs a unit/);
  t.regex(onlyIssue(service({ stopGracePeriod: [] })).message, /^expected a duration .*, got a list$/);
});

test('cross-field rules: duplicate published ports, reservations above limits, two spellings', (t) => {
  const dup = onlyIssue(
    service({
      ports: [
        { target: 80, published: 8080 },
        { target: 81, published: 8080 },
      ],
    }),
  );
  t.deepEqual(dup.path, ['spec', 'ports', 1, 'published']);
  t.regex(dup.message, /published port 8080\/tcp is already used by ports\[0\]/);
  // The same number over two protocols is two different ports.
  t.true(
    validateObject(
      service({
        ports: [
          { target: 53, published: 53 },
          { target: 53, published: 53, protocol: 'udp' },
        ],
      }),
    ).ok,
  );
  t.regex(
    onlyIssue(service({ resources: { limits: { memory: '64Mi' }, reservations: { memory: '128Mi' } } })).message,
    /reservation 128Mi is more than the limit 64Mi/,
  );
  t.regex(onlyIssue(service({ restart: { delay: '1s', delayMs: 1000 } })).message, /either delay or delayMs/);
});

test('placement constraints', (t) => {
  t.deepEqual(parseConstraint('node.labels.zone==a'), { ok: true, value: { field: 'label', key: 'zone', op: '==', value: 'a' } });
  t.deepEqual(parseConstraint('node.hostname != n1'), { ok: true, value: { field: 'hostname', op: '!=', value: 'n1' } });
  t.deepEqual(parseConstraint('node.role==worker'), { ok: true, value: { field: 'role', op: '==', value: 'worker' } });
  t.deepEqual(parseConstraint('node.id==abc'), { ok: true, value: { field: 'id', op: '==', value: 'abc' } });
  t.deepEqual(parseConstraint('node.labels.example.com/zone==x=y'), { ok: true, value: { field: 'label', key: 'example.com/zone', op: '==', value: 'x=y' } });
  for (const bad of ['node.role==boss', 'node.foo==1', 'zone=a', 'node.labels.==a', 'node.labels.zone==', '', 'node.labels.zone==a==b', 'node.labels.-x==a']) {
    t.false(parseConstraint(bad).ok, bad);
  }
  const messageOf = (text: string): string => {
    const parsed = parseConstraint(text);
    return parsed.ok ? '' : parsed.message;
  };
  t.is(messageOf('node.labels.==a'), 'invalid placement constraint "node.labels.==a": missing label key after "node.labels."');
  t.is(messageOf('node.labels.zone==a==b'), 'invalid placement constraint "node.labels.zone==a==b": more than one == or != operator');
  t.is(formatConstraint((parseConstraint(' node.labels.zone != a ') as { value: PlacementConstraint }).value), 'node.labels.zone!=a');
  const issue = onlyIssue(service({ placement: { constraints: ['node.labels.zone==a', 'node.role==boss'] } }));
  t.deepEqual(issue.path, ['spec', 'placement', 'constraints', 1]);
  t.regex(issue.message, /node\.role is "manager" or "worker", got "boss"/);
});

test('unsupported kinds and versions', (t) => {
  const issues = issuesOf({ apiVersion: 'apps/v1', kind: 'Deployment' });
  t.deepEqual(issues, [
    { path: ['apiVersion'], message: 'expected "tessera/v1", got "apps/v1"' },
    { path: ['kind'], message: 'unsupported kind "Deployment"; supported kinds: "Service"' },
  ]);
  t.regex(onlyIssue({ apiVersion: 'tessera/v1', kind: 'Task' }).message, /managed by Tessera/);
  t.regex(onlyIssue({ apiVersion: 'tessera/v1' }).message, /^required field is missing; supported kinds/);
  t.deepEqual(onlyIssue({ ...service({}), apiVersion: 'tessera/v2' }).path, ['apiVersion']);
  t.regex(onlyIssue([]).message, /^expected a mapping with apiVersion, kind, metadata and spec, got a list$/);
  t.regex(onlyIssue('text').message, /got "text"$/);
});

test('all issues are reported, not only the first', (t) => {
  const issues = issuesOf(service({ replicas: 'x', foo: 1, env: { A: 1 }, ports: [{ target: 0 }] }, { name: 'Bad' }));
  t.is(issues.length, 5);
});

test('a placement preference must spread over a node label', (t) => {
  const issue = onlyIssue(service({ placement: { preferences: [{ spread: 'zone' }] } }));
  t.deepEqual(issue.path, ['spec', 'placement', 'preferences', 0, 'spread']);
  t.regex(issue.message, /expected node\.labels\.KEY/);
  const ok = validateObject(service({ placement: { preferences: [{ spread: ' node.labels.zone ' }] } }));
  t.true(ok.ok);
});

test('a job may not restart on success: restart condition any is refused for job modes', (t) => {
  const issue = onlyIssue(service({ mode: 'replicated-job', restart: { condition: 'any' } }));
  t.deepEqual(issue.path, ['spec', 'restart', 'condition']);
  t.regex(issue.message, /runs to completion and restarts only failed tasks: use on-failure or none/);
  t.true(validateObject(service({ mode: 'global-job', restart: { condition: 'on-failure', maxAttempts: 3 } })).ok);
});

// ---- size limits (issue 12 §5) ----

test('replicas: at most 100000, the same limit as Scale; 1e6, 2^53-1, -1, 1.5 and "3" are refused', (t) => {
  const ok = validateObject(service({ replicas: MAX_REPLICAS }));
  t.true(ok.ok);
  for (const replicas of [MAX_REPLICAS + 1, 1_000_000, Number.MAX_SAFE_INTEGER]) {
    const issue = onlyIssue(service({ replicas }));
    t.deepEqual(issue.path, ['spec', 'replicas']);
    t.regex(issue.message, /expected at most 100000, the most replicas a service may have/);
  }
  for (const replicas of [-1, 1.5, '3']) t.regex(onlyIssue(service({ replicas })).message, /expected an integer >= 0/);
});

test('an unknown key of a megabyte: no "did you mean" (which cost 3.9 s per MB), the key quoted shortened', (t) => {
  const key = 'x'.repeat(1024 * 1024);
  const issue = onlyIssue(service({ [key]: 1 }));
  t.true(issue.unknownField);
  t.is(issue.path[1], key, 'the path keeps the key itself, so a locator can find it in the file');
  t.true(issue.message.length < 1024, `message of ${issue.message.length} characters`);
  t.true(issue.message.startsWith(`unknown field "${'x'.repeat(32)}"…"${'x'.repeat(32)}" (1048576 characters)`));
  t.notRegex(issue.message, /did you mean/);
  // A long key that a short typo would match gets no hint either; a short typo still does.
  t.notRegex(onlyIssue(service({ [`imagee${'-'.repeat(64)}`]: 1 })).message, /did you mean/);
  t.regex(onlyIssue(service({ imagee: 'x' })).message, /did you mean "image"\?/);
});

test('a mapping of many unknown keys is reported with a bounded number of issues', (t) => {
  const spec: Record<string, unknown> = {};
  for (let i = 0; i < 100_000; i++) spec[`k${i}`] = i;
  const issues = issuesOf(service(spec));
  t.is(issues.length, MAX_ISSUES_PER_OBJECT + 1);
  t.is(issues.at(-1)!.message, `${100_000 - MAX_ISSUES_PER_OBJECT} more problem(s) in this object not listed`);
});

test('a Secret or Config over 500 KiB is refused by the schema, so the CLI refuses it too', (t) => {
  const data = (bytes: number) => Buffer.alloc(bytes, 1).toString('base64');
  const object = (kind: string, bytes: number) => ({ apiVersion: 'tessera/v1', kind, metadata: { name: 'big' }, spec: { data: data(bytes) } });
  for (const kind of ['Secret', 'Config']) {
    t.true(validateStackObject(object(kind, MAX_FILE_OBJECT_BYTES)).ok, `${kind} of exactly 500 KiB`);
    const result = validateStackObject(object(kind, MAX_FILE_OBJECT_BYTES + 1));
    t.false(result.ok);
    if (!result.ok) {
      t.deepEqual(
        result.issues.map((i) => i.path),
        [['spec', 'data']],
      );
      t.regex(result.issues[0]!.message, new RegExp(`${kind} big holds 512001 bytes; at most 512000 \\(500 KiB\\)`));
    }
  }
});

test('a constraint with a long run of spaces is parsed in linear time (it backtracked quadratically)', (t) => {
  // 400,000 spaces inside the value took minutes before.
  const spaces = ' '.repeat(400_000);
  const inside = parseConstraint(`node.labels.a==x${spaces}y`);
  t.true(inside.ok && inside.value.value === `x${spaces}y`, 'spaces inside the value are kept');
  t.deepEqual(parseConstraint(` node.role == worker${spaces}`), { ok: true, value: { field: 'role', op: '==', value: 'worker' } });
  const bad = parseConstraint(`node.labels.a==x\ny`);
  t.false(bad.ok);
  if (!bad.ok) t.regex(bad.message, /a value cannot contain a line break/);
  const long = parseConstraint(`node.colour==${'x'.repeat(100_000)}`);
  t.false(long.ok);
  if (!long.ok) t.true(long.message.length < 1024, 'the constraint is quoted shortened');
});

test('error messages are cut at 4 KiB of UTF-8 on a character boundary, saying how much was cut', (t) => {
  t.is(capErrorMessage('short'), 'short');
  const long = `${'é'.repeat(3000)}${'x'.repeat(10_000)}`;
  const capped = capErrorMessage(long);
  t.true(Buffer.byteLength(capped) <= MAX_ERROR_MESSAGE_BYTES);
  const cut = /… \[(\d+) more bytes of this message cut\]$/.exec(capped);
  t.truthy(cut);
  const kept = capped.slice(0, capped.indexOf('… ['));
  t.true(long.startsWith(kept));
  t.is(Buffer.byteLength(kept) + Number(cut![1]), Buffer.byteLength(long), 'kept + cut = the whole message');
  t.is(quoteName('web'), '"web"');
});

test('a "__proto__" key in a mapping is refused, not silently dropped; "constructor" is an ordinary key', (t) => {
  const input = JSON.parse(
    '{"apiVersion":"tessera/v1","kind":"Service","metadata":{"name":"web","labels":{"__proto__":"x"}},' +
      '"spec":{"image":"b","env":{"__proto__":"p","constructor":"c"},"sysctls":{"__proto__":{"polluted":1}}}}',
  ) as unknown;
  const issues = issuesOf(input);
  t.deepEqual(
    issues.map((i) => i.path),
    [
      ['metadata', 'labels', '__proto__'],
      ['spec', 'env', '__proto__'],
      ['spec', 'sysctls', '__proto__'],
    ],
  );
  t.regex(issues[0]!.message, /"__proto__" cannot be used as a key/);
  t.is(({} as Record<string, unknown>)['polluted'], undefined);
  const ok = validateObject(service({ env: { constructor: 'c', toString: 't' } }));
  t.true(ok.ok && ok.object.spec.env?.['constructor'] === 'c');
});

test('a NUL byte in a command, an argument or an environment value is refused (execve would cut it short)', (t) => {
  for (const spec of [{ command: ['sh', 'a\0b'] }, { args: ['\0'] }, { env: { A: 'x\0y' } }]) {
    t.regex(onlyIssue(service(spec)).message, /expected no NUL byte/);
  }
});
