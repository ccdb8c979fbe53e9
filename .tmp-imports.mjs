const mods = process.argv.slice(2);
const t0 = performance.now();
for (const m of mods) await import(m);
globalThis.gc?.();
const u = process.memoryUsage();
const st = (await import('node:fs')).readFileSync('/proc/self/status','utf8');
const anon = /RssAnon:\s+(\d+)/.exec(st)[1];
console.log(mods.join(',').slice(-60).padEnd(60), 'rss', (u.rss/1e6).toFixed(1), 'anon', (anon/1e3).toFixed(1), 'heapUsed', (u.heapUsed/1e6).toFixed(1), 'heapTotal', (u.heapTotal/1e6).toFixed(1), 'ms', (performance.now()-t0).toFixed(0));
