/**
 * YAML parsing that keeps source positions.
 *
 * js-yaml 5 has no `listener` option any more; instead it exposes its flat event stream (`parseEvents`), whose
 * events reference the source by offset. We build a small tree of positioned nodes from those events so that every
 * validation error can name the line and column of the offending key or value. Plain scalars are resolved with the
 * YAML 1.2 core schema rules (null, booleans, integers, floats), the same schema `load` uses by default.
 */
import * as yaml from 'js-yaml';

/** 1-based line and column of a node in the source text. */
export interface Position {
  line: number;
  column: number;
}

export type YamlScalar = string | number | boolean | null;

interface NodeCommon {
  pos: Position;
}

export interface ScalarYNode extends NodeCommon {
  kind: 'scalar';
  /** The resolved value (core schema for untagged plain scalars, the text otherwise). */
  value: YamlScalar;
  /** The scalar's text as written (after unquoting/unfolding). */
  text: string;
  /** Untagged plain scalar: its text was resolved (`3.4` became a number, `true` a boolean, `~` null). */
  plain: boolean;
}

export interface SequenceYNode extends NodeCommon {
  kind: 'sequence';
  items: YNode[];
}

export interface MappingEntry {
  key: string;
  keyPos: Position;
  value: YNode;
}

export interface MappingYNode extends NodeCommon {
  kind: 'mapping';
  entries: MappingEntry[];
}

export type YNode = ScalarYNode | SequenceYNode | MappingYNode;

/** An error tied to a place in the source. Its message ends with "(line L, column C)" when the place is known. */
export class ConfigError extends Error {
  constructor(
    readonly reason: string,
    readonly pos?: Position,
  ) {
    super(pos ? `${reason} (line ${pos.line}, column ${pos.column})` : reason);
    this.name = 'ConfigError';
  }
}

/** Maps offsets to 1-based line/column. */
class LineIndex {
  private readonly starts: number[] = [0];

  constructor(text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }

  at(offset: number): Position {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.starts[lo] + 1 };
  }
}

const NULL_RE = /^(?:~|null|Null|NULL)?$/;
const TRUE_RE = /^(?:true|True|TRUE)$/;
const FALSE_RE = /^(?:false|False|FALSE)$/;
const INT_RE = /^[-+]?[0-9]+$/;
const OCT_RE = /^0o[0-7]+$/;
const HEX_RE = /^0x[0-9a-fA-F]+$/;
const FLOAT_RE = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;
const INF_RE = /^[-+]?\.(?:inf|Inf|INF)$/;
const NAN_RE = /^\.(?:nan|NaN|NAN)$/;

