// The live-updates indicator: connected, connecting, or offline with the retry countdown.
import { useEffect, useState } from "preact/hooks";
import { connection, retryConnection } from "../state/session";

/** Shows the WebSocket's state; offline, it offers to retry now. */
function ConnectionStatus() {
  const status = connection.value;
  const [, tick] = useState(0);
  useEffect(() => {
    if (status.state !== "closed") return;
    const timer = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [status]);

  let label: string;
  if (status.state === "open") label = "Live";
  else if (status.state === "connecting") label = "Connecting…";
  else if (status.state === "signed-out") label = "Signed out";
  else label = `Offline, retrying in ${Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000))} s`;

  return (
    <div class="connection" data-testid="connection-status" data-state={status.state} role="status">
      <span class="dot" aria-hidden="true" />
      <span>{label}</span>
      {status.state === "closed" && (
        <button type="button" class="button small" onClick={retryConnection}>
          Retry now
        </button>
      )}
    </div>
  );
}

export { ConnectionStatus };
