// The panels that say where a report came from (a Celery task, a log record, the keywords given
// to capture_exception): one open table of name/text pairs each, as the agent sent them.
import type { Panel } from "../api/types";

function ReportPanels({ panels }: { panels: Panel[] }) {
  if (panels.length === 0) return null;
  return (
    <>
      {panels.map((panel, position) => (
        <section key={position} class="request-panel" aria-label={panel.title} data-testid="report-panel">
          <details class="request-headers" open>
            <summary>{panel.title}</summary>
            <table>
              <tbody>
                {panel.items.map(([name, value], row) => (
                  <tr key={row}>
                    <th scope="row">{name}</th>
                    <td>{value}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </details>
        </section>
      ))}
    </>
  );
}

export { ReportPanels };
