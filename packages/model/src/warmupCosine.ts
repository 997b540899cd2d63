import { ModelError } from './ModelError.js';

export interface WarmupCosineOptions {
  /** Linear warmup steps: lr = peak·(step+1)/warmupSteps while step < warmupSteps. */
  warmupSteps: number;
  /** Step at which the cosine reaches its floor (lr stays at the floor afterwards). */
  totalSteps: number;
  peakLr: number;
  /** Floor as a fraction of peakLr (default 0.1). */
  finalLrFraction?: number;
}

/** Learning rate for a 0-based step index: linear warmup, then cosine decay to peak·finalLrFraction. */
export function warmupCosine(opts: WarmupCosineOptions): (step: number) => number {
  const { warmupSteps, totalSteps, peakLr } = opts;
  const floor = peakLr * (opts.finalLrFraction ?? 0.1);
  if (!(warmupSteps >= 0) || !(totalSteps >= warmupSteps) || !(peakLr >= 0)) {
    throw new ModelError('BAD_SCHEDULE', `need 0 ≤ warmupSteps (${warmupSteps}) ≤ totalSteps (${totalSteps}) and peakLr ≥ 0 (${peakLr})`, { where: 'warmupCosine' });
  }
  return (step: number) => {
    if (step < warmupSteps) return (peakLr * (step + 1)) / warmupSteps;
    const span = totalSteps - warmupSteps;
    const progress = span <= 0 ? 1 : Math.min(1, (step - warmupSteps) / span);
    return floor + (peakLr - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}
