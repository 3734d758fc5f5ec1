// Forwards a query the overlay does not own to the node's resolvers, over the transport the
// client used: UDP with a fresh transaction id per attempt, TCP with the 2-byte length framing.

import { createSocket } from 'node:dgram';
import { isIPv6, Socket } from 'node:net';
import type { DnsUpstream } from './types.js';

export async function forwardUdp(query: Buffer, upstream: DnsUpstream, timeoutMs: number, id: number): Promise<Buffer> {
  const socket = createSocket(isIPv6(upstream.address) ? 'udp6' : 'udp4');
  const originalId = query.readUInt16BE(0);
  const outgoing = Buffer.from(query);
  outgoing.writeUInt16BE(id, 0);
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from ${upstream.address}:${upstream.port} in ${timeoutMs} ms`)), timeoutMs);
      socket.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.on('message', (message, remote) => {
        // Only the upstream's answer to this very query counts (ids guard against stray packets).
        if (message.length < 12 || message.readUInt16BE(0) !== id || remote.port !== upstream.port) return;
        clearTimeout(timer);
        const reply = Buffer.from(message);
        reply.writeUInt16BE(originalId, 0);
        resolve(reply);
      });
      socket.send(outgoing, upstream.port, upstream.address);
    });
  } finally {
    socket.close();
  }
}

export async function forwardTcp(query: Buffer, upstream: DnsUpstream, timeoutMs: number): Promise<Buffer> {
  const socket = new Socket();
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from ${upstream.address}:${upstream.port} in ${timeoutMs} ms`)), timeoutMs);
      let received = Buffer.alloc(0);
      socket.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
          clearTimeout(timer);
          resolve(received.subarray(2, 2 + received.readUInt16BE(0)));
        }
      });
      socket.on('close', () => reject(new Error(`${upstream.address}:${upstream.port} closed the connection without an answer`)));
      socket.connect(upstream.port, upstream.address, () => {
        const length = Buffer.alloc(2);
        length.writeUInt16BE(query.length, 0);
        socket.end(Buffer.concat([length, query]));
      });
    });
  } finally {
    socket.destroy();
  }
}
