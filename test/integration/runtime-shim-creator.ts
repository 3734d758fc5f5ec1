// Plays "tsd" for runtime-shim.test.ts: creates and starts the containers it is given with a
// NativeRuntime, says "ready", then idles until the test kills it with SIGKILL.
import { NativeRuntime } from '../../agent/runtime/native-runtime.js';

interface Job {
  id: string;
  bundle: string;
  logPath: string;
  stdinOpen?: boolean;
}

const { stateRoot, cgroupParent, jobs } = JSON.parse(process.argv[2] ?? '{}') as { stateRoot: string; cgroupParent: string; jobs: Job[] };
const runtime = new NativeRuntime({ stateRoot, cgroupParent });
for (const job of jobs) {
  await runtime.create(job.id, job.bundle, { logPath: job.logPath, logFormat: 'json', ...(job.stdinOpen === true ? { stdinOpen: true } : {}) });
  await runtime.start(job.id);
}
process.stdout.write('ready\n');
setInterval(() => undefined, 1 << 30);
