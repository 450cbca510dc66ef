import { describe, expect, it } from 'vitest';
import { findRawRoute, rawRouteTable, type RawHandler } from './raw-routes.js';

const exact: RawHandler = () => undefined;
const withParam: RawHandler = () => undefined;
const table = rawRouteTable({ 'GET /posts': exact, 'POST /posts/:id/comments': withParam });

describe('raw routes', () => {
  it('finds an exact path by method and path, as written', () => {
    expect(findRawRoute(table, 'GET', '/posts')).toEqual({ handler: exact });
    expect(findRawRoute(table, 'POST', '/posts')).toBeUndefined();
    expect(findRawRoute(table, 'GET', '/POSTS')).toBeUndefined();
  });

  it('matches a path with a parameter as Express does: any case, a trailing slash, decoded', () => {
    expect(findRawRoute(table, 'POST', '/posts/p1/comments')).toEqual({
      handler: withParam,
      params: { id: 'p1' },
    });
    expect(findRawRoute(table, 'POST', '/Posts/a%20b/Comments/')?.params).toEqual({ id: 'a b' });
    expect(findRawRoute(table, 'GET', '/posts/p1/comments')).toBeUndefined();
    expect(findRawRoute(table, 'POST', '/posts/p1/x/comments')).toBeUndefined();
    expect(findRawRoute(table, 'POST', '/posts//comments')).toBeUndefined();
  });

  it('leaves a parameter that is not valid percent-encoding to Express, which answers its 400', () => {
    expect(findRawRoute(table, 'POST', '/posts/%E0%A4%A/comments')).toBeUndefined();
  });
});
