// The one platform Tessera's nodes run images for. The API does not report node platforms yet, and
// every node of a cluster runs the same build of tsd on the same kind of machine (docs/ARCHITECTURE.md),
// so Compose's `platform:` and `build.platforms` are checked against this constant: equal is
// accepted (it changes nothing), anything else is refused by name rather than run wrongly.

export const NODE_PLATFORM = 'linux/amd64';

/** Why `platform` cannot be honoured, or undefined when it is the nodes' own. */
export function platformProblem(platform: string): string | undefined {
  // Docker compares case-insensitively and treats x86_64 as amd64.
  const normalised = platform
    .trim()
    .toLowerCase()
    .replace(/\/x86_64$/, '/amd64');
  if (normalised === NODE_PLATFORM) return undefined;
  return `${JSON.stringify(platform)} is not supported: Tessera's nodes run ${NODE_PLATFORM} images, the only platform accepted`;
}
