// A frame's local variables: name → value, one row each.
import type { Variable } from "../api/types";
import { ReprView } from "./ReprView";

/** The locals of one frame as a two-column table. */
function LocalsTable({ variables }: { variables: Variable[] }) {
  if (variables.length === 0) return <p class="muted small">No local variables captured.</p>;
  return (
    <table class="locals">
      <caption class="visually-hidden">Local variables</caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Value</th>
        </tr>
      </thead>
      <tbody>
        {variables.map((variable) => (
          <tr key={variable.name}>
            <th scope="row" class="var-name">
              {variable.name}
            </th>
            <td class="var-value">
              <ReprView node={variable.value} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export { LocalsTable };
