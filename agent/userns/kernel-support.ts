// Whether this node's kernel gives containers user namespaces: a kernel built without them has no
// /proc/self/ns/user, and user.max_user_namespaces = 0 turns them off. Told before anything is
// allocated or copied, with what to change, instead of a clone failure deep in the runtime.
import { access, readFile } from 'node:fs/promises';

import { unlessAbsent } from '../fs-errors.js';

/** Pure: why user namespaces cannot be had, or undefined when they can. */
export function userNamespaceProblem(hasNsLink: boolean, maxUserNamespaces: string | undefined): string | undefined {
  if (!hasNsLink) return 'this kernel has no user namespaces (built without CONFIG_USER_NS)';
  if (maxUserNamespaces !== undefined && maxUserNamespaces.trim() === '0')
    return 'user namespaces are turned off on this node (sysctl user.max_user_namespaces = 0)';
  return undefined;
}

let checked: Promise<string | undefined> | undefined;

/** Throws, saying why, when this node cannot give a container a user namespace. Asked once per process. */
export async function assertUserNamespaces(): Promise<void> {
  checked ??= (async () => {
    const hasNsLink = await access('/proc/self/ns/user').then(
      () => true,
      () => false,
    );
    return userNamespaceProblem(hasNsLink, await unlessAbsent(readFile('/proc/sys/user/max_user_namespaces', 'utf8'), undefined));
  })();
  const problem = await checked;
  if (problem !== undefined) throw new Error(`userns: auto: ${problem}`);
}
