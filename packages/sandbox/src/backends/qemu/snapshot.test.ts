import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { snapshotRamPath } from './snapshot.js';

describe('saved state files', () => {
  it('keeps the RAM image next to its state file, whatever temporary name the state is written under', () => {
    assert.equal(snapshotRamPath('/s/shell-128m-1c-abc-tcg.vmstate'), '/s/shell-128m-1c-abc-tcg.ram');
    assert.equal(snapshotRamPath('/s/shell-128m-1c-abc-tcg.vmstate.tmp-4242'), '/s/shell-128m-1c-abc-tcg.ram');
    assert.equal(snapshotRamPath('/s/other'), '/s/other.ram');
  });
});
