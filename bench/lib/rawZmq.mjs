// The reference for the transport's throughput: plain zeromq PUSH/PULL of the same bytes, receiver in
// a child process that reads every page of each message (as any consumer of the tensor must), with no
// header, checksum or framing of ours. Our number divided by this one is the transport's efficiency.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const receiver = `
const { Pull } = require(process.argv[1]);
(async () => {
  const pull = new Pull({ receiveHighWaterMark: 4 });
  await pull.bind('tcp://127.0.0.1:0');
  process.stdout.write(pull.lastEndpoint + '\\n');
  const n = Number(process.argv[2]);
  let t0 = 0, bytes = 0, sink = 0;
  for (let i = 0; i < n; i++) {
    const [m] = await pull.receive();
    for (let j = 0; j < m.length; j += 4096) sink += m[j];
    if (i === 1) t0 = performance.now(); else if (i > 1) bytes += m.length;
  }
  process.stdout.write(JSON.stringify({ gbPerS: bytes / ((performance.now() - t0) / 1000) / 1e9, sink }) + '\\n');
  pull.close();
})();
`;

export async function rawZmqThroughput({ bytes, iterations }) {
  const require = createRequire(import.meta.url);
  const zmqPath = require.resolve('zeromq');
  const { Push } = await import('zeromq');
  const child = spawn(process.execPath, ['-e', receiver, zmqPath, String(iterations + 2)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = [];
  let pending = '';
  const nextLine = () => new Promise((resolve, reject) => {
    const check = () => {
      if (lines.length) return resolve(lines.shift());
      child.stdout.once('data', (d) => {
        pending += d;
        const parts = pending.split('\n');
        pending = parts.pop();
        lines.push(...parts);
        check();
      });
    };
    child.once('exit', (code) => reject(new Error(`raw zeromq receiver exited with ${code}`)));
    check();
  });
  const endpoint = await nextLine();
  const push = new Push({ sendHighWaterMark: 4 });
  push.connect(endpoint);
  const payload = Buffer.from(new Float32Array(bytes / 4).fill(1).buffer);
  for (let i = 0; i < iterations + 2; i++) await push.send(payload);
  const result = JSON.parse(await nextLine());
  push.close();
  return result;
}
