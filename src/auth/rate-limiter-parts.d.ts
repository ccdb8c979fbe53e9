// The rate-limiter-flexible modules src/auth/rate-limiters.ts loads one by one: typed there, from the package's own declarations.
declare module 'rate-limiter-flexible/lib/RateLimiterMemory.js' {
  const value: unknown;
  export default value;
}
declare module 'rate-limiter-flexible/lib/RateLimiterPostgres.js' {
  const value: unknown;
  export default value;
}
