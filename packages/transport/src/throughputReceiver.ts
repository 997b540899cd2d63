// Child-process entry of measureThroughput: receives in its own process, as a coordinator would.
import { startReceiver, type ReceiverPlan } from './throughputPeer.js';

// Never outlive the parent (it may die or give up mid-run).
process.once('disconnect', () => process.exit(0));

function post(message: object): Promise<void> {
  return new Promise((resolve) => process.send!(message, undefined, undefined, () => resolve()));
}

process.once('message', (plan: ReceiverPlan) => {
  void (async () => {
    const receiver = await startReceiver(plan);
    await post({ address: receiver.address });
    const report = await receiver.done;
    await receiver.close();
    await post(report);
    process.exit(0);
  })().catch(async (error: unknown) => {
    await post({ error: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  });
});
