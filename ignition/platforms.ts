/**
 * Platforms known to `--platform`, and ct's templating: `{PRIVATE_IPV4}` and friends in the etcd and flannel
 * sections become the environment variables coreos-metadata (afterburn) writes to /run/metadata/coreos on that
 * platform, e.g. `${COREOS_EC2_IPV4_LOCAL}`.
 */
import type { Report } from './diagnostics';
import type { Unit } from './model';
import type { Position } from './yaml-positions';

export const TEMPLATE_FIELDS = ['HOSTNAME', 'PRIVATE_IPV4', 'PUBLIC_IPV4', 'PRIVATE_IPV6', 'PUBLIC_IPV6'] as const;
export type TemplateField = (typeof TEMPLATE_FIELDS)[number];

export interface Platform {
  name: string;
  variables: Partial<Record<TemplateField, string>>;
  /** coreos-metadata cannot detect this platform by itself; ct tells it with a drop-in. */
  needsProviderOverride?: boolean;
}

export const PLATFORMS: readonly Platform[] = [
  { name: 'azure', variables: { PRIVATE_IPV4: 'COREOS_AZURE_IPV4_DYNAMIC', PUBLIC_IPV4: 'COREOS_AZURE_IPV4_VIRTUAL' } },
  {
    name: 'digitalocean',
    variables: {
      HOSTNAME: 'COREOS_DIGITALOCEAN_HOSTNAME',
      PRIVATE_IPV4: 'COREOS_DIGITALOCEAN_IPV4_PRIVATE_0',
      PUBLIC_IPV4: 'COREOS_DIGITALOCEAN_IPV4_PUBLIC_0',
      PRIVATE_IPV6: 'COREOS_DIGITALOCEAN_IPV6_PRIVATE_0',
      PUBLIC_IPV6: 'COREOS_DIGITALOCEAN_IPV6_PUBLIC_0',
    },
  },
  {
    name: 'ec2',
    variables: { HOSTNAME: 'COREOS_EC2_HOSTNAME', PRIVATE_IPV4: 'COREOS_EC2_IPV4_LOCAL', PUBLIC_IPV4: 'COREOS_EC2_IPV4_PUBLIC' },
  },
  {
    name: 'gce',
    variables: { HOSTNAME: 'COREOS_GCE_HOSTNAME', PRIVATE_IPV4: 'COREOS_GCE_IP_LOCAL_0', PUBLIC_IPV4: 'COREOS_GCE_IP_EXTERNAL_0' },
  },
  {
    name: 'packet',
    variables: {
      HOSTNAME: 'COREOS_PACKET_HOSTNAME',
      PRIVATE_IPV4: 'COREOS_PACKET_IPV4_PRIVATE_0',
      PUBLIC_IPV4: 'COREOS_PACKET_IPV4_PUBLIC_0',
      PUBLIC_IPV6: 'COREOS_PACKET_IPV6_PUBLIC_0',
    },
  },
  {
    name: 'openstack-metadata',
    variables: {
      HOSTNAME: 'COREOS_OPENSTACK_HOSTNAME',
      PRIVATE_IPV4: 'COREOS_OPENSTACK_IPV4_LOCAL',
      PUBLIC_IPV4: 'COREOS_OPENSTACK_IPV4_PUBLIC',
    },
    needsProviderOverride: true,
  },
  {
    name: 'vagrant-virtualbox',
    variables: { HOSTNAME: 'COREOS_VAGRANT_VIRTUALBOX_HOSTNAME', PRIVATE_IPV4: 'COREOS_VAGRANT_VIRTUALBOX_PRIVATE_IPV4' },
  },
  { name: 'cloudstack-configdrive', variables: { HOSTNAME: 'CLOUDSTACK_LOCAL_HOSTNAME' }, needsProviderOverride: true },
  {
    name: 'custom',
    variables: {
      HOSTNAME: 'COREOS_CUSTOM_HOSTNAME',
      PRIVATE_IPV4: 'COREOS_CUSTOM_PRIVATE_IPV4',
      PUBLIC_IPV4: 'COREOS_CUSTOM_PUBLIC_IPV4',
      PRIVATE_IPV6: 'COREOS_CUSTOM_PRIVATE_IPV6',
      PUBLIC_IPV6: 'COREOS_CUSTOM_PUBLIC_IPV6',
    },
  },
];

