// Cluster notes: what one control-plane instance tells the others over the bus. Payloads
// carry ids only (Postgres NOTIFY payloads are small and every instance receives every
// note); the receiver reads the rows it needs.
import { z } from 'zod';

const id = z.string().min(1).max(128);

/** A note between instances, validated on receipt like any other input. */
export const clusterNoteSchema = z.discriminatedUnion('t', [
  /** Send run `id` to runner `r` if its session is here. */
  z.strictObject({ t: z.literal('dispatch'), i: id, r: id, id }),
  /** Ask runner `r` to cancel run `id` if its session is here. */
  z.strictObject({ t: z.literal('cancel'), i: id, r: id, id }),
  /** Close runner `r`'s session with close code `c` (revocation). */
  z.strictObject({ t: z.literal('kick'), i: id, r: id, c: z.number().int().min(1000).max(4999) }),
  /** Runner `r` said hello on session `s` elsewhere: an older session of it here is stale. */
  z.strictObject({ t: z.literal('session'), i: id, r: id, s: id }),
  /** Output line `q` of run `id` was stored. */
  z.strictObject({ t: z.literal('output'), i: id, id, q: z.number().int().min(0) }),
  /** The status of run `id` changed. */
  z.strictObject({ t: z.literal('status'), i: id, id }),
]);

export type ClusterNote = z.infer<typeof clusterNoteSchema>;

/** A note without the sender id (the bus fills it in). */
export type ClusterNoteBody = ClusterNote extends infer N ? (N extends ClusterNote ? Omit<N, 'i'> : never) : never;

/** Parse a received payload; undefined (and the caller logs) when it is not a valid note. */
export function parseClusterNote(payload: string): ClusterNote | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  const r = clusterNoteSchema.safeParse(value);
  return r.success ? r.data : undefined;
}
