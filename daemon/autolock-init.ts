// What `tsd init --autolock` prints about the new cluster's unlock key.
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
