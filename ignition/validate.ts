/** Value checks shared by the sections: URLs, paths, unit names, hashes. Each reports at the value's position. */
import type { Report } from './diagnostics';
import { refine, str, type Decoder } from './decode';
import { bareIpv6Templates, withPlaceholders } from './platforms';
import type { Position } from './yaml-positions';

/**
 * Parses a URL (templates replaced by placeholders) and checks its scheme; reports and returns false if bad. An IPv6
 * template without brackets is a warning: the value would reach etcd as an invalid URL.
 */
export function checkUrl(value: string, schemes: readonly string[], report: Report, path: string, pos: Position): boolean {
  for (const template of new Set(bareIpv6Templates(value))) {
    report.warn(
      `${path}: write "[${template}]" in "${value}": ${template} becomes a bare IPv6 address, which etcd would get as an invalid URL without brackets`,
      pos,
    );
  }
  let url: URL;
  try {
    url = new URL(withPlaceholders(value));
  } catch {
    report.error(`${path}: "${value}" is not a valid URL`, pos);
    return false;
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (!schemes.includes(scheme)) {
    report.error(`${path}: URL "${value}" has scheme "${scheme}", expected ${schemes.join(' or ')}`, pos);
    return false;
  }
  if ((scheme === 'http' || scheme === 'https') && url.hostname === '') {
    report.error(`${path}: URL "${value}" has no host`, pos);
    return false;
  }
  return true;
}

export const HTTP_SCHEMES = ['http', 'https'] as const;
/** Schemes Ignition can fetch file contents and configs from. */
export const FETCH_SCHEMES = ['http', 'https', 'tftp', 's3', 'gs', 'data'] as const;

/** A string holding one URL. */
export function url(schemes: readonly string[]): Decoder<string> {
  return refine(str, (v, report, path, pos) => checkUrl(v, schemes, report, path, pos));
}

/** A comma-separated list of URLs, as etcd's `*_urls` flags take. */
export function urlList(schemes: readonly string[]): Decoder<string> {
  return refine(str, (v, report, path, pos) => {
    const parts = v.split(',').map((p) => p.trim());
    if (parts.some((p) => p === '')) {
      report.error(`${path}: empty entry in URL list "${v}"`, pos);
      return false;
    }
    return parts.every((p) => checkUrl(p, schemes, report, path, pos));
  });
}

export const absolutePath: Decoder<string> = refine(str, (v, report, path, pos) => {
  if (!v.startsWith('/')) {
    report.error(`${path}: path "${v}" must be absolute`, pos);
    return false;
  }
  return true;
});

const UNIT_TYPES = ['service', 'socket', 'device', 'mount', 'automount', 'swap', 'target', 'path', 'timer', 'snapshot', 'slice', 'scope'];

export const unitName: Decoder<string> = refine(str, (v, report, path, pos) => {
  const dot = v.lastIndexOf('.');
  if (dot <= 0 || !UNIT_TYPES.includes(v.slice(dot + 1))) {
    report.error(`${path}: unit name "${v}" must end in a unit type (.${UNIT_TYPES.join(', .')})`, pos);
    return false;
  }
  return true;
});

export const dropinName: Decoder<string> = refine(str, (v, report, path, pos) => {
  if (!v.endsWith('.conf') || v.includes('/')) {
    report.error(`${path}: drop-in name "${v}" must be a file name ending in ".conf"`, pos);
    return false;
  }
  return true;
});

/** `sha512` sums are 128 hex digits. */
export function checkHash(fn: string, sum: string, report: Report, path: string, pos: Position): boolean {
  const lengths: Record<string, number> = { sha512: 128, sha256: 64 };
  const len = Object.hasOwn(lengths, fn) ? lengths[fn] : undefined;
  if (len === undefined) {
    report.error(`${path}: hash function "${fn}" is not supported (use sha512 or sha256)`, pos);
    return false;
  }
  if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(sum)) {
    report.error(`${path}: a ${fn} sum is ${len} hex digits`, pos);
    return false;
  }
  return true;
}

/** Quotes like Go's %q for the text ct puts in unit files (backslash, double quote and control characters escaped). */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}

export interface Semver {
  major: number;
  minor: number;
  patch: number;
  text: string;
}

const SEMVER = /^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/** A semantic version such as "3.4.0" (the image tag is "v" + this text). */
export const semver: Decoder<Semver> = (node, report, path) => {
  const s = str(node, report, path);
  if (s === undefined) return undefined;
  const m = SEMVER.exec(s);
  if (!m) {
    report.error(`${path}: "${s}" is not a semantic version like "3.4.0"`, node.pos);
    return undefined;
  }
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), text: s };
};
