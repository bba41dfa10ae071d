// Breakpoints from the dashboard: a line number that sets one (in a frame's source and the
// whole-file view), the small form it opens (condition, hit count, every process of the app
// or this one), and the panel that lists them with each agent's state. Everything shown is
// text from the broker, never HTML.
import { useEffect, useState } from "preact/hooks";
import type { Agent, Breakpoint, BreakpointState } from "../api/types";
import {
  addBreakpoint,
  breakpointDraft,
  breakpoints,
  breakpointsAt,
  breakpointsError,
  changeBreakpoint,
  closeDraft,
  removeBreakpoint,
  toggleDraft,
} from "../state/breakpoints";
import { agents, selected } from "../state/reports";

/** The report shown: its app and agent, which a breakpoint set from its source applies to. */
function currentScope(): { app: string; agentId: string } | null {
  const report = selected.value?.report;
  if (!report) return null;
  return { app: report.app, agentId: report.agent_id };
}

function messageOf(failure: unknown): string {
  return failure instanceof Error ? failure.message : String(failure);
}

/** The worst state among the agents (refused, error...), to mark the line with. */
function summaryStatus(point: Breakpoint): string {
  if (!point.enabled) return "disabled";
  const states = Object.values(point.states).map((state) => state.status);
  for (const status of ["refused", "error", "pending", "armed"]) if (states.includes(status as BreakpointState["status"])) return status;
  return "sent";
}

/** A line number that opens the breakpoint form for its line (`where`: which view it is in). */
function LineNumber({ file, line, where }: { file: string; line: number; where: string }) {
  const scope = currentScope();
  if (scope === null) return <span class="lineno">{String(line)}</span>;
  const here = breakpointsAt(file, line, scope.app);
  const classes = ["lineno", "bp-gutter"];
  if (here.length > 0) classes.push("has-breakpoint", `bp-${summaryStatus(here[0] as Breakpoint)}`);
  const label = here.length > 0 ? `Line ${line}: breakpoint (${summaryStatus(here[0] as Breakpoint)})` : `Set a breakpoint on line ${line}`;
  return (
    <button
      type="button"
      class={classes.join(" ")}
      data-testid="bp-line"
      data-line={line}
      aria-label={label}
      title={label}
      onClick={() => toggleDraft({ file, line, app: scope.app, agentId: scope.agentId, where })}
    >
      {String(line)}
    </button>
  );
}

function agentLabel(agentId: string, list: Agent[]): string {
  const agent = list.find((known) => known.agent_id === agentId);
  return agent ? `pid ${agent.pid} on ${agent.host}` : agentId.slice(0, 12);
}

/** Each agent's state of a breakpoint, with its reason and warning. */
function AgentStates({ point }: { point: Breakpoint }) {
  const entries = Object.entries(point.states);
  if (entries.length === 0) {
    return <p class="muted small">{point.enabled ? "No live agent has answered yet." : "Disabled."}</p>;
  }
  const list = agents.value;
  return (
    <ul class="bp-states">
      {entries.map(([agentId, state]) => (
        <li key={agentId} data-testid="bp-state" data-status={state.status}>
          <span class={`tag bp-status bp-${state.status}`}>{state.status}</span> <span class="muted small">{agentLabel(agentId, list)}</span>
          {state.hits > 0 && <span class="muted small"> · {state.hits === 1 ? "1 hit" : `${state.hits} hits`}</span>}
          {state.reason && <span class="bp-reason small"> · {state.reason}</span>}
          {state.warning && (
            <span class="bp-warning small" role="note">
              {" "}
              · {state.warning}
            </span>
          )}
        </li>
      ))}
    </ul>
  );
}

