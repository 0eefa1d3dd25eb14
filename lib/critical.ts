/**
 * Work that must not be cut short by a second Ctrl-C (a rollback in progress): the CLI asks
 * here before it exits on a repeated signal.
 */
const what: string[] = [];

export const critical = {
  async run<T>(label: string, fn: () => Promise<T>): Promise<T> {
    what.push(label);
    try {
      return await fn();
    } finally {
      what.splice(what.lastIndexOf(label), 1);
    }
  },
  /** what is in progress, or null */
  active(): string | null {
    return what.length ? what.join(', ') : null;
  },
};
