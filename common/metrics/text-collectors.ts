// Metric families a component writes as exposition text itself, beside a prom-client registry.
// prom-client only renders series it holds as label objects; families with thousands of series
// whose label names vary per series (the container families) are cheaper written directly. A text
// collector is attached to the registry it belongs to, and exposition() serves both.
import * as client from 'prom-client';

export interface TextCollector {
  /** The family names it writes: a name prom-client also has is refused, as Registry.merge does. */
  readonly names: readonly string[];
  /** Its families in the text format, each preceded by a blank line ("" when it has none). */
  text(): Promise<string>;
}

const attached = new WeakMap<client.Registry, TextCollector[]>();

export function addTextCollector(registry: client.Registry, collector: TextCollector): void {
  const list = attached.get(registry);
  if (list === undefined) attached.set(registry, [collector]);
  else list.push(collector);
}

export function textCollectors(registry: client.Registry): readonly TextCollector[] {
  return attached.get(registry) ?? [];
}

/** Every family of `registries`, prom-client's then the text collectors', as one text body. */
// Registry (no type argument) is the Prometheus text format's, the one text collectors write.
export async function exposition(registries: client.Registry[]): Promise<{ contentType: string; body: string }> {
  const merged = client.Registry.merge(registries);
  const collectors = registries.flatMap(textCollectors);
  const names = new Set(merged.getMetricsAsArray().map((metric) => metric.name));
  for (const collector of collectors) {
    for (const name of collector.names) {
      if (names.has(name)) throw new Error(`A metric with the name ${name} has already been registered.`);
      names.add(name);
    }
  }
  const [own, ...texts] = await Promise.all([merged.metrics(), ...collectors.map((collector) => collector.text())]);
  return { contentType: merged.contentType, body: own + texts.join('') };
}
