/**
 * The V8 flags the `etcd` command runs with: in its shebang (server/main.ts), the image's entrypoint
 * (images/etcd/Dockerfile) and `npm start`; the benches start our server with them too (test/server/node-flags.test.ts keeps
 * the four in step).
 *
 * `--min-semi-space-size=16`: V8's young generation never below 16 MiB a semi-space (node's default starts it at 1
 * MiB and grows it by doubling, when what survives its collections outgrows it). Three members on two cores, v2 PUT at
 * 64 connections through the leader, 30,000 writes after 10,000 unmeasured (`/tmp/exp/ab3.sh`, 12 alternating rounds):
 * p99 9.7-19.6 ms, median 11.8, against 13.5-19.4, median 17.9, without it, with 0-10% more writes/s. A faster growth
 * instead (`--semi-space-growth-factor=16` once the modules are loaded) did not do it: 17.5-22.5 ms in 4 rounds. The
 * cost is resident memory: the young generation is touched as the modules load, 84-85 MiB against 69 MiB 2 s after
 * start; under light load, where it would have stayed small, more (after `bench:v3`'s one-client cells 174-176 MiB
 * against 134-140); under heavy load, where it has grown to its 16 MiB anyway, the same (144-157 MiB after 3 s of PUT
 * at 16 connections, either way; 144.6 against 144.5 after the bench's 100,000 keys).
 */
export const NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16'];
