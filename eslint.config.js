// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'data/', 'coverage/', 'bench/results/', 'dist/', 'test-results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['error', 'warn'] }],
    },
  },
  { files: ['src/cli/**', 'bench/**', 'test/**', 'scripts/**'], rules: { 'no-console': 'off' } },
  // An ES import of node:http loads Node's bundled fetch (its lazy WebSocket getters): about 8 MB resident
  // that the server never uses (issue 19). process.getBuiltinModule('node:http') does not.
  {
    files: ['src/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { paths: ['node:http', 'http'].map((name) => ({ name, allowTypeImports: true, message: "use process.getBuiltinModule('node:http'): an ES import loads Node's bundled undici (about 8 MB)" })) }],
    },
  },
  // The console runs in the browser: its globals are the DOM's, checked by its own tsconfig.
  { files: ['console/**'], rules: { 'no-undef': 'off' } },
);
