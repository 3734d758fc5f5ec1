// Build arguments: the automatic platform args, the predefined proxy args, and which --build-arg
// values the build consumed. ARG scoping itself (global ARGs visible in FROM lines only, unless a
// stage declares them again) is in the planner; these are the fixed tables and small helpers.

import type { BuildPlatform } from './plan-types.js';

/** Passed to RUN without an ARG declaration and kept out of the cache key, as Docker does. */
export const PROXY_ARGS: ReadonlySet<string> = new Set([
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
]);

export function formatPlatform(platform: BuildPlatform): string {
  return platform.variant === undefined || platform.variant === '' ? `${platform.os}/${platform.architecture}` : `${platform.os}/${platform.architecture}/${platform.variant}`;
}

/**
 * BuildKit's automatic args: in the global scope without declaration; inside a stage only when
 * declared (`ARG TARGETARCH`). We build for the node's platform only, so build = target.
 */
export function automaticArgs(platform: BuildPlatform): ReadonlyMap<string, string> {
  const text = formatPlatform(platform);
  const variant = platform.variant ?? '';
  const args = new Map<string, string>();
  for (const prefix of ['TARGET', 'BUILD']) {
    args.set(`${prefix}PLATFORM`, text);
    args.set(`${prefix}OS`, platform.os);
    args.set(`${prefix}ARCH`, platform.architecture);
    args.set(`${prefix}VARIANT`, variant);
  }
  return args;
}

/** True when a FROM --platform value names the node's platform ("linux/arm64" matches a node "linux/arm64/v8"). */
export function platformMatches(requested: string, platform: BuildPlatform): boolean {
  const [os, architecture, variant, extra] = requested.toLowerCase().split('/');
  if (extra !== undefined || os !== platform.os || architecture !== platform.architecture) return false;
  return variant === undefined || platform.variant === undefined || variant === platform.variant;
}
