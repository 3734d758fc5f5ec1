// The container families in Prometheus's text format (version 0.0.4), written in one pass (pure).
// prom-client would rebuild every series' label string from its label object for each of the
// 13 families; with 100 containers that is ~1,500 series and ~6 MiB of garbage per scrape
// (test/bench/scrape.ts). Here each container's label string is built once and every sample
// line is that string plus the family name and value. The layout is prom-client's: a family is
// HELP, TYPE, its samples, and families are separated by a blank line.
import { CONTAINER_METRICS, containerValues, type ContainerMetricName, type SeriesLabels } from './container-series.js';
import type { ContainerReading } from './usage.js';

/** A label value as the text format wants it: backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  // Most values need nothing: no new string then.
  if (!/[\\"\n]/.test(value)) return value;
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** `a="x",b="y"`, in the labels' own order (prom-client's too). Names are valid label names already. */
export function labelText(labels: SeriesLabels): string {
  let out = '';
  for (const name in labels) out += `${out === '' ? '' : ','}${name}="${escapeLabelValue(labels[name]!)}"`;
  return out;
}

export interface ContainerSeriesInput {
  labels: SeriesLabels;
  reading: ContainerReading;
  startSeconds: number | undefined;
}

/**
 * The text of every container family, each preceded by a blank line so that it follows a
 * prom-client registry's output (which ends in one line feed) as prom-client would have joined it.
 * Families without samples still get HELP and TYPE, as registered prom-client metrics do.
 */
export function containerFamiliesText(containers: Iterable<ContainerSeriesInput>): string {
  const lines = new Map<ContainerMetricName, string>();
  for (const { labels, reading, startSeconds } of containers) {
    const base = labelText(labels);
    containerValues(reading, startSeconds, (name, value, extra) => {
      const extraText = extra === undefined ? '' : labelText(extra);
      const all = base === '' ? extraText : extraText === '' ? base : `${base},${extraText}`;
      const line = `${name}${all === '' ? '' : `{${all}}`} ${value}\n`;
      lines.set(name, (lines.get(name) ?? '') + line);
    });
  }
  let out = '';
  for (const family of CONTAINER_METRICS) {
    out += `\n# HELP ${family.name} ${family.help}\n# TYPE ${family.name} ${family.type}\n${lines.get(family.name) ?? ''}`;
  }
  return out;
}
