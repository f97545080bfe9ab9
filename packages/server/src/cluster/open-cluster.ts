import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../db/database.js';
import type { Cluster } from './cluster.js';
import { LocalCluster } from './local-cluster.js';
import { PgCluster } from './pg-cluster.js';

/** The bus for this database: LISTEN/NOTIFY on Postgres, in process on SQLite. */
export async function openCluster(db: Db, target: string, log: FastifyBaseLogger): Promise<Cluster> {
  return db.dialect === 'postgres' ? PgCluster.open(target, db, log) : new LocalCluster();
}
