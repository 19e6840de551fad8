/**
 * A kubelet that really runs the pods of the test API server, as local processes: each Pod's container runs the
 * program its image's entrypoint names — our etcd for ts-etcd/etcd (`node dist/server/main.js`), the operator for
 * ts-etcd/etcd-operator (`node dist/operator/main.js`), or a `command` of the image (`node /app/dist/...`, as etcdctl
 * is run from the etcd image) — with the container's args and env, on the Pod's own loopback address 127.0.0.N (Linux
 * routes all of 127/8 to lo). It plays the parts of the node that a process needs:
 *  - network namespace: the pod gets an IP; listen addresses 0.0.0.0 in `--listen-*` args become the pod IP;
 *  - volumes: every volumeMount's mountPath in the args is mapped to a directory under the kubelet's temp dir (an
 *    emptyDir lives and dies with the pod (by uid); a persistentVolumeClaim's directory outlives its pods; a secret's
 *    holds a file per key, written before the container starts (which waits for a missing Secret, ContainerCreating)
 *    and rewritten (renamed into place) when the Secret changes, as the kubelet refreshes mounted Secrets);
 *  - cluster DNS: it keeps a hosts file for test/support/kube/cluster-dns.js, preloaded into every process it
 *    starts (and into the operator): `<hostname>.<subdomain>.<ns>.svc` → pod IP, `<service>.<ns>.svc` → endpoints;
 *  - the endpoints controller's part: an Endpoints object per Service with a selector (ready and not-ready pod IPs,
 *    the Service's target ports), so a Prometheus with kubernetes_sd_configs role `endpoints` finds the pods;
 *  - readiness: the container's readinessProbe (httpGet or tcpSocket) on the pod IP, at a test-friendly period;
 *  - status through the /status subresource: phase, podIP, hostIP, startTime, Ready/ContainersReady conditions,
 *    containerStatuses (image, ready, restartCount, state, lastState);
 *  - restarts: a container that exits is restarted per restartPolicy (Always, OnFailure, Never) with a short
 *    backoff (CrashLoopBackOff while waiting); an image change in the pod spec restarts the container (SIGTERM,
 *    SIGKILL after the grace period) on the same volumes;
 *  - deletion: a deleted pod's process is stopped and its emptyDir removed;
 *  - a graceful node shutdown (`end`): the process stopped with SIGTERM, the pod Succeeded or Failed for good;
 *  - init containers: run one after the other before the container (the pod Pending meanwhile), each again after a
 *    failure with a backoff (Init:CrashLoopBackOff), or the pod Failed with restartPolicy Never;
 *  - termination messages: the container's terminationMessagePath (in its args, as a mount) is a file of the pod's;
 *    what the program wrote there (up to 4096 bytes) is its state.terminated.message.
 * It works from the in-process store's change feed plus a periodic resync (both feed one serialized sync loop), and
 * records what it did (`events`) so tests can check orderings (e.g. that a rolling upgrade restarted one at a time).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import type { KObj, KubeApiServer } from './api-server';

const ROOT = path.join(__dirname, '..', '..', '..');
export const ETCD_MAIN = path.join(ROOT, 'dist', 'server', 'main.js');
export const OPERATOR_MAIN = path.join(ROOT, 'dist', 'operator', 'main.js');
/** The images' entrypoints (images/*: node /app/dist/...), by repository. */
const ENTRYPOINTS: Record<string, string> = { 'ts-etcd/etcd': ETCD_MAIN, 'ts-etcd/etcd-operator': OPERATOR_MAIN };
export const DNS_SHIM = path.join(__dirname, 'cluster-dns.js');

interface Probe {
  httpGet?: { path?: string; port: number | string; scheme?: string };
  tcpSocket?: { port: number | string };
  failureThreshold?: number;
  successThreshold?: number;
  timeoutSeconds?: number;
}
interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  volumeMounts?: { name: string; mountPath: string }[];
  readinessProbe?: Probe;
  terminationMessagePath?: string;
}
interface PodSpec {
  containers?: Container[];
  initContainers?: Container[];
  volumes?: { name: string; emptyDir?: unknown; persistentVolumeClaim?: { claimName: string }; secret?: { secretName: string } }[];
  restartPolicy?: 'Always' | 'OnFailure' | 'Never';
  hostname?: string;
  subdomain?: string;
  terminationGracePeriodSeconds?: number;
}

