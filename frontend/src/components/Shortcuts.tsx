// Keyboard shortcuts for the whole dashboard, and their help overlay (a modal <dialog>).
// Keys typed into a field (search, console, login) are the field's, never shortcuts.
import { signal } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import { setConsoleOpen } from "../state/consoles";
import { currentGroup, moveGroupSelection, setGroupState, triageDialog } from "../state/groups";
import { backHref, helpOpen, moveSelection, openAdjacentReport, selectedId } from "../state/navigation";
import { parseRoute, reportHref, route } from "../state/route";
import { canTriage } from "../state/session";

/** The list's search box. */
const SEARCH_ID = "report-search";
/** Counts "/" presses made away from the list; the list focuses its search box when shown. */
const searchFocusRequest = signal(0);

const SHORTCUTS: [keys: string[], what: string][] = [
  [["j", "k"], "Next / previous report (in the list, and from a report), or error (in the errors)"],
  [["Enter"], "Open the selected report (of an error: its newest report)"],
  [["r"], "Resolve the selected error (it shows as regressed if it comes back)"],
  [["o"], "Reopen the selected error"],
  [["i"], "Ignore the selected error for good"],
  [["m"], "Mute the selected error, for a time or N more occurrences"],
  [["d"], "Delete the selected error's group (asks first)"],
  [["n", "p"], "Next / previous frame of the report (its link goes in the address bar)"],
  [["c"], "Console in the current frame (opens it, or puts the cursor in it)"],
  [["F10"], "Step over (a paused report: the thread pauses at the next line)"],
  [["F11"], "Step into (the first line of a function the line calls)"],
  [["Shift+F11"], "Step out (the caller's next line)"],
  [["F8"], "Continue (the paused thread runs on)"],
  [["/"], "Search all reports"],
  [["Esc"], "Close this help · clear the search · back to the list"],
  [["?"], "Show or hide this help"],
];