export function findPlatform(name: string): Platform | undefined {
  return PLATFORMS.find((p) => p.name === name);
}

const TEMPLATE_RE = /\{([^{}]*)\}/g;

export function hasTemplate(value: string): boolean {
  return value.includes('{') || value.includes('}');
}

/** `{PRIVATE_IPV6}` and `{PUBLIC_IPV6}`, with the brackets around them when there are both. */
const IPV6_TEMPLATE_RE = /(\[?)\{([A-Z_]*IPV6)\}(\]?)/g;

/**
 * The IPv6 templates (e.g. "{PRIVATE_IPV6}") written without brackets around them. The metadata agents write bare
 * IPv6 addresses, so inside a URL the template must be written `[{PRIVATE_IPV6}]`: unbracketed, etcd would get
 * "http://fd00::1:2380", which is not a URL.
 */
export function bareIpv6Templates(value: string): string[] {
  const bare: string[] = [];
  for (const m of value.matchAll(IPV6_TEMPLATE_RE)) if (m[1] !== '[' || m[3] !== ']') bare.push(`{${m[2]}}`);
  return bare;
}

/**
 * A stand-in for every template, for checking the shape of a templated value (e.g. that it is a URL). An IPv6
 * template stands for a bare address: written `[{PRIVATE_IPV6}]` it becomes `[2001:db8::1]`. One written without
 * brackets gets them here, so that the rest of the URL is still checked (`bareIpv6Templates` finds those, for a
 * warning).
 */
export function withPlaceholders(value: string): string {
  return value
    .replace(IPV6_TEMPLATE_RE, (_whole, open: string, _field: string, close: string) =>
      open === '[' && close === ']' ? '[2001:db8::1]' : `${open}[2001:db8::1]${close}`,
    )
    .replace(TEMPLATE_RE, () => '192.0.2.1');
}

/**
 * Replaces `{FIELD}` with `${VARIABLE}` for the platform. Reports (at `pos`) a template used without a platform,
 * an unknown field, a field the platform lacks, and unbalanced braces; returns undefined then.
 */
export function expandTemplates(
  value: string,
  platform: Platform | undefined,
  report: Report,
  path: string,
  pos: Position,
): string | undefined {
  if (!hasTemplate(value)) return value;
  if (!platform) {
    report.error(`${path}: templating ("${value}") needs a platform; pass --platform (one of ${PLATFORMS.map((p) => p.name).join(', ')})`, pos);
    return undefined;
  }
  let ok = true;
  const out = value.replace(TEMPLATE_RE, (whole, field: string) => {
    if (!(TEMPLATE_FIELDS as readonly string[]).includes(field)) {
      report.error(`${path}: unknown template field "${whole}" (known: ${TEMPLATE_FIELDS.map((f) => `{${f}}`).join(', ')})`, pos);
      ok = false;
      return whole;
    }
    const variable = platform.variables[field as TemplateField];
    if (!variable) {
      report.error(`${path}: platform "${platform.name}" does not provide ${whole}`, pos);
      ok = false;
      return whole;
    }
    return `\${${variable}}`;
  });
  if (ok && /[{}]/.test(out.replace(/\$\{[A-Z0-9_]+\}/g, ''))) {
    report.error(`${path}: unbalanced "{" or "}" in "${value}"`, pos);
    return undefined;
  }
  return ok ? out : undefined;
}

/**
 * On platforms coreos-metadata cannot recognise by itself, ct tells it the provider with a drop-in, and enables
 * the SSH key fetcher.
 */
export function platformUnits(platform: Platform): Unit[] {
  if (!platform.needsProviderOverride) return [];
  const dropins = [
    { name: '20-clct-provider-override.conf', contents: `[Service]\nEnvironment=COREOS_METADATA_OPT_PROVIDER=--provider=${platform.name}` },
  ];
  return [
    { name: 'coreos-metadata.service', dropins },
    { name: 'coreos-metadata-sshkeys@.service', enabled: true, dropins },
  ];
}
