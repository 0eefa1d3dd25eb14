/** A recording HTTP server on 127.0.0.1: keeps every request, answers as each test scripts it. */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** when the request arrived (Date.now()) */
  at: number;
  /** when it was answered; unset while it is not (a delayed answer, or a client that gave up first) */
  answeredAt?: number;
  /** when the exchange ended: answered, or the connection closed by the client */
  closedAt?: number;
}

export interface Answer {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  delayMs?: number;
}

export class Recorder {
  readonly requests: Recorded[] = [];
  /** per path: answers used in order; the last one repeats */
  private readonly scripts = new Map<string, Answer[]>();
  private server!: http.Server;
  url = '';

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const path = (req.url ?? '/').split('?')[0];
        const recorded: Recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, at: Date.now() };
        this.requests.push(recorded);
        res.on('close', () => (recorded.closedAt = Date.now()));
        const list = this.scripts.get(path) ?? [];
        const a: Answer = (list.length > 1 ? list.shift() : list[0]) ?? {};
        const reply = (): void => {
          if (res.destroyed) return;
          recorded.answeredAt = Date.now();
          res.writeHead(a.status ?? 200, { 'content-type': 'application/json', ...(a.headers ?? {}) });
          res.end(a.body ?? '{}');
        };
        if (a.delayMs) setTimeout(reply, a.delayMs);
        else reply();
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  answer(path: string, ...answers: Answer[]): void {
    this.scripts.set(path, answers);
  }

  to(path: string): Recorded[] {
    return this.requests.filter((r) => r.url.split('?')[0] === path);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A `notifications:` block that sends every event, at once, to a recorder's /hook. */
export function webhookNotifications(url: string): string {
  return `notifications:
  cooldown: 0
  channels:
    - name: hook
      type: webhook
      url: ${url}/hook
      min_severity: info
`;
}