function isTyping(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

function shownFrames(): HTMLElement[] {
  return [...document.querySelectorAll<HTMLElement>("[data-testid=frame]")];
}

/** The frame the address points at, else the innermost frame of the last exception. */
function currentFrame(): HTMLElement | null {
  const current = parseRoute(location.hash);
  const frames = shownFrames();
  if (current.name === "report" && current.frame !== null) {
    const target = frames.find((frame) => frame.dataset.index === String(current.frame));
    if (target !== undefined) return target;
  }
  return frames[frames.length - 1] ?? null;
}

/** Point the address at the next (1) or previous (-1) frame on the page. */
function moveFrame(step: number): boolean {
  // From the address itself: a quick second key press comes before the hashchange event.
  const current = parseRoute(location.hash);
  if (current.name !== "report") return false;
  const frames = shownFrames();
  if (frames.length === 0) return false;
  const position = current.frame === null ? -1 : frames.findIndex((frame) => frame.dataset.index === String(current.frame));
  const next = position < 0 ? (step > 0 ? 0 : frames.length - 1) : Math.max(0, Math.min(frames.length - 1, position + step));
  const index = frames[next]?.dataset.index;
  if (index === undefined) return false;
  location.hash = reportHref(current.id, Number(index));
  return true;
}

/** Open the current frame's console, or move the cursor into it. */
function focusConsole(): boolean {
  const current = parseRoute(location.hash);
  const frame = currentFrame();
  const index = frame?.dataset.index;
  if (current.name !== "report" || frame == null || index === undefined) return false;
  const input = frame.querySelector<HTMLTextAreaElement>("[data-testid=console-input]");
  if (input !== null) {
    input.focus();
    return true;
  }
  setConsoleOpen(current.id, Number(index), true); // the console focuses its input when it opens
  return true;
}

/** r, o, i, m, d on the errors page: triage the selected group (full sessions only). */
function triageSelected(key: string): boolean {
  const group = currentGroup.value;
  if (group === null || !canTriage.value) return false;
  const { fingerprint } = group;
  if (key === "r") void setGroupState(fingerprint, { state: "resolved" });
  else if (key === "o") void setGroupState(fingerprint, { state: "open" });
  else if (key === "i") void setGroupState(fingerprint, { state: "ignored" });
  else if (key === "m") triageDialog.value = { kind: "mute", fingerprint };
  else if (key === "d") triageDialog.value = { kind: "delete-group", fingerprint };
  else return false;
  return true;
}

function onKeyDown(event: KeyboardEvent): void {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
  if (triageDialog.value !== null) return; // the dialog's own keys (Esc closes it)
  const page = route.value.name;
  switch (event.key) {
    case "?":
      helpOpen.value = !helpOpen.value;
      break;
    case "j":
    case "k": {
      const step = event.key === "j" ? 1 : -1;
      if (page === "list") moveSelection(step);
      else if (page === "groups") moveGroupSelection(step);
      else if (page === "report") openAdjacentReport(step);
      else return;
      break;
    }
    case "n":
    case "p":
      if (page !== "report" || !moveFrame(event.key === "n" ? 1 : -1)) return;
      break;
    case "c":
      if (page !== "report" || !focusConsole()) return;
      break;
    case "r":
    case "o":
    case "i":
    case "m":
    case "d":
      if (page !== "groups" || !triageSelected(event.key)) return;
      break;
    case "Enter": {
      // On a row, open the selected report (the focus may trail a fast j/k by a frame).
      const target = event.target;
      if (page === "groups") {
        const newest = currentGroup.value?.latest;
        const onGroup = target === document.body || (target instanceof Element && target.closest("[data-testid=group]") !== null);
        // A focused button or link does its own thing with Enter.
        const onControl = target instanceof Element && target.closest("a, button") !== null;
        if (newest == null || !onGroup || onControl) return;
        location.hash = reportHref(newest.id);
        break;
      }
      const selected = selectedId.value;
      const onRow =
        target === document.body || (target instanceof Element && target.closest("[data-testid=report-row]") !== null);
      if (page !== "list" || selected === null || !onRow) return;
      location.hash = reportHref(selected);
      break;
    }
    case "/": {
      const search = document.getElementById(SEARCH_ID);
      if (page === "list" && search instanceof HTMLInputElement) {
        search.focus();
        search.select();
      } else {
        // The list is not shown yet: it focuses its search box once it is.
        if (page !== "list") location.hash = "#/reports";
        searchFocusRequest.value += 1;
      }
      break;
    }
    case "Escape":
      if (helpOpen.value) helpOpen.value = false;
      // From the address itself: Esc right after Enter comes before the hashchange event.
      else if (parseRoute(location.hash).name === "report") location.hash = backHref.value;
      else return;
      break;
    default:
      return;
  }
  event.preventDefault();
}

/** Installs the shortcuts and renders the help overlay while it is open. */
function Shortcuts() {
  const dialog = useRef<HTMLDialogElement>(null);
  const open = helpOpen.value;

  useEffect(() => {
    document.addEventListener("keydown", onKeyDown);
    return () => document.removeEventListener("keydown", onKeyDown);
  }, []);

  useEffect(() => {
    const element = dialog.current;
    if (element === null) return;
    if (open && !element.open) element.showModal();
    else if (!open && element.open) element.close();
  }, [open]);

  return (
    <dialog
      ref={dialog}
      class="help"
      aria-labelledby="help-title"
      data-testid="shortcut-help"
      onClose={() => {
        helpOpen.value = false;
      }}
    >
      <div class="help-head">
        <h2 id="help-title">Keyboard shortcuts</h2>
        <button type="button" class="button small" onClick={() => (helpOpen.value = false)}>
          Close
        </button>
      </div>
      <table class="help-table">
        <tbody>
          {SHORTCUTS.map(([keys, what]) => (
            <tr key={what}>
              <th scope="row">
                {keys.map((key, position) => (
                  <span key={key}>
                    {position > 0 && " "}
                    <kbd>{key}</kbd>
                  </span>
                ))}
              </th>
              <td>{what}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="muted small">Shortcuts are off while you type in a field; Esc leaves the search box.</p>
    </dialog>
  );
}

/** The top bar's button that opens the help. */
function HelpButton() {
  return (
    <button
      type="button"
      class="button small"
      data-testid="help-button"
      aria-haspopup="dialog"
      title="Keyboard shortcuts (?)"
      onClick={() => (helpOpen.value = true)}
    >
      <span aria-hidden="true">?</span>
      <span class="visually-hidden">Keyboard shortcuts</span>
    </button>
  );
}

export { HelpButton, SEARCH_ID, Shortcuts, searchFocusRequest };
