/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/test/tsconfig.json' }] },
  testTimeout: 120000,
  globalSetup: '<rootDir>/test/setup/global-setup.js',
  verbose: true,
  reporters: ['default', '<rootDir>/test/setup/summary-reporter.js'],
};
