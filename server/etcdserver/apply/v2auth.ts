import { V2AuthError } from '../../auth/v2/model';
import { V2AuthStore, decodeV2AuthOp } from '../../auth/v2/store';
import { Applier, ApplyContext, ApplyResult } from './applier';

/** The applier of v2 auth entries (EntryKind.V2Auth): changes of users, roles and the enabled flag. */
export class V2AuthApplier implements Applier {
  readonly versions = [1];

  constructor(private readonly store: V2AuthStore) {}

  apply(payload: Uint8Array, _ctx: ApplyContext): ApplyResult {
    const op = decodeV2AuthOp(payload);
    try {
      return { result: this.store.apply(op) };
    } catch (err) {
      // etcd's refusals (a duplicate, a missing user, auth already on) are the client's answer.
      if (err instanceof V2AuthError) return { error: err };
      throw err;
    }
  }
}
