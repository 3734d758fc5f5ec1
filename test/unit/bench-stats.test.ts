// The summary figures every bench reports (test/bench/stats.ts).
import test from 'ava';
import { median, percentile } from '../bench/stats.js';

test('percentile is by nearest rank and always one of the samples', (t) => {
  const samples = [5, 1, 4, 2, 3, 6, 8, 7, 10, 9];
  t.is(percentile(samples, 50), 5);
  t.is(percentile(samples, 90), 9);
  t.is(percentile(samples, 99), 10);
  t.is(percentile(samples, 100), 10);
  t.is(percentile(samples, 1), 1);
  t.is(percentile([42], 99), 42);
  t.deepEqual(samples, [5, 1, 4, 2, 3, 6, 8, 7, 10, 9], 'the samples are left in their order');
});

test('median is the middle sample, or the mean of the two middle ones', (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.is(median([7]), 7);
});

test('no samples give NaN, not a number that looks measured', (t) => {
  t.true(Number.isNaN(percentile([], 50)));
  t.true(Number.isNaN(median([])));
});
