// The session with the broker: whether we must log in, the session key this tab holds, and
// the live event stream's state. A login URL's one-time code ("/?code=...") is exchanged for a session at startup and removed from the address bar. Tabs of this
// dashboard (same origin only) hand each other the session key over a BroadcastChannel, so a
// new tab needs no new login and a new login reaches every open tab.
import { computed, signal } from "@preact/signals";
import { currentSessionKey, fetchLinkStatus, logIn, logOut, setSessionKey, setUnauthorizedHandler } from "../api/client";
import { connectEvents, type EventSocket, type SocketStatus } from "../api/socket";
import { applyBreakpointsEvent, loadBreakpoints } from "./breakpoints";
import { applyConsoleEvent, reloadTranscripts } from "./consoles";
import { applyFramesEvent } from "./frames";
import { applyTriageEvent, exactCountsSoon, refreshGroups } from "./groups";
import { applyPresence, connectPresence, presenceOpened } from "./presence";
import { applyEvent, applyTriageToReports, loadAgents, loadReports, refreshSelected } from "./reports";
import { applySteppedEvent, noteResumed } from "./stepping";
import { applyStoreEvent, readStatus } from "./storeHealth";

/** The event stream's state, or "signed-out" while the broker wants a login. */
type ConnectionState = SocketStatus | { state: "signed-out" };

/** True once the broker answered 401: the app shows the login form instead of data. */
const loginRequired = signal(false);

/** Why the login form is shown, when it is not simply the first visit. */
const loginNotice = signal("");
/** Why the login form is shown after a sign-out (not a failure: shown as a plain status). */
const signedOut = signal("");
/** True when the broker talks to agents in plain text (--insecure-plaintext): a warning shows. */
const insecureLink = signal(false);
/** The session's role once the broker said it: a view-only session may read, not triage. */
const role = signal<"full" | "view" | null>(null);
/** True once this tab holds a session (the views may load their data). */
const sessionReady = signal(false);
/** Whether this session may resolve, mute, ignore and delete (the buttons show only then). */
const canTriage = computed(() => role.value === "full");

/** What the connection indicator shows. */
const connection = signal<ConnectionState>({ state: "connecting" });

let events: EventSocket | null = null;

type TabMessage = { type: "ask" } | { type: "key"; key: string } | { type: "logout" };
const tabs = typeof BroadcastChannel === "function" ? new BroadcastChannel("debugbroker:session") : null;
const ASK_TABS_MS = 300;

tabs?.addEventListener("message", (event: MessageEvent<TabMessage>) => {
  const message = event.data;
  const key = currentSessionKey();
  if (message.type === "ask" && key !== null) tabs.postMessage({ type: "key", key } satisfies TabMessage);
  else if (message.type === "key" && typeof message.key === "string") setSessionKey(message.key);
  else if (message.type === "logout") {
    signedOut.value = "You signed out in another tab.";
    signOut();
  }
});

/** Ask the other open tabs for the session key (null when none answers soon). */
function keyFromOtherTabs(): Promise<string | null> {
  if (tabs === null) return Promise.resolve(null);
  const channel: BroadcastChannel = tabs;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      channel.removeEventListener("message", listen);
      resolve(null);
    }, ASK_TABS_MS);
    function listen(event: MessageEvent<TabMessage>): void {
      if (event.data.type !== "key") return;
      clearTimeout(timer);
      channel.removeEventListener("message", listen);
      resolve(event.data.key);
    }
    channel.addEventListener("message", listen);
    channel.postMessage({ type: "ask" } satisfies TabMessage);
  });
}

/** The one-time code of a login URL ("/?code=..."), removed from the address bar. */
function takeLoginCode(): string | null {
  const query = new URLSearchParams(location.search);
  const code = query.get("code");
  if (code === null) return null;
  query.delete("code");
  const rest = query.toString();
  history.replaceState(history.state, "", `${location.pathname}${rest ? `?${rest}` : ""}${location.hash}`);
  return code;
}

