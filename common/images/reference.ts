// Image references ("busybox", "127.0.0.1:5000/team/app:v1", "app@sha256:…") parsed and
// normalised the way Docker does, so that the same image has one name in the store.

import { quoteName } from '../resources/limits.js';

export interface ImageReference {
  /** Registry host with optional port, e.g. "docker.io", "127.0.0.1:5000". */
  registry: string;
  /** Repository path inside the registry, e.g. "library/busybox". */
  repository: string;
  /** Tag; "latest" when neither tag nor digest was given. */
  tag?: string;
  /** Manifest digest "sha256:<64 hex>". */
  digest?: string;
}

export class InvalidReferenceError extends Error {
  constructor(input: string, reason: string) {
    // quoteName: a 16 MB input must not become a 16 MB message.
    super(`invalid image reference ${quoteName(input)}: ${reason}`);
    this.name = 'InvalidReferenceError';
  }
}

export const DOCKER_HUB = 'docker.io';
// Docker Hub's API lives on a different host than the name users type.
const DOCKER_HUB_API_HOST = 'registry-1.docker.io';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const DOMAIN_NAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?$/;
const IPV6_DOMAIN = /^\[[0-9A-Fa-f:.]+\](?::[0-9]+)?$/;
const MAX_NAME_LENGTH = 255;
/** Name, ":" tag (128) and "@" digest (71): no valid reference is longer, so longer input is refused before any parsing. */
const MAX_REFERENCE_LENGTH = MAX_NAME_LENGTH + 1 + 128 + 1 + 71;

export function parseReference(input: string): ImageReference {
  if (input.length === 0) throw new InvalidReferenceError(input, 'empty');
  if (input.length > MAX_REFERENCE_LENGTH) throw new InvalidReferenceError(input, `longer than the ${MAX_REFERENCE_LENGTH} characters a reference can have`);
  if (input !== input.trim()) throw new InvalidReferenceError(input, 'leading or trailing whitespace');

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      throw new InvalidReferenceError(input, `digest ${quoteName(digest)} is not "sha256:" followed by 64 lowercase hex digits`);
    }
  }

  // A colon after the last slash separates the tag; a colon before it belongs to a port.
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const tagColon = rest.indexOf(':', lastSlash + 1);
  if (tagColon !== -1) {
    tag = rest.slice(tagColon + 1);
    rest = rest.slice(0, tagColon);
    if (!TAG.test(tag)) throw new InvalidReferenceError(input, `tag ${quoteName(tag)} is not valid`);
  }

  if (rest.length === 0) throw new InvalidReferenceError(input, 'missing repository name');
  let registry = DOCKER_HUB;
  let repository = rest;
  const firstSlash = rest.indexOf('/');
  if (firstSlash !== -1) {
    const first = rest.slice(0, firstSlash);
    if (looksLikeHost(first)) {
      if (!DOMAIN_NAME.test(first) && !IPV6_DOMAIN.test(first)) {
        throw new InvalidReferenceError(input, `registry ${quoteName(first)} is not a valid host[:port]`);
      }
      registry = first;
      repository = rest.slice(firstSlash + 1);
    }
  }
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;

  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw new InvalidReferenceError(
        input,
        `repository component ${quoteName(component)} must be lowercase letters and digits separated by ".", "_", "__" or "-"`,
      );
    }
  }
  if (registry.length + 1 + repository.length > MAX_NAME_LENGTH) {
    throw new InvalidReferenceError(input, `name longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (tag === undefined && digest === undefined) tag = 'latest';

  const reference: ImageReference = { registry, repository };
  if (tag !== undefined) reference.tag = tag;
  if (digest !== undefined) reference.digest = digest;
  return reference;
}

/** Same rule as Docker: the first component of a name is a registry only if it looks like a host. */
function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost' || component.startsWith('[');
}

/** Whether `input` names its registry itself ("127.0.0.1:5000/app", "docker.io/x/app") rather than defaulting to Docker Hub ("busybox"). */
export function namesRegistry(input: string): boolean {
  const slash = input.indexOf('/');
  return slash !== -1 && looksLikeHost(input.slice(0, slash));
}

/** "registry/repository" — the name without tag or digest. */
export function repositoryName(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** Fully qualified form, e.g. "docker.io/library/busybox:latest" or "host:5000/app@sha256:…". */
export function formatReference(ref: ImageReference): string {
  let out = repositoryName(ref);
  if (ref.tag !== undefined) out += `:${ref.tag}`;
  if (ref.digest !== undefined) out += `@${ref.digest}`;
  return out;
}

export function normaliseReference(input: string): string {
  return formatReference(parseReference(input));
}

/** Host to send distribution API requests to for a registry name. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : registry;
}

/** True for registries on this machine's loopback, which are spoken to over plain HTTP. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registryHostname(registry);
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function registryHostname(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']'));
  const colon = registry.indexOf(':');
  return colon === -1 ? registry : registry.slice(0, colon);
}

/**
 * A registry host as references name it: "index.docker.io" and Docker's config key
 * "https://index.docker.io/v1/" become "docker.io"; a scheme or path around a host is dropped.
 */
export function normaliseRegistryHost(input: string): string {
  let host = input.trim();
  const scheme = /^[a-z]+:\/\//i.exec(host);
  if (scheme) host = host.slice(scheme[0].length);
  host = host.split('/')[0] ?? '';
  if (host === 'index.docker.io' || host === 'registry-1.docker.io') host = DOCKER_HUB;
  if (!DOMAIN_NAME.test(host) && !IPV6_DOMAIN.test(host)) throw new Error(`${JSON.stringify(input)} is not a registry host[:port]`);
  return host;
}
