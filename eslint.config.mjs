// ESLint (flat config): typescript-eslint's type-aware recommended rules for the TypeScript,
// @eslint/js's recommended rules for the plain JavaScript, and the house rules of
// docs/architecture.md as import boundaries. Formatting is Prettier's (npm run format).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// ---- house rules: import boundaries ------------------------------------------------------
// no-restricted-imports sees import/export declarations (type-only ones too); the lazy
// `require()`s, `import()`s and `typeof import()`s are checked by the same patterns below.

/** `../` `depth` times: the way from a file `depth` folders down back to the repository root. */
const up = (depth) => '\\.\\./'.repeat(depth);

/**
 * Rules for the files directly in `dir/` (depth 1) and in its sub-folders up to `maxDepth`:
 * `forbidden(root)` gives, for a file whose way back to the root is the regex `root`, the
 * regex of the import strings it may not use.
 */
function boundary(dir, maxDepth, forbidden, message) {
  const configs = [];
  for (let depth = 1; depth <= maxDepth; depth++) {
    const regex = forbidden(up(depth));
    const literal = `/${regex.replaceAll('/', '\\/')}/u`;
    configs.push({
      name: `house-rules/${dir}/depth-${depth}`,
      files: [`${dir}/${'*/'.repeat(depth - 1)}*.{ts,js,mjs,cjs}`],
      rules: {
        'no-restricted-imports': ['error', { patterns: [{ regex, message }] }],
        'no-restricted-syntax': [
          'error',
          { selector: `CallExpression[callee.name='require'] > Literal.arguments[value=${literal}]`, message },
          { selector: `ImportExpression > Literal.source[value=${literal}]`, message },
          { selector: `TSImportType Literal[value=${literal}]`, message },
        ],
      },
    });
  }
  return configs;
}

const houseRules = [
  // lib/ imports nothing from core/, plugins/ or bin/
  ...boundary(
    'lib',
    3,
    (root) => `^${root}(core|plugins|bin)(/|$)`,
    'lib/ imports nothing from core/, plugins/ or bin/ (docs/architecture.md)',
  ),
  // core/ never imports oclif, nor bin/ or plugins/ (core/plugins/ is core's own)
  ...boundary(
    'core',
    3,
    (root) => `^(@oclif/|${root}(bin|plugins)(/|$))`,
    'core/ never imports oclif, bin/ or plugins/: it returns results and throws AutopilotErrors (docs/architecture.md)',
  ),
  // a plugin (plugins/<kind>/<name>/) imports packages, its own files and the public contract, nothing else of ours
  ...boundary(
    'plugins',
    4,
    (root) => `^(?!${root}core/plugins/contract$)(\\.\\./|/)`,
    'plugins import only ../../../core/plugins/contract of ours (besides their own files): the rest reaches them through the context',
  ),
];

export default defineConfig(
  {
    ignores: [
      'dist/',
      'coverage/',
      'examples/*-state/',
      'examples/*-backups/',
      'bench/work/',
      'test/fixtures/', // configs and their expected output, not code
    ],
  },
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },

  // ---- TypeScript: bin/ core/ lib/ plugins/ test/ --------------------------------------
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        // test/tsconfig.json covers bin/ core/ lib/ plugins/ and test/ in one program
        project: ['./test/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // off: `async` without `await` is how this code implements the contract's Promise-returning methods (updater,
      // hypervisor, health hooks) so that a throw becomes a rejection; dropping `async` would change that behaviour
      '@typescript-eslint/require-await': 'off',
      // forwarding a rejection caught as `unknown` (the signal races) is allowed, as only-throw-error allows rethrowing one
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // `_`-prefixed names are deliberately unused (parameters a signature requires, rest siblings)
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },

  {
    files: ['test/**/*.test.ts'],
    rules: {
      // off in tests: they assert on the CLI's parsed --json output (json() gives `any` on purpose: the shape is what is
      // under test, checked by expect) and jest's asymmetric matchers (expect.any, expect.stringMatching) are typed `any`
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },

  // ---- plain JavaScript: CommonJS under Node ---------------------------------------------
  {
    files: ['**/*.{js,cjs}'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
    rules: {
      'no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    files: ['**/*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'module', globals: { ...globals.node } },
  },

  ...houseRules,
);
