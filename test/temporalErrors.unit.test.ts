import { ServiceError } from '@temporalio/client';
import { temporalUnavailable } from '../src/api/errors';
import { TemporalUnavailableError } from '../src/operations/client';

/** A gRPC error as @grpc/grpc-js makes it (code, details, metadata). */
function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata: { internalRepr: new Map() } });
}

describe('temporalUnavailable', () => {
  test('a start that found Temporal unreachable is a 503 with Retry-After', () => {
    const err = new ServiceError('Failed to start Workflow', { cause: grpcError(14, 'No connection established') });
    const e = temporalUnavailable(err)!;
    expect(e.status).toBe(503);
    expect(e.code).toBe('temporal_unavailable');
    expect(e.headers).toEqual({ 'Retry-After': '5' });
    expect(e.details).toMatchObject({ component: 'temporal', reason: 'UNAVAILABLE', cause: 'No connection established' });
  });

  test('a deadline exceeded and a known-down embedded server are 503 too', () => {
    expect(temporalUnavailable(grpcError(4, 'Deadline exceeded'))?.details).toMatchObject({ reason: 'DEADLINE_EXCEEDED' });
    expect(temporalUnavailable(new TemporalUnavailableError('embedded Temporal is restarting'))?.details).toMatchObject({ reason: 'DOWN' });
  });

  test('other errors stay what they are', () => {
    expect(temporalUnavailable(grpcError(3, 'invalid argument'))).toBeUndefined();
    expect(temporalUnavailable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBeUndefined();
    expect(temporalUnavailable('nope')).toBeUndefined();
  });
});
