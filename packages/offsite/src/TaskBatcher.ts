import {
  classificationExamples,
  classificationTrainSequence,
  createRng,
  lmDocuments,
  lmStream,
  randomWindows,
  Rng,
  taskRows,
  type Task,
  type TokenEncoder,
} from '@scaleot/data';
import { OffsiteError } from './OffsiteError.js';

/** One training step's rows: token ids (the last token is only a target) and per-target masks. */
export interface TrainRows {
  rows: Int32Array[];
  /** masks[i].length === rows[i].length − 1; 1 where the next-token target counts. */
  masks: Float32Array[];
}

/** Serializable position of a batcher (saved in training checkpoints). */
export interface TaskBatcherState {
  rng: number[];
  /** Classification: the current epoch's example order and the next position in it. */
  order?: number[];
  cursor?: number;
}

export interface TaskBatcherOptions {
  /** Rows per step. */
  batchSize: number;
  /** LM: tokens the model reads per window (a window holds seqLen + 1 tokens). Classification: ctx. */
  seqLen: number;
  /** Use only the first N training rows (documents or examples). Default: all. */
  maxTrainRows?: number;
  seed: number;
}

/**
 * Training rows of a task, following the fixture protocols: LM = random windows of seqLen + 1 tokens
 * of the train stream; classification = prompt + correct candidate, loss on the candidate tokens only,
 * examples drawn in a fresh shuffled order every epoch.
 */
export class TaskBatcher {
  private rng: Rng;
  private readonly stream?: Int32Array;
  private readonly sequences?: Array<{ ids: Int32Array; mask: Float32Array }>;
  private order: number[] = [];
  private cursor = 0;

  constructor(
    readonly task: Task,
    tokenizer: TokenEncoder,
    private readonly opts: TaskBatcherOptions,
  ) {
    this.rng = createRng(opts.seed);
    const where = task.files.train ?? task.specFile;
    let rows = taskRows(task, 'train');
    if (opts.maxTrainRows !== undefined) rows = rows.slice(0, opts.maxTrainRows);
    if (rows.length === 0) throw new OffsiteError('EMPTY_DATASET', 'the training split has no rows to train on', { where });
    if (task.spec.type === 'lm') {
      this.stream = lmStream(lmDocuments(rows, task.spec), tokenizer);
      if (this.stream.length < opts.seqLen + 1) {
        throw new OffsiteError('EMPTY_DATASET', `the training text has ${this.stream.length} tokens; one window needs seqLen + 1 = ${opts.seqLen + 1}`, { where });
      }
    } else {
      const examples = classificationExamples(rows, task.spec, tokenizer, opts.seqLen);
      this.sequences = examples.map((ex) => {
        const seq = classificationTrainSequence(ex);
        return { ids: seq.ids, mask: seq.lossMask.slice(1) };
      });
    }
  }

  next(): TrainRows {
    if (this.stream) {
      const rows = randomWindows(this.stream, this.opts.seqLen, this.opts.batchSize, this.rng);
      return { rows, masks: rows.map((r) => new Float32Array(r.length - 1).fill(1)) };
    }
    const seqs = this.sequences!;
    const out: TrainRows = { rows: [], masks: [] };
    for (let i = 0; i < this.opts.batchSize; i++) {
      if (this.cursor >= this.order.length) {
        this.order = this.rng.shuffle(seqs.map((_, k) => k));
        this.cursor = 0;
      }
      const s = seqs[this.order[this.cursor++]];
      out.rows.push(s.ids);
      out.masks.push(s.mask);
    }
    return out;
  }

  getState(): TaskBatcherState {
    return this.stream ? { rng: this.rng.state } : { rng: this.rng.state, order: this.order.slice(), cursor: this.cursor };
  }

  setState(state: TaskBatcherState): void {
    this.rng = new Rng(state.rng);
    this.order = state.order?.slice() ?? [];
    this.cursor = state.cursor ?? 0;
  }
}
