// ESLint flat config: @eslint/js and typescript-eslint recommended rules (not type-aware, so it stays fast
// and needs no build). Formatting is prettier's job (`prettier --check .` in `npm run lint`).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

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
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // `_req`, `_err`, `_unused`: named on purpose, not forgotten.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
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
