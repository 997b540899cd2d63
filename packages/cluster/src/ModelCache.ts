import { loadModel, type CausalLM } from '@scaleot/model';

/**
 * Frozen base models by directory, loaded once per process: every stage-1 job of a worker reuses the
 * same weights (they are never trained; harmonizers are built per parameter version).
 */
export class ModelCache {
  private readonly models = new Map<string, Promise<CausalLM>>();

  get(dir: string): Promise<CausalLM> {
    let model = this.models.get(dir);
    if (!model) {
      model = loadModel(dir, { trainable: false });
      model.catch(() => this.models.delete(dir));
      this.models.set(dir, model);
    }
    return model;
  }

  get loaded(): string[] {
    return [...this.models.keys()];
  }

  async dispose(): Promise<void> {
    for (const model of this.models.values()) (await model.catch(() => undefined))?.dispose();
    this.models.clear();
  }
}
