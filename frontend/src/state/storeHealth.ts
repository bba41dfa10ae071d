// Whether the broker's store can write: read from GET /api/status at start and after a
// reconnect, then kept current by the "store" events the broker sends while it cannot write
// (and once as it writes again), for the banner that says what could not be stored and why.
import { computed, signal } from "@preact/signals";
import { fetchStatus } from "../api/client";
import type { StoreEvent, StoreStatus } from "../api/types";

/** The store's counters as last read, or null before the first answer. */
const storeStatus = signal<StoreStatus | null>(null);

/** The banner's text while the store cannot write, else null. */
const storeProblem = computed<string | null>(() => {
  const status = storeStatus.value;
  if (status === null || status.fault === null) return null;
  const lost = status.waiting + status.shed;
  const what = lost > 0 ? `${lost} ${lost === 1 ? "report" : "reports"} could not be stored` : "The broker cannot store anything";
  const parts = [`${what}: ${status.fault}.`];
  if (status.waiting > 0) parts.push(`${status.waiting} wait in the broker's memory and are stored once it can write again.`);
  if (status.shed > 0) parts.push(`${status.shed} were shed (too many to keep waiting).`);
  parts.push("Evals are refused until then: their audit rows cannot be written.");
  return parts.join(" ");
});

/** A "store" event: the counters as they are now. */
function applyStoreEvent(event: StoreEvent): void {
  storeStatus.value = event.store;
}

/** Read the store's counters now (at start, and after the event stream reconnects). */
async function readStatus(): Promise<void> {
  try {
    storeStatus.value = (await fetchStatus()).store;
  } catch {
    // Offline or signed out: the connection indicator says so; keep the last answer.
  }
}

export { applyStoreEvent, readStatus, storeProblem, storeStatus };
