// Compose loading end to end on files in a temp dir: interpolation, .env, env_file, merging of -c
// files, error positions, translation; the awesome-compose corpus (each file translated or rejected
// for the reason recorded below); and the key table of docs/compose.md against the schema.

import { fileURLToPath } from 'node:url';
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCompose } from '../../cli/compose/load.js';
import { interpolateString } from '../../cli/compose/interpolate.js';
import { parseDotenv } from '../../cli/compose/dotenv.js';
import { COMPOSE_KEYS } from '../../cli/compose/keys.js';
import { splitCommand } from '../../cli/compose/translate.js';
import { planDeploy, renderStackYaml } from '../../cli/commands/stack.js';
import { ManifestError } from '../../cli/manifest/errors.js';
import type { Service, StackObject } from '../../common/resources/types.js';

// The corpus lives in ../shared beside the checkout (never copied into the repo).
const CORPUS = fileURLToPath(new URL('../../../shared/corpus/compose', import.meta.url));
const SCHEMA_PATH = join(CORPUS, 'compose-spec.schema.json');
const DOC_PATH = new URL('../../docs/compose.md', import.meta.url).pathname;

function project(files: Record<string, string>): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-compose-test-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function load(files: Record<string, string>, names: string[], env: Record<string, string> = {}) {
  const p = project(files);
  try {
    return loadCompose(
      names.map((n) => join(p.dir, n)),
      { env, projectName: 'shop' },
    );
  } finally {
    p.cleanup();
  }
}

function rejection(files: Record<string, string>, names: string[], env: Record<string, string> = {}): ManifestError {
  const p = project(files);
  try {
    loadCompose(
      names.map((n) => join(p.dir, n)),
      { env, projectName: 'shop' },
    );
  } catch (error) {
    if (error instanceof ManifestError) return error;
    throw error;
  } finally {
    p.cleanup();
  }
  throw new Error('expected the files to be rejected');
}

function service(objects: readonly StackObject[], name: string): Service {
  const found = objects.find((o): o is Service => o.kind === 'Service' && o.metadata.name === name);
  if (!found) throw new Error(`no service ${name}`);
  return found;
}

// ---- interpolation ----

test('interpolation: every form of the compose-spec', (t) => {
  const env: Record<string, string> = { SET: 'v', EMPTY: '' };
  const lookup = (n: string) => env[n];
  const i = (s: string) => interpolateString(s, lookup).value;
  t.is(i('${SET}/$SET/${UNSET}'), 'v/v/');
  t.is(i('${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${UNSET:-d}'), 'd  d d');
  t.is(i('${SET:+r} ${EMPTY:+r} ${EMPTY+r} ${UNSET+r}'), 'r  r ');
  t.is(i('$$SET $${SET} cost: 5$'), '$SET ${SET} cost: 5$');
  t.is(i('${UNSET:-${SET}-x}'), 'v-x');
  t.throws(() => i('${EMPTY:?must be set}'), { message: /required variable EMPTY is empty: must be set/ });
  t.is(i('${EMPTY?must be set}'), '');
  t.throws(() => i('${UNSET?gone}'), { message: /UNSET is not set: gone/ });
  t.throws(() => i('${SET'), { message: /missing "}"/ });
  t.throws(() => i('${1BAD}'), { message: /invalid interpolation/ });
  t.deepEqual(interpolateString('$A ${B:-x} ${C}', () => undefined).unset, ['A', 'C']);
});

test('.env format: quotes, export, comments, escapes, references', (t) => {
  const r = parseDotenv(
    [
      '# comment',
      'export A=1',
      'B = two words  # trailing comment',
      "C='${A} literal'",
      'D="line\\nnext ${A}"',
      'E=${A}-${MISSING:-dflt}',
      'F',
      'G="multi',
      'line"',
      '1BAD=x',
    ].join('\n'),
    (n) => (n === 'F' ? 'from-shell' : undefined),
  );
  t.deepEqual(Object.fromEntries(r.values), {
    A: '1',
    B: 'two words',
    C: '${A} literal',
    D: 'line\nnext 1',
    E: '1-dflt',
    F: 'from-shell',
    G: 'multi\nline',
  });
  t.is(r.issues.length, 1);
  t.is(r.issues[0]?.line, 10);
});

