// Example hypervisor plugin: treats systemd units as "guests", so that a service can be a
// plain systemd service on this host. Shows the hypervisor contract: guestStatus().
//
// plugins:
//   systemd-units:
//     systemctl: /usr/bin/systemctl

/** @type {import('homelab-autopilot/dist/core/plugins/contract').HypervisorPluginDefinition} */
module.exports = {
  name: 'systemd-units',
  kind: 'hypervisor',
  version: '1.0.0',
  apiVersion: '^1.0.0',
  description: 'systemd units on this host as guests (state from systemctl is-active)',
  optionsSchema: {
    properties: { systemctl: { type: 'string', default: 'systemctl' } },
    additionalProperties: false,
  },
  create(ctx) {
    const UNIT = /^[A-Za-z0-9@_.:-]+$/;
    return {
      async guestStatus(guest, op) {
        if (!UNIT.test(guest.id)) throw new Error(`invalid unit name ${JSON.stringify(guest.id)}`);
        const res = await ctx.exec(ctx.options.systemctl, ['is-active', '--', guest.id], { signal: op.signal, timeoutMs: 10000 });
        const word = res.stdout.trim();
        const state = word === 'active' ? 'running' : word === 'inactive' || word === 'failed' ? 'stopped' : 'unknown';
        return { id: guest.id, state, details: { systemd: word || res.stderr.trim() } };
      },
    };
  },
};
