// The console on an agent's live process (DebuggedApplication(app, console=True)): like the
// classic /console, but shared, and reachable from the agent list without any error.
import type { Agent } from "../api/types";
import { agentConsolePath } from "../state/consoles";
import { Console } from "./Console";

/** A process console under the agent list; `onClose` hides it. */
function AgentConsole({ agent, onClose }: { agent: Agent; onClose: () => void }) {
  const where = `process ${agent.pid} on ${agent.host}`;
  return (
    <section class="agent-console" data-testid="agent-console" aria-label={`Console of ${where}`}>
      <div class="agent-console-head">
        <h3>
          Console of {agent.app || "(unnamed)"} · {where}
        </h3>
        <button type="button" class="button small" onClick={onClose}>
          Close
        </button>
      </div>
      <Console
        path={agentConsolePath(agent.agent_id)}
        label={where}
        unavailable={agent.alive ? null : "This process has exited; its console is gone."}
      />
    </section>
  );
}

export { AgentConsole };
