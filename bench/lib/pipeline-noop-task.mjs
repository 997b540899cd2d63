// A compute-thread task that only touches tfjs (the backend is already initialised by the thread).
import * as tf from '@tensorflow/tfjs';

export async function noop() {
  const t = tf.tensor([1, 2, 3]);
  const sum = (await tf.sum(t).data())[0];
  t.dispose();
  return sum;
}
