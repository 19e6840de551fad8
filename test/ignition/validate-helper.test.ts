import { expectAllValidIgnition, expectValidIgnition } from './helpers';

describe('the ignition-validate helper', () => {
  test('accepts a valid spec 3.3.0 config', () => {
    expect(() => expectValidIgnition({ ignition: { version: '3.3.0' } })).not.toThrow();
  });

  test('rejects errors and warnings alike', () => {
    const relative = { ignition: { version: '3.3.0' }, storage: { files: [{ path: 'etc/a' }] } };
    expect(() => expectValidIgnition(relative)).toThrow(/path not absolute/);
    const sticky = { ignition: { version: '3.3.0' }, storage: { files: [{ path: '/etc/a', mode: 0o1644 }] } };
    expect(() => expectValidIgnition(sticky)).toThrow(/sticky/);
    expect(() => expectValidIgnition({ ignition: { version: '2.2.0' } })).toThrow(/unsupported config version/);
  });
});

describe('the batched ignition-validate helper', () => {
  const valid = { ignition: { version: '3.3.0' } };

  test('accepts valid configs', async () => {
    await expect(expectAllValidIgnition(Array.from({ length: 6 }, () => valid))).resolves.toBeUndefined();
  });

  test('rejects when any one config is invalid (or only warned about)', async () => {
    const relative = { ignition: { version: '3.3.0' }, storage: { files: [{ path: 'etc/a' }] } };
    await expect(expectAllValidIgnition([valid, valid, valid, relative, valid])).rejects.toThrow(/path not absolute/);
    const sticky = { ignition: { version: '3.3.0' }, storage: { files: [{ path: '/etc/a', mode: 0o1644 }] } };
    await expect(expectAllValidIgnition([sticky])).rejects.toThrow(/sticky/);
  });
});