export interface KubeletEvent {
  at: number;
  pod: string;
  kind: 'started' | 'exited' | 'stopping' | 'ready' | 'unready' | 'deleted' | 'failed';
  image?: string;
  pid?: number;
  detail?: string;
}

interface Run {
  key: string; // ns/name
  ns: string;
  name: string;
  uid: string;
  ip: string;
  podDir: string;
  /** The spec the container runs with (image, args...) — the one it was last started with. */
  ctr: Container;
  spec: PodSpec;
  child?: ChildProcess;
  pid?: number;
  startedAt?: string;
  /** Why we are stopping the current process, if we are. */
  stopping?: 'update' | 'delete';
  deleted: boolean;
  restartCount: number;
  ready: boolean;
  probeFailures: number;
  lastTermination?: { exitCode: number; signal?: string; reason: string; finishedAt: string; message?: string };
  /** Init containers: how many have completed (all of them: the container may start), and the one running. */
  initDone: number;
  initRunning?: boolean;
  initStatuses: Record<string, unknown>[];
  /** Waiting for a Secret it mounts to exist. */
  waitingForSecrets?: boolean;
  waitingReason?: string;
  restartTimer?: NodeJS.Timeout;
  terminal?: 'Succeeded' | 'Failed';
  createdAt: string;
  probing: boolean;
  lastStatus?: string;
}

export interface ProcessKubeletOptions {
  /** First N of 127.0.0.N handed to pods. */
  firstHost?: number;
  probePeriodMs?: number;
  /** Restart backoff: base * 2^(restarts) capped at max. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  resyncMs?: number;
  /** SIGTERM → SIGKILL after this long (the pod's terminationGracePeriodSeconds is far too long for tests). */
  gracePeriodMs?: number;
}