test('splitCommand splits like a shell without expanding', (t) => {
  t.deepEqual(splitCommand(`sh -c 'echo "$HOME" a' "b c" d\\ e`), ['sh', '-c', 'echo "$HOME" a', 'b c', 'd e']);
});

// ---- loading ----

const BASE = `
services:
  web:
    image: \${REGISTRY:-docker.io}/nginx:\${TAG}
    entrypoint: /docker-entrypoint.sh
    command: ["nginx", "-g", "daemon off;"]
    environment:
      - MODE=\${MODE:-prod}
      - FROM_SHELL
    env_file: [web.env, {path: missing.env, required: false}]
    ports: ["8080:80", "9000-9001:9000-9001/udp"]
    volumes: ["data:/var/data:ro", "./site:/usr/share/nginx/html", {type: tmpfs, target: /cache, tmpfs: {size: 1m}}]
    networks:
      front:
        aliases: [www]
    secrets: [token]
    configs: [{source: conf, target: /etc/nginx/conf.d/x.conf, mode: "0440"}]
    healthcheck: {test: "wget -q -O- localhost", interval: 5s, retries: 3}
    depends_on: {api: {condition: service_healthy}}
    deploy:
      replicas: \${REPLICAS:-2}
      resources: {limits: {memory: 64M, cpus: "0.5"}}
      update_config: {parallelism: 1, order: start-first, failure_action: rollback}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 1m}
      placement: {constraints: ["node.labels.zone==a"], preferences: [{spread: node.labels.zone}], max_replicas_per_node: 1}
  api:
    image: busybox
    restart: on-failure:4
    read_only: "true"
    cap_add: [NET_ADMIN]
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 64}
    extra_hosts: ["db.local:10.0.0.5"]
    stop_signal: SIGINT
    stop_grace_period: 1m30s
    tmpfs: /run
    init: true
    tty: true
    stdin_open: "yes"
networks:
  front: {driver: overlay, ipam: {config: [{subnet: 10.20.0.0/24}]}}
volumes:
  data: {}
secrets:
  token: {file: ./token.txt}
configs:
  conf: {content: "server {}"}
`;

