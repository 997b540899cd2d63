import { readFileSync } from 'node:fs';

/**
 * This process' peak resident memory, bytes: VmHWM of /proc/self/status on Linux. Not getrusage's
 * maxrss, which Linux carries across exec: a worker spawned by a process that once held a large model
 * would report that parent's peak.
 */
export function peakRssBytes(): number {
  try {
    const kb = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kb) return Number(kb) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}
