/**
 * Metrics and dead-man pings: collectMetrics() for the daemon's /metrics and the textfile,
 * beginJob() for what every job does around its work (pings, the textfile).
 */
export { collectMetrics, watchedPaths, type MetricsBody, type MetricsDeps, type MetricsOptions } from './collect';
export { METRIC_DEFS, PREFIX } from './defs';
export { beginJob, pingUrlOf, writeMetricsTextfile, type JobDeps, type JobEnd, type JobHooks, type JobKind, type JobOptions } from './job';
