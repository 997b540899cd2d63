import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinTask, builtinTaskNames, loadTask, loadTaskSpec, TaskError, taskRows, type ClassificationTaskSpec } from '@scaleot/data';
import { fixtureDataDir } from './fixtures.js';

const goodSpec = {
  version: 1,
  name: 'tickets',
  type: 'classification',
  train: 'train.jsonl',
  test: 'test.jsonl',
  promptTemplate: 'Title: {title}\n\n{text}',
  suffix: '\n\nLabel:',
  candidates: { bug: ' bug', feature: ' feature' },
  labelField: 'label',
};
const goodRows = [
  { title: 'crash', text: 'it crashes', label: 'bug' },
  { title: 'dark mode', text: 'please', label: 'feature' },
];
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** A task directory with task.json and its splits; `overrides` replace files (string) or spec fields. */
function taskDir(spec: Record<string, unknown> = goodSpec, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'scaleot-task-'));
  writeFileSync(join(dir, 'task.json'), JSON.stringify(spec));
  const all = { 'train.jsonl': jsonl(goodRows), 'test.jsonl': jsonl(goodRows), ...files };
  for (const [name, text] of Object.entries(all)) writeFileSync(join(dir, name), text);
  return dir;
}

async function taskError(pathOrDir: string): Promise<TaskError> {
  const err = await loadTaskSpec(pathOrDir).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(TaskError);
  expect((err as TaskError).code).toBe('INVALID_TASK');
  return err as TaskError;
}

