// Acceptance: every git.* action runs through the engine against real repositories. The
// pack only accepts repositories under /srv, /opt, /home, /var/lib/git or /var/www (not
// /tmp), so the test works in a fresh /srv/airlock-test-XXXX folder, removed afterwards:
// a bare "remote", a working copy cloned from it with commits, a tag, staged and unstaged
// changes, and a second clone that pushes a commit for git.fetch to bring in.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { verifyLogFile } from '../security-log.js';
import { type TestRunner, testRunner } from '../testing/fixture.js';
import { describeRun, packsDir, type Ran, requireBinaries, runAction, sh } from './support.js';

const BASE_PARENT = '/srv';

describe('git pack against real repositories', () => {
  let r: TestRunner;
  let base = '';
  let app = '';
  let remote = '';
  let other = '';
  let firstCommit = '';
  let headCommit = '';
  let attempts = 0;
  const covered = new Set<string>();

  const gitEnv = (): NodeJS.ProcessEnv => ({
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: base, // no user or system config leaks into the fixture
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'Airlock Test',
    GIT_AUTHOR_EMAIL: 'test@airlock.invalid',
    GIT_COMMITTER_NAME: 'Airlock Test',
    GIT_COMMITTER_EMAIL: 'test@airlock.invalid',
    LANG: 'C.UTF-8',
  });
  const git = (cwd: string, ...args: string[]): string =>
    sh('git', ['-c', 'init.defaultBranch=main', '-c', 'commit.gpgsign=false', ...args], { cwd, env: gitEnv() }).trim();
  const commit = (cwd: string, file: string, text: string, message: string): string => {
    writeFileSync(join(cwd, file), text);
    git(cwd, 'add', file);
    git(cwd, 'commit', '-q', '-m', message);
    return git(cwd, 'rev-parse', 'HEAD');
  };

  const run = async (action: string, args: Record<string, unknown>): Promise<Ran> => {
    const ran = await runAction(r, action, { repo: app, ...args });
    attempts++;
    covered.add(action);
    assert.equal(ran.res.status, 'success', describeRun(ran));
    assert.equal(ran.res.exitCode, 0);
    return ran;
  };

  before(() => {
    requireBinaries('git pack test', ['git', BASE_PARENT]);
    r = testRunner([packsDir]);
    const allow = r.catalog.findAction('git.status')!.action.args['repo'];
    assert.ok(
      allow?.type === 'path' && allow.allow.includes(BASE_PARENT),
      `${BASE_PARENT} is no longer allow-listed by the git pack`,
    );
    base = mkdtempSync(join(BASE_PARENT, 'airlock-test-'));
    remote = join(base, 'remote.git');
    app = join(base, 'app');
    other = join(base, 'other');
    git(base, 'init', '-q', '--bare', remote);
    git(base, 'clone', '-q', remote, app);
    firstCommit = commit(app, 'README.md', '# app\n', 'first commit');
    commit(app, 'main.txt', 'one\n', 'add main.txt');
    git(app, 'tag', '-a', 'v1.0', '-m', 'release 1.0');
    headCommit = commit(app, 'main.txt', 'one\ntwo\n', 'second line in main.txt');
    git(app, 'push', '-q', '--follow-tags', 'origin', 'main');
    git(app, 'branch', 'feature/x');
    // An unstaged and a staged change, and an untracked file.
    writeFileSync(join(app, 'main.txt'), 'one\ntwo\nunstaged line\n');
    writeFileSync(join(app, 'README.md'), '# app\nstaged line\n');
    git(app, 'add', 'README.md');
    writeFileSync(join(app, 'untracked.txt'), 'new\n');
    // Someone else pushes a commit and a tag that app has not fetched yet.
    git(base, 'clone', '-q', remote, other);
    commit(other, 'upstream.txt', 'from upstream\n', 'upstream change');
    git(other, 'tag', 'v1.1');
    git(other, 'push', '-q', 'origin', 'main', 'v1.1');
  });

  after(() => {
    r?.cleanup();
    if (base !== '' && base.startsWith(`${BASE_PARENT}/airlock-test-`)) rmSync(base, { recursive: true, force: true });
  });

  test('status: branch, upstream and changed files', async () => {
    const ran = await run('git.status', {});
    assert.match(ran.stdout, /^## main\.\.\.origin\/main$/m);
    assert.match(ran.stdout, /^M {2}README\.md$/m);
    assert.match(ran.stdout, /^ M main\.txt$/m);
    assert.match(ran.stdout, /^\?\? untracked\.txt$/m);
  });

  test('log: oneline, full, and from a tag', async () => {
    let ran = await run('git.log', { count: 3, oneline: true });
    assert.equal(ran.stdout.split('\n').length, 3, ran.stdout);
    assert.match(ran.stdout, /second line in main\.txt/);
    ran = await run('git.log', { count: 1 });
    assert.match(ran.stdout, new RegExp(`^commit ${headCommit}`, 'm'));
    assert.match(ran.stdout, /^Author: Airlock Test <test@airlock\.invalid>$/m);
    assert.match(ran.stdout, /^Date:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}$/m);
    ran = await run('git.log', { ref: 'v1.0', count: 10, oneline: true });
    assert.equal(ran.stdout.split('\n').length, 2, ran.stdout);
    assert.ok(!ran.stdout.includes('second line'), ran.stdout);
  });

  test('diff: unstaged patch and staged stat', async () => {
    let ran = await run('git.diff', {});
    assert.match(ran.stdout, /^\+unstaged line$/m);
    assert.doesNotMatch(ran.stdout, /^\+staged line$/m); // staged changes are not in the unstaged diff
    ran = await run('git.diff', { staged: true, stat: true });
    assert.match(ran.stdout, /README\.md \| 1 \+/);
    assert.match(ran.stdout, /1 file changed, 1 insertion\(\+\)/);
  });

  test('branches, tags, remotes', async () => {
    let ran = await run('git.branches', {});
    assert.match(ran.stdout, /^\* main\s+[0-9a-f]{7,} \[origin\/main\] second line in main\.txt$/m);
    assert.match(ran.stdout, /^\s+feature\/x\s+/m);
    assert.match(ran.stdout, /remotes\/origin\/main/);
    ran = await run('git.tags', { count: 5 });
    assert.match(ran.stdout, /^v1\.0 {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} {2}[0-9a-f]{7,}$/m);
    ran = await run('git.remotes', {});
    assert.equal(ran.stdout, `origin\t${remote} (fetch)\norigin\t${remote} (push)`);
  });

  test('show: one commit by short and full id', async () => {
    let ran = await run('git.show', { commit: firstCommit.slice(0, 7) });
    assert.match(ran.stdout, new RegExp(`^commit ${firstCommit}$`, 'm'));
    assert.match(ran.stdout, /first commit/);
    assert.match(ran.stdout, /^\+# app$/m);
    ran = await run('git.show', { commit: headCommit, stat: true });
    assert.match(ran.stdout, /main\.txt \| 1 \+/);
  });

  test('fetch: brings the upstream commit and tag, then log shows them', async () => {
    const prev = git(app, 'rev-parse', 'origin/main');
    const ran = await run('git.fetch', {});
    assert.match(ran.all, /main\s+-> origin\/main/);
    assert.match(ran.all, /\[new tag\]\s+v1\.1\s+-> v1\.1/);
    assert.notEqual(git(app, 'rev-parse', 'origin/main'), prev);
    const log = await run('git.log', { ref: 'origin/main', count: 1, oneline: true });
    assert.match(log.stdout, /upstream change/);
    // The working tree and local branch were not touched.
    assert.equal(git(app, 'rev-parse', 'main'), headCommit);
    assert.equal(readFileSync(join(app, 'main.txt'), 'utf8'), 'one\ntwo\nunstaged line\n');
  });

  test('a repository outside the allow-list is refused before anything runs', async () => {
    const ran = await runAction(r, 'git.status', { repo: '/tmp' });
    attempts++;
    assert.equal(ran.res.status, 'validation_failed', describeRun(ran));
    assert.equal(ran.res.error?.code, 'invalid_args');
  });

  test('every git.* action ran, and the security log verifies', () => {
    const all = r.catalog.findPack('git')!.pack.actions.map((a) => a.id);
    assert.deepEqual(
      all.filter((id) => !covered.has(id)),
      [],
    );
    const v = verifyLogFile(r.config.logPath);
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(readFileSync(r.config.logPath, 'utf8').trim().split('\n').length, attempts);
    assert.ok(existsSync(app));
  });
});
