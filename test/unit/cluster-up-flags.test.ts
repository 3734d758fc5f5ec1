// `tsctl cluster up`'s options → each node's tsd command line (issue 12 §3). Pure: the real
// `cluster up` command parses real argv into a plan; the plan's per-node tsd argv is parsed back
// with tsd's own parser. Nothing is started. The walk is over the options `cluster up` declares,
// so a flag added later fails here until it reaches every node or is refused with a reason.
import test from 'ava';
import { Command, type Option } from 'commander';

import { CLUSTER_SHAPE_OPTIONS, CLUSTER_UP_RULES, planClusterUp, registerClusterUp, type ClusterUpPlan } from '../../cli/cluster.js';
import { defaultConfig, type DaemonConfig } from '../../daemon/config.js';
import { flagName, nodeArgv, optionAttribute, parseNodeArgv, NODE_SETTING_KEYS, type NodeSettingKey } from '../../daemon/node-options.js';
import { nodeLayout, nodeTsdArgv, validateNetnsClusterOptions, type NetnsClusterOptions } from '../../cli/local-cluster/netns-cluster.js';

/** A value for every setting that differs from its default, as the user would type it. */
const SAMPLES: Record<NodeSettingKey, string[]> = {
  dataRoot: ['--data-root', '/srv/tessera-flags'],
  listen: ['--listen', '127.0.0.1:7499'],
  metricsListen: ['--metrics-listen', '127.0.0.1:7498'],
  metricsInsecure: ['--metrics-insecure', '127.0.0.1:7497'],
  nodeName: ['--node-name', 'sample-node'],
  bridge: ['--bridge', 'tsflags0'],
  subnet: ['--subnet', '10.77.0.0/24'],
  nftTable: ['--nft-table', 'tsflags'],
  cgroupParent: ['--cgroup-parent', 'flags/parent'],
  insecureRegistries: ['--insecure-registry', '172.31.213.254:5000', '--insecure-registry', 'registry.test:5001'],
  heartbeatMs: ['--heartbeat-ms', '700'],
  nodeDownAfterMs: ['--node-down-after-ms', '9100'],
  advertiseAddress: ['--advertise-address', '10.9.8.7'],
  apiSocket: ['--api-socket', 'unix:/run/flags.sock'],
  join: ['--join', '10.0.0.1:7420'],
  tokenFile: ['--token-file', '/run/flags-token'],
  certValidityMs: ['--cert-validity-ms', '120000'],
  store: ['--store', 'memory'],
  etcdEndpoints: ['--etcd-endpoints', 'http://127.0.0.1:2379,http://127.0.0.1:2380'],
  raftSnapshotEvery: ['--raft-snapshot-every', '123'],
  historyRevisions: ['--history-revisions', '77'],
  liveRestore: ['--live-restore'],
  autolock: ['--autolock'],
  buildContextMaxBytes: ['--build-context-max-bytes', '2097152'],
};

/** For settings the cluster derives per node: what node i must get from the sample above. */
const DERIVED: Partial<Record<NodeSettingKey, (i: number, prefix: string) => unknown>> = {
  dataRoot: (i) => `/srv/tessera-flags/cluster/node-${i}`,
  cgroupParent: (i, prefix) => `flags/parent/${prefix}/node-${i}`,
};

function clusterUpCommand(start: (plan: ClusterUpPlan) => Promise<void>): { program: Command; up: Command } {
  const program = new Command('tsctl').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  const cluster = program.command('cluster');
  const up = registerClusterUp(cluster, start).exitOverride();
  return { program, up };
}

/** Runs the real `cluster up` command definition on `args` and returns the plan its action got. */
async function planOf(args: string[]): Promise<ClusterUpPlan> {
  let plan: ClusterUpPlan | undefined;
  const { program } = clusterUpCommand(async (p) => {
    plan = p;
  });
  await program.parseAsync(['cluster', 'up', ...args], { from: 'user' });
  if (!plan) throw new Error('cluster up did not produce a plan');
  return plan;
}

function netnsOf(plan: ClusterUpPlan): NetnsClusterOptions {
  if (plan.kind !== 'netns') throw new Error(`expected a multi-node plan, got ${plan.kind}`);
  return plan.cluster;
}

/** What each node's tsd makes of the argv the cluster gives it. */
function nodeConfigs(options: NetnsClusterOptions): DaemonConfig[] {
  return Array.from({ length: options.nodes }, (_, k) => parseNodeArgv(nodeTsdArgv(nodeLayout(options, k + 1), options)));
}