test('a full project: interpolation with .env and the environment, env_file, every form translated', (t) => {
  const result = load(
    {
      'compose.yaml': BASE,
      '.env': 'TAG=1.25\nREPLICAS=3\nMODE=dev\n',
      'web.env': 'FROM_FILE=yes\nMODE=file\n',
      'token.txt': 's3cret',
    },
    ['compose.yaml'],
    { MODE: 'shell-wins', FROM_SHELL: 'here' },
  );
  const web = service(result.objects, 'web');
  t.is(web.spec.image, 'docker.io/nginx:1.25');
  t.deepEqual(web.spec.command, ['/docker-entrypoint.sh']);
  t.deepEqual(web.spec.args, ['nginx', '-g', 'daemon off;']);
  // environment: beats env_file; the shell beats .env during interpolation.
  t.deepEqual(web.spec.env, { FROM_FILE: 'yes', MODE: 'shell-wins', FROM_SHELL: 'here' });
  t.is(web.spec.replicas, 3);
  t.deepEqual(
    web.spec.ports,
    [
      { target: 80, published: 8080, protocol: 'tcp', mode: 'ingress' },
      { target: 9000, published: 9000, protocol: 'udp', mode: 'ingress' },
      { target: 9001, published: 9001, protocol: 'udp', mode: 'ingress' },
    ].map((p) => p),
  );
  t.is(web.spec.mounts?.[0]?.type, 'volume');
  t.deepEqual(web.spec.mounts?.[0], { type: 'volume', source: 'data', target: '/var/data', readOnly: true });
  t.is(web.spec.mounts?.[1]?.type, 'bind');
  t.regex(web.spec.mounts?.[1]?.source ?? '', /^\/.*\/site$/);
  t.deepEqual(web.spec.mounts?.[2], { type: 'tmpfs', target: '/cache', sizeBytes: 1024 * 1024 });
  t.deepEqual(web.spec.networks, [{ name: 'front', aliases: ['www'] }]);
  t.deepEqual(web.spec.secrets, [{ source: 'token', target: 'token' }]);
  t.deepEqual(web.spec.configs, [{ source: 'conf', target: '/etc/nginx/conf.d/x.conf', mode: 0o440 }]);
  t.deepEqual(web.spec.healthcheck, { test: ['CMD-SHELL', 'wget -q -O- localhost'], intervalMs: 5000, retries: 3 });
  t.deepEqual(web.spec.dependsOn, [{ service: 'api', condition: 'service_healthy' }]);
  t.deepEqual(web.spec.resources, { limits: { memory: 64 * 1024 * 1024, cpus: 0.5 } });
  t.deepEqual(web.spec.updateConfig, { parallelism: 1, order: 'start-first', failureAction: 'rollback' });
  t.deepEqual(web.spec.restart, { condition: 'on-failure', delayMs: 5000, maxAttempts: 3, windowMs: 60_000 });
  t.deepEqual(web.spec.placement, { constraints: ['node.labels.zone==a'], preferences: [{ spread: 'node.labels.zone' }], maxReplicasPerNode: 1 });
  const api = service(result.objects, 'api');
  t.deepEqual(api.spec.restart, { condition: 'on-failure', maxAttempts: 4 });
  t.true(api.spec.readOnly);
  t.deepEqual(api.spec.ulimits, { nofile: { soft: 1024, hard: 2048 }, nproc: { soft: 64, hard: 64 } });
  t.deepEqual(api.spec.extraHosts, [{ hostname: 'db.local', address: '10.0.0.5' }]);
  t.deepEqual(api.spec.mounts, [{ type: 'tmpfs', target: '/run' }]);
  t.is(api.spec.stopGracePeriodMs, 90_000);
  t.true(api.spec.tty);
  t.true(api.spec.stdinOpen);
  // Not given: absent (false), not written as false.
  t.is(web.spec.tty, undefined);
  t.is(web.spec.stdinOpen, undefined);
  t.deepEqual(api.spec.networks, [{ name: 'default' }]);
  const kinds = result.objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  t.deepEqual(kinds, ['Config/conf', 'Network/default', 'Network/front', 'Secret/token', 'Service/api', 'Service/web', 'Volume/data']);
  const secret = result.objects.find((o) => o.kind === 'Secret');
  t.is(secret?.kind === 'Secret' ? Buffer.from(secret.spec.data, 'base64').toString() : '', 's3cret');
  const network = result.objects.find((o) => o.kind === 'Network' && o.metadata.name === 'front');
  t.deepEqual(network?.spec, { driver: 'overlay', subnets: ['10.20.0.0/24'] });
  // TAG is set by .env; nothing unset remains, so no warnings.
  t.deepEqual(result.warnings, []);
  t.regex(renderStackYaml(result.objects), /^apiVersion: tessera\/v1\nkind: Network\n[\s\S]*---\n[\s\S]*kind: Service/);
});

test('an unset variable is a warning naming file and line, a ${VAR:?} is an error there', (t) => {
  const ok = load({ 'c.yaml': 'services:\n  a:\n    image: busybox:${TAG}\n' }, ['c.yaml']);
  t.is(ok.warnings.length, 1);
  t.regex(ok.warnings[0] ?? '', /c\.yaml:3:12: variable TAG is not set/);
  const err = rejection({ 'c.yaml': 'services:\n  a:\n    image: ${IMAGE:?set IMAGE to the image to run}\n' }, ['c.yaml']);
  t.regex(err.message, /c\.yaml:3:12: services\.a\.image: required variable IMAGE is not set: set IMAGE to the image to run/);
});