function signOut(): void {
  loginRequired.value = true;
  // The stream would only be refused too; the login form's POST reloads the page anyway.
  events?.close();
  events = null;
  connection.value = { state: "signed-out" };
}

setUnauthorizedHandler(signOut);

function openEvents(): void {
  if (events !== null || loginRequired.value) return;
  let first = true;
  events = connectEvents({
    onEvent: (event) => {
      if (event.type === "console") applyConsoleEvent(event);
      else if (event.type === "frames") applyFramesEvent(event);
      else if (event.type === "store") applyStoreEvent(event);
      else if (event.type === "stepped") applySteppedEvent(event);
      else if (event.type === "breakpoints") applyBreakpointsEvent(event);
      else if (event.type === "triage") {
        applyTriageToReports(event);
        applyTriageEvent(event);
      } else {
        applyEvent(event);
        if (event.type === "resumed") noteResumed(event);
        if (event.type === "report") exactCountsSoon(() => connection.peek().state === "open");
      }
    },
    onPresence: applyPresence,
    sessionKey: currentSessionKey,
    onStatus: (status) => {
      if (!loginRequired.value) connection.value = status;
    },
    onOpen: () => {
      presenceOpened();
      // After a reconnect, fetch what arrived while the stream was down.
      if (first) {
        // What was stored between the first list's answer and this open was announced to
        // nobody: fetch the newest page once more (merged, so nothing shows twice).
        first = false;
        void loadReports();
        refreshGroups();
        return;
      }
      void loadReports();
      void loadAgents();
      void refreshSelected();
      refreshGroups();
      void readStatus();
      reloadTranscripts();
      void loadBreakpoints();
    },
  });
  const socket = events;
  connectPresence((message) => socket.send(message));
}

/** Open the session (a login code, or the key this or another tab holds), load the first
 * data, then open the live event stream (called once at startup). */
async function startSession(): Promise<void> {
  const code = takeLoginCode();
  if (code !== null) {
    const failure = await logIn({ code });
    if (failure !== null) {
      loginNotice.value = failure;
      signOut();
      return;
    }
    tabs?.postMessage({ type: "key", key: currentSessionKey() ?? "" } satisfies TabMessage);
  }
  if (currentSessionKey() === null) {
    const key = await keyFromOtherTabs();
    if (key === null) {
      // A cookie may still be valid, but without its key this tab could run nothing.
      signOut();
      return;
    }
    setSessionKey(key);
  }
  fetchLinkStatus().then(
    (status) => {
      insecureLink.value = status.insecure_plaintext === true;
      role.value = status.role === "full" || status.role === "view" ? status.role : null;
    },
    () => undefined, // signed out or offline: the other loads say so
  );
  sessionReady.value = true;
  void loadAgents();
  void loadBreakpoints();
  void loadReports().then(openEvents);
  void readStatus(); // then the "store" events keep it current
}

/** Send the token to POST /login: null once the session is open (and handed to the other
 * tabs), else why it failed. */
async function signIn(token: string): Promise<string | null> {
  const failure = await logIn({ token });
  const key = currentSessionKey();
  if (failure === null && key !== null) tabs?.postMessage({ type: "key", key } satisfies TabMessage);
  return failure;
}

/** End this browser's session at the broker (every tab of it), then show the login form. */
async function signOutNow(): Promise<void> {
  try {
    await logOut();
  } catch {
    // The broker is unreachable: the key is forgotten anyway, and the cookie's session ends
    // on its own (idle expiry) or at the broker's next restart.
  }
  tabs?.postMessage({ type: "logout" } satisfies TabMessage);
  signedOut.value = "You signed out.";
  signOut();
}

/** Reconnect now instead of waiting for the backoff timer. */
function retryConnection(): void {
  events?.retryNow();
}

export {
  canTriage,
  connection,
  insecureLink,
  loginNotice,
  loginRequired,
  retryConnection,
  sessionReady,
  signIn,
  signedOut,
  signOutNow,
  startSession,
  type ConnectionState,
};
