// tsctl's identity commands against the real API server over real mutual TLS on 127.0.0.1: an admin
// context issues a viewer's certificate with `cluster user add` (key made here, only the CSR sent,
// the real CA issuing), the viewer's context file then reads but may not change anything, and
// `cluster audit` prints what was refused with every field escaped. No cluster, no containers.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { ApiCallError, type ApiClient } from '../../cli/client.js';
import { escapeControl, formatAuditJson, formatAuditTable, objectsCell } from '../../cli/commands/audit-table.js';
import { addUser } from '../../cli/commands/user-add.js';
import { readContext } from '../../cli/context.js';
import { openClient } from '../../cli/with-client.js';
import { parseIdentity } from '../../common/identity/certificate.js';
import { issueUserCertificate } from '../../control-plane/ca/issue.js';
import { openAudit } from '../../daemon/manager-identity.js';
import { freePort } from '../helpers/free-port.js';
import { serveMtlsApi } from '../helpers/mtls-api.js';
import type { TestPki } from '../helpers/test-pki.js';
import { tsctlWithContext as tsctl, writeUserContext } from '../helpers/tsctl-context.js';

interface Fixture {
  pki: TestPki;
  dir: string;
  address: string;
  /** The IssueUserCertificate requests as the server received them. */
  issued: Array<{ name: string; role: string; csrPem: string; validityMs: number }>;
  /** A context file holding an admin's certificate for this server. */
  adminContext: string;
  /** Serials the server treats as revoked. */
  revoked: Set<string>;
}

async function startFixture(t: { teardown(fn: () => Promise<void>): void }): Promise<Fixture> {
  const issued: Fixture['issued'] = [];
  const revoked = new Set<string>();
  let audit: Awaited<ReturnType<typeof openAudit>> | undefined;
  const { pki, dir, address } = await serveMtlsApi(t, {
    prefix: 'tessera-cli-identity-',
    isRevoked: (serial) => revoked.has(serial),
    afterClose: async () => audit?.close(),
    deps: async (api) => {
      const { pki } = api;
      audit = await openAudit(join(api.dir, 'audit', 'audit.log'), 'm1', () => {});
      return {
        managers: () => [api.address()],
        identity: {
          // The real issuer with the test CA, as tsd's identityApi calls it.
          issueUserCertificate: async (req) => {
            issued.push(structuredClone(req));
            const certPem = await issueUserCertificate(pki.ca, req.csrPem, { name: req.name, role: req.role, clusterId: pki.clusterId });
            return { certChainPem: certPem, trustedRootPems: [pki.ca.certPem], clusterId: pki.clusterId };
          },
          // Node removal needs tsd's revocation state and node health (daemon/manager-identity.ts); a stand-in answers here.
          removeNode: async () => ['0a1b', '2c3d'],
          // Rotation runs across tsd's managers and nodes (test/security/); a stand-in answers as the real one does.
          prepareRoleChange: async () => {},
          rotateCa: async (statusOnly) =>
            statusOnly ? { state: 'idle', message: 'no root CA rotation is running' } : { state: 'started', message: 'every node renews now' },
        },
        audit: audit.audit,
        readAudit: audit.readAudit,
      };
    },
  });
  const f = { pki, dir, address, issued, revoked };
  return { ...f, adminContext: await writeUserContext(f, 'ada', 'admin') };
}

async function clientFor(t: { teardown(fn: () => void): void }, contextFile: string): Promise<ApiClient> {
  const client = openClient(undefined, await readContext(contextFile));
  t.teardown(() => client.close());
  return client;
}

const service = (name: string) => JSON.stringify({ apiVersion: 'tessera/v1', kind: 'Service', metadata: { name, stack: 'app' }, spec: { image: 'busybox' } });