test('merging -c files: mappings merge, commands are replaced, ports/volumes merge by key, lists append', (t) => {
  const base = `
services:
  web:
    image: nginx:1
    command: [a, b]
    environment: {A: "1", B: "2"}
    ports: ["8080:80", "9090:90"]
    volumes: ["data:/data", "logs:/logs"]
    dns: [1.1.1.1]
    labels: [tier=front]
    deploy: {replicas: 2, resources: {limits: {memory: 64M}}}
volumes: {data: {}, logs: {}}
`;
  const over = `
services:
  web:
    image: nginx:2
    command: c
    environment: [B=3, C=4]
    ports: ["8080:80/tcp", "7070:70"]
    volumes: [{type: tmpfs, target: /data}]
    dns: 8.8.8.8
    deploy: {resources: {limits: {cpus: "1"}}}
  extra:
    image: busybox
`;
  const result = load({ 'base.yaml': base, 'override.yaml': over }, ['base.yaml', 'override.yaml']);
  const web = service(result.objects, 'web');
  t.is(web.spec.image, 'nginx:2');
  t.deepEqual(web.spec.args, ['c']);
  t.deepEqual(web.spec.env, { A: '1', B: '3', C: '4' });
  t.deepEqual(
    web.spec.ports?.map((p) => `${p.published}:${p.target}`),
    ['8080:80', '9090:90', '7070:70'],
  );
  t.deepEqual(
    web.spec.mounts?.map((m) => `${m.type}:${m.target}`),
    ['tmpfs:/data', 'volume:/logs'],
  );
  t.deepEqual(web.spec.dns, { servers: ['1.1.1.1', '8.8.8.8'] });
  t.deepEqual(web.spec.containerLabels, { tier: 'front' });
  t.is(web.spec.replicas, 2);
  t.deepEqual(web.spec.resources?.limits, { memory: 64 * 1024 * 1024, cpus: 1 });
  t.truthy(service(result.objects, 'extra'));
});

test('errors name file, line, column and key; every problem is reported at once', (t) => {
  const err = rejection(
    {
      'c.yaml': [
        'services:',
        '  web:',
        '    image: nginx',
        '    build: .',
        '    privileged: true',
        '    ports: ["80:80:80:80"]',
        '    replicas: 3',
        '  Bad_Name:',
        '    image: busybox',
      ].join('\n'),
    },
    ['c.yaml'],
  );
  const lines = err.issues.map((i) => `${i.line}:${i.col} ${i.message}`);
  // Structure problems stop the file before its values are read, so the port comes later.
  t.is(lines.length, 1, lines.join('\n'));
  t.regex(lines[0] ?? '', /^7:5 unknown key "replicas"/);
  const portErr = rejection({ 'c.yaml': 'services:\n  web:\n    image: nginx\n    ports: ["80:80:80:80"]\n' }, ['c.yaml']);
  t.regex(portErr.message, /c\.yaml:4:13: services\.web\.ports\[0\]: invalid port "80:80:80:80"/);
  const translateErr = rejection(
    {
      'c.yaml': ['services:', '  web:', '    build: {context: ., ssh: [default]}', '    privileged: true', '  Bad_Name:', '    image: busybox'].join('\n'),
    },
    ['c.yaml'],
  );
  const found = translateErr.issues.map((i) => `${i.file.split('/').pop()}:${i.line}:${i.col} ${i.message}`);
  t.is(found.length, 3, found.join('\n'));
  t.regex(found[0] ?? '', /^c\.yaml:3:25 ssh: not supported: SSH agents and keys are not forwarded into builds/);
  t.regex(found[1] ?? '', /^c\.yaml:4:5 privileged: not supported/);
  t.regex(found[2] ?? '', /^c\.yaml:5:3 service name "Bad_Name" must be a DNS label/);
});

