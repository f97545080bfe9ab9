import { NotAvailable, PageHeader, useSession } from '../lib';

/** A page whose API is being built: shows what it will do, and lights up when the route exists. */
export function NotInBuildPage({ title, route, what }: { title: string; route: string; what: string }) {
  const s = useSession();
  return (
    <>
      <PageHeader title={title} />
      {s.has(route) ? (
        <div className="empty">
          <h2>{what}</h2>
          <p>
            This server offers <code>{route}</code>; the dashboard view for it is not written yet. Use the CLI or the
            API (<a href="/api/v1/openapi.json">OpenAPI document</a>) meanwhile.
          </p>
        </div>
      ) : (
        <NotAvailable what={what} />
      )}
    </>
  );
}
