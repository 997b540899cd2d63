export interface DuplicateKey {
  key: string;
  /** Keys of the enclosing objects, outermost first; empty for a top-level duplicate. */
  path: string[];
}

interface Frame {
  keys: Set<string> | null; // null for arrays
  expectKey: boolean;
  current: string;
}

/**
 * The first key that appears twice in one object of `json`, which must already be valid JSON.
 * JSON.parse keeps the last duplicate silently, and the safetensors reference rejects them, so a
 * separate scan is needed.
 */
export function findDuplicateKey(json: string): DuplicateKey | undefined {
  const stack: Frame[] = [];
  let i = 0;
  const n = json.length;
  while (i < n) {
    const c = json.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      for (;;) {
        const d = json.charCodeAt(j);
        if (d === 0x5c /* \ */) {
          escaped = true;
          j += 2;
        } else if (d === 0x22) break;
        else j += 1;
      }
      const top = stack[stack.length - 1];
      if (top && top.keys && top.expectKey) {
        const key = escaped ? (JSON.parse(json.slice(i, j + 1)) as string) : json.slice(i + 1, j);
        if (top.keys.has(key)) return { key, path: stack.slice(0, -1).map((f) => f.current) };
        top.keys.add(key);
        top.current = key;
        top.expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === 0x7b /* { */) stack.push({ keys: new Set(), expectKey: true, current: '' });
    else if (c === 0x5b /* [ */) stack.push({ keys: null, expectKey: false, current: '' });
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top && top.keys) top.expectKey = true;
    }
    i += 1;
  }
  return undefined;
}
