/**
 * The public plugin contract: everything a plugin author needs, and all that a plugin
 * may rely on. Built-in plugins are written against exactly this module, the way a
 * plugins.d author would write one; the host checks every plugin against it before
 * creating it. It is longer than the ~400 lines the rest of core/ keeps to, on purpose: the
 * whole public API in one file of types that an author reads top to bottom, importing nothing.
 *
 * A plugin module exports (as `module.exports`, `export default`, or `exports.plugin`)
 * one definition object, or an array of them:
 *
 *   module.exports = {
 *     name: 'my-service', kind: 'service', version: '1.0.0', apiVersion: '^1.0.0',
 *     serviceSchema: { properties: { data_dir: { type: 'string', 'x-path': true } }, required: ['data_dir'] },
 *     create(ctx) { return { backupSources(service) { return { paths: [{ path: service.data_dir }] } } } },
 *   };
 *
 * The contract grows in minor versions (docs/plugins.md lists what each added); 1.6 adds
 * HypervisorPlugin.nodeResources (NodeResources), what the monitor asks about nodes.
 */

/** The version of this contract. A plugin's `apiVersion` is a semver range that must include it. */
export const PLUGIN_API_VERSION = '1.6.0';

export type PluginKind = 'hypervisor' | 'service' | 'notification';

/**
 * A JSON Schema (draft-07, as ajv reads it). Two extensions:
 * - `"x-secret": true` on a string property `token` also accepts `token_file` (read from a file)
 *   and `token_command` (a command's output); the value is masked in every log line and output.
 * - `"x-path": true` on a string resolves a relative path against the config file's folder.
 */
export type JsonSchema = Record<string, unknown>;