/** One breakpoint's row: where, its scope and condition, enable/disable and remove. */
function BreakpointRow({ point }: { point: Breakpoint }) {
  const [error, setError] = useState<string | null>(null);
  const act = (action: () => Promise<void>) => {
    setError(null);
    action().catch((failure: unknown) => setError(messageOf(failure)));
  };
  const name = point.file.split(/[\\/]/).slice(-2).join("/");
  return (
    <li class="bp-row" data-testid="breakpoint" data-id={point.id}>
      <div class="bp-head">
        <code title={point.file}>
          {name}:{String(point.line)}
        </code>
        <span class="muted small">
          {" "}
          {point.agent_id ? `one process (${agentLabel(point.agent_id, agents.value)})` : `every process of ${point.app || "(unnamed)"}`}
        </span>
        {point.condition && (
          <span class="small">
            {" "}
            if <code>{point.condition}</code>
          </span>
        )}
        {point.hit_count > 1 && <span class="small"> from hit {String(point.hit_count)}</span>}
        <span class="bp-actions">
          <label class="small">
            <input
              type="checkbox"
              data-testid="bp-enabled"
              checked={point.enabled}
              onChange={(event) => act(() => changeBreakpoint(point.id, { enabled: event.currentTarget.checked }))}
            />{" "}
            enabled
          </label>
          <button type="button" class="button small" data-testid="bp-remove" onClick={() => act(() => removeBreakpoint(point.id))}>
            Remove
          </button>
        </span>
      </div>
      <AgentStates point={point} />
      {error !== null && (
        <p class="error small" role="alert">
          {error}
        </p>
      )}
    </li>
  );
}

/** The form for the line whose number was clicked in this view (`where`), and its breakpoints. */
function BreakpointForm({ where }: { where: string }) {
  const draft = breakpointDraft.value;
  const [condition, setCondition] = useState("");
  const [hitCount, setHitCount] = useState("");
  const [scope, setScope] = useState<"app" | "agent">("app");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const key = draft === null ? "" : `${draft.file}:${draft.line}`;
  useEffect(() => {
    setCondition("");
    setHitCount("");
    setError(null);
  }, [key]);
  if (draft === null || draft.where !== where) return null;
  const here = breakpointsAt(draft.file, draft.line, draft.app);
  const submit = async (event: Event) => {
    event.preventDefault();
    const hits = hitCount.trim() === "" ? 0 : Number(hitCount);
    if (!Number.isInteger(hits) || hits < 0) {
      setError("The hit count is a whole number (empty: every hit).");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await addBreakpoint({
        file: draft.file,
        line: draft.line,
        ...(scope === "agent" ? { agent_id: draft.agentId } : { app: draft.app }),
        condition: condition.trim(),
        hit_count: hits,
      });
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="bp-form" data-testid="bp-form" role="group" aria-label={`Breakpoint on line ${draft.line}`}>
      {here.length > 0 && (
        <ul class="bp-list">
          {here.map((point) => (
            <BreakpointRow key={point.id} point={point} />
          ))}
        </ul>
      )}
      <form onSubmit={(event) => void submit(event)}>
        <label class="small">
          Condition{" "}
          <input
            type="text"
            data-testid="bp-condition"
            placeholder="e.g. user.id == 42 (empty: always)"
            value={condition}
            maxLength={2000}
            onInput={(event) => setCondition(event.currentTarget.value)}
          />
        </label>{" "}
        <label class="small">
          From hit{" "}
          <input
            type="number"
            min={0}
            class="bp-hits"
            data-testid="bp-hit-count"
            placeholder="1"
            value={hitCount}
            onInput={(event) => setHitCount(event.currentTarget.value)}
          />
        </label>{" "}
        <label class="small">
          In{" "}
          <select data-testid="bp-scope" value={scope} onChange={(event) => setScope(event.currentTarget.value === "agent" ? "agent" : "app")}>
            <option value="app">every process of {draft.app || "(unnamed)"}</option>
            <option value="agent">only this report's process</option>
          </select>
        </label>{" "}
        <button type="submit" class="button small" data-testid="bp-set" disabled={busy}>
          Set breakpoint on line {String(draft.line)}
        </button>{" "}
        <button type="button" class="button small" onClick={closeDraft}>
          Close
        </button>
      </form>
      {error !== null && (
        <p class="error small" role="alert" data-testid="bp-error">
          {error}
        </p>
      )}
    </div>
  );
}

/** Every breakpoint, with each agent's state; enable, disable, remove. */
function BreakpointsPanel() {
  const list = breakpoints.value ?? [];
  return (
    <section class="panel breakpoints" aria-labelledby="breakpoints-title" data-testid="breakpoints-panel">
      <h2 id="breakpoints-title">Breakpoints</h2>
      {breakpointsError.value !== null && (
        <p class="error" role="alert">
          {breakpointsError.value}
        </p>
      )}
      {list.length === 0 ? (
        <p class="muted small">None. Click a line number in a report's source to set one.</p>
      ) : (
        <ul class="bp-list">
          {list.map((point) => (
            <BreakpointRow key={point.id} point={point} />
          ))}
        </ul>
      )}
    </section>
  );
}

export { BreakpointForm, BreakpointsPanel, LineNumber };
