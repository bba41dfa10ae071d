// The session with the broker: whether we must log in, and the live event stream's state.
import { signal } from "@preact/signals";
import { logIn, setUnauthorizedHandler } from "../api/client";
import { connectEvents, type EventSocket, type SocketStatus } from "../api/socket";
import { applyConsoleEvent, reloadTranscripts } from "./consoles";
import { applyFramesEvent } from "./frames";
import { applyPresence, connectPresence, presenceOpened } from "./presence";
import { applyEvent, loadAgents, loadReports, refreshSelected } from "./reports";

/** The event stream's state, or "signed-out" while the broker wants a login. */
type ConnectionState = SocketStatus | { state: "signed-out" };

/** True once the broker answered 401: the app shows the login form instead of data. */
const loginRequired = signal(false);

/** What the connection indicator shows. */
const connection = signal<ConnectionState>({ state: "connecting" });

let events: EventSocket | null = null;

setUnauthorizedHandler(() => {
  loginRequired.value = true;
  // The stream would only be refused too; the login form's POST reloads the page anyway.
  events?.close();
  events = null;
  connection.value = { state: "signed-out" };
});

function openEvents(): void {
  if (events !== null || loginRequired.value) return;
  let first = true;
  events = connectEvents({
    onEvent: (event) => {
      if (event.type === "console") applyConsoleEvent(event);
      else if (event.type === "frames") applyFramesEvent(event);
      else applyEvent(event);
    },
    onPresence: applyPresence,
    onStatus: (status) => {
      if (!loginRequired.value) connection.value = status;
    },
    onOpen: () => {
      presenceOpened();
      // After a reconnect, fetch what arrived while the stream was down.
      if (first) {
        first = false;
        return;
      }
      void loadReports();
      void loadAgents();
      void refreshSelected();
      reloadTranscripts();
    },
  });
  const socket = events;
  connectPresence((message) => socket.send(message));
}

/** Load the first data, then open the live event stream (called once at startup). */
function startSession(): void {
  void loadAgents();
  void loadReports().then(openEvents);
}

/** Send the token to POST /login: null once the session cookie is set, else why it failed. */
function signIn(token: string): Promise<string | null> {
  return logIn(token);
}

/** Reconnect now instead of waiting for the backoff timer. */
function retryConnection(): void {
  events?.retryNow();
}

export { connection, loginRequired, retryConnection, signIn, startSession, type ConnectionState };
