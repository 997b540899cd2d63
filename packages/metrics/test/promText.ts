/** The value of the one sample of `name` whose labels include `labels`; throws when none or several match. */
export function sample(text: string, name: string, labels: Record<string, string>): number {
  const matches = text.split('\n').filter((line) => {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) return false;
    return Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`));
  });
  if (matches.length !== 1) throw new Error(`expected one ${name} ${JSON.stringify(labels)} sample, got ${matches.length}`);
  return Number(matches[0].split(' ').pop());
}
