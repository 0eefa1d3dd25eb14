/**
 * What `require('homelab-autopilot')` gives: the public plugin contract, for plugin
 * authors (the types, and PLUGIN_API_VERSION to compare against).
 */
export * from './plugins/contract';
