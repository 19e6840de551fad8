import { expectValidIgnition } from './helpers';

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
