import { renderSvg, vegaLiteChart, type ChartSpec } from './render.js';

/** The fields of a stage-1 step log entry the curves read. */
export interface Stage1CurvePoint {
  step: number;
  /** LM loss of the step's batch under its sampled mask (nats/token). */
  loss: number;
  /** The importance update of the step, when one ran: each candidate mask's held-out loss. */
  rollouts?: { losses: number[] };
  scores: Record<string, number>;
}

/** Distinct colours for up to 20 series: tableau10 while it suffices (its colours are far apart). */
function seriesScheme(n: number): 'tableau10' | 'tableau20' {
  return n <= 10 ? 'tableau10' : 'tableau20';
}

/**
 * Stage-1 loss and reward side by side (y from the data's range, not from zero, so the trend shows).
 * The reward of an importance update is the negated mean held-out loss of its candidate masks.
 */
export function stage1CurvesSpec(log: Stage1CurvePoint[], title = 'Stage 1: training loss and REINFORCE reward'): ChartSpec {
  const values = log.map((e) => ({
    step: e.step,
    loss: e.loss,
    reward: e.rollouts && e.rollouts.losses.length > 0 ? -e.rollouts.losses.reduce((a, b) => a + b, 0) / e.rollouts.losses.length : null,
  }));
  const step = { field: 'step', type: 'quantitative', title: 'step', scale: { zero: false }, axis: { tickMinStep: 1, format: 'd' } } as const;
  return vegaLiteChart({
    title: { text: title, subtitle: 'reward = −(mean held-out loss of the candidate masks) at each importance update' },
    data: { values },
    hconcat: [
      {
        width: 300,
        height: 220,
        mark: { type: 'line', point: { color: '#1f5fa8' }, color: '#1f5fa8' },
        encoding: { x: step, y: { field: 'loss', type: 'quantitative', scale: { zero: false }, title: 'LM loss (nats/token)' }, tooltip: [{ field: 'step' }, { field: 'loss', format: '.4f' }] },
      },
      {
        width: 300,
        height: 220,
        transform: [{ filter: 'isValid(datum.reward)' }],
        mark: { type: 'line', point: { color: '#c4381b' }, color: '#c4381b' },
        encoding: { x: step, y: { field: 'reward', type: 'quantitative', scale: { zero: false }, title: 'reward (−loss, nats/token)' }, tooltip: [{ field: 'step' }, { field: 'reward', format: '.4f' }] },
      },
    ],
  });
}

/** Every middle block's importance score over the steps, one distinct colour per block. */
export function scoreTrajectorySpec(trajectories: { step: number; scores: Record<string, number> }[], title = 'Stage 1: importance score trajectories'): ChartSpec {
  const blocks = [...new Set(trajectories.flatMap((t) => Object.keys(t.scores)))].sort((a, b) => Number(a) - Number(b));
  const values = trajectories.flatMap((t) => blocks.filter((b) => Number.isFinite(t.scores[b])).map((b) => ({ step: t.step, block: `block ${b}`, score: t.scores[b] })));
  return vegaLiteChart({
    title: { text: title, subtitle: 'score s_i of each middle block after each step' },
    width: 520,
    height: 260,
    data: { values },
    mark: { type: 'line', point: { size: 18 }, strokeWidth: 2 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step', axis: { tickMinStep: 1, format: 'd' } },
      y: { field: 'score', type: 'quantitative', scale: { zero: false }, title: 'importance score s_i' },
      color: { field: 'block', type: 'nominal', sort: blocks.map((b) => `block ${b}`), title: 'middle block', scale: { scheme: seriesScheme(blocks.length) } },
      tooltip: [{ field: 'block' }, { field: 'step' }, { field: 'score', format: '.4f' }],
    },
  });
}

export async function stage1CurvesChart(log: Stage1CurvePoint[], title?: string): Promise<string> {
  return renderSvg(stage1CurvesSpec(log, title));
}

export async function scoreTrajectoryChart(trajectories: { step: number; scores: Record<string, number> }[], title?: string): Promise<string> {
  return renderSvg(scoreTrajectorySpec(trajectories, title));
}
