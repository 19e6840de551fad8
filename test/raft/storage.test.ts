import { MemoryStorage } from '../../server/raft';
import { EntryType } from '../../server/raft/types';

/** A log of entries 1..n in term 1. */
function storageWith(n: number): MemoryStorage {
  const s = new MemoryStorage({ voters: ['a'], learners: [] });
  s.append(Array.from({ length: n }, (_, i) => ({ term: 1, index: i + 1, type: EntryType.Normal, data: Buffer.from(`e${i + 1}`) })));
  return s;
}

describe('MemoryStorage: a saved snapshot\'s data released', () => {
  test('the snapshot keeps its metadata and loses its data; the host can tell it was released', () => {
    const s = storageWith(10);
    const snap = s.createSnapshot(8, { voters: ['a'], learners: [] }, Buffer.from('state'));
    expect(s.dataReleased(s.snapshot())).toBe(false);
    s.releaseSnapshotData(8);
    expect(s.snapshot().metadata).toEqual(snap.metadata);
    expect(s.snapshot().data.length).toBe(0);
    expect(s.dataReleased(s.snapshot())).toBe(true);
    // The log itself is untouched.
    expect(s.lastIndex()).toBe(10);
    expect(s.term(9)).toBe(1);
  });

  test('releasing another index than the current snapshot\'s changes nothing; a newer snapshot has its data', () => {
    const s = storageWith(20);
    s.createSnapshot(8, { voters: ['a'], learners: [] }, Buffer.from('eight'));
    s.releaseSnapshotData(7);
    expect(Buffer.from(s.snapshot().data).toString()).toBe('eight');
    s.releaseSnapshotData(8);
    s.createSnapshot(15, { voters: ['a'], learners: [] }, Buffer.from('fifteen'));
    expect(Buffer.from(s.snapshot().data).toString()).toBe('fifteen');
    expect(s.dataReleased(s.snapshot())).toBe(false);
    s.releaseSnapshotData(8); // an older snapshot's late release
    expect(Buffer.from(s.snapshot().data).toString()).toBe('fifteen');
  });

  test('an empty storage has nothing to release', () => {
    const s = new MemoryStorage();
    s.releaseSnapshotData(0);
    expect(s.dataReleased(s.snapshot())).toBe(false);
  });
});
