// Presence: who else has the dashboard open and where (report, frame), and "follow" mode,
// which keeps this tab on the page a colleague's tab shows. The broker names every tab and
// relays where each one is; this module tells it where we are and follows a leader.
import { computed, effect, signal } from "@preact/signals";
import type { PresenceMessage } from "../api/socket";
import type { Viewer } from "../api/types";
import { displayName } from "./consoles";
import { reportHref, route } from "./route";

/** The id the broker gave this tab, once welcomed. */
const myViewerId = signal<string | null>(null);
/** Every tab that told the broker where it is, this one included. */
const viewers = signal<Viewer[]>([]);
/** The other tabs. */
const otherViewers = computed(() => viewers.value.filter((viewer) => viewer.id !== myViewerId.value));
/** The viewer this tab follows, or null. */
const following = signal<string | null>(null);

/** The broker's limit for report ids in presence messages (others are sent as "no report"). */
const REPORT_ID = /^[A-Za-z0-9_.-]{1,128}$/;
/** At most one presence message per this many ms (the broker rate-limits each tab). */
const ANNOUNCE_INTERVAL_MS = 250;

let send: ((message: object) => void) | null = null;
let lastSent = 0;
let announceTimer: ReturnType<typeof setTimeout> | undefined;
/** The hash this tab is moving to because it follows someone (not the user's own move). */
let followMove: string | null = null;

function here(): { report: string | null; frame: number | null } {
  const current = route.value;
  if (current.name !== "report" || !REPORT_ID.test(current.id)) return { report: null, frame: null };
  return { report: current.id, frame: current.frame };
}

function announceNow(): void {
  announceTimer = undefined;
  if (send === null) return;
  lastSent = Date.now();
  send({ type: "presence", name: displayName.value.trim().slice(0, 40), ...here() });
}

/** Tell the broker where this tab is (throttled; the latest place always goes out). */
function announce(): void {
  if (announceTimer !== undefined) return;
  const wait = Math.max(0, lastSent + ANNOUNCE_INTERVAL_MS - Date.now());
  announceTimer = setTimeout(announceNow, wait);
}

/** The hash of the page a viewer shows. */
function hashOf(viewer: Viewer): string {
  return viewer.report === null ? "#/" : reportHref(viewer.report, viewer.frame ?? undefined);
}

function currentHash(): string {
  return location.hash || "#/";
}

function followLeader(): void {
  const id = following.value;
  if (id === null) return;
  const leader = viewers.value.find((viewer) => viewer.id === id);
  if (leader === undefined) {
    following.value = null; // the leader closed the tab
    return;
  }
  const target = hashOf(leader);
  if (currentHash() !== target) {
    followMove = target;
    location.hash = target;
  }
}

/** Follow `viewerId` (null: stop following). */
function follow(viewerId: string | null): void {
  following.value = viewerId;
  followLeader();
}

/** Use `sender` to talk to the broker (the session's WebSocket). */
function connectPresence(sender: (message: object) => void): void {
  send = sender;
}

/** The socket (re)opened: a new tab to the broker, which learns where it is and names it. */
function presenceOpened(): void {
  myViewerId.value = null;
  lastSent = 0;
  announce();
}

/** Apply a welcome or presence message from the broker. */
function applyPresence(message: PresenceMessage): void {
  if (message.type === "welcome") {
    myViewerId.value = message.viewer;
    return;
  }
  viewers.value = message.viewers.filter(
    (viewer) => typeof viewer?.id === "string" && typeof viewer.name === "string",
  );
  followLeader();
}

effect(() => {
  // Re-announce whenever the place or the name changes.
  void route.value;
  void displayName.value;
  announce();
});

window.addEventListener("hashchange", () => {
  // Moving on one's own ends follow mode; the moves follow mode makes do not.
  if (following.value !== null && currentHash() !== followMove) following.value = null;
  followMove = null;
});

export { applyPresence, connectPresence, follow, presenceOpened, following, hashOf, myViewerId, otherViewers, viewers };
