#!/usr/bin/env node
// Writes the token ids scaleot evaluates (LM blocks, classification examples) as JSON, using the built
// @scaleot/tokenizer and @scaleot/data, so tools/reference/eval_protocol.py can score exactly the same
// ids with an independent model implementation. Build first: npx tsc -b packages/data
//
//   node tools/reference/dump-eval-ids.mjs --model DIR --data DIR [--tasks moby,spam] [--ctx N] --out FILE
//
// --tasks takes built-in names or paths to task specs; --ctx defaults to the model's n_positions.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Tokenizer } from '@scaleot/tokenizer';
import {
  PROTOCOL_VERSION,
  candidateLabels,
  classificationExamples,
  lmDocuments,
  lmEvalBlocks,
  lmStream,
  loadTask,
  taskRows,
} from '@scaleot/data';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string' },
    tasks: { type: 'string', default: 'moby,spam' },
    ctx: { type: 'string' },
    out: { type: 'string' },
  },
});
if (!values.model || !values.data || !values.out) {
  console.error('usage: dump-eval-ids.mjs --model DIR --data DIR [--tasks moby,spam] [--ctx N] --out FILE');
  process.exit(2);
}

const config = JSON.parse(await readFile(join(values.model, 'config.json'), 'utf8'));
const ctx = values.ctx ? Number(values.ctx) : (config.n_positions ?? config.max_position_embeddings);
const tokenizer = await Tokenizer.fromDir(values.model);
const dump = { format: 'scaleot-eval-ids', protocolVersion: PROTOCOL_VERSION, model: values.model, ctx, tasks: {} };

for (const name of values.tasks.split(',').filter(Boolean)) {
  const task = await loadTask(name, values.data);
  const rows = taskRows(task, 'test');
  if (task.spec.type === 'lm') {
    const stream = lmStream(lmDocuments(rows, task.spec), tokenizer);
    const blocks = lmEvalBlocks(stream, ctx).map((b) => Array.from(b));
    dump.tasks[task.spec.name] = { type: 'lm', streamLength: stream.length, blocks };
    console.error(`${task.spec.name}: stream ${stream.length} tokens, ${blocks.length} blocks of ${ctx + 1}`);
  } else {
    const examples = classificationExamples(rows, task.spec, tokenizer, ctx);
    dump.tasks[task.spec.name] = { type: 'classification', labels: candidateLabels(task.spec), examples };
    console.error(`${task.spec.name}: ${examples.length} examples, longest prompt ${Math.max(...examples.map((e) => e.promptIds.length))} tokens`);
  }
}
await writeFile(values.out, `${JSON.stringify(dump)}\n`);
console.error(`wrote ${values.out}`);
