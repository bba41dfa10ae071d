// The agent processes the broker knows: where they run and whether they are still alive.
import { useState } from "preact/hooks";
import { agents, agentsError } from "../state/reports";
import { AgentConsole } from "./AgentConsole";
import { AgentTimeline } from "./AgentTimeline";
import { RelativeTime } from "./RelativeTime";

/** A held-frames memory estimate for people: "340 KB", "12.5 MB". */
function heldSize(bytes: number): string {
  if (bytes < 1024 * 1024) return `${String(Math.max(1, Math.round(bytes / 1024)))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** A table of agents, live ones first. */
function AgentsPanel() {
  const list = agents.value;
  const [consoleOf, setConsoleOf] = useState<string | null>(null);
  const consoleAgent = list.find((agent) => agent.agent_id === consoleOf);
  return (
    <section class="panel agents" aria-labelledby="agents-title">
      <h2 id="agents-title">Agents</h2>
      {agentsError.value !== null && (
        <p class="error" role="alert">
          {agentsError.value}
        </p>
      )}
      {list.length === 0 ? (
        <p class="muted small">No app process has connected yet.</p>
      ) : (
        <table class="agents-table">
          <thead>
            <tr>
              <th scope="col">App</th>
              <th scope="col">PID</th>
              <th scope="col">Host</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {list.map((agent) => (
              <tr key={agent.agent_id} data-testid="agent-row" class={agent.alive ? "" : "gone"}>
                <td>
                  <span class="agent-app">{agent.app || "(unnamed)"}</span>
                  <AgentTimeline agentId={agent.agent_id} />
                </td>
                <td>{String(agent.pid)}</td>
                <td>{agent.host}</td>
                <td>
                  {agent.alive ? (
                    <span class="tag ok" title={`Python ${agent.python}, ${agent.held_frames} frames held`}>
                      alive
                    </span>
                  ) : (
                    <span class="tag gone">
                      gone <RelativeTime at={agent.last_seen} />
                    </span>
                  )}
                  {agent.alive && !agent.evalex && <span class="tag">no eval</span>}
                  {agent.alive && (agent.held_reports ?? 0) > 0 && (
                    <span
                      class="tag"
                      data-testid="held-frames"
                      title="reports whose live frames this process keeps for consoles, and their estimated memory"
                    >
                      {`${String(agent.held_reports)} held, ${heldSize(agent.held_bytes ?? 0)}`}
                    </span>
                  )}
                  {(agent.dropped_reports ?? 0) > 0 && (
                    <span
                      class="tag"
                      data-testid="dropped-reports"
                      title="reports this process could not queue while the broker was unreachable"
                    >
                      {String(agent.dropped_reports)} dropped
                    </span>
                  )}
                  {agent.alive && agent.console === true && (
                    <button
                      type="button"
                      class="button small"
                      data-testid="agent-console-toggle"
                      aria-expanded={consoleOf === agent.agent_id}
                      onClick={() => setConsoleOf(consoleOf === agent.agent_id ? null : agent.agent_id)}
                    >
                      Console
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {consoleAgent !== undefined && <AgentConsole agent={consoleAgent} onClose={() => setConsoleOf(null)} />}
    </section>
  );
}

export { AgentsPanel };
