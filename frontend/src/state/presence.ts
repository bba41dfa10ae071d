// Presence: who else has the dashboard open and where (report, frame), and "follow" mode,
// which keeps this tab on the page a colleague's tab shows. The broker names every tab and
// relays where each one is; this module tells it where we are and follows a leader. It also
// carries the driver indicator of shared consoles: throttled "typing" notices, both ways.
import { computed, effect, signal } from "@preact/signals";
import type { PresenceMessage } from "../api/socket";
import type { TypingEvent, Viewer } from "../api/types";
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
  typingSent = new Map();
  setTypists(new Map());
  lastSent = 0;
  announce();
}

/** Someone else typing in a console, until `until` (epoch ms). */
interface Typist {
  name: string;
  console: string;
  until: number;
}
/** Who types where, by viewer id (others only; notices expire after TYPING_TTL_MS). */
const typists = signal<ReadonlyMap<string, Typist>>(new Map());
/** How long a typing notice shows without a newer one. */
const TYPING_TTL_MS = 4000;
/** While typing, at most one notice per this many ms (the broker relays one per 500 ms). */
const TYPING_NOTICE_MS = 1500;
/** The broker's limit for console paths in typing messages. */
const CONSOLE_PATH = /^(reports\/[A-Za-z0-9_.-]{1,128}\/frames\/\d{1,7}|agents\/[A-Za-z0-9_.-]{1,128})$/;
let typingSent = new Map<string, number>();
let pruneTimer: ReturnType<typeof setTimeout> | undefined;

function setTypists(next: Map<string, Typist>): void {
  clearTimeout(pruneTimer);
  typists.value = next;
  if (next.size === 0) return;
  const soonest = Math.min(...[...next.values()].map((typist) => typist.until));
  pruneTimer = setTimeout(() => {
    const now = Date.now();
    setTypists(new Map([...typists.value].filter(([, typist]) => typist.until > now)));
  }, Math.max(50, soonest - Date.now() + 10));
}

function applyTyping(message: TypingEvent): void {
  if (message.viewer === myViewerId.value) return;
  const next = new Map(typists.value);
  if (message.active === false) next.delete(message.viewer);
  else {
    const name = typeof message.name === "string" && message.name ? message.name : "someone";
    next.set(message.viewer, { name: name.slice(0, 40), console: message.console, until: Date.now() + TYPING_TTL_MS });
  }
  setTypists(next);
}

/** The names of the others typing in `console` now. */
function typistsIn(console: string): string[] {
  return [...typists.value.values()].filter((typist) => typist.console === console).map((typist) => typist.name);
}

/** This tab typed in `console`: tell the others (throttled). */
function noteTyping(console: string): void {
  if (send === null || myViewerId.value === null || !CONSOLE_PATH.test(console)) return;
  const now = Date.now();
  if (now - (typingSent.get(console) ?? 0) < TYPING_NOTICE_MS) return;
  typingSent.set(console, now);
  send({ type: "typing", console, active: true });
}

/** This tab stopped typing in `console` (ran the input, or emptied it). */
function stopTyping(console: string): void {
  if (send === null || !typingSent.has(console)) return;
  typingSent.delete(console);
  send({ type: "typing", console, active: false });
}

/** Apply a welcome, presence or typing message from the broker. */
function applyPresence(message: PresenceMessage): void {
  if (message.type === "welcome") {
    myViewerId.value = message.viewer;
    return;
  }
  if (message.type === "typing") {
    applyTyping(message);
    return;
  }
  viewers.value = message.viewers.filter(
    (viewer) => typeof viewer?.id === "string" && typeof viewer.name === "string",
  );
  const present = new Set(viewers.value.map((viewer) => viewer.id));
  if ([...typists.value.keys()].some((id) => !present.has(id))) {
    setTypists(new Map([...typists.value].filter(([id]) => present.has(id))));
  }
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

export {
  applyPresence,
  connectPresence,
  follow,
  presenceOpened,
  following,
  hashOf,
  noteTyping,
  otherViewers,
  stopTyping,
  typistsIn,
  viewers,
};