test('a problem in an override file points into the override file', (t) => {
  const err = rejection(
    {
      'a.yaml': 'services:\n  web:\n    image: nginx\n',
      'b.yaml': 'services:\n  web:\n    ports:\n      - target: 80\n        host_ip: 127.0.0.1\n',
    },
    ['a.yaml', 'b.yaml'],
  );
  const issue = err.issues[0];
  t.is(issue?.file.split('/').pop(), 'b.yaml');
  t.is(issue?.line, 5);
  t.regex(issue?.message ?? '', /host_ip: not supported/);
});

test('env_file that is missing and required is an error; references to undeclared objects are errors', (t) => {
  const err = rejection(
    {
      'c.yaml': 'services:\n  web:\n    image: nginx\n    env_file: nope.env\n    volumes: ["v:/v"]\n    secrets: [s]\n    networks: [n]\n',
    },
    ['c.yaml'],
  );
  const messages = err.issues.map((i) => i.message).join('\n');
  t.regex(messages, /env_file .*nope\.env does not exist/);
  t.regex(messages, /volume "v" is not declared/);
  t.regex(messages, /secret "s" is not declared/);
  t.regex(messages, /network "n" is not declared/);
});

test('a deploy without --dry-run sends what the server takes and refuses, before sending, what it cannot', (t) => {
  const simple = load({ 'c.yaml': 'services:\n  web:\n    image: nginx\n    ports: ["80:80"]\n' }, ['c.yaml']);
  const plan = planDeploy(simple.objects);
  t.true('objects' in plan);
  const kinds = 'objects' in plan ? plan.objects.map((o) => o.kind).sort() : [];
  t.deepEqual(kinds, ['Network', 'Service'], "the service and its stack's default network");
  const full = load({ 'c.yaml': BASE, '.env': 'TAG=1\n', 'web.env': '', 'token.txt': 'x' }, ['c.yaml']);
  // Everything the full project uses (secrets, configs, volumes, health checks, depends_on, …) is deployable.
  const deployable = planDeploy(full.objects);
  t.true('objects' in deployable, 'refusal' in deployable ? deployable.refusal : '');
  const syslog = load({ 'c.yaml': 'services:\n  web:\n    image: nginx\n    logging: {driver: syslog}\n' }, ['c.yaml']);
  const refused = planDeploy(syslog.objects);
  t.regex('refusal' in refused ? refused.refusal : '', /spec\.logging: .*only the json-file log driver exists/);
});

// ---- the corpus ----

/** A secret file the corpus leaves out (db/password.txt): the project is otherwise deployable. */
const SECRET_FILE_MISSING = /secret file .*\/db\/password\.txt does not exist/;

/**
 * Why each corpus project is rejected (with the files as they are in the corpus); every other one
 * must translate. Builds are planned, not refused (test/unit/compose-corpus-build.test.ts has the
 * whole table with the secret files stood in for). Keep in step with docs.
 */
const CORPUS_REJECTIONS: Record<string, RegExp> = {
  'nginx-aspnet-mysql': SECRET_FILE_MISSING,
  'nginx-flask-mysql': SECRET_FILE_MISSING,
  'nginx-golang-mysql': SECRET_FILE_MISSING,
  'nginx-golang-postgres': SECRET_FILE_MISSING,
  'pihole-cloudflared-DoH': /ipv4_address: not supported/,
  plex: /network_mode: not supported/,
  'react-express-mysql': SECRET_FILE_MISSING,
  'react-java-mysql': SECRET_FILE_MISSING,
  'sparkjava-mysql': SECRET_FILE_MISSING,
  'spring-postgres': SECRET_FILE_MISSING,
  'wasmedge-kafka-mysql': /platform: "wasi\/wasm" is not supported/,
  'wasmedge-mysql-nginx': /platform: "wasi\/wasm" is not supported/,
};

