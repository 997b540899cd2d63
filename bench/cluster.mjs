// The cluster's two numbers: ZeroMQ throughput for 16 MiB tensors on loopback (measureThroughput
// from @scaleot/transport) and the stage-1 round overhead (queue + transfer + aggregation) as a
// fraction of compute with two workers (measureRoundOverhead, exported by the coordinator).
import { emitJson, fmt, importPackage, log, MissingExportError, table } from './lib/common.mjs';
import { rawZmqThroughput } from './lib/rawZmq.mjs';

export const description = 'ZeroMQ 16 MiB tensor throughput on loopback; stage-1 round overhead with 2 workers';

export const options = {
  mib: { type: 'number', default: 16, help: 'tensor size in MiB' },
  iterations: { type: 'number', default: 20, help: 'tensors sent per throughput measurement' },
  workers: { type: 'number', default: 2, help: 'workers for the stage-1 round overhead' },
  'result-pattern': { type: 'boolean', default: true, help: 'also time the acked ResultSender -> ResultCollector path' },
  rounds: { type: 'number', default: 3, help: 'stage-1 rounds to time' },
  redis: { type: 'string', default: 'redis://127.0.0.1:6379', help: 'Redis for the round-overhead run' },
  'round-module': { type: 'string', help: 'module exporting measureRoundOverhead (default: first of the coordinator candidates)' },
};

const ZMQ_TARGET_GB_PER_S = 2;
const OVERHEAD_TARGET = 0.05;
// Where the coordinator's measureRoundOverhead may live; the first that exports it wins.
const ROUND_MODULES = ['@scaleot/coordinator', '@scaleot/cluster', '@scaleot/offsite'];

/** Accepts a bare GB/s number or an object carrying GB/s or bytes/s under a few obvious names. */
function gbPerSecond(result) {
  if (typeof result === 'number') return result;
  for (const key of ['gbPerSecond', 'gbPerS', 'gb_per_s', 'GBps']) if (typeof result?.[key] === 'number') return result[key];
  for (const key of ['bytesPerSecond', 'bytesPerS']) if (typeof result?.[key] === 'number') return result[key] / 1e9;
  throw new Error(`measureThroughput returned ${JSON.stringify(result)?.slice(0, 200)}; expected GB/s`);
}

function overheadFraction(result) {
  if (typeof result === 'number') return result;
  for (const key of ['overheadFraction', 'fraction', 'round_overhead_fraction']) if (typeof result?.[key] === 'number') return result[key];
  throw new Error(`measureRoundOverhead returned ${JSON.stringify(result)?.slice(0, 200)}; expected a fraction`);
}

async function zmqThroughput(opts, pattern) {
  const { measureThroughput } = await importPackage('@scaleot/transport', ['measureThroughput']);
  const bytes = Math.round(opts.mib * 1024 * 1024);
  log(`ZeroMQ ${pattern}: measureThroughput of ${opts.iterations} × ${opts.mib} MiB float32 tensors over tcp://127.0.0.1`);
  const result = await measureThroughput({ bytes, iterations: opts.iterations, pattern });
  return { gbPerS: gbPerSecond(result), detail: result };
}

async function findRoundOverhead(explicit) {
  const reasons = [];
  for (const name of explicit ? [explicit] : ROUND_MODULES) {
    try {
      const module = await importPackage(name, ['measureRoundOverhead']);
      return { name, measureRoundOverhead: module.measureRoundOverhead };
    } catch (error) {
      if (!(error instanceof MissingExportError)) throw error;
      reasons.push(error.message);
    }
  }
  return {
    reason: `no coordinator module exports measureRoundOverhead yet (tried ${(explicit ? [explicit] : ROUND_MODULES).join(', ')})`,
    detail: reasons,
  };
}

