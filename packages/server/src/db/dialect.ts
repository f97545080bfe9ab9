/** The two SQL dialects airlock speaks. */
export type Dialect = 'sqlite' | 'postgres';
