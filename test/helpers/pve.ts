/** The PVE API simulator (test/pve-sim, plain JavaScript) as the tests start it. */
import * as fs from 'node:fs';
import * as path from 'node:path';
// eslint-disable-next-line @typescript-eslint/no-require-imports -- plain JavaScript (no allowJs in the tests' tsconfig): typed here by hand
const { startSimulator, DEFAULT_TOKEN_SECRET } = require('../pve-sim') as {
  startSimulator: (o?: Record<string, unknown>) => Promise<Sim>;
  DEFAULT_TOKEN_SECRET: string;
};

/* eslint-disable @typescript-eslint/no-explicit-any -- the simulator's model (guests, tasks, request params) is plain JavaScript that the tests read freely */
export interface Sim {
  url: string;
  port: number;
  token: string;
  fingerprint: string;
  certFile: string;
  options: Record<string, any>;
  templates: string[];
  requests: { method: string; path: string; params: Record<string, any>; status: number; auth: string; node?: string }[];
  violations: any[];
  tasks: any[];
  schemaChecked: boolean;
  schemaNote: string;
  faults: {
    nodeOffline(node: string, offline?: boolean): void;
    slow(ms: number, match?: RegExp | string): void;
    fail(status: number | { status: number; message?: string }, match: RegExp | string, count?: number, message?: string): void;
    failTask(match: { type?: string; vmid?: number }, result: string): void;
    moveGuest(vmid: number, node: string): void;
    expireTickets(): void;
    corruptArchive(vmid: number, on?: boolean): void;
    pbsVerifyFails(vmid: number, on?: boolean): void;
    nodeStats(node: string, stats: { cpu?: number; memUsed?: number; memTotal?: number; rootUsed?: number; rootTotal?: number }): void;
    storageUsage(id: string, usage: { used?: number; total?: number; active?: boolean }): void;
    clear(): void;
  };
  guest(vmid: number): any;
  backups(storage: string): string[];
  storagePath(id: string): string;
  advanceClock(ms: number): void;
  resetRequests(): void;
  close(): Promise<void>;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

let noted = false;

/** A 3-node cluster (pve1..pve3; CTs 100, 101, 103, VM 102), quick tasks, a root token and a privilege-separated one that sees guest 100 only. */
export async function sim(extra: Record<string, unknown> = {}): Promise<Sim> {
  const s = await startSimulator({
    quiet: true,
    taskDurationMs: 50,
    // as on a real PBS, a new backup has no verification state until a verify job ran
    pbsVerifyDelayMs: 60_000,
    tokens: [
      { id: 'root@pam!autopilot', secret: DEFAULT_TOKEN_SECRET, privsep: false },
      { id: 'root@pam!limited', secret: 'limited-secret', privsep: true, privs: { '/vms/100': ['VM.Audit'] } },
    ],
    ...extra,
  });
  if (!s.schemaChecked && !noted) {
    noted = true;
    // said plainly in the test output: the requests were not checked against the official API schema
    process.stderr.write(`\n*** PVE simulator: ${s.schemaNote} ***\n\n`);
  }
  return s;
}

/**
 * One simulator for a test file (given to `set` once started), closed at the end. After each
 * test, its faults are cleared, and a request real PVE would refuse fails the test that sent it.
 */
export function useSim(set: (s: Sim) => void, extra: Record<string, unknown> = {}): void {
  let current: Sim | null = null;
  beforeAll(async () => {
    current = await sim(extra);
    set(current);
  });
  afterAll(async () => {
    await current?.close();
  });
  afterEach(() => {
    if (!current) return;
    current.faults.clear();
    expect(current.violations).toEqual([]);
    current.violations.length = 0;
  });
}

/**
 * The `plugins.proxmox` block of a config that reaches the simulator with its root token
 * (the secret written to <dir>/token, as a user would keep it) and its pinned fingerprint;
 * `more` is further option lines, indented by four spaces.
 */
export function proxmoxConnection(s: Sim, dir: string, more = ''): string {
  const at = s.token.lastIndexOf('=');
  fs.writeFileSync(path.join(dir, 'token'), `${s.token.slice(at + 1)}\n`, { mode: 0o600 });
  return `plugins:
  proxmox:
    host: 127.0.0.1
    port: ${s.port}
    token_id: ${s.token.slice(0, at)}
    token_secret_file: ./token
    fingerprint: "${s.fingerprint}"
${more}`;
}