test('awesome-compose: each project translates (dry run) or is rejected for its recorded reason', (t) => {
  const root = join(CORPUS, 'awesome-compose');
  // CI always has the corpus beside the checkout: a missing one is a broken set-up, not a pass.
  t.true(existsSync(root), `the corpus is missing at ${root}`);
  let translated = 0;
  for (const dir of readdirSync(root).sort()) {
    const file = ['compose.yaml', 'compose.yml'].map((f) => join(root, dir, f)).find((p) => existsSync(p));
    if (!file) continue;
    const expected = CORPUS_REJECTIONS[dir];
    try {
      const result = loadCompose([file], { env: {}, projectName: 'corpus' });
      t.true(expected === undefined, `${dir} translated but is recorded as rejected`);
      t.true(result.objects.some((o) => o.kind === 'Service'));
      t.notThrows(() => renderStackYaml(result.objects));
      translated++;
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      t.truthy(expected, `${dir} rejected: ${error.message}`);
      if (expected) t.regex(error.message, expected, dir);
      for (const issue of error.issues) t.true(issue.line !== undefined, `${dir}: ${issue.message} has no line`);
    }
  }
  t.is(translated, 27);
});

test('build: and image: together: the build produces that image, and the service runs it (as docker compose up --build)', (t) => {
  const result = load({ 'c.yaml': 'services:\n  web:\n    image: registry.local:5000/web:1\n    build: {context: ./web}\n' }, ['c.yaml']);
  t.is(service(result.objects, 'web').spec.image, 'registry.local:5000/web:1');
  t.deepEqual(result.warnings, []);
  t.is(result.builds.length, 1);
  t.deepEqual(result.builds[0]?.request.tags, ['registry.local:5000/web:1']);
});

test('build: without image: builds an image named <stack>-<service>, which the service runs', (t) => {
  const result = load({ 'c.yaml': 'services:\n  web:\n    build: .\n    ports: ["80:80"]\n' }, ['c.yaml']);
  t.is(service(result.objects, 'web').spec.image, 'shop-web');
  t.deepEqual(result.builds[0]?.request.tags, ['shop-web']);
  t.deepEqual(result.builds[0]?.services, ['web']);
});

// ---- the key table ----

interface SchemaNode {
  [key: string]: unknown;
}

/** Every key path of the schema in the table's notation (`*` for names, `[]` for list items). */
function schemaKeys(schema: SchemaNode): string[] {
  const defs = schema['definitions'] as Record<string, SchemaNode>;
  const out = new Set<string>();
  const walk = (node: SchemaNode | undefined, path: string, stack: readonly SchemaNode[]): void => {
    if (!node || stack.includes(node)) return;
    if (typeof node['$ref'] === 'string') {
      walk(defs[node['$ref'].split('/').pop() ?? ''], path, stack);
      return;
    }
    const next = [...stack, node];
    for (const option of (node['oneOf'] as SchemaNode[] | undefined) ?? []) walk(option, path, next);
    for (const [key, child] of Object.entries((node['properties'] as Record<string, SchemaNode> | undefined) ?? {})) {
      const p = path === '' ? key : `${path}.${key}`;
      out.add(p);
      walk(child, p, next);
    }
    for (const [pattern, child] of Object.entries((node['patternProperties'] as Record<string, SchemaNode> | undefined) ?? {})) {
      if (pattern === '^x-') continue;
      // The named entries of the top-level sections (services.*, networks.*...) get rows of their own.
      if (!path.includes('.') && path !== '') out.add(`${path}.*`);
      walk(child, path === '' ? '*' : `${path}.*`, next);
    }
    if (node['items']) walk(node['items'] as SchemaNode, `${path}[]`, next);
  };
  walk(schema, '', []);
  return [...out];
}

function coveredBy(key: string): string | undefined {
  if (COMPOSE_KEYS[key]) return key;
  // A key under a rejected key (or one handled as a whole) shares its fate.
  for (let i = key.length; i > 0; i--) {
    if (key[i] !== '.' && !key.startsWith('[]', i)) continue;
    const parent = key.slice(0, i);
    const status = COMPOSE_KEYS[parent];
    if (status?.status === 'rejected' || status?.wholeKey === true) return parent;
  }
  return undefined;
}

