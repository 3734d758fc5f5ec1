// Every Kubernetes manifest of the corpus is either translated to native objects or rejected with
// messages that each name a field, a file and a line. The corpus lives in ../shared beside the
// checkout and is read in place (never copied into the repo).
import test from 'ava';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { formatIssue, formatPath, loadManifests, ManifestError, type LoadResult, type ManifestIssue } from '../../cli/manifest/load.js';
import type { Secret, Service, StackObject } from '../../common/resources/types.js';

const CORPUS = fileURLToPath(new URL('../../../shared/corpus/k8s/examples', import.meta.url));

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) return yamlFiles(full);
      return /\.ya?ml$/.test(entry.name) ? [full] : [];
    })
    .sort();
}

type Outcome = { ok: true; result: LoadResult } | { ok: false; issues: readonly ManifestIssue[] };

async function outcome(path: string, lenient = false): Promise<Outcome> {
  try {
    return { ok: true, result: await loadManifests(path, { lenient }) };
  } catch (error) {
    if (error instanceof ManifestError) return { ok: false, issues: error.issues };
    throw error;
  }
}

const corpus = (name: string) => join(CORPUS, name);
const service = (objects: readonly StackObject[], name: string) => objects.find((o): o is Service => o.kind === 'Service' && o.metadata.name === name);

test('every corpus manifest is translated, or rejected with messages naming file, line and field', async (t) => {
  const files = yamlFiles(CORPUS);
  t.true(files.length >= 140, `corpus has ${files.length} files`);
  let translated = 0;
  for (const file of files) {
    const result = await outcome(file);
    if (result.ok) {
      translated++;
      continue;
    }
    t.true(result.issues.length > 0, relative(CORPUS, file));
    for (const issue of result.issues) {
      const text = formatIssue(issue);
      t.is(issue.file, file, text);
      t.true(issue.line !== undefined && issue.line > 0, `no line: ${text}`);
      // A field is named, or the file is not YAML at all (the corpus has a duplicate key).
      t.true((issue.path !== undefined && issue.path.length > 0) || issue.message.startsWith('YAML syntax error'), `no field named: ${text}`);
      t.regex(text, /^\/.+\.ya?ml:\d+:\d+: [A-Za-z]/, text);
    }
  }
  // Some of each: a regression that rejects (or accepts) everything shows here.
  t.true(translated >= 30, `${translated} of ${files.length} translated`);
  t.true(files.length - translated >= 60, `${files.length - translated} of ${files.length} rejected`);
});

test('with --lenient, every rejection by refusal becomes warnings; what remains are malformed inputs', async (t) => {
  for (const file of yamlFiles(CORPUS)) {
    const result = await outcome(file, true);
    if (!result.ok) {
      for (const issue of result.issues) t.notRegex(issue.message, /^not supported/, formatIssue(issue));
    }
  }
});

test('guestbook-go redis-master Deployment: the native service', async (t) => {
  const result = await outcome(corpus('web/guestbook-go/redis-master-controller.yaml'));
  if (!result.ok) return t.fail(result.issues.map(formatIssue).join('\n'));
  t.deepEqual(result.result.objects, [
    {
      apiVersion: 'tessera/v1',
      kind: 'Service',
      metadata: { name: 'redis-master', labels: { app: 'redis', role: 'master' } },
      spec: {
        image: 'redis:7.2',
        mode: 'replicated',
        replicas: 1,
        restart: { condition: 'any' },
        // Kubernetes' default 25% surge rounds up to 1, 25% unavailable down to 0.
        updateConfig: { parallelism: 1, order: 'start-first' },
        containerLabels: { app: 'redis', role: 'master' },
        expose: [{ port: 6379, protocol: 'tcp' }],
      },
    },
  ]);
});

test('guestbook frontend Deployment: requests become reservations, env is kept', async (t) => {
  const result = await outcome(corpus('web/guestbook/frontend-deployment.yaml'));
  if (!result.ok) return t.fail(result.issues.map(formatIssue).join('\n'));
  t.like(service(result.result.objects, 'frontend'), {
    spec: {
      image: 'gcr.io/google-samples/gb-frontend:v5',
      replicas: 3,
      env: { GET_HOSTS_FROM: 'dns' },
      resources: { reservations: { cpus: 0.1, memory: 100 * 1024 * 1024 } },
    },
  });
});

test('a pod with a sidecar is refused at the second container, with its line', async (t) => {
  const file = corpus('_archived/storage/redis/redis-master.yaml');
  const result = await outcome(file);
  t.false(result.ok);
  if (result.ok) return;
  t.deepEqual(result.issues.map(formatIssue), [
    `${file}:24:7: spec.containers[1]: not supported (one container per pod: each Tessera task runs one container; sidecars are not supported (2 containers))`,
  ]);
});

test('a LoadBalancer Service is refused at spec.type', async (t) => {
  const file = corpus('web/guestbook-go/guestbook-service.yaml');
  const result = await outcome(file);
  if (result.ok) return t.fail('translated');
  t.true(
    result.issues
      .map(formatIssue)
      .includes(`${file}:13:9: spec.type: not supported (there is no load balancer provider; use NodePort to publish on every node)`),
  );
});

test('a Secret becomes one native Secret per key; a Namespace becomes nothing', async (t) => {
  const secret = await outcome(corpus('_archived/volumes/azure_file/secret/azure-secret.yaml'));
  if (!secret.ok) return t.fail(secret.issues.map(formatIssue).join('\n'));
  t.deepEqual(
    secret.result.objects.map((o) => [o.kind, o.metadata.name, (o as Secret).spec.data]),
    [
      ['Secret', 'azure-secret.azurestorageaccountname', 'azhzdGVzdA=='],
      ['Secret', 'azure-secret.azurestorageaccountkey', (secret.result.objects[1] as Secret).spec.data],
    ],
  );
  const namespace = await outcome(corpus('_archived/cluster-dns/namespace-dev.yaml'));
  t.true(namespace.ok && namespace.result.objects.length === 0);
});

test('guestbook all-in-one: refused for the missing nodePort; with --lenient, Services joined to their Deployments', async (t) => {
  const file = corpus('web/guestbook/all-in-one/guestbook-all-in-one.yaml');
  const strict = await outcome(file);
  if (strict.ok) return t.fail('translated');
  t.deepEqual(
    strict.issues.map((i) => formatPath(i.path ?? [])),
    ['spec.ports[0].nodePort'],
  );
  const lenient = await outcome(file, true);
  if (!lenient.ok) return t.fail(lenient.issues.map(formatIssue).join('\n'));
  t.deepEqual(
    lenient.result.warnings.map((w) => formatPath(w.path ?? [])),
    ['spec.ports[0].nodePort'],
  );
  t.deepEqual(
    lenient.result.objects.map((o) => `${o.kind}/${o.metadata.name}`),
    ['Service/redis-master', 'Service/redis-replica', 'Service/frontend'],
  );
  t.deepEqual(service(lenient.result.objects, 'redis-master')?.spec.expose, [{ port: 6379, protocol: 'tcp' }]);
  // The frontend's NodePort lost its publication (the warning), so nothing is published.
  t.is(service(lenient.result.objects, 'frontend')?.spec.ports, undefined);
});
