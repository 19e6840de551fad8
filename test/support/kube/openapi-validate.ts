/**
 * What the API server does with a custom resource against its CRD's structural OpenAPI v3 schema, for the subset of
 * schemas our CRD uses: pruning of unknown fields (`prune`), defaulting (`applyDefaults`), validation (`validate`:
 * type, properties, required, additionalProperties, items, enum, pattern, minimum/maximum, minLength/maxLength,
 * minItems/maxItems, format date-time, anyOf, nullable, x-kubernetes-int-or-string, x-kubernetes-list-type map keys)
 * and `x-kubernetes-validations` CEL rules (`validateRules`, with cel.ts's subset, transition rules with oldSelf).
 * Errors read as the API server's field errors (`spec.size: Invalid value: 0: spec.size in body should be greater
 * than or equal to 1`).
 */
import { compile, CelError, type Program } from './cel';

export interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema | boolean;
  items?: Schema;
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  format?: string;
  anyOf?: Schema[];
  nullable?: boolean;
  default?: unknown;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-validations'?: { rule: string; message?: string; fieldPath?: string; reason?: string }[];
  [k: string]: unknown;
}

/** One field error, as k8s.io/apimachinery's field.Error. */
export interface FieldError {
  type: 'Invalid' | 'Required' | 'Unsupported' | 'Duplicate';
  field: string;
  value?: unknown;
  detail?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v);
const join = (path: string, k: string): string => (path === '' ? k : `${path}.${k}`);

/** The text of a field error, as the API server writes it. */
export function render(e: FieldError): string {
  const shown = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : v !== null && typeof v === 'object' ? JSON.stringify(typeName(v) === 'array' ? 'array' : 'object') : String(v));
  switch (e.type) {
    case 'Required':
      return `${e.field}: Required value${e.detail ? `: ${e.detail}` : ''}`;
    case 'Unsupported':
      return `${e.field}: Unsupported value: ${JSON.stringify(e.value)}: supported values: ${(e.detail ?? '')}`;
    case 'Duplicate':
      return `${e.field}: Duplicate value: ${JSON.stringify(e.value)}`;
    default:
      return `${e.field}: Invalid value: ${shown(e.value)}${e.detail ? `: ${e.detail}` : ''}`;
  }
}

/** Schema validation of `value` (already pruned and defaulted); rendered field errors. */
export function validate(schema: Schema, value: unknown, path = ''): string[] {
  return check(schema, value, path).map(render);
}

