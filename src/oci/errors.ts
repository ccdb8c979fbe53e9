// OCI error codes and bodies (distribution-spec "Error Codes").

export const OCI_ERROR_CODES = {
  BLOB_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 415,
  TOOMANYREQUESTS: 429,
  UNAVAILABLE: 503,
  RANGE_INVALID: 416,
  /** Distribution's code for a bad `n` of tags/list or _catalog (not in the OCI table; clients know it). */
  PAGINATION_NUMBER_INVALID: 400,
} as const;

export type OciErrorCode = keyof typeof OCI_ERROR_CODES;

export interface OciErrorBody {
  errors: { code: OciErrorCode; message: string; detail?: unknown }[];
}

export function ociError(code: OciErrorCode, message: string, detail?: unknown): OciErrorBody {
  return { errors: [{ code, message, ...(detail === undefined ? {} : { detail }) }] };
}
