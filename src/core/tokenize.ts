import { fail } from './errors.js';

/**
 * Split a command line into words. Double and single quotes group words; Slack and phone
 * keyboards turn quotes into “smart” ones, so those count as quotes too.
 */
const QUOTE_PAIRS: Record<string, string> = { '"': '"', "'": "'", '“': '”', '‘': '’', '”': '”', '’': '’' };

export function tokenize(line: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let closing: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (closing !== undefined) {
      if (ch === closing) closing = undefined;
      else if (ch === '\\' && closing === '"' && (line[i + 1] === '"' || line[i + 1] === '\\')) current += line[++i];
      else current += ch;
      continue;
    }
    if (/\s/.test(ch)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
      continue;
    }
    inWord = true;
    const close = QUOTE_PAIRS[ch];
    if (close !== undefined) closing = close;
    else current += ch;
  }
  if (closing !== undefined) fail('E_PARSE', `unclosed quote: add the closing ${closing}`);
  if (inWord) words.push(current);
  return words;
}