describe('loadTaskSpec', () => {
  it('loads a user classification task from its directory or its spec file', async () => {
    const dir = taskDir();
    for (const path of [dir, join(dir, 'task.json')]) {
      const task = await loadTaskSpec(path);
      expect(task.spec.type).toBe('classification');
      expect(taskRows(task, 'test')).toEqual(goodRows);
      expect(task.files.train).toBe(join(dir, 'train.jsonl'));
    }
  });

  it('fills defaults and skips blank lines', async () => {
    const spec = { version: 1, name: 'notes', type: 'lm', test: 'test.jsonl' };
    const task = await loadTaskSpec(taskDir(spec, { 'test.jsonl': '{"text": "a"}\n\n  \n{"text": "b"}\r\n' }));
    expect(task.spec).toEqual({ ...spec, textField: 'text' });
    expect(taskRows(task, 'test')).toHaveLength(2);
    expect(task.train).toBeUndefined();
    expect(() => taskRows(task, 'train')).toThrow(TaskError);
  });

  it('rejects an unknown type', async () => {
    const err = await taskError(taskDir({ ...goodSpec, type: 'regression' }));
    expect(err.field).toBe('type');
    expect(err.file).toMatch(/task\.json$/);
    expect(err.message).toMatch(/"regression" is unknown/);
  });

  it('rejects an unknown version', async () => {
    expect((await taskError(taskDir({ ...goodSpec, version: 2 }))).field).toBe('version');
  });

  it.each(['name', 'promptTemplate', 'candidates'])('rejects a missing %s', async (field) => {
    const spec: Record<string, unknown> = { ...goodSpec };
    delete spec[field];
    const err = await taskError(taskDir(spec));
    expect(err.field).toBe(field);
    expect(err.message).toMatch(/missing/);
  });

  it('rejects a misspelt field instead of silently using a default', async () => {
    const err = await taskError(taskDir({ ...goodSpec, labelFeild: 'label' }));
    expect(err.field).toBe('labelFeild');
  });

  it('rejects a template that references a field missing from a row, with its line', async () => {
    const rows = [goodRows[0], goodRows[1], { title: 'no text', label: 'bug' }];
    const err = await taskError(taskDir(goodSpec, { 'test.jsonl': jsonl(rows) }));
    expect(err.file).toMatch(/test\.jsonl$/);
    expect(err.line).toBe(3);
    expect(err.field).toBe('text');
  });

  it('rejects a malformed template', async () => {
    expect((await taskError(taskDir({ ...goodSpec, promptTemplate: 'Title: {title' }))).field).toBe('promptTemplate');
  });

  it('rejects a label that is not a candidate, with its line', async () => {
    const rows = [goodRows[0], { ...goodRows[1], label: 'question' }];
    const err = await taskError(taskDir(goodSpec, { 'train.jsonl': jsonl(rows) }));
    expect(err.file).toMatch(/train\.jsonl$/);
    expect(err.line).toBe(2);
    expect(err.field).toBe('label');
    expect(err.message).toMatch(/"question" is not among the candidates/);
  });

  it('rejects an empty dataset', async () => {
    const err = await taskError(taskDir(goodSpec, { 'test.jsonl': '\n' }));
    expect(err.file).toMatch(/test\.jsonl$/);
    expect(err.message).toMatch(/empty/);
  });

  it('rejects a malformed JSONL line with its line number', async () => {
    const text = `${JSON.stringify(goodRows[0])}\n${JSON.stringify(goodRows[1])}\n{"title": "x", "text": \n`;
    const err = await taskError(taskDir(goodSpec, { 'train.jsonl': text }));
    expect(err.file).toMatch(/train\.jsonl$/);
    expect(err.line).toBe(3);
    expect(err.message).toMatch(/not valid JSON/);
  });

  it('rejects an LM row without its text field', async () => {
    const spec = { version: 1, name: 'notes', type: 'lm', train: 'train.jsonl', textField: 'body' };
    const err = await taskError(taskDir(spec, { 'train.jsonl': jsonl([{ body: 'x' }, { text: 'y' }]) }));
    expect(err.line).toBe(2);
    expect(err.field).toBe('body');
  });

  it('rejects a spec that is not JSON, a missing split file and a missing spec', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scaleot-task-'));
    writeFileSync(join(dir, 'task.json'), '{"version": 1,');
    expect((await taskError(dir)).message).toMatch(/not valid JSON/);
    const noSplit = await taskError(taskDir({ ...goodSpec, test: 'nope.jsonl' }));
    expect(noSplit.field).toBe('test');
    expect(noSplit.message).toMatch(/does not exist/);
    const empty = mkdtempSync(join(tmpdir(), 'scaleot-task-'));
    mkdirSync(join(empty, 'sub'));
    expect((await taskError(join(empty, 'sub'))).file).toMatch(/task\.json$/);
    expect((await taskError(join(empty, 'absent'))).message).toMatch(/does not exist/);
  });

  it('rejects candidates that are not a label → text map of at least two', async () => {
    expect((await taskError(taskDir({ ...goodSpec, candidates: { bug: ' bug' } }))).field).toBe('candidates');
    expect((await taskError(taskDir({ ...goodSpec, candidates: [' bug', ' feature'] }))).field).toBe('candidates');
    expect((await taskError(taskDir({ ...goodSpec, candidates: { bug: ' bug', feature: '' } }))).field).toBe('candidates.feature');
  });
});

describe('built-in tasks', () => {
  it('are moby, spam and sotu, loaded from the data root', async () => {
    expect(builtinTaskNames()).toEqual(['moby', 'spam', 'sotu']);
    const spam = await loadTask('spam', fixtureDataDir);
    expect(spam.specFile).toBe('<builtin:spam>');
    expect((spam.spec as ClassificationTaskSpec).candidates).toEqual({ ham: ' ham', spam: ' spam' });
    expect(taskRows(spam, 'train')).toHaveLength(1600);
    expect(taskRows(spam, 'test')).toHaveLength(500);
    const sotu = await builtinTask('sotu', fixtureDataDir);
    expect(taskRows(sotu, 'test')).toHaveLength(23);
  });

  it('treat other names as paths and report unknown ones', async () => {
    await expect(builtinTask('imdb', fixtureDataDir)).rejects.toThrow(TaskError);
    const dir = taskDir();
    expect((await loadTask(dir, fixtureDataDir)).spec.name).toBe('tickets');
    await expect(loadTask('moby', join(tmpdir(), 'no-such-data-root'))).rejects.toThrow(/does not exist/);
  });
});