function settingOf(option: Option): NodeSettingKey | undefined {
  return NODE_SETTING_KEYS.find((key) => optionAttribute(key) === option.attributeName());
}

test('every option cluster up declares is a cluster shape option or a tsd setting with a sample and a rule', (t) => {
  const { up } = clusterUpCommand(async () => {});
  const declared = up.options.map((o) => o.attributeName());
  for (const option of up.options) {
    if ((CLUSTER_SHAPE_OPTIONS as readonly string[]).includes(option.attributeName())) continue;
    const key = settingOf(option);
    if (key === undefined) {
      t.fail(`${option.long}: neither a cluster shape option nor a tsd setting`);
      continue;
    }
    t.truthy(SAMPLES[key], `${option.long}: no sample value in this test`);
    t.truthy(CLUSTER_UP_RULES[key], `${option.long}: no cluster up rule`);
    if (CLUSTER_UP_RULES[key].kind === 'per-node') t.truthy(DERIVED[key], `${option.long}: per-node, but this test does not know what a node gets`);
  }
  // And every tsd setting is declared by cluster up.
  for (const key of NODE_SETTING_KEYS) t.true(declared.includes(optionAttribute(key)), `${flagName(key)} is a tsd setting cluster up does not accept`);
});

test('each sample differs from the default, so a dropped flag shows', (t) => {
  const defaults = defaultConfig();
  for (const key of NODE_SETTING_KEYS) t.notDeepEqual(parseNodeArgv(SAMPLES[key])[key], defaults[key], flagName(key));
});

test("single node: every flag reaches tsd's command line, except those refused for cluster up", async (t) => {
  for (const key of NODE_SETTING_KEYS) {
    const flag = flagName(key);
    const rule = CLUSTER_UP_RULES[key];
    if (rule.kind === 'refused') {
      const err = await t.throwsAsync(planOf(SAMPLES[key]), undefined, flag);
      t.true(err.message.includes(flag) && err.message.includes(rule.why), `${flag}: ${err.message}`);
      continue;
    }
    const plan = await planOf(SAMPLES[key]);
    if (plan.kind !== 'single') {
      t.fail(`${flag}: expected a single-node plan`);
      continue;
    }
    t.is(plan.tsdArgv[0], 'run');
    const tsd = parseNodeArgv(plan.tsdArgv.slice(1));
    t.deepEqual(tsd[key], parseNodeArgv(SAMPLES[key])[key], flag);
    t.deepEqual(tsd, plan.config, `${flag}: tsd runs with exactly the configuration tsctl parsed`);
  }
});

test("multi-node: every flag reaches every node's tsd, is derived per node, or is refused naming the flag and why", async (t) => {
  for (const key of NODE_SETTING_KEYS) {
    const flag = flagName(key);
    const rule = CLUSTER_UP_RULES[key];
    const args = ['--nodes', '3', ...SAMPLES[key]];
    if (rule.kind === 'refused' || rule.kind === 'one-node-only') {
      const err = await t.throwsAsync(planOf(args), undefined, flag);
      t.true(err.message.includes(flag) && err.message.includes(rule.why), `${flag}: ${err.message}`);
      continue;
    }
    const options = netnsOf(await planOf(args));
    const expected = parseNodeArgv(SAMPLES[key])[key];
    nodeConfigs(options).forEach((tsd, k) => {
      const derive = DERIVED[key];
      if (rule.kind === 'every-node') t.deepEqual(tsd[key], expected, `${flag} on node-${k + 1}`);
      else if (derive) t.deepEqual(tsd[key], derive(k + 1, options.prefix), `${flag} derived for node-${k + 1}`);
      else t.fail(`${flag}: per-node without an expectation`);
    });
  }
});

test('multi-node: all the flags of the issue together reach all three nodes', async (t) => {
  const options = netnsOf(
    await planOf([
      '--nodes',
      '3',
      '--insecure-registry',
      '172.31.213.254:5000',
      '--heartbeat-ms',
      '250',
      '--node-down-after-ms',
      '3000',
      '--cgroup-parent',
      'ops',
    ]),
  );
  for (const [k, tsd] of nodeConfigs(options).entries()) {
    t.deepEqual(tsd.insecureRegistries, ['172.31.213.254:5000']);
    t.is(tsd.heartbeatMs, 250);
    t.is(tsd.nodeDownAfterMs, 3000);
    t.is(tsd.cgroupParent, `ops/tsc/node-${k + 1}`);
  }
});

