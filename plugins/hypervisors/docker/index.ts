/**
 * Built-in hypervisor plugin `docker`: the Docker Engine API (dockerode), on the local socket
 * or DOCKER_HOST. Services of `type: docker` are single containers: `status` shows their
 * state, uptime, addresses and health. (Compose projects are `type: docker-compose`, a
 * service plugin with backups and safe updates.)
 */
import type { GuestRef, GuestStatus, HypervisorPlugin, HypervisorPluginDefinition, OperationContext } from '../../../core/plugins/contract';

type Docker = import('dockerode');

const plugin: HypervisorPluginDefinition = {
  name: 'docker',
  kind: 'hypervisor',
  version: '1.0.0',
  apiVersion: '^1.3.0',
  description: 'Docker Engine (dockerode): container state, uptime, addresses, health',
  guestTypes: {
    docker: {
      properties: { container: { type: 'string', pattern: '^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$', description: 'the container name' } },
      required: ['container'],
    },
  },
  optionsSchema: {
    additionalProperties: false,
    properties: {
      host: {
        type: 'string',
        minLength: 1,
        description:
          'the engine: unix:///var/run/docker.sock (default: DOCKER_HOST, else the local socket) or tcp://host:2375 (plain TCP; TLS is not supported)',
      },
      timeout: { type: 'integer', minimum: 1, maximum: 600, default: 30, description: 'seconds per Engine API call' },
    },
  },
  create(ctx) {
    const o = ctx.options as { host?: string; timeout: number };
    let docker: Docker | null = null;
    const engine = async (): Promise<Docker> => {
      if (docker) return docker;
      const { default: Dockerode } = (await import('dockerode')) as unknown as { default: new (opts?: object) => Docker };
      const host = o.host ?? process.env.DOCKER_HOST;
      let opts: object = {};
      if (host?.startsWith('unix://')) opts = { socketPath: host.slice('unix://'.length) };
      else if (host) {
        const u = new URL(host.replace(/^tcp:/, 'http:'));
        opts = { host: u.hostname, port: Number(u.port || 2375), protocol: 'http' };
      }
      docker = new Dockerode({ ...opts, timeout: o.timeout * 1000 });
      return docker;
    };
    const nameOf = (g: GuestRef): string => (typeof g.config?.container === 'string' ? g.config.container : g.id).replace(/^\//, '');
    const statusOf = async (d: Docker, name: string, op: OperationContext): Promise<GuestStatus> => {
      try {
        const info = await d.getContainer(name).inspect({ abortSignal: op.signal } as object);
        const st = info.State;
        const ips = Object.values(info.NetworkSettings?.Networks ?? {})
          .map((n) => n.IPAddress)
          .filter(Boolean);
        const started = Date.parse(st.StartedAt);
        return {
          id: name,
          state: st.Running ? (st.Paused ? 'paused' : 'running') : 'stopped',
          name: info.Name.replace(/^\//, ''),
          uptimeSeconds: st.Running && started > 0 ? Math.max(0, Math.round((Date.now() - started) / 1000)) : undefined,
          ips,
          details: {
            image: info.Config.Image,
            imageId: info.Image,
            health: (st as { Health?: { Status?: string } }).Health?.Status,
            restarting: st.Restarting,
            exitCode: st.ExitCode,
          },
        };
      } catch (e) {
        if ((e as { statusCode?: number }).statusCode === 404) return { id: name, state: 'missing' };
        throw new Error(`docker: cannot inspect container ${name}: ${(e as Error).message}`);
      }
    };
    const instance: HypervisorPlugin = {
      async guestStatus(guest, op) {
        return statusOf(await engine(), nameOf(guest), op);
      },
      async guestStatuses(guests, op) {
        const d = await engine();
        return Promise.all(guests.map((g) => statusOf(d, nameOf(g), op)));
      },
      async clusterStatus(op) {
        const d = await engine();
        void op;
        const info = (await d.info()) as { Name?: string };
        return { name: null, quorate: true, nodes: [{ node: info.Name ?? 'docker', online: true }] };
      },
    };
    return instance;
  },
};

export default plugin;
