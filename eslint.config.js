// ESLint flat config: @eslint/js and typescript-eslint recommended rules, the promise rules that need types,
// the import rules between folders, and the size limits. Formatting is prettier's job (`prettier --check .`).
import { readFileSync } from 'node:fs';
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

const root = import.meta.dirname;

/** The workspaces the root package.json lists: each gets the import rules of its kind. */
const workspaces = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).workspaces;

/** The TypeScript programs the type-aware rules read: the server side with its tests, and the client. */
const tsProjects = ['./tsconfig.eslint.json', './client/tsconfig.json'];

const tests = ['**/*.test.{ts,tsx}', 'test/**'];
/** Code that runs only under tests or tools, and may use the root devDependencies. */
const devOnly = [...tests, '**/testing/**', '**/vite.config.ts', 'vitest.config.ts', 'eslint.config.js'];
// The scripts run the system here and never ship: what they import are devDependencies of scripts/.
devOnly.push('scripts/**', 'vitest.unit.config.ts');

/** The Node globals plain JavaScript files may use (TypeScript files get theirs from @types/node). */
const nodeGlobals = Object.fromEntries(
  [
    'process',
    'console',
    'Buffer',
    'URL',
    'URLSearchParams',
    'setTimeout',
    'clearTimeout',
    'setInterval',
    'clearInterval',
    'setImmediate',
    'clearImmediate',
    'fetch',
    'AbortController',
    'AbortSignal',
    'structuredClone',
    'queueMicrotask',
    'performance',
  ].map((name) => [name, 'readonly']),
);

// The import rules, as `no-restricted-imports` patterns (a file gets one list: flat config replaces a rule's
// options, it does not merge them, so each kind of file below names all of its patterns).
const otherPackageByPath = {
  regex: '^(\\.\\./)+[^./][^/]*/(src|dist)/',
  message: "Another package's src/ or dist/: import it by its package name, or test them together in test/.",
};
const projectPackageButCommon = {
  regex: '^@blog/(?!common(/|$))',
  message: 'A service, common and the router import only @blog/common among the project packages.',
};
const packageTheScriptsDoNotRun = {
  regex: '^@blog/(?!(common|router|event-bus)(/|$))',
  message: 'The scripts run the system: they import @blog/common, @blog/router and @blog/event-bus only.',
};
const projectPackage = { regex: '^@blog/', message: 'The client imports no server code.' };
const testHelper = {
  regex: '(^|/)(test/support|testing)(/|$)|\\.test(\\.[cm]?[jt]sx?)?$',
  message: 'Production code imports no test helper (test/support, */testing, *.test.*).',
};
const severalPackages = {
  regex: '/test/support/(stack|nats-stack|bad-input|http-system)(\\.js)?$',
  message: 'This helper starts several packages together: a test using it belongs in test/.',
};
const restrict = (...patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });

export default defineConfig(
  {
    ignores: ['**/dist/', '**/node_modules/', '**/data/', '**/coverage/', '**/.bench/', '**/*.tsbuildinfo'],
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      globals: nodeGlobals,
      parserOptions: { project: tsProjects, tsconfigRootDir: root },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [
        createTypeScriptImportResolver({
          project: tsProjects.map((project) => `${root}/${project}`),
          noWarnOnMultipleProjects: true,
        }),
      ],
    },
    rules: {
      // `_req`, `_err`, `_unused`: named on purpose, not forgotten.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
      // A promise nobody awaits loses its error (an unhandled rejection ends the process).
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  {
    // Plain JavaScript is outside the TypeScript projects: no type-aware rules there.
    files: ['**/*.{js,mjs,cjs}'],
    extends: [tseslint.configs.disableTypeChecked],
  },
  {
    // Each folder imports only the packages its own package.json declares (the nearest one, by default);
    // tests and tools may also use the root devDependencies (vitest, supertest, ...).
    files: ['**/*.{ts,tsx,js,mjs}'],
    rules: {
      'import-x/no-extraneous-dependencies': ['error', { devDependencies: devOnly }],
    },
  },
  ...workspaces.map((workspace) => ({
    files: tests.filter((glob) => glob.startsWith('**')).map((glob) => `${workspace}/${glob}`),
    rules: {
      'import-x/no-extraneous-dependencies': ['error', { packageDir: [`${root}/${workspace}`, root] }],
    },
  })),
  {
    // The tests in test/ run the packages together: they may import what any of them declares.
    files: ['test/**'],
    rules: {
      'import-x/no-extraneous-dependencies': [
        'error',
        { packageDir: [root, ...workspaces.map((workspace) => `${root}/${workspace}`)] },
      ],
    },
  },
  {
    // Production code of every workspace: no reaching into another package (test/ included) by path.
    files: workspaces.map((workspace) => `${workspace}/**/*.{ts,tsx}`),
    ignores: tests,
    rules: { 'import-x/no-relative-packages': 'error' },
  },
  {
    files: workspaces.filter((w) => w !== 'client').map((workspace) => `${workspace}/**/*.ts`),
    rules: restrict(otherPackageByPath, projectPackageButCommon, testHelper),
  },
  {
    files: ['scripts/**/*.ts'],
    rules: restrict(otherPackageByPath, packageTheScriptsDoNotRun, testHelper),
  },
  {
    // Tests next to the code are unit tests: their own package, @blog/common and the generic helpers.
    files: workspaces.filter((w) => w !== 'client').map((workspace) => `${workspace}/**/*.test.ts`),
    rules: restrict(otherPackageByPath, projectPackageButCommon, severalPackages),
  },
  {
    // The test helpers of a package are for tests: they may import the others.
    files: ['**/testing/**'],
    rules: restrict(otherPackageByPath, projectPackageButCommon),
  },
  {
    // common is what the services share: it imports none of them.
    files: ['common/**/*.ts'],
    ignores: tests,
    rules: restrict(
      otherPackageByPath,
      { regex: '^@blog/', message: 'common imports no service (nor itself by name).' },
      testHelper,
    ),
  },
  {
    // The generic test helpers, which unit tests may use, import no package's source.
    files: ['test/support/*.ts'],
    ignores: ['test/support/{stack,nats-stack,bad-input,transports,http-system}.ts'],
    rules: restrict(otherPackageByPath),
  },
  {
    files: ['client/**/*.{ts,tsx}'],
    rules: restrict(otherPackageByPath, projectPackage),
  },
  {
    files: ['client/src/**/*.{ts,tsx}'],
    ignores: tests,
    rules: restrict(otherPackageByPath, projectPackage, testHelper),
  },
  {
    // Small files and functions, outside tests (blank lines and comments not counted).
    files: ['**/*.{ts,tsx,js,mjs}'],
    ignores: tests,
    rules: {
      'max-lines': ['error', { max: 400, skipBlankLines: true, skipComments: true }],
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    // The React client: hooks used by the rules (calls in order, complete effect dependencies).
    files: ['client/src/**/*.{ts,tsx}'],
    plugins: { 'react-hooks': reactHooks },
    rules: {
      'react-hooks/rules-of-hooks': 'error',
      'react-hooks/exhaustive-deps': 'error',
    },
  },
);
