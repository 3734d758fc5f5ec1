// Service tasks with stdinOpen and tty, started by the worker as tsd's agent does (image store,
// overlay rootfs, bundle, native runtime, bridge network in a namespace of the test's own; nothing
// stands in): a read of an open stdin blocks, a terminal is /dev/pts/N with TERM=xterm and its
// output in the task's log as stdout, and a task with neither reads EOF at once (the control).
import test from 'ava';
import { readFile } from 'node:fs/promises';

import { API_VERSION, type ServiceSpec, type Task } from '../../common/resources/types.js';
import { NativeRuntime } from '../../agent/runtime/native-runtime.js';
import { logPathFor } from '../../agent/worker/task-runner.js';
import { dataPaths } from '../../daemon/config.js';
import { eventually } from '../helpers/eventually.js';
import { startWorkerHost } from '../helpers/worker-host.js';

/** How long a blocked read must stay blocked: a read of /dev/null ends in well under a millisecond. */
const STAYS_BLOCKED_MS = 2000;

function task(name: string, imageRef: string, spec: Partial<ServiceSpec>): Task {
  return {
    apiVersion: API_VERSION,
    kind: 'Task',
    metadata: { name },
    spec: {
      serviceName: name.split('.')[0] ?? name,
      serviceStack: '',
      serviceGeneration: 1,
      slot: 1,
      spec: { image: imageRef, stopGracePeriodMs: 1000, ...spec },
    },
    nodeName: 'n1',
    desiredState: 'running',
    status: { state: 'assigned', timestamp: new Date().toISOString() },
  };
}

interface LogRecord {
  stream: string;
  log: string;
}

test('the worker runs tty and stdinOpen tasks: reads block, the terminal is logged as stdout; without them stdin ends at once', async (t) => {
  const host = await startWorkerHost(t, { name: 'stdio', subnet: '10.219.23.0/24' });
  const worker = host.startWorker({
    runtime: new NativeRuntime({ stateRoot: host.paths.runtimeState, cgroupParent: host.cgroupParent }),
    log: (message) => t.log(message),
  });
  const logs = dataPaths(host.config).logs;
  const tasks = [
    task('it.1.x', host.imageRef, { command: ['sh', '-c', 'tty; echo "TERM=$TERM"; read line; echo got-eof'], tty: true, stdinOpen: true }),
    task('i.1.x', host.imageRef, { command: ['sh', '-c', 'readlink /proc/self/fd/0; read line; echo got-eof'], stdinOpen: true }),
    task('none.1.x', host.imageRef, { command: ['sh', '-c', 'read line; echo got-eof; exec sleep 600'] }),
  ];
  const records = async (name: string): Promise<LogRecord[]> =>
    (await readFile(logPathFor(logs, name), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as LogRecord);
  const text = async (name: string): Promise<string> => (await records(name)).map((r) => r.log).join('');

  worker.reconcile(tasks);
  await eventually(
    () => `every task to run (reports: ${JSON.stringify(host.reports)})`,
    async () => tasks.every((x) => host.reports.some((r) => r.task === x.metadata.name && r.state === 'running')),
    60_000,
    100,
  );
  // The control first: without an open stdin the read ends at once.
  await eventually('the task without stdin to read EOF', async () => (await text('none.1.x')).includes('got-eof'), 10_000, 100);
  await eventually('the terminal task to write', async () => /TERM=/.test(await text('it.1.x')), 10_000, 100);
  await eventually('the open-stdin task to write', async () => /pipe:/.test(await text('i.1.x')), 10_000, 100);
  await new Promise((r) => setTimeout(r, STAYS_BLOCKED_MS));

  const terminal = await records('it.1.x');
  t.deepEqual([...new Set(terminal.map((r) => r.stream))], ['stdout']);
  const terminalText = terminal.map((r) => r.log).join('');
  t.regex(terminalText, /^\/dev\/pts\/\d+\r\n/m);
  t.regex(terminalText, /^TERM=xterm\r\n/m);
  t.false(terminalText.includes('got-eof'), terminalText);
  const piped = await text('i.1.x');
  t.regex(piped, /^pipe:\[\d+\]\n/m);
  t.false(piped.includes('got-eof'), piped);
  t.false(
    host.reports.some((r) => r.state === 'failed' || r.state === 'complete'),
    JSON.stringify(host.reports),
  );

  worker.reconcile([]);
  await eventually(
    () => `every task to stop (reports: ${JSON.stringify(host.reports)})`,
    async () => tasks.every((x) => host.reports.some((r) => r.task === x.metadata.name && r.state === 'shutdown')),
    30_000,
    100,
  );
});
