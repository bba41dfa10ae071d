// Opening a console entry's permalink (#/reports/{id}/frames/{index}/console/{entry}): the
// frame's console opens (its toggle is pressed once the frame is on the page, unless already
// open); the console itself then scrolls to the entry and highlights it (Console.tsx).
import { effect } from "@preact/signals";
import { route } from "./route";

/** How long to wait for the report (and so the frame) to be on the page. */
const WAIT_MS = 20_000;
let watching: MutationObserver | null = null;

/** Press the console toggle of frame `frame` once it exists, unless its console is open. */
function openConsoleOf(frame: number): void {
  watching?.disconnect();
  watching = null;
  const deadline = Date.now() + WAIT_MS;
  const attempt = (): boolean => {
    const toggle = document.getElementById(`frame-${frame}`)?.querySelector('[data-testid="console-toggle"]');
    if (!(toggle instanceof HTMLButtonElement)) return false;
    if (toggle.getAttribute("aria-expanded") !== "true") toggle.click();
    return true;
  };
  if (attempt()) return;
  const observer = new MutationObserver(() => {
    if (attempt() || Date.now() > deadline) {
      observer.disconnect();
      if (watching === observer) watching = null;
    }
  });
  watching = observer;
  observer.observe(document.body, { childList: true, subtree: true });
}

effect(() => {
  const current = route.value;
  if (current.name === "report" && current.frame !== null && current.entry != null) openConsoleOf(current.frame);
  else {
    watching?.disconnect();
    watching = null;
  }
});

export { openConsoleOf };
