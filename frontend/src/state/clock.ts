// A coarse clock for relative times ("3 min ago"): one timer for the whole page.
import { signal } from "@preact/signals";

/** Seconds since the epoch, refreshed every 15 s. */
const now = signal(Date.now() / 1000);

setInterval(() => {
  now.value = Date.now() / 1000;
}, 15_000);

export { now };
