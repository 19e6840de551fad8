/**
 * A small validator for the structural OpenAPI v3 schemas of CRDs — the subset the API server enforces that our CRD
 * uses: type (object, array, string, integer, number, boolean), properties, required, additionalProperties,
 * items, enum, pattern, minimum/maximum, minLength, format int64 / date-time, anyOf (with int-or-string), nullable,
 * x-kubernetes-preserve-unknown-fields, x-kubernetes-int-or-string, and `default` (applyDefaults). Unknown fields are
 * reported (the API server would prune them silently; for a sample that is a mistake worth failing on).
 */
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
  format?: string;
  anyOf?: Schema[];
  nullable?: boolean;
  default?: unknown;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  [k: string]: unknown;
}

export function validate(schema: Schema, value: unknown, path = ''): string[] {
  const errs: string[] = [];
  const at = path || '<root>';
  if (value === null) {
    if (!schema.nullable) errs.push(`${at}: null is not allowed`);
    return errs;
  }
  if (schema['x-kubernetes-int-or-string']) {
    if (!(typeof value === 'string' || Number.isInteger(value))) errs.push(`${at}: want an integer or a string`);
    return errs;
  }
  if (schema.anyOf && !schema.anyOf.some((s) => validate({ ...s }, value, path).length === 0)) errs.push(`${at}: matches none of anyOf`);
  switch (schema.type) {
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) {
        errs.push(`${at}: want an object`);
        break;
      }
      const obj = value as Record<string, unknown>;
      for (const r of schema.required ?? []) if (!(r in obj)) errs.push(`${path}.${r}: Required value`);
      for (const [k, v] of Object.entries(obj)) {
        const p = schema.properties?.[k];
        if (p) errs.push(...validate(p, v, `${path}.${k}`));
        else if (typeof schema.additionalProperties === 'object') errs.push(...validate(schema.additionalProperties, v, `${path}.${k}`));
        else if (!schema['x-kubernetes-preserve-unknown-fields'] && schema.additionalProperties !== true && schema.properties) errs.push(`${path}.${k}: unknown field`);
      }
      break;
    }
    case 'array':
      if (!Array.isArray(value)) errs.push(`${at}: want an array`);
      else if (schema.items) value.forEach((v, i) => errs.push(...validate(schema.items as Schema, v, `${path}[${i}]`)));
      break;
    case 'string':
      if (typeof value !== 'string') errs.push(`${at}: want a string, got ${JSON.stringify(value)}`);
      else {
        if (schema.pattern && !new RegExp(schema.pattern).test(value)) errs.push(`${at}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
        if (schema.minLength !== undefined && value.length < schema.minLength) errs.push(`${at}: shorter than ${schema.minLength}`);
        if (schema.format === 'date-time' && Number.isNaN(Date.parse(value))) errs.push(`${at}: not a date-time`);
      }
      break;
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || (schema.type === 'integer' && !Number.isInteger(value))) errs.push(`${at}: want ${schema.type === 'integer' ? 'an integer' : 'a number'}, got ${JSON.stringify(value)}`);
      else {
        if (schema.minimum !== undefined && value < schema.minimum) errs.push(`${at}: ${value} is less than ${schema.minimum}`);
        if (schema.maximum !== undefined && value > schema.maximum) errs.push(`${at}: ${value} is more than ${schema.maximum}`);
      }
      break;
    case 'boolean':
      if (typeof value !== 'boolean') errs.push(`${at}: want a boolean`);
      break;
    case undefined:
      break;
    default:
      errs.push(`${at}: unknown schema type ${schema.type}`);
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) errs.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`);
  return errs;
}

/** The API server's defaulting: fill `default` of absent properties, depth first. */
export function applyDefaults(schema: Schema, value: unknown): unknown {
  if (schema.type === 'object' && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    for (const [k, s] of Object.entries(schema.properties ?? {})) {
      if (!(k in out) && s.default !== undefined) out[k] = structuredClone(s.default);
      if (k in out) out[k] = applyDefaults(s, out[k]);
    }
    return out;
  }
  if (schema.type === 'array' && Array.isArray(value) && schema.items) return value.map((v) => applyDefaults(schema.items as Schema, v));
  return value;
}

/** Structural-schema rules the API server checks on a CRD: every node has a type (or int-or-string / preserve). */
export function structuralProblems(schema: Schema, path = ''): string[] {
  const errs: string[] = [];
  if (!schema.type && !schema['x-kubernetes-int-or-string'] && !schema['x-kubernetes-preserve-unknown-fields']) errs.push(`${path || '<root>'}: no type`);
  for (const [k, s] of Object.entries(schema.properties ?? {})) errs.push(...structuralProblems(s, `${path}.${k}`));
  if (typeof schema.additionalProperties === 'object') errs.push(...structuralProblems(schema.additionalProperties, `${path}.*`));
  if (schema.properties && typeof schema.additionalProperties === 'object') errs.push(`${path}: properties and additionalProperties are exclusive`);
  if (schema.items) errs.push(...structuralProblems(schema.items, `${path}[]`));
  if (schema.default !== undefined) errs.push(...validate(schema, schema.default, `${path}(default)`));
  return errs;
}
