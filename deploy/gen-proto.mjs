// Generates TypeScript types for proto/*.proto into proto/gen with @grpc/proto-loader's generator
// (protobufjs underneath). Run by `npm run build:proto`; the output is not committed.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const protoDir = join(root, 'proto');
const outDir = join(protoDir, 'gen');
rmSync(outDir, { recursive: true, force: true });
const files = readdirSync(protoDir).filter((f) => f.endsWith('.proto'));
execFileSync(
  join(root, 'node_modules/.bin/proto-loader-gen-types'),
  [
    '--longs=Number',
    '--enums=String',
    '--defaults',
    '--oneofs',
    '--keepCase=false',
    '--grpcLib=@grpc/grpc-js',
    `--outDir=${outDir}`,
    `-I${protoDir}`,
    ...files,
  ],
  { stdio: 'inherit' },
);

// The generator writes extension-less relative imports; NodeNext ESM needs the `.js` suffix.
function addJsSuffixes(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) addJsSuffixes(path);
    else if (entry.name.endsWith('.ts')) {
      const text = readFileSync(path, 'utf8').replace(/(from '\.{1,2}\/[^']*?)(?<!\.js)'/g, "$1.js'");
      writeFileSync(path, text);
    }
  }
}
addJsSuffixes(outDir);
