/**
 * The config engine: finds the config file (find.ts), parses it and the services.d files with
 * positions, interpolates ${ENV} (read.ts), validates everything against one schema (all
 * errors at once), applies defaults, resolves paths and secrets (validate.ts). This module is
 * the one the rest of the code imports from: it re-exports the public names of the three.
 */
export { ENV_CONFIG, MODULE_NAME, SEARCH_PLACES, SYSTEM_CONFIG, findConfigFile, type FindOptions, type FoundConfig } from './find';
export { readRawConfig, type RawConfig } from './read';
export { validateConfig, type LoadedConfig, type ValidateOptions } from './validate';
export type { Location } from './source';
