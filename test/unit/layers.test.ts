// The product's layers, bottom to top, held against the real import graph (docs/ARCHITECTURE.md
// "Layers"). A file may import its own layer and the layers its rule lists, nothing else: the
// manager (control-plane/) and the agent (agent/) never import each other, both speak through
// common/, and only the composition roots above them (daemon/, cli/) see both. Product code never
// imports the test suite or the deploy scripts; the tests may import anything, the deploy scripts
// anything but the tests.
import test from 'ava';

import { importEdges, importSpecifiers, REPO_ROOT, typeScriptFiles, type ImportEdge } from '../helpers/import-graph.js';

const PRODUCT_LAYERS = ['proto', 'common', 'control-plane', 'agent', 'daemon', 'cli'] as const;
const TOOLING = ['test', 'deploy'] as const;
type Layer = (typeof PRODUCT_LAYERS)[number] | (typeof TOOLING)[number];

/** What each layer may import besides itself. */
const MAY_IMPORT: Record<Layer, readonly Layer[]> = {
  proto: [],
  common: ['proto'],
  'control-plane': ['proto', 'common'],
  agent: ['proto', 'common'],
  daemon: ['proto', 'common', 'control-plane', 'agent'],
  cli: ['proto', 'common', 'control-plane', 'agent', 'daemon'],
  test: [...PRODUCT_LAYERS, 'deploy'],
  // The deploy scripts ship with the product (the quickstart runs them): no test scaffolding in them.
  deploy: [...PRODUCT_LAYERS],
};

function layerOf(file: string): Layer | undefined {
  const top = file.split('/')[0];
  return (Object.keys(MAY_IMPORT) as Layer[]).find((layer) => layer === top);
}

/** One line per import the rules forbid, naming both files and both layers. */
function violations(edges: readonly ImportEdge[]): string[] {
  const out: string[] = [];
  for (const edge of edges) {
    const from = layerOf(edge.from);
    const to = layerOf(edge.to);
    if (from === undefined) out.push(`${edge.from} is in no layer: add its folder to MAY_IMPORT`);
    else if (to === undefined) out.push(`${edge.from}:${edge.line} → ${edge.to}: imports outside every layer`);
    else if (from !== to && !MAY_IMPORT[from].includes(to)) out.push(`${edge.from}:${edge.line} → ${edge.to}: ${from} may not import ${to}`);
  }
  return out;
}

test('the import graph respects the layers', (t) => {
  const files = typeScriptFiles(REPO_ROOT);
  const unlayered = files.filter((f) => layerOf(f) === undefined);
  t.deepEqual(unlayered, [], `TypeScript outside every layer (give its folder a rule):\n${unlayered.join('\n')}`);

  const edges = importEdges(REPO_ROOT, files);
  const byLayer = new Map<Layer, number>();
  for (const edge of edges) byLayer.set(layerOf(edge.from)!, (byLayer.get(layerOf(edge.from)!) ?? 0) + 1);
  t.log(`${files.length} files, ${edges.length} relative imports: ${[...byLayer].map(([l, n]) => `${l} ${n}`).join(', ')}`);
  // The graph must be the real one, not an empty reading of it: every product layer but proto's
  // generated code imports something, and the composition root imports both halves.
  for (const layer of ['common', 'control-plane', 'agent', 'daemon', 'cli'] as const) t.true((byLayer.get(layer) ?? 0) > 0, `no imports read from ${layer}/`);
  for (const half of ['control-plane', 'agent'] as const) {
    t.true(
      edges.some((e) => layerOf(e.from) === 'daemon' && layerOf(e.to) === half),
      `daemon/ imports nothing from ${half}/`,
    );
  }

  const found = violations(edges);
  t.deepEqual(found, [], `imports against the layers:\n${found.join('\n')}`);
});

test('the rules refuse upward and sideways imports (self-check)', (t) => {
  const edge = (from: string, to: string): ImportEdge => ({ from, to, line: 1 });
  t.deepEqual(violations([edge('agent/worker/worker.ts', 'control-plane/api/server.ts')]), [
    'agent/worker/worker.ts:1 → control-plane/api/server.ts: agent may not import control-plane',
  ]);
  t.deepEqual(violations([edge('control-plane/network/node-view.ts', 'agent/network/ipv4.ts')]), [
    'control-plane/network/node-view.ts:1 → agent/network/ipv4.ts: control-plane may not import agent',
  ]);
  t.deepEqual(violations([edge('common/resources/types.ts', 'control-plane/store/keys.ts')]), [
    'common/resources/types.ts:1 → control-plane/store/keys.ts: common may not import control-plane',
  ]);
  t.deepEqual(violations([edge('control-plane/api/server.ts', 'daemon/config.ts')]), [
    'control-plane/api/server.ts:1 → daemon/config.ts: control-plane may not import daemon',
  ]);
  t.deepEqual(violations([edge('daemon/main.ts', 'cli/client.ts')]), ['daemon/main.ts:1 → cli/client.ts: daemon may not import cli']);
  t.deepEqual(violations([edge('cli/cluster.ts', 'test/helpers/tsd-node.ts')]), ['cli/cluster.ts:1 → test/helpers/tsd-node.ts: cli may not import test']);
  t.deepEqual(violations([edge('cli/cluster.ts', 'deploy/build-example-image.ts')]), [
    'cli/cluster.ts:1 → deploy/build-example-image.ts: cli may not import deploy',
  ]);
  t.deepEqual(violations([edge('tools/x.ts', 'common/resources/types.ts')]), ['tools/x.ts is in no layer: add its folder to MAY_IMPORT']);
  // What is allowed stays allowed.
  t.deepEqual(
    violations([
      edge('daemon/daemon.ts', 'agent/worker/worker.ts'),
      edge('daemon/manager.ts', 'control-plane/api/server.ts'),
      edge('agent/session/agent-session.ts', 'common/dispatcher/assignments.ts'),
      edge('common/dispatcher/stack-files.ts', 'proto/gen/tessera/dispatcher/v1/StackFile.ts'),
      edge('cli/cluster.ts', 'daemon/node-options.ts'),
      edge('test/unit/x.test.ts', 'agent/worker/worker.ts'),
    ]),
    [],
  );
});

test('import specifiers are read from code only, across lines, and from dynamic imports', (t) => {
  const source = [
    'import {',
    '  a,',
    '  type B,',
    "} from '../one.js';",
    'import type { C } from "./two.js";',
    "import './side-effect.js';",
    "export { d } from '../three.js';",
    "export * as e from './four.js';",
    "// import { no } from './in-line-comment.js';",
    "/* import { no } from './in-block-comment.js'; */",
    'const text = "import { no } from \'./in-string.js\'";',
    "const template = `import { no } from './in-template.js' ${await import('./in-template-expression.js')}`;",
    'const quote = /[\'"]/;',
    "const later = await import('./five.js');",
    'const url = import.meta.url;',
    "export const from = 'not-an-import';",
    'const computed = import(name);',
  ].join('\n');
  t.deepEqual(
    importSpecifiers(source).map((s) => `${s.line}:${s.specifier}`),
    ['4:../one.js', '5:./two.js', '6:./side-effect.js', '7:../three.js', '8:./four.js', '12:./in-template-expression.js', '14:./five.js'],
  );
});