export function check(schema: Schema, value: unknown, path = ''): FieldError[] {
  const errs: FieldError[] = [];
  const at = path || '<root>';
  const invalid = (detail: string, v: unknown = value): void => void errs.push({ type: 'Invalid', field: at, value: v, detail: `${at} in body ${detail}` });
  if (value === null) {
    if (!schema.nullable) invalid(`must be of type ${schema.type ?? 'object'}: "null"`, 'null');
    return errs;
  }
  if (schema['x-kubernetes-int-or-string']) {
    if (!(typeof value === 'string' || Number.isInteger(value))) invalid(`must be of type integer-or-string: "${typeName(value)}"`, typeName(value));
    return errs;
  }
  if (schema.anyOf && !schema.anyOf.some((s) => check({ ...s }, value, path).length === 0)) errs.push({ type: 'Invalid', field: at, value, detail: 'must validate at least one schema (anyOf)' });
  const wrongType = (want: string): void => invalid(`must be of type ${want}: "${typeName(value)}"`, typeName(value));
  switch (schema.type) {
    case 'object': {
      if (!isObject(value)) {
        wrongType('object');
        break;
      }
      for (const r of schema.required ?? []) if (!(r in value)) errs.push({ type: 'Required', field: join(path, r) });
      for (const [k, v] of Object.entries(value)) {
        const p = schema.properties?.[k];
        if (p) errs.push(...check(p, v, join(path, k)));
        else if (typeof schema.additionalProperties === 'object') errs.push(...check(schema.additionalProperties, v, join(path, k)));
      }
      break;
    }
    case 'array':
      if (!Array.isArray(value)) {
        wrongType('array');
        break;
      }
      if (schema.minItems !== undefined && value.length < schema.minItems) invalid(`should have at least ${schema.minItems} items`, value);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) invalid(`should have at most ${schema.maxItems} items`, value);
      if (schema.items) value.forEach((v, i) => errs.push(...check(schema.items as Schema, v, `${path}[${i}]`)));
      if (schema['x-kubernetes-list-type'] === 'map') {
        const keys = schema['x-kubernetes-list-map-keys'] ?? [];
        const seen = new Set<string>();
        value.forEach((v, i) => {
          const k = JSON.stringify(keys.map((x) => (isObject(v) ? v[x] : undefined)));
          if (seen.has(k)) errs.push({ type: 'Duplicate', field: `${path}[${i}]`, value: Object.fromEntries(keys.map((x) => [x, isObject(v) ? v[x] : undefined])) });
          seen.add(k);
        });
      }
      break;
    case 'string':
      if (typeof value !== 'string') {
        wrongType('string');
        break;
      }
      if (schema.pattern && !new RegExp(schema.pattern).test(value)) invalid(`should match '${schema.pattern}'`);
      if (schema.minLength !== undefined && [...value].length < schema.minLength) invalid(`should be at least ${schema.minLength} chars long`);
      if (schema.maxLength !== undefined && [...value].length > schema.maxLength) invalid(`should be at most ${schema.maxLength} chars long`);
      if (schema.format === 'date-time' && Number.isNaN(Date.parse(value))) invalid('must be of type date-time');
      break;
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || (schema.type === 'integer' && !Number.isInteger(value))) {
        wrongType(schema.type);
        break;
      }
      if (schema.minimum !== undefined && value < schema.minimum) invalid(`should be greater than or equal to ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum) invalid(`should be less than or equal to ${schema.maximum}`);
      break;
    case 'boolean':
      if (typeof value !== 'boolean') wrongType('boolean');
      break;
    case undefined:
      break;
    default:
      errs.push({ type: 'Invalid', field: at, value: schema.type, detail: 'unknown schema type' });
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    errs.push({ type: 'Unsupported', field: at, value, detail: schema.enum.map((e) => JSON.stringify(e)).join(', ') });
  }
  return errs;
}

/**
 * The API server's pruning: fields the schema does not declare are dropped (unless x-kubernetes-preserve-unknown-fields
 * or additionalProperties allow them), and so are nulls where the schema is not nullable. Returns the pruned value
 * and, in `unknown`, the paths of the dropped unknown fields (what `fieldValidation=Warn` warns about and `Strict`
 * refuses). At the root, apiVersion, kind and metadata are the API server's own.
 */
export function prune(schema: Schema, value: unknown, unknown: string[], path = ''): unknown {
  if (Array.isArray(value)) {
    return schema.items ? value.map((v, i) => prune(schema.items as Schema, v, unknown, `${path}[${i}]`)) : value;
  }
  if (!isObject(value) || schema['x-kubernetes-int-or-string']) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (path === '' && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) {
      out[k] = v;
      continue;
    }
    const p = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
    if (p) {
      if (v === null && !p.nullable) continue;
      out[k] = prune(p, v, unknown, join(path, k));
    } else if (schema['x-kubernetes-preserve-unknown-fields'] || schema.additionalProperties === true) {
      out[k] = v;
    } else {
      unknown.push(join(path, k));
    }
  }
  return out;
}

/** The API server's defaulting: fill `default` of absent properties, depth first. */
export function applyDefaults(schema: Schema, value: unknown): unknown {
  if (schema.type === 'object' && isObject(value)) {
    const out: Record<string, unknown> = { ...value };
    for (const [k, s] of Object.entries(schema.properties ?? {})) {
      if (!(k in out) && s.default !== undefined) out[k] = structuredClone(s.default);
      if (k in out) out[k] = applyDefaults(s, out[k]);
    }
    if (typeof schema.additionalProperties === 'object') for (const k of Object.keys(out)) if (!schema.properties?.[k]) out[k] = applyDefaults(schema.additionalProperties, out[k]);
    return out;
  }
  if (schema.type === 'array' && Array.isArray(value) && schema.items) return value.map((v) => applyDefaults(schema.items as Schema, v));
  return value;
}

const programs = new Map<string, Program>();
function program(rule: string): Program {
  let p = programs.get(rule);
  if (!p) programs.set(rule, (p = compile(rule)));
  return p;
}

/**
 * The `x-kubernetes-validations` rules, each where it is declared, with `self` the value there. A transition rule
 * (one that uses oldSelf) runs only on an update where the old object has a value at that place too; old values are
 * found through object properties and map-keyed list items, as the API server correlates them.
 */
export function validateRules(schema: Schema, value: unknown, old: unknown, path = ''): FieldError[] {
  const errs: FieldError[] = [];
  if (value === undefined || value === null) return errs;
  for (const r of schema['x-kubernetes-validations'] ?? []) {
    const prog = program(r.rule);
    if (prog.usesOldSelf && (old === undefined || old === null)) continue;
    const field = r.fieldPath ? `${path}${r.fieldPath}` : path || '<root>';
    try {
      const ok = prog.eval({ self: value, oldSelf: old });
      if (ok !== true) errs.push({ type: 'Invalid', field, value, detail: r.message ?? `failed rule: ${r.rule}` });
    } catch (e) {
      if (!(e instanceof CelError)) throw e;
      errs.push({ type: 'Invalid', field, value, detail: `${e.message} evaluating rule: ${r.rule}` });
    }
  }
  if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      const p = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      if (p && !(path === '' && k === 'metadata')) errs.push(...validateRules(p, v, isObject(old) ? old[k] : undefined, join(path, k)));
    }
  } else if (Array.isArray(value) && schema.items) {
    const keys = schema['x-kubernetes-list-type'] === 'map' ? schema['x-kubernetes-list-map-keys'] ?? [] : undefined;
    const keyOf = (x: unknown): string => JSON.stringify((keys ?? []).map((k) => (isObject(x) ? x[k] : undefined)));
    value.forEach((v, i) => {
      const o = keys && Array.isArray(old) ? old.find((x) => keyOf(x) === keyOf(v)) : undefined;
      errs.push(...validateRules(schema.items as Schema, v, o, `${path}[${i}]`));
    });
  }
  return errs;
}

/**
 * Rules the API server checks on a CRD's schema: structural (every node has a type, or int-or-string / preserve),
 * valid defaults, and CEL rules that compile (here: within cel.ts's subset, so a rule it cannot run fails loudly).
 */
export function structuralProblems(schema: Schema, path = ''): string[] {
  const errs: string[] = [];
  if (!schema.type && !schema['x-kubernetes-int-or-string'] && !schema['x-kubernetes-preserve-unknown-fields']) errs.push(`${path || '<root>'}: no type`);
  for (const [k, s] of Object.entries(schema.properties ?? {})) errs.push(...structuralProblems(s, `${path}.${k}`));
  if (typeof schema.additionalProperties === 'object') errs.push(...structuralProblems(schema.additionalProperties, `${path}.*`));
  if (schema.properties && typeof schema.additionalProperties === 'object') errs.push(`${path}: properties and additionalProperties are exclusive`);
  if (schema.items) errs.push(...structuralProblems(schema.items, `${path}[]`));
  if (schema.default !== undefined) errs.push(...validate(schema, schema.default, `${path}(default)`));
  for (const r of schema['x-kubernetes-validations'] ?? []) {
    try {
      program(r.rule);
    } catch (e) {
      errs.push(`${path || '<root>'}: x-kubernetes-validations: ${(e as Error).message}`);
    }
  }
  return errs;
}
