/**
 * The one transient line at the bottom of a terminal's stderr (a backup's progress), redrawn in
 * place with `\r` and erased with `ESC [K`. Log lines are written above it: the line is erased
 * first, so that a log line never starts in the middle of it, and drawn again after.
 */
export class StatusLine {
  private text = '';

  constructor(private readonly out: NodeJS.WritableStream = process.stderr) {}

  /** Shows `text` in place of the current status line. */
  show(text: string): void {
    this.text = text;
    this.out.write(`\r\x1b[K${text}`);
  }

  /** Erases the status line (before the command prints anything else). */
  clear(): void {
    if (!this.text) return;
    this.text = '';
    this.out.write('\r\x1b[K');
  }

  /** Writes a whole line (ending in a newline) above the status line. */
  writeAbove(line: string): void {
    if (!this.text) {
      this.out.write(line);
      return;
    }
    this.out.write(`\r\x1b[K${line}${this.text}`);
  }
}

/** The status line of this process's stderr. */
export const stderrStatus = new StatusLine();