test("multi-node: the settings each node derives are its own, and defaults stay tsd's defaults", async (t) => {
  const options = netnsOf(await planOf(['--nodes', '3', '--managers', '2', '--netns-prefix', 'fl', '--underlay-octet', '77']));
  const configs = nodeConfigs(options);
  for (const key of ['listen', 'metricsListen', 'nodeName', 'subnet', 'advertiseAddress', 'dataRoot', 'cgroupParent'] as const) {
    t.is(new Set(configs.map((c) => c[key])).size, 3, `${key} differs per node`);
  }
  t.deepEqual(
    configs.map((c) => c.advertiseAddress),
    ['172.31.77.1', '172.31.77.2', '172.31.77.3'],
  );
  t.deepEqual(
    configs.map((c) => c.listen),
    ['172.31.77.1:7420', '172.31.77.2:7420', '172.31.77.3:7420'],
  );
  t.deepEqual(
    configs.map((c) => c.apiSocket !== undefined),
    [true, true, false],
    'managers have an API socket, the worker not',
  );
  t.true(
    configs.every((c) => c.join === undefined && c.tokenFile === undefined),
    'join and the token file come from the join sequence, not the options',
  );
  const defaults = defaultConfig();
  for (const key of NODE_SETTING_KEYS) {
    if (CLUSTER_UP_RULES[key].kind === 'every-node')
      t.true(
        configs.every((c) => JSON.stringify(c[key]) === JSON.stringify(defaults[key])),
        `${flagName(key)} keeps tsd's default`,
      );
  }
});

test('--netns-prefix and --underlay-octet are refused for a single node, and --managers is bounded by --nodes', async (t) => {
  await t.throwsAsync(planOf(['--netns-prefix', 'abc']), { message: /--netns-prefix only applies with --nodes above 1/ });
  await t.throwsAsync(planOf(['--underlay-octet', '9']), { message: /--underlay-octet only applies with --nodes above 1/ });
  await t.throwsAsync(planOf(['--nodes', '2', '--managers', '3']), { message: /--managers must be from 1 to the number of nodes \(2\), got 3/ });
  await t.throwsAsync(planOf(['--nodes', '0']), { message: /--nodes must be a positive integer/ });
  await t.throwsAsync(planOf(['--nodes', 'two']), { message: /expected a whole number, got "two"/ });
});

test('several refused flags are all named in one error', async (t) => {
  const err = await t.throwsAsync(planOf(['--nodes', '2', '--listen', '10.0.0.1:1', '--node-name', 'x', '--token-file', '/run/flags-token']));
  t.regex(err.message, /--listen cannot be used with --nodes 2/);
  t.regex(err.message, /--node-name cannot be used with --nodes 2: the nodes are named node-1/);
  t.regex(err.message, /--token-file: cluster up starts a new cluster/);
});

test('a flag given with its default value is still refused where it has no meaning (given, not changed, decides)', async (t) => {
  await t.throwsAsync(planOf(['--nodes', '2', '--listen', defaultConfig().listen]), { message: /--listen cannot be used with --nodes 2/ });
});

test('more managers than one need the raft store; the refusal names --store', (t) => {
  const options = netnsOf(planClusterUp({ nodes: 3, managers: 2, store: 'memory' }, new Set()));
  t.throws(() => validateNetnsClusterOptions(options), { message: /--store memory cannot have 2 managers/ });
  t.notThrows(() => validateNetnsClusterOptions({ ...options, managers: 1 }));
});

test('a setting invalid for tsd is refused before any namespace is made, naming the flag', async (t) => {
  await t.throwsAsync(planOf(['--nodes', '2', '--bridge', 'a-name-longer-than-15']), { message: /--bridge must be a link name of at most 15 characters/ });
  // The netns cluster checks every node's settings too (the e2e tests build it without tsctl).
  const options = netnsOf(await planOf(['--nodes', '2']));
  t.throws(() => validateNetnsClusterOptions({ ...options, daemon: { ...options.daemon, heartbeatMs: 10 } }), {
    message: /--heartbeat-ms must be at least 50/,
  });
});

test("nodeArgv and tsd's parser round-trip every setting (defaults and samples)", (t) => {
  t.deepEqual(parseNodeArgv(nodeArgv(defaultConfig())), defaultConfig());
  const everything = parseNodeArgv(NODE_SETTING_KEYS.flatMap((key) => SAMPLES[key]));
  t.deepEqual(parseNodeArgv(nodeArgv(everything)), everything);
  for (const key of NODE_SETTING_KEYS) t.notDeepEqual(everything[key], defaultConfig()[key], flagName(key));
});
