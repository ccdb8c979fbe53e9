// Pulls per hour as stacked bars (hits on misses), drawn as SVG: no chart library for 24 bars. The
// numbers are also in a table for screen readers.
import type { TrafficHour } from '../api.ts';

const WIDTH = 720;
const HEIGHT = 160;
const AXIS = 2;

export function Chart({ hours }: { hours: TrafficHour[] }) {
  const max = Math.max(1, ...hours.map((hour) => hour.hits + hour.misses));
  const slot = WIDTH / hours.length;
  const bar = Math.max(2, slot - 4);
  const scale = (value: number) => (value / max) * (HEIGHT - AXIS - 8);
  const label = (at: number) => new Date(at).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  const total = hours.reduce((sum, hour) => sum + hour.hits + hour.misses, 0);
  if (total === 0) return <p class="hint">No pulls in the last {hours.length} hours.</p>;
  return (
    <figure class="chart">
      <figcaption>Pulls per hour: <span class="key hits">hits</span> and <span class="key misses">misses</span> (requests, highest {max})</figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`${total} requests in the last ${hours.length} hours`}>
        <line x1="0" x2={WIDTH} y1={HEIGHT - AXIS} y2={HEIGHT - AXIS} class="axis" />
        {hours.map((hour, i) => {
          const x = i * slot + (slot - bar) / 2;
          const hitHeight = scale(hour.hits);
          const missHeight = scale(hour.misses);
          const base = HEIGHT - AXIS;
          return (
            <g key={hour.hour}>
              <title>{`${label(hour.hour)}: ${hour.hits} hits, ${hour.misses} misses`}</title>
              <rect x={x} width={bar} y={base - hitHeight} height={hitHeight} class="hits" />
              <rect x={x} width={bar} y={base - hitHeight - missHeight} height={missHeight} class="misses" />
            </g>
          );
        })}
      </svg>
      {/* The hours under the bars in HTML, so that they keep their size when the chart shrinks on a phone. */}
      <div class="ticks" aria-hidden="true">
        {hours.map((hour, i) => i % 6 === 0 && <span key={hour.hour} style={{ left: `${(i / hours.length) * 100}%` }}>{label(hour.hour)}</span>)}
      </div>
      <table class="visually-hidden">
        <caption>Requests per hour</caption>
        <thead><tr><th scope="col">Hour</th><th scope="col">Hits</th><th scope="col">Misses</th></tr></thead>
        <tbody>{hours.filter((hour) => hour.hits + hour.misses > 0).map((hour) => <tr key={hour.hour}><td>{label(hour.hour)}</td><td>{hour.hits}</td><td>{hour.misses}</td></tr>)}</tbody>
      </table>
    </figure>
  );
}
