import { ScaleotError } from '@scaleot/core';

/** An error thrown inside a compute thread, with its code and retry verdict carried across. */
export class ComputeError extends ScaleotError {}
