/**
 * The plugin host: finds plugins in the built-in folder and in plugins.d (./discover.ts),
 * checks each one (file permissions, shape, apiVersion, schemas, capabilities: ./check.ts)
 * before creating it with its context (./context.ts), and keeps a registry of what loaded and
 * what failed and why (./registry.ts). One bad plugin is reported and set aside; it never
 * stops the others. Every call into a plugin goes through ./call.ts. This module gathers the
 * host's public names, so that the rest of the code imports from one place.
 */
export { CAPABILITIES, checkDefinition, definitionSchemas, effectiveSchema, type PluginRecord, type PluginSource } from './check';
export { builtinCandidates, discoverPlugins, pluginsDirCandidates, type DiscoverOptions, type Discovered } from './discover';
export { pluginContext } from './context';
export { createPlugins, PluginRegistry, type CreateOptions, type LoadedPlugin } from './registry';
export { callPlugin, PluginError, toPluginError } from './call';
export { GuestProvider } from './guests';
