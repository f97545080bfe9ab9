/** The airlock release version; a test pins it to the root package.json. */
export const AIRLOCK_VERSION = '0.1.0';
