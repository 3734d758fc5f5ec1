// The netns clusters this process has made and not yet destroyed, as clean-up callbacks. Kept in a
// module of its own, with no imports, so that a test worker can hold on to it at start-up without
// loading the cluster code (test/helpers/worker-teardown.ts).
const live = new Map<object, () => Promise<void>>();

/** Records a cluster's clean-up under its state object until `forget(state)`. */
export function remember(state: object, destroy: () => Promise<void>): void {
  live.set(state, destroy);
}

export function forget(state: object): void {
  live.delete(state);
}

/** Destroys every cluster still recorded; failures are reported by each clean-up itself. */
export async function destroyLiveClusters(): Promise<void> {
  const pending = [...live.values()];
  live.clear();
  await Promise.allSettled(pending.map((destroy) => destroy()));
}
