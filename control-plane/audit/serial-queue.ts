// Runs async tasks one at a time, in the order they were given, whatever each one's outcome.

export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();

  /** Runs `task` after every task given before it has settled; its result or error goes to the caller only. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    // The next task waits for this one to settle, but does not inherit its failure.
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
