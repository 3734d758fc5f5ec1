// The awesome-compose corpus (../shared/corpus, read in place, never copied) dry-run with builds
// (issue 18): every project is planned — its objects translated and its build graph made (which
// services build, from which context and Dockerfile, under which names, which share a build) — or
// refused by name for what Tessera cannot do. Planning covers the build graph, not the contents of
// Dockerfiles: the corpus ships no build contexts and no Dockerfiles, so the test also checks that a
// real deploy would stop at exactly those missing inputs before building or applying anything.
//
// The corpus also leaves out the secret files some projects read (db/password.txt); the test reads
// a stand-in for exactly the secret and config files the Compose file declares and the corpus lacks
// (listed in the table), since what those files hold has nothing to do with planning.

import { fileURLToPath } from 'node:url';
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parse } from 'yaml';
import { loadCompose, type ComposeProject } from '../../cli/compose/load.js';
import { prepareBuilds } from '../../cli/compose/build-run.js';
import { readCapped } from '../../cli/manifest/input-limits.js';
import { ManifestError } from '../../cli/manifest/errors.js';
import { renderTable } from '../../cli/output/table.js';

const ROOT = fileURLToPath(new URL('../../../shared/corpus/compose/awesome-compose', import.meta.url));

/** The projects refused, and why: every one by the name of the key Tessera cannot honour. */
const REFUSED: Record<string, RegExp> = {
  'pihole-cloudflared-DoH': /services\.\w+\.networks\.dns-net\.ipv4_address: ipv4_address: not supported/,
  plex: /services\.plex\.network_mode: network_mode: not supported/,
  'wasmedge-kafka-mysql': /services\.etl\.platform: platform: "wasi\/wasm" is not supported/,
  'wasmedge-mysql-nginx': /services\.backend\.platform: platform: "wasi\/wasm" is not supported/,
};

interface Row {
  project: string;
  result: string;
  services: number;
  builds: string;
  standIns: string[];
}

type Dict = Record<string, unknown>;
const isDict = (v: unknown): v is Dict => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The corpus projects with their Compose file. */
function projects(): Array<{ name: string; file: string }> {
  return readdirSync(ROOT)
    .sort()
    .flatMap((name) => {
      const file = ['compose.yaml', 'compose.yml'].map((f) => join(ROOT, name, f)).find((p) => existsSync(p));
      return file ? [{ name, file }] : [];
    });
}

/** The secret and config files a Compose file declares that the corpus does not have. */
function missingDeclaredFiles(file: string): Set<string> {
  const doc = parse(readFileSync(file, 'utf8')) as unknown;
  const out = new Set<string>();
  for (const top of ['secrets', 'configs']) {
    const defs = isDict(doc) && isDict(doc[top]) ? doc[top] : {};
    for (const def of Object.values(defs)) {
      if (!isDict(def) || typeof def['file'] !== 'string') continue;
      const path = resolve(file, '..', def['file']);
      if (!existsSync(path)) out.add(path);
    }
  }
  return out;
}

/** Services of the file that have build:, from the YAML itself (not from our translation). */
function servicesWithBuild(file: string): string[] {
  const doc = parse(readFileSync(file, 'utf8')) as unknown;
  const services = isDict(doc) && isDict(doc['services']) ? doc['services'] : {};
  return Object.entries(services)
    .filter(([, s]) => isDict(s) && s['build'] !== undefined)
    .map(([name]) => name);
}

function plan(file: string, standIns: Set<string>): ComposeProject {
  return loadCompose([file], {
    env: {},
    projectName: 'corpus',
    readFile: (path, maxBytes) => (standIns.has(path) ? { ok: true, data: Buffer.from('corpus-stand-in\n') } : readCapped(path, maxBytes)),
  });
}

test('awesome-compose dry-run with builds: at least 35 of 39 projects plan, the rest are refused by name', (t) => {
  // CI always has the corpus beside the checkout: a missing one is a broken set-up, not a pass.
  t.true(existsSync(ROOT), `the corpus is missing at ${ROOT}`);
  const rows: Row[] = [];
  let planned = 0;
  let withBuild = 0;
  for (const { name, file } of projects()) {
    const dir = join(ROOT, name);
    const standIns = missingDeclaredFiles(file);
    const building = servicesWithBuild(file);
    if (building.length > 0) withBuild++;
    const row: Row = { project: name, result: '', services: 0, builds: '-', standIns: [...standIns].map((p) => relative(dir, p)) };
    rows.push(row);
    try {
      const project = plan(file, standIns);
      t.is(REFUSED[name], undefined, `${name} planned but is recorded as refused`);
      planned++;
      row.result = 'planned';
      row.services = project.objects.filter((o) => o.kind === 'Service').length;
      // The build graph: every service with build: is in exactly one job, and runs that job's image.
      t.deepEqual(project.builds.flatMap((j) => j.services).sort(), [...building].sort(), name);
      for (const job of project.builds) {
        t.true(job.contextDir.startsWith(`${dir}/`) || job.contextDir === dir, `${name}: context ${job.contextDir} is outside the project`);
        for (const service of job.services) t.true(job.request.tags.includes(job.imageOf[service] ?? ''), `${name}: ${service}`);
      }
      // The corpus ships no contexts: a real deploy stops there, naming each, before building anything.
      const { ready, problems } = prepareBuilds(project.builds);
      t.is(ready.length, 0, name);
      t.is(problems.length, project.builds.length, name);
      row.builds =
        project.builds.length === 0
          ? '-'
          : project.builds
              .map((j) => `${j.services.join('+')}<-${relative(dir, j.contextDir) || '.'}${j.request.target ? `@${j.request.target}` : ''}`)
              .join(' ');
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      const expected = REFUSED[name];
      t.truthy(expected, `${name} refused: ${error.message}`);
      if (expected) t.regex(error.message, expected, name);
      // Every refusal names the file, line and key; none is about build:.
      for (const issue of error.issues) {
        t.true(issue.line !== undefined && issue.file === file, `${name}: ${issue.message}`);
        t.false(issue.path?.includes('build') ?? false, `${name}: refused for a build key: ${issue.message}`);
      }
      const reasons = [...new Set(error.issues.map((i) => String(i.path?.at(-1) ?? i.message)))];
      row.result = `refused (${reasons.join(', ')})`;
    }
  }
  t.log(
    `\n${renderTable(
      ['project', 'result', 'services', 'builds (services<-context@target)', 'secret files stood in for'],
      rows.map((r) => [r.project, r.result, String(r.services || '-'), r.builds, r.standIns.join(', ') || '-']),
    )}${planned} of ${rows.length} planned; ${withBuild} projects build images`,
  );
  t.is(rows.length, 39);
  t.is(withBuild, 27);
  t.true(planned >= 35, `${planned} planned`);
  t.deepEqual(
    rows.filter((r) => r.result !== 'planned').map((r) => r.project),
    Object.keys(REFUSED).sort((a, b) => a.localeCompare(b)),
  );
});

test('awesome-compose: services with the same build share one (nginx-nodejs-redis web1 and web2)', (t) => {
  const file = join(ROOT, 'nginx-nodejs-redis', 'compose.yaml');
  t.true(existsSync(file), `the corpus is missing at ${file}`);
  const project = plan(file, new Set());
  const web = project.builds.find((j) => j.services.includes('web1'));
  t.deepEqual(web?.services, ['web1', 'web2']);
  t.deepEqual(web?.request.tags, ['corpus-web1', 'corpus-web2']);
  t.is(project.builds.length, 2);
});
