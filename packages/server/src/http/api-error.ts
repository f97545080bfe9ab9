import { WireError } from '@airlock/core';

/** A field-level validation problem, returned in 400 bodies. */
export interface FieldError {
  readonly field: string;
  readonly message: string;
}

/** Errors that become HTTP responses: `{error: {code, message, fields?}}` with a status. */
export class ApiError extends WireError {
  readonly fields: readonly FieldError[] | undefined;
  readonly apiCode: string;

  constructor(status: number, apiCode: string, message: string, fields?: readonly FieldError[]) {
    super(status >= 500 ? 'internal' : 'invalid_args', status, message);
    this.apiCode = apiCode;
    this.fields = fields;
  }

  static badRequest(message: string, fields?: readonly FieldError[]): ApiError {
    return new ApiError(400, 'bad_request', message, fields);
  }
  static unauthorized(message = 'authentication required'): ApiError {
    return new ApiError(401, 'unauthorized', message);
  }
  static forbidden(message: string): ApiError {
    return new ApiError(403, 'forbidden', message);
  }
  static notFound(what: string): ApiError {
    return new ApiError(404, 'not_found', `${what} not found`);
  }
  static conflict(message: string): ApiError {
    return new ApiError(409, 'conflict', message);
  }
}

/** HTTP error codes with their meaning; documented in the OpenAPI document. */
export const API_ERROR_CODES: Readonly<Record<string, string>> = {
  bad_request: 'The request is malformed or fails validation; `fields` names each problem.',
  unauthorized: 'No valid session or API key.',
  forbidden: 'Authenticated, but not allowed to do this.',
  not_found: 'No such object in your organisation.',
  conflict: 'The object is in a state that does not allow this.',
  payload_too_large: 'The body exceeds the size limit.',
  unsupported_media_type: 'The body is not JSON.',
  rate_limited: 'Too many attempts; wait and retry.',
  runner_offline: 'The runner is not connected.',
  pack_untrusted: 'The pack hash the runner advertises is not trusted in this organisation.',
  internal: 'An unexpected server error; it is logged with the request id.',
};
