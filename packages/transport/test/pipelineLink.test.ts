import { describe, expect, it } from 'vitest';
import { encodePipelineMessage, PIPELINE_CHUNK_BYTES, PipelineInbox, PipelineOutbox, TensorSet } from '@scaleot/transport';

describe('pipeline links (stage to stage)', () => {
  it('cuts a large activation into frames of at most 2 MiB and delivers it whole, in order, with its header', async () => {
    const hidden = Float32Array.from({ length: (5 * 2 ** 20) / 4 + 3 }, (_, i) => Math.sin(i));
    const frames = encodePipelineMessage({ header: { type: 'batch', id: 0 }, tensors: new TensorSet().add('hidden', hidden, [hidden.length]) });
    const payloads = frames.slice(1).filter((_, i) => i % 2 === 1);
    expect(payloads).toHaveLength(3);
    expect(Math.max(...payloads.map((f) => f.length))).toBeLessThanOrEqual(PIPELINE_CHUNK_BYTES);

    const inbox = await PipelineInbox.bind('tcp://127.0.0.1:*', '127.0.0.1', { receiveTimeoutMs: 5000 });
    const outbox = PipelineOutbox.connect(inbox.address);
    try {
      expect(inbox.address).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
      for (let id = 0; id < 3; id++) await outbox.send({ header: { type: 'batch', runId: 'r', id }, tensors: new TensorSet().add('hidden', hidden, [hidden.length]).add('ids', Int32Array.of(id, 7), [1, 2], 'I32') });
      for (let id = 0; id < 3; id++) {
        const m = await inbox.receive();
        expect(m.header).toEqual({ type: 'batch', runId: 'r', id });
        expect(Array.from(m.tensors.require('ids').data as Int32Array)).toEqual([id, 7]);
        expect(m.tensors.require('hidden').data).toEqual(hidden);
      }
      expect(inbox.bytesReceived).toBe(outbox.bytesSent);
      expect(outbox.bytesSent).toBeGreaterThan(3 * hidden.byteLength);
    } finally {
      outbox.close();
      inbox.close();
    }
  });

  it('gives up with TIMEOUT when nothing arrives', async () => {
    const inbox = await PipelineInbox.bind('tcp://127.0.0.1:*', '127.0.0.1', { receiveTimeoutMs: 200 });
    try {
      await expect(inbox.receive()).rejects.toMatchObject({ code: 'TIMEOUT' });
    } finally {
      inbox.close();
    }
  });
});