/** The table of docs/compose.md, generated from keys.ts so it cannot drift. */
export function keyTable(keys: readonly string[]): string {
  const rows = keys.map((key) => {
    const owner = coveredBy(key) ?? key;
    const s = COMPOSE_KEYS[owner];
    const status = !s
      ? 'MISSING'
      : owner !== key
        ? `${s.status === 'rejected' ? 'rejected ' : ''}with \`${owner}\``
        : s.status === 'partial'
          ? 'partially'
          : s.status;
    return `| \`${key}\` | ${status} | ${(owner === key ? (s?.note ?? '') : '').replace(/\|/g, '\\|')} |`;
  });
  return ['| Key | Status | Notes |', '|---|---|---|', ...rows].join('\n');
}

test('the key table covers every key of the compose-spec schema, and docs/compose.md shows it', (t) => {
  t.true(existsSync(SCHEMA_PATH), `the compose-spec schema is missing at ${SCHEMA_PATH}`);
  const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as SchemaNode;
  const keys = [...schemaKeys(schema)].sort();
  t.deepEqual(
    keys.filter((k) => !coveredBy(k)),
    [],
    'keys missing from cli/compose/keys.ts',
  );
  t.deepEqual(
    Object.keys(COMPOSE_KEYS).filter((k) => !keys.includes(k)),
    [],
    'table rows that are not schema keys',
  );
  const table = keyTable(keys);
  const doc = readFileSync(DOC_PATH, 'utf8');
  const begin = '<!-- key table: generated by test/unit/compose.test.ts (UPDATE_COMPOSE_DOC=1) -->';
  const end = '<!-- end of key table -->';
  const expected = `${begin}\n${table}\n${end}`;
  if (process.env['UPDATE_COMPOSE_DOC'] === '1') {
    const [head = '', rest = ''] = doc.split(begin);
    writeFileSync(DOC_PATH, `${head}${expected}${rest.split(end)[1] ?? ''}`);
  }
  t.true(readFileSync(DOC_PATH, 'utf8').includes(expected), 'docs/compose.md is out of date: run UPDATE_COMPOSE_DOC=1 npx ava test/unit/compose.test.ts');
});

/** A minimal document that contains `path` (table notation), for checking each key's fate. */
function documentFor(path: string): Record<string, unknown> {
  const doc: Record<string, unknown> = { services: { s: { image: 'busybox' } } };
  const segments = path.replace(/\[\]/g, '.[]').split('.');
  let node: Record<string, unknown> | unknown[] = doc;
  segments.forEach((segment, index) => {
    const last = index === segments.length - 1;
    const next = segments[index + 1];
    const value: unknown = last ? 'x' : next === '[]' ? [] : {};
    const key = segment === '*' ? (index === 1 ? 's' : 'k') : segment;
    if (Array.isArray(node)) {
      node.push(value);
      node = value as Record<string, unknown>;
      return;
    }
    const existing = node[key];
    if (existing !== undefined && !last) {
      node = existing as Record<string, unknown>;
      return;
    }
    node[key] = value;
    node = value as Record<string, unknown>;
  });
  return doc;
}

test("every key marked rejected is rejected by the translator, with the table's reason", async (t) => {
  const { rejectedKeys } = await import('../../cli/compose/translate.js');
  for (const [path, status] of Object.entries(COMPOSE_KEYS)) {
    if (status.status !== 'rejected') continue;
    const issues = rejectedKeys(documentFor(path));
    const leaf =
      path
        .split(/\.|\[\]/)
        .filter(Boolean)
        .pop() ?? '';
    t.true(
      issues.some((i) => i.message === `${leaf}: not supported: ${status.note ?? ''}`),
      `${path}: ${JSON.stringify(issues)}`,
    );
  }
});

