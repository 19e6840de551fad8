/** Jest runs the TypeScript tests through SWC (type checking is done by `tsc -p test` in `npm test`). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }],
  },
  moduleFileExtensions: ['ts', 'js', 'json'],
  testTimeout: 60000,
  // Data dirs under test/fixtures hold Raft snapshot files (*.snap), which are not jest snapshots.
  modulePathIgnorePatterns: ['<rootDir>/test/fixtures/'],
};