/** Resolves an untagged plain scalar as the YAML 1.2 core schema does. */
function resolvePlain(text: string): YamlScalar {
  if (NULL_RE.test(text)) return null;
  if (TRUE_RE.test(text)) return true;
  if (FALSE_RE.test(text)) return false;
  if (INT_RE.test(text)) return Number.parseInt(text, 10);
  if (OCT_RE.test(text)) return Number.parseInt(text.slice(2), 8);
  if (HEX_RE.test(text)) return Number.parseInt(text.slice(2), 16);
  if (FLOAT_RE.test(text)) return Number.parseFloat(text);
  if (INF_RE.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (NAN_RE.test(text)) return NaN;
  return text;
}

/** Resolves a scalar carrying an explicit tag (`!!str`, `!!int`, ...). */
function resolveTagged(tag: string, text: string, pos: Position): YamlScalar {
  const short = tag.replace(/^tag:yaml\.org,2002:/, '!!');
  switch (short) {
    case '!!str':
    case '!':
      return text;
    case '!!null':
    case '!!bool':
    case '!!int':
    case '!!float': {
      const v = resolvePlain(text);
      const ok =
        (short === '!!null' && v === null) ||
        (short === '!!bool' && typeof v === 'boolean') ||
        ((short === '!!int' || short === '!!float') && typeof v === 'number');
      if (!ok) throw new ConfigError(`cannot resolve "${text}" as ${short}`, pos);
      return v;
    }
    default:
      throw new ConfigError(`unsupported YAML tag ${tag}`, pos);
  }
}

/**
 * Parses one YAML document into positioned nodes. An empty document gives `null`.
 * Throws ConfigError (with position) for syntax errors, duplicate keys, non-scalar keys and unknown aliases.
 */
export function parseYaml(text: string): YNode | null {
  // `loadAll` performs the complete check (syntax, duplicate keys) with js-yaml's messages.
  let documents: unknown[];
  try {
    documents = yaml.loadAll(text);
  } catch (e) {
    if (e instanceof yaml.YAMLException) {
      const pos = e.mark ? { line: e.mark.line + 1, column: e.mark.column + 1 } : undefined;
      throw new ConfigError(`invalid YAML: ${e.reason}`, pos);
    }
    throw e;
  }
  if (documents.length > 1) throw new ConfigError('invalid YAML: a config is one YAML document, found several');
  const events = yaml.parseEvents(text, {});
  const lines = new LineIndex(text);
  const anchors = new Map<string, YNode>();
  let i = 0;
  const slice = (s: number, e: number): string | undefined => (s >= 0 ? text.slice(s, e) : undefined);

  /** `near` stands in for the position of an empty (absent) scalar, which has no offset of its own. */
  const readNode = (near: Position): YNode => {
    const ev = events[i++];
    switch (ev.type) {
      case 4: {
        const start = nodeStart(ev.valueStart, ev.style, ev.tagStart, ev.anchorStart);
        const pos = start >= 0 ? lines.at(start) : near;
        const raw = yaml.getScalarValue(text, ev);
        const tag = slice(ev.tagStart, ev.tagEnd);
        const plain = tag === undefined && ev.style === 1;
        let value: YamlScalar;
        if (tag !== undefined) value = resolveTagged(tag, raw, pos);
        else value = plain ? resolvePlain(raw) : raw;
        return remember(ev.anchorStart, ev.anchorEnd, { kind: 'scalar', value, text: raw, plain, pos });
      }
      case 2: {
        const node: SequenceYNode = { kind: 'sequence', items: [], pos: lines.at(nodeStart(ev.start, 0, ev.tagStart, ev.anchorStart)) };
        while (events[i].type !== 6) node.items.push(readNode(node.pos));
        i++;
        return remember(ev.anchorStart, ev.anchorEnd, node);
      }
      case 3: {
        const node: MappingYNode = { kind: 'mapping', entries: [], pos: lines.at(nodeStart(ev.start, 0, ev.tagStart, ev.anchorStart)) };
        while (events[i].type !== 6) {
          const keyNode = readNode(node.pos);
          if (keyNode.kind !== 'scalar') throw new ConfigError('mapping keys must be scalars', keyNode.pos);
          const value = readNode(keyNode.pos);
          node.entries.push({ key: String(keyNode.value), keyPos: keyNode.pos, value });
        }
        i++;
        return remember(ev.anchorStart, ev.anchorEnd, node);
      }
      case 5: {
        const name = text.slice(ev.anchorStart, ev.anchorEnd);
        const target = anchors.get(name);
        if (!target) throw new ConfigError(`unknown alias *${name}`, lines.at(ev.anchorStart));
        return target;
      }
      default:
        throw new ConfigError(`unexpected YAML event ${ev.type}`);
    }
  };

  /** Where a node starts: at its anchor or tag if it has one, at the opening quote of a quoted scalar, at the
   * first character of a block scalar's content. */
  const nodeStart = (start: number, scalarStyle: number, tagStart: number, anchorStart: number): number => {
    let s = start;
    if (scalarStyle === 2 || scalarStyle === 3) s -= 1;
    else if (scalarStyle === 4 || scalarStyle === 5) while (text[s] === ' ' || text[s] === '\t') s++;
    // anchorStart is just after the '&'
    for (const p of [tagStart, anchorStart >= 0 ? anchorStart - 1 : -1]) if (p >= 0 && (s < 0 || p < s)) s = p;
    return s;
  };

  const remember = <N extends YNode>(s: number, e: number, node: N): N => {
    if (s >= 0) anchors.set(text.slice(s, e), node);
    return node;
  };

  // events: DOCUMENT, [node], POP
  if (events.length === 0) return null;
  i = 1;
  if (events[i]?.type === 6 || i >= events.length) return null;
  return readNode({ line: 1, column: 1 });
}