export interface PluginLogger {
  error(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
}

/** A key/value store in the state database that belongs to this plugin alone. */
export interface PluginStore {
  get<T = unknown>(key: string, fallback?: T): T | undefined;
  set(key: string, value: unknown): void;
  delete(key: string): void;
  exists(key: string): boolean;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string;
  /** milliseconds (default 10 minutes) */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** One HTTP request, as ctx.http takes it. */
export interface HttpRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** ms (default 15 s) */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What ctx.http returns for a 2xx answer. */
export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * What a plugin may set on an Error it throws (since 1.4), all optional; the host reads them
 * and wraps the error in its PluginError, which names the plugin and the operation:
 * - `hint`: what the user should do, shown under the message;
 * - `retryAfterMs`: for a notification, when to try again (ctx.http sets it from Retry-After);
 * - `permanent`: trying again cannot help (a 401, a wrong URL): a notification is not retried;
 * - `changed: false`: the operation failed before it changed anything (a command that never
 *   reached the guest), so there is nothing to roll back.
 */
export interface PluginErrorFields {
  hint?: string;
  retryAfterMs?: number;
  permanent?: boolean;
  changed?: boolean;
}

/** The host that runs the plugin (since 1.4). */
export interface HostInfo {
  /** the version of this contract the host implements, e.g. '1.6.0' */
  apiVersion: string;
  /** homelab-autopilot's own version */
  version: string;
}

/** What `create()` receives. */
export interface PluginContext {
  /** a logger whose lines are labelled with the plugin's name */
  logger: PluginLogger;
  /** this plugin's own store in the state database */
  store: PluginStore;
  /** aborted when the run is cancelled (SIGINT, SIGTERM) */
  signal: AbortSignal;
  /** the plugin's options from `plugins.<name>` in the config, validated against `optionsSchema` */
  options: Record<string, unknown>;
  /** the folder of the main config file */
  configDir: string;
  /** a folder of this plugin's own under the state directory (<state_dir>/plugins/<name>; since 1.3); create it when you first write, never on a dry run */
  dataDir: string;
  /** runs a command without a shell; never throws for a non-zero exit code */
  exec(command: string, args: string[], options?: ExecOptions): Promise<ExecResult>;
  /**
   * One HTTP request (since plugin API 1.1). Throws on a network error, a time-out or a status
   * outside 2xx; the error has `status`, for 429 and 503 `retryAfterMs` from Retry-After, and
   * `permanent: true` when trying again cannot help (a 4xx other than 408 and 429, a TLS error,
   * a malformed URL, a redirect). Give `timeoutMs` from `op.deadline` to stay within a budget.
   */
  http(request: HttpRequest): Promise<HttpResponse>;
  /** The verified archives of the backup engine (since plugin API 1.3): tar | zstd, readable by GNU tar and zstd alone. */
  archive: ArchiveTools;
  /** the host's versions, for feature checks at run time (since 1.4) */
  host: HostInfo;
}

export interface ArchiveTools {
  /** Writes `dest` (.tar.zst) from absolute paths; members are stored relative to /. */
  create(o: {
    sources: string[];
    dest: string;
    exclude?: string[];
    signal?: AbortSignal;
  }): Promise<{ path: string; size: number; sha256: string }>;
  /** Size, checksum, a full decompress and a tar listing. */
  verify(
    file: string,
    expect: { size?: number; sha256?: string },
    signal?: AbortSignal,
  ): Promise<{ ok: boolean; error?: string; entries?: number }>;
  /** Restores an archive made by create() to where its members came from (tar -x -C /). */
  extract(file: string, signal?: AbortSignal): Promise<void>;
}

/** What every operation receives. */
export interface OperationContext {
  signal: AbortSignal;
  logger: PluginLogger;
  dryRun: boolean;
  /** when the operation must be done by (epoch ms), when it has a budget: size your own time-outs to it */
  deadline?: number;
  /** tells the user how long work is going (shown on a terminal; since 1.3) */
  progress?(message: string): void;
  /**
   * Reports a problem that does not stop the operation (since 1.5; call it as `op.warn?.(…)`):
   * logged, and carried into the result's warnings, its --json and its alert. Backup hooks get it.
   */
  warn?(message: string): void;
}

interface DefinitionBase<K extends PluginKind, I> {
  /** unique; letters, digits, '-' and '_' */
  name: string;
  kind: K;
  /** the plugin's own version */
  version: string;
  /** the contract versions it works with, a semver range such as '^1.0.0' */
  apiVersion: string;
  description?: string;
  /** schema of the plugin's options, given in the config under `plugins.<name>` */
  optionsSchema?: JsonSchema;
  /**
   * What the instance can do (since 1.4): the names of the optional methods it implements.
   * When given, the host checks each against the instance and uses this list; when left out,
   * the host reads it from the methods the instance has. `plugins list` shows it.
   */
  capabilities?: string[];
  create(ctx: PluginContext): I | Promise<I>;
}

/** What every plugin instance may implement (since 1.4). */
export interface Disposable {
  /** Closes connections and timers; called once when the command or daemon ends. */
  dispose?(): void | Promise<void>;
}

// ---- service plugins -----------------------------------------------------------------------

/** A service entry of the config, with the keys its plugin's serviceSchema allows. */
export interface ServiceConfig {
  name: string;
  type: string;
  enabled: boolean;
  backup: boolean;
  [key: string]: unknown;
}

export interface BackupPath {
  /** an absolute path */
  path: string;
  /** a missing required path fails the backup; a missing optional one is skipped with a warning */
  required: boolean;
}

export interface BackupSources {
  paths: BackupPath[];
  /** GNU tar --exclude patterns */
  exclude?: string[];
  /**
   * Files stored in the archive under another absolute name (since 1.5): the file at `path`
   * (inside one of the paths) is archived as `as`, so that a restore puts it there; for
   * example a consistent copy of a database, stored where the live one sits.
   */
  storeAs?: { path: string; as: string }[];
}

export interface ServicePlugin extends Disposable {
  /** What the archive of this service holds. The engine archives, verifies, copies and prunes. */
  backupSources(service: ServiceConfig, op: OperationContext): BackupSources | Promise<BackupSources>;
  /** Runs before the archive is made (for example to dump a database into a backed-up folder). Not called on --dry-run. */
  beforeBackup?(service: ServiceConfig, op: OperationContext): void | Promise<void>;
  /** Runs after the archive, whether it succeeded or not (for example to restart what beforeBackup stopped). Not called on --dry-run. */
  afterBackup?(service: ServiceConfig, op: OperationContext, outcome: { ok: boolean; error?: string }): void | Promise<void>;
  /** Safe updates of this service (since 1.3). */
  updater?: ServiceUpdater;
}

/** A snapshot taken before an update (a hypervisor snapshot, or a plugin's own: image digests and data). */
export interface SnapshotInfo {
  /** the name or id to roll back to */
  id: string;
  /** ISO time */
  time: string;
  description?: string;
  /** the plugin's own data about it (kept in state) */
  data?: Record<string, unknown>;
}

export interface UpdateResult {
  /** false when there was nothing to update */
  changed: boolean;
  summary: string;
}

/**
 * What a service plugin implements to be updated safely (since plugin API 1.3). The update
 * engine calls snapshot(), update(), checks health, and rollback() when health fails.
 */
export interface ServiceUpdater {
  /** problems that forbid updating now (for example too little free space), as sentences */
  precheck?(service: ServiceConfig, op: OperationContext & { minFreeBytes?: number }): Promise<string[]>;
  /** what snapshot() and update() would do, in a line each, for --dry-run */
  describeUpdate?(service: ServiceConfig, op: OperationContext): Promise<{ snapshot: string; update: string; rollback: string }>;
  snapshot(service: ServiceConfig, name: string, op: OperationContext): Promise<SnapshotInfo>;
  update(service: ServiceConfig, op: OperationContext): Promise<UpdateResult>;
  rollback(service: ServiceConfig, snapshot: SnapshotInfo, op: OperationContext): Promise<void>;
  /** removes a snapshot this plugin made (older ones are removed after a good update) */
  deleteSnapshot?(service: ServiceConfig, snapshot: SnapshotInfo, op: OperationContext): Promise<void>;
  /** whether the service's containers or processes run (the `running` health check) */
  isRunning?(service: ServiceConfig, op: OperationContext): Promise<boolean>;
  /**
   * since 1.5: fetches the new version without touching the service (pulls images) and says
   * whether there is anything new. Called after the pre-checks, before the snapshot;
   * `changed: false` ends the update as "up to date" (no snapshot, nothing stopped), and
   * update() is only called after a `changed: true`.
   */
  prepare?(service: ServiceConfig, op: OperationContext): Promise<UpdateResult>;
  /**
   * since 1.5: when each of the service's containers or processes last started, so that
   * validation fails when one restarts within the settle window
   */
  starts?(service: ServiceConfig, op: OperationContext): Promise<ServiceStart[]>;
}

/** One container or process of a service, as ServiceUpdater.starts() reports it (since 1.5). */
export interface ServiceStart {
  /** the container's or process's id */
  id: string;
  /** when it last started (ISO time, or any text that changes on a restart) */
  startedAt: string;
  /** how often it was restarted, when known */
  restarts?: number;
}

export interface ServicePluginDefinition extends DefinitionBase<'service', ServicePlugin> {
  /** schema of the keys a service of this type may set beyond the common ones (name, type, enabled, backup, …) */
  serviceSchema?: JsonSchema;
}

// ---- hypervisor plugins --------------------------------------------------------------------

export interface GuestRef {
  /** the service this guest belongs to */
  service: string;
  /** the hypervisor's own id for it (a guest number, a container name, a unit) */
  id: string;
  /** the service type (for hypervisors that provide several, such as lxc and vm) */
  type?: string;
  /** the whole service entry, with the keys of the hypervisor's guestTypes schema (since 1.2) */
  config?: ServiceConfig;
}

export interface GuestStatus {
  id: string;
  state: 'running' | 'stopped' | 'paused' | 'unknown' | 'missing';
  /** where it runs now */
  node?: string;
  name?: string;
  uptimeSeconds?: number;
  /** addresses without prefix length */
  ips?: string[];
  /** a lock the hypervisor holds on it (for example 'backup') */
  lock?: string;
  details?: Record<string, unknown>;
}

/** A storage as a node sees it (since 1.6); sizes in bytes. */
export interface NodeStorage {
  storage: string;
  used: number;
  total: number;
  /** false when the node cannot reach it now */
  active: boolean;
}

/** The resources of one hypervisor node (since 1.6); sizes in bytes, null when not known (an offline node). */
export interface NodeResources {
  node: string;
  online: boolean;
  /** CPU use, 0..1 */
  cpu: number | null;
  memUsed: number | null;
  memTotal: number | null;
  /** its root file system */
  rootUsed: number | null;
  rootTotal: number | null;
  storages: NodeStorage[];
  /** why the node's figures could not be read (an online node that did not answer) */
  error?: string;
}

export interface ClusterStatus {
  /** null for a single host without a cluster */
  name: string | null;
  quorate: boolean;
  nodes: { node: string; online: boolean }[];
}

/** Where a native backup goes (since 1.2; decided by the plugin's resolveBackupTarget since 1.4). */
export interface GuestBackupTarget {
  /** the hypervisor's storage id */
  storage: string;
  /** the plugin's word for the kind of storage, shown to users (for example 'storage', or the name of a backup server's kind) */
  kind: string;
  /**
   * the storage verifies and prunes its backups itself (a deduplicating backup server): the engine
   * records a new backup as pending verification and never prunes there (since 1.4)
   */
  managed?: boolean;
  /** for example snapshot | suspend | stop */
  mode: string;
  /** for example zstd | gzip | lzo | none */
  compress: string;
  notesTemplate?: string;
  protected?: boolean;
  /** which config rule chose this storage, for messages (since 1.4) */
  rule?: string;
  /** how the storage is named to users, e.g. the backup server's product name (since 1.4) */
  label?: string;
  /** where this host can read the storage's files (in the plugin's own layout beneath), for a decompress test (since 1.4) */
  path?: string;
}

export interface GuestBackupPlan {
  guest: string;
  node: string;
  state: GuestStatus['state'];
  storage: string;
  /** the mode it will really use (a stopped guest is backed up in stop mode) */
  mode: string;
  compress: string;
  notes?: string[];
  /** the hypervisor's name for its backup tool, shown in plans (since 1.4) */
  method?: string;
}

/** One backup of a guest as the hypervisor lists it. */
export interface GuestBackupInfo {
  /** the hypervisor's id for it (a PVE volid) */
  id: string;
  storage: string;
  /** ISO time of the backup */
  time: string;
  size: number;
  format?: string;
  protected: boolean;
  notes?: string;
  /** the verification state the storage reports ('ok' | 'failed'), or null when it has none */
  verification: 'ok' | 'failed' | null;
  /** the archive's file name, for storages whose files this host can read */
  file?: string;
}

export interface GuestBackupResult extends GuestBackupInfo {
  node: string;
  mode: string;
  warnings: string[];
  /** the hypervisor's task id */
  task?: string;
  /** the backup file as this host can read it (absolute), for a decompress test; absent when it cannot (since 1.4) */
  localFile?: string;
  /** the hypervisor's name for its backup tool, used to label its warnings (since 1.4) */
  method?: string;
  /** on a storage that verifies later (managed): where and when it will be verified, as a phrase that follows the size (since 1.4) */
  verificationNote?: string;
}

export interface HypervisorPlugin extends Disposable {
  /** The current state of a guest. */
  guestStatus(guest: GuestRef, op: OperationContext): Promise<GuestStatus>;
  /** The state of several guests at once (one query where the hypervisor allows it). Since 1.2. */
  guestStatuses?(guests: GuestRef[], op: OperationContext, opts?: { ips?: boolean }): Promise<GuestStatus[]>;
  /** The cluster behind the guests: its nodes and whether it has quorum. Since 1.2. */
  clusterStatus?(op: OperationContext): Promise<ClusterStatus>;
  /**
   * Every node's CPU, memory, root file system and storages, for the monitor (since 1.6): one
   * answer for the whole cluster, offline nodes included (online: false, figures null).
   */
  nodeResources?(op: OperationContext): Promise<NodeResources[]>;
  /** What backupGuest would do, without changing anything. Since 1.2. */
  planBackup?(guest: GuestRef, target: GuestBackupTarget, op: OperationContext): Promise<GuestBackupPlan>;
  /** A native backup of one guest (the hypervisor's own tool); resolves when it is complete. Since 1.2. */
  backupGuest?(guest: GuestRef, target: GuestBackupTarget, op: OperationContext): Promise<GuestBackupResult>;
  /** The backups of a guest on a storage, oldest first. Since 1.2. */
  listBackups?(guest: GuestRef, storage: string, op: OperationContext): Promise<GuestBackupInfo[]>;
  /** Deletes one backup. Since 1.2. */
  deleteBackup?(guest: GuestRef, backup: { id: string; storage: string }, op: OperationContext): Promise<void>;
  /** Snapshots of a guest, oldest first. Since 1.3. */
  listSnapshots?(guest: GuestRef, op: OperationContext): Promise<SnapshotInfo[]>;
  /** Takes a snapshot named `name` (letters, digits, '_', starting with a letter). Since 1.3. */
  createSnapshot?(guest: GuestRef, name: string, description: string, op: OperationContext): Promise<SnapshotInfo>;
  /** Rolls the guest back to a snapshot and starts it again if it was running. Since 1.3. */
  rollbackSnapshot?(guest: GuestRef, snapshot: SnapshotInfo, op: OperationContext): Promise<void>;
  deleteSnapshot?(guest: GuestRef, snapshot: SnapshotInfo, op: OperationContext): Promise<void>;
  /** Runs a command inside the guest (no shell unless argv names one). Since 1.3. */
  execInGuest?(guest: GuestRef, argv: string[], op: OperationContext & { timeoutMs?: number }): Promise<ExecResult>;
  /** Problems that forbid a snapshot and update now (for example too little free space on the guest's storage). Since 1.3. */
  precheckGuest?(guest: GuestRef, op: OperationContext & { minFreeBytes?: number }): Promise<string[]>;
  /**
   * Where a guest's native backup goes (since 1.4), decided from the service entry and the
   * config's `backup:` section (its `guests:` defaults and any keys this plugin adds there
   * through `backupSchema`). Without it, the engine uses backup.guests.storage.
   */
  resolveBackupTarget?(guest: GuestRef, backup: Record<string, unknown>): GuestBackupTarget;
  /** How a person names the guest in messages, e.g. 'CT 100' or 'VM 101' (since 1.4; default: '<type> <id>'). */
  describeGuest?(guest: GuestRef): string;
  /** What a person runs to roll the guest back by hand: the commands, in the hypervisor's own tools (since 1.4). */
  manualRollback?(guest: GuestRef, snapshot: SnapshotInfo): string;
}

export interface HypervisorPluginDefinition extends DefinitionBase<'hypervisor', HypervisorPlugin> {
  /**
   * Service types this hypervisor provides (since 1.2): services of these types are its guests,
   * backed up natively. Each maps to the schema of the keys such a service may set beyond the
   * common ones, as serviceSchema does for service plugins.
   */
  guestTypes?: Record<string, JsonSchema>;
  /** The key of a service entry that holds the guest's id (since 1.4; default 'id'). */
  idKey?: string;
  /**
   * The prefix of the destination under which the engine records this hypervisor's backups
   * in state, as `<prefix>:<storage>` (since 1.4; default: the plugin's name).
   */
  destinationPrefix?: string;
  /**
   * Keys this plugin adds to the config's `backup:` section (since 1.4), each with its schema,
   * for example where guests are backed up; they reach resolveBackupTarget.
   */
  backupSchema?: Record<string, JsonSchema>;
}

// ---- notification plugins ------------------------------------------------------------------

export type Severity = 'info' | 'success' | 'warning' | 'critical';

/** One colour per severity (#rrggbb), so that every channel shows the same one. */
export const SEVERITY_COLOR: Record<Severity, string> = { info: '#3b82f6', success: '#16a34a', warning: '#d97706', critical: '#dc2626' };

/**
 * `text` cut to at most `max` code points, ending in '…' when cut. A cut never splits a
 * surrogate pair (an emoji), so what a channel receives is valid UTF-8.
 */
export function cutText(text: string, max: number): string {
  const points = Array.from(text);
  if (points.length <= max) return text;
  return max <= 0 ? '' : `${points.slice(0, max - 1).join('')}…`;
}

export interface FitOptions {
  /** what the channel counts (default UTF-16 units, as JavaScript and most APIs do; ntfy: UTF-8 bytes) */
  measure?: (s: string) => number;
  /** applied to each line before it is measured (a channel's markup escaping) */
  escape?: (s: string) => string;
  /** the most code points one line may take (default an eighth of the limit, at least 100) */
  maxLine?: number;
}

/**
 * Fits a message's text into a channel's limit item by item: each line (an event of a digest,
 * an error) is cut to `maxLine` code points, then escaped, and lines are kept while they fit;
 * the rest are counted in a last line "... and N more". One long error never pushes the others
 * out, and a cut never splits a surrogate pair.
 */
export function fitText(text: string, limit: number, o: FitOptions = {}): string {
  const measure = o.measure ?? ((s: string): number => s.length);
  const escape = o.escape ?? ((s: string): string => s);
  const maxLine = o.maxLine ?? Math.max(100, Math.floor(limit / 8));
  const lines = text.split('\n');
  const out: string[] = [];
  const joined = (parts: string[], rest: number): string => [...parts, ...(rest ? [`... and ${rest} more`] : [])].join('\n');
  for (const [i, raw] of lines.entries()) {
    const rest = lines.length - i - 1;
    const fits = (k: number): boolean => measure(joined([...out, escape(cutText(raw, k))], rest)) <= limit;
    let keep = Math.min(maxLine, Array.from(raw).length);
    if (!fits(keep)) {
      // what was kept so far fits with "... and N more" for this line and the rest (checked when the last was added)
      if (out.length) return joined(out, lines.length - i);
      // the first line alone is too long: as much of it as fits
      while (keep > 0 && !fits(keep)) keep = Math.floor(keep * 0.9);
      if (keep <= 0) return joined([], lines.length);
    }
    out.push(escape(cutText(raw, keep)));
  }
  return out.join('\n');
}

export interface NotificationMessage {
  /** for example backup_failed */
  event: string;
  severity: Severity;
  /** the service or host it is about */
  subject: string;
  title: string;
  text: string;
  details?: Record<string, unknown>;
  time: string;
}

export interface NotificationPlugin extends Disposable {
  /**
   * Delivers one message to this channel; throws when delivery failed. An error with
   * `retryAfterMs` (as ctx.http's errors for 429) makes the engine wait that long before
   * trying again; the engine retries with backoff within the channel's time budget. An error
   * with `permanent: true` is not retried (see PluginErrorFields).
   */
  send(message: NotificationMessage, channel: Record<string, unknown>, op: OperationContext): Promise<void>;
}

export interface NotificationPluginDefinition extends DefinitionBase<'notification', NotificationPlugin> {
  /** schema of a channel of this type in the config */
  channelSchema?: JsonSchema;
}

export type PluginDefinition = ServicePluginDefinition | HypervisorPluginDefinition | NotificationPluginDefinition;
