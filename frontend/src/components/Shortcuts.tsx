// Keyboard shortcuts for the whole dashboard, and their help overlay (a modal <dialog>).
// Keys typed into a field (search, console, login) are the field's, never shortcuts.
import { signal } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import { setConsoleOpen } from "../state/consoles";
import { helpOpen, moveSelection, openAdjacentReport, selectedId } from "../state/navigation";
import { parseRoute, reportHref, route } from "../state/route";

/** The list's search box. */
const SEARCH_ID = "report-search";
/** Counts "/" presses made away from the list; the list focuses its search box when shown. */
const searchFocusRequest = signal(0);

const SHORTCUTS: [keys: string[], what: string][] = [
  [["j", "k"], "Next / previous report (in the list, and from a report)"],
  [["Enter"], "Open the selected report"],
  [["n", "p"], "Next / previous frame of the report (its link goes in the address bar)"],
  [["c"], "Console in the current frame (opens it, or puts the cursor in it)"],
  [["F10"], "Step over (a paused report: the thread pauses at the next line)"],
  [["F11"], "Step into (the first line of a function the line calls)"],
  [["Shift+F11"], "Step out (the caller's next line)"],
  [["F8"], "Continue (the paused thread runs on)"],
  [["/"], "Search the reports"],
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

function onKeyDown(event: KeyboardEvent): void {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
  const page = route.value.name;
  switch (event.key) {
    case "?":
      helpOpen.value = !helpOpen.value;
      break;
    case "j":
    case "k": {
      const step = event.key === "j" ? 1 : -1;
      if (page === "list") moveSelection(step);
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
    case "Enter": {
      // On a row, open the selected report (the focus may trail a fast j/k by a frame).
      const selected = selectedId.value;
      const target = event.target;
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
        if (page !== "list") location.hash = "#/";
        searchFocusRequest.value += 1;
      }
      break;
    }
    case "Escape":
      if (helpOpen.value) helpOpen.value = false;
      else if (page === "report") location.hash = "#/";
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
