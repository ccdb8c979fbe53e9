// How `manifold storage check` and `manifold prefetch` print what they found and did (text; --json prints the report itself).
import type { StorageCheckReport } from '../services/storage-check.ts';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** Lines listed per kind; the counts are complete. */
const SHOWN = 20;

function listed<T>(items: T[], count: number, line: (item: T) => string): string[] {
  const lines = items.slice(0, SHOWN).map((item) => `  ${line(item)}`);
  if (count > lines.length) lines.push(`  … and ${count - lines.length} more (--json lists up to 1000)`);
  return lines;
}

export function describeStorageCheck(report: StorageCheckReport): string {
  const lines = [
    `objects: ${report.objects.count} (${formatBytes(report.objects.bytes)}); live cache entries: ${report.live_entries}`,
    `entries without their object (missing or wrong size): ${report.damaged_entries.count}`,
    ...listed(report.damaged_entries.items, report.damaged_entries.count, (e) => `entry ${e.id} upstream ${e.upstream_id} ${e.relative_path}: ${e.reason === 'missing' ? 'object missing' : `object has ${e.found_size} bytes, entry says ${e.size}`}`),
    `objects without entries: ${report.orphan_objects.count} (${formatBytes(report.orphan_objects.bytes)}); younger than ${report.grace_seconds} s, left alone: ${report.young_objects_skipped}`,
    ...listed(report.orphan_objects.items, report.orphan_objects.count, (o) => `${o.digest} (${formatBytes(o.size)})`),
  ];
  if (report.repaired) {
    const r = report.repaired;
    lines.push(`repaired: ${r.entries_marked} entries marked for refetch, ${r.objects_deleted} orphan objects deleted${r.objects_kept > 0 ? `, ${r.objects_kept} kept (referenced or written meanwhile)` : ''}${r.objects_failed > 0 ? `, ${r.objects_failed} could not be deleted` : ''}`);
  } else if (report.damaged_entries.count + report.orphan_objects.count > 0) {
    lines.push('run with --repair to fix them');
  }
  lines.push(`repaired by pulls since ${new Date(report.pull_repairs.since).toISOString()}: ${report.pull_repairs.count}`);
  lines.push(...listed(report.pull_repairs.items, report.pull_repairs.count, (r) => `${new Date(r.created_at).toISOString()} upstream ${r.upstream_id ?? '(deleted)'} ${r.relative_path}: ${r.reason.replace('_', ' ')}, refetched`));
  return lines.join('\n');
}
