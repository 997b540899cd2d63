import { beforeAll, describe, expect, it } from 'vitest';
import { Tokenizer } from '@scaleot/tokenizer';
import {
  builtinTask,
  candidateLabels,
  classificationExamples,
  classificationTrainSequence,
  TaskError,
  taskRows,
  type ClassificationExample,
  type ClassificationTaskSpec,
  type Task,
} from '@scaleot/data';
import { fixtureDataDir, tinyModelDir } from './fixtures.js';

const CTX = 256;
const SUFFIX = [199, 199, 44, 375, 847, 26];
const HAM = [333, 77];
const SPAM = [554, 517];

describe('classification protocol on the spam fixture', () => {
  let tok: Tokenizer;
  let spam: Task;
  let spec: ClassificationTaskSpec;
  let examples: ClassificationExample[];
  beforeAll(async () => {
    tok = await Tokenizer.fromDir(tinyModelDir);
    spam = await builtinTask('spam', fixtureDataDir);
    spec = spam.spec as ClassificationTaskSpec;
    examples = classificationExamples(taskRows(spam, 'test'), spec, tok, CTX);
  });

  it('has 500 balanced test examples with candidates ham, spam as the README encodes them', () => {
    expect(candidateLabels(spec)).toEqual(['ham', 'spam']);
    expect(examples).toHaveLength(500);
    expect(examples.filter((e) => e.labelIndex === 0)).toHaveLength(250);
    expect(examples.filter((e) => e.labelIndex === 1)).toHaveLength(250);
    for (const e of examples) expect(e.candidateIds).toEqual([HAM, SPAM]);
  });

  it('ends every prompt with the suffix ids and keeps prompt + suffix + longest candidate within ctx', () => {
    const budget = CTX - SUFFIX.length - 2; // = ctx − 8
    let longest = 0;
    for (const e of examples) {
      expect(e.promptIds.slice(-SUFFIX.length)).toEqual(SUFFIX);
      expect(e.promptIds.length).toBeLessThanOrEqual(budget + SUFFIX.length);
      for (const c of e.candidateIds) expect(e.promptIds.length + c.length).toBeLessThanOrEqual(CTX);
      longest = Math.max(longest, e.promptIds.length);
    }
    // Long e-mails are cut, so the bound is reached exactly.
    expect(longest).toBe(254);
  });

  it('keeps the first tokens of enc("Subject: " + subject + "\\n\\n" + body)', () => {
    const rows = taskRows(spam, 'test');
    let truncated = 0;
    rows.forEach((row, i) => {
      const full = tok.encode(`Subject: ${row.subject}\n\n${row.body}`);
      const prompt = examples[i].promptIds.slice(0, -SUFFIX.length);
      expect(prompt).toEqual(full.slice(0, CTX - 8));
      if (full.length > CTX - 8) truncated++;
    });
    expect(truncated).toBeGreaterThan(0);
    expect(truncated).toBeLessThan(rows.length);
  });

  it('builds training sequences with the loss on the correct candidate only', () => {
    for (const e of examples.slice(0, 20)) {
      const { ids, lossMask } = classificationTrainSequence(e);
      const candidate = e.labelIndex === 0 ? HAM : SPAM;
      expect(Array.from(ids)).toEqual([...e.promptIds, ...candidate]);
      expect(Array.from(lossMask)).toEqual([...e.promptIds.map(() => 0), 1, 1]);
      expect(ids.length).toBeLessThanOrEqual(CTX);
    }
  });
});

describe('classificationExamples arithmetic', () => {
  // One token per character: ids are char codes, so lengths are easy to reason about.
  const charTok = { eosTokenId: 0, encode: (text: string) => [...text].map((c) => c.codePointAt(0) as number) };
  const spec: ClassificationTaskSpec = {
    version: 1,
    name: 'toy',
    type: 'classification',
    test: 'test.jsonl',
    promptTemplate: '{a}|{b} {{x}}',
    suffix: '::',
    candidates: { yes: 'Y', no: 'NNN' },
    labelField: 'gold',
  };

  it('truncates the filled prompt to ctx − len(suffix) − max(len(candidate)) tokens', () => {
    const [ex] = classificationExamples([{ a: 'abcdefghij', b: 7, gold: 'no' }], spec, charTok, 20);
    // budget = 20 − 2 − 3 = 15 tokens of "abcdefghij|7 {x}"
    expect(String.fromCodePoint(...ex.promptIds)).toBe('abcdefghij|7 {x::');
    expect(ex.candidateIds.map((c) => String.fromCodePoint(...c))).toEqual(['Y', 'NNN']);
    expect(ex.labelIndex).toBe(1);
  });

  it('leaves short prompts whole', () => {
    const [ex] = classificationExamples([{ a: 'a', b: 'b', gold: 'yes' }], spec, charTok, 20);
    expect(String.fromCodePoint(...ex.promptIds)).toBe('a|b {x}::');
    expect(ex.labelIndex).toBe(0);
  });

  it('rejects a ctx that leaves no room for the prompt', () => {
    expect(() => classificationExamples([{ a: 'a', b: 'b', gold: 'yes' }], spec, charTok, 5)).toThrow(TaskError);
  });

  it('rejects rows with a missing template field or an unknown label, naming the row', () => {
    const missing = (() => {
      try {
        classificationExamples([{ a: 'a', b: 'b', gold: 'yes' }, { a: 'a', gold: 'yes' }], spec, charTok, 20);
      } catch (e) {
        return e;
      }
    })() as TaskError;
    expect(missing).toBeInstanceOf(TaskError);
    expect(missing.line).toBe(2);
    expect(missing.field).toBe('b');
    expect(() => classificationExamples([{ a: 'a', b: 'b', gold: 'maybe' }], spec, charTok, 20)).toThrow(/not among the candidates/);
  });
});
