// `tsd init --autolock`: the request to create this manager's keyring under an unlock key from the
// start (no kek file is ever written). A setting of this process's command line, like the join
// token taken from the environment (identity/join-token-source.ts), held here because the manager
// is composed by daemon.ts, which has no place for it; it matters only when the Raft directory is
// new and the manager founds the cluster (not when it joins one).
let requested = false;

export function requestAutolockAtInit(): void {
  requested = true;
}

export function autolockRequestedAtInit(): boolean {
  return requested;
}

/**
 * What `tsd init --autolock` says about the unlock key. On a terminal it shows the key, once; when
 * stdout is not a terminal it is most likely a log (tsd.log, the journal), and the key must never
 * reach one, so it says where to get the key instead (`tsctl cluster unlock-key`, root or admin, audited).
 */
export function unlockKeyNotice(unlockKey: string, stdoutIsTerminal: boolean): string {
  const keep = 'Keep it safe, away from this machine: a restarted manager serves nothing until it is unlocked with it (tsctl cluster unlock).';
  if (stdoutIsTerminal) return `Autolock is on. The unlock key, shown this once:\n\n  ${unlockKey}\n\n${keep}\n`;
  return `Autolock is on. This output is not a terminal, so the unlock key is not printed here: read it with \`tsctl cluster unlock-key\`.\n${keep}\n`;
}
