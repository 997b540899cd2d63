// The fixed per-process cost of a worker with no model: Node, the cluster and transport modules the
// worker imports, and a compute thread with tfjs and its wasm backend initialised (what a stage job
// runs in), before any weight is loaded. Prints {"peak_rss_bytes"} on stdout.
import { ComputeExecutor } from '@scaleot/model';
import { peakRssBytes } from '@scaleot/cluster';
import '@scaleot/transport';

const compute = new ComputeExecutor({ concurrency: 1 });
await compute.run({ module: new URL('./pipeline-noop-task.mjs', import.meta.url), exportName: 'noop', args: {} });
await compute.close();
process.stdout.write(`${JSON.stringify({ peak_rss_bytes: peakRssBytes() })}\n`, () => process.exit(0));
