// The request panel of a report: headers, query, form, cookies and the WSGI environ, as text
// tables (secrets arrive masked from the agent). Each table is collapsed until opened.
import type { RequestInfo } from "../api/types";

type Pairs = [string, string][];

function PairTable({ title, pairs, note, testId }: { title: string; pairs: Pairs; note?: string; testId: string }) {
  if (pairs.length === 0 && !note) return null;
  return (
    <details class="request-headers" data-testid={testId}>
      <summary>
        {title} ({String(pairs.length)})
      </summary>
      {note && <p class="muted small">{note}</p>}
      {pairs.length > 0 && (
        <table>
          <tbody>
            {pairs.map(([name, value], position) => (
              <tr key={position}>
                <th scope="row">{name}</th>
                <td>{value}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </details>
  );
}

/** Every table of the failed request; older reports without the newer tables show what they have. */
function RequestPanel({ request }: { request: RequestInfo }) {
  return (
    <section class="request-panel" aria-label="Request" data-testid="request-panel">
      <PairTable title="Request headers" pairs={request.headers} testId="request-headers" />
      <PairTable title="Query" pairs={request.query ?? []} testId="request-query" />
      <PairTable title="Form" pairs={request.form ?? []} note={request.form_note || undefined} testId="request-form" />
      <PairTable title="Cookies" pairs={request.cookies ?? []} testId="request-cookies" />
      <PairTable title="WSGI environ" pairs={request.environ ?? []} testId="request-environ" />
    </section>
  );
}

export { RequestPanel };
