import type { Kysely } from 'kysely';

/** Stored contents of pack files, fetched from runners when a new pack hash appears, for trust diffs. */
export const packFiles = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('pack_files')
      .addColumn('pack_id', 'text', (c) => c.notNull().references('packs.id'))
      .addColumn('path', 'text', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('content', 'text')
      .addPrimaryKeyConstraint('pack_files_pk', ['pack_id', 'path'])
      .execute();
  },
  async down(): Promise<void> {
    throw new Error('cannot be reverted');
  },
};
