// Loaded into every ava worker before its test file (package.json, ava.require). When a file runs
// past ava's timeout, ava ends its worker with SIGTERM and no after.always hook runs: the netns
// clusters the file made (namespaces, tsd processes, container overlay mounts) stayed on the host.
// Here they are destroyed before the worker exits. Only the tiny registry is imported at start-up;
// the cluster code is already loaded in any worker that made a cluster.
import { destroyLiveClusters } from '../../cli/local-cluster/live-clusters.js';

const EXIT_CODES = { SIGTERM: 143, SIGINT: 130 } as const;
let ending = false;

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (ending) return;
    ending = true;
    void destroyLiveClusters().finally(() => process.exit(EXIT_CODES[signal]));
  });
}