test('user add: the key stays here, the file is 0600 and a working context; it is not overwritten without --force', async (t) => {
  const f = await startFixture(t);
  const admin = await clientFor(t, f.adminContext);
  const output = join(f.dir, 'vic.tessera.json');
  const lines = await addUser(admin, 'vic', { role: 'viewer', output });
  t.true(
    lines.some((l) => l.includes(`TESSERA_CONTEXT=${output} tsctl get services`)),
    lines.join('\n'),
  );

  t.is((await stat(output)).mode & 0o777, 0o600);
  const context = await readContext(output);
  if (!context?.tls) return t.fail('the written context has no certificate');
  t.deepEqual(context.servers, [f.address]);
  t.is(context.server, f.address);
  t.is(context.tls.user, 'vic');
  t.is(context.tls.clusterId, f.pki.clusterId);
  t.deepEqual(context.tls.trustedRootPems, [f.pki.ca.certPem]);
  const subject = parseIdentity(context.tls.certChainPem);
  t.like(subject, { cn: 'vic', ou: 'viewer', o: f.pki.clusterId });

  // What reached the server: a CSR, and nothing of the private key.
  t.is(f.issued.length, 1);
  const sent = JSON.stringify(f.issued[0]);
  const keyBody = context.tls.keyPem.replace(/-----[^-]+-----|\s/g, '');
  t.true(f.issued[0]!.csrPem.includes('BEGIN CERTIFICATE REQUEST'));
  t.false(sent.includes('PRIVATE KEY'));
  t.false(sent.includes(keyBody));
  t.false(sent.includes(keyBody.slice(0, 40)));

  const again = await t.throwsAsync(addUser(admin, 'vic', { role: 'viewer', output }));
  t.regex(again.message, /exists; choose another --output, or pass --force/);
  t.is(f.issued.length, 1, 'refused before asking the CA');
  await writeFile(output, 'old', { mode: 0o644 });
  await addUser(admin, 'vic', { role: 'viewer', output, force: true });
  t.is((await stat(output)).mode & 0o777, 0o600);
  t.not(await readFile(output, 'utf8'), 'old');
});

test('a viewer context lists but may not apply: PERMISSION_DENIED naming the role; the audit table escapes what was sent', async (t) => {
  const f = await startFixture(t);
  const admin = await clientFor(t, f.adminContext);
  const output = join(f.dir, 'vic.tessera.json');
  await addUser(admin, 'vic', { role: 'viewer', output });

  const viewer = await clientFor(t, output);
  t.deepEqual((await viewer.list({ kind: 'Service', allStacks: true })).objectsJson, []);
  // A name no valid object has: an escape sequence and a right-to-left override, as a hostile user would send.
  const hostile = 'web\x1b[2J\u202eevil';
  const refused = await t.throwsAsync(viewer.apply({ objectsJson: [service(hostile)] }), { instanceOf: ApiCallError });
  t.is((refused as ApiCallError).code, grpc.status.PERMISSION_DENIED);
  t.regex(refused.message, /^permission denied: user:vic \(viewer\) may not call Apply: viewers have read-only access/);

  const { entriesJson } = await admin.auditLog({ limit: 10, caller: 'vic' });
  t.is(entriesJson.length, 1);
  const table = formatAuditTable(entriesJson);
  // No control character but the newlines between rows, and no bidi override, reaches the terminal.
  t.false(/[\p{Cc}\p{Cf}]/u.test(table.replaceAll('\n', '')), JSON.stringify(table));
  t.true(table.includes('service/app/web\\x1b[2J\\u{202e}evil'), table);
  t.true(table.includes('user:vic (viewer)'), table);
  t.true(table.includes('PERMISSION_DENIED: user:vic (viewer) may not call Apply'), table);
  t.regex(table.split('\n')[0]!, /^TIME\s+CALLER\s+METHOD\s+OBJECTS\s+RESULT$/);
});

test('tsctl with a certificate context: get, node rm, cluster audit and ca --rotate over mutual TLS', async (t) => {
  const f = await startFixture(t);
  const viewerContext = await writeUserContext(f, 'val', 'viewer');
  const admin = await clientFor(t, f.adminContext);
  await admin.apply({ objectsJson: [service('web')] });

  const get = await tsctl(viewerContext, ['get', 'services']);
  t.is(get.code, 0, get.stderr);
  t.regex(get.stdout, /web/);

  const rm = await tsctl(f.adminContext, ['node', 'rm', 'n1', '--force']);
  t.is(rm.code, 0, rm.stderr);
  t.is(rm.stdout, 'node/n1 removed; 2 certificates revoked\n');

  const denied = await tsctl(viewerContext, ['node', 'rm', 'n1']);
  t.is(denied.code, 1);
  t.regex(denied.stderr, /^error: permission denied: user:val \(viewer\) may not call RemoveNode/);

  const audit = await tsctl(f.adminContext, ['cluster', 'audit']);
  t.is(audit.code, 0, audit.stderr);
  t.regex(audit.stdout, /user:ada \(admin\)\s+Apply\s+service\/app\/web\s+ok/);
  t.regex(audit.stdout, /user:ada \(admin\)\s+RemoveNode\s+node\/n1\s+ok/);
  const json = await tsctl(f.adminContext, ['cluster', 'audit', '-o', 'json', '--caller', 'val']);
  t.is(json.code, 0, json.stderr);
  const entries = json.stdout
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as { method: string; result: { code?: string } });
  t.deepEqual(
    entries.map((e) => [e.method, e.result.code]),
    [['RemoveNode', 'PERMISSION_DENIED']],
  );

  const rotate = await tsctl(f.adminContext, ['cluster', 'ca', '--rotate']);
  t.is(rotate.code, 0);
  t.regex(rotate.stdout, /CA rotation started: every node renews now/);
  const state = await tsctl(f.adminContext, ['cluster', 'ca']);
  t.regex(state.stdout, /CA rotation idle/);
});

