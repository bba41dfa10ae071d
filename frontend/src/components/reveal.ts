// Deferred rendering for big pages: an element waiting here is revealed when it comes near
// the viewport, or else when the browser is idle, one at a time in the order they waited
// (document order for frames mounted top to bottom). So the first screen of a 30-frame report
// renders at once and the frames below follow without blocking it.

type Reveal = () => void;

/** How far outside the viewport an element counts as near (rendered before it scrolls in). */
const NEAR = "800px 0px";
/** The longest an element waits for an idle moment before it is revealed anyway. */
const IDLE_TIMEOUT_MS = 1_000;

const waiting = new Map<Element, Reveal>();
let observer: IntersectionObserver | null = null;
let idleScheduled = false;

function reveal(element: Element): void {
  const callback = waiting.get(element);
  if (callback === undefined) return;
  forget(element);
  callback();
}

function forget(element: Element): void {
  waiting.delete(element);
  observer?.unobserve(element);
}

function nearViewport(): IntersectionObserver | null {
  if (observer === null && typeof IntersectionObserver !== "undefined") {
    observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) if (entry.isIntersecting) reveal(entry.target);
      },
      { rootMargin: NEAR },
    );
  }
  return observer;
}

function whenIdle(callback: () => void): void {
  if (typeof requestIdleCallback === "function") requestIdleCallback(callback, { timeout: IDLE_TIMEOUT_MS });
  else setTimeout(callback, 16);
}

/** Reveal the first waiting element, then wait for the next idle moment for the next one. */
function revealNextWhenIdle(): void {
  if (idleScheduled || waiting.size === 0) return;
  idleScheduled = true;
  whenIdle(() => {
    idleScheduled = false;
    const first = waiting.keys().next();
    if (!first.done) reveal(first.value);
    revealNextWhenIdle();
  });
}

/** Call `callback` once, when `element` nears the viewport or the browser is idle; the
 * returned function cancels (for an element that unmounts first). */
function revealLater(element: Element, callback: Reveal): () => void {
  waiting.set(element, callback);
  const near = nearViewport();
  if (near === null) {
    forget(element);
    callback();
    return () => undefined;
  }
  near.observe(element);
  revealNextWhenIdle();
  return () => forget(element);
}

export { revealLater };
