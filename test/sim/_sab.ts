import { runSeed } from './simulation.js';
const sab = process.argv[2] as 'send-before-fsync'; const n = Number(process.argv[3]);
let fails = 0; const msgs: string[] = [];
for (let s = 1; s <= n; s++) { const r = runSeed({ seed: s, sabotage: sab }); if (!r.ok) { fails++; if (msgs.length < 5) msgs.push(`${s}: ${(r.failure ?? '').slice(0, 100)}`); } }
console.log(sab, fails, msgs);
