import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PERMISSIONS, ROLE_PERMISSIONS, ROLE_RANK, ROLES } from './permissions.js';

// Pinned: changing who may do what is a security decision; it must change this test too.
describe('permissions', () => {
  test('the permission list', () => {
    assert.deepEqual(
      [...PERMISSIONS],
      [
        'runs:read',
        'runs:write',
        'runners:read',
        'runners:write',
        'packs:read',
        'packs:trust',
        'audit:read',
        'users:read',
        'users:write',
        'keys:write',
      ],
    );
  });

  test('ROLE_PERMISSIONS, exactly', () => {
    const table = Object.fromEntries(
      Object.entries(ROLE_PERMISSIONS).map(([role, perms]) => [role, [...perms].sort()]),
    );
    assert.deepEqual(table, {
      viewer: ['audit:read', 'packs:read', 'runners:read', 'runs:read'],
      operator: ['audit:read', 'keys:write', 'packs:read', 'runners:read', 'runs:read', 'runs:write'],
      admin: [
        'audit:read',
        'keys:write',
        'packs:read',
        'packs:trust',
        'runners:read',
        'runners:write',
        'runs:read',
        'runs:write',
        'users:read',
        'users:write',
      ],
      owner: [
        'audit:read',
        'keys:write',
        'packs:read',
        'packs:trust',
        'runners:read',
        'runners:write',
        'runs:read',
        'runs:write',
        'users:read',
        'users:write',
      ],
    });
    assert.ok(Object.isFrozen(ROLE_PERMISSIONS));
  });

  test('roles are ranked owner > admin > operator > viewer, and higher roles hold every lower permission', () => {
    assert.deepEqual([...ROLES], ['owner', 'admin', 'operator', 'viewer']);
    assert.deepEqual(ROLE_RANK, { viewer: 0, operator: 1, admin: 2, owner: 3 });
    const byRank = [...ROLES].sort((a, b) => ROLE_RANK[a] - ROLE_RANK[b]);
    for (let i = 1; i < byRank.length; i++) {
      const lower = new Set(ROLE_PERMISSIONS[byRank[i - 1]!]);
      const higher = new Set(ROLE_PERMISSIONS[byRank[i]!]);
      for (const p of lower) assert.ok(higher.has(p), `${byRank[i]} lacks ${p} that ${byRank[i - 1]} has`);
    }
  });
});
