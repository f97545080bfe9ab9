/**
 * @airlock/web — not implemented in this build yet (see the open issues). The package exists so
 * the workspace layout of docs/architecture.md holds from the start.
 */
export const PACKAGE_STATUS = 'planned' as const;
