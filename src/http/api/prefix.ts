// Where the management API is mounted: known to the composition root without loading the API (lazy-mount.ts).
export const API_PREFIX = '/api/v1';
