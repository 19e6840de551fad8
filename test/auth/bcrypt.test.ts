import { checkPassword, hashPassword } from '../../server/auth/bcrypt';

describe('bcrypt', () => {
  test('OpenBSD test vectors verify, and wrong passwords do not', () => {
    expect(checkPassword('$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', 'U*U')).toBe(true);
    expect(checkPassword('$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', 'U*V')).toBe(false);
    expect(checkPassword('$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.', '')).toBe(true);
    expect(checkPassword('$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui', '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored')).toBe(true);
  });
  test('a hash made here verifies with its password only', () => {
    const h = hashPassword('secret', 4);
    expect(h.toString()).toMatch(/^\$2a\$04\$[./A-Za-z0-9]{53}$/);
    expect(checkPassword(h, 'secret')).toBe(true);
    expect(checkPassword(h, 'secreT')).toBe(false);
    expect(checkPassword('garbage', 'secret')).toBe(false);
  });
});
