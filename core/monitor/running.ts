/**
 * The `running` check: the hypervisor's view of a guest, or the service plugin's isRunning.
 * Guests of one hypervisor are asked together (guestStatuses, one request for all), at most
 * once every few seconds, however many `running` checks fall due at once.
 */
import type { AutopilotConfig } from '../config/types';
import type { GuestStatus, OperationContext, ServiceConfig, ServicePlugin } from '../plugins/contract';
import type { GuestProvider } from '../plugins/guests';
import type { PluginRegistry } from '../plugins/host';
import { callPlugin } from '../plugins/call';
import type { Logger } from '../../lib/log';

const FRESH_MS = 5_000;

export class RunningCache {
  private readonly asked = new Map<GuestProvider, { at: number; answer: Promise<Map<string, GuestStatus>> }>();

  constructor(
    private readonly config: AutopilotConfig,
    private readonly registry: PluginRegistry,
    private readonly logger: Logger,
  ) {}

  private op(signal: AbortSignal): OperationContext {
    return { signal, logger: this.logger, dryRun: true };
  }

  private statuses(provider: GuestProvider, signal: AbortSignal): Promise<Map<string, GuestStatus>> {
    const hit = this.asked.get(provider);
    if (hit && Date.now() - hit.at < FRESH_MS) return hit.answer;
    const svcs = this.config.services.filter((s) => s.enabled !== false && this.registry.guestProvider(s.type) === provider);
    const refs = svcs.map((s) => provider.ref(s));
    const op = this.op(signal);
    const answer = provider
      .call('guestStatuses', signal, (h) =>
        h.guestStatuses ? h.guestStatuses(refs, op, { ips: false }) : Promise.all(refs.map((r) => h.guestStatus(r, op))),
      )
      .then((list) => new Map(svcs.map((s, i) => [s.name, list[i]])));
    // a failed answer is not kept: the next check asks again
    answer.catch(() => this.asked.delete(provider));
    this.asked.set(provider, { at: Date.now(), answer });
    return answer;
  }

  /** How to tell whether a service runs, or undefined when its plugin cannot tell. */
  for(svc: ServiceConfig): ((signal: AbortSignal) => Promise<boolean>) | undefined {
    const provider = this.registry.guestProvider(svc.type);
    if (provider)
      return async (signal) => {
        const s = (await this.statuses(provider, signal)).get(svc.name);
        if (!s) throw new Error(`${provider.label(provider.ref(svc))}: no answer from ${provider.name}`);
        if (s.state === 'missing') throw new Error(`${provider.label(provider.ref(svc))} does not exist`);
        return s.state === 'running';
      };
    const plugin = this.registry.find<ServicePlugin>('service', svc.type);
    const u = plugin?.updater;
    if (!u?.isRunning) return undefined;
    const isRunning = u.isRunning.bind(u);
    return (signal) => callPlugin({ plugin: svc.type, operation: 'updater.isRunning', signal }, () => isRunning(svc, this.op(signal)));
  }
}
