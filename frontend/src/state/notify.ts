// Optional desktop notifications: when switched on (and allowed by the browser), errors that
// arrive while the tab is hidden pop up as a system notification. The choice is kept in
// localStorage; the text is the error's type and message (never HTML).
import { signal } from "@preact/signals";
import type { ReportSummary } from "../api/types";

const STORAGE_KEY = "debugbroker:notify";

function stored(): boolean {
  try {
    return localStorage.getItem(STORAGE_KEY) === "on";
  } catch {
    return false;
  }
}

/** Whether the browser can notify at all. */
const notificationsSupported = typeof window !== "undefined" && "Notification" in window;
/** Whether the user switched notifications on (and the browser allowed them). */
const notifyEnabled = signal(notificationsSupported && stored() && Notification.permission === "granted");
/** Why switching on failed (permission denied), or null. */
const notifyProblem = signal<string | null>(null);

function remember(on: boolean): void {
  try {
    if (on) localStorage.setItem(STORAGE_KEY, "on");
    else localStorage.removeItem(STORAGE_KEY);
  } catch {
    // not remembered; still applied to this page
  }
}

/** Switch notifications on (asking the browser's permission first) or off. */
async function setNotify(on: boolean): Promise<void> {
  notifyProblem.value = null;
  if (!on || !notificationsSupported) {
    notifyEnabled.value = false;
    remember(false);
    return;
  }
  const permission = Notification.permission === "default" ? await Notification.requestPermission() : Notification.permission;
  if (permission !== "granted") {
    notifyProblem.value = "The browser does not allow notifications for this page.";
    notifyEnabled.value = false;
    remember(false);
    return;
  }
  notifyEnabled.value = true;
  remember(true);
}

/** Tell the user about reports that arrived while the tab is hidden. */
function notifyArrived(arrived: readonly ReportSummary[]): void {
  if (!notifyEnabled.value || arrived.length === 0 || document.visibilityState === "visible") return;
  const newest = arrived[0];
  if (newest === undefined) return;
  const title = arrived.length === 1 ? `New error: ${newest.type_name}` : `${arrived.length} new errors`;
  const body = `${newest.type_name}${newest.message ? `: ${newest.message}` : ""}`.slice(0, 200);
  try {
    const note = new Notification(title, { body, tag: "debugbroker-new-errors" });
    note.onclick = () => {
      window.focus();
      location.hash = `#/reports/${encodeURIComponent(newest.id)}`;
      note.close();
    };
  } catch {
    // some browsers only notify from a service worker: nothing to do
  }
}

export { notificationsSupported, notifyArrived, notifyEnabled, notifyProblem, setNotify };
