// The comparison table: each figure's median and spread for both caches, the ratio
// Manifold/Distribution, and the issue's target for it where it has one.
import type { Environment } from './tools.ts';
import { summarize } from './measure.ts';
import type { Summary } from './measure.ts';

export const CACHES = ['Manifold', 'Distribution'] as const;
export type CacheName = (typeof CACHES)[number];

export interface Target {
  text: string;
  /** Whether the medians (and, for counts, every run) meet it. */
  met(manifold: Summary, distribution: Summary | null): boolean;
}

export interface Figure {
  id: string;
  label: string;
  unit: string;
  decimals: number;
  values: Record<CacheName, number[]>;
  /** The direct upstream's values (the ceiling of a cache in front of it), where measured. */
  ceiling?: number[];
  note?: string;
  target?: Target;
}

export function newFigure(id: string, label: string, unit: string, decimals: number, target?: Target, note?: string): Figure {
  return { id, label, unit, decimals, values: { Manifold: [], Distribution: [] }, target, note };
}

const format = (value: number, decimals: number) => value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });

/** "median (min–max, n=runs)", as the table's cells show a figure. */
export function summaryText(summary: Summary, decimals: number): string {
  const median = format(summary.median, decimals);
  if (summary.runs === 1 || summary.min === summary.max) return `${median} (n=${summary.runs})`;
  return `${median} (${format(summary.min, decimals)}–${format(summary.max, decimals)}, n=${summary.runs})`;
}

export interface FigureVerdict {
  figure: Figure;
  manifold: Summary;
  /** Null for a figure only Manifold has (its password sign-in). */
  distribution: Summary | null;
  ratio: number;
  met: boolean | null;
}

export function verdicts(figures: Figure[]): FigureVerdict[] {
  return figures
    .filter((figure) => figure.values.Manifold.length > 0)
    .map((figure) => {
      const manifold = summarize(figure.values.Manifold);
      const distribution = figure.values.Distribution.length > 0 ? summarize(figure.values.Distribution) : null;
      const ratio = !distribution || distribution.median === 0 ? Number.NaN : manifold.median / distribution.median;
      return { figure, manifold, distribution, ratio, met: figure.target ? figure.target.met(manifold, distribution) : null };
    });
}

export function markdownTable(figures: Figure[]): string {
  const rows = verdicts(figures).map(({ figure, manifold, distribution, ratio, met }) => {
    const target = figure.target ? `${figure.target.text}: ${met ? '**met**' : '**missed**'}` : '';
    const label = figure.note ? `${figure.label} (${figure.note})` : figure.label;
    const ceiling = figure.ceiling && figure.ceiling.length > 0 ? summaryText(summarize(figure.ceiling), figure.decimals) : '';
    return `| ${figure.id} | ${label} | ${figure.unit} | ${summaryText(manifold, figure.decimals)} | ${distribution ? summaryText(distribution, figure.decimals) : '–'} | ${Number.isFinite(ratio) ? format(ratio, 2) : '–'} | ${ceiling} | ${target} |`;
  });
  return [
    '| # | measurement | unit | Manifold median (min–max) | Distribution median (min–max) | Manifold/Distribution | direct upstream | target |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

export function markdownEnvironment(environment: Environment, settings: Record<string, string | number>): string {
  return [
    `- machine: ${environment.cpus} CPUs (${environment.cpuModel}), ${environment.memoryGiB} GiB memory, ${environment.kernel}`,
    `- Node.js ${environment.node}; ${environment.distribution}; ${environment.skopeo}; ${environment.wrk}`,
    `- settings: ${Object.entries(settings).map(([key, value]) => `${key}=${value}`).join(', ')}`,
  ].join('\n');
}
