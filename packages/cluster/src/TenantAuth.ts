import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { ClusterError } from './ClusterError.js';

const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Bearer tokens per data owner from a mounted JSON file `{"tenant": "token", ...}`
 * (SCALEOT_API_TOKENS_FILE). The file is re-read when it changes, so a rotated Secret takes effect
 * without a restart. Tokens are compared in constant time over their SHA-256 digests (equal length,
 * nothing learned from timing about a token's length or prefix).
 */
export class TenantAuth {
  private tokens: { tenant: string; digest: Buffer }[] = [];
  private stamp = '';

  private constructor(private readonly source: { file: string } | { tokens: Record<string, string> }) {}

  static fromFile(file: string): TenantAuth {
    const auth = new TenantAuth({ file });
    auth.reload();
    return auth;
  }

  static fromTokens(tokens: Record<string, string>): TenantAuth {
    const auth = new TenantAuth({ tokens });
    auth.load(tokens, 'tokens');
    return auth;
  }

  /** The tenant a `Authorization: Bearer <token>` header belongs to, or undefined. */
  authenticate(header: string | undefined): string | undefined {
    if ('file' in this.source) this.reloadIfChanged();
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!match) return undefined;
    const digest = createHash('sha256').update(match[1]).digest();
    let found: string | undefined;
    // Every entry is compared, so the time taken does not say which (or whether one) matched.
    for (const entry of this.tokens) if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry.tenant;
    return found;
  }

  get tenants(): string[] {
    return this.tokens.map((t) => t.tenant);
  }

  private reloadIfChanged(): void {
    const file = (this.source as { file: string }).file;
    try {
      const st = statSync(file);
      if (`${st.mtimeMs}:${st.size}` !== this.stamp) this.reload();
    } catch {
      // Keep the last good tokens while a Secret is being swapped.
    }
  }

  private reload(): void {
    const file = (this.source as { file: string }).file;
    const st = statSync(file);
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (cause) {
      throw new ClusterError('BAD_TOKENS_FILE', 'the API tokens file is not JSON; it must be {"tenant": "token", ...}', { where: file, cause });
    }
    this.load(parsed, file);
    this.stamp = `${st.mtimeMs}:${st.size}`;
  }

  private load(parsed: unknown, where: string): void {
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ClusterError('BAD_TOKENS_FILE', 'the API tokens file must hold one object {"tenant": "token", ...}', { where });
    }
    const tokens: { tenant: string; digest: Buffer }[] = [];
    for (const [tenant, token] of Object.entries(parsed)) {
      if (!TENANT_ID.test(tenant)) throw new ClusterError('BAD_TOKENS_FILE', `tenant id "${tenant}" must be letters, digits, . _ - (max 64)`, { where });
      if (typeof token !== 'string' || token.length < 16) throw new ClusterError('BAD_TOKENS_FILE', `the token of "${tenant}" must be a string of at least 16 characters`, { where });
      tokens.push({ tenant, digest: createHash('sha256').update(token).digest() });
    }
    this.tokens = tokens;
  }
}