test('a revoked certificate gets the server’s reason; an unreachable first manager is passed over for the next', async (t) => {
  const f = await startFixture(t);
  const admin = await clientFor(t, f.adminContext);
  const output = join(f.dir, 'vic.tessera.json');
  await addUser(admin, 'vic', { role: 'viewer', output });
  const context = await readContext(output);
  if (!context?.tls) return t.fail('the written context has no certificate');

  // Nothing listens on the first address: the client moves on to the second when connecting.
  const down = `127.0.0.1:${await freePort()}`;
  const failover = openClient(undefined, { ...context, server: down, servers: [down, f.address] });
  t.teardown(() => failover.close());
  t.deepEqual((await failover.list({ kind: 'Service', allStacks: true })).objectsJson, []);
  t.is(failover.answeringAddress(), f.address);

  f.revoked.add(parseIdentity(context.tls.certChainPem).serial);
  const viewer = await clientFor(t, output);
  const refused = await t.throwsAsync(viewer.list({ kind: 'Service', allStacks: true }), { instanceOf: ApiCallError });
  t.is((refused as ApiCallError).code, grpc.status.UNAUTHENTICATED);
  t.regex(refused.message, /^the server did not accept this client's identity: certificate vic \(serial [0-9a-f]+\) has been revoked/);
});

test('audit output: escapes are unambiguous, json lines stay the same values without raw controls, long object lists are counted', (t) => {
  t.is(escapeControl('a\\x1b\x1b\u009b\u2028b'), 'a\\\\x1b\\x1b\\x9b\\u{2028}b');
  const entry = {
    time: '2024-05-01T10:00:00.123Z',
    caller: 'user:x (admin)',
    method: 'Apply',
    objects: [{ kind: 'Service', name: 'a\u009b\u202eb' }],
    result: { ok: true },
  };
  const json = formatAuditJson([JSON.stringify(entry), 'not json']);
  t.false(/[\p{Cc}\p{Cf}]/u.test(json.replaceAll('\n', '')), json);
  t.deepEqual(
    json
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as unknown),
    [entry, 'not json'],
  );
  const objects = [1, 2, 3, 4].map((i) => ({ kind: 'Service', stack: 's', name: `n${i}` }));
  t.is(objectsCell([...objects, { kind: '…', name: 'and 96 more' }]), 'service/s/n1, service/s/n2, service/s/n3 +97 more');
  t.is(formatAuditTable([JSON.stringify(entry)]).split('\n')[1], '2024-05-01T10:00:00Z   user:x (admin)   Apply    service/a\\x9b\\u{202e}b   ok');
});

test('user add --pem-dir: cert.pem, key.pem and ca.pem for Prometheus, 0600, the same certificate as the context; not overwritten without --force', async (t) => {
  const f = await startFixture(t);
  const admin = await clientFor(t, f.adminContext);
  const output = join(f.dir, 'prometheus.tessera.json');
  const pemDir = join(f.dir, 'prometheus-tls');
  const lines = await addUser(admin, 'prometheus', { role: 'viewer', output, pemDir });
  t.true(
    lines.some((l) => l.includes(join(pemDir, 'key.pem'))),
    lines.join('\n'),
  );
  const context = await readContext(output);
  if (!context?.tls) return t.fail('the written context has no certificate');
  t.is((await stat(pemDir)).mode & 0o777, 0o700);
  for (const name of ['cert.pem', 'key.pem', 'ca.pem']) t.is((await stat(join(pemDir, name))).mode & 0o777, 0o600, name);
  t.is(await readFile(join(pemDir, 'cert.pem'), 'utf8'), context.tls.certChainPem);
  t.is(await readFile(join(pemDir, 'key.pem'), 'utf8'), context.tls.keyPem);
  t.is((await readFile(join(pemDir, 'ca.pem'), 'utf8')).trim(), f.pki.ca.certPem.trim());
  t.like(parseIdentity(await readFile(join(pemDir, 'cert.pem'), 'utf8')), { cn: 'prometheus', ou: 'viewer', o: f.pki.clusterId });
  const again = await t.throwsAsync(addUser(admin, 'prometheus', { role: 'viewer', output: join(f.dir, 'other.json'), pemDir }));
  t.regex(again.message, /cert\.pem exists/);
  t.is(f.issued.length, 1, 'refused before asking the CA');
});
