import { TaskError } from './TaskError.js';

/**
 * Prompt templates: `{field}` is replaced by the row's field; `{{` and `}}` stand for literal braces.
 * Parsed once into literal text and field names so that a spec can be checked before any row is read.
 */
export interface ParsedTemplate {
  /** Literal pieces; `literals.length === fields.length + 1`, text = l0 + row[f0] + l1 + … */
  literals: string[];
  fields: string[];
}

export function parseTemplate(template: string, file: string, field = 'promptTemplate'): ParsedTemplate {
  const literals: string[] = [];
  const fields: string[] = [];
  let literal = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c === '{' && template[i + 1] === '{') {
      literal += '{';
      i++;
    } else if (c === '}' && template[i + 1] === '}') {
      literal += '}';
      i++;
    } else if (c === '{') {
      const end = template.indexOf('}', i + 1);
      const name = end < 0 ? '' : template.slice(i + 1, end);
      if (end < 0 || name.length === 0 || /[{\s]/.test(name)) {
        throw new TaskError(`has an unterminated or empty placeholder at character ${i}; write {fieldName}, or {{ for a literal brace`, { file, field });
      }
      literals.push(literal);
      fields.push(name);
      literal = '';
      i = end;
    } else if (c === '}') {
      throw new TaskError(`has a stray "}" at character ${i}; write }} for a literal brace`, { file, field });
    } else {
      literal += c;
    }
  }
  literals.push(literal);
  return { literals, fields };
}

/** Text of a template for one row. Row fields must be strings, numbers or booleans (the caller checks presence). */
export function renderTemplate(parsed: ParsedTemplate, row: Record<string, unknown>): string {
  let text = parsed.literals[0];
  for (let k = 0; k < parsed.fields.length; k++) text += String(row[parsed.fields[k]]) + parsed.literals[k + 1];
  return text;
}
