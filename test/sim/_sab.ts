import { runSeed } from './simulation.js';
for (const sabotage of ['none', 'send-before-fsync', 'forget-vote'] as const) {
  let fails = 0; const msgs = new Set<string>();
  for (let s = 1; s <= 200; s++) { const r = runSeed({ seed: s, sabotage }); if (!r.ok) { fails++; msgs.add(`${s}: ${(r.failure ?? '').slice(0, 100)}`); } }
  console.log(sabotage, fails, [...msgs].slice(0, 6));
}
