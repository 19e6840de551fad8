/**
 * The test API server's CustomResourceDefinitions: what an installed CRD makes the API server do with every write of
 * its custom resources, as kube-apiserver's apiextensions part does — prune the fields the schema does not declare
 * (warning about them, or refusing them with `fieldValidation=Strict`), apply the schema's defaults, validate against
 * the schema and its CEL rules (transition rules against the stored object), and serve the /scale subresource.
 * By default the server installs the CRDs of manifests/, as `kubectl apply -f manifests/` would on a real cluster.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as yaml from 'js-yaml';
import type { KObj } from './api-server';
import { applyDefaults, check, prune, render, structuralProblems, validateRules, type FieldError, type Schema } from './openapi-validate';

export const MANIFESTS = path.join(__dirname, '..', '..', '..', 'manifests');

export interface ScaleSpec {
  specReplicasPath: string;
  statusReplicasPath: string;
  labelSelectorPath?: string;
}
interface CRDSpec {
  group: string;
  names: { kind: string; plural: string };
  versions: { name: string; served: boolean; storage: boolean; schema?: { openAPIV3Schema: Schema }; subresources?: { status?: object; scale?: ScaleSpec } }[];
}
export interface Installed {
  name: string;
  group: string;
  version: string;
  kind: string;
  plural: string;
  schema: Schema;
  scale?: ScaleSpec;
}

/** A write's answer to unknown fields: Strict refuses them, Warn (the default) and Ignore drop them. */
export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export class AdmissionError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly causes: { reason: string; message: string; field: string }[] = [],
  ) {
    super(message);
  }
}

/** The CRDs in the YAML files of manifests/. */
export function manifestCRDs(dir = MANIFESTS): KObj[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .flatMap((f) => yaml.loadAll(fs.readFileSync(path.join(dir, f), 'utf8')) as (KObj | null)[])
    .filter((d): d is KObj => d !== null && d.kind === 'CustomResourceDefinition');
}

export class CustomResources {
  private readonly byResource = new Map<string, Installed>();

  /** Install (or replace) a CRD; throws AdmissionError when its schema is not one the API server would take. */
  install(crd: KObj): void {
    const spec = crd.spec as CRDSpec;
    const v = spec.versions.find((x) => x.storage) ?? spec.versions[0];
    const schema = v?.schema?.openAPIV3Schema;
    if (!schema) throw new AdmissionError(422, 'Invalid', `CustomResourceDefinition.apiextensions.k8s.io "${crd.metadata.name}" is invalid: spec.versions[0].schema.openAPIV3Schema: Required value`);
    const problems = structuralProblems(schema);
    if (problems.length > 0) throw new AdmissionError(422, 'Invalid', `CustomResourceDefinition.apiextensions.k8s.io "${crd.metadata.name}" is invalid: ${problems.join(', ')}`);
    this.byResource.set(`${spec.group}/${spec.names.plural}`, {
      name: crd.metadata.name as string,
      group: spec.group,
      version: v.name,
      kind: spec.names.kind,
      plural: spec.names.plural,
      schema,
      scale: v.subresources?.scale,
    });
  }

  uninstall(crdName: string): void {
    for (const [k, c] of this.byResource) if (c.name === crdName) this.byResource.delete(k);
  }

  get(group: string, plural: string): Installed | undefined {
    return this.byResource.get(`${group}/${plural}`);
  }

  /**
   * The object a write stores: `next` pruned, defaulted and validated (rules against `old` on an update).
   * Unknown fields go to `warnings` (Warn), nowhere (Ignore), or refuse the write (Strict).
   */
  admit(c: Installed, next: KObj, old: KObj | undefined, fieldValidation: FieldValidation, warnings: string[]): KObj {
    const unknown: string[] = [];
    const pruned = prune(c.schema, next, unknown) as KObj;
    if (unknown.length > 0) {
      if (fieldValidation === 'Strict') {
        throw new AdmissionError(400, 'BadRequest', `${c.kind} in version "${c.version}" cannot be handled as a ${c.kind}: strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(', ')}`);
      }
      if (fieldValidation === 'Warn') warnings.push(...unknown.map((u) => `unknown field "${u}"`));
    }
    const obj = applyDefaults(c.schema, pruned) as KObj;
    const errs: FieldError[] = [...check(c.schema, obj), ...validateRules(c.schema, obj, old)];
    if (errs.length > 0) {
      const texts = errs.map(render);
      throw new AdmissionError(
        422,
        'Invalid',
        `${c.kind}.${c.group} "${next.metadata.name ?? ''}" is invalid: ${texts.length === 1 ? texts[0] : `[${texts.join(', ')}]`}`,
        errs.map((e, i) => ({ reason: `FieldValue${e.type === 'Unsupported' ? 'NotSupported' : e.type}`, message: texts[i], field: e.field })),
      );
    }
    return obj;
  }
}

/** The value at a `.a.b` path (the scale subresource's replicas paths). */
export function getPath(obj: unknown, p: string): unknown {
  let v = obj;
  for (const k of p.split('.').filter((x) => x !== '')) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}
export function setPath(obj: Record<string, unknown>, p: string, value: unknown): void {
  const ks = p.split('.').filter((x) => x !== '');
  let o = obj;
  for (const k of ks.slice(0, -1)) {
    if (o[k] === null || typeof o[k] !== 'object') o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[ks[ks.length - 1]] = value;
}
