import test from 'ava';
import {
  cpuNanos,
  durationMs,
  formatCpus,
  formatDuration,
  formatMemory,
  memoryBytes,
  parseCpuNanos,
  parseDurationMs,
  parseMemoryBytes,
  QuantityError,
} from '../../common/resources/quantity.js';

const Ki = 1024;
const Mi = 1024 ** 2;
const Gi = 1024 ** 3;

test('memory: Kubernetes binary and decimal suffixes', (t) => {
  t.is(memoryBytes('64Mi'), 64 * Mi);
  t.is(memoryBytes('1Gi'), Gi);
  t.is(memoryBytes('512Ki'), 512 * Ki);
  t.is(memoryBytes('1Ti'), 1024 * Gi);
  t.is(memoryBytes('1G'), 1e9);
  t.is(memoryBytes('500M'), 500e6);
  t.is(memoryBytes('2K'), 2000);
  t.is(memoryBytes('1.5Gi'), 1.5 * Gi);
});

test('memory: plain bytes and exponents', (t) => {
  t.is(memoryBytes('1e3'), 1000);
  t.is(memoryBytes('1E3'), 1000);
  t.is(memoryBytes('1024'), 1024);
  t.is(memoryBytes(4096), 4096);
  t.is(memoryBytes('0'), 0);
});

test('memory: Docker/Compose lowercase and xB suffixes are binary', (t) => {
  t.is(memoryBytes('64m'), 64 * Mi);
  t.is(memoryBytes('1g'), Gi);
  t.is(memoryBytes('512k'), 512 * Ki);
  t.is(memoryBytes('64MB'), 64 * Mi);
  t.is(memoryBytes('64mb'), 64 * Mi);
  t.is(memoryBytes('100b'), 100);
});

test('memory: fractions of a byte round up', (t) => {
  t.is(memoryBytes('0.1Ki'), 103);
});

test('memory: errors say what was expected', (t) => {
  const bad = parseMemoryBytes('64Mx');
  t.false(bad.ok);
  t.is(
    !bad.ok && bad.message,
    'invalid memory quantity "64Mx": expected a number with an optional unit Ki, Mi, Gi, Ti, K, M, G, T (or Docker-style b, k, m, g)',
  );
  for (const input of ['', 'Mi', '1KI', '1 Gi x', '1E', 'lots', '1..2Gi']) {
    t.false(parseMemoryBytes(input).ok, input);
  }
  t.regex((parseMemoryBytes('-1Gi') as { message: string }).message, /must not be negative/);
  t.regex((parseMemoryBytes(1.5) as { message: string }).message, /whole number/);
  t.regex((parseMemoryBytes('100Pi') as { message: string }).message, /too large/);
  t.throws(() => memoryBytes('nope'), { instanceOf: QuantityError });
});

test('cpu: cores and millicores to nanoCPUs', (t) => {
  t.is(cpuNanos('0.5'), 500_000_000);
  t.is(cpuNanos('500m'), 500_000_000);
  t.is(cpuNanos('2'), 2_000_000_000);
  t.is(cpuNanos(0.1), 100_000_000);
  t.is(cpuNanos(1.5), 1_500_000_000);
  t.is(cpuNanos('1e-3'), 1_000_000);
});

test('cpu: errors', (t) => {
  t.regex((parseCpuNanos('0.0000000001') as { message: string }).message, /finer than one nanoCPU/);
  t.regex((parseCpuNanos('2k') as { message: string }).message, /expected a number of CPUs like 0.5 or 2, or millicores like 500m/);
  t.false(parseCpuNanos('-1').ok);
  t.false(parseCpuNanos('').ok);
});

test('duration: Go-style units to milliseconds', (t) => {
  t.is(durationMs('5s'), 5000);
  t.is(durationMs('500ms'), 500);
  t.is(durationMs('1m'), 60_000);
  t.is(durationMs('1m30s'), 90_000);
  t.is(durationMs('1.5h'), 5_400_000);
  t.is(durationMs('0'), 0);
  t.is(durationMs('100us'), 1); // rounds up: a non-zero duration never becomes zero
});

test('duration: a bare number is an error, not a guess', (t) => {
  t.regex((parseDurationMs(5) as { message: string }).message, /needs a unit/);
  t.regex((parseDurationMs('5') as { message: string }).message, /needs a unit/);
  for (const input of ['', 's', '5 s', '5d', '-5s', '5s3']) t.false(parseDurationMs(input).ok, input);
});

test('formatting is the inverse for round values', (t) => {
  t.is(formatMemory(64 * Mi), '64Mi');
  t.is(formatMemory(1.5 * Gi), '1.5Gi');
  t.is(formatMemory(1000), '1000');
  t.is(formatCpus(0.1 + 0.2), '0.3');
  t.is(formatDuration(90_000), '1m30s');
  t.is(formatDuration(500), '500ms');
  t.is(formatDuration(0), '0s');
  t.is(formatDuration(3_600_000 + 1500), '1h1.5s');
  for (const text of ['1m30s', '500ms', '2h', '5s']) t.is(formatDuration(durationMs(text)), text);
});
