/**
 * Our .proto files (proto/) against etcd 3.4's own (Debian's golang-etcd-server-dev): both are compiled by protoc to
 * descriptor sets and every service, method (with its streaming flags), message, field (name, number, type, label,
 * type name, oneof) and enum value of etcd's packages must be the same, so etcd's clients see the same wire contract.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as descriptor from 'protobufjs/ext/descriptor';

const ETCD = '/usr/share/gocode/src/go.etcd.io/etcd';
const GOGO = '/usr/share/gocode/src/github.com/gogo/protobuf';
const GOOGLEAPIS = '/usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis';
const OURS = path.resolve(__dirname, '../../proto');
const PACKAGES = new Set(['etcdserverpb', 'mvccpb', 'authpb', 'v3lockpb', 'v3electionpb']);

interface Flat {
  syntax: Map<string, string>;
  services: Map<string, unknown>;
  messages: Map<string, unknown>;
  enums: Map<string, unknown>;
}

function compile(out: string, includes: string[], files: string[]): descriptor.IFileDescriptorSet {
  execFileSync('protoc', [...includes.map((i) => `-I${i}`), '--include_imports', `--descriptor_set_out=${out}`, ...files], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return descriptor.FileDescriptorSet.decode(readFileSync(out)) as unknown as descriptor.IFileDescriptorSet;
}

/** The descriptor set as plain records keyed by full name; only etcd's packages, never gogoproto/google. */
function flatten(set: descriptor.IFileDescriptorSet): Flat {
  const flat: Flat = { syntax: new Map(), services: new Map(), messages: new Map(), enums: new Map() };
  const addEnum = (prefix: string, e: descriptor.IEnumDescriptorProto) =>
    flat.enums.set(`${prefix}.${e.name}`, (e.value ?? []).map((v) => ({ name: v.name, number: v.number })));
  const addMessage = (prefix: string, m: descriptor.IDescriptorProto) => {
    const name = `${prefix}.${m.name}`;
    const oneofs = (m.oneofDecl ?? []).map((o) => o.name);
    flat.messages.set(name, {
      fields: (m.field ?? []).map((f) => ({
        name: f.name,
        number: f.number,
        type: f.type,
        label: f.label,
        typeName: f.typeName ?? null,
        oneof: f.oneofIndex == null ? null : oneofs[f.oneofIndex],
      })),
      oneofs,
    });
    for (const n of m.nestedType ?? []) addMessage(name, n);
    for (const e of m.enumType ?? []) addEnum(name, e);
  };
  for (const file of set.file ?? []) {
    if (!PACKAGES.has(file.package ?? '')) continue;
    const pkg = `.${file.package}`;
    for (const m of file.messageType ?? []) {
      addMessage(pkg, m);
      flat.syntax.set(`${pkg}.${m.name}`, file.syntax ?? 'proto2');
    }
    for (const e of file.enumType ?? []) addEnum(pkg, e);
    for (const s of file.service ?? []) {
      flat.services.set(`${pkg}.${s.name}`, (s.method ?? []).map((m) => ({
        name: m.name,
        inputType: m.inputType,
        outputType: m.outputType,
        clientStreaming: !!m.clientStreaming,
        serverStreaming: !!m.serverStreaming,
      })));
    }
  }
  return flat;
}

describe('our .proto files against etcd 3.4\'s', () => {
  let ours: Flat;
  let theirs: Flat;
  let tmp: string;

  beforeAll(() => {
    for (const f of [`${ETCD}/etcdserver/etcdserverpb/rpc.proto`, `${GOGO}/gogoproto/gogo.proto`]) {
      if (!existsSync(f)) throw new Error(`${f} is missing: install Debian's golang-etcd-server-dev, as .ci/run does`);
    }
    tmp = mkdtempSync(path.join(os.tmpdir(), 'proto-'));
    // etcd's rpc.proto imports its siblings as "etcd/mvcc/…": a link named etcd makes that path resolvable.
    execFileSync('ln', ['-s', ETCD, path.join(tmp, 'etcd')]);
    const ref = compile(path.join(tmp, 'etcd.pb'),
      [tmp, `${ETCD}/etcdserver/etcdserverpb`, GOGO, `${GOGO}/protobuf`, GOOGLEAPIS],
      [`${ETCD}/etcdserver/etcdserverpb/raft_internal.proto`]);
    // The lock and election services import rpc.proto as "etcd/etcdserver/etcdserverpb/rpc.proto" (raft_internal.proto
    // as "rpc.proto"): compiled apart, their descriptors added to the set.
    const refConcurrency = compile(path.join(tmp, 'etcd-concurrency.pb'), [tmp, GOGO, `${GOGO}/protobuf`, GOOGLEAPIS],
      ['etcd/etcdserver/api/v3lock/v3lockpb/v3lock.proto', 'etcd/etcdserver/api/v3election/v3electionpb/v3election.proto'].map((f) => path.join(tmp, f)));
    ref.file = [...(ref.file ?? []), ...(refConcurrency.file ?? []).filter((f) => f.package === 'v3lockpb' || f.package === 'v3electionpb')];
    const our = compile(path.join(tmp, 'ours.pb'), [OURS],
      ['etcdserverpb/raft_internal.proto', 'v3lockpb/v3lock.proto', 'v3electionpb/v3election.proto'].map((f) => path.join(OURS, f)));
    theirs = flatten(ref);
    ours = flatten(our);
  });

  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  test('etcd\'s set is the one expected (the comparison is not vacuous)', () => {
    expect([...theirs.services.keys()].sort()).toEqual(
      ['.etcdserverpb.Auth', '.etcdserverpb.Cluster', '.etcdserverpb.KV', '.etcdserverpb.Lease', '.etcdserverpb.Maintenance', '.etcdserverpb.Watch',
        '.v3electionpb.Election', '.v3lockpb.Lock']);
    expect(theirs.messages.size).toBeGreaterThan(100);
    expect(theirs.messages.has('.etcdserverpb.InternalRaftRequest')).toBe(true);
    expect(theirs.messages.has('.mvccpb.KeyValue')).toBe(true);
    expect(theirs.messages.has('.authpb.Role')).toBe(true);
    expect(theirs.messages.has('.etcdserverpb.Request')).toBe(true);
    expect(theirs.messages.has('.v3electionpb.LeaderKey')).toBe(true);
  });

  test('every service and method, with its request, response and streaming flags', () => {
    expect([...ours.services.keys()].sort()).toEqual([...theirs.services.keys()].sort());
    for (const [name, methods] of theirs.services) expect({ name, methods: ours.services.get(name) }).toEqual({ name, methods });
  });

  test('every message and every field: name, number, type, label, type name and oneof', () => {
    expect([...ours.messages.keys()].sort()).toEqual([...theirs.messages.keys()].sort());
    for (const [name, m] of theirs.messages) expect({ name, m: ours.messages.get(name) }).toEqual({ name, m });
  });

  test('every enum and its values', () => {
    expect([...ours.enums.keys()].sort()).toEqual([...theirs.enums.keys()].sort());
    for (const [name, values] of theirs.enums) expect({ name, values: ours.enums.get(name) }).toEqual({ name, values });
  });

  test('the same syntax (proto2 or proto3) for every message, which decides packing and presence on the wire', () => {
    expect(Object.fromEntries(ours.syntax)).toEqual(Object.fromEntries(theirs.syntax));
  });
});
