// Images across nodes: the shapes the agent and the manager exchange about where images are
// (proto/dispatcher.proto ImageInventory, ImageLocate, ImageLocation, PeerRevocations), and their
// validation. Each side checks what the other sent before it believes it: a bad message is refused
// whole, naming the field, and nothing of it is kept.
import { isSha256Digest } from './digest.js';
import { InvalidReferenceError, normaliseReference } from './reference.js';
import { normalizeSerial } from '../identity/x509.js';
import type { ImageRecord } from './types.js';

/** One image a node holds, as its agent reports it. */
export interface ImageHolding {
  /** Normalised reference, or the manifest digest of an image stored without a name. */
  reference: string;
  manifestDigest: string;
  indexDigest?: string;
  size: number;
  createdAt: string;
}

/** What a node reports of one of its image records. */
export function holdingOf(record: ImageRecord): ImageHolding {
  const holding: ImageHolding = { reference: record.reference, manifestDigest: record.digest, size: record.size, createdAt: record.createdAt };
  if (record.indexDigest !== undefined) holding.indexDigest = record.indexDigest;
  return holding;
}

/** A node to fetch blobs from: its name (checked against its certificate) and its ImagePeer address. */
export interface PeerRef {
  nodeName: string;
  address: string;
}

/** Where an image is: the manifest digest its reference resolves to and the peers holding it. */
export interface ImageLocation {
  manifestDigest: string;
  peers: PeerRef[];
}

/** More images than any node plausibly holds; a report beyond it is refused rather than kept. */
export const MAX_INVENTORY_IMAGES = 10_000;
/** Revoked certificates still unexpired; the list is pruned of expired ones, so this is generous. */
export const MAX_PEER_REVOCATIONS = 100_000;
/** Peers named in one answer: enough to spread load and survive several that are down. */
export const MAX_LOCATION_PEERS = 16;
const MAX_REFERENCE_LENGTH = 512;
const MAX_TIME_LENGTH = 64;
const MAX_NODE_NAME_LENGTH = 253;
const HOST_PORT = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9a-fA-F:.]{2,45}\]):(\d{1,5})$/;

/** The wire form of a holding (generated proto types, with their defaults for absent fields). */
export interface ImageHoldingWire {
  reference: string;
  manifestDigest: string;
  indexDigest: string;
  size: number;
  createdAt: string;
}

export class PeerMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PeerMessageError';
  }
}

function fail(where: string, message: string): never {
  throw new PeerMessageError(`${where}: ${message}`);
}

function quoted(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

/** A reference as an inventory or a locate request may carry it: a manifest digest, or a valid image reference, normalised. */
export function parsePeerReference(value: string, where: string): string {
  if (value.length === 0) fail(where, 'the image reference is empty');
  if (value.length > MAX_REFERENCE_LENGTH) fail(where, `the image reference is ${value.length} characters, more than ${MAX_REFERENCE_LENGTH}`);
  if (isSha256Digest(value)) return value;
  try {
    return normaliseReference(value);
  } catch (err) {
    if (err instanceof InvalidReferenceError) fail(where, `image reference ${quoted(value)}: ${err.message}`);
    throw err;
  }
}

function parseDigest(value: string, where: string, field: string): string {
  if (!isSha256Digest(value)) fail(where, `${field} ${quoted(value)} is not "sha256:" followed by 64 lowercase hex digits`);
  return value;
}

/** host:port of a node's ImagePeer service. */
export function parsePeerAddress(value: string, where: string): string {
  const port = HOST_PORT.exec(value)?.[1];
  if (port === undefined || Number(port) < 1 || Number(port) > 65_535) fail(where, `peer address ${quoted(value)} is not host:port`);
  return value;
}

export function parseNodeName(value: string, where: string): string {
  if (value.length === 0 || value.length > MAX_NODE_NAME_LENGTH || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value))
    fail(where, `node name ${quoted(value)} is not valid`);
  return value;
}

/** A node's whole inventory as it reported it; refused whole when any entry is wrong. */
export function parseInventory(images: readonly ImageHoldingWire[], where: string): ImageHolding[] {
  if (images.length > MAX_INVENTORY_IMAGES) fail(where, `${images.length} images reported, more than ${MAX_INVENTORY_IMAGES}`);
  return images.map((wire, i) => {
    const at = `${where}: image #${i}`;
    const size = Number(wire.size);
    if (!Number.isSafeInteger(size) || size < 0) fail(at, `size ${String(wire.size)} is not a whole number of bytes`);
    if (wire.createdAt.length > MAX_TIME_LENGTH) fail(at, `created_at is ${wire.createdAt.length} characters, more than ${MAX_TIME_LENGTH}`);
    const holding: ImageHolding = {
      reference: parsePeerReference(wire.reference, at),
      manifestDigest: parseDigest(wire.manifestDigest, at, 'manifest digest'),
      size,
      createdAt: wire.createdAt,
    };
    if (wire.indexDigest !== '') holding.indexDigest = parseDigest(wire.indexDigest, at, 'index digest');
    return holding;
  });
}

/** The manager's answer to a locate request, as the agent receives it. */
export function parseLocation(wire: { manifestDigest: string; peers: readonly PeerRef[] }, where: string): ImageLocation | undefined {
  if (wire.manifestDigest === '') {
    if (wire.peers.length > 0) fail(where, 'peers are named but no manifest digest');
    return undefined;
  }
  const manifestDigest = parseDigest(wire.manifestDigest, where, 'manifest digest');
  if (wire.peers.length === 0) fail(where, 'a manifest digest but no peer');
  if (wire.peers.length > MAX_LOCATION_PEERS) fail(where, `${wire.peers.length} peers, more than ${MAX_LOCATION_PEERS}`);
  const peers = wire.peers.map((peer, i) => ({
    nodeName: parseNodeName(peer.nodeName, `${where}: peer #${i}`),
    address: parsePeerAddress(peer.address, `${where}: peer #${i}`),
  }));
  return { manifestDigest, peers };
}

/** The revoked serials a manager sent, normalised (hex, no leading zero bytes). */
export function parseRevocations(serials: readonly string[], where: string): string[] {
  if (serials.length > MAX_PEER_REVOCATIONS) fail(where, `${serials.length} revoked serials, more than ${MAX_PEER_REVOCATIONS}`);
  return serials.map((serial, i) => {
    try {
      return normalizeSerial(serial);
    } catch (err) {
      fail(`${where}: serial #${i}`, (err as Error).message);
    }
  });
}
