/**
 * Objects and arrays nest at most this deep in what bosun reads from outside: HTTP bodies, stream
 * messages, fleet files. Merges and validators recurse, so a value nested thousands deep would
 * exhaust the stack mid-request; the deepest thing bosun knows (a fleet body's role pubkeys) is 7.
 */
export const MAX_NESTING = 64;

export const TOO_DEEP_JSON = `JSON nested over ${MAX_NESTING} levels of objects and arrays (the limit)`;
export const TOO_DEEP_TOML = `nested over ${MAX_NESTING} levels of tables and arrays (the limit)`;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether JSON text opens more than MAX_NESTING objects and arrays inside each other. One pass
 * over the text without recursion, before it is parsed; strings are skipped with indexOf, so long
 * strings cost little. It does not validate: invalid JSON is JSON.parse's to refuse.
 */
export function jsonTooDeep(text: string): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // The string ends at the next quote preceded by an even number of backslashes.
      for (;;) {
        i = text.indexOf('"', i + 1);
        if (i < 0) return false;
        let j = i - 1;
        while (text.charCodeAt(j) === BACKSLASH) j--;
        if ((i - 1 - j) % 2 === 0) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_NESTING) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

/**
 * The path to the first object or array of a parsed document that lies more than MAX_NESTING
 * levels deep (the document itself is level 1), or undefined. Iterative, for documents whose
 * parser nests without limit (a TOML table header nests once per dotted key).
 */
export function tooDeepPath(doc: unknown): PropertyKey[] | undefined {
  interface Frame {
    value: unknown;
    depth: number;
    key: PropertyKey;
    parent: Frame | undefined;
  }
  const stack: Frame[] = [{ value: doc, depth: 1, key: '', parent: undefined }];
  for (let frame = stack.pop(); frame; frame = stack.pop()) {
    const { value, depth } = frame;
    if (typeof value !== 'object' || value === null) continue;
    if (depth > MAX_NESTING) {
      const path: PropertyKey[] = [];
      for (let f: Frame | undefined = frame; f?.parent; f = f.parent) path.unshift(f.key);
      return path;
    }
    const entries = Array.isArray(value) ? value.entries() : Object.entries(value);
    for (const [key, child] of entries) {
      if (typeof child === 'object' && child !== null)
        stack.push({ value: child, depth: depth + 1, key, parent: frame });
    }
  }
  return undefined;
}
