// A real distribution registry (Debian's docker-registry) on 127.0.0.1 for tests, with a config
// of our own: the packaged default listens on every interface and wants an htpasswd file.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createSign, randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { type Server, createServer as createHttpServer } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';

const execFileAsync = promisify(execFile);

export interface RunningRegistry {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT, the registry part of image references. */
  host: string;
  /** The token server, when started with tokenAuth. */
  tokenServer?: TokenServer;
  /** Where the registry keeps a blob's bytes on disk (its filesystem driver's layout), to damage it in tests. */
  blobFile(digest: string): string;
  stop(): Promise<void>;
}

export interface StartRegistryOptions {
  /** Turns on htpasswd (basic) auth with this one user. */
  htpasswd?: { user: string; password: string };
  /**
   * Turns on token auth: the registry sends clients to a token server (ours, on 127.0.0.1) that
   * issues JWTs signed with a throwaway certificate, to this one user only.
   */
  tokenAuth?: { user: string; password: string };
}

export interface TokenServer {
  realm: string;
  /** Token requests seen, as "user scope…" ("-" for anonymous). */
  requests: string[];
  close(): Promise<void>;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * A Docker-style token server: GET /token?service=…&scope=repository:NAME:ACTIONS with basic
 * credentials answers {"token": JWT} granting what was asked. The JWT carries the certificate in
 * its x5c header; the registry trusts it through `rootcertbundle`.
 */
async function startTokenServer(
  dir: string,
  service: string,
  issuer: string,
  user: { user: string; password: string },
): Promise<TokenServer & { certPath: string }> {
  const keyPath = join(dir, 'token.key');
  const certPath = join(dir, 'token.crt');
  await execFileAsync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '1',
    '-subj',
    '/CN=tessera-test-token',
  ]);
  const key = await readFile(keyPath, 'utf8');
  const certDer = (await readFile(certPath, 'utf8')).replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const requests: string[] = [];
  const expected = `Basic ${Buffer.from(`${user.user}:${user.password}`).toString('base64')}`;
  const server: Server = createHttpServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope');
    requests.push(`${req.headers.authorization === expected ? user.user : '-'} ${scopes.join(' ')}`);
    if (url.pathname !== '/token' || url.searchParams.get('service') !== service) {
      res.writeHead(400);
      res.end();
      return;
    }
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ details: 'bad credentials' }));
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.map((scope) => {
      const [type, name, actions] = scope.split(':');
      return { type, name, actions: (actions ?? '').split(',').filter((a) => a !== '') };
    });
    const header = base64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [certDer] }));
    const claims = base64url(
      JSON.stringify({ iss: issuer, sub: user.user, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access }),
    );
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key).toString('base64url');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: `${header}.${claims}.${signature}`, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    requests,
    certPath,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** An htpasswd line with a bcrypt hash (the only kind the registry accepts), made with perl's crypt(3). */
async function htpasswdLine(user: string, password: string): Promise<string> {
  const salt = Array.from({ length: 22 }, () => './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(Math.random() * 64)]).join('');
  const { stdout } = await execFileAsync('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, `$2y$05$${salt}`]);
  if (!stdout.startsWith('$2')) throw new Error(`crypt(3) here does not support bcrypt (got ${JSON.stringify(stdout)})`);
  return `${user}:${stdout}\n`;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-registry-'));
  let child: ChildProcess | undefined;
  let tokenServer: (TokenServer & { certPath: string }) | undefined;
  const stop = async (): Promise<void> => {
    await tokenServer?.close();
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const done = exited(child);
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      }, 5000);
      await done;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const lines = [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: ${host}`,
    ];
    if (opts.htpasswd) {
      await writeFile(join(dir, 'htpasswd'), await htpasswdLine(opts.htpasswd.user, opts.htpasswd.password));
      lines.push('auth:', '  htpasswd:', '    realm: tessera-test', `    path: ${join(dir, 'htpasswd')}`);
    }
    if (opts.tokenAuth) {
      const service = 'tessera-test-registry';
      const issuer = 'tessera-test-issuer';
      tokenServer = await startTokenServer(dir, service, issuer, opts.tokenAuth);
      lines.push(
        'auth:',
        '  token:',
        `    realm: ${tokenServer.realm}`,
        `    service: ${service}`,
        `    issuer: ${issuer}`,
        `    rootcertbundle: ${tokenServer.certPath}`,
      );
    }
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, `${lines.join('\n')}\n`);
    const logPath = join(dir, 'registry.log');
    const logFd = openSync(logPath, 'a');
    child = spawn('/usr/bin/docker-registry', ['serve', configPath], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const url = `http://${host}`;
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`docker-registry exited early: ${await readFile(logPath, 'utf8').catch(() => '')}`);
      }
      try {
        const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
        await response.body?.cancel();
        // 401 is an answer too: the registry is up, it just wants credentials.
        if (response.status === 200 || response.status === 401) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${url}/v2/ within 15 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const blobFile = (digest: string): string => {
      const hex = digest.replace(/^sha256:/, '');
      return join(dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    };
    const running: RunningRegistry = { url, host, blobFile, stop };
    if (tokenServer) running.tokenServer = tokenServer;
    return running;
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Copies the image named `layoutRef` ("latest" in layouts from buildBusyboxImage) from an OCI
 * layout to HOST/NAME:TAG with skopeo; returns the manifest digest the registry stored.
 */
export async function pushImage(
  ociLayoutDir: string,
  host: string,
  nameAndTag: string,
  options: { layoutRef?: string; credentials?: { user: string; password: string } } = {},
): Promise<{ digest: string }> {
  const digestFile = join(await mkdtemp(join(tmpdir(), 'tessera-push-')), 'digest');
  try {
    const args = ['copy', '--insecure-policy', '--dest-tls-verify=false', '--digestfile', digestFile];
    if (options.credentials) args.push('--dest-creds', `${options.credentials.user}:${options.credentials.password}`);
    args.push(`oci:${ociLayoutDir}:${options.layoutRef ?? 'latest'}`, `docker://${host}/${nameAndTag}`);
    try {
      await execFileAsync('skopeo', args, { timeout: 60_000 });
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? '';
      throw new Error(`skopeo ${args.join(' ')} failed: ${stderr.trim() || (error as Error).message}`);
    }
    return { digest: (await readFile(digestFile, 'utf8')).trim() };
  } finally {
    await rm(join(digestFile, '..'), { recursive: true, force: true });
  }
}
