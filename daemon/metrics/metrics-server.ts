// tsd's /metrics endpoint, on every node. HTTPS with the cluster's mutual TLS: the node's own
// certificate, a client certificate required and verified against the cluster's roots at the
// handshake (no certificate, or another CA's: no connection), then metrics-access.ts decides.
// The certificate and roots follow renewals and CA rotations (setSecureContext on each update).
// Plain HTTP is served only on an address given with --metrics-insecure, and carries /metrics
// alone: metrics hold no secrets, routes added beside them (service discovery) may.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Registry } from 'prom-client';

import { exposition } from '../../common/metrics/text-collectors.js';

import type { CertificateSubject } from '../../common/identity/certificate.js';
import { peerIdentity } from '../../common/transport/mutual-tls.js';
import type { TlsIdentity } from '../../common/transport/tls-identity.js';
import { joinPem } from '../../common/identity/x509.js';
import { metricsRefusal, type MetricsTrust } from './metrics-access.js';

export const METRICS_PATH = '/metrics';

/** A route beside /metrics, served over mutual TLS only, to an authorised caller. */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, caller: CertificateSubject) => void | Promise<void>;

export interface MetricsServerDeps {
  identity: TlsIdentity;
  trust: () => MetricsTrust;
  /** The registries to serve, merged at each scrape (the node's, and the manager half's while it runs). */
  registries: () => Registry[];
  log: (message: string) => void;
}

/** A scraper that holds a connection open sends nothing more than this many requests' worth of waiting. */
const REQUEST_TIMEOUT_MS = 30_000;
const HEADERS_TIMEOUT_MS = 10_000;
/**
 * An idle keep-alive connection is kept this long. Node's default (5 s) is shorter than any scrape
 * interval (Prometheus: 15 s to 60 s), so every scrape paid a new TLS handshake; Prometheus reuses
 * its connection when it is still open. Idle connections stay bounded by MAX_CONNECTIONS.
 */
const KEEP_ALIVE_TIMEOUT_MS = 75_000;
const MAX_CONNECTIONS = 64;

export class MetricsServer {
  private readonly routes = new Map<string, RouteHandler>();
  private readonly servers: Server[] = [];
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly deps: MetricsServerDeps) {}

  /** Adds a path served over mutual TLS beside /metrics, to the same callers (e.g. HTTP service discovery on managers). */
  addRoute(path: string, handler: RouteHandler): void {
    if (!path.startsWith('/') || path === METRICS_PATH) throw new Error(`metrics server: cannot add route "${path}"`);
    this.routes.set(path, handler);
  }

  removeRoute(path: string): void {
    this.routes.delete(path);
  }

  /** HTTPS with mutual TLS on host:port; resolves with the bound port (port 0 picks one). */
  async listenTls(host: string, port: number): Promise<number> {
    const { identity } = this.deps;
    const server = createHttpsServer({ ...this.secureContext(), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (req, res) =>
      this.handleTls(req, res),
    );
    const refresh = () => server.setSecureContext(this.secureContext());
    // The listeners deliver the current material once at first (on the next tick), then each update.
    const caListener = () => refresh();
    const identityListener = () => refresh();
    identity.addCaCertificateListener(caListener);
    identity.addIdentityCertificateListener(identityListener);
    this.unsubscribe.push(() => {
      identity.removeCaCertificateListener(caListener);
      identity.removeIdentityCertificateListener(identityListener);
    });
    return this.listen(server, host, port);
  }

  /** Plain HTTP on host:port, /metrics only: the explicit --metrics-insecure opt-in. */
  async listenPlain(host: string, port: number): Promise<number> {
    const server = createHttpServer((req, res) => {
      if (pathOf(req) !== METRICS_PATH) return void res.writeHead(404).end('not found: plain HTTP serves /metrics only\n');
      void this.serveMetrics(req, res);
    });
    return this.listen(server, host, port);
  }

  async close(): Promise<void> {
    for (const stop of this.unsubscribe.splice(0)) stop();
    const servers = this.servers.splice(0);
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
  }

  private secureContext(): { key: string; cert: string; ca: string } {
    const material = this.deps.identity.material;
    return { key: material.keyPem, cert: material.certChainPem, ca: joinPem(material.trustedRootPems) };
  }

  private async listen(server: Server, host: string, port: number): Promise<number> {
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.headersTimeout = HEADERS_TIMEOUT_MS;
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    server.maxConnections = MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.deps.log(`metrics server on ${host}:${port}: ${err.message}`));
    this.servers.push(server);
    const address = server.address();
    return typeof address === 'object' && address ? address.port : port;
  }

  private handleTls(req: IncomingMessage, res: ServerResponse): void {
    let caller: CertificateSubject;
    try {
      // The handshake required a certificate from the cluster's roots; its subject says who this is.
      const socket = req.socket as TLSSocket;
      caller = peerIdentity({ getAuthContext: () => ({ sslPeerCertificate: socket.getPeerCertificate() }) });
    } catch (err) {
      return void res.writeHead(401).end(`${(err as Error).message}\n`);
    }
    const refusal = metricsRefusal(caller, this.deps.trust());
    if (refusal) return void res.writeHead(refusal.status).end(`${refusal.message}\n`);
    const path = pathOf(req);
    if (path === METRICS_PATH) return void this.serveMetrics(req, res);
    const route = this.routes.get(path);
    if (route === undefined) return void res.writeHead(404).end(`not found: try ${METRICS_PATH}\n`);
    Promise.resolve(route(req, res, caller)).catch((err: unknown) => {
      this.deps.log(`metrics server: ${path}: ${(err as Error).message}`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  }

  private async serveMetrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { allow: 'GET, HEAD' }).end();
    try {
      const { contentType, body } = await exposition(this.deps.registries());
      res.writeHead(200, { 'content-type': contentType }).end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      this.deps.log(`metrics: a scrape failed: ${(err as Error).message}`);
      res.writeHead(500).end(`${(err as Error).message}\n`);
    }
  }
}

/** The path without its query (Prometheus may add none, but a browser or curl might). */
function pathOf(req: IncomingMessage): string {
  return (req.url ?? '').split('?')[0] ?? '';
}