test('keys marked honoured show up in the output (one project using each top-level service key)', (t) => {
  const result = load({ 'compose.yaml': BASE, '.env': 'TAG=1\n', 'web.env': '', 'token.txt': 'x' }, ['compose.yaml']);
  const specs = result.objects.filter((o): o is Service => o.kind === 'Service').map((s) => s.spec);
  const has = (field: string) => specs.some((s) => Object.hasOwn(s, field));
  // Compose key → the ServiceSpec field it lands in.
  const landing: Record<string, string> = {
    image: 'image',
    entrypoint: 'command',
    command: 'args',
    environment: 'env',
    env_file: 'env',
    ports: 'ports',
    volumes: 'mounts',
    tmpfs: 'mounts',
    networks: 'networks',
    secrets: 'secrets',
    configs: 'configs',
    healthcheck: 'healthcheck',
    depends_on: 'dependsOn',
    deploy: 'replicas',
    restart: 'restart',
    read_only: 'readOnly',
    cap_add: 'capAdd',
    ulimits: 'ulimits',
    extra_hosts: 'extraHosts',
    stop_signal: 'stopSignal',
    stop_grace_period: 'stopGracePeriodMs',
    init: 'init',
    tty: 'tty',
    stdin_open: 'stdinOpen',
  };
  for (const [key, field] of Object.entries(landing)) {
    t.not(COMPOSE_KEYS[`services.*.${key}`]?.status, 'rejected', key);
    t.true(has(field), `${key} → spec.${field}`);
  }
  const more = load(
    {
      'c.yaml': `services:
  a:
    image: busybox
    working_dir: /w
    user: "1000"
    hostname: h
    cap_drop: [ALL]
    sysctls: {net.core.somaxconn: 1024}
    dns: 1.1.1.1
    dns_search: example.com
    dns_opt: [ndots:2]
    labels: {a: b}
    logging: {driver: json-file, options: {max-size: 10m}}
    expose: ["3000"]
    container_name: alpha
    cpus: 0.5
    mem_limit: 32m
    mem_reservation: 16m
    pids_limit: 100
    scale: 2
    deploy: {endpoint_mode: dnsrr, labels: {team: x}, rollback_config: {parallelism: 2}}
`,
    },
    ['c.yaml'],
  );
  const a = service(more.objects, 'a');
  t.is(a.spec.workdir, '/w');
  t.is(a.spec.user, '1000');
  t.is(a.spec.hostname, 'h');
  t.deepEqual(a.spec.capDrop, ['ALL']);
  t.deepEqual(a.spec.sysctls, { 'net.core.somaxconn': '1024' });
  t.deepEqual(a.spec.dns, { servers: ['1.1.1.1'], search: ['example.com'], options: ['ndots:2'] });
  t.deepEqual(a.spec.containerLabels, { a: 'b' });
  t.deepEqual(a.spec.logging, { driver: 'json-file', options: { 'max-size': '10m' } });
  t.deepEqual(a.spec.expose, [{ port: 3000, protocol: 'tcp' }]);
  t.deepEqual(a.spec.networks, [{ name: 'default', aliases: ['alpha'] }]);
  t.deepEqual(a.spec.resources, { limits: { cpus: 0.5, memory: 32 * 1024 * 1024, pids: 100 }, reservations: { memory: 16 * 1024 * 1024 } });
  t.is(a.spec.replicas, 2);
  t.is(a.spec.endpointMode, 'dnsrr');
  t.deepEqual(a.metadata.labels, { team: 'x' });
  t.deepEqual(a.spec.rollbackConfig, { parallelism: 2 });
});

test('an unquoted mode like 0440 is octal, as Docker reads it (not decimal 440)', (t) => {
  const { objects } = load(
    {
      'compose.yaml': `
services:
  web:
    image: busybox
    secrets: [{source: token, target: token, mode: 0440}]
    configs: [{source: conf, target: /etc/x.conf, mode: 0o600}]
secrets:
  token: {file: ./token}
configs:
  conf: {file: ./conf}
`,
      token: 'x',
      conf: 'y',
    },
    ['compose.yaml'],
  );
  const web = service(objects, 'web');
  t.is(web.spec.secrets?.[0]?.mode, 0o440);
  t.is(web.spec.configs?.[0]?.mode, 0o600);
});
