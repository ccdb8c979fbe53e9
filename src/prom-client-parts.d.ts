// The default metrics src/metrics.ts registers one by one (all of prom-client's but the GC histogram).
declare module 'prom-client/lib/metrics/*.js' {
  import type { Registry } from 'prom-client';
  const register: (registry: Registry, config: { prefix: string; eventLoopMonitoringPrecision: number }) => void;
  export default register;
}
