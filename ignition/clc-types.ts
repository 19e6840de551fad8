/**
 * The Container Linux Config as a whole: the top-level keys and the schema of each section (defined next to its
 * translation in sections/). Decoding checks types, unknown keys and values, with positions.
 */
import { int, object, refine, type Infer } from './decode';
import { dockerSchema } from './sections/docker';
import { etcdSchema } from './sections/etcd';
import { flannelSchema } from './sections/flannel';
import { ignitionSchema } from './sections/ignition-section';
import { networkdSchema } from './sections/networkd';
import { passwdSchema } from './sections/passwd';
import { storageSchema } from './sections/storage';
import { systemdSchema } from './sections/systemd';
import { locksmithSchema, updateSchema } from './sections/update';

/** ct's undocumented format version: only 0 exists. */
const formatVersion = refine(int, (v, report, path, pos) => {
  if (v !== 0) report.error(`${path}: only version 0 of the Container Linux Config format exists`, pos);
  return v === 0;
});

export const clcSchema = object({
  version: formatVersion,
  ignition: ignitionSchema,
  storage: storageSchema,
  systemd: systemdSchema,
  networkd: networkdSchema,
  passwd: passwdSchema,
  etcd: etcdSchema,
  flannel: flannelSchema,
  docker: dockerSchema,
  update: updateSchema,
  locksmith: locksmithSchema,
});

export type ContainerLinuxConfig = NonNullable<Infer<typeof clcSchema>>;