export async function main(opts) {
  const errors = {};
  let zmq = null;
  try {
    // The headline: a one-way PUSH/PULL stream (how parameters fan out to workers).
    zmq = await zmqThroughput(opts, 'push-pull');
  } catch (error) {
    errors.zmq = error.message;
    log(`ZeroMQ throughput: FAILED: ${error.message}`);
  }
  let raw = null;
  try {
    // The reference: plain zeromq with the same bytes and a child receiver that reads every page.
    raw = await rawZmqThroughput({ bytes: opts.mib * 1024 * 1024, iterations: opts.iterations });
    log(`plain zeromq PUSH/PULL reference: ${fmt(raw.gbPerS, 2)} GB/s`);
  } catch (error) {
    errors.zmq_raw = error.message;
  }
  let zmqResult = null;
  if (zmq && opts['result-pattern']) {
    try {
      // Secondary: ResultSender -> ResultCollector, every send awaiting its ack (how gradients come back).
      zmqResult = await zmqThroughput(opts, 'result');
    } catch (error) {
      errors.zmq_result = error.message;
      log(`ZeroMQ result-pattern throughput: FAILED: ${error.message}`);
    }
  }

  let overhead = null;
  let overheadReason = null;
  const found = await findRoundOverhead(opts['round-module']);
  if (found.measureRoundOverhead) {
    log(`stage-1 round overhead: ${found.name}.measureRoundOverhead, ${opts.workers} workers, ${opts.rounds} rounds`);
    try {
      overhead = overheadFraction(await found.measureRoundOverhead({ workers: opts.workers, rounds: opts.rounds, redis: opts.redis }));
    } catch (error) {
      overheadReason = error.message;
      errors.round_overhead = error.message;
    }
  } else {
    overheadReason = found.reason;
    for (const line of found.detail) log(`  ${line}`);
  }
  if (overheadReason) log(`round_overhead_fraction: null: ${overheadReason}`);

  const verdict = (value, ok) => (value === null ? 'n/a' : ok ? 'MET' : 'NOT MET');
  process.stdout.write(`${table(['measure', 'value', 'target', 'verdict'], [
    [`ZeroMQ ${opts.mib} MiB tensors, loopback PUSH/PULL`, zmq ? `${fmt(zmq.gbPerS, 2)} GB/s` : errors.zmq, `≥ ${ZMQ_TARGET_GB_PER_S} GB/s`, verdict(zmq?.gbPerS ?? null, zmq?.gbPerS >= ZMQ_TARGET_GB_PER_S)],
    [`plain zeromq PUSH/PULL (reference), ratio ours/plain`, raw ? `${fmt(raw.gbPerS, 2)} GB/s, ${zmq ? fmt(zmq.gbPerS / raw.gbPerS, 2) : 'n/a'}` : errors.zmq_raw, '', ''],
    ...(zmqResult || errors.zmq_result ? [[`ZeroMQ ${opts.mib} MiB, result pattern (acked)`, zmqResult ? `${fmt(zmqResult.gbPerS, 2)} GB/s` : errors.zmq_result, '', '']] : []),
    [`stage-1 round overhead, ${opts.workers} workers`, overhead === null ? `null (${overheadReason})` : `${fmt(overhead * 100, 1)} % of compute`, `≤ ${OVERHEAD_TARGET * 100} %`, verdict(overhead, overhead <= OVERHEAD_TARGET)],
  ])}\n`);

  emitJson(opts.json, {
    zmq_gb_per_s: zmq?.gbPerS ?? null,
    zmq_result_gb_per_s: zmqResult?.gbPerS ?? null,
    zmq_plain_gb_per_s: raw?.gbPerS ?? null,
    zmq_ratio_to_plain: zmq && raw ? zmq.gbPerS / raw.gbPerS : null,
    round_overhead_fraction: overhead,
    ...(overheadReason ? { round_overhead_reason: overheadReason } : {}),
    ...(Object.keys(errors).length ? { errors } : {}),
  });
  return errors.zmq || errors.round_overhead ? 1 : 0;
}