export class ProcessKubelet {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'process-kubelet-'));
  readonly dnsFile = path.join(this.root, 'cluster-dns.json');
  readonly events: KubeletEvent[] = [];
  private readonly runs = new Map<string, Run>(); // by ns/name
  private nextHost: number;
  private off?: () => void;
  private resyncTimer?: NodeJS.Timeout;
  private probeTimer?: NodeJS.Timeout;
  private syncing = false;
  private syncAgain = false;
  private stopped = false;
  private readonly o: Required<ProcessKubeletOptions>;
  /** If the test process goes away without stop(), its etcd processes must not outlive it. */
  private readonly onProcessExit = (): void => {
    for (const r of this.runs.values()) r.child?.kill('SIGKILL');
  };

  constructor(
    private readonly api: KubeApiServer,
    o: ProcessKubeletOptions = {},
  ) {
    this.o = { firstHost: 10, probePeriodMs: 200, backoffBaseMs: 250, backoffMaxMs: 2000, resyncMs: 500, gracePeriodMs: 5000, ...o };
    this.nextHost = this.o.firstHost;
    this.writeDns();
  }

  /** What the operator (or any process that must resolve the cluster's names) needs in its environment. */
  dnsEnv(): Record<string, string> {
    return { TEST_CLUSTER_DNS_FILE: this.dnsFile, NODE_OPTIONS: `--require ${DNS_SHIM}` };
  }

  start(): void {
    if (!fs.existsSync(ETCD_MAIN)) throw new Error(`${ETCD_MAIN} is missing: run npx tsc -p tsconfig.json`);
    this.off = this.api.store.onChange((c) => {
      if (c.rt.plural === 'pods' || c.rt.plural === 'services' || c.rt.plural === 'secrets') this.kick();
    });
    this.resyncTimer = setInterval(() => this.kick(), this.o.resyncMs);
    this.probeTimer = setInterval(() => this.probeAll(), this.o.probePeriodMs);
    process.on('exit', this.onProcessExit);
    this.kick();
  }

  /** Stops every process (SIGKILL), waits for them, removes the temp dir. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.off?.();
    process.off('exit', this.onProcessExit);
    clearInterval(this.resyncTimer);
    clearInterval(this.probeTimer);
    await Promise.all(
      [...this.runs.values()].map((r) => {
        clearTimeout(r.restartTimer);
        r.deleted = true;
        return this.killAndWait(r, 'SIGKILL');
      }),
    );
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  // ---- for tests ----

  /** The pods this kubelet runs, as it sees them. */
  list(): { ns: string; name: string; ip: string; pid?: number; alive: boolean; ready: boolean; image?: string; restartCount: number; clientURL: string }[] {
    return [...this.runs.values()]
      .filter((r) => !r.deleted)
      .map((r) => ({ ns: r.ns, name: r.name, ip: r.ip, pid: r.pid, alive: r.child !== undefined, ready: r.ready, image: r.ctr.image, restartCount: r.restartCount, clientURL: `http://${r.ip}:2379` }));
  }

  ipOf(ns: string, name: string): string | undefined {
    const r = this.runs.get(`${ns}/${name}`);
    return r && !r.deleted ? r.ip : undefined;
  }

  /** Sends a signal to the pod's process (e.g. SIGKILL: the container crashes); returns the pid signalled. */
  signal(ns: string, name: string, sig: NodeJS.Signals): number | undefined {
    const r = this.runs.get(`${ns}/${name}`);
    if (!r?.child || r.pid === undefined) return undefined;
    process.kill(r.pid, sig);
    return r.pid;
  }

  /**
   * The node shuts down gracefully under the pod: its container gets SIGTERM and the pod ends with `phase` for good
   * (Succeeded or Failed, as kubelets of different versions report it); nothing restarts it.
   */
  async end(ns: string, name: string, phase: 'Succeeded' | 'Failed'): Promise<void> {
    const r = this.runs.get(`${ns}/${name}`);
    if (!r || r.deleted) throw new Error(`no pod ${ns}/${name} runs here`);
    r.terminal = phase;
    r.ready = false;
    clearTimeout(r.restartTimer);
    await this.killAndWait(r, 'SIGTERM');
    this.writeStatus(r);
    this.writeDns();
  }

  /** The tail of a pod's container log (stdout and stderr of all its runs). */
  logTail(ns: string, name: string, bytes = 4000): string {
    const r = this.runs.get(`${ns}/${name}`);
    if (!r) return '';
    try {
      const s = fs.readFileSync(this.logFile(r), 'utf8');
      return s.slice(-bytes);
    } catch {
      return '';
    }
  }

  /** Container logs outlive the pod (like `kubectl logs` would not, but a test wants them after a failure). */
  private logFile(r: Run): string {
    fs.mkdirSync(path.join(this.root, 'logs'), { recursive: true });
    return path.join(this.root, 'logs', `${r.ns}_${r.name}_${r.uid}.log`);
  }

  /** Every container log of pods with this name, including deleted ones. */
  allLogs(): Record<string, string> {
    const dir = path.join(this.root, 'logs');
    const out: Record<string, string> = {};
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) out[f] = fs.readFileSync(path.join(dir, f), 'utf8');
    return out;
  }

  // ---- sync ----

  private kick(): void {
    if (this.stopped) return;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = true;
    void this.sync()
      .catch((e: Error) => this.record('(kubelet)', 'failed', { detail: `sync: ${e.stack ?? e.message}` }))
      .finally(() => {
        this.syncing = false;
        if (this.syncAgain) {
          this.syncAgain = false;
          this.kick();
        }
      });
  }

  private async sync(): Promise<void> {
    const pods = this.api.store.list('pods');
    const seen = new Set<string>();
    for (const pod of pods) {
      if (this.stopped) return;
      const ns = pod.metadata.namespace as string;
      const name = pod.metadata.name as string;
      const key = `${ns}/${name}`;
      seen.add(key);
      let r = this.runs.get(key);
      if (r && r.uid !== pod.metadata.uid) {
        // deleted and re-created under the same name: the old one goes first
        if (!r.deleted) this.removeRun(r);
        r = undefined;
      }
      const spec = (pod.spec ?? {}) as PodSpec;
      const ctr = spec.containers?.[0];
      if (!ctr) continue;
      if (!r) {
        r = await this.admit(pod, spec, ctr);
        this.runs.set(key, r);
        this.startContainer(r);
      } else if (!r.deleted && r.ctr.image !== ctr.image && r.stopping === undefined && r.terminal === undefined) {
        // the image changed: the kubelet restarts the container with the new spec, on the same volumes
        if (r.child) {
          r.stopping = 'update';
          this.record(key, 'stopping', { image: r.ctr.image, pid: r.pid, detail: `image → ${ctr.image}` });
          r.ready = false;
          this.writeStatus(r);
          void this.killAndWait(r, 'SIGTERM');
        } else {
          clearTimeout(r.restartTimer);
          r.ctr = ctr;
          this.startContainer(r);
        }
      }
      if (r && !r.deleted) {
        r.spec = spec;
        // mounted Secrets follow their Secret; a container that waited for one starts once it is there
        const mounted = this.writeSecrets(r);
        if (mounted && r.waitingForSecrets) {
          r.waitingForSecrets = false;
          this.startContainer(r);
        }
      }
    }
    for (const r of [...this.runs.values()]) {
      if (!seen.has(r.key) && !r.deleted) this.removeRun(r);
    }
    this.writeDns();
    for (const r of this.runs.values()) if (!r.deleted) this.writeStatus(r);
  }

  /** A new pod on this node: an IP, its volume directories. */
  private async admit(pod: KObj, spec: PodSpec, ctr: Container): Promise<Run> {
    const ns = pod.metadata.namespace as string;
    const name = pod.metadata.name as string;
    const ip = await this.allocateIP();
    const podDir = path.join(this.root, 'pods', `${ns}_${name}_${pod.metadata.uid as string}`);
    fs.mkdirSync(podDir, { recursive: true });
    return {
      key: `${ns}/${name}`,
      ns,
      name,
      uid: pod.metadata.uid as string,
      ip,
      podDir,
      ctr,
      spec,
      deleted: false,
      restartCount: 0,
      ready: false,
      probeFailures: 0,
      createdAt: new Date().toISOString(),
      probing: false,
      initDone: 0,
      initStatuses: [],
    };
  }

  private async allocateIP(): Promise<string> {
    for (let tries = 0; tries < 245; tries++) {
      const n = this.nextHost++;
      if (n > 254) break;
      const ip = `127.0.0.${n}`;
      // someone else (another test run) may be on it: the pod's ports must be free
      if ((await portFree(ip, 2379)) && (await portFree(ip, 2380))) return ip;
    }
    throw new Error(`process kubelet: no 127.0.0.x address from ${this.o.firstHost} on has ports 2379 and 2380 free (something listens on 0.0.0.0:2379?)`);
  }

  private volumePath(r: Run, volumeName: string): string {
    const v = r.spec.volumes?.find((x) => x.name === volumeName);
    const dir = v?.persistentVolumeClaim
      ? path.join(this.root, 'pvc', `${r.ns}_${v.persistentVolumeClaim.claimName}`)
      : path.join(r.podDir, 'volumes', volumeName);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** The program (a script of our build) and its arguments, as a container of this spec runs them on this "node". */
  private commandLine(r: Run, ctr: Container = r.ctr): string[] {
    let program: string | undefined;
    let rest: string[];
    const cmd = ctr.command ?? [];
    if (cmd.length > 0) {
      // the images hold node and /app/dist (images/*); `etcd` names the server
      if (path.basename(cmd[0]) === 'etcd') program = ETCD_MAIN;
      else if (cmd[0] === 'node' && cmd[1]?.startsWith('/app/dist/')) program = path.join(ROOT, cmd[1].slice('/app/'.length));
      rest = cmd.slice(program === ETCD_MAIN ? 1 : 2);
    } else {
      program = ENTRYPOINTS[(ctr.image ?? '').replace(/[:@].*$/, '')];
      rest = [];
    }
    if (!program) throw new Error(`container ${ctr.name}: image ${ctr.image} with command ${JSON.stringify(cmd)}: this kubelet runs only ts-etcd's programs`);
    const mounts = [...(ctr.volumeMounts ?? [])].sort((a, b) => b.mountPath.length - a.mountPath.length);
    const termination = ctr.terminationMessagePath ?? '/dev/termination-log';
    const mapArg = (a: string): string => {
      let s = a;
      if (/^--?listen-/.test(s)) s = s.replace(/0\.0\.0\.0/g, r.ip);
      const i = s.indexOf(termination);
      if (i >= 0 && (i === 0 || s[i - 1] === '=')) return s.slice(0, i) + this.terminationFile(r, ctr.name) + s.slice(i + termination.length);
      // the longest mount path that starts the value (once: the result is a host path, not the container's)
      for (const m of mounts) {
        const j = s.indexOf(m.mountPath);
        if (j >= 0 && (j === 0 || s[j - 1] === '=') && /^(\/|$)/.test(s.slice(j + m.mountPath.length))) return s.slice(0, j) + this.volumePath(r, m.name) + s.slice(j + m.mountPath.length);
      }
      return s;
    };
    return [program, ...[...rest, ...(ctr.args ?? [])].map(mapArg)];
  }

  /** Where a container's termination message is written (its terminationMessagePath). */
  private terminationFile(r: Run, ctr: string): string {
    const dir = path.join(r.podDir, 'termination');
    fs.mkdirSync(dir, { recursive: true });
    return path.join(dir, ctr);
  }
  private terminationMessage(r: Run, ctr: string): string | undefined {
    try {
      const text = fs.readFileSync(this.terminationFile(r, ctr), 'utf8');
      return text === '' ? undefined : text.slice(0, 4096);
    } catch {
      return undefined;
    }
  }

  /** Runs the pod's init containers in turn; true when all completed (else it will try again, or the pod failed). */
  private runInit(r: Run): boolean {
    const inits = r.spec.initContainers ?? [];
    if (r.initDone >= inits.length) return true;
    if (r.initRunning) return false;
    const ctr = inits[r.initDone];
    let argv: string[];
    try {
      argv = this.commandLine(r, ctr);
    } catch (e) {
      r.terminal = 'Failed';
      this.record(r.key, 'failed', { detail: (e as Error).message });
      this.writeStatus(r);
      return false;
    }
    r.initRunning = true;
    const log = fs.openSync(this.logFile(r), 'a');
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOSTNAME: r.spec.hostname ?? r.name, NODE_NO_WARNINGS: '1', TEST_CLUSTER_DNS_FILE: this.dnsFile };
    for (const e of ctr.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
    const child = spawn(process.execPath, ['--require', DNS_SHIM, ...argv], { cwd: r.podDir, env, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    r.child = child;
    r.pid = child.pid;
    this.record(r.key, 'started', { image: ctr.image, pid: child.pid, detail: `init ${ctr.name}: ${argv.slice(1).join(' ')}` });
    r.initStatuses[r.initDone] = { name: ctr.name, image: ctr.image, ready: false, restartCount: r.restartCount, state: { running: { startedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') } } };
    this.writeStatus(r);
    child.once('exit', (code, sig) => {
      if (r.child !== child) return;
      r.child = undefined;
      r.pid = undefined;
      r.initRunning = false;
      const exitCode = code ?? 128 + (sig ? (os.constants.signals[sig] ?? 0) : 0);
      this.record(r.key, 'exited', { detail: `init ${ctr.name}: code ${code} signal ${sig}` });
      const terminated = { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', finishedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), message: this.terminationMessage(r, ctr.name) };
      r.initStatuses[r.initDone] = { name: ctr.name, image: ctr.image, ready: exitCode === 0, restartCount: r.restartCount, state: { terminated } };
      if (r.deleted || this.stopped) return;
      if (exitCode === 0) {
        r.initDone++;
        this.startContainer(r);
        return;
      }
      if ((r.spec.restartPolicy ?? 'Always') === 'Never') {
        r.terminal = 'Failed';
        this.writeStatus(r);
        return;
      }
      const delay = Math.min(this.o.backoffMaxMs, this.o.backoffBaseMs * 2 ** Math.min(r.restartCount, 10));
      r.restartCount++;
      r.waitingReason = 'Init:CrashLoopBackOff';
      this.writeStatus(r);
      r.restartTimer = setTimeout(() => this.startContainer(r), delay);
    });
    return false;
  }

  /** Writes the files of the pod's secret volumes (changed ones only, each renamed into place); false if one is missing. */
  private writeSecrets(r: Run): boolean {
    let all = true;
    for (const v of r.spec.volumes ?? []) {
      if (!v.secret) continue;
      const secret = this.api.store.get('secrets', r.ns, v.secret.secretName);
      if (!secret) {
        all = false;
        continue;
      }
      const dir = path.join(r.podDir, 'volumes', v.name);
      fs.mkdirSync(dir, { recursive: true });
      const data = (secret.data ?? {}) as Record<string, string>;
      for (const [k, b64] of Object.entries(data)) {
        const want = Buffer.from(b64, 'base64');
        const file = path.join(dir, k);
        let have: Buffer | undefined;
        try {
          have = fs.readFileSync(file);
        } catch {
          have = undefined;
        }
        if (have && have.equals(want)) continue;
        fs.writeFileSync(`${file}.tmp`, want, { mode: 0o600 });
        fs.renameSync(`${file}.tmp`, file);
      }
      for (const f of fs.readdirSync(dir)) if (!(f in data)) fs.rmSync(path.join(dir, f), { force: true });
    }
    return all;
  }

  private startContainer(r: Run): void {
    if (this.stopped || r.deleted) return;
    r.waitingReason = undefined;
    if (!this.writeSecrets(r)) {
      // FailedMount: the kubelet tries again when the Secret appears
      r.waitingForSecrets = true;
      r.waitingReason = 'ContainerCreating';
      this.writeStatus(r);
      return;
    }
    if (!this.runInit(r)) return;
    let args: string[];
    try {
      args = this.commandLine(r);
    } catch (e) {
      r.waitingReason = 'CreateContainerError';
      r.terminal = 'Failed';
      this.record(r.key, 'failed', { detail: (e as Error).message });
      this.writeStatus(r);
      return;
    }
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOSTNAME: r.spec.hostname ?? r.name,
      NODE_NO_WARNINGS: '1',
      TEST_CLUSTER_DNS_FILE: this.dnsFile,
    };
    for (const e of r.ctr.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
    const log = fs.openSync(this.logFile(r), 'a');
    const child = spawn(process.execPath, ['--require', DNS_SHIM, ...args], { cwd: r.podDir, env, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    r.child = child;
    r.pid = child.pid;
    r.startedAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    r.probeFailures = 0;
    this.record(r.key, 'started', { image: r.ctr.image, pid: child.pid, detail: args.slice(1).join(' ') });
    child.once('exit', (code, sig) => this.onExit(r, child, code, sig));
    this.writeStatus(r);
  }

  private onExit(r: Run, child: ChildProcess, code: number | null, sig: NodeJS.Signals | null): void {
    if (r.child !== child) return;
    r.child = undefined;
    r.pid = undefined;
    r.ready = false;
    const exitCode = code ?? 128 + (sig ? (os.constants.signals[sig] ?? 0) : 0);
    r.lastTermination = { exitCode, signal: sig ?? undefined, reason: exitCode === 0 ? 'Completed' : 'Error', finishedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), message: this.terminationMessage(r, r.ctr.name) };
    this.record(r.key, 'exited', { detail: `code ${code} signal ${sig}` });
    if (r.deleted || this.stopped) return;
    if (r.terminal) return this.writeStatus(r); // ended for good (end())
    const why = r.stopping;
    r.stopping = undefined;
    if (why === 'update') {
      // restart at once with the pod's current container spec
      const pod = this.api.store.get('pods', r.ns, r.name);
      const ctr = (pod?.spec as PodSpec | undefined)?.containers?.[0];
      if (ctr) r.ctr = ctr;
      r.restartCount++;
      this.startContainer(r);
      return;
    }
    const policy = r.spec.restartPolicy ?? 'Always';
    if (policy === 'Never' || (policy === 'OnFailure' && exitCode === 0)) {
      r.terminal = exitCode === 0 ? 'Succeeded' : 'Failed';
      this.writeStatus(r);
      return;
    }
    const delay = Math.min(this.o.backoffMaxMs, this.o.backoffBaseMs * 2 ** Math.min(r.restartCount, 10));
    r.restartCount++;
    r.waitingReason = 'CrashLoopBackOff';
    this.writeStatus(r);
    r.restartTimer = setTimeout(() => {
      const pod = this.api.store.get('pods', r.ns, r.name);
      const ctr = (pod?.spec as PodSpec | undefined)?.containers?.[0];
      if (ctr) r.ctr = ctr;
      this.startContainer(r);
    }, delay);
  }

  private removeRun(r: Run): void {
    r.deleted = true;
    r.ready = false;
    clearTimeout(r.restartTimer);
    this.record(r.key, 'deleted', { pid: r.pid });
    void this.killAndWait(r, 'SIGTERM').then(() => {
      if (this.runs.get(r.key) === r) this.runs.delete(r.key);
      // the emptyDir goes with the pod
      fs.rmSync(r.podDir, { recursive: true, force: true });
      this.writeDns();
    });
  }

  private async killAndWait(r: Run, sig: NodeJS.Signals): Promise<void> {
    const child = r.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(sig);
    const t = setTimeout(() => child.kill('SIGKILL'), sig === 'SIGKILL' ? 0 : this.o.gracePeriodMs);
    await exited;
    clearTimeout(t);
  }

  // ---- readiness ----

  private probeAll(): void {
    if (this.stopped) return;
    for (const r of this.runs.values()) {
      if (r.deleted || !r.child || r.probing || r.stopping || r.initDone < (r.spec.initContainers ?? []).length) continue;
      r.probing = true;
      const child = r.child;
      void this.probe(r).then((ok) => {
        r.probing = false;
        if (r.child !== child || r.deleted || r.stopping) return;
        const threshold = r.ctr.readinessProbe?.failureThreshold ?? 3;
        if (ok) {
          r.probeFailures = 0;
          if (!r.ready) {
            r.ready = true;
            this.record(r.key, 'ready', { image: r.ctr.image, pid: r.pid });
            this.writeStatus(r);
            this.writeDns();
          }
        } else if (++r.probeFailures >= threshold && r.ready) {
          r.ready = false;
          this.record(r.key, 'unready', { image: r.ctr.image, pid: r.pid });
          this.writeStatus(r);
          this.writeDns();
        }
      });
    }
  }

  private probe(r: Run): Promise<boolean> {
    const p = r.ctr.readinessProbe;
    const timeoutMs = Math.min(1000, (p?.timeoutSeconds ?? 1) * 1000);
    const port = (v: number | string): number => (typeof v === 'number' ? v : 2379);
    if (p?.tcpSocket) {
      return portFree(r.ip, port(p.tcpSocket.port)).then((free) => !free);
    }
    if (!p?.httpGet) return Promise.resolve(true);
    const get = p.httpGet;
    return new Promise((resolve) => {
      const req = http.get({ host: r.ip, port: port(get.port), path: get.path ?? '/', agent: false, timeout: timeoutMs }, (res) => {
        res.resume();
        res.on('end', () => resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400));
        res.on('error', () => resolve(false));
      });
      req.on('timeout', () => req.destroy(new Error('probe timeout')));
      req.on('error', () => resolve(false));
    });
  }

  // ---- status and DNS ----

  private writeStatus(r: Run): void {
    if (this.stopped || r.deleted) return;
    const pod = this.api.store.get('pods', r.ns, r.name);
    if (!pod || pod.metadata.uid !== r.uid) return;
    const ctrName = r.ctr.name;
    const state = r.child
      ? { running: { startedAt: r.startedAt } }
      : r.waitingReason
        ? { waiting: { reason: r.waitingReason } }
        : r.lastTermination
          ? { terminated: { exitCode: r.lastTermination.exitCode, reason: r.lastTermination.reason, finishedAt: r.lastTermination.finishedAt, ...(r.lastTermination.message ? { message: r.lastTermination.message } : {}) } }
          : { waiting: { reason: r.initDone < (r.spec.initContainers ?? []).length ? 'PodInitializing' : 'ContainerCreating' } };
    const lastState = r.lastTermination && r.child ? { terminated: { exitCode: r.lastTermination.exitCode, reason: r.lastTermination.reason, finishedAt: r.lastTermination.finishedAt } } : {};
    const ready = r.ready && r.child !== undefined;
    const old = (pod.status ?? {}) as { conditions?: { type: string; status: string; lastTransitionTime?: string }[]; startTime?: string };
    const cond = (type: string, status: boolean): { type: string; status: string; lastTransitionTime: string } => {
      const s = status ? 'True' : 'False';
      const prev = old.conditions?.find((c) => c.type === type);
      return { type, status: s, lastTransitionTime: prev && prev.status === s && prev.lastTransitionTime ? prev.lastTransitionTime : new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') };
    };
    const initializing = r.initDone < (r.spec.initContainers ?? []).length;
    const status = {
      phase: r.terminal ?? (initializing ? 'Pending' : 'Running'),
      hostIP: '127.0.0.1',
      podIP: r.ip,
      podIPs: [{ ip: r.ip }],
      startTime: old.startTime ?? r.createdAt.replace(/\.\d{3}Z$/, 'Z'),
      conditions: [cond('Initialized', !initializing), cond('Ready', ready), cond('ContainersReady', ready), cond('PodScheduled', true)],
      ...(r.initStatuses.length > 0 ? { initContainerStatuses: r.initStatuses } : {}),
      containerStatuses: [
        {
          name: ctrName,
          image: r.ctr.image,
          imageID: `process-kubelet://${r.ctr.image}`,
          ready,
          started: r.child !== undefined,
          restartCount: r.restartCount,
          state,
          lastState,
        },
      ],
    };
    const text = JSON.stringify(status);
    const oldText = JSON.stringify(pod.status ?? {});
    if (text === oldText) return;
    pod.status = status;
    try {
      this.api.store.update('pods', r.ns, r.name, pod, 'status');
    } catch {
      // deleted or changed meanwhile: the next sync writes it again
    }
  }

  private writeDns(): void {
    const hosts: Record<string, string[]> = {};
    const live = [...this.runs.values()].filter((r) => !r.deleted);
    for (const r of live) {
      if (r.spec.hostname && r.spec.subdomain) hosts[`${r.spec.hostname}.${r.spec.subdomain}.${r.ns}.svc`] = [r.ip];
    }
    const services = this.api.store.list('services');
    for (const svc of services) {
      const spec = (svc.spec ?? {}) as { selector?: Record<string, string>; publishNotReadyAddresses?: boolean; ports?: { name?: string; port: number; targetPort?: number | string }[] };
      if (!spec.selector) continue;
      const ns = svc.metadata.namespace as string;
      const selected = live
        .map((r) => ({ r, pod: r.ns === ns ? this.api.store.get('pods', r.ns, r.name) : undefined }))
        .filter((x) => x.pod !== undefined && x.pod.metadata.uid === x.r.uid && Object.entries(spec.selector as Record<string, string>).every(([k, v]) => x.pod?.metadata.labels?.[k] === v));
      const ips = selected.filter((x) => spec.publishNotReadyAddresses || x.r.ready).map((x) => x.r.ip);
      if (ips.length > 0) hosts[`${svc.metadata.name as string}.${ns}.svc`] = ips;
      const address = (x: (typeof selected)[number]): Record<string, unknown> => ({ ip: x.r.ip, targetRef: { kind: 'Pod', name: x.r.name, namespace: ns, uid: x.r.uid } });
      const ready = selected.filter((x) => spec.publishNotReadyAddresses || x.r.ready).map(address);
      const notReady = selected.filter((x) => !(spec.publishNotReadyAddresses || x.r.ready)).map(address);
      const ports = (spec.ports ?? []).map((p) => ({ name: p.name, port: typeof p.targetPort === 'number' ? p.targetPort : p.port, protocol: 'TCP' }));
      const subsets = ready.length + notReady.length > 0 ? [{ ...(ready.length ? { addresses: ready } : {}), ...(notReady.length ? { notReadyAddresses: notReady } : {}), ports }] : [];
      this.writeEndpoints(ns, svc.metadata.name as string, svc.metadata.labels, subsets);
    }
    for (const ep of this.api.store.list('endpoints')) {
      if (!services.some((s) => s.metadata.namespace === ep.metadata.namespace && s.metadata.name === ep.metadata.name)) {
        try {
          this.api.store.delete('endpoints', ep.metadata.namespace, ep.metadata.name as string);
        } catch {
          // gone meanwhile
        }
      }
    }
    const tmp = `${this.dnsFile}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, JSON.stringify({ hosts }));
      fs.renameSync(tmp, this.dnsFile);
    } catch {
      // the temp dir is gone (stopping)
    }
  }

  /** Creates or updates a Service's Endpoints when they changed. */
  private writeEndpoints(ns: string, name: string, labels: Record<string, string> | undefined, subsets: unknown[]): void {
    const cur = this.api.store.get('endpoints', ns, name);
    try {
      if (!cur) this.api.store.create('endpoints', ns, { metadata: { name, labels }, subsets });
      else if (JSON.stringify(cur.subsets ?? []) !== JSON.stringify(subsets)) this.api.store.update('endpoints', ns, name, { ...cur, subsets });
    } catch {
      // the namespace is going, or a racing write: the next sync writes it again
    }
  }

  private record(pod: string, kind: KubeletEvent['kind'], extra: Partial<KubeletEvent> = {}): void {
    this.events.push({ at: Date.now(), pod, kind, ...extra });
  }
}

/** Whether nothing listens on ip:port (a connect is refused). */
function portFree(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: ip, port });
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 1000);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(false);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}
