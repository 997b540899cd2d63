import { ScaleotError } from '@scaleot/core';

/** The model cannot be cut into stages that fit the workers given (or the memory settings are bad). */
export class PipelinePlanError extends ScaleotError {
  constructor(
    code: 'DOES_NOT_FIT' | 'BAD_MEMORY_SETTING',
    message: string,
    /** What the smallest feasible plan needs and what the workers offer (DOES_NOT_FIT). */
    readonly details: { requiredWorkers?: number; workers?: number; largestBlockBytes?: number; budgetBytes?: number } = {},
  ) {
    super(code, message, { where: 'pipeline plan', unrecoverable: true });
  }
}
